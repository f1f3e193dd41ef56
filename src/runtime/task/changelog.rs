//! A task's changelogs: which partitions to replay into its stores, from
//! where (the local offset), and applying replayed records; for a restore
//! (up to the end offset when it began) and for a standby (with no end).

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::Message;

use super::Task;
use crate::error::{Error, Result};
use crate::runtime::stats::RuntimeStats;

/// Changelog records applied to a store per batch while restoring.
const RESTORE_BATCH: usize = 10_000;

/// One changelog partition being replayed into one store of a task.
pub(crate) struct RestorePartition {
    pub(crate) store: usize,
    pub(crate) topic: String,
    pub(crate) partition: i32,
    /// The offset of the next record to read.
    pub(crate) next: i64,
    /// The end offset when the restore began.
    pub(crate) end: i64,
    #[allow(clippy::type_complexity)]
    pub(crate) batch: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl RestorePartition {
    /// Takes a changelog record of this partition into the batch (a
    /// keyless one only moves the position); `false` for a record already
    /// read, which a re-assignment may fetch again.
    pub(crate) fn accept(&mut self, m: &impl Message) -> bool {
        if m.offset() < self.next {
            return false;
        }
        self.next = m.offset() + 1;
        if let Some(k) = m.key() {
            self.batch.push((k.to_vec(), m.payload().map(<[u8]>::to_vec)));
        }
        true
    }

    /// Whether the batch is full and should be applied now.
    pub(crate) fn batch_full(&self) -> bool {
        self.batch.len() >= RESTORE_BATCH
    }
}

impl Task {
    /// What each store has to replay: from the changelog offset recorded
    /// in the store (or the beginning) to the partition's end offset now.
    /// Stores already at the end are left out.
    ///
    /// A store whose local offset is past its changelog's end is ahead of
    /// it: the changelog was deleted and recreated (an application reset
    /// whose local state was left on this machine) or lost records. The
    /// store is wiped and restored from the changelog, as Kafka Streams does
    /// when restoring from its checkpoint hits an out-of-range offset
    /// (`TaskCorruptedException`: "the changelog has been modified and we
    /// re-bootstrap the store").
    pub(crate) fn restore_plan<C: rdkafka::consumer::ConsumerContext>(
        &mut self,
        restorer: &BaseConsumer<C>,
    ) -> Result<Vec<RestorePartition>> {
        self.changelog_plan(restorer, false)
    }

    /// A standby's plan: every changelog partition, from the local offset,
    /// with no end (`runtime::standby` follows them for as long as it
    /// holds the task).
    pub(crate) fn standby_plan<C: rdkafka::consumer::ConsumerContext>(
        &mut self,
        restorer: &BaseConsumer<C>,
    ) -> Result<Vec<RestorePartition>> {
        self.changelog_plan(restorer, true)
    }

    fn changelog_plan<C: rdkafka::consumer::ConsumerContext>(
        &mut self,
        restorer: &BaseConsumer<C>,
        standby: bool,
    ) -> Result<Vec<RestorePartition>> {
        let mut plan = Vec::new();
        let partition = self.id.partition;
        for (store, topic, local) in self.changelog_offsets()? {
            // A leader moving or metadata not there yet (a new changelog's
            // first seconds, a busy broker) passes: retried, not the thread's
            // end. rivulet created the changelog, so an unknown partition is
            // one the client has not heard of yet.
            let what = format!("reading the end offsets of changelog {topic}[{partition}]");
            let passing = |e: &rdkafka::error::KafkaError| {
                crate::runtime::retry::is_retriable(e)
                    || e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::UnknownPartition)
            };
            let (low, high) = crate::runtime::retry::retrying_when(passing, &what, Duration::from_secs(30), || {
                restorer.fetch_watermarks(&topic, partition, Duration::from_secs(30))
            })
            .map_err(|e| Error::kafka(what.clone(), e))?;
            let local = match local {
                Some(local) if local > high => {
                    let slot = &mut self.ctx.stores[store];
                    tracing::warn!(
                        task = %self.id, store = %slot.name, local, changelog_end = high,
                        "the local state is ahead of its changelog {topic}[{partition}] (the topic was recreated, \
                         e.g. by a reset, or lost records); wiping the store and restoring it from the changelog"
                    );
                    slot.store.clear(low)?;
                    None
                }
                local => local,
            };
            let start = local.unwrap_or(low).max(low);
            if standby {
                plan.push(RestorePartition { store, topic, partition, next: start, end: i64::MAX, batch: Vec::new() });
            } else if start < high {
                let name = &self.ctx.stores[store].name;
                tracing::info!(task = %self.id, store = %name, from = start, to = high, local = ?local, "restoring store from its changelog");
                plan.push(RestorePartition { store, topic, partition, next: start, end: high, batch: Vec::new() });
            }
        }
        Ok(plan)
    }

    /// Each store's index, changelog topic, and the changelog offset its
    /// local state has reached (`None`: nothing restored or committed yet).
    pub(crate) fn changelog_offsets(&self) -> Result<Vec<(usize, String, Option<i64>)>> {
        let mut out = Vec::with_capacity(self.ctx.stores.len());
        for (store, slot) in self.ctx.stores.iter().enumerate() {
            out.push((store, slot.changelog.clone(), slot.store.changelog_offset()?));
        }
        Ok(out)
    }

    /// Applies restored changelog records to a store, with the offset of
    /// the next record to read.
    pub(crate) fn apply_restored(&mut self, part: &mut RestorePartition, stats: &RuntimeStats) -> Result<u64> {
        let n = self.apply_changelog(part)?;
        RuntimeStats::add(&stats.records_restored, n);
        Ok(n)
    }

    /// Applies changelog records to a store, with the offset of the next
    /// record to read (a standby's, not counted as restored).
    pub(crate) fn apply_changelog(&mut self, part: &mut RestorePartition) -> Result<u64> {
        let n = part.batch.len() as u64;
        self.ctx.stores[part.store].store.apply(&part.batch, Some(part.next))?;
        part.batch.clear();
        Ok(n)
    }
}
