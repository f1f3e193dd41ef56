//! Where a task's records go: Kafka Streams' `RecordCollector` interface.
//!
//! Sinks, repartition writes, watermark markers, changelog writes and dead
//! letters all leave a task through one [`Collector`]. The runtime's is
//! [`RecordCollector`](crate::runtime::collector::RecordCollector), which
//! produces to Kafka inside the thread's transaction; the test driver's
//! keeps the records in memory.

use crate::processor::ProcessError;
use crate::record::Headers;

/// Where a task's records go.
pub(crate) trait Collector {
    /// Queues one record. `mark` (records to a repartition topic) is the
    /// writing task's watermark, sent as the `rivulet.upstream` header after
    /// `headers`. A refusal is a [`ProcessError::Produce`] for the
    /// production policy, or [`ProcessError::TransactionFailed`].
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
    ) -> Result<(), ProcessError>;

    /// Queues a watermark marker (no key, no value, the marker header) for
    /// one partition of a repartition topic. Not an output.
    fn send_marker(&self, topic: &str, partition: i32, timestamp: i64, mark: &[u8]) -> Result<(), ProcessError>;

    /// Queues a record for the dead-letter topic. Not an output.
    fn send_dead_letter(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &Headers,
    ) -> Result<(), ProcessError>;

    /// The highest offset delivered to a changelog partition since the last
    /// call, which forgets it.
    fn take_changelog_offset(&self, topic: &str, partition: i32) -> Option<i64>;
}
