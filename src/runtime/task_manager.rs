//! The task manager: the tasks of one processing thread, their creation on
//! assignment and closing on revocation, bad-record policies, and the
//! commit cycle. It also feeds most of the metrics (see `crate::metrics`)
//! and the thread's phase for readiness.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::Producer;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::config::{ErrorPolicy, ProcessingGuarantee};
use crate::error::{Error, Result};
use crate::metrics::{CommitResult, Metrics, SubtopologyMetrics};
use crate::record::{Headers, SourceOffset};
use crate::runtime::collector::DeliveryFailure;
use crate::runtime::purge::RecordPurger;
use crate::runtime::retry::{abort_is_retriable, retrying, retrying_when, RETRY_FOR};
use crate::runtime::stats::{RuntimeStats, ThreadPhase};
use crate::runtime::task::{RestorePartition, Task, RESTORE_BATCH};
use crate::runtime::{wall_clock_ms, RecordCollector, TaskId};
use crate::state::StateResources;
use crate::topology::{changelog_topic, ProcessError, TimeKind, Topology};
use crate::Config;

/// How long one flush waits for outputs to be delivered; a flush that
/// times out is retried within [`RETRY_FOR`].
const FLUSH_TIMEOUT: Duration = Duration::from_secs(20);
/// How often the local stores are flushed to disk: the most a `kill -9`
/// makes a restart replay from the changelogs (RocksDB runs without its
/// WAL; the changelog is the durable log).
const STORE_FLUSH_INTERVAL: Duration = Duration::from_secs(10);
/// How long a transaction call may take.
const TXN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one attempt to abort waits for the purged records' delivery
/// reports, which are served between attempts.
const ABORT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the store sizes are measured for the metrics.
const STORE_SIZE_INTERVAL: Duration = Duration::from_secs(10);

/// How a transactional step failed.
enum TxnFailure {
    /// Abort, rewind, go on.
    Abort(String),
    /// Fenced or fatal: drop the tasks and rejoin.
    Fatal(String),
    /// Stop with this error.
    Stop(Error),
}

fn classify(e: KafkaError, what: &str) -> TxnFailure {
    if let KafkaError::Transaction(t) = &e {
        if t.is_fatal() {
            return TxnFailure::Fatal(format!("{what}: {e}"));
        }
        if t.txn_requires_abort() || t.is_retriable() {
            return TxnFailure::Abort(format!("{what}: {e}"));
        }
    }
    if is_migration(&e) {
        return TxnFailure::Fatal(format!("{what}: {e}"));
    }
    TxnFailure::Abort(format!("{what}: {e}"))
}

fn adjust(counter: &std::sync::atomic::AtomicU64, before: u64, now: u64) {
    use std::sync::atomic::Ordering::Relaxed;
    if now >= before {
        counter.fetch_add(now - before, Relaxed);
    } else {
        counter.fetch_sub(before - now, Relaxed);
    }
}

/// Errors that mean another member owns the partitions now.
fn is_migration(e: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::ProducerFenced
                | C::InvalidProducerEpoch
                | C::FencedInstanceId
                | C::IllegalGeneration
                | C::UnknownMemberId
                | C::RebalanceInProgress
        )
    )
}

/// What every thread of one application shares, read-only.
pub(crate) struct AppContext {
    pub(crate) config: Config,
    pub(crate) topology: Arc<Topology>,
    pub(crate) stats: Arc<RuntimeStats>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) resources: StateResources,
    /// Resolved source topic name -> sub-topology.
    pub(crate) topic_to_subtopology: HashMap<String, usize>,
    pub(crate) dead_letter_topic: String,
    /// Deletes repartition records once their reader committed past them;
    /// `None` without repartition topics (or on the embedded cluster).
    pub(crate) purger: Option<RecordPurger>,
}

