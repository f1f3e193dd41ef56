//! The task manager: the tasks of one processing thread, their creation on
//! assignment (restoring through the [`ChangelogReader`]) and closing on
//! revocation, routing polled records to them (bad records to their
//! policy, `runtime::policy`), and the commit (`commit.rs`, one numbered
//! sequence). It also feeds most of the metrics (see `crate::metrics`) and
//! the thread's phase for readiness.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::error::{Error, Result};
use crate::metrics::SubtopologyMetrics;
use crate::processor::{wall_clock_ms, TaskId};
use crate::processor::{ProcessError, TimeKind};
use crate::runtime::policy::{handle_bad_record, Original};
use crate::runtime::restore::ChangelogReader;
use crate::runtime::stats::{RuntimeStats, ThreadPhase};
use crate::runtime::task::Task;
use crate::runtime::AppContext;
use crate::runtime::RecordCollector;

// The commit sequence, in a file of its own.
#[path = "commit.rs"]
mod commit;
// Bounded runs: ending tasks at the end offsets.
#[path = "bounded.rs"]
pub(crate) mod bounded;
// The streams group protocol: applying the broker's task assignment.
#[path = "reconcile.rs"]
pub(crate) mod reconcile;

/// How often the local stores are flushed to disk: the most a `kill -9`
/// makes a restart replay from the changelogs (RocksDB runs without its
/// WAL; the changelog is the durable log).
const STORE_FLUSH_INTERVAL: Duration = Duration::from_secs(10);
/// How often the store sizes are measured for the metrics.
const STORE_SIZE_INTERVAL: Duration = Duration::from_secs(10);

fn adjust(counter: &std::sync::atomic::AtomicU64, before: u64, now: u64) {
    use std::sync::atomic::Ordering::Relaxed;
    if now >= before {
        counter.fetch_add(now - before, Relaxed);
    } else {
        counter.fetch_sub(before - now, Relaxed);
    }
}

pub(crate) struct TaskManager {
    pub(super) app: Arc<AppContext>,
    /// The processing thread's index.
    thread: usize,
    collector: RecordCollector,
    tasks: BTreeMap<TaskId, Task>,
    /// Tasks replaying their changelogs; their source partitions are paused.
    restoring: ChangelogReader,
    /// Assigned but not yet created (created on the processing thread,
    /// outside the rebalance callback).
    pending: BTreeSet<TaskId>,
    /// Pending tasks that have some of their source partitions (paused)
    /// and wait for the others.
    incomplete: BTreeSet<TaskId>,
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
    /// This thread's part of a bounded run.
    bounded: bounded::Bounded,
    /// Standby tasks (`group_protocol = "streams"`).
    standbys: crate::runtime::standby::Standbys,
    /// The connection at-least-once commits go through under the streams
    /// protocol (opened at the first commit).
    offsets_client: Option<crate::kafka::streams_group::StreamsGroupClient>,
}

impl Drop for TaskManager {
    /// However the thread's consumer ends (closed, failed, or replaced after
    /// its tasks migrated), its partitions are no longer claimed for it in
    /// the instances directory.
    fn drop(&mut self) {
        self.app.stats.release(self.thread);
    }
}

/// One record in this many has its processing time observed in
/// `rivulet_processing_latency_seconds`.
const LATENCY_SAMPLE: u32 = 16;

/// The partitions the consumer holds now.
fn assigned_partitions<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> HashSet<(String, i32)> {
    let assignment = consumer.assignment().unwrap_or_default();
    assignment.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect()
}

fn partition_list(partitions: &[(String, i32)]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for (topic, partition) in partitions {
        tpl.add_partition(topic, *partition);
    }
    tpl
}

fn pause<C: ConsumerContext>(consumer: &BaseConsumer<C>, partitions: &[(String, i32)], id: TaskId) -> Result<()> {
    consumer.pause(&partition_list(partitions)).map_err(|e| Error::kafka(format!("pausing task {id}"), e))
}

fn resume<C: ConsumerContext>(consumer: &BaseConsumer<C>, partitions: &[(String, i32)], id: TaskId) -> Result<()> {
    consumer.resume(&partition_list(partitions)).map_err(|e| Error::kafka(format!("resuming task {id}"), e))
}

impl TaskManager {
    /// The error naming the missing permission when `e` is an
    /// authorization error (see [`AppContext::denied`]).
    pub(crate) fn denied(&self, e: &KafkaError, doing: &str, topic_operation: &str) -> Option<Error> {
        self.app.denied(e, doing, topic_operation, self.thread)
    }

