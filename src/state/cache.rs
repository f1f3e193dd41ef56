//! A read cache of committed values in front of a store (RocksDB), as
//! Kafka Streams' record cache: a `get` of a key read or written recently is
//! a hash lookup instead of a RocksDB point lookup (a memtable skip-list
//! search, then the block cache).
//!
//! The cache only ever holds what the store holds: it is filled by `get`
//! (misses included, so absent keys are remembered too) and kept in step by
//! `apply`, the only way committed writes reach the store. Uncommitted
//! writes live in the task's write buffer, above this layer, so an aborted
//! transaction never touches the cache.
//!
//! Eviction is by two generations, an LRU approximation with O(1) work per
//! operation: hits and new entries go to the young map; when the young map
//! has used half the budget it becomes the old one and the previous old one
//! is dropped. Keys read at least once per half-budget of traffic stay.

use std::cell::RefCell;
use std::collections::HashMap;

use super::{in_range, Change, KeyRange, KeyValueStore, StateResult};

/// What an entry is assumed to cost beyond its key and value bytes (the
/// two vectors, the hash-table slot).
const ENTRY_OVERHEAD: usize = 64;

type Entries = HashMap<Vec<u8>, Option<Vec<u8>>>;

#[derive(Default)]
struct Generations {
    young: Entries,
    young_bytes: usize,
    old: Entries,
}

fn cost(key: &[u8], value: &Option<Vec<u8>>) -> usize {
    key.len() + value.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD
}

impl Generations {
    fn insert(&mut self, key: Vec<u8>, value: Option<Vec<u8>>, half_budget: usize) {
        if self.young_bytes >= half_budget {
            self.old = std::mem::take(&mut self.young);
            self.young_bytes = 0;
        }
        let key_len = key.len();
        self.young_bytes += cost(&key, &value);
        if let Some(replaced) = self.young.insert(key, value) {
            self.young_bytes =
                self.young_bytes.saturating_sub(key_len + replaced.map_or(0, |v| v.len()) + ENTRY_OVERHEAD);
        }
    }

    fn get(&mut self, key: &[u8], half_budget: usize) -> Option<Option<Vec<u8>>> {
        if let Some(v) = self.young.get(key) {
            return Some(v.clone());
        }
        let (key, value) = self.old.remove_entry(key)?;
        let found = value.clone();
        self.insert(key, value, half_budget);
        Some(found)
    }
}

/// A store with a bounded read cache of `budget` bytes in front of it.
pub(crate) struct CachedStore<S> {
    inner: S,
    cache: RefCell<Generations>,
    half_budget: usize,
}

impl<S: KeyValueStore> CachedStore<S> {
    /// `inner` behind a cache of about `budget_bytes`.
    pub(crate) fn new(inner: S, budget_bytes: usize) -> Self {
        CachedStore { inner, cache: RefCell::default(), half_budget: budget_bytes / 2 }
    }
}

