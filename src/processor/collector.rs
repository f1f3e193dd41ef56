//! Where a task's records go: Kafka Streams' `RecordCollector` interface.
//!
//! Sinks, repartition writes, watermark markers, changelog writes and dead
//! letters all leave a task through one [`Collector`]. The runtime's is
//! [`RecordCollector`](crate::runtime::collector::RecordCollector), which
//! produces to Kafka inside the thread's transaction; the test driver's
//! keeps the records in memory.

use crate::processor::time::MARKER_HEADER;
use crate::processor::{wall_clock_ms, ProcessError};
use crate::record::{Headers, SourceOffset};

/// A record on its way out of a task, as bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outgoing<'a> {
    /// The topic it goes to.
    pub(crate) topic: &'a str,
    /// Its partition; `None`: the producer's partitioner picks.
    pub(crate) partition: Option<i32>,
    /// The key's bytes (`None`: a Kafka null key).
    pub(crate) key: Option<&'a [u8]>,
    /// The value's bytes (`None`: a tombstone).
    pub(crate) value: Option<&'a [u8]>,
    /// Its timestamp, ms since the epoch.
    pub(crate) timestamp: i64,
    /// Its headers, in order.
    pub(crate) headers: &'a Headers,
    /// For records to a repartition topic: the writing task's watermark,
    /// sent as the `rivulet.upstream` header after `headers`.
    pub(crate) mark: Option<&'a [u8]>,
    /// The input record it is produced for (`None` for changelog records,
    /// markers, dead letters, and outputs of timers and of the commit).
    pub(crate) source: Option<&'a SourceOffset>,
}

/// Where a task's records go. An implementation writes records
/// ([`Collector::produce`]); the kinds of record a task sends are built on
/// it here.
pub(crate) trait Collector {
    /// Queues one record as it is. A refusal is a
    /// [`ProcessError::Produce`] for the production policy, or
    /// [`ProcessError::TransactionFailed`].
    fn produce(&self, record: Outgoing<'_>) -> Result<(), ProcessError>;

    /// Queues a record a task's nodes write: an output, a repartition or a
    /// changelog record (the runtime's collector observes the age of
    /// outputs).
    fn send(&self, record: Outgoing<'_>) -> Result<(), ProcessError> {
        self.produce(record)
    }

    /// Queues a watermark marker (no key, no value, the marker header) for
    /// one partition of a repartition topic. Not an output.
    fn send_marker(&self, topic: &str, partition: i32, timestamp: i64, mark: &[u8]) -> Result<(), ProcessError> {
        let headers: Headers = vec![(MARKER_HEADER.to_string(), Some(mark.to_vec()))];
        let marker = Outgoing {
            topic,
            partition: Some(partition),
            key: None,
            value: None,
            timestamp,
            headers: &headers,
            mark: None,
            source: None,
        };
        self.produce(marker)
    }

    /// Queues a record for the dead-letter topic, stamped with the wall
    /// clock. Not an output.
    fn send_dead_letter(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &Headers,
    ) -> Result<(), ProcessError> {
        let timestamp = wall_clock_ms();
        self.produce(Outgoing { topic, partition: None, key, value, timestamp, headers, mark: None, source: None })
    }

    /// The highest offset delivered to a changelog partition since the last
    /// call, which forgets it.
    fn take_changelog_offset(&self, topic: &str, partition: i32) -> Option<i64>;
}
