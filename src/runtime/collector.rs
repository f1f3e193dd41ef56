//! The record collector: the one place outputs, repartition records and
//! changelog records reach the producer.
//!
//! librdkafka delivers asynchronously; the collector's [`DeliveryTracker`]
//! (the producer's context) records what it learns in delivery reports:
//! the highest offset written per changelog partition (the offset the local
//! store is brought up to at commit) and every record that failed, for the
//! production-error policy. Delivery reports are served on the processing
//! thread, from `poll` and `flush`.
//!
//! Metrics: records the broker acknowledged are counted per topic in the
//! delivery reports (`rivulet_records_produced_total`, handles cached per
//! topic); an output record's age (wall clock minus its timestamp) is
//! observed when it is sent (`rivulet_end_to_end_latency_seconds`), for
//! outputs only: not changelog, repartition or dead-letter records.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::IntCounter;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Message};

use crate::metrics::Metrics;
use crate::record::Headers;
use crate::runtime::wall_clock_ms;
use crate::topology::time::{MARKER_HEADER, RECORD_MARK_HEADER};
use crate::topology::ProcessError;

/// An output record the broker did not accept.
#[derive(Debug, Clone)]
pub(crate) struct DeliveryFailure {
    pub(crate) topic: String,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) reason: String,
}

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
}

impl DeliveryTracker {
    /// A tracker that feeds the metrics of processing thread `thread`.
    pub(crate) fn with_metrics(metrics: Arc<Metrics>, thread: usize) -> Self {
        DeliveryTracker { deliveries: Mutex::default(), metrics: Some((metrics, thread)) }
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
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        // A poisoned lock still holds every report gathered so far; losing
        // one would lose a failed delivery.
        let mut d = self.deliveries.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(m) => {
                let topic = m.topic();
                // Reports come in runs of one topic: look the topic up only
                // when it changes.
                if !d.last.as_ref().is_some_and(|l| l.topic == topic) {
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
            Err((e, m)) => d.failures.push(DeliveryFailure {
                topic: m.topic().to_string(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                reason: e.to_string(),
            }),
        }
    }
}

pub(crate) type ThreadProducer = BaseProducer<DeliveryTracker>;

/// Sends records through the thread's producer. Under exactly-once the
/// producer is transactional and the collector begins a transaction before
/// the first record of each commit cycle.
#[derive(Clone)]
pub(crate) struct RecordCollector {
    producer: Arc<ThreadProducer>,
    transactional: bool,
    in_transaction: Arc<AtomicBool>,
    latency: Option<Arc<OutputLatency>>,
}

/// Observes how old output records are when they are sent.
struct OutputLatency {
    metrics: Arc<Metrics>,
    /// `<application_id>-`: internal topics start with it.
    internal_prefix: String,
}

impl OutputLatency {
    fn observe(&self, topic: &str, timestamp: i64) {
        let internal = topic.starts_with(&self.internal_prefix)
            && (topic.ends_with("-changelog") || topic.ends_with("-repartition"));
        if !internal {
            let age_ms = wall_clock_ms().saturating_sub(timestamp).max(0);
            self.metrics.end_to_end_latency.observe(age_ms as f64 / 1000.0);
        }
    }
}

impl RecordCollector {
    pub(crate) fn new(producer: Arc<ThreadProducer>, transactional: bool) -> Self {
        RecordCollector { producer, transactional, in_transaction: Arc::new(AtomicBool::new(false)), latency: None }
    }

    /// Observes the end-to-end latency of output records into `metrics`.
    pub(crate) fn with_metrics(mut self, metrics: Arc<Metrics>, application_id: &str) -> Self {
        self.latency = Some(Arc::new(OutputLatency { metrics, internal_prefix: format!("{application_id}-") }));
        self
    }

    pub(crate) fn producer(&self) -> &ThreadProducer {
        &self.producer
    }

    /// Begins a transaction unless one is open (exactly-once only).
    pub(crate) fn ensure_transaction(&self) -> Result<(), KafkaError> {
        if self.transactional && !self.in_transaction.load(Ordering::Relaxed) {
            self.producer.begin_transaction()?;
            self.in_transaction.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Whether a transaction is open.
    pub(crate) fn in_transaction(&self) -> bool {
        self.in_transaction.load(Ordering::Relaxed)
    }

    /// The open transaction was committed or aborted.
    pub(crate) fn transaction_ended(&self) {
        self.in_transaction.store(false, Ordering::Relaxed);
    }

    /// Queues one record. A full queue is drained by serving delivery
    /// reports; any other refusal is a production error for the policy.
    /// `mark` (records to a repartition topic) is the writing task's
    /// watermark, sent as the `rivulet.upstream` header after `headers`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
        headers: &Headers,
        mark: Option<&[u8]>,
    ) -> Result<(), ProcessError> {
        if let Some(latency) = &self.latency {
            latency.observe(topic, timestamp);
        }
        self.produce(topic, partition, key, value, timestamp, headers, mark)
    }

    /// Queues a watermark marker (no key, no value, the marker header) for
    /// one partition of a repartition topic. Not an output: its age is not
    /// observed.
    pub(crate) fn send_marker(
        &self,
        topic: &str,
        partition: i32,
        timestamp: i64,
        mark: &[u8],
    ) -> Result<(), ProcessError> {
        let headers: Headers = vec![(MARKER_HEADER.to_string(), Some(mark.to_vec()))];
        self.produce(topic, Some(partition), None, None, timestamp, &headers, None)
    }

    /// Queues a record for the dead-letter topic (not an output: its age
    /// is not observed).
    pub(crate) fn send_dead_letter(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &Headers,
    ) -> Result<(), ProcessError> {
        self.produce(topic, None, key, value, wall_clock_ms(), headers, None)
    }

    #[allow(clippy::too_many_arguments)]
    fn produce(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
        headers: &Headers,
        mark: Option<&[u8]>,
    ) -> Result<(), ProcessError> {
        self.ensure_transaction().map_err(|e| ProcessError::Produce {
            topic: topic.to_string(),
            reason: format!("cannot begin a transaction: {e}"),
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
        })?;
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).timestamp(timestamp);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(v) = value {
            record = record.payload(v);
        }
        if !headers.is_empty() || mark.is_some() {
            let mut hs = OwnedHeaders::new_with_capacity(headers.len() + usize::from(mark.is_some()));
            for (k, v) in headers {
                hs = hs.insert(Header { key: k, value: v.as_deref() });
            }
            if let Some(mark) = mark {
                hs = hs.insert(Header { key: RECORD_MARK_HEADER, value: Some(mark) });
            }
            record = record.headers(hs);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    self.producer.poll(Duration::from_millis(50));
                    record = r;
                }
                Err((e, _)) => {
                    return Err(ProcessError::Produce {
                        topic: topic.to_string(),
                        reason: e.to_string(),
                        key: key.map(<[u8]>::to_vec),
                        value: value.map(<[u8]>::to_vec),
                    })
                }
            }
        }
    }

    /// Serves delivery reports without waiting.
    pub(crate) fn poll(&self) {
        self.producer.poll(Duration::ZERO);
    }

    /// Waits until every queued record is delivered or failed.
    pub(crate) fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
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
}
