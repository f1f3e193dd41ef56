//! The record that flows through a topology.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Kafka record headers: names with optional values, in order.
pub type Headers = Vec<(String, Option<Vec<u8>>)>;

/// A keyed, timestamped record inside a topology.
///
/// Every record carries a timestamp in milliseconds (the Kafka record
/// timestamp by default), which sinks write to Kafka and from which stream
/// time advances.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<K, V> {
    /// The key.
    pub key: K,
    /// The value.
    pub value: V,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// Headers, passed through from the source record unless changed.
    pub headers: Headers,
}

impl<K, V> Record<K, V> {
    /// A record with no headers.
    pub fn new(key: K, value: V, timestamp: i64) -> Self {
        Record { key, value, timestamp, headers: Headers::new() }
    }

    /// The same record with another key and value, keeping timestamp and headers.
    pub fn with<K2, V2>(self, key: K2, value: V2) -> Record<K2, V2> {
        Record { key, value, timestamp: self.timestamp, headers: self.headers }
    }

    /// The same record with another value.
    pub fn with_value<V2>(self, value: V2) -> Record<K, V2> {
        Record { key: self.key, value, timestamp: self.timestamp, headers: self.headers }
    }
}

/// Where the record being processed came from: the Kafka coordinates that
/// errors and the dead-letter topic report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceOffset {
    /// Source topic.
    pub topic: Arc<str>,
    /// Source partition.
    pub partition: i32,
    /// Offset in the source partition.
    pub offset: i64,
}

impl std::fmt::Display for SourceOffset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "topic {} partition {} offset {}", self.topic, self.partition, self.offset)
    }
}

/// A key with the window its aggregate belongs to.
///
/// `start` and `end` are ms since the epoch. Tumbling and hopping windows
/// cover `[start, end)`; a sliding window covers `[start, end]` (`end -
/// start` is its size); a session runs from its first record's
/// timestamp (`start`) to its last's (`end`); a count window from its first
/// record's timestamp to its last's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Windowed<K> {
    /// The grouping key.
    pub key: K,
    /// Window start, ms.
    pub start: i64,
    /// Window end, ms.
    pub end: i64,
}
