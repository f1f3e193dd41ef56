//! The processing thread's side of the streams group protocol
//! (`runtime::membership`): each loop turn the thread compares the
//! broker's assignment with what it runs and moves toward it, the way
//! librdkafka's rebalance callbacks do under the consumer protocols:
//!
//! 1. tasks taken away: commit everything, close them (their local state
//!    stays on disk) and unassign their source partitions;
//! 2. standbys taken away, or becoming active here: closed, flushed with
//!    their changelog offsets;
//! 3. new active tasks: their source partitions are assigned to the
//!    consumer (from the committed offsets) and the tasks created as after
//!    a rebalance callback, so a former standby replays only the tail;
//! 4. new standbys: opened at their local offsets;
//! 5. what the thread owns now goes into the next heartbeat.

use std::collections::BTreeSet;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::TopicPartitionList;

use super::TaskManager;
use crate::error::{Error, Result};
use crate::processor::TaskId;
use crate::runtime::membership::{Assigned, Membership};
use crate::runtime::task::Task;

/// What the thread last applied of the membership's assignment.
#[derive(Default)]
pub(crate) struct Reconciled {
    version: u64,
    lost: u64,
    active: BTreeSet<TaskId>,
}

impl Reconciled {
    /// Starts from the membership's current state: a thread that starts
    /// over after its tasks migrated does not see the same loss again.
    pub(crate) fn new(m: &Membership, thread: usize) -> Self {
        let view = m.view(thread);
        Reconciled { version: 0, lost: view.lost, active: BTreeSet::new() }
    }
}

impl TaskManager {
    fn partitions_of(&self, ids: &BTreeSet<TaskId>) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for &id in ids {
            for (topic, partition) in self.source_partitions(id) {
                tpl.add_partition(&topic, partition);
            }
        }
        tpl
    }

    /// One reconciliation (see the module docs); nothing to do unless the
    /// assignment changed.
    pub(crate) fn reconcile<C: ConsumerContext, R: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        standby_reader: &BaseConsumer<R>,
        m: &Membership,
        done: &mut Reconciled,
    ) -> Result<()> {
        // Every loop turn: one lock, no copy, unless something changed.
        if !m.changed_since(done.version, done.lost)? {
            return Ok(());
        }
        let view = m.view(self.thread);
        if view.lost != done.lost {
            return Err(Error::TaskMigrated(
                "the group coordinator fenced this instance's member of the streams group (its session timed out \
                 or its epoch is stale)"
                    .into(),
            ));
        }
        if view.version == done.version {
            return Ok(());
        }
        done.version = view.version;
        let Some(target) = view.assigned else { return Ok(()) };
        let metrics = self.app.metrics.clone();
        // 1.
        let revoked: BTreeSet<TaskId> = done.active.difference(&target.active).copied().collect();
        if !revoked.is_empty() {
            let tpl = self.partitions_of(&revoked);
            self.on_revoked(consumer, &tpl);
            consumer.incremental_unassign(&tpl).map_err(|e| Error::kafka("unassigning revoked partitions", e))?;
        }
        // 2.
        for id in self.standbys.ids() {
            if !target.standby.contains(&id) {
                self.standbys.close(&id, &metrics)?;
            }
        }
        // 3.
        let added: BTreeSet<TaskId> = target.active.difference(&done.active).copied().collect();
        if !added.is_empty() {
            let tpl = self.partitions_of(&added);
            consumer.incremental_assign(&tpl).map_err(|e| Error::kafka("assigning partitions", e))?;
            self.on_assigned(&tpl);
        } else if !self.assigned {
            self.assigned = true;
            self.update_task_counts();
        }
        done.active = target.active.clone();
        // 4.
        for &id in target.standby.difference(&self.standbys.ids()) {
            let mut task = Task::new(id, &self.app, Box::new(self.collector.clone()))?;
            let parts = task.standby_plan(standby_reader)?;
            self.standbys.open(task, parts, &metrics);
        }
        // 5.
        m.report(self.thread, view.lost, Assigned { active: target.active, standby: self.standbys.ids() });
        Ok(())
    }

    /// Reads changelog records for the standby tasks.
    pub(crate) fn standby_step<R: ConsumerContext>(&mut self, reader: &BaseConsumer<R>) -> Result<()> {
        let metrics = self.app.metrics.clone();
        self.standbys.step(reader, &metrics)
    }

    /// Closes the standby tasks (the thread stops or starts over).
    pub(crate) fn close_standbys(&mut self) -> Result<()> {
        let metrics = self.app.metrics.clone();
        self.standbys.close_all(&metrics)
    }
}
