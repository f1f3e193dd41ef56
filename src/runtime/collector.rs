//! The record collector: the one path from a task's nodes to the producer,
//! for outputs, repartition records, watermark markers, changelog records
//! and dead letters. It turns them into Kafka records (headers included)
//! and hands them to the thread's [`StreamsProducer`], which owns the
//! transaction and tracks deliveries.
//!
//! Metrics: an output record's age (wall clock minus its timestamp) is
//! observed when it is sent (`rivulet_end_to_end_latency_seconds`), for
//! outputs only: not changelog, repartition or dead-letter records.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;

use crate::metrics::Metrics;
use crate::processor::collector::{Collector, Outgoing};
use crate::processor::time::RECORD_MARK_HEADER;
use crate::processor::wall_clock_ms;
use crate::processor::ProcessError;
use crate::record::SourceOffset;
use crate::runtime::producer::StreamsProducer;
pub(crate) use crate::runtime::producer::{DeliveryFailure, DeliveryTracker, FailureCause, ThreadProducer};
use crate::runtime::refused::{Sent, Source};

/// Sends records through the thread's producer; under exactly-once the
/// first record of a commit cycle begins its transaction.
#[derive(Clone)]
pub(crate) struct RecordCollector {
    producer: StreamsProducer,
    latency: Option<Arc<OutputLatency>>,
    /// The input record of the last output, shared by its outputs'
    /// delivery reports.
    source: RefCell<Source>,
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
        let source = RefCell::new(Arc::new(Sent { source: None, timestamp: 0 }));
        RecordCollector { producer: StreamsProducer::new(producer, transactional), latency: None, source }
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

    /// The opaque of a record for its delivery report: the last one again
    /// while the input record and the timestamp stay the same.
    fn sent(&self, source: Option<&SourceOffset>, timestamp: i64) -> Source {
        let mut last = self.source.borrow_mut();
        if last.timestamp != timestamp || last.source.as_ref() != source {
            *last = Arc::new(Sent { source: source.cloned(), timestamp });
        }
        last.clone()
    }
}

impl Collector for RecordCollector {
    /// Queues one record. A full queue is drained by serving delivery
    /// reports; any other refusal is a production error for the policy.
    fn produce(&self, out: Outgoing<'_>) -> Result<(), ProcessError> {
        let topic = out.topic;
        // Refused in an aborted transaction: to the policy this time.
        if let Some(reason) = out.source.and_then(|s| self.producer.refused(s, topic)) {
            return Err(ProcessError::Produce {
                topic: topic.to_string(),
                reason,
                key: out.key.map(<[u8]>::to_vec),
                value: out.value.map(<[u8]>::to_vec),
            });
        }
        self.producer.begin().map_err(|e| ProcessError::TransactionFailed {
            topic: topic.to_string(),
            reason: format!("cannot begin a transaction: {e}"),
        })?;
        let mut record =
            BaseRecord::with_opaque_to(topic, self.sent(out.source, out.timestamp)).timestamp(out.timestamp);
        if let Some(p) = out.partition {
            record = record.partition(p);
        }
        if let Some(k) = out.key {
            record = record.key(k);
        }
        if let Some(v) = out.value {
            record = record.payload(v);
        }
        if !out.headers.is_empty() || out.mark.is_some() {
            let mut hs = OwnedHeaders::new_with_capacity(out.headers.len() + usize::from(out.mark.is_some()));
            for (k, v) in out.headers {
                hs = hs.insert(Header { key: k, value: v.as_deref() });
            }
            if let Some(mark) = out.mark {
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
                    key: out.key.map(<[u8]>::to_vec),
                    value: out.value.map(<[u8]>::to_vec),
                }
            }
        })
    }

    /// Queues a record the task's nodes write, observing its age when it
    /// is an output. Watermark markers and dead letters are not outputs:
    /// they go straight to [`Collector::produce`].
    fn send(&self, out: Outgoing<'_>) -> Result<(), ProcessError> {
        if let Some(latency) = &self.latency {
            latency.observe(out.topic, out.timestamp);
        }
        self.produce(out)
    }

    /// The highest offset delivered to a changelog partition since the last
    /// call, which forgets it.
    fn take_changelog_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.producer.take_changelog_offset(topic, partition)
    }
}
