//! The instance's metrics: one Prometheus [`Registry`] per [`App`](crate::App),
//! served as text at `/metrics` (see docs/metrics.md for every metric).
//!
//! A registry per application, not the process-wide default one, so that
//! several applications (tests) in one process keep their numbers apart.
//!
//! The record path must stay cheap: labelled counters are looked up once
//! (per topic when the task manager interns the topic, per sub-topology
//! when it is created) and then incremented through the cached handle, so a
//! record costs a few atomic additions and no label formatting. Labels are
//! bounded: topic, partition, store, sub-topology, broker; never a key.
//!
//! The gauges fed by librdkafka's statistics (`statistics.interval.ms`,
//! every 5 s unless set) are updated from the clients' statistics
//! callbacks; producer queues of several threads are summed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use rdkafka::statistics::Statistics;

use crate::error::{Error, Result};

/// How a commit cycle ended, the `result` label of `rivulet_commits_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CommitResult {
    /// Offsets (and under exactly-once the transaction) were committed.
    Committed,
    /// The transaction was aborted; the tasks rewound.
    Aborted,
    /// The cycle failed with an error (the thread stops or rejoins).
    Failed,
}

impl CommitResult {
    fn label(self) -> &'static str {
        match self {
            CommitResult::Committed => "committed",
            CommitResult::Aborted => "aborted",
            CommitResult::Failed => "failed",
        }
    }
}

/// Every metric of one application. Built by [`Metrics::new`], shared by the
/// processing threads and the HTTP server.
pub(crate) struct Metrics {
    registry: Registry,
    records_consumed: IntCounterVec,
    records_produced: IntCounterVec,
    records_processed: IntCounterVec,
    pub(crate) processing_latency: Histogram,
    pub(crate) end_to_end_latency: Histogram,
    pub(crate) commit_duration: Histogram,
    commits: IntCounterVec,
    pub(crate) transaction_aborts: IntCounter,
    pub(crate) rebalances: IntCounter,
    pub(crate) tasks_started: IntCounter,
    pub(crate) tasks_closed: IntCounter,
    pub(crate) rebalance_duration: Histogram,
    assigned_tasks: IntGaugeVec,
    standby_records: IntCounter,
    restore_remaining: IntGaugeVec,
    restore_restored: IntGaugeVec,
    consumer_lag: IntGaugeVec,
    late_records: IntCounterVec,
    bad_records: IntCounterVec,
    pub(crate) dead_letter_records: IntCounter,
    /// Offsets skipped because they were out of range (`runtime::offset_reset`).
    pub(crate) offset_resets: IntCounterVec,
    store_size: IntGaugeVec,
    broker_rtt: GaugeVec,
    producer_queue: IntGauge,
    pub(crate) ready: IntGauge,
    /// Each thread's producer queue, summed into `producer_queue`.
    producer_queues: Mutex<BTreeMap<usize, i64>>,
    /// Each thread's store sizes by store name, summed into `store_size`.
    store_sizes: Mutex<BTreeMap<usize, HashMap<String, u64>>>,
}

/// Seconds, from a tenth of a millisecond up: per-record processing.
const RECORD_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];
/// Seconds, from a millisecond to an hour: how old a record is when its output is written.
const END_TO_END_BUCKETS: &[f64] =
    &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0];
