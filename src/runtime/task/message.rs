//! A polled record's headers: all of them for a dead letter, those for the
//! topology apart from a repartition record's watermark mark, and whether
//! the record is a watermark marker; and the repartition topics a
//! sub-topology writes.

use rdkafka::message::{BorrowedMessage, Headers as _};
use rdkafka::Message;

use crate::error::{Error, Result};
use crate::processor::graph::TopicName;
use crate::processor::time::{is_marker, RECORD_MARK_HEADER};
use crate::record::Headers;
use crate::topology::{Subtopology, Topology};

/// A polled record's headers, all of them (a dead letter keeps them).
pub(crate) fn headers_of(msg: &BorrowedMessage<'_>) -> Headers {
    match msg.headers() {
        None => Headers::new(),
        Some(hs) => hs.iter().map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec))).collect(),
    }
}

/// A polled record's headers for the topology, and apart from them the
/// upstream task's watermark mark a repartition record carries
/// (`rivulet.upstream`), which goes no further.
pub(super) fn split_headers<'m>(msg: &'m BorrowedMessage<'_>) -> (Headers, Option<&'m [u8]>) {
    let Some(hs) = msg.headers() else {
        return (Headers::new(), None);
    };
    let mut mark = None;
    // Allocated only for a header that goes on: most repartition records
    // carry the mark alone.
    let mut headers = Headers::new();
    for h in hs.iter() {
        if h.key == RECORD_MARK_HEADER {
            mark = Some(h.value.unwrap_or_default());
        } else {
            headers.push((h.key.to_string(), h.value.map(<[u8]>::to_vec)));
        }
    }
    (headers, mark)
}

/// Whether a polled record is a watermark marker of a repartition topic
/// (no value, the marker header), not a record to count as processed.
pub(crate) fn is_watermark_marker(msg: &BorrowedMessage<'_>) -> bool {
    msg.headers().is_some_and(|hs| is_marker(msg.payload(), hs.iter().map(|h| h.key)))
}

/// The repartition topics a sub-topology writes, with their partition
/// counts, and how many tasks the sub-topology has.
pub(super) fn repartition_targets(
    sub: &Subtopology,
    topology: &Topology,
    application_id: &str,
    partitions: &[i32],
) -> Result<(Vec<(String, i32)>, usize)> {
    let tasks_of = |id: usize| -> Result<i32> {
        partitions.get(id).copied().ok_or_else(|| Error::Internal(format!("sub-topology {id} has no partition count")))
    };
    let mut targets = Vec::new();
    for t in sub.sinks.iter().filter(|t| matches!(t, TopicName::Internal(_))) {
        // A repartition topic has as many partitions as the sub-topology
        // reading it has tasks.
        let Some(reader) = topology.subtopologies.iter().find(|st| st.sources.iter().any(|(_, s)| s == t)) else {
            return Err(Error::Internal(format!("repartition topic {} has no reader", t.resolve(application_id))));
        };
        targets.push((t.resolve(application_id), tasks_of(reader.id)?));
    }
    if targets.is_empty() {
        return Ok((targets, 0));
    }
    Ok((targets, tasks_of(sub.id)? as usize))
}
