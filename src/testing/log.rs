//! The driver's topics: one in-memory log per topic (one partition, as in
//! Kafka Streams' test driver), written by the tasks through a
//! [`MemoryCollector`] and by the test through the driver.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::processor::collector::{Collector, Outgoing};
use crate::processor::time::RECORD_MARK_HEADER;
use crate::processor::ProcessError;
use crate::record::Headers;

/// A record as it sits in a topic: bytes, timestamp and headers. The test
/// driver takes it in [`pipe_raw`](super::TopologyTestDriver::pipe_raw) and
/// gives it out in [`read_raw`](super::TopologyTestDriver::read_raw) and
/// [`dead_letters`](super::TopologyTestDriver::dead_letters).
///
/// ```
/// # use rivulet::prelude::*;
/// # use rivulet::testing::TopologyTestDriver;
/// # fn main() -> rivulet::Result<()> {
/// let mut b = Topology::builder();
/// b.stream("in", Serdes::unit(), Serdes::i64()).to("out", Serdes::unit(), Serdes::i64());
/// let mut driver = TopologyTestDriver::new(b.build()?)?;
/// # let input = driver.input_topic("in", Serdes::unit(), Serdes::i64());
/// driver.pipe(&input, (), 7, 1_000)?;
/// let out = &driver.read_raw("out")[0];
/// assert_eq!((out.key.as_deref(), out.value.as_deref()), (None, Some(&7i64.to_be_bytes()[..])));
/// assert_eq!(out.timestamp, 1_000);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    /// The key's bytes (`None`: a Kafka null key).
    pub key: Option<Vec<u8>>,
    /// The value's bytes (`None`: a tombstone).
    pub value: Option<Vec<u8>>,
    /// The record's timestamp, ms since the epoch.
    pub timestamp: i64,
    /// The record's headers, in order.
    pub headers: Headers,
}

impl RawRecord {
    /// A record with these bytes, this timestamp and no headers.
    ///
    /// ```
    /// use rivulet::testing::RawRecord;
    /// let tombstone = RawRecord::new(Some(b"user-1"), None, 1_000);
    /// assert_eq!(tombstone.key, Some(b"user-1".to_vec()));
    /// assert!(tombstone.value.is_none() && tombstone.headers.is_empty());
    /// ```
    pub fn new(key: Option<&[u8]>, value: Option<&[u8]>, timestamp: i64) -> Self {
        RawRecord { key: key.map(<[u8]>::to_vec), value: value.map(<[u8]>::to_vec), timestamp, headers: Headers::new() }
    }

    /// The value of the first header called `name`.
    ///
    /// ```
    /// use rivulet::testing::RawRecord;
    /// let mut r = RawRecord::new(None, Some(b"v"), 0);
    /// r.headers.push(("rivulet.error.kind".into(), Some(b"processing".to_vec())));
    /// assert_eq!(r.header("rivulet.error.kind"), Some(&b"processing"[..]));
    /// assert_eq!(r.header("missing"), None);
    /// ```
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.as_deref())
    }
}

/// Every topic's records, and how far each was committed.
#[derive(Debug, Default)]
pub(crate) struct Log {
    topics: HashMap<String, Vec<RawRecord>>,
    /// Records of each topic as of the last commit: a restart drops the
    /// ones after it, as an aborted transaction.
    committed: HashMap<String, usize>,
    /// The last offset written to each topic since it was last taken (the
    /// changelog offsets a commit records in the stores).
    delivered: HashMap<String, i64>,
}

impl Log {
    pub(crate) fn append(&mut self, topic: &str, record: RawRecord) -> i64 {
        let records = self.topics.entry(topic.to_string()).or_default();
        records.push(record);
        let offset = records.len() as i64 - 1;
        self.delivered.insert(topic.to_string(), offset);
        offset
    }

    pub(crate) fn records(&self, topic: &str) -> &[RawRecord] {
        self.topics.get(topic).map(Vec::as_slice).unwrap_or_default()
    }

    /// Every record of every topic, with its topic.
    #[cfg(test)]
    pub(crate) fn all(&self) -> impl Iterator<Item = (&str, &RawRecord)> + '_ {
        self.topics.iter().flat_map(|(t, records)| records.iter().map(move |r| (t.as_str(), r)))
    }

    pub(crate) fn len(&self, topic: &str) -> usize {
        self.records(topic).len()
    }

    /// Everything written so far survives a restart.
    pub(crate) fn commit(&mut self) {
        self.committed = self.topics.iter().map(|(t, r)| (t.clone(), r.len())).collect();
    }

    /// Drops what was written since the last commit.
    pub(crate) fn abort(&mut self) {
        for (topic, records) in &mut self.topics {
            records.truncate(self.committed.get(topic).copied().unwrap_or(0));
        }
        self.delivered.clear();
    }

    /// Records `topic` as committed up to its end (records the test piped
    /// in are never taken back).
    pub(crate) fn commit_topic(&mut self, topic: &str) {
        let len = self.len(topic);
        self.committed.insert(topic.to_string(), len);
    }
}

/// The driver's [`Collector`]: appends to the in-memory log.
#[derive(Debug, Clone, Default)]
pub(crate) struct MemoryCollector {
    pub(crate) log: Rc<RefCell<Log>>,
}

impl Collector for MemoryCollector {
    fn produce(&self, out: Outgoing<'_>) -> Result<(), ProcessError> {
        let mut record = RawRecord::new(out.key, out.value, out.timestamp);
        record.headers.clone_from(out.headers);
        if let Some(mark) = out.mark {
            record.headers.push((RECORD_MARK_HEADER.to_string(), Some(mark.to_vec())));
        }
        self.log.borrow_mut().append(out.topic, record);
        Ok(())
    }

    fn take_changelog_offset(&self, topic: &str, _partition: i32) -> Option<i64> {
        self.log.borrow_mut().delivered.remove(topic)
    }
}
