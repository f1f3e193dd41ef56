//! A store held in a `BTreeMap`: for tests and small state.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::{Change, KeyRange, KeyValueStore, StateResult};

/// A [`KeyValueStore`] in memory. Nothing survives the process, so after a
/// restart the store is restored from its changelog from the beginning; use
/// it for tests and for state small enough that this is cheap.
#[derive(Debug, Clone, Default)]
pub(crate) struct InMemoryStore {
    name: String,
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
    changelog_offset: Option<i64>,
    /// Sum of key and value lengths.
    bytes: u64,
}

impl InMemoryStore {
    /// An empty store called `name`.
    pub(crate) fn new(name: impl Into<String>) -> Self {
        InMemoryStore { name: name.into(), entries: BTreeMap::new(), changelog_offset: None, bytes: 0 }
    }
}

impl KeyValueStore for InMemoryStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, key: &[u8]) -> StateResult<Option<Vec<u8>>> {
        Ok(self.entries.get(key).cloned())
    }

    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> StateResult<Vec<(Vec<u8>, Vec<u8>)>> {
        // BTreeMap::range panics on an inverted range; the trait promises empty.
        if let (Some(from), Some(to)) = (from, to) {
            if from >= to {
                return Ok(Vec::new());
            }
        }
        let lower = from.map_or(Bound::Unbounded, Bound::Included);
        let upper = to.map_or(Bound::Unbounded, Bound::Excluded);
        let entries = self.entries.range::<[u8], _>((lower, upper));
        Ok(entries.map(|(key, value)| (key.clone(), value.clone())).collect())
    }

    fn apply_dropping(&mut self, dropped: &[KeyRange], batch: &[Change], offset: Option<i64>) -> StateResult<()> {
        // Nothing below can fail, so applying range by range and entry by
        // entry is still atomic.
        for (from, to) in dropped {
            if from >= to {
                continue;
            }
            let mut inside = self.entries.split_off(from.as_slice());
            let mut after = inside.split_off(to.as_slice());
            self.entries.append(&mut after);
            self.bytes -= inside.iter().map(|(key, value)| (key.len() + value.len()) as u64).sum::<u64>();
        }
        for (key, value) in batch {
            let old = match value {
                Some(value) => {
                    self.bytes += (key.len() + value.len()) as u64;
                    self.entries.insert(key.clone(), value.clone())
                }
                None => self.entries.remove(key),
            };
            if let Some(old) = old {
                self.bytes -= (key.len() + old.len()) as u64;
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
        Ok(self.entries.keys().next_back().cloned())
    }

    #[cfg(test)]
    fn approximate_len(&self) -> StateResult<u64> {
        Ok(self.entries.len() as u64)
    }

    /// Exact: the sum of key and value lengths.
    fn approximate_size_bytes(&self) -> StateResult<u64> {
        Ok(self.bytes)
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
