//! A processing thread: one consumer, one producer, the tasks of its
//! assigned partitions, in a plain loop.
//!
//! Rebalance callbacks run inside `consumer.poll()`, on this thread. They
//! need the thread's tasks (to commit before partitions move), which hold
//! `Rc`s and so cannot be shared through the consumer's `Send + Sync`
//! context. The task manager therefore lives in a thread-local, borrowed by
//! the loop only between polls and by the callbacks only during a poll.
//!
//! With an explicit `instance_id` the consumer is a static group member
//! (`group.instance.id = <instance_id>-<thread>`): at shutdown it is closed
//! without unsubscribing, because librdkafka sends no LeaveGroup for a
//! static member only when the consumer is closed (an `unsubscribe` would
//! leave the group and move its partitions at once).

use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::DefaultClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use crate::config::GroupProtocol;
use crate::error::kafka::{classify, KafkaErrorKind};
use crate::error::{Error, Result};
use crate::kafka::{client_config, ClientRole};
use crate::metrics::Metrics;
use crate::runtime::collector::DeliveryTracker;
use crate::runtime::membership::Membership;
use crate::runtime::offset_reset::{self, ResetSignals};
use crate::runtime::task_manager::reconcile::Reconciled;
use crate::runtime::task_manager::TaskManager;
use crate::runtime::AppContext;
use crate::runtime::RecordCollector;
use crate::ProcessingGuarantee;

thread_local! {
    static MANAGER: RefCell<Option<TaskManager>> = const { RefCell::new(None) };
}

/// Why a rebalance callback could not reach the task manager.
enum Unavailable {
    /// The thread has closed its tasks and is shutting down.
    Gone,
    /// The manager is borrowed: a callback ran outside `poll`, a bug.
    Busy,
}

fn with_manager<R>(f: impl FnOnce(&mut TaskManager) -> R) -> Result<R, Unavailable> {
    MANAGER.with(|m| match m.try_borrow_mut() {
        Ok(mut guard) => guard.as_mut().map(f).ok_or(Unavailable::Gone),
        Err(_) => Err(Unavailable::Busy),
    })
}

/// The consumer's context: hands rebalances to this thread's task manager,
/// and librdkafka's statistics to the metrics.
pub(crate) struct RebalanceHandler {
    metrics: Arc<Metrics>,
    /// The partitions whose lag this consumer reported last.
    lag_reported: Mutex<HashSet<(String, i32)>>,
    /// Out-of-range offsets, read from librdkafka's log (`offset_reset`).
    resets: ResetSignals,
}

impl ClientContext for RebalanceHandler {
    fn stats(&self, statistics: Statistics) {
        let mut reported = self.lag_reported.lock().unwrap_or_else(|e| e.into_inner());
        self.metrics.consumer_stats(&statistics, &mut reported);
    }

    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.resets.note(fac, log_message);
        DefaultClientContext.log(level, fac, log_message);
    }
}

impl ConsumerContext for RebalanceHandler {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let started = Instant::now();
        match rebalance {
            Rebalance::Revoke(tpl) => {
                if let Err(Unavailable::Busy) = with_manager(|tm| tm.on_revoked(consumer, tpl)) {
                    tracing::error!(
                        "partitions revoked while the task manager was busy; their work will be reprocessed"
                    );
                }
            }
            Rebalance::Error(e) => {
                let e = Error::Internal(format!("rebalance failed: {e}"));
                if with_manager(|tm| tm.failed.get_or_insert(e).to_string()).is_err() {
                    tracing::error!("a rebalance failed while the thread was stopping");
                }
            }
            Rebalance::Assign(_) => return,
        }
        self.metrics.rebalance_duration.observe(started.elapsed().as_secs_f64());
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let started = Instant::now();
            if with_manager(|tm| tm.on_assigned(tpl)).is_err() {
                tracing::warn!("partitions assigned while the thread was stopping; they are left to other members");
            }
            self.metrics.rebalance_duration.observe(started.elapsed().as_secs_f64());
        }
    }
}

/// The restore consumer's context: end-of-partition is how a restore knows
/// it is done, not an error worth logging.
pub(crate) struct RestoreContext;

impl ClientContext for RestoreContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() != Some(RDKafkaErrorCode::PartitionEOF) {
            tracing::error!(error = %error, reason, "restore consumer error");
        }
    }

    /// The restore consumer's statistics are not needed (its interval is
    /// turned off; this only keeps rdkafka from logging them).
    fn stats(&self, _: Statistics) {}
}

