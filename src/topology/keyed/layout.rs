//! The byte layout of a keyed processor's store (see the module docs of
//! `keyed`): timer, TTL-index and state-value encodings.

use super::*;

pub(super) use crate::state::sortable_time as sortable;
use crate::state::time_from_sortable;

pub(super) fn from_sortable(bytes: [u8; 8]) -> i64 {
    time_from_sortable(&bytes)
}

pub(super) fn timer_prefix(domain: TimeDomain, time: i64) -> Vec<u8> {
    let mut key = Vec::with_capacity(10);
    key.push(TIMER);
    key.push(domain.tag());
    key.extend_from_slice(&sortable(time));
    key
}

/// A timer key's time and record key.
pub(super) fn parse_timer(key: &[u8]) -> Option<(i64, &[u8])> {
    let time: [u8; 8] = key.get(2..10)?.try_into().ok()?;
    Some((from_sortable(time), key.get(10..)?))
}

pub(super) fn ttl_index_key(expires: i64, entry: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(9 + entry.len());
    key.push(TTL_INDEX);
    key.extend_from_slice(&sortable(expires));
    key.extend_from_slice(entry);
    key
}

/// A state value's expiry and payload.
pub(super) fn split_value(value: &[u8]) -> Option<(i64, &[u8])> {
    let expires: [u8; 8] = value.get(..8)?.try_into().ok()?;
    Some((from_sortable(expires), &value[8..]))
}
