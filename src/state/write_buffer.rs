//! The per-task write buffer: uncommitted writes, readable before commit.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use super::{in_range, prefix_end, KeyValueStore, StateResult};

/// Writes a task has made since its last commit, per store, holding only the
/// latest value per key (`None` for a delete).
///
/// Reads go through it first, so a task sees its own uncommitted writes. At
/// commit its entries become the changelog records (one per key per commit
/// interval: the buffer is also the changelog's dedup cache), then, once the
/// commit succeeded, are [`drain`](Self::drain)ed into the stores with
/// [`KeyValueStore::apply`]. On abort it is [`clear`](Self::clear)ed and the
/// stores never see its writes.
#[derive(Debug, Default)]
pub struct WriteBuffer {
    stores: HashMap<String, BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
}

impl WriteBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Buffers `value` under `key` in `store`, replacing any buffered write.
    pub fn put(&mut self, store: &str, key: Vec<u8>, value: Vec<u8>) {
        self.store_mut(store).insert(key, Some(value));
    }

    /// Buffers the deletion of `key` in `store`: reads see no value even if
    /// the store has one.
    pub fn delete(&mut self, store: &str, key: Vec<u8>) {
        self.store_mut(store).insert(key, None);
    }

    /// The buffered write for `key`: `None` if the buffer knows nothing (read
    /// the store), `Some(None)` if the key was deleted, `Some(Some(value))` if
    /// it was written.
    pub fn get(&self, store: &str, key: &[u8]) -> Option<Option<&[u8]>> {
        self.stores.get(store)?.get(key).map(|value| value.as_deref())
    }

    /// Whether nothing is buffered for any store.
    pub fn is_empty(&self) -> bool {
        self.stores.values().all(BTreeMap::is_empty)
    }

    /// The number of buffered keys, over all stores.
    pub fn len(&self) -> usize {
        self.stores.values().map(BTreeMap::len).sum()
    }

    /// The stores with buffered writes.
    pub fn stores(&self) -> impl Iterator<Item = &str> + '_ {
        self.stores.iter().filter(|(_, entries)| !entries.is_empty()).map(|(store, _)| store.as_str())
    }

    /// The buffered writes of `store` with `from <= key < to` (`None` =
    /// unbounded), in key order, without removing them: what commit sends to
    /// the changelog.
    pub fn range<'a>(
        &'a self,
        store: &str,
        from: Option<&'a [u8]>,
        to: Option<&'a [u8]>,
    ) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + 'a {
        // BTreeMap::range panics on an inverted range; such a range is empty.
        let inverted = matches!((from, to), (Some(from), Some(to)) if from >= to);
        let bounds = (from.map_or(Bound::Unbounded, Bound::Included), to.map_or(Bound::Unbounded, Bound::Excluded));
        self.stores
            .get(store)
            .filter(|_| !inverted)
            .into_iter()
            .flat_map(move |entries| entries.range::<[u8], _>(bounds))
            .map(|(key, value)| (key.as_slice(), value.as_deref()))
    }

    /// Removes and returns the buffered writes of `store`, one per key (the
    /// latest), in key order: the batch for [`KeyValueStore::apply`].
    pub fn drain(&mut self, store: &str) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        self.stores.remove(store).map(|entries| entries.into_iter().collect()).unwrap_or_default()
    }

    /// Drops every buffered write, as on abort.
    pub fn clear(&mut self) {
        self.stores.clear();
    }

    /// Entries of `store` with `from <= key < to`, as they read with the
    /// buffered writes on top.
    pub fn scan(
        &self,
        store: &dyn KeyValueStore,
        from: Option<&[u8]>,
        to: Option<&[u8]>,
    ) -> StateResult<Vec<(Vec<u8>, Vec<u8>)>> {
        scan_merged(store, self.range(store.name(), from, to), from, to)
    }

    /// Entries of `store` whose key starts with `prefix`, as they read with
    /// the buffered writes on top.
    pub fn prefix_scan(&self, store: &dyn KeyValueStore, prefix: &[u8]) -> StateResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let end = prefix_end(prefix);
        self.scan(store, Some(prefix), end.as_deref())
    }

    fn store_mut(&mut self, store: &str) -> &mut BTreeMap<Vec<u8>, Option<Vec<u8>>> {
        self.stores.entry(store.to_string()).or_default()
    }
}

