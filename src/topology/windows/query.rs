//! Interactive queries of window stores (`crate::query`): what a query
//! needs to know of the segmented store of tumbling and hopping windows
//! (`0x05 | start | key` -> the window's aggregate), and that the stores of
//! the other kinds are not decoded.

use super::segmented::TIME_DATA;
use super::*;
use crate::processor::store::QueryLayout;

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
        Kind::Time { size, .. } => QueryLayout::time_windows(
            size,
            key_serde.clone(),
            Arc::new(ResultSerde { codec: agg.codec.clone(), result: agg.result.clone() }),
        ),
        _ => QueryLayout::Internal(
            "only tumbling and hopping window stores can be queried, not session, sliding or count ones",
        ),
    }
}

/// The store keys holding the windows of `key` (serialized) that start in
/// `[from, to]`: scan `[first, end)` and keep the entries [`window_start`]
/// accepts (the range holds the other keys' windows of that time too).
pub(crate) fn scan(from: i64, to: i64) -> (Vec<u8>, Vec<u8>) {
    let end = match to.checked_add(1) {
        Some(after) => key_of(TIME_DATA, &[&enc(after)]),
        None => vec![TIME_DATA + 1],
    };
    (key_of(TIME_DATA, &[&enc(from)]), end)
}

/// The start of the window stored under `store_key` when it is one of
/// `key`'s (serialized).
pub(crate) fn window_start(store_key: &[u8], key: &[u8]) -> Option<i64> {
    let rest = store_key.strip_prefix(&[TIME_DATA])?;
    (rest.len() == 8 + key.len() && &rest[8..] == key).then(|| dec(&rest[..8]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keys_windows_are_found_in_the_time_ordered_layout() {
        let (first, end) = scan(1_000, 2_000);
        use crate::topology::windows::segmented::time_key;
        let stored = time_key(b"ab", 1_500);
        assert!(stored.as_slice() >= first.as_slice() && stored.as_slice() < end.as_slice());
        assert!(time_key(b"ab", 2_000).as_slice() < end.as_slice(), "to is included");
        assert!(time_key(b"ab", 2_001).as_slice() >= end.as_slice());
        assert_eq!(window_start(&stored, b"ab"), Some(1_500));
        assert_eq!(window_start(&stored, b"a"), None, "another key");
        assert_eq!(window_start(&time_key(b"abc", 1_500), b"ab"), None, "a longer key with the same prefix");
        let (_, all) = scan(i64::MIN, i64::MAX);
        assert_eq!(all, [TIME_DATA + 1]);
    }
}
