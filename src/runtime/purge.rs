//! Deleting consumed records from repartition topics.
//!
//! A repartition topic is written by one sub-topology and read by the next
//! one of the same application. It has no retention by time or size (see
//! `crate::kafka::admin`): a time retention is judged on record timestamps,
//! so replaying history would let the broker delete records before the
//! downstream task read them. Instead, as Kafka Streams does
//! (`TaskManager.maybePurgeCommittedRecords`, `repartition.purge.interval.ms`),
//! once a downstream task has committed offset `o` of a repartition
//! partition, the records below `o` are deleted with a DeleteRecords
//! request: nothing reads them again.
//!
//! ```text
//! processing threads --committed(offsets) after each successful commit--> pending (max per partition)
//! purger thread: wait for pending offsets and for repartition_purge_interval_ms since the last
//!   request -> one DeleteRecords request -> wait for its answer -> failures logged and re-queued
//! ```
//!
//! The processing threads only merge offsets into a map under a lock: the
//! request runs on the purger's own thread, with its own admin client, one
//! request at a time, so a commit never waits for the broker's answer. A
//! failed purge is logged (warn) with its partitions and retried with the
//! next request: the records are only kept longer, nothing is lost.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::Notify;

use crate::error::{Error, Result};
use crate::kafka::{client_config, ClientRole};
use crate::Config;

/// How long one DeleteRecords request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// (topic, partition) -> delete the records below this offset.
type Offsets = BTreeMap<(String, i32), i64>;

/// Deletes the committed records of repartition topics, off the processing
/// threads. Dropping it stops its thread (an unsent purge is left to the
/// next run: the records are only kept longer).
pub(crate) struct RecordPurger {
    repartition_topics: BTreeSet<String>,
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
}

struct Shared {
    /// Committed offsets not yet sent.
    pending: Mutex<Offsets>,
    /// Offsets were added to `pending`.
    work: Notify,
    /// The purger is dropped.
    stop: Notify,
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, Offsets> {
        // The map stays consistent whatever a panicking holder did: each
        // update is a single insert.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps the larger offset per partition: a later commit supersedes.
    fn merge(&self, offsets: impl IntoIterator<Item = ((String, i32), i64)>) {
        let mut pending = self.pending();
        for (tp, offset) in offsets {
            let at = pending.entry(tp).or_insert(offset);
            *at = (*at).max(offset);
        }
        drop(pending);
        self.work.notify_one();
    }
}

impl RecordPurger {
    /// Starts the purger thread for these repartition topics. `None` when
    /// there is nothing to purge: no repartition topic, or the embedded
    /// cluster, which answers no DeleteRecords request.
    pub(crate) fn start(config: &Config, repartition_topics: BTreeSet<String>) -> Result<Option<RecordPurger>> {
        if repartition_topics.is_empty() || crate::kafka::embedded::is_embedded(&config.kafka.bootstrap_servers) {
            return Ok(None);
        }
        // No statistics (a user's [kafka.common] interval would have the
        // default context log them).
        let admin: AdminClient<DefaultClientContext> = client_config(config, ClientRole::Admin)?
            .set("statistics.interval.ms", "0")
            .create()
            .map_err(|e| Error::kafka("creating the admin client that purges repartition topics", e))?;
        let shared =
            Arc::new(Shared { pending: Mutex::new(BTreeMap::new()), work: Notify::new(), stop: Notify::new() });
        let interval = config.repartition_purge_interval;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| Error::Internal(format!("starting the repartition purger's runtime: {e}")))?;
        let worker_shared = shared.clone();
        let worker = std::thread::Builder::new()
            .name("rivulet-purger".into())
            .spawn(move || runtime.block_on(run(admin, worker_shared, interval)))
            .map_err(|e| Error::Internal(format!("spawning the repartition purger thread: {e}")))?;
        Ok(Some(RecordPurger { repartition_topics, shared, worker: Some(worker) }))
    }

    /// The offsets among `consumed` (topic, partition, next offset) that
    /// are of repartition topics, to hand to [`committed`](Self::committed)
    /// once they are committed.
    pub(crate) fn purgeable<'a>(&self, consumed: impl Iterator<Item = (&'a str, i32, i64)>) -> Vec<(String, i32, i64)> {
        consumed
            .filter(|(topic, _, _)| self.repartition_topics.contains(*topic))
            .map(|(topic, partition, offset)| (topic.to_string(), partition, offset))
            .collect()
    }

    /// These offsets were committed: the records below them may go. Returns
    /// at once; the purger thread sends the request.
    pub(crate) fn committed(&self, offsets: Vec<(String, i32, i64)>) {
        if !offsets.is_empty() {
            self.shared.merge(offsets.into_iter().map(|(t, p, o)| ((t, p), o)));
        }
    }
}

impl Drop for RecordPurger {
    fn drop(&mut self) {
        self.shared.stop.notify_one();
        if let Some(worker) = self.worker.take() {
            if worker.join().is_err() {
                tracing::warn!("the repartition purger thread panicked; consumed repartition records are kept until the next run purges them");
            }
        }
    }
}

/// The purger thread: one DeleteRecords request at a time, at most one
/// per `interval`.
async fn run(admin: AdminClient<DefaultClientContext>, shared: Arc<Shared>, interval: Duration) {
    let opts = AdminOptions::new().request_timeout(Some(REQUEST_TIMEOUT)).operation_timeout(Some(REQUEST_TIMEOUT));
    let mut last_request: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = shared.stop.notified() => return,
            _ = shared.work.notified() => {}
        }
        if let Some(at) = last_request {
            tokio::select! {
                _ = shared.stop.notified() => return,
                _ = tokio::time::sleep_until((at + interval).into()) => {}
            }
        }
        let offsets = std::mem::take(&mut *shared.pending());
        if offsets.is_empty() {
            continue;
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in &offsets {
            if let Err(e) = tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset)) {
                tracing::warn!(topic = %topic, partition, offset, error = %e, "cannot request the deletion of consumed repartition records; they are kept");
            }
        }
        last_request = Some(Instant::now());
        let result = tokio::select! {
            _ = shared.stop.notified() => return,
            result = admin.delete_records(&tpl, &opts) => result,
        };
        let failed = failures(result, &offsets);
        if !failed.is_empty() {
            // Retried with the next request, unless a newer commit
            // superseded them by then.
            shared.merge(failed);
        }
    }
}

/// Logs the partitions whose purge failed and returns them.
fn failures(result: KafkaResult<TopicPartitionList>, sent: &Offsets) -> Offsets {
    const RETRY: &str = "deleting consumed records of a repartition topic failed; they are kept and the deletion is \
                         retried after the next repartition_purge_interval_ms (a topic deleted or the DeleteRecords \
                         permission missing on it keep it failing)";
    match result {
        Err(e) => {
            let partitions: Vec<String> = sent.iter().map(|((t, p), o)| format!("{t}[{p}] below {o}")).collect();
            tracing::warn!(partitions = %partitions.join(", "), error = %e, "{}", RETRY);
            sent.clone()
        }
        Ok(answer) => {
            let mut failed = Offsets::new();
            for e in answer.elements() {
                if let Err(error) = e.error() {
                    let tp = (e.topic().to_string(), e.partition());
                    let Some(&offset) = sent.get(&tp) else { continue };
                    tracing::warn!(topic = %tp.0, partition = tp.1, offset, error = %error, "{}", RETRY);
                    failed.insert(tp, offset);
                }
            }
            failed
        }
    }
}
