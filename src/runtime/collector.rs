//! The record collector: the one path from a task's nodes to the producer,
//! for outputs, repartition records, watermark markers, changelog records
//! and dead letters. It turns them into Kafka records (headers included)
//! and hands them to the thread's [`StreamsProducer`], which owns the
//! transaction and tracks deliveries.
//!
//! Metrics: an output record's age (wall clock minus its timestamp) is
//! observed when it is sent (`rivulet_end_to_end_latency_seconds`), for
//! outputs only: not changelog, repartition or dead-letter records.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;

use crate::metrics::Metrics;
use crate::processor::collector::Collector;
use crate::processor::time::{MARKER_HEADER, RECORD_MARK_HEADER};
use crate::processor::wall_clock_ms;
use crate::processor::ProcessError;
use crate::record::Headers;
use crate::runtime::producer::StreamsProducer;
pub(crate) use crate::runtime::producer::{DeliveryFailure, DeliveryTracker, ThreadProducer};

/// Sends records through the thread's producer; under exactly-once the
/// first record of a commit cycle begins its transaction.
#[derive(Clone)]
pub(crate) struct RecordCollector {
    producer: StreamsProducer,
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
        RecordCollector { producer: StreamsProducer::new(producer, transactional), latency: None }
    }

    /// Observes the end-to-end latency of output records into `metrics`.
    pub(crate) fn with_metrics(mut self, metrics: Arc<Metrics>, application_id: &str) -> Self {
        self.latency = Some(Arc::new(OutputLatency { metrics, internal_prefix: format!("{application_id}-") }));
        self
    }

    /// The thread's producer, owner of the transaction.
    pub(crate) fn producer(&self) -> &StreamsProducer {
        &self.producer
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
        self.producer.begin().map_err(|e| ProcessError::TransactionFailed {
            topic: topic.to_string(),
            reason: format!("cannot begin a transaction: {e}"),
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
        self.producer.send(record).map_err(|e: KafkaError| {
            if self.producer.transaction_failed(&e) {
                ProcessError::TransactionFailed { topic: topic.to_string(), reason: e.to_string() }
            } else {
                ProcessError::Produce {
                    topic: topic.to_string(),
                    reason: e.to_string(),
                    key: key.map(<[u8]>::to_vec),
                    value: value.map(<[u8]>::to_vec),
                }
            }
        })
    }

    /// Serves delivery reports without waiting.
    pub(crate) fn poll(&self) {
        self.producer.poll();
    }

    /// Waits until every queued record is delivered or failed.
    pub(crate) fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }

    /// Failures reported since the last call.
    pub(crate) fn take_failures(&self) -> Vec<DeliveryFailure> {
        self.producer.take_failures()
    }
}

impl Collector for RecordCollector {
    /// Queues one record. A full queue is drained by serving delivery
    /// reports; any other refusal is a production error for the policy.
    /// `mark` (records to a repartition topic) is the writing task's
    /// watermark, sent as the `rivulet.upstream` header after `headers`.
    #[allow(clippy::too_many_arguments)]
    fn send(
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
    fn send_marker(&self, topic: &str, partition: i32, timestamp: i64, mark: &[u8]) -> Result<(), ProcessError> {
        let headers: Headers = vec![(MARKER_HEADER.to_string(), Some(mark.to_vec()))];
        self.produce(topic, Some(partition), None, None, timestamp, &headers, None)
    }

    /// Queues a record for the dead-letter topic (not an output: its age
    /// is not observed).
    fn send_dead_letter(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &Headers,
    ) -> Result<(), ProcessError> {
        self.produce(topic, None, key, value, wall_clock_ms(), headers, None)
    }

    /// The highest offset delivered to a changelog partition since the last
    /// call, which forgets it.
    fn take_changelog_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.producer.take_changelog_offset(topic, partition)
    }
}
