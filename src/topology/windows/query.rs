//! Interactive queries of window stores (`crate::query`): what a query
//! needs to know of the segmented store of tumbling and hopping windows
//! (`0x05 | start | key` -> the window's aggregate), and that the stores of
//! the other kinds are not decoded.

use super::segmented::TIME_DATA;
use super::*;
use crate::processor::store::QueryLayout;
use crate::state::{StateResult, StoreReader};

/// A window's result from its stored aggregate (read-only: queries only
/// decode).
struct ResultSerde<S, O> {
    codec: Arc<dyn Serde<S>>,
    result: ResultFn<S, O>,
}

impl<S: 'static, O: 'static> Serde<O> for ResultSerde<S, O> {
    fn serialize(&self, _: &O, _: &mut Vec<u8>) -> Result<Encoded, SerdeError> {
        Err(SerdeError::new(self.name(), "window results are read, never written, by queries"))
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<O, SerdeError> {
        let state = self.codec.deserialize(bytes)?;
        (self.result)(&state).ok_or_else(|| SerdeError::new(self.name(), "the window has no result"))
    }

    fn name(&self) -> String {
        format!("window result of {}", self.codec.name())
    }
}

/// How queries read the store of a window operator.
pub(super) fn layout<K: Data, V, S: Data, O: Data>(
    windows: &Windows,
    key_serde: &Arc<dyn Serde<K>>,
    agg: &Agg<V, S, O>,
) -> QueryLayout {
    match windows.kind {
        Kind::Time { size, advance } => QueryLayout::time_windows(
            (size, advance),
            key_serde.clone(),
            Arc::new(ResultSerde { codec: agg.codec.clone(), result: agg.result.clone() }),
        ),
        _ => QueryLayout::Internal(
            "only tumbling and hopping window stores can be queried, not session, sliding or count ones",
        ),
    }
}

/// At most this many point reads per fetch; past it a fetch scans the
/// time range instead.
const MAX_POINT_READS: i64 = 4_096;

/// The windows of `key` (serialized) starting in `[from, to]` in the
/// segmented store read by `reader`, in start order: (start, stored
/// aggregate). The layout is time first, so a key's windows are not next to
/// each other: the fetch narrows `[from, to]` to the starts the store holds
/// (its first and last window), then reads each start there, a multiple of
/// `advance`, with a point read of `0x05 | start | key`. Only the windows
/// still open are in the store, so that is a handful of reads; a range of
/// more than [`MAX_POINT_READS`] starts is scanned instead, keeping the
/// key's entries.
pub(crate) fn fetch(
    reader: &dyn StoreReader,
    key: &[u8],
    advance: i64,
    from: i64,
    to: i64,
) -> StateResult<Vec<(i64, Vec<u8>)>> {
    let advance = advance.max(1);
    let first = reader.range(Some(&[TIME_DATA]), Some(&[TIME_DATA + 1]), 1)?;
    let last = reader.last_below(&[TIME_DATA + 1])?;
    let (Some((first, _)), Some(last)) = (first.first(), last) else { return Ok(Vec::new()) };
    let (Some(lowest), Some(highest)) = (start_of(first), start_of(&last)) else { return Ok(Vec::new()) };
    let hi = to.min(highest);
    // The first multiple of `advance` at or after the lower bound.
    let lo = from.max(lowest);
    let lo = lo.div_euclid(advance).saturating_mul(advance);
    let lo = if lo < from.max(lowest) { lo.saturating_add(advance) } else { lo };
    if lo > hi {
        return Ok(Vec::new());
    }
    if (hi - lo) / advance >= MAX_POINT_READS {
        return scan(reader, key, lo, hi);
    }
    let mut found = Vec::new();
    let mut start = lo;
    while start <= hi {
        if let Some(value) = reader.get(&key_of(TIME_DATA, &[&enc(start), key]))? {
            found.push((start, value));
        }
        match start.checked_add(advance) {
            Some(next) => start = next,
            None => break,
        }
    }
    Ok(found)
}

/// The windows of `key` starting in `[from, to]`, by scanning that range.
fn scan(reader: &dyn StoreReader, key: &[u8], from: i64, to: i64) -> StateResult<Vec<(i64, Vec<u8>)>> {
    let end = match to.checked_add(1) {
        Some(after) => key_of(TIME_DATA, &[&enc(after)]),
        None => vec![TIME_DATA + 1],
    };
    let entries = reader.range(Some(&key_of(TIME_DATA, &[&enc(from)])), Some(&end), usize::MAX)?;
    Ok(entries.into_iter().filter_map(|(k, v)| Some((window_start(&k, key)?, v))).collect())
}

/// The window start of a stored window key.
fn start_of(store_key: &[u8]) -> Option<i64> {
    let rest = store_key.strip_prefix(&[TIME_DATA])?;
    (rest.len() >= 8).then(|| dec(&rest[..8]))
}

/// The start of the window stored under `store_key` when it is one of
/// `key`'s (serialized).
fn window_start(store_key: &[u8], key: &[u8]) -> Option<i64> {
    let rest = store_key.strip_prefix(&[TIME_DATA])?;
    (rest.len() == 8 + key.len() && &rest[8..] == key).then(|| dec(&rest[..8]))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::state::{InMemoryStore, KeyValueStore};
    use crate::topology::windows::segmented::time_key;

    /// Hopping windows every 10 of keys "ab", "abc" and "b"; "ab" has
    /// windows at 10, 30 and 40.
    fn store() -> Box<dyn StoreReader> {
        let mut store = InMemoryStore::new("w");
        let mut batch = Vec::new();
        for (key, start) in [("ab", 10), ("ab", 30), ("ab", 40), ("abc", 20), ("b", 0), ("b", 50), ("ab", -20)] {
            batch.push((time_key(key.as_bytes(), start), Some(start.to_string().into_bytes())));
        }
        batch.push((vec![4], Some(vec![9])));
        store.apply(&batch, None).unwrap();
        let reader = store.reader().unwrap();
        // The reader shares the store's entries; the store may go.
        drop(store);
        reader
    }

    fn starts(found: Vec<(i64, Vec<u8>)>) -> Vec<i64> {
        found
            .into_iter()
            .map(|(s, v)| {
                assert_eq!(String::from_utf8(v).unwrap(), s.to_string());
                s
            })
            .collect()
    }

    #[test]
    fn a_keys_windows_are_read_by_their_aligned_starts_or_scanned() {
        let r = store();
        assert_eq!(starts(fetch(r.as_ref(), b"ab", 10, i64::MIN, i64::MAX).unwrap()), [-20, 10, 30, 40]);
        assert_eq!(starts(fetch(r.as_ref(), b"ab", 10, 11, 40).unwrap()), [30, 40], "from is rounded up, to included");
        assert_eq!(starts(fetch(r.as_ref(), b"ab", 10, 41, 100).unwrap()), Vec::<i64>::new());
        assert_eq!(starts(fetch(r.as_ref(), b"b", 10, 0, 50).unwrap()), [0, 50]);
        assert_eq!(starts(fetch(r.as_ref(), b"a", 10, i64::MIN, i64::MAX).unwrap()), Vec::<i64>::new());
        // A range of more starts than MAX_POINT_READS is scanned: the same windows.
        assert_eq!(starts(fetch(r.as_ref(), b"ab", 1, i64::MIN, i64::MAX).unwrap()), [-20, 10, 30, 40]);
        assert_eq!(starts(scan(r.as_ref(), b"ab", 10, 30).unwrap()), [10, 30]);
        let empty = InMemoryStore::new("e").reader().unwrap();
        assert!(fetch(empty.as_ref(), b"ab", 10, 0, 100).unwrap().is_empty());
    }
}