impl<S: KeyValueStore> KeyValueStore for CachedStore<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn get(&self, key: &[u8]) -> StateResult<Option<Vec<u8>>> {
        if let Some(hit) = self.cache.borrow_mut().get(key, self.half_budget) {
            return Ok(hit);
        }
        let value = self.inner.get(key)?;
        self.cache.borrow_mut().insert(key.to_vec(), value.clone(), self.half_budget);
        Ok(value)
    }

    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> StateResult<Vec<(Vec<u8>, Vec<u8>)>> {
        self.inner.range(from, to)
    }

    #[cfg(test)]
    fn prefix_scan(&self, prefix: &[u8]) -> StateResult<Vec<(Vec<u8>, Vec<u8>)>> {
        self.inner.prefix_scan(prefix)
    }

    fn apply_dropping(&mut self, dropped: &[KeyRange], batch: &[Change], offset: Option<i64>) -> StateResult<()> {
        if let Err(e) = self.inner.apply_dropping(dropped, batch, offset) {
            // The store may hold part of the batch or none of it: forget
            // everything rather than guess.
            *self.cache.get_mut() = Generations::default();
            return Err(e);
        }
        let cache = self.cache.get_mut();
        if !dropped.is_empty() {
            // The dropped keys are gone from the store (a hash map cannot
            // find a range, so look at every entry: once per commit).
            let kept = |key: &Vec<u8>| !dropped.iter().any(|(from, to)| in_range(key, Some(from), Some(to)));
            cache.young.retain(|key, value| {
                let keep = kept(key);
                if !keep {
                    cache.young_bytes = cache.young_bytes.saturating_sub(cost(key, value));
                }
                keep
            });
            cache.old.retain(|key, _| kept(key));
        }
        // Cached keys take their new values; keys not cached stay out (a
        // restore applies millions of keys, which would only churn it).
        for (key, value) in batch {
            if let Some(slot) = cache.young.get_mut(key.as_slice()) {
                // Keep the byte count true when a value grows or shrinks.
                let old_len = slot.as_ref().map_or(0, Vec::len);
                let new_len = value.as_ref().map_or(0, Vec::len);
                cache.young_bytes = (cache.young_bytes + new_len).saturating_sub(old_len);
                slot.clone_from(value);
            } else if cache.old.remove(key.as_slice()).is_some() {
                cache.insert(key.clone(), value.clone(), self.half_budget);
            }
        }
        Ok(())
    }

    fn changelog_offset(&self) -> StateResult<Option<i64>> {
        self.inner.changelog_offset()
    }

    /// The store's own reader: the cache holds only committed values, so
    /// reading past it gives the same answers.
    fn reader(&self) -> Option<Box<dyn super::StoreReader>> {
        self.inner.reader()
    }

    fn last_key(&self) -> StateResult<Option<Vec<u8>>> {
        self.inner.last_key()
    }

    #[cfg(test)]
    fn approximate_len(&self) -> StateResult<u64> {
        self.inner.approximate_len()
    }

    fn approximate_size_bytes(&self) -> StateResult<u64> {
        self.inner.approximate_size_bytes()
    }

    fn flush(&self) -> StateResult<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::InMemoryStore;

    fn kv(k: &str, v: Option<&str>) -> (Vec<u8>, Option<Vec<u8>>) {
        (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec()))
    }

    #[test]
    fn reads_see_what_the_store_holds_after_every_apply() {
        let mut s = CachedStore::new(InMemoryStore::new("s"), 1 << 20);
        assert_eq!(s.get(b"a").unwrap(), None);
        // Cached as absent, then written: the cache must follow.
        s.apply(&[kv("a", Some("1")), kv("b", Some("2"))], Some(1)).unwrap();
        assert_eq!(s.get(b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.get(b"b").unwrap(), Some(b"2".to_vec()));
        s.apply(&[kv("a", None), kv("b", Some("3")), kv("b", Some("4"))], Some(2)).unwrap();
        assert_eq!(s.get(b"a").unwrap(), None);
        assert_eq!(s.get(b"b").unwrap(), Some(b"4".to_vec()));
        assert_eq!(s.changelog_offset().unwrap(), Some(2));
    }

    #[test]
    fn a_cached_value_that_grows_counts_against_the_budget() {
        let mut s = CachedStore::new(InMemoryStore::new("s"), 1 << 20);
        assert_eq!(s.get(b"k").unwrap(), None);
        let before = s.cache.borrow().young_bytes;
        s.apply(&[(b"k".to_vec(), Some(vec![b'x'; 1000]))], Some(1)).unwrap();
        assert_eq!(s.cache.borrow().young_bytes, before + 1000);
        s.apply(&[(b"k".to_vec(), Some(vec![b'x'; 10]))], Some(2)).unwrap();
        assert_eq!(s.cache.borrow().young_bytes, before + 10);
    }

    #[test]
    fn a_small_budget_evicts_but_never_serves_a_stale_value() {
        // About three entries per generation: keys cycle through old, young
        // and out while values change under them.
        let mut s = CachedStore::new(InMemoryStore::new("s"), 2 * 3 * (ENTRY_OVERHEAD + 8));
        let mut expected = std::collections::BTreeMap::new();
        for round in 0..100u32 {
            let key = format!("k{}", round % 20);
            let value = format!("v{round}");
            if round % 3 == 0 {
                s.apply(&[kv(&key, Some(&value))], Some(round.into())).unwrap();
                expected.insert(key.clone(), value);
            }
            for k in 0..20 {
                let k = format!("k{k}");
                assert_eq!(s.get(k.as_bytes()).unwrap(), expected.get(&k).map(|v| v.as_bytes().to_vec()), "{k}");
            }
        }
        let cache = s.cache.borrow();
        assert!(cache.young.len() + cache.old.len() <= 8, "the budget must bound the cache");
    }

    #[test]
    fn a_dropped_range_is_forgotten_by_the_cache() {
        let mut s = CachedStore::new(InMemoryStore::new("s"), 1 << 20);
        s.apply(&[kv("a", Some("1")), kv("b", Some("1")), kv("c", Some("1"))], Some(1)).unwrap();
        for k in ["a", "b", "c"] {
            assert!(s.get(k.as_bytes()).unwrap().is_some());
        }
        s.apply_dropping(&[(b"a".to_vec(), b"c".to_vec())], &[kv("b", Some("2"))], Some(2)).unwrap();
        assert_eq!(s.get(b"a").unwrap(), None);
        assert_eq!(s.get(b"b").unwrap(), Some(b"2".to_vec()));
        assert_eq!(s.get(b"c").unwrap(), Some(b"1".to_vec()));
    }
}