/// Entries of `store` with `from <= key < to` (`None` = unbounded) as they
/// read with `buffered` writes on top: a buffered value replaces the stored
/// one, a buffered delete (`None`) hides it. `buffered` must be in key order
/// with one write per key, as [`WriteBuffer::range`] gives them; writes
/// outside the bounds are ignored.
pub fn scan_merged<'a>(
    store: &dyn KeyValueStore,
    buffered: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    from: Option<&[u8]>,
    to: Option<&[u8]>,
) -> StateResult<Vec<(Vec<u8>, Vec<u8>)>> {
    let stored = store.range(from, to)?;
    let mut buffered = buffered.into_iter().filter(|(key, _)| in_range(key, from, to)).peekable();
    let mut merged = Vec::with_capacity(stored.len());
    for (key, value) in stored {
        // Buffered writes up to this key come first; an equal key shadows it.
        let mut shadowed = false;
        while let Some((buffered_key, buffered_value)) =
            buffered.next_if(|(buffered_key, _)| *buffered_key <= key.as_slice())
        {
            shadowed = buffered_key == key.as_slice();
            if let Some(buffered_value) = buffered_value {
                merged.push((buffered_key.to_vec(), buffered_value.to_vec()));
            }
        }
        if !shadowed {
            merged.push((key, value));
        }
    }
    merged.extend(buffered.filter_map(|(key, value)| Some((key.to_vec(), value?.to_vec()))));
    Ok(merged)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::state::InMemoryStore;

    fn store_with(entries: &[(&str, &str)]) -> InMemoryStore {
        let mut store = InMemoryStore::new("s");
        let batch: Vec<_> =
            entries.iter().map(|(key, value)| (key.as_bytes().to_vec(), Some(value.as_bytes().to_vec()))).collect();
        store.apply(&batch, None).unwrap();
        store
    }

    fn pairs(entries: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(String, String)> {
        entries
            .into_iter()
            .map(|(key, value)| (String::from_utf8(key).unwrap(), String::from_utf8(value).unwrap()))
            .collect()
    }

    fn owned(entries: &[(&str, &str)]) -> Vec<(String, String)> {
        entries.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect()
    }

    #[test]
    fn get_sees_the_latest_write_and_deletes_as_some_none() {
        let mut buffer = WriteBuffer::new();
        assert_eq!(buffer.get("s", b"k"), None);
        buffer.put("s", b"k".to_vec(), b"1".to_vec());
        buffer.put("s", b"k".to_vec(), b"2".to_vec());
        assert_eq!(buffer.get("s", b"k"), Some(Some(&b"2"[..])));
        buffer.delete("s", b"k".to_vec());
        assert_eq!(buffer.get("s", b"k"), Some(None));
        assert_eq!(buffer.get("other", b"k"), None, "stores are buffered apart");
    }

    #[test]
    fn drain_returns_one_latest_write_per_key_in_key_order_and_only_for_that_store() {
        let mut buffer = WriteBuffer::new();
        buffer.put("s", b"b".to_vec(), b"1".to_vec());
        buffer.put("s", b"a".to_vec(), b"1".to_vec());
        buffer.put("s", b"b".to_vec(), b"2".to_vec());
        buffer.put("s", b"c".to_vec(), b"1".to_vec());
        buffer.delete("s", b"c".to_vec());
        buffer.put("t", b"a".to_vec(), b"9".to_vec());
        assert_eq!(buffer.len(), 4);
        assert_eq!(buffer.stores().count(), 2);

        let drained = buffer.drain("s");
        let expected: Vec<(Vec<u8>, Option<Vec<u8>>)> =
            vec![(b"a".to_vec(), Some(b"1".to_vec())), (b"b".to_vec(), Some(b"2".to_vec())), (b"c".to_vec(), None)];
        assert_eq!(drained, expected);
        assert_eq!(buffer.get("s", b"a"), None);
        assert_eq!(buffer.len(), 1);
        assert!(buffer.drain("s").is_empty());

        buffer.clear();
        assert!(buffer.is_empty());
        assert_eq!(buffer.len(), 0);
    }

    #[test]
    fn drained_batch_applied_to_a_store_gives_what_the_buffer_showed() {
        let mut store = store_with(&[("a", "old"), ("b", "old")]);
        let mut buffer = WriteBuffer::new();
        buffer.put("s", b"a".to_vec(), b"new".to_vec());
        buffer.delete("s", b"b".to_vec());
        buffer.put("s", b"c".to_vec(), b"new".to_vec());
        let before = buffer.scan(&store, None, None).unwrap();
        store.apply(&buffer.drain("s"), Some(3)).unwrap();
        assert_eq!(store.range(None, None).unwrap(), before);
        assert_eq!(pairs(before), owned(&[("a", "new"), ("c", "new")]));
    }

    #[test]
    fn merged_scan_lets_buffered_writes_replace_and_deletes_hide_stored_values() {
        let store = store_with(&[("a", "1"), ("c", "1"), ("e", "1"), ("g", "1")]);
        let mut buffer = WriteBuffer::new();
        buffer.put("s", b"0".to_vec(), b"2".to_vec());
        buffer.put("s", b"b".to_vec(), b"2".to_vec());
        buffer.put("s", b"c".to_vec(), b"2".to_vec());
        buffer.delete("s", b"e".to_vec());
        buffer.delete("s", b"f".to_vec());
        buffer.put("s", b"z".to_vec(), b"2".to_vec());

        let all = [("0", "2"), ("a", "1"), ("b", "2"), ("c", "2"), ("g", "1"), ("z", "2")];
        assert_eq!(pairs(buffer.scan(&store, None, None).unwrap()), owned(&all));
        assert_eq!(pairs(buffer.scan(&store, Some(b"b"), Some(b"g")).unwrap()), owned(&[("b", "2"), ("c", "2")]));
        assert_eq!(pairs(buffer.scan(&store, Some(b"c"), None).unwrap()), owned(&[("c", "2"), ("g", "1"), ("z", "2")]));
        assert!(buffer.scan(&store, Some(b"g"), Some(b"a")).unwrap().is_empty());
    }

    #[test]
    fn merged_scan_ignores_buffered_writes_outside_the_bounds() {
        let store = store_with(&[("b", "1")]);
        let buffered: [(&[u8], Option<&[u8]>); 3] = [(b"a", Some(b"2")), (b"b", None), (b"c", Some(b"2"))];
        let merged = scan_merged(&store, buffered, Some(b"b"), Some(b"c")).unwrap();
        assert!(merged.is_empty(), "the delete of b hides it, a and c are out of bounds: {merged:?}");
    }

    #[test]
    fn merged_prefix_scan_sees_buffered_keys_with_the_prefix_only() {
        let store = store_with(&[("user:1", "ann"), ("user:2", "bob"), ("users", "x")]);
        let mut buffer = WriteBuffer::new();
        buffer.delete("s", b"user:1".to_vec());
        buffer.put("s", b"user:3".to_vec(), b"cy".to_vec());
        buffer.put("s", b"usex".to_vec(), b"no".to_vec());
        let found = pairs(buffer.prefix_scan(&store, b"user:").unwrap());
        assert_eq!(found, owned(&[("user:2", "bob"), ("user:3", "cy")]));
    }
}
