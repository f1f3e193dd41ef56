//! A store held in a `BTreeMap`: for tests and small state.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, RwLock};

use super::registry::StoreReader;
use super::{Change, KeyRange, KeyValueStore, StateResult};

/// The entries, and the sum of their key and value lengths.
#[derive(Debug, Default)]
struct Data {
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
    bytes: u64,
}

impl Data {
    /// Up to `limit` entries with `from <= key < to`, in key order.
    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>, limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        // BTreeMap::range panics on an inverted range; the trait promises empty.
        if let (Some(from), Some(to)) = (from, to) {
            if from >= to {
                return Vec::new();
            }
        }
        let lower = from.map_or(Bound::Unbounded, Bound::Included);
        let upper = to.map_or(Bound::Unbounded, Bound::Excluded);
        let entries = self.entries.range::<[u8], _>((lower, upper)).take(limit);
        entries.map(|(key, value)| (key.clone(), value.clone())).collect()
    }
}

/// A [`KeyValueStore`] in memory. Nothing survives the process, so after a
/// restart the store is restored from its changelog from the beginning; use
/// it for tests and for state small enough that this is cheap.
///
/// The entries sit behind a lock shared with the store's reader
/// (`reader`), so interactive queries read them from other threads; the
/// task's own reads and writes take it uncontended.
#[derive(Debug, Default)]
pub(crate) struct InMemoryStore {
    name: String,
    data: Arc<RwLock<Data>>,
    changelog_offset: Option<i64>,
}

impl InMemoryStore {
    /// An empty store called `name`.
    pub(crate) fn new(name: impl Into<String>) -> Self {
        InMemoryStore { name: name.into(), data: Arc::default(), changelog_offset: None }
    }

    fn data(&self) -> std::sync::RwLockReadGuard<'_, Data> {
        self.data.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// A [`StoreReader`] sharing an in-memory store's entries.
struct MemoryReader(Arc<RwLock<Data>>);

impl StoreReader for MemoryReader {
    fn get(&self, key: &[u8]) -> StateResult<Option<Vec<u8>>> {
        Ok(self.0.read().unwrap_or_else(|e| e.into_inner()).entries.get(key).cloned())
    }

    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>, limit: usize) -> StateResult<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(self.0.read().unwrap_or_else(|e| e.into_inner()).range(from, to, limit))
    }

    fn last_below(&self, to: &[u8]) -> StateResult<Option<Vec<u8>>> {
        let data = self.0.read().unwrap_or_else(|e| e.into_inner());
        Ok(data.entries.range::<[u8], _>((Bound::Unbounded, Bound::Excluded(to))).next_back().map(|(k, _)| k.clone()))
    }
}