/// How often librdkafka reports the statistics the metrics read (consumer
/// lag, broker round-trip times, producer queue), unless the user set
/// `statistics.interval.ms`.
const STATISTICS_INTERVAL_MS: &str = "5000";

impl ConsumerContext for RestoreContext {}

/// Consumer errors that pass on their own (a broker restarting).
fn is_transient(e: &KafkaError) -> bool {
    classify(e) == KafkaErrorKind::Retriable
}

/// Runs processing thread `index` until `shutdown` is set or it fails.
/// When its tasks migrate (fenced), it drops them and starts over with new
/// clients, rejoining the group.
pub(crate) fn run(
    app: Arc<AppContext>,
    index: usize,
    source_topics: Vec<String>,
    shutdown: Arc<AtomicBool>,
) -> Result<()> {
    // Records are joined with global tables only once those are loaded.
    while !app.stats.globals_ready() {
        if shutdown.load(Ordering::Relaxed) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    loop {
        match run_once(app.clone(), index, &source_topics, &shutdown) {
            Err(Error::TaskMigrated(why)) if !shutdown.load(Ordering::Relaxed) => {
                tracing::warn!(thread = index, reason = %why, "tasks migrated: dropped uncommitted work, rejoining the group");
            }
            // Stopping anyway: the tasks belong to other members now, and
            // their new owners process the dropped work again.
            Err(Error::TaskMigrated(why)) => {
                tracing::warn!(thread = index, reason = %why, "tasks migrated during the shutdown: dropped uncommitted work");
                return Ok(());
            }
            result => return result,
        }
    }
}

fn run_once(app: Arc<AppContext>, index: usize, source_topics: &[String], shutdown: &AtomicBool) -> Result<()> {
    let config = &app.config;
    let client = |role: ClientRole| -> Result<rdkafka::ClientConfig> {
        let mut c = client_config(config, role)?;
        let name = match role {
            ClientRole::Consumer => "consumer",
            ClientRole::Producer => "producer",
            ClientRole::Admin => "admin",
            ClientRole::Reset => "reset",
        };
        c.set("client.id", format!("{}-{}-{index}-{name}", config.application_id, config.instance_id));
        if c.get("statistics.interval.ms").is_none() {
            c.set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
        }
        Ok(c)
    };
    let mut consumer_config = client(ClientRole::Consumer)?;
    // Range assignment gives partition p of every co-partitioned topic to
    // the same member: the tasks' sources move together. KIP-848's broker-side
    // range assignor keeps that and is sticky (`RangeAssignor` in Kafka's
    // group coordinator), and its assignments arrive incrementally.
    match config.group_protocol {
        GroupProtocol::Consumer => {
            consumer_config.set("group.protocol", "consumer").set("group.remote.assignor", "range")
        }
        GroupProtocol::Classic => consumer_config.set("partition.assignment.strategy", "range"),
        // The streams group assigns tasks (`runtime::membership`); the
        // consumer is assigned by hand and never joins.
        GroupProtocol::Streams => &mut consumer_config,
    };
    let streams = config.group_protocol == GroupProtocol::Streams;
    let group_instance_id = config.group_instance_id(index).filter(|_| !streams);
    if let Some(id) = &group_instance_id {
        consumer_config.set("group.instance.id", id);
    }
    offset_reset::keep_warnings(&mut consumer_config);
    let resets = ResetSignals::new(config.errors.offset_out_of_range, app.metrics.clone());
    let handler = RebalanceHandler { metrics: app.metrics.clone(), lag_reported: Mutex::default(), resets };
    let consumer: BaseConsumer<RebalanceHandler> =
        consumer_config.create_with_context(handler).map_err(|e| Error::kafka("creating the consumer", e))?;
    let mut producer_config = client(ClientRole::Producer)?;
    // The Java client's partitioner, so keys land where Kafka Streams and
    // Java producers put them.
    producer_config.set("partitioner", "murmur2_random");
    let exactly_once = config.processing_guarantee == ProcessingGuarantee::ExactlyOnce;
    if let Some(id) = config.transactional_id(index) {
        // Stable across restarts of this instance: a restarted thread fences
        // its predecessor and aborts its open transaction.
        producer_config.set("transactional.id", id);
    }
    let producer: BaseProducer<DeliveryTracker> = producer_config
        .create_with_context(DeliveryTracker::with_metrics(app.metrics.clone(), index))
        .map_err(|e| Error::kafka("creating the producer", e))?;
    if exactly_once {
        producer.init_transactions(Duration::from_secs(60)).map_err(|e| {
            app.denied(&e, "initialising the transactional producer", "WRITE", index).unwrap_or_else(|| {
                Error::kafka("initialising the transactional producer (is the broker's transaction coordinator up?)", e)
            })
        })?;
    }
    let mut restore_config = client(ClientRole::Consumer)?;
    restore_config
        .set("enable.partition.eof", "true")
        .set("group.id", config.restore_group_id())
        .set("statistics.interval.ms", "0");
    let restorer: BaseConsumer<RestoreContext> = restore_config
        .create_with_context(RestoreContext)
        .map_err(|e| Error::kafka("creating the restore consumer", e))?;

    // Standby tasks follow their changelogs with a consumer of their own.
    let standby_reader: Option<BaseConsumer<RestoreContext>> = match streams {
        true => Some(
            restore_config
                .set("enable.partition.eof", "false")
                .create_with_context(RestoreContext)
                .map_err(|e| Error::kafka("creating the standby consumer", e))?,
        ),
        false => None,
    };
    let collector = RecordCollector::new(Arc::new(producer), exactly_once)
        .with_metrics(app.metrics.clone(), &config.application_id);
    MANAGER.with(|m| *m.borrow_mut() = Some(TaskManager::new(app.clone(), index, collector)));
    let topics: Vec<&str> = source_topics.iter().map(String::as_str).collect();
    let membership = app.membership.clone();
    let streams_group = match (&membership, &standby_reader) {
        (Some(m), Some(reader)) => Some(StreamsGroup { m, reader, done: Reconciled::new(m, index) }),
        _ => {
            consumer.subscribe(&topics).map_err(|e| Error::kafka(format!("subscribing to {topics:?}"), e))?;
            None
        }
    };
    tracing::info!(thread = index, topics = ?topics, group_instance_id = ?group_instance_id, "processing thread started");

    let result = process_loop(&consumer, &restorer, streams_group, shutdown);
    let standbys_closed = with_manager(TaskManager::close_standbys).unwrap_or(Ok(()));
    // After a failure nothing is committed: the failed record and what
    // followed it are processed again after a restart.
    let closed = match &result {
        Ok(()) => with_manager(|tm| tm.close_all(&consumer)).unwrap_or(Ok(())),
        Err(_) => {
            let _ = with_manager(|tm| tm.abort_all());
            Ok(())
        }
    };
    // A static member keeps its place in the group until its session times
    // out: closing the consumer (when it is dropped) sends no LeaveGroup,
    // unsubscribing would.
    if group_instance_id.is_none() {
        consumer.unsubscribe();
    }
    MANAGER.with(|m| m.borrow_mut().take());
    app.metrics.forget_producer(index);
    tracing::info!(thread = index, ok = result.is_ok(), "processing thread stopped");
    result.and(closed).and(standbys_closed)
}

/// A thread's part in the streams group protocol: the instance's member,
/// the standby consumer, and what the thread applied of the assignment.
struct StreamsGroup<'a> {
    m: &'a Membership,
    reader: &'a BaseConsumer<RestoreContext>,
    done: Reconciled,
}