pub(crate) struct TaskManager {
    app: Arc<AppContext>,
    /// The processing thread's index.
    thread: usize,
    collector: RecordCollector,
    tasks: BTreeMap<TaskId, Task>,
    /// Tasks replaying their changelogs; their source partitions are paused.
    restoring: BTreeMap<TaskId, Restoring>,
    /// Assigned but not yet created (created on the processing thread,
    /// outside the rebalance callback).
    pending: BTreeSet<TaskId>,
    /// Interned topic names, so records do not allocate them, with their
    /// consumed-records counters.
    /// And the sub-topology reading each.
    topics: HashMap<String, (Arc<str>, prometheus::IntCounter, usize)>,
    /// Counters per sub-topology, indexed by its id.
    subtopology_metrics: Vec<SubtopologyMetrics>,
    last_commit: Instant,
    last_flush: Instant,
    last_store_sizes: Instant,
    /// Whether the thread has its partitions (assigned, not revoked since).
    assigned: bool,
    /// This thread's (running, restoring) tasks as last added to the stats.
    reported_counts: (u64, u64),
    /// The thread phase as last reported to the stats.
    reported_phase: Option<ThreadPhase>,
    /// Records since the last one whose processing time was observed.
    processed_since_sample: u32,
    /// An error raised inside a rebalance callback, surfaced after `poll`.
    pub(crate) failed: Option<Error>,
    /// The restore consumer's assignment must be redone.
    restorer_changed: bool,
    /// Resolved changelog topic -> the sub-topology owning its store.
    changelog_owner: HashMap<String, usize>,
    /// Resolved changelog topic -> its store's name.
    changelog_store: HashMap<String, String>,
}

/// One record in this many has its processing time observed in
/// `rivulet_processing_latency_seconds`.
const LATENCY_SAMPLE: u32 = 16;

/// A task replaying its changelogs.
struct Restoring {
    task: Task,
    parts: Vec<RestorePartition>,
    started: Instant,
    restored: u64,
    /// Records restored per changelog topic (of this task's partition).
    restored_by_topic: HashMap<String, u64>,
}

impl TaskManager {
    pub(crate) fn new(app: Arc<AppContext>, thread: usize, collector: RecordCollector) -> Self {
        let topics = app
            .topic_to_subtopology
            .iter()
            .map(|(t, &sub)| (t.clone(), (Arc::<str>::from(t.as_str()), app.metrics.consumed(t), sub)))
            .collect();
        let application_id = app.config.application_id.as_str();
        let changelog_owner = app
            .topology
            .subtopologies
            .iter()
            .flat_map(|st| st.stores.iter().map(move |s| (changelog_topic(s).resolve(application_id), st.id)))
            .collect();
        let changelog_store = app
            .topology
            .subtopologies
            .iter()
            .flat_map(|st| st.stores.iter().map(|s| (changelog_topic(s).resolve(application_id), s.clone())))
            .collect();
        let subtopology_metrics = (0..app.topology.subtopologies.len()).map(|id| app.metrics.subtopology(id)).collect();
        app.stats.set_phase(thread, ThreadPhase::Joining);
        TaskManager {
            app,
            thread,
            collector,
            tasks: BTreeMap::new(),
            restoring: BTreeMap::new(),
            pending: BTreeSet::new(),
            topics,
            subtopology_metrics,
            last_commit: Instant::now(),
            last_flush: Instant::now(),
            last_store_sizes: Instant::now(),
            assigned: false,
            reported_counts: (0, 0),
            reported_phase: None,
            processed_since_sample: 0,
            failed: None,
            restorer_changed: false,
            changelog_owner,
            changelog_store,
        }
    }

    fn task_ids(&self, tpl: &TopicPartitionList) -> BTreeSet<TaskId> {
        tpl.elements()
            .iter()
            .filter_map(|e| {
                self.app
                    .topic_to_subtopology
                    .get(e.topic())
                    .map(|&subtopology| TaskId { subtopology, partition: e.partition() })
            })
            .collect()
    }