impl KeyValueStore for InMemoryStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, key: &[u8]) -> StateResult<Option<Vec<u8>>> {
        Ok(self.data().entries.get(key).cloned())
    }

    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> StateResult<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(self.data().range(from, to, usize::MAX))
    }

    fn apply_dropping(&mut self, dropped: &[KeyRange], batch: &[Change], offset: Option<i64>) -> StateResult<()> {
        // Nothing below can fail, and readers wait for the lock, so
        // applying range by range and entry by entry is still atomic.
        let mut data = self.data.write().unwrap_or_else(|e| e.into_inner());
        let data = &mut *data;
        for (from, to) in dropped {
            if from >= to {
                continue;
            }
            let mut inside = data.entries.split_off(from.as_slice());
            let mut after = inside.split_off(to.as_slice());
            data.entries.append(&mut after);
            data.bytes -= inside.iter().map(|(key, value)| (key.len() + value.len()) as u64).sum::<u64>();
        }
        for (key, value) in batch {
            let old = match value {
                Some(value) => {
                    data.bytes += (key.len() + value.len()) as u64;
                    data.entries.insert(key.clone(), value.clone())
                }
                None => data.entries.remove(key),
            };
            if let Some(old) = old {
                data.bytes -= (key.len() + old.len()) as u64;
            }
        }
        if offset.is_some() {
            self.changelog_offset = offset;
        }
        Ok(())
    }

    fn changelog_offset(&self) -> StateResult<Option<i64>> {
        Ok(self.changelog_offset)
    }

    fn last_key(&self) -> StateResult<Option<Vec<u8>>> {
        Ok(self.data().entries.keys().next_back().cloned())
    }

    #[cfg(test)]
    fn approximate_len(&self) -> StateResult<u64> {
        Ok(self.data().entries.len() as u64)
    }

    /// Exact: the sum of key and value lengths.
    fn approximate_size_bytes(&self) -> StateResult<u64> {
        Ok(self.data().bytes)
    }

    fn reader(&self) -> Option<Box<dyn StoreReader>> {
        Some(Box::new(MemoryReader(self.data.clone())))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::state::tests::{delete, keys, put};

    #[test]
    fn put_get_and_delete_round_trip() {
        let mut store = InMemoryStore::new("s");
        store.apply(&[put("a", "1"), put("b", "2")], None).unwrap();
        assert_eq!(store.get(b"a").unwrap(), Some(b"1".to_vec()));
        store.apply(&[delete("a"), put("b", "3")], None).unwrap();
        assert_eq!(store.get(b"a").unwrap(), None);
        assert_eq!(store.get(b"b").unwrap(), Some(b"3".to_vec()));
        assert_eq!(store.approximate_len().unwrap(), 1);
    }

    #[test]
    fn later_entries_for_a_key_win_within_a_batch() {
        let mut store = InMemoryStore::new("s");
        store.apply(&[put("a", "1"), delete("a"), put("b", "1"), put("b", "2")], None).unwrap();
        assert_eq!(store.get(b"a").unwrap(), None);
        assert_eq!(store.get(b"b").unwrap(), Some(b"2".to_vec()));
    }

    #[test]
    fn range_includes_from_excludes_to_and_is_empty_when_inverted() {
        let mut store = InMemoryStore::new("s");
        store.apply(&[put("a", ""), put("b", ""), put("c", ""), put("d", "")], None).unwrap();
        assert_eq!(keys(store.range(Some(b"b"), Some(b"d")).unwrap()), ["b", "c"]);
        assert_eq!(keys(store.range(None, Some(b"b")).unwrap()), ["a"]);
        assert_eq!(keys(store.range(Some(b"c"), None).unwrap()), ["c", "d"]);
        assert_eq!(keys(store.range(None, None).unwrap()), ["a", "b", "c", "d"]);
        assert!(store.range(Some(b"c"), Some(b"b")).unwrap().is_empty());
        assert!(store.range(Some(b"c"), Some(b"c")).unwrap().is_empty());
    }

    #[test]
    fn prefix_scan_returns_only_keys_with_the_prefix() {
        let mut store = InMemoryStore::new("s");
        let high = (b"ab\xff".to_vec(), Some(Vec::new()));
        let batch = [put("a", ""), put("ab", ""), high, put("abc", ""), put("ac", ""), put("b", "")];
        store.apply(&batch, None).unwrap();
        let found: Vec<Vec<u8>> = store.prefix_scan(b"ab").unwrap().into_iter().map(|(key, _)| key).collect();
        assert_eq!(found, [b"ab".to_vec(), b"abc".to_vec(), b"ab\xff".to_vec()]);
        assert_eq!(store.prefix_scan(b"").unwrap().len(), 6);
        assert!(store.prefix_scan(b"z").unwrap().is_empty());
    }

    #[test]
    fn size_is_the_sum_of_key_and_value_lengths_through_overwrites_and_deletes() {
        let mut store = InMemoryStore::new("s");
        store.apply(&[put("a", "123"), put("bb", "1")], None).unwrap();
        assert_eq!(store.approximate_size_bytes().unwrap(), 7);
        store.apply(&[put("a", "1"), delete("bb"), delete("zz")], None).unwrap();
        assert_eq!(store.approximate_size_bytes().unwrap(), 2);
    }

    #[test]
    fn clear_empties_the_store_and_records_the_offset() {
        let mut store = InMemoryStore::new("s");
        store.clear(3).unwrap();
        assert_eq!(store.changelog_offset().unwrap(), Some(3));
        store.apply(&[put("a", "1"), put("z", "2")], Some(7)).unwrap();
        assert_eq!(store.last_key().unwrap(), Some(b"z".to_vec()));
        store.clear(0).unwrap();
        assert!(store.range(None, None).unwrap().is_empty());
        assert_eq!(store.last_key().unwrap(), None);
        assert_eq!(store.changelog_offset().unwrap(), Some(0));
    }

    #[test]
    fn the_reader_sees_each_applied_batch() {
        let mut store = InMemoryStore::new("s");
        let reader = store.reader().unwrap();
        store.apply(&[put("a", "1"), put("b", "2")], None).unwrap();
        assert_eq!(reader.get(b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(keys(reader.range(Some(b"a"), None, 1).unwrap()), ["a"]);
        assert_eq!(reader.last_below(b"b").unwrap(), Some(b"a".to_vec()));
        assert_eq!(reader.last_below(b"a").unwrap(), None);
        store.apply(&[delete("a")], None).unwrap();
        assert_eq!(reader.get(b"a").unwrap(), None);
    }

    #[test]
    fn changelog_offset_is_kept_until_a_batch_brings_a_new_one() {
        let mut store = InMemoryStore::new("s");
        assert_eq!(store.changelog_offset().unwrap(), None);
        store.apply(&[put("a", "1")], Some(5)).unwrap();
        store.apply(&[put("a", "2")], None).unwrap();
        assert_eq!(store.changelog_offset().unwrap(), Some(5));
        store.apply(&[], Some(9)).unwrap();
        assert_eq!(store.changelog_offset().unwrap(), Some(9));
    }

    #[test]
    fn dropped_ranges_are_deleted_before_the_batch_and_leave_the_size_true() {
        let mut store = InMemoryStore::new("s");
        store.apply(&[put("a", "1"), put("b", "22"), put("c", "333")], None).unwrap();
        store.apply_dropping(&[(b"b".to_vec(), b"z".to_vec())], &[put("c", "4")], Some(1)).unwrap();
        assert_eq!(keys(store.range(None, None).unwrap()), ["a", "c"]);
        assert_eq!(store.get(b"c").unwrap(), Some(b"4".to_vec()));
        assert_eq!(store.approximate_size_bytes().unwrap(), 4);
        assert_eq!(store.changelog_offset().unwrap(), Some(1));
    }
}