/// Seconds, from a millisecond to a minute: commits and rebalances.
const CYCLE_BUCKETS: &[f64] =
    &[0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

impl Metrics {
    /// A fresh registry holding every rivulet metric.
    pub(crate) fn new() -> Result<Metrics> {
        let registry = Registry::new();
        let r = Registrar { registry: &registry };
        let metrics = Metrics {
            records_consumed: r.counter_vec(
                "rivulet_records_consumed_total",
                "Source records handed to a task, per source topic.",
                &["topic"],
            )?,
            records_produced: r.counter_vec(
                "rivulet_records_produced_total",
                "Records the broker acknowledged, per topic written (outputs, repartition, changelog, dead-letter).",
                &["topic"],
            )?,
            records_processed: r.counter_vec(
                "rivulet_records_processed_total",
                "Source records run through a sub-topology (including those that went to a bad-record policy).",
                &["subtopology"],
            )?,
            processing_latency: r.histogram(
                "rivulet_processing_latency_seconds",
                "Time to run one source record through its task (one record in 16 is timed).",
                RECORD_BUCKETS,
            )?,
            end_to_end_latency: r.histogram(
                "rivulet_end_to_end_latency_seconds",
                "Wall-clock time minus the record timestamp, when an output record is produced.",
                END_TO_END_BUCKETS,
            )?,
            commit_duration: r.histogram(
                "rivulet_commit_duration_seconds",
                "Duration of one commit cycle (changelogs, flush, offsets, local stores).",
                CYCLE_BUCKETS,
            )?,
            commits: r.counter_vec("rivulet_commits_total", "Commit cycles by how they ended.", &["result"])?,
            transaction_aborts: r.counter("rivulet_transaction_aborts_total", "Kafka transactions aborted.")?,
            rebalances: r.counter("rivulet_rebalances_total", "Partition assignments received by the consumers.")?,
            tasks_started: r.counter(
                "rivulet_tasks_started_total",
                "Tasks started on this instance (state restored if needed, processing).",
            )?,
            tasks_closed: r.counter(
                "rivulet_tasks_closed_total",
                "Tasks closed on this instance because their partitions moved away or the instance stopped.",
            )?,
            rebalance_duration: r.histogram(
                "rivulet_rebalance_duration_seconds",
                "Time spent handling one revocation (commit, close tasks) or assignment.",
                CYCLE_BUCKETS,
            )?,
            assigned_tasks: r.gauge_vec("rivulet_assigned_tasks", "Tasks of this instance by state.", &["state"])?,
            standby_records: r.counter(
                "rivulet_standby_records_total",
                "Changelog records applied to this instance's standby tasks.",
            )?,
            restore_remaining: r.gauge_vec(
                "rivulet_restore_remaining_records",
                "Changelog records left to replay into a store partition being restored.",
                &["store", "partition"],
            )?,
            restore_restored: r.gauge_vec(
                "rivulet_restore_restored_records",
                "Changelog records replayed into a store partition by its latest restore.",
                &["store", "partition"],
            )?,
            consumer_lag: r.gauge_vec(
                "rivulet_consumer_lag",
                "Records between the committed offset and the end of a source partition (librdkafka consumer_lag).",
                &["topic", "partition"],
            )?,
            late_records: r.counter_vec(
                "rivulet_late_records_total",
                "Records that arrived for a window or timer already closed.",
                &["subtopology"],
            )?,
            bad_records: r.counter_vec(
                "rivulet_bad_records_total",
                "Records that failed, by kind of failure and the policy applied.",
                &["kind", "policy"],
            )?,
            dead_letter_records: r
                .counter("rivulet_dead_letter_records_total", "Records written to the dead-letter topic.")?,
            offset_resets: r.counter_vec(
                "rivulet_offset_resets_total",
                "Offsets of a source partition skipped because they were out of range (deleted).",
                &["topic", "partition"],
            )?,
            store_size: r.gauge_vec(
                "rivulet_store_size_bytes",
                "Estimated size of a store over this instance's tasks (RocksDB live data and memtables).",
                &["store"],
            )?,
            broker_rtt: r.float_gauge_vec(
                "rivulet_kafka_broker_rtt_seconds",
                "Average round-trip time to a broker, from librdkafka statistics.",
                &["broker"],
            )?,
            producer_queue: r.gauge(
                "rivulet_kafka_producer_queue_messages",
                "Messages waiting in the producers' queues, from librdkafka statistics.",
            )?,
            ready: r.gauge("rivulet_ready", "1 when /health/ready answers 200, else 0.")?,
            producer_queues: Mutex::new(BTreeMap::new()),
            store_sizes: Mutex::new(BTreeMap::new()),
            registry,
        };
        for state in ["restoring", "running"] {
            metrics.assigned_tasks.with_label_values(&[state]).set(0);
        }
        for result in [CommitResult::Committed, CommitResult::Aborted, CommitResult::Failed] {
            metrics.commits.with_label_values(&[result.label()]);
        }
        Ok(metrics)
    }

    /// Every metric in the Prometheus text format.
    pub(crate) fn render(&self) -> Result<String> {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .map_err(|e| Error::Internal(format!("encoding metrics: {e}")))?;
        String::from_utf8(out).map_err(|e| Error::Internal(format!("encoding metrics: {e}")))
    }

    /// The counter of records consumed from `topic`, to cache.
    pub(crate) fn consumed(&self, topic: &str) -> IntCounter {
        self.records_consumed.with_label_values(&[topic])
    }

    /// The counter of records produced to `topic`, to cache.
    pub(crate) fn produced(&self, topic: &str) -> IntCounter {
        self.records_produced.with_label_values(&[topic])
    }

    /// The counters of a sub-topology, to cache.
    pub(crate) fn subtopology(&self, id: usize) -> SubtopologyMetrics {
        let label = id.to_string();
        SubtopologyMetrics {
            processed: self.records_processed.with_label_values(&[&label]),
            late: self.late_records.with_label_values(&[&label]),
        }
    }

    /// Counts a commit cycle and its duration.
    pub(crate) fn commit(&self, result: CommitResult, took: Duration) {
        self.commits.with_label_values(&[result.label()]).inc();
        self.commit_duration.observe(took.as_secs_f64());
    }

    /// Adds a thread's change in its task counts.
    pub(crate) fn add_tasks(&self, running: i64, restoring: i64) {
        self.assigned_tasks.with_label_values(&["running"]).add(running);
        self.assigned_tasks.with_label_values(&["restoring"]).add(restoring);
    }

    /// Standby tasks opened (`+1`) or closed (`-1`); changelog records
    /// applied to standbys.
    pub(crate) fn add_standby(&self, tasks: i64, records: u64) {
        self.assigned_tasks.with_label_values(&["standby"]).add(tasks);
        self.standby_records.inc_by(records);
    }

    /// Progress of one store partition's restore.
    pub(crate) fn restore_progress(&self, store: &str, partition: i32, remaining: i64, restored: u64) {
        let partition = partition.to_string();
        self.restore_remaining.with_label_values(&[store, &partition]).set(remaining.max(0));
        self.restore_restored.with_label_values(&[store, &partition]).set(i64::try_from(restored).unwrap_or(i64::MAX));
    }

    /// A store partition that stopped restoring before it was done (its
    /// task was revoked) loses its series.
    pub(crate) fn forget_restore(&self, store: &str, partition: i32) {
        let partition = partition.to_string();
        let _ = self.restore_remaining.remove_label_values(&[store, &partition]);
        let _ = self.restore_restored.remove_label_values(&[store, &partition]);
    }

    /// A bad record handled by `policy`.
    pub(crate) fn bad_record(&self, kind: &str, policy: &str) {
        self.bad_records.with_label_values(&[kind, policy]).inc();
    }

    /// Replaces thread `thread`'s store sizes (bytes per store name).
    pub(crate) fn set_store_sizes(&self, thread: usize, sizes: HashMap<String, u64>) {
        let mut all = self.store_sizes.lock().unwrap_or_else(PoisonError::into_inner);
        let mut names: HashSet<String> = sizes.keys().cloned().collect();
        if let Some(before) = all.insert(thread, sizes) {
            names.extend(before.into_keys());
        }
        for name in names {
            let total: u64 = all.values().filter_map(|s| s.get(&name)).sum();
            self.store_size.with_label_values(&[&name]).set(i64::try_from(total).unwrap_or(i64::MAX));
        }
    }

    /// Reads a consumer's statistics: the lag of the partitions it consumes.
    /// `owned` holds the partitions this consumer reported last time; those
    /// it no longer consumes lose their series.
    pub(crate) fn consumer_stats(&self, stats: &Statistics, owned: &mut HashSet<(String, i32)>) {
        let mut now = HashSet::new();
        for (topic, t) in &stats.topics {
            for (&partition, p) in &t.partitions {
                // -1 is librdkafka's internal "unassigned" partition; a
                // negative lag means this consumer does not consume it.
                if partition < 0 || p.consumer_lag < 0 {
                    continue;
                }
                self.consumer_lag.with_label_values(&[topic.as_str(), &partition.to_string()]).set(p.consumer_lag);
                now.insert((topic.clone(), partition));
            }
        }
        for (topic, partition) in owned.difference(&now) {
            // Absent already when another thread's consumer took it over.
            let _ = self.consumer_lag.remove_label_values(&[topic.as_str(), &partition.to_string()]);
        }
        *owned = now;
        self.broker_stats(stats);
    }

    /// Reads a producer's statistics: its queue, and round-trip times.
    pub(crate) fn producer_stats(&self, thread: usize, stats: &Statistics) {
        let mut queues = self.producer_queues.lock().unwrap_or_else(PoisonError::into_inner);
        queues.insert(thread, i64::try_from(stats.msg_cnt).unwrap_or(i64::MAX));
        self.producer_queue.set(queues.values().sum());
        drop(queues);
        self.broker_stats(stats);
    }

    /// A producer that is gone queues nothing.
    pub(crate) fn forget_producer(&self, thread: usize) {
        let mut queues = self.producer_queues.lock().unwrap_or_else(PoisonError::into_inner);
        queues.remove(&thread);
        self.producer_queue.set(queues.values().sum());
    }

    fn broker_stats(&self, stats: &Statistics) {
        for broker in stats.brokers.values() {
            // Only real brokers: not the bootstrap entries or the logical
            // coordinator handles librdkafka also lists.
            if broker.nodeid < 0 || broker.source != "learned" {
                continue;
            }
            if let Some(rtt) = broker.rtt.as_ref().filter(|w| w.cnt > 0) {
                self.broker_rtt.with_label_values(&[broker.name.as_str()]).set(rtt.avg as f64 / 1e6);
            }
        }
    }
}

/// Cached counters of one sub-topology.
#[derive(Clone)]
pub(crate) struct SubtopologyMetrics {
    pub(crate) processed: IntCounter,
    pub(crate) late: IntCounter,
}

/// Creates metrics and registers them, naming the metric in errors.
struct Registrar<'a> {
    registry: &'a Registry,
}

