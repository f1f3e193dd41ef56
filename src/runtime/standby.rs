//! Standby tasks (`num_standby_replicas`, under `group_protocol =
//! "streams"`): a task's stores kept warm on this instance while another
//! instance runs the task, by following its changelogs (Kafka Streams'
//! `StandbyTask`, updated by its `StoreChangelogReader` in standby mode).
//!
//! A standby is a [`Task`] that is never initialised: its stores are open
//! and its changelog partitions are read from the local offset on, with
//! no end, by the thread's standby consumer (read_committed under
//! exactly-once, so an aborted write never reaches a standby). Each loop
//! turn [`Standbys::step`] reads what has arrived without waiting, applies
//! it with the offset of the next record, and returns. When the broker
//! makes the task active here, the standby is closed (its stores flushed
//! with their offsets) and the active task's restore replays only what the
//! standby had not read yet.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::processor::TaskId;
use crate::runtime::task::{RestorePartition, Task};
use crate::topology::{changelog_topic, Topology};

/// The most one step reads, so active tasks keep the thread.
const STEP: Duration = Duration::from_millis(20);

/// The standby tasks of one processing thread.
pub(crate) struct Standbys {
    tasks: BTreeMap<TaskId, (Task, Vec<RestorePartition>)>,
    /// The standby consumer's assignment must be redone.
    changed: bool,
    /// Resolved changelog topic -> the sub-topology owning its store.
    owners: HashMap<String, usize>,
}

impl Standbys {
    pub(crate) fn new(topology: &Topology, application_id: &str) -> Self {
        let owners = topology
            .subtopologies
            .iter()
            .flat_map(|st| st.stores.iter().map(move |s| (changelog_topic(s).resolve(application_id), st.id)))
            .collect();
        Standbys { tasks: BTreeMap::new(), changed: false, owners }
    }

    pub(crate) fn ids(&self) -> BTreeSet<TaskId> {
        self.tasks.keys().copied().collect()
    }

    /// Keeps `task` warm from `parts` ([`Task::standby_plan`]).
    pub(crate) fn open(&mut self, task: Task, parts: Vec<RestorePartition>, metrics: &Metrics) {
        tracing::info!(task = %task.id, changelogs = parts.len(), "standby task opened");
        self.tasks.insert(task.id, (task, parts));
        self.changed = true;
        metrics.add_standby(1, 0);
    }

    /// Closes a standby (moved away, or becoming active here): what it read
    /// is applied and flushed with its offsets.
    pub(crate) fn close(&mut self, id: &TaskId, metrics: &Metrics) -> Result<()> {
        let Some((mut task, mut parts)) = self.tasks.remove(id) else { return Ok(()) };
        self.changed = true;
        metrics.add_standby(-1, 0);
        let applied = apply_all(&mut task, &mut parts);
        task.close();
        tracing::info!(task = %id, "standby task closed");
        applied.map(|n| metrics.add_standby(0, n))
    }

    /// Closes every standby (the thread stops, or its tasks migrated).
    pub(crate) fn close_all(&mut self, metrics: &Metrics) -> Result<()> {
        let mut result = Ok(());
        for id in self.ids() {
            let closed = self.close(&id, metrics);
            result = result.and(closed);
        }
        result
    }

    /// Reads the changelog records that have arrived (for at most
    /// [`STEP`], without waiting for more) and applies them.
    pub(crate) fn step<R: ConsumerContext>(&mut self, reader: &BaseConsumer<R>, metrics: &Metrics) -> Result<()> {
        if std::mem::take(&mut self.changed) {
            let mut tpl = TopicPartitionList::new();
            for (_, parts) in self.tasks.values() {
                for p in parts {
                    tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.next))
                        .map_err(|e| Error::kafka("assigning the standby consumer", e))?;
                }
            }
            reader.assign(&tpl).map_err(|e| Error::kafka("assigning the standby consumer", e))?;
        }
        if self.tasks.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + STEP;
        while Instant::now() < deadline {
            let m = match reader.poll(Duration::ZERO) {
                None => break,
                Some(Ok(m)) => m,
                Some(Err(KafkaError::PartitionEOF(_))) => continue,
                Some(Err(e)) => return Err(Error::kafka("reading changelogs for standby tasks", e)),
            };
            let Some(&subtopology) = self.owners.get(m.topic()) else { continue };
            let id = TaskId { subtopology, partition: m.partition() };
            let Some((task, parts)) = self.tasks.get_mut(&id) else { continue };
            let Some(part) = parts.iter_mut().find(|p| p.topic == m.topic()) else { continue };
            if part.accept(&m) && part.batch_full() {
                let n = task.apply_changelog(part)?;
                metrics.add_standby(0, n);
            }
        }
        // The read position passes transaction markers and compacted gaps.
        let positions = reader.position().map_err(|e| Error::kafka("reading standby positions", e))?;
        for (task, parts) in self.tasks.values_mut() {
            for p in parts.iter_mut() {
                if let Some(Offset::Offset(pos)) = positions.find_partition(&p.topic, p.partition).map(|e| e.offset()) {
                    p.next = p.next.max(pos);
                }
            }
            let n = apply_all(task, parts)?;
            metrics.add_standby(0, n);
        }
        Ok(())
    }
}

/// Applies what a standby has read, with its offsets.
fn apply_all(task: &mut Task, parts: &mut [RestorePartition]) -> Result<u64> {
    let mut n = 0;
    for p in parts.iter_mut().filter(|p| !p.batch.is_empty()) {
        n += task.apply_changelog(p)?;
    }
    Ok(n)
}