/// Records processed per round of the loop before the housekeeping
/// (deliveries, wall-clock timers, the commit check) runs again. Measured
/// in `benches/throughput.rs`: housekeeping after every record cost a
/// quarter of the thread's time; at 500 it is noise, and a round of 500
/// records takes a few milliseconds, far below any commit interval.
const POLL_BATCH: usize = 500;

/// How long a thread waits before joining again when the broker still
/// holds its static member id for a crashed predecessor.
const UNRELEASED_INSTANCE_RETRY: Duration = Duration::from_secs(1);

fn process_loop(
    consumer: &BaseConsumer<RebalanceHandler>,
    restorer: &BaseConsumer<RestoreContext>,
    mut streams: Option<StreamsGroup<'_>>,
    shutdown: &AtomicBool,
) -> Result<()> {
    let mut restoring = false;
    let mut membership_checked = Instant::now();
    while !shutdown.load(Ordering::Relaxed) {
        if let Some(s) = streams.as_mut() {
            let step = with_manager(|tm| -> Result<()> {
                tm.reconcile(consumer, s.reader, s.m, &mut s.done)?;
                tm.standby_step(s.reader)
            });
            step.unwrap_or_else(|_| Err(Error::Internal("the task manager is gone".into())))?;
        } else {
            check_idle_membership(consumer, &mut membership_checked);
        }
        // While tasks restore, poll without waiting so the restore gets the
        // time; polling still runs, so the member stays in its group.
        let polled = consumer.poll(if restoring { Duration::ZERO } else { Duration::from_millis(100) });
        let more = with_manager(|tm| -> Result<bool> {
            if let Some(e) = tm.failed.take() {
                return Err(e);
            }
            tm.create_pending(consumer, restorer)?;
            tm.restore_step(consumer, restorer)?;
            restoring = tm.is_restoring();
            handle(tm, polled, consumer)
        });
        let mut more = more.unwrap_or_else(|_| Err(Error::Internal("the task manager is gone".into())))?;
        // More records already fetched: process them before the
        // housekeeping. The manager is not borrowed while polling, so a
        // rebalance callback inside `poll` can reach it.
        let mut n = 1;
        while more && n < POLL_BATCH {
            let polled = consumer.poll(Duration::ZERO);
            more = with_manager(|tm| -> Result<bool> {
                if let Some(e) = tm.failed.take() {
                    return Err(e);
                }
                handle(tm, polled, consumer)
            })
            .unwrap_or_else(|_| Err(Error::Internal("the task manager is gone".into())))?;
            n += 1;
        }
        let step = with_manager(|tm| -> Result<()> {
            tm.poll_deliveries();
            tm.punctuate(consumer)?;
            tm.bounded_step(consumer)?;
            tm.maybe_commit(consumer)
        });
        step.unwrap_or_else(|_| Err(Error::Internal("the task manager is gone".into())))?;
    }
    Ok(())
}

