//! The thread's producer and the one owner of its transaction (Kafka
//! Streams' `StreamsProducer`).
//!
//! Each processing thread has one librdkafka producer, shared by all its
//! tasks through the [`RecordCollector`](super::RecordCollector). Under
//! exactly-once it is transactional, and only [`StreamsProducer`] calls its
//! transaction API. Its state:
//!
//! ```text
//!   NotTransactional                      (at-least-once: sends only)
//!
//!   Ready --begin() / the cycle's first send--> InTransaction
//!     ^                                            |
//!     +---- commit(offsets, group metadata) -------+   the offsets and every
//!     +---- abort() -------------------------------+   record since begin, atomically
//! ```
//!
//! A transaction call that keeps failing for a passing reason is retried
//! (`runtime::retry`); what an error means is decided by
//! [`crate::error::kafka::classify`]. A call that fails with a
//! `TaskMigrated` error leaves the producer unusable: the thread drops it
//! with its tasks and starts over with a new one.
//!
//! librdkafka delivers asynchronously; the producer's context, the
//! [`DeliveryTracker`], records what it learns in delivery reports: the
//! highest offset written per changelog partition (the offset the local
//! store is brought up to at commit) and every record that failed, for the
//! production-error policy, with the input record it was produced for
//! (the record's opaque; see `runtime::refused`). Delivery reports are
//! served on the processing thread, from `poll` and `flush`. It also counts
//! the records the broker acknowledged per topic
//! (`rivulet_records_produced_total`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::IntCounter;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::Headers as _;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Message, TopicPartitionList};

use crate::error::kafka::{classify, is_authorization, KafkaErrorKind};
use crate::metrics::Metrics;
use crate::record::{Headers, SourceOffset};
use crate::runtime::refused::{culprits, refusal, Refusals, Source};
// Defined with the refusals (a floor below), used by the collector too.
pub(crate) use crate::runtime::refused::{DeliveryFailure, FailureCause};
use crate::runtime::retry::{abort_is_retriable, retrying, retrying_when, RETRY_FOR};

/// How long one transaction call may take.
const TXN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one attempt to abort waits for the purged records' delivery
/// reports, which are served between attempts.
const ABORT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one poll for delivery reports waits, while flushing or with a
/// full queue. `BaseProducer::poll` returns only when this has passed, so it
/// is the granularity of a flush.
const REPORT_POLL: Duration = Duration::from_millis(1);
/// At most this many events (produce requests' reports) served by one
/// [`StreamsProducer::poll`].
const MAX_POLLS: usize = 32;

#[derive(Default)]
struct Deliveries {
    /// Changelog topic -> partition -> highest delivered offset.
    changelog_offsets: HashMap<String, HashMap<i32, i64>>,
    failures: Vec<DeliveryFailure>,
    /// `rivulet_records_produced_total` per topic, looked up once.
    produced: HashMap<String, IntCounter>,
    /// The topic of the last successful delivery.
    last: Option<LastTopic>,
}

struct LastTopic {
    topic: String,
    produced: Option<IntCounter>,
    changelog: bool,
}

/// The producer's context: collects delivery reports, and feeds the
/// metrics from them and from librdkafka's statistics.
#[derive(Default)]
pub(crate) struct DeliveryTracker {
    deliveries: Mutex<Deliveries>,
    /// The application's metrics and this producer's thread index.
    metrics: Option<(Arc<Metrics>, usize)>,
    /// Records refused in aborted transactions, until their input records
    /// are committed.
    refusals: Refusals,
    /// A refused record no input record produced (exactly-once): there is
    /// nothing to route to the policy when processing again.
    unroutable: Mutex<Option<DeliveryFailure>>,
}

impl DeliveryTracker {
    /// A tracker that feeds the metrics of processing thread `thread`.
    pub(crate) fn with_metrics(metrics: Arc<Metrics>, thread: usize) -> Self {
        DeliveryTracker { metrics: Some((metrics, thread)), ..DeliveryTracker::default() }
    }
}

