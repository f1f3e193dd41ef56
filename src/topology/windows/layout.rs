//! The byte layout of a window store (see the module docs of `windows`):
//! key prefixes, and times as 8 bytes that sort like the number.

pub(super) const DATA: u8 = 0;
pub(super) const INDEX: u8 = 1;
pub(super) const RAW: u8 = 2;
pub(super) const RAW_INDEX: u8 = 3;
pub(super) const WATERMARK: &[u8] = &[4];

pub(super) use crate::state::{sortable_time as enc, time_from_sortable as dec};

pub(super) fn key_of(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    k.push(prefix);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}