    /// Partitions were assigned: their tasks are created before the next record.
    pub(crate) fn on_assigned(&mut self, tpl: &TopicPartitionList) {
        self.app.stats.assign(tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())));
        let ids = self.task_ids(tpl);
        tracing::info!(tasks = ?ids.iter().map(ToString::to_string).collect::<Vec<_>>(), "partitions assigned");
        self.app.metrics.rebalances.inc();
        self.pending.extend(ids.into_iter().filter(|id| !self.tasks.contains_key(id)));
        self.assigned = true;
        self.update_task_counts();
    }

    /// Partitions are being revoked: commit everything, then close the
    /// revoked tasks (keeping their local state on disk).
    pub(crate) fn on_revoked<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, tpl: &TopicPartitionList) {
        let ids = self.task_ids(tpl);
        tracing::info!(tasks = ?ids.iter().map(ToString::to_string).collect::<Vec<_>>(), "partitions revoked");
        self.app.stats.revoke(tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())));
        if let Err(e) = self.commit(consumer) {
            tracing::error!(error = %e, "commit before revocation failed; the revoked tasks' uncommitted work is dropped and will be reprocessed by their new owner");
            for task in self.tasks.values_mut() {
                task.abort();
            }
            self.failed.get_or_insert(e);
        }
        for id in ids {
            self.pending.remove(&id);
            if let Some(task) = self.tasks.remove(&id) {
                task.close();
            }
            // A partly restored store keeps what it applied, with its offset.
            if let Some(r) = self.restoring.remove(&id) {
                for p in &r.parts {
                    if let Some(store) = self.changelog_store.get(&p.topic) {
                        self.app.metrics.forget_restore(store, p.partition);
                    }
                }
                r.task.close();
                self.restorer_changed = true;
            }
        }
        // Eager rebalancing: every revocation is followed by a new assignment.
        self.assigned = false;
        self.update_task_counts();
    }

    /// The source partitions of a task.
    fn source_partitions(&self, id: TaskId) -> Result<TopicPartitionList> {
        let mut tpl = TopicPartitionList::new();
        for (topic, &sub) in &self.app.topic_to_subtopology {
            if sub == id.subtopology {
                tpl.add_partition(topic, id.partition);
            }
        }
        Ok(tpl)
    }

    /// Creates the tasks assigned since the last call. A task with nothing
    /// to replay starts at once; the others pause their source partitions
    /// and restore step by step in [`restore_step`](Self::restore_step),
    /// while the consumer keeps polling (and so stays in the group).
    pub(crate) fn create_pending<C: ConsumerContext, R: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        restorer: &BaseConsumer<R>,
    ) -> Result<()> {
        while let Some(id) = self.pending.pop_first() {
            let task =
                Task::new(id, &self.app.topology, &self.app.config, &self.app.resources, self.collector.clone())?;
            let parts = task.restore_plan(restorer)?;
            if parts.is_empty() {
                self.start_task(task, 0, Instant::now())?;
                continue;
            }
            consumer.pause(&self.source_partitions(id)?).map_err(|e| Error::kafka(format!("pausing task {id}"), e))?;
            let restoring =
                Restoring { task, parts, started: Instant::now(), restored: 0, restored_by_topic: HashMap::new() };
            self.restoring.insert(id, restoring);
            self.restorer_changed = true;
        }
        self.update_task_counts();
        Ok(())
    }

    fn start_task(&mut self, mut task: Task, restored: u64, started: Instant) -> Result<()> {
        task.init()?;
        let id = task.id;
        tracing::info!(task = %id, restored, elapsed_ms = started.elapsed().as_millis() as u64, "task running");
        self.tasks.insert(id, task);
        Ok(())
    }

    /// Adds this thread's change in task counts to the instance's counters,
    /// which all threads share, and updates the thread's phase.
    fn update_task_counts(&mut self) {
        let now = (self.tasks.len() as u64, self.restoring.len() as u64);
        let phase = if !self.assigned {
            ThreadPhase::Joining
        } else if self.restoring.is_empty() && self.pending.is_empty() {
            ThreadPhase::Running
        } else {
            ThreadPhase::Restoring
        };
        // Called on every round of the loop: nothing to do unless a count or
        // the phase changed.
        if self.reported_phase == Some(phase) && self.reported_counts == now {
            return;
        }
        self.reported_phase = Some(phase);
        let (before, stats) = (self.reported_counts, &self.app.stats);
        adjust(&stats.tasks_running, before.0, now.0);
        adjust(&stats.tasks_restoring, before.1, now.1);
        let delta = |now: u64, before: u64| now as i64 - before as i64;
        self.app.metrics.add_tasks(delta(now.0, before.0), delta(now.1, before.1));
        self.reported_counts = now;
        stats.set_phase(self.thread, phase);
    }

    /// Whether some task is still restoring.
    pub(crate) fn is_restoring(&self) -> bool {
        !self.restoring.is_empty()
    }

    /// Reads one round of changelog records for the restoring tasks and
    /// starts those that reached their end offsets.
    pub(crate) fn restore_step<C: ConsumerContext, R: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        restorer: &BaseConsumer<R>,
    ) -> Result<()> {
        if self.restoring.is_empty() {
            return Ok(());
        }
        if std::mem::take(&mut self.restorer_changed) {
            let mut tpl = TopicPartitionList::new();
            for r in self.restoring.values() {
                for p in &r.parts {
                    tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.next))
                        .map_err(|e| Error::kafka("assigning the restore consumer", e))?;
                }
            }
            restorer.assign(&tpl).map_err(|e| Error::kafka("assigning the restore consumer", e))?;
        }
        let stats = self.app.stats.clone();
        let deadline = Instant::now() + Duration::from_millis(100);
        let mut timeout = Duration::from_millis(50);
        while Instant::now() < deadline {
            let Some(polled) = restorer.poll(timeout) else { break };
            timeout = Duration::ZERO;
            let m = match polled {
                Ok(m) => m,
                Err(rdkafka::error::KafkaError::PartitionEOF(_)) => continue,
                Err(e) => return Err(Error::kafka("reading changelogs to restore", e)),
            };
            let Some(&subtopology) = self.store_owner(m.topic()) else { continue };
            let id = TaskId { subtopology, partition: m.partition() };
            let Some(r) = self.restoring.get_mut(&id) else { continue };
            let Some(part) = r.parts.iter_mut().find(|p| p.topic == m.topic()) else { continue };
            if m.offset() < part.next {
                continue;
            }
            part.next = m.offset() + 1;
            if let Some(k) = m.key() {
                part.batch.push((k.to_vec(), m.payload().map(<[u8]>::to_vec)));
            }
            if part.batch.len() >= RESTORE_BATCH {
                let n = r.task.apply_restored(part, &stats)?;
                r.restored += n;
                *r.restored_by_topic.entry(part.topic.clone()).or_default() += n;
            }
        }
        // Partitions whose position reached the end offset are done (the
        // position also passes transaction markers and compacted gaps).
        let positions = restorer.position().map_err(|e| Error::kafka("reading restore positions", e))?;
        let mut finished = Vec::new();
        for (id, r) in self.restoring.iter_mut() {
            let mut parts = std::mem::take(&mut r.parts);
            for p in &mut parts {
                if let Some(Offset::Offset(pos)) = positions.find_partition(&p.topic, p.partition).map(|e| e.offset()) {
                    p.next = p.next.max(pos);
                }
                if p.next >= p.end {
                    let n = r.task.apply_restored(p, &stats)?;
                    r.restored += n;
                    *r.restored_by_topic.entry(p.topic.clone()).or_default() += n;
                }
                if let Some(store) = self.changelog_store.get(&p.topic) {
                    let restored = r.restored_by_topic.get(&p.topic).copied().unwrap_or(0);
                    self.app.metrics.restore_progress(store, p.partition, p.end - p.next, restored);
                }
            }
            parts.retain(|p| p.next < p.end);
            if parts.is_empty() {
                finished.push(*id);
            }
            r.parts = parts;
        }
        for id in finished {
            if let Some(r) = self.restoring.remove(&id) {
                self.start_task(r.task, r.restored, r.started)?;
                consumer
                    .resume(&self.source_partitions(id)?)
                    .map_err(|e| Error::kafka(format!("resuming task {id}"), e))?;
                self.restorer_changed = true;
            }
        }
        if self.restoring.is_empty() {
            restorer.unassign().map_err(|e| Error::kafka("unassigning the restore consumer", e))?;
            self.restorer_changed = false;
        }
        self.update_task_counts();
        Ok(())
    }

    /// The sub-topology whose store writes this changelog topic.
    fn store_owner(&self, changelog: &str) -> Option<&usize> {
        self.changelog_owner.get(changelog)
    }

    /// Runs one polled record through its task, applying the bad-record
    /// policies to a failure.
    pub(crate) fn process<C: ConsumerContext>(
        &mut self,
        msg: &BorrowedMessage<'_>,
        consumer: &BaseConsumer<C>,
    ) -> Result<()> {
        let Some((topic, consumed, subtopology)) = self.topics.get(msg.topic()) else {
            return Err(Error::Internal(format!("received a record of topic {} that no source reads", msg.topic())));
        };
        let subtopology = *subtopology;
        let id = TaskId { subtopology, partition: msg.partition() };
        if self.restoring.contains_key(&id) || self.pending.contains(&id) {
            // Fetched before the partition was paused: read it again once
            // the task has restored.
            consumer
                .seek(msg.topic(), msg.partition(), Offset::Offset(msg.offset()), Duration::from_secs(10))
                .map_err(|e| {
                    Error::kafka(format!("rewinding {}[{}] for task {id}", msg.topic(), msg.partition()), e)
                })?;
            return Ok(());
        }
        let Some(task) = self.tasks.get_mut(&id) else {
            return Err(Error::Internal(format!("received a record for task {id}, which this thread does not own")));
        };
        consumed.inc();
        // Watermark markers in repartition topics are consumed, not
        // processed records.
        let marker = crate::runtime::task::is_watermark_marker(msg);
        if !marker {
            RuntimeStats::add(&self.app.stats.records_processed, 1);
        }
        // One record in LATENCY_SAMPLE has its processing time observed:
        // two clock reads per record were a tenth of the thread's time.
        self.processed_since_sample += 1;
        let sampled = !marker && self.processed_since_sample >= LATENCY_SAMPLE;
        let started = sampled.then(|| {
            self.processed_since_sample = 0;
            Instant::now()
        });
        let result = task.process(msg, topic);
        if let Some(started) = started {
            self.app.metrics.processing_latency.observe(started.elapsed().as_secs_f64());
        }
        if let Some(m) = self.subtopology_metrics.get(subtopology) {
            if !marker {
                m.processed.inc();
            }
            let late = task.take_late_records();
            if late > 0 {
                m.late.inc_by(late);
            }
        }
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.is_record_error() => {
                let source = task.source().cloned();
                let original =
                    Original { key: msg.key(), value: msg.payload(), headers: crate::runtime::task::headers_of(msg) };
                handle_bad_record(&self.app, &self.collector, e, source.as_ref(), Some(original))
            }
            Err(e) => Err(Error::record(task.source(), e)),
        }
    }

    /// Fires wall-clock callbacks that are due, then lets each task tell
    /// its repartition topics how far its time has come (after every round
    /// of polled records, so windows downstream close as soon as the data
    /// says so, not a commit later).
    pub(crate) fn punctuate(&mut self) -> Result<()> {
        let now = wall_clock_ms();
        for task in self.tasks.values_mut() {
            task.fire_timers(TimeKind::WallClock, now).map_err(Error::from)?;
            task.send_watermark_markers(now).map_err(Error::from)?;
        }
        Ok(())
    }

    /// Commits when `commit_interval_ms` has passed since the last commit.
    pub(crate) fn maybe_commit<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) -> Result<()> {
        if self.last_commit.elapsed() >= self.app.config.commit_interval {
            self.commit(consumer)?;
            // Measured from the end of the commit: a commit slower than the
            // interval must not leave the next cycle no time to process.
            self.last_commit = Instant::now();
            if self.last_flush.elapsed() >= STORE_FLUSH_INTERVAL {
                for task in self.tasks.values() {
                    task.flush_stores()?;
                }
                self.last_flush = Instant::now();
            }
        }
        if self.last_store_sizes.elapsed() >= STORE_SIZE_INTERVAL {
            self.report_store_sizes()?;
            self.last_store_sizes = Instant::now();
        }
        Ok(())
    }

    /// Sets this thread's part of `rivulet_store_size_bytes`.
    fn report_store_sizes(&self) -> Result<()> {
        let mut sizes: HashMap<String, u64> = HashMap::new();
        for task in self.tasks.values() {
            for (store, size) in task.store_sizes() {
                *sizes.entry(store.to_string()).or_default() += size?;
            }
        }
        self.app.metrics.set_store_sizes(self.thread, sizes);
        Ok(())
    }

    /// The commit cycle. Under at-least-once:
    ///
    /// 1. for every task, the latest value per key in its write buffer goes
    ///    to the store's changelog (one record per key per interval);
    /// 2. the producer is flushed: outputs, repartition and changelog
    ///    records are all delivered; failed deliveries go to the
    ///    production-error policy, and under `fail` the cycle stops here, so
    ///    no offset is committed past an undelivered output;
    /// 3. the consumed offsets are committed;
    /// 4. only then each task writes its drained buffer to its local stores
    ///    in one batch, with the changelog offset it corresponds to;
    /// 5. the buffers are cleared.
    ///
    /// Under exactly-once, steps 1 and 2 happen inside the thread's open
    /// transaction, step 3 sends the offsets with the consumer's group
    /// metadata into the transaction and commits it, and an abortable
    /// failure aborts it, rewinds the consumer and drops the buffers
    /// ([`commit_exactly_once`](Self::commit_exactly_once)).
    ///
    /// After a successful cycle the committed offsets of repartition topics
    /// go to the [`RecordPurger`], which deletes the records below them.
    pub(crate) fn commit<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) -> Result<()> {
        self.last_commit = Instant::now();
        // Taken now: a successful cycle clears the tasks' consumed offsets.
        let purgeable =
            self.app.purger.as_ref().map(|p| p.purgeable(self.tasks.values().flat_map(Task::consumed_offsets)));
        let result = if self.app.config.processing_guarantee == ProcessingGuarantee::ExactlyOnce {
            self.commit_exactly_once(consumer)
        } else {
            self.commit_at_least_once(consumer).map(|()| Some(CommitResult::Committed))
        };
        let took = self.last_commit.elapsed();
        match result {
            Ok(Some(outcome)) => {
                self.app.metrics.commit(outcome, took);
                if let (CommitResult::Committed, Some(purger), Some(offsets)) = (outcome, &self.app.purger, purgeable) {
                    purger.committed(offsets);
                }
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => {
                self.app.metrics.commit(CommitResult::Failed, took);
                Err(e)
            }
        }
    }

    /// The at-least-once cycle, steps 1 to 5 of [`commit`](Self::commit).
    fn commit_at_least_once<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) -> Result<()> {
        // 1.
        for task in self.tasks.values_mut() {
            task.prepare_commit().map_err(|e| Error::record(None, e))?;
        }
        // 2.
        self.flush_outputs()?;
        // 3.
        let tpl = self.consumed_offsets()?;
        if tpl.count() > 0 {
            retrying("committing consumed offsets", RETRY_FOR, || consumer.commit(&tpl, CommitMode::Sync)).map_err(
                |e| {
                    if is_migration(&e) {
                        Error::TaskMigrated(format!("committing offsets: {e}"))
                    } else {
                        Error::kafka("committing consumed offsets", e)
                    }
                },
            )?;
        }
        // 4. and 5.
        for task in self.tasks.values_mut() {
            task.complete_commit()?;
        }
        RuntimeStats::add(&self.app.stats.commits, 1);
        Ok(())
    }

    fn consumed_offsets(&self) -> Result<TopicPartitionList> {
        let mut tpl = TopicPartitionList::new();
        for task in self.tasks.values() {
            for (topic, partition, offset) in task.consumed_offsets() {
                tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
                    .map_err(|e| Error::kafka("building the offsets to commit", e))?;
            }
        }
        Ok(tpl)
    }

    /// The exactly-once commit cycle, one Kafka transaction:
    ///
    /// 1. changelog records of every task's write buffer are sent (inside
    ///    the transaction the cycle's outputs already went to);
    /// 2. the producer is flushed; a failed delivery makes the transaction
    ///    abortable;
    /// 3. the consumed offsets are sent to the transaction with the
    ///    consumer's group metadata (so a zombie of an older generation is
    ///    fenced) and the transaction is committed;
    /// 4. only then the drained buffers are written to the local stores with
    ///    their changelog offsets;
    /// 5. the buffers are cleared.
    ///
    /// An abortable error aborts the transaction, drops the buffers and
    /// rewinds the consumer to the last committed offsets: the records are
    /// processed again, and the local stores never saw the aborted writes.
    /// A fatal one (fenced) is `Error::TaskMigrated`. Returns how the cycle
    /// ended, `None` when there was nothing to commit.
    fn commit_exactly_once<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) -> Result<Option<CommitResult>> {
        let result = (|| -> std::result::Result<bool, TxnFailure> {
            // 1.
            for task in self.tasks.values_mut() {
                task.prepare_commit().map_err(|e| TxnFailure::Stop(Error::record(None, e)))?;
            }
            let offsets = self.consumed_offsets().map_err(TxnFailure::Stop)?;
            if !self.collector.in_transaction() && offsets.count() == 0 {
                return Ok(false);
            }
            self.collector.ensure_transaction().map_err(|e| classify(e, "beginning a transaction"))?;
            // 2.
            retrying("delivering outputs", RETRY_FOR, || self.collector.flush(FLUSH_TIMEOUT))
                .map_err(|e| classify(e, "delivering outputs"))?;
            let failures = self.collector.take_failures();
            if let Some(f) = failures.first() {
                return Err(TxnFailure::Abort(format!("delivery to {} failed: {}", f.topic, f.reason)));
            }
            // 3.
            let producer = self.collector.producer();
            if offsets.count() > 0 {
                let metadata = consumer
                    .group_metadata()
                    .ok_or_else(|| TxnFailure::Abort("the consumer has no group metadata yet".into()))?;
                retrying("sending offsets to the transaction", RETRY_FOR, || {
                    producer.send_offsets_to_transaction(&offsets, &metadata, TXN_TIMEOUT)
                })
                .map_err(|e| classify(e, "sending offsets to the transaction"))?;
            }
            retrying("committing the transaction", RETRY_FOR, || producer.commit_transaction(TXN_TIMEOUT))
                .map_err(|e| classify(e, "committing the transaction"))?;
            self.collector.transaction_ended();
            Ok(true)
        })();
        match result {
            Ok(false) => Ok(None),
            Ok(true) => {
                // 4. and 5.
                for task in self.tasks.values_mut() {
                    task.complete_commit()?;
                }
                RuntimeStats::add(&self.app.stats.commits, 1);
                Ok(Some(CommitResult::Committed))
            }
            Err(TxnFailure::Abort(why)) => {
                tracing::warn!(reason = %why, "aborting the transaction; the tasks rewind to their last committed offsets");
                self.abort_transaction(consumer).map(|()| Some(CommitResult::Aborted))
            }
            Err(TxnFailure::Fatal(why)) => Err(Error::TaskMigrated(why)),
            Err(TxnFailure::Stop(e)) => {
                if let Err(abort) = self.abort_transaction(consumer) {
                    tracing::warn!(error = %abort, "aborting the transaction after a failed commit also failed");
                }
                Err(e)
            }
        }
    }

    /// Aborts the open transaction, drops every task's uncommitted state and
    /// rewinds their partitions to the group's committed offsets.
    fn abort_transaction<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) -> Result<()> {
        if self.collector.in_transaction() {
            let producer = self.collector.producer();
            // Aborting purges the transaction's queued records and waits
            // until their delivery reports are served, which only polling
            // does: serve them before each attempt.
            let abort = || {
                producer.poll(Duration::from_millis(100));
                producer.abort_transaction(ABORT_ATTEMPT_TIMEOUT)
            };
            match retrying_when(abort_is_retriable, "aborting the transaction", RETRY_FOR, abort) {
                Ok(()) => {
                    // Reports of the purged records are not production
                    // failures: the records are reprocessed.
                    let _ = self.collector.take_failures();
                }
                Err(e) => match classify(e, "aborting the transaction") {
                    TxnFailure::Fatal(why) => return Err(Error::TaskMigrated(why)),
                    TxnFailure::Abort(why) | TxnFailure::Stop(Error::Internal(why)) => {
                        return Err(Error::Internal(format!("the transaction could not be aborted: {why}")))
                    }
                    TxnFailure::Stop(e) => return Err(e),
                },
            }
            self.collector.transaction_ended();
            self.app.metrics.transaction_aborts.inc();
        }
        let mut tpl = TopicPartitionList::new();
        for task in self.tasks.values() {
            for (topic, partition) in task.consumed_partitions() {
                tpl.add_partition(topic, partition);
            }
        }
        for task in self.tasks.values_mut() {
            task.abort();
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        let committed = retrying("reading committed offsets", RETRY_FOR, || {
            consumer.committed_offsets(tpl.clone(), Duration::from_secs(30))
        })
        .map_err(|e| Error::kafka("reading committed offsets to rewind", e))?;
        for e in committed.elements() {
            let to = match e.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                _ => Offset::Beginning,
            };
            consumer
                .seek(e.topic(), e.partition(), to, Duration::from_secs(10))
                .map_err(|err| Error::kafka(format!("rewinding {}[{}]", e.topic(), e.partition()), err))?;
        }
        Ok(())
    }

    fn flush_outputs(&mut self) -> Result<()> {
        loop {
            retrying("delivering outputs", RETRY_FOR, || self.collector.flush(FLUSH_TIMEOUT))
                .map_err(|e| Error::kafka(format!("delivering outputs within {}s", RETRY_FOR.as_secs()), e))?;
            let failures = self.collector.take_failures();
            if failures.is_empty() {
                return Ok(());
            }
            // Dead-lettered failures are new outputs: flush again.
            for f in failures {
                let DeliveryFailure { topic, key, value, reason } = f;
                let error = ProcessError::Produce { topic, reason, key: key.clone(), value: value.clone() };
                let original = Original { key: key.as_deref(), value: value.as_deref(), headers: Headers::new() };
                handle_bad_record(&self.app, &self.collector, error, None, Some(original))?;
            }
        }
    }

    /// Commits and closes every task (shutdown).
    pub(crate) fn close_all<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) -> Result<()> {
        let result = self.commit(consumer);
        self.app.metrics.set_store_sizes(self.thread, HashMap::new());
        for (_, task) in std::mem::take(&mut self.tasks) {
            task.close();
        }
        for (_, r) in std::mem::take(&mut self.restoring) {
            r.task.close();
        }
        self.update_task_counts();
        result
    }

    /// Drops uncommitted work and closes every task (after a failure).
    pub(crate) fn abort_all(&mut self) {
        self.app.metrics.set_store_sizes(self.thread, HashMap::new());
        for (_, mut task) in std::mem::take(&mut self.tasks) {
            task.abort();
            task.close();
        }
        for (_, r) in std::mem::take(&mut self.restoring) {
            r.task.close();
        }
        self.update_task_counts();
    }

    pub(crate) fn poll_deliveries(&self) {
        self.collector.poll();
    }
}