impl ClientContext for DeliveryTracker {
    fn stats(&self, statistics: Statistics) {
        if let Some((metrics, thread)) = &self.metrics {
            metrics.producer_stats(*thread, &statistics);
        }
    }
}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = Source;

    fn delivery(&self, result: &DeliveryResult<'_>, source: Source) {
        // A poisoned lock still holds every report gathered so far; losing
        // one would lose a failed delivery.
        let mut d = self.deliveries.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(m) => {
                let topic = m.topic();
                // Reports come in runs of one topic: look the topic up only
                // when it changes.
                if d.last.as_ref().is_none_or(|l| l.topic != topic) {
                    let produced = self.metrics.as_ref().map(|(metrics, _)| {
                        d.produced.entry(topic.to_string()).or_insert_with(|| metrics.produced(topic)).clone()
                    });
                    d.last = Some(LastTopic {
                        topic: topic.to_string(),
                        produced,
                        changelog: topic.ends_with("-changelog"),
                    });
                }
                let Some(last) = &d.last else { return };
                if let Some(counter) = &last.produced {
                    counter.inc();
                }
                if last.changelog {
                    let (partition, offset) = (m.partition(), m.offset());
                    match d.changelog_offsets.get_mut(topic) {
                        Some(parts) => {
                            let slot = parts.entry(partition).or_insert(-1);
                            *slot = (*slot).max(offset);
                        }
                        None => {
                            d.changelog_offsets.insert(topic.to_string(), HashMap::from([(partition, offset)]));
                        }
                    }
                }
            }
            Err((e, m)) => {
                // A failed report has the broker's timestamp (-1).
                let timestamp = Some(source.timestamp);
                let size = m.key_len() + m.payload_len();
                let (cause, reason) = if is_authorization(e) {
                    let topic = format!("WRITE topic '{}'", m.topic());
                    let denied = crate::error::Error::not_authorized(&topic, "WRITE on that topic", &e.to_string());
                    (FailureCause::Denied, denied.to_string())
                } else if let Some(why) = refusal(e, timestamp, size) {
                    (FailureCause::Refused, why)
                } else if e.rdkafka_error_code() == Some(RDKafkaErrorCode::InvalidDifferentRecord) {
                    (FailureCause::OtherRecord, e.to_string())
                } else {
                    (FailureCause::Other, e.to_string())
                };
                let headers = m
                    .headers()
                    .map(|hs| hs.iter().map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec))).collect::<Headers>());
                d.failures.push(DeliveryFailure {
                    topic: m.topic().to_string(),
                    partition: m.partition(),
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    timestamp,
                    headers: headers.unwrap_or_default(),
                    source: source.source.clone(),
                    reason,
                    code: e.rdkafka_error_code(),
                    cause,
                })
            }
        }
    }
}

pub(crate) type ThreadProducer = BaseProducer<DeliveryTracker>;

/// Where the thread's transaction is; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum TxnState {
    /// At-least-once: the producer has no transactions.
    NotTransactional = 0,
    /// Exactly-once, no transaction open.
    Ready = 1,
    /// Exactly-once, a transaction is open: records sent since it began
    /// are committed or aborted together.
    InTransaction = 2,
}

impl TxnState {
    fn from_u8(v: u8) -> TxnState {
        match v {
            1 => TxnState::Ready,
            2 => TxnState::InTransaction,
            _ => TxnState::NotTransactional,
        }
    }
}

/// The thread's producer, and the one owner of its transaction. Cheap to
/// clone: the clones share the producer and the state.
#[derive(Clone)]
pub(crate) struct StreamsProducer {
    producer: Arc<ThreadProducer>,
    state: Arc<AtomicU8>,
}

impl StreamsProducer {
    /// Wraps the thread's producer; `transactional` when it has a
    /// `transactional.id` and `init_transactions` succeeded.
    pub(crate) fn new(producer: Arc<ThreadProducer>, transactional: bool) -> Self {
        let state = if transactional { TxnState::Ready } else { TxnState::NotTransactional };
        StreamsProducer { producer, state: Arc::new(AtomicU8::new(state as u8)) }
    }

    pub(crate) fn state(&self) -> TxnState {
        TxnState::from_u8(self.state.load(Ordering::Relaxed))
    }

    fn set(&self, state: TxnState) {
        self.state.store(state as u8, Ordering::Relaxed);
    }

    /// Whether a transaction is open.
    pub(crate) fn in_transaction(&self) -> bool {
        self.state() == TxnState::InTransaction
    }