    /// A restore consumer's error, naming the missing permission when it
    /// is an authorization error: DESCRIBE on its group (librdkafka looks up
    /// the coordinator of a consumer's group even when it only assigns), or
    /// READ on the changelogs.
    fn restore_denied(&self, e: Error) -> Error {
        let Error::Kafka { source, .. } = &e else { return e };
        if source.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::GroupAuthorizationFailed) {
            let group = self.app.config.restore_group_id();
            return Error::not_authorized(
                &format!("DESCRIBE group '{group}'"),
                &format!("DESCRIBE on the group '{group}' (resource type GROUP, LITERAL; the restore consumer never joins it)"),
                &format!("reading changelogs to restore: {source}"),
            );
        }
        self.denied(source, "reading changelogs to restore", "READ").unwrap_or(e)
    }

    /// The processing thread's index.
    pub(crate) fn thread(&self) -> usize {
        self.thread
    }

    pub(crate) fn new(app: Arc<AppContext>, thread: usize, collector: RecordCollector) -> Self {
        let topics = app
            .topic_to_subtopology
            .iter()
            .map(|(t, &sub)| (t.clone(), (Arc::<str>::from(t.as_str()), app.metrics.consumed(t), sub)))
            .collect();
        let restoring = ChangelogReader::new(&app.topology, &app.config.application_id);
        let (app_topology, app_id) = (app.topology.clone(), app.config.application_id.clone());
        let subtopology_metrics = (0..app.topology.subtopologies.len()).map(|id| app.metrics.subtopology(id)).collect();
        app.stats.set_phase(thread, ThreadPhase::Joining);
        TaskManager {
            app,
            thread,
            collector,
            tasks: BTreeMap::new(),
            restoring,
            pending: BTreeSet::new(),
            incomplete: BTreeSet::new(),
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
            bounded: Default::default(),
            standbys: crate::runtime::standby::Standbys::new(&app_topology, &app_id),
            offsets_client: None,
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

    /// Whether the thread has had an assignment (or learned it has none).
    pub(crate) fn is_assigned(&self) -> bool {
        self.assigned
    }

    /// The broker lists this thread's consumer as a member with nothing
    /// assigned (KIP-848 sends no callback then): it has joined, and is ready.
    pub(crate) fn joined_without_partitions(&mut self) {
        if !self.assigned && self.tasks.is_empty() && self.pending.is_empty() && self.restoring.is_empty() {
            tracing::info!(thread = self.thread, "joined the group; the broker assigned this thread no partitions");
            self.assigned = true;
            self.update_task_counts();
        }
    }

    /// Partitions were assigned: their tasks are created before the next record.
    pub(crate) fn on_assigned(&mut self, tpl: &TopicPartitionList) {
        self.app.stats.assign(self.thread, tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())));
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
        self.app.stats.revoke(self.thread, tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())));
        if let Err(e) = self.commit(consumer) {
            tracing::error!(error = %e, "commit before revocation failed; the revoked tasks' uncommitted work is dropped and will be reprocessed by their new owner");
            for task in self.tasks.values_mut() {
                task.abort();
            }
            self.failed.get_or_insert(e);
        }
        // What stays assigned: under incremental rebalancing a task may lose
        // one source partition and keep another (in the middle of a
        // reassignment); it waits, paused, until it has all of them again.
        let revoked: HashSet<(String, i32)> =
            tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
        let kept: HashSet<_> = assigned_partitions(consumer).into_iter().filter(|tp| !revoked.contains(tp)).collect();
        for id in ids {
            self.pending.remove(&id);
            self.incomplete.remove(&id);
            if let Some(task) = self.tasks.remove(&id) {
                task.close();
                self.app.metrics.tasks_closed.inc();
            }
            // A partly restored store keeps what it applied, with its offset.
            if let Some(task) = self.restoring.remove(&id, &self.app.metrics) {
                task.close();
                self.app.metrics.tasks_closed.inc();
            }
            if self.source_partitions(id).iter().any(|tp| kept.contains(tp)) {
                self.pending.insert(id);
            }
        }
        // Eager rebalancing: every revocation is followed by a new
        // assignment. Incremental: the tasks not revoked keep running.
        if !matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative) {
            self.assigned = false;
        }
        self.update_task_counts();
    }

    /// The source partitions of a task.
    fn source_partitions(&self, id: TaskId) -> Vec<(String, i32)> {
        let topics = self.app.topic_to_subtopology.iter();
        topics.filter(|(_, &sub)| sub == id.subtopology).map(|(topic, _)| (topic.clone(), id.partition)).collect()
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
        if self.pending.is_empty() {
            return Ok(());
        }
        let assigned = assigned_partitions(consumer);
        for id in std::mem::take(&mut self.pending) {
            let sources = self.source_partitions(id);
            let (have, missing): (Vec<_>, Vec<_>) = sources.iter().cloned().partition(|tp| assigned.contains(tp));
            if !missing.is_empty() {
                // The rest of its partitions are still on their way from
                // another member (incremental rebalancing): processing only
                // some of its inputs would move its time past records it has
                // not seen yet.
                if self.incomplete.insert(id) {
                    tracing::info!(task = %id, missing = ?missing, "task waits for the rest of its source partitions");
                    pause(consumer, &have, id)?;
                }
                self.pending.insert(id);
                continue;
            }
            let was_paused = self.incomplete.remove(&id);
            let mut task = Task::new(id, &self.app, Box::new(self.collector.clone()))?;
            let parts = task.restore_plan(restorer)?;
            if parts.is_empty() {
                self.start_task(task, 0, Instant::now())?;
                if was_paused {
                    resume(consumer, &sources, id)?;
                }
                continue;
            }
            pause(consumer, &sources, id)?;
            self.restoring.add(task, parts);
        }
        self.update_task_counts();
        Ok(())
    }

    fn start_task(&mut self, mut task: Task, restored: u64, started: Instant) -> Result<()> {
        task.init()?;
        let id = task.id;
        tracing::info!(task = %id, restored, elapsed_ms = started.elapsed().as_millis() as u64, "task running");
        self.app.metrics.tasks_started.inc();
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

    /// Reads one round of changelog records for the restoring tasks
    /// ([`ChangelogReader::step`]) and starts those that caught up.
    pub(crate) fn restore_step<C: ConsumerContext, R: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        restorer: &BaseConsumer<R>,
    ) -> Result<()> {
        if self.restoring.is_empty() {
            return Ok(());
        }
        let step = self.restoring.step(restorer, &self.app.stats, &self.app.metrics);
        for restored in step.map_err(|e| self.restore_denied(e))? {
            let id = restored.task.id;
            self.start_task(restored.task, restored.records, restored.started)?;
            resume(consumer, &self.source_partitions(id), id)?;
        }
        self.update_task_counts();
        Ok(())
    }

    /// A source partition went on from `offset` after its offset was out of
    /// range (`runtime::offset_reset`): the next commit records the new
    /// position even if no record of the partition comes before it.
    pub(crate) fn skipped_to(&mut self, topic: &str, partition: i32, offset: i64) {
        let Some((name, _, subtopology)) = self.topics.get(topic) else { return };
        if let Some(task) = self.tasks.get_mut(&TaskId { subtopology: *subtopology, partition }) {
            task.consumed_up_to(name, offset);
        }
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
        if self.past_end(msg.topic(), msg.partition(), msg.offset()) {
            return Ok(());
        }
        let id = TaskId { subtopology, partition: msg.partition() };
        if self.restoring.contains(&id) || self.pending.contains(&id) {
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
            Err(e @ ProcessError::TransactionFailed { .. }) => self.abort_failed_transaction(consumer, e),
            Err(e) if e.is_record_error() => {
                let source = task.source().cloned();
                let original =
                    Original { key: msg.key(), value: msg.payload(), headers: crate::runtime::task::headers_of(msg) };
                match handle_bad_record(&self.app, &self.collector, e, source.as_ref(), Some(original)) {
                    // The dead letter could not be sent because the
                    // transaction failed: abort and process again, as for
                    // any other record.
                    Err(Error::Record { error, .. }) if matches!(*error, ProcessError::TransactionFailed { .. }) => {
                        self.abort_failed_transaction(consumer, *error)
                    }
                    result => result,
                }
            }
            Err(e) => Err(Error::record(task.source(), e)),
        }
    }

    /// Fires wall-clock callbacks that are due, then lets each task tell
    /// its repartition topics how far its time has come (after every round
    /// of polled records, so windows downstream close as soon as the data
    /// says so, not a commit later).
    pub(crate) fn punctuate<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) -> Result<()> {
        let now = wall_clock_ms();
        let mut failed = None;
        for task in self.tasks.values_mut() {
            let result = task.fire_timers(TimeKind::WallClock, now).and_then(|()| task.send_watermark_markers(now));
            match result {
                Ok(()) => {}
                Err(e @ ProcessError::TransactionFailed { .. }) => {
                    failed = Some(e);
                    break;
                }
                Err(e) => return Err(Error::from(e)),
            }
        }
        match failed {
            Some(e) => self.abort_failed_transaction(consumer, e),
            None => Ok(()),
        }
    }

    /// A send found the transaction failed: abort it and rewind every task
    /// to the committed offsets, as a failed commit does (a fenced producer
    /// makes it `TaskMigrated`).
    fn abort_failed_transaction<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        e: ProcessError,
    ) -> Result<()> {
        if let Some(denied) = self.transaction_denied() {
            // Processing again would be refused again: stop.
            return Err(denied);
        }
        tracing::warn!(reason = %e, "aborting the transaction; the tasks rewind to their last committed offsets");
        self.abort_transaction(consumer)
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

    /// Commits and closes every task (shutdown).
    pub(crate) fn close_all<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) -> Result<()> {
        let result = self.commit(consumer);
        self.app.metrics.set_store_sizes(self.thread, HashMap::new());
        for (_, task) in std::mem::take(&mut self.tasks) {
            task.close();
            self.app.metrics.tasks_closed.inc();
        }
        for task in self.restoring.drain() {
            task.close();
            self.app.metrics.tasks_closed.inc();
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
        for task in self.restoring.drain() {
            task.close();
        }
        self.update_task_counts();
    }

    pub(crate) fn poll_deliveries(&self) {
        self.collector.poll();
    }
}