/// The bytes of the record that failed, for the dead-letter topic.
pub(crate) struct Original<'a> {
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    headers: Headers,
}

/// Applies the policy for `error`'s kind: fail, skip (log and count), or
/// dead-letter (the original bytes plus headers describing the error).
fn handle_bad_record(
    app: &AppContext,
    collector: &RecordCollector,
    error: ProcessError,
    source: Option<&SourceOffset>,
    original: Option<Original<'_>>,
) -> Result<()> {
    let errors = &app.config.errors;
    let (kind, policy) = match &error {
        ProcessError::Deserialize { .. } => ("deserialization", errors.deserialization),
        ProcessError::Produce { .. } => ("production", errors.production),
        _ => ("processing", errors.processing),
    };
    let at = source.map(ToString::to_string).unwrap_or_else(|| "an output record".into());
    match policy {
        ErrorPolicy::Fail => {
            app.metrics.bad_record(kind, "fail");
            Err(Error::record(source, error))
        }
        ErrorPolicy::Skip => {
            app.metrics.bad_record(kind, "skip");
            tracing::warn!(kind, record = %at, error = %error, "skipping a bad record (errors.{kind} = \"skip\")");
            RuntimeStats::add(&app.stats.records_skipped, 1);
            Ok(())
        }
        ErrorPolicy::DeadLetter => {
            let (key, value, mut headers) = match original {
                Some(o) => (o.key, o.value, o.headers),
                None => (None, None, Headers::new()),
            };
            headers.push(("rivulet.error.kind".into(), Some(kind.as_bytes().to_vec())));
            headers.push(("rivulet.error.message".into(), Some(error.to_string().into_bytes())));
            if let Some(s) = source {
                headers.push(("rivulet.source.topic".into(), Some(s.topic.as_bytes().to_vec())));
                headers.push(("rivulet.source.partition".into(), Some(s.partition.to_string().into_bytes())));
                headers.push(("rivulet.source.offset".into(), Some(s.offset.to_string().into_bytes())));
            }
            if let ProcessError::Produce { topic, .. } = &error {
                headers.push(("rivulet.target.topic".into(), Some(topic.as_bytes().to_vec())));
            }
            tracing::warn!(kind, record = %at, error = %error, topic = %app.dead_letter_topic, "writing a bad record to the dead-letter topic");
            collector
                .send_dead_letter(&app.dead_letter_topic, key, value, &headers)
                .map_err(|e| Error::record(source, e))?;
            RuntimeStats::add(&app.stats.records_dead_lettered, 1);
            app.metrics.bad_record(kind, "dead_letter");
            app.metrics.dead_letter_records.inc();
            Ok(())
        }
    }
}