    /// Begins a transaction unless one is open (exactly-once only).
    pub(crate) fn begin(&self) -> KafkaResult<()> {
        if self.state() == TxnState::Ready {
            self.producer.begin_transaction()?;
            self.set(TxnState::InTransaction);
        }
        Ok(())
    }

    /// Queues one record, inside the open transaction (begun if need be).
    /// A full queue is drained by serving delivery reports.
    pub(crate) fn send(&self, mut record: BaseRecord<'_, [u8], [u8], Source>) -> KafkaResult<()> {
        self.begin()?;
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    self.producer.poll(REPORT_POLL);
                    record = r;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Whether a refused send means the transaction itself failed (rather
    /// than the record): the producer is transactional and the error is
    /// abortable or worse, or librdkafka refuses because of the
    /// transaction's state (`_STATE`, after a failed transaction that
    /// needs an abort and an epoch bump).
    pub(crate) fn transaction_failed(&self, e: &KafkaError) -> bool {
        self.state() != TxnState::NotTransactional
            && (matches!(classify(e), KafkaErrorKind::Abortable | KafkaErrorKind::TaskMigrated)
                || e.rdkafka_error_code() == Some(RDKafkaErrorCode::State))
    }

    /// The error that failed the open transaction, once librdkafka has put
    /// it in its abortable or fatal state: sends then fail with `_STATE`
    /// only, and the cause (a missing ACL, say) would be lost with the
    /// abort. librdkafka answers any transactional call made in that state
    /// with the transaction's own error; `begin_transaction`, valid only with
    /// no transaction open, asks without side effects (in a healthy open
    /// transaction it fails with `_STATE`, which is not returned).
    pub(crate) fn transaction_error(&self) -> Option<KafkaError> {
        if !self.in_transaction() {
            return None;
        }
        self.producer.begin_transaction().err().filter(|e| e.rdkafka_error_code() != Some(RDKafkaErrorCode::State))
    }

    /// Serves the delivery reports that are waiting, without waiting for
    /// more. One `poll` serves one event (the reports of one produce
    /// request), so it polls again while that served some.
    pub(crate) fn poll(&self) {
        let mut outstanding = self.producer.in_flight_count();
        for _ in 0..MAX_POLLS {
            self.producer.poll(Duration::ZERO);
            let now = self.producer.in_flight_count();
            if now >= outstanding {
                return;
            }
            outstanding = now;
        }
    }

    /// Waits until every queued record is delivered or failed, serving
    /// delivery reports every [`REPORT_POLL`].
    ///
    /// Not rdkafka's `flush`: it serves reports in slices of up to 100 ms,
    /// and since rdkafka 0.38 `BaseProducer::poll` waits out its whole
    /// timeout even when a report arrived at once, so every flush with a
    /// record in flight took about 100 ms. At a 100 ms commit interval
    /// that kept the stream thread waiting half the time, and exactly-once
    /// outputs became visible 215 ms after their input (p50) instead of
    /// 80 ms (issue 15; `docs/benchmarks.md`).
    pub(crate) fn flush(&self, timeout: Duration) -> KafkaResult<()> {
        let deadline = Instant::now() + timeout;
        loop {
            // librdkafka's flush with a zero timeout: done, or timed out.
            match self.producer.flush(Duration::ZERO) {
                Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut)) if Instant::now() < deadline => {
                    self.producer.poll(REPORT_POLL)
                }
                done => return done,
            }
        }
    }