/// How often a thread with no assignment yet asks the broker whether it
/// is a member with nothing assigned.
const IDLE_MEMBERSHIP_CHECK: Duration = Duration::from_secs(2);

/// Under KIP-848 a member the broker assigns no partition gets no
/// rebalance callback: ask the broker (every [`IDLE_MEMBERSHIP_CHECK`], only
/// while the thread has had no assignment), so the thread counts as joined
/// and the instance as ready.
fn check_idle_membership(consumer: &BaseConsumer<RebalanceHandler>, last: &mut Instant) {
    if last.elapsed() < IDLE_MEMBERSHIP_CHECK || with_manager(|tm| tm.is_assigned()).unwrap_or(true) {
        return;
    }
    *last = Instant::now();
    let Some(group) = with_manager(|tm| tm.app.config.application_id.clone()).ok() else { return };
    match crate::kafka::group_members::is_idle_member(consumer, &group, IDLE_MEMBERSHIP_CHECK) {
        Ok(true) => {
            let _ = with_manager(TaskManager::joined_without_partitions);
        }
        Ok(false) => {}
        // Asked again at the next check; the thread stays "joining".
        Err(why) => tracing::debug!(reason = %why, "could not read the group's members"),
    }
}

/// Processes what one `poll` returned; whether it was a record (so more
/// may be waiting).
fn handle(
    tm: &mut TaskManager,
    polled: Option<rdkafka::error::KafkaResult<rdkafka::message::BorrowedMessage<'_>>>,
    consumer: &BaseConsumer<RebalanceHandler>,
) -> Result<bool> {
    let msg = match &polled {
        Some(Ok(msg)) => Some(msg),
        _ => None,
    };
    // Out-of-range offsets are handled before the next record.
    if !consumer.context().resets.check(consumer, msg, |t, p, to| tm.skipped_to(t, p, to))? {
        return Ok(true);
    }
    match &polled {
        None => Ok(false),
        Some(Ok(msg)) => tm.process(msg, consumer).map(|()| true),
        Some(Err(e)) if is_transient(e) => {
            tracing::warn!(error = %e, "Kafka is not reachable right now; the consumer keeps retrying");
            Ok(false)
        }
        Some(Err(e)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::UnreleasedInstanceId) => {
            // KIP-848: a static member that crashed keeps its place until its
            // session times out, and the broker refuses a new member with
            // its instance id meanwhile. The consumer is unusable after
            // this error: start over with new clients, a moment later.
            std::thread::sleep(UNRELEASED_INSTANCE_RETRY);
            Err(Error::TaskMigrated(format!(
                "{e}: this instance's previous process (group.instance.id {}) still holds its place in the group \
                 until the broker's session timeout passes (it stopped without leaving: a crash or kill -9); \
                 joining again",
                tm.app.config.group_instance_id(tm.thread()).unwrap_or_default()
            )))
        }
        Some(Err(e)) => Err(tm.denied(e, "consuming", "READ").unwrap_or_else(|| Error::kafka("consuming", e.clone()))),
    }
}
