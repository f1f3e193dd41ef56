//! Restoring tasks' stores from their changelogs while the thread keeps
//! polling (Kafka Streams' `StoreChangelogReader`).
//!
//! The task manager hands over a created task whose stores are behind
//! their changelogs ([`ChangelogReader::add`]) and pauses its source
//! partitions; each loop turn [`ChangelogReader::step`] reads up to 100 ms
//! of changelog records with the thread's restore consumer and applies them
//! to the stores in batches of 10,000 (`RESTORE_BATCH`), each with the offset of
//! the next record to read. A changelog partition is done when the restore
//! consumer's position reaches the end offset taken when the restore began
//! (the position also passes transaction markers and compacted gaps). The
//! tasks whose every store is done come back from `step`, for the task
//! manager to start them and resume their partitions.
//!
//! ```text
//! Task::new -> restore_plan() --empty--> started at once
//!                     \--> add() --step()...step()--> returned, started
//!                                   \--revoke()--> closed (a partly restored store keeps what it applied)
//! ```

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::processor::TaskId;
use crate::runtime::stats::RuntimeStats;
use crate::runtime::task::{RestorePartition, Task};
use crate::topology::{changelog_topic, Topology};

/// How long one restore step reads before the loop polls again.
const STEP: Duration = Duration::from_millis(100);

/// A task replaying its changelogs.
struct Restoring {
    task: Task,
    parts: Vec<RestorePartition>,
    started: Instant,
    restored: u64,
    /// Records restored per changelog topic (of this task's partition).
    restored_by_topic: HashMap<String, u64>,
}

/// A task whose stores caught up with their changelogs.
pub(crate) struct Restored {
    pub(crate) task: Task,
    /// Changelog records applied.
    pub(crate) records: u64,
    pub(crate) started: Instant,
}

/// The restoring tasks of one processing thread.
pub(crate) struct ChangelogReader {
    restoring: BTreeMap<TaskId, Restoring>,
    /// The restore consumer's assignment must be redone.
    changed: bool,
    /// Resolved changelog topic -> the sub-topology owning its store, and
    /// the store's name.
    owners: HashMap<String, (usize, String)>,
}

impl ChangelogReader {
    pub(crate) fn new(topology: &Topology, application_id: &str) -> Self {
        let owners = topology
            .subtopologies
            .iter()
            .flat_map(|st| {
                st.stores.iter().map(move |s| (changelog_topic(s).resolve(application_id), (st.id, s.clone())))
            })
            .collect();
        ChangelogReader { restoring: BTreeMap::new(), changed: false, owners }
    }

    /// Takes a task with changelog partitions to replay.
    pub(crate) fn add(&mut self, task: Task, parts: Vec<RestorePartition>) {
        let id = task.id;
        let restoring =
            Restoring { task, parts, started: Instant::now(), restored: 0, restored_by_topic: HashMap::new() };
        self.restoring.insert(id, restoring);
        self.changed = true;
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.restoring.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.restoring.len()
    }

    pub(crate) fn contains(&self, id: &TaskId) -> bool {
        self.restoring.contains_key(id)
    }

    /// Gives back a task that was revoked mid-restore; its stores keep what
    /// they applied, with their offsets.
    pub(crate) fn remove(&mut self, id: &TaskId, metrics: &Metrics) -> Option<Task> {
        let r = self.restoring.remove(id)?;
        for p in &r.parts {
            if let Some((_, store)) = self.owners.get(&p.topic) {
                metrics.forget_restore(store, p.partition);
            }
        }
        self.changed = true;
        Some(r.task)
    }

    /// Every restoring task (the thread is closing).
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Task> {
        std::mem::take(&mut self.restoring).into_values().map(|r| r.task)
    }

    /// Reads one round of changelog records for the restoring tasks and
    /// returns those that reached their end offsets.
    pub(crate) fn step<R: ConsumerContext>(
        &mut self,
        restorer: &BaseConsumer<R>,
        stats: &RuntimeStats,
        metrics: &Metrics,
    ) -> Result<Vec<Restored>> {
        if self.restoring.is_empty() {
            return Ok(Vec::new());
        }
        if std::mem::take(&mut self.changed) {
            let mut tpl = TopicPartitionList::new();
            for r in self.restoring.values() {
                for p in &r.parts {
                    tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.next))
                        .map_err(|e| Error::kafka("assigning the restore consumer", e))?;
                }
            }
            restorer.assign(&tpl).map_err(|e| Error::kafka("assigning the restore consumer", e))?;
        }
        self.read(restorer, stats)?;
        let finished = self.finish_caught_up(restorer, stats, metrics)?;
        if self.restoring.is_empty() {
            restorer.unassign().map_err(|e| Error::kafka("unassigning the restore consumer", e))?;
            self.changed = false;
        } else if !finished.is_empty() {
            self.changed = true;
        }
        Ok(finished)
    }

    /// Reads changelog records for up to [`STEP`], applying full batches.
    fn read<R: ConsumerContext>(&mut self, restorer: &BaseConsumer<R>, stats: &RuntimeStats) -> Result<()> {
        let deadline = Instant::now() + STEP;
        let mut timeout = Duration::from_millis(50);
        while Instant::now() < deadline {
            let Some(polled) = restorer.poll(timeout) else { break };
            timeout = Duration::ZERO;
            let m = match polled {
                Ok(m) => m,
                Err(KafkaError::PartitionEOF(_)) => continue,
                Err(e) => return Err(Error::kafka("reading changelogs to restore", e)),
            };
            let Some(&(subtopology, _)) = self.owners.get(m.topic()) else { continue };
            let id = TaskId { subtopology, partition: m.partition() };
            let Some(r) = self.restoring.get_mut(&id) else { continue };
            let Some(part) = r.parts.iter_mut().find(|p| p.topic == m.topic()) else { continue };
            if part.accept(&m) && part.batch_full() {
                let n = r.task.apply_restored(part, stats)?;
                r.restored += n;
                *r.restored_by_topic.entry(part.topic.clone()).or_default() += n;
            }
        }
        Ok(())
    }

    /// Applies what is left of the partitions whose position reached the
    /// end offset, reports progress, and takes out the tasks that are done.
    fn finish_caught_up<R: ConsumerContext>(
        &mut self,
        restorer: &BaseConsumer<R>,
        stats: &RuntimeStats,
        metrics: &Metrics,
    ) -> Result<Vec<Restored>> {
        let positions = restorer.position().map_err(|e| Error::kafka("reading restore positions", e))?;
        let mut done = Vec::new();
        for (id, r) in self.restoring.iter_mut() {
            let mut parts = std::mem::take(&mut r.parts);
            for p in &mut parts {
                if let Some(Offset::Offset(pos)) = positions.find_partition(&p.topic, p.partition).map(|e| e.offset()) {
                    p.next = p.next.max(pos);
                }
                if p.next >= p.end {
                    let n = r.task.apply_restored(p, stats)?;
                    r.restored += n;
                    *r.restored_by_topic.entry(p.topic.clone()).or_default() += n;
                }
                if let Some((_, store)) = self.owners.get(&p.topic) {
                    let restored = r.restored_by_topic.get(&p.topic).copied().unwrap_or(0);
                    metrics.restore_progress(store, p.partition, p.end - p.next, restored);
                }
            }
            parts.retain(|p| p.next < p.end);
            if parts.is_empty() {
                done.push(*id);
            }
            r.parts = parts;
        }
        Ok(done
            .into_iter()
            .filter_map(|id| self.restoring.remove(&id))
            .map(|r| Restored { task: r.task, records: r.restored, started: r.started })
            .collect())
    }
}