    /// Failures reported since the last call.
    pub(crate) fn take_failures(&self) -> Vec<DeliveryFailure> {
        // A poisoned lock still holds the failures: dropping them would let
        // the commit go past an undelivered output.
        let mut d = self.producer.context().deliveries.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut d.failures)
    }

    /// The highest offset delivered to a changelog partition since the last
    /// call, which forgets it.
    pub(crate) fn take_changelog_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        let mut d = self.producer.context().deliveries.lock().unwrap_or_else(|e| e.into_inner());
        d.changelog_offsets.get_mut(topic).and_then(|parts| parts.remove(&partition))
    }

    /// Commits the open transaction together with the consumed `offsets`
    /// and the group metadata of the consumer or of the streams-group member
    /// (so a member of an older generation or epoch is fenced): `InTransaction -> Ready`. Passing errors are
    /// retried; the error returned is for [`classify`](crate::error::kafka::classify).
    pub(crate) fn commit(&self, offsets: &TopicPartitionList, group: &OffsetsFor) -> KafkaResult<()> {
        self.begin()?;
        if offsets.count() > 0 {
            retrying("sending offsets to the transaction", RETRY_FOR, || match group {
                OffsetsFor::Consumer(group) => self.producer.send_offsets_to_transaction(offsets, group, TXN_TIMEOUT),
                OffsetsFor::Member(member) => {
                    crate::kafka::member_offsets::send_offsets(&self.producer, offsets, member, TXN_TIMEOUT)
                }
            })?;
        }
        retrying("committing the transaction", RETRY_FOR, || self.producer.commit_transaction(TXN_TIMEOUT))?;
        self.set(TxnState::Ready);
        Ok(())
    }

    /// Aborts the open transaction, if any: `InTransaction -> Ready`.
    /// Returns whether one was aborted. The records it purges are not
    /// production failures (they are processed again), so their reports
    /// are dropped.
    pub(crate) fn abort(&self) -> KafkaResult<bool> {
        if !self.in_transaction() {
            return Ok(false);
        }
        // Aborting purges the transaction's queued records and waits until
        // their delivery reports are served, which only polling does: serve
        // them before each attempt.
        let abort = || {
            self.producer.poll(Duration::from_millis(100));
            self.producer.abort_transaction(ABORT_ATTEMPT_TIMEOUT)
        };
        retrying_when(abort_is_retriable, "aborting the transaction", RETRY_FOR, abort)?;
        let _ = self.remember_refused(self.take_failures());
        self.set(TxnState::Ready);
        Ok(true)
    }

    /// Exactly-once, the transaction failed: remembers which of `failures`
    /// the broker refused for a reason of their own, so that processing
    /// their input records again sends them to the policy
    /// ([`refused`](Self::refused)); keeps one no input record produced for
    /// [`take_unroutable`](Self::take_unroutable). The other failures are
    /// processed again. Returns the first refused record's topic and reason.
    pub(crate) fn remember_refused(&self, failures: Vec<DeliveryFailure>) -> Option<String> {
        let mut first = None;
        let tracker = self.producer.context();
        let (refused, _): (Vec<_>, Vec<_>) = failures.into_iter().partition(|f| f.cause == FailureCause::Refused);
        let at_fault = culprits(&refused);
        let refused = refused.into_iter().enumerate().filter(|(i, _)| at_fault.binary_search(i).is_ok());
        for (_, f) in refused {
            first.get_or_insert_with(|| format!("delivery to {} failed: {}", f.topic, f.reason));
            match &f.source {
                Some(source) => {
                    tracing::warn!(
                        topic = %f.topic, record = %source, reason = %f.reason,
                        "the broker refused a record; it goes to errors.production when its input record is processed again"
                    );
                    tracker.refusals.remember(source.clone(), f.topic, f.reason);
                }
                None => {
                    tracker.unroutable.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(f);
                }
            }
        }
        first
    }

    /// If the broker refused what the input record `source` produced for
    /// `topic` in an aborted transaction, why.
    pub(crate) fn refused(&self, source: &SourceOffset, topic: &str) -> Option<String> {
        self.producer.context().refusals.reason(source, topic)
    }

    /// Forgets the refusals of input records below the committed
    /// `offsets` (next offset to read per source partition).
    pub(crate) fn forget_refused(&self, offsets: &TopicPartitionList) {
        self.producer.context().refusals.forget(|s| {
            let committed = offsets.find_partition(&s.topic, s.partition).map(|e| e.offset());
            matches!(committed, Some(rdkafka::Offset::Offset(next)) if s.offset < next)
        });
    }

    /// A refused record that no input record produced (a changelog record,
    /// a marker, an output of a timer or of the commit), if any.
    pub(crate) fn take_unroutable(&self) -> Option<DeliveryFailure> {
        self.producer.context().unroutable.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Whose group metadata fences a transaction's offsets.
pub(crate) enum OffsetsFor {
    /// The consumer's, a member of its group (the consumer protocols).
    Consumer(ConsumerGroupMetadata),
    /// The instance's streams-group member (`group_protocol = "streams"`).
    Member(crate::kafka::member_offsets::GroupMember),
}
