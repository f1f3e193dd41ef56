//! The record that flows through a topology.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Kafka record headers: names with optional values, in order. A name may
/// repeat, as in Kafka.
///
/// ```
/// use rivulet::record::{Headers, Record};
/// let headers: Headers = vec![("trace-id".into(), Some(b"abc".to_vec())), ("flag".into(), None)];
/// let r = Record { headers, ..Record::new("k", "v", 0) };
/// let trace = r.headers.iter().find(|(name, _)| name == "trace-id").and_then(|(_, v)| v.as_deref());
/// assert_eq!(trace, Some(&b"abc"[..]));
/// ```
pub type Headers = Vec<(String, Option<Vec<u8>>)>;

/// A keyed, timestamped record inside a topology.
///
/// Every record carries a timestamp in milliseconds (the Kafka record
/// timestamp by default), which sinks write to Kafka and from which stream
/// time advances.
///
/// ```
/// use rivulet::Record;
/// let r = Record::new("user-1".to_string(), 3_u32, 1_700_000_000_000);
/// assert_eq!((r.key.as_str(), r.value, r.timestamp), ("user-1", 3, 1_700_000_000_000));
/// assert!(r.headers.is_empty());
/// ```
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
    ///
    /// ```
    /// use rivulet::Record;
    /// let r = Record::new((), "a line".to_string(), 1_000);
    /// assert_eq!(r.value, "a line");
    /// assert_eq!(r.timestamp, 1_000);
    /// ```
    pub fn new(key: K, value: V, timestamp: i64) -> Self {
        Record { key, value, timestamp, headers: Headers::new() }
    }

    /// The same record with another key and value, keeping timestamp and
    /// headers: what a processor forwards when it rekeys a record.
    ///
    /// ```
    /// use rivulet::Record;
    /// let mut visit = Record::new((), "alice /home".to_string(), 1_000);
    /// visit.headers.push(("source".into(), Some(b"web".to_vec())));
    /// let (user, page) = visit.value.split_once(' ').unwrap();
    /// let (user, page) = (user.to_string(), page.to_string());
    /// let keyed = visit.with(user, page);
    /// assert_eq!((keyed.key.as_str(), keyed.value.as_str(), keyed.timestamp), ("alice", "/home", 1_000));
    /// assert_eq!(keyed.headers.len(), 1);
    /// ```
    pub fn with<K2, V2>(self, key: K2, value: V2) -> Record<K2, V2> {
        Record { key, value, timestamp: self.timestamp, headers: self.headers }
    }

    /// The same record with another value, keeping key, timestamp and
    /// headers.
    ///
    /// ```
    /// use rivulet::Record;
    /// let line = Record::new("k", "to be or not", 5);
    /// let words = line.clone().with_value(line.value.split(' ').count());
    /// assert_eq!(words, Record::new("k", 4, 5));
    /// ```
    pub fn with_value<V2>(self, value: V2) -> Record<K, V2> {
        Record { key: self.key, value, timestamp: self.timestamp, headers: self.headers }
    }
}

/// Where the record being processed came from: the Kafka coordinates that
/// errors and the dead-letter topic report. A processor reads it with
/// [`ProcessorContext::source`](crate::processor::ProcessorContext::source).
///
/// ```
/// use rivulet::record::SourceOffset;
/// let at = SourceOffset { topic: "orders".into(), partition: 2, offset: 17 };
/// assert_eq!(at.to_string(), "topic orders partition 2 offset 17");
/// ```
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
///
/// Windowed aggregations key their tables by it; write it to a topic with
/// [`Serdes::windowed`](crate::serde::Serdes::windowed). It orders by key,
/// then start, then end.
///
/// ```
/// use rivulet::record::Windowed;
/// let minute = |key: &str, start: i64| Windowed { key: key.to_string(), start, end: start + 60_000 };
/// let mut keys = vec![minute("b", 0), minute("a", 60_000), minute("a", 0)];
/// keys.sort();
/// assert_eq!(keys, [minute("a", 0), minute("a", 60_000), minute("b", 0)]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Windowed<K> {
    /// The grouping key.
    pub key: K,
    /// Window start, ms.
    pub start: i64,
    /// Window end, ms.
    pub end: i64,
}