impl Registrar<'_> {
    fn register<M: prometheus::core::Collector + Clone + 'static>(&self, name: &str, m: M) -> Result<M> {
        self.registry
            .register(Box::new(m.clone()))
            .map_err(|e| Error::Internal(format!("registering metric {name}: {e}")))?;
        Ok(m)
    }

    fn counter(&self, name: &str, help: &str) -> Result<IntCounter> {
        let m = IntCounter::with_opts(Opts::new(name, help)).map_err(|e| bad(name, e))?;
        self.register(name, m)
    }

    fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> Result<IntCounterVec> {
        let m = IntCounterVec::new(Opts::new(name, help), labels).map_err(|e| bad(name, e))?;
        self.register(name, m)
    }

    fn gauge(&self, name: &str, help: &str) -> Result<IntGauge> {
        let m = IntGauge::with_opts(Opts::new(name, help)).map_err(|e| bad(name, e))?;
        self.register(name, m)
    }

    fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> Result<IntGaugeVec> {
        let m = IntGaugeVec::new(Opts::new(name, help), labels).map_err(|e| bad(name, e))?;
        self.register(name, m)
    }

    fn float_gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> Result<GaugeVec> {
        let m = GaugeVec::new(Opts::new(name, help), labels).map_err(|e| bad(name, e))?;
        self.register(name, m)
    }

    fn histogram(&self, name: &str, help: &str, buckets: &[f64]) -> Result<Histogram> {
        let m =
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec())).map_err(|e| bad(name, e))?;
        self.register(name, m)
    }
}

