//! The config's one-of-a-few choices: the processing guarantee, the group
//! protocol, the bad-record and out-of-range policies.

use std::fmt;

/// What a commit promises about outputs after a crash: the key
/// `processing_guarantee`, `at_least_once` (the default) or `exactly_once`.
/// It also sets the default commit interval (30 s and 100 ms, as in Kafka
/// Streams).
///
/// ```
/// # fn main() -> Result<(), rivulet::ConfigError> {
/// use std::time::Duration;
/// use rivulet::{Config, ProcessingGuarantee};
/// let config = Config::loader()
///     .env([("RIVULET__APPLICATION_ID", "payments"), ("RIVULET__PROCESSING_GUARANTEE", "exactly_once")])
///     .load()?;
/// assert_eq!(config.processing_guarantee, ProcessingGuarantee::ExactlyOnce);
/// assert_eq!(config.processing_guarantee.to_string(), "exactly_once");
/// assert_eq!(config.commit_interval, Duration::from_millis(100));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessingGuarantee {
    /// Offsets are committed only after outputs are delivered; a crash can
    /// repeat outputs but never lose them.
    AtLeastOnce,
    /// Outputs, changelogs and offsets are committed in one Kafka transaction.
    ExactlyOnce,
}

impl fmt::Display for ProcessingGuarantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AtLeastOnce => "at_least_once",
            Self::ExactlyOnce => "exactly_once",
        })
    }
}

/// How the instances of an application share the partitions: the key
/// `group_protocol`, `consumer` (the default), `classic` or `streams`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupProtocol {
    /// KIP-848's protocol (Kafka 4.0+), assignments computed by the broker and
    /// applied incrementally: tasks that keep their owner keep running.
    Consumer,
    /// The classic protocol (any broker): every rebalance revokes every
    /// partition of the group first.
    Classic,
    /// KIP-1071's streams rebalance protocol (Kafka 4.1+): the broker
    /// assigns active and standby tasks (`runtime::membership`).
    Streams,
}

impl fmt::Display for GroupProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Consumer => "consumer",
            Self::Classic => "classic",
            Self::Streams => "streams",
        })
    }
}

/// What happens to a bad record: see `errors.*` in docs/configuration.md.
/// The keys take `fail` (the default), `skip` or `dead_letter`.
///
/// ```
/// # fn main() -> Result<(), rivulet::ConfigError> {
/// use rivulet::{Config, ErrorPolicy};
/// let config = Config::loader()
///     .env([("RIVULET__APPLICATION_ID", "orders"), ("RIVULET__ERRORS__DESERIALIZATION", "dead_letter")])
///     .load()?;
/// assert_eq!(config.errors.deserialization, ErrorPolicy::DeadLetter);
/// assert_eq!(config.errors.processing, ErrorPolicy::Fail);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorPolicy {
    /// Stop with an error naming the record's topic, partition and offset.
    Fail,
    /// Log, count, and go on.
    Skip,
    /// Write the record and a description of the error to the dead-letter topic, and go on.
    DeadLetter,
}

/// Where a source partition goes on when its committed (or fetch) offset
/// is out of range, its records deleted under the application:
/// `errors.offset_out_of_range`. Every choice is logged as an ERROR and
/// counted in `rivulet_offset_resets_total` (`runtime::offset_reset`).
///
/// ```
/// # fn main() -> Result<(), rivulet::ConfigError> {
/// use rivulet::{Config, OffsetResetPolicy};
/// let config = Config::loader().env([("RIVULET__APPLICATION_ID", "orders")]).load()?;
/// assert_eq!(config.errors.offset_out_of_range, OffsetResetPolicy::Earliest);
/// let config = Config::loader()
///     .env([("RIVULET__APPLICATION_ID", "orders"), ("RIVULET__ERRORS__OFFSET_OUT_OF_RANGE", "fail")])
///     .load()?;
/// assert_eq!(config.errors.offset_out_of_range, OffsetResetPolicy::Fail);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetResetPolicy {
    /// Stop with an error naming the partition, the committed offset and the range still there.
    Fail,
    /// Go on from the partition's first offset still there (the default).
    Earliest,
    /// Go on from the partition's end.
    Latest,
}