fn bad(name: &str, e: prometheus::Error) -> Error {
    Error::Internal(format!("defining metric {name}: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn every_documented_metric_is_registered_and_documented() {
        let m = Metrics::new().unwrap();
        m.consumed("in").inc();
        m.produced("out").inc();
        let s = m.subtopology(0);
        s.processed.inc();
        s.late.inc();
        m.restore_progress("counts", 0, 5, 10);
        m.bad_record("deserialization", "skip");
        m.offset_resets.with_label_values(&["in", "0"]).inc_by(3);
        m.set_store_sizes(0, HashMap::from([("counts".to_string(), 100)]));
        m.broker_rtt.with_label_values(&["b:9092/1"]).set(0.001);
        m.consumer_lag.with_label_values(&["in", "0"]).set(1);
        m.processing_latency.observe(0.001);
        m.end_to_end_latency.observe(0.1);
        m.rebalance_duration.observe(0.1);
        m.add_standby(1, 10);
        let text = m.render().unwrap();
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md")).unwrap();
        let names: HashSet<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        assert_eq!(names.len(), 25, "{names:?}");
        for name in names {
            assert!(doc.contains(&format!("`{name}`")), "docs/metrics.md does not describe {name}");
        }
    }

    #[test]
    fn store_sizes_add_up_over_threads_and_a_thread_that_reports_none_drops_out() {
        let m = Metrics::new().unwrap();
        m.set_store_sizes(0, HashMap::from([("counts".to_string(), 100)]));
        m.set_store_sizes(1, HashMap::from([("counts".to_string(), 50)]));
        assert_eq!(m.store_size.with_label_values(&["counts"]).get(), 150);
        m.set_store_sizes(0, HashMap::new());
        assert_eq!(m.store_size.with_label_values(&["counts"]).get(), 50);
    }

    #[test]
    fn consumer_lag_follows_the_partitions_a_consumer_reports() {
        let m = Metrics::new().unwrap();
        let stats = |lags: &[(i32, i64)]| -> Statistics {
            use rdkafka::statistics::{Partition, Topic};
            let partitions = lags
                .iter()
                .map(|&(partition, consumer_lag)| {
                    (partition, Partition { partition, consumer_lag, ..Default::default() })
                })
                .collect();
            let topic = Topic { topic: "in".into(), partitions, ..Default::default() };
            Statistics { topics: HashMap::from([("in".to_string(), topic)]), ..Default::default() }
        };
        let mut owned = HashSet::new();
        m.consumer_stats(&stats(&[(0, 7), (1, 3), (-1, -1)]), &mut owned);
        let text = m.render().unwrap();
        assert!(text.contains("rivulet_consumer_lag{partition=\"0\",topic=\"in\"} 7"), "{text}");
        assert!(!text.contains("partition=\"-1\""), "{text}");
        m.consumer_stats(&stats(&[(0, 2), (1, -1)]), &mut owned);
        let text = m.render().unwrap();
        assert!(text.contains("rivulet_consumer_lag{partition=\"0\",topic=\"in\"} 2"), "{text}");
        assert!(!text.contains("rivulet_consumer_lag{partition=\"1\""), "{text}");
    }
}
