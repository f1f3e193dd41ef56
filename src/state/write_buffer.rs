//! The per-task write buffer: uncommitted writes, readable before commit.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use super::{in_range, prefix_end, KeyRange, KeyValueStore, StateResult};

/// Writes a task has made since its last commit, per store, holding only the
/// latest value per key (`None` for a delete).
///
/// Reads go through it first, so a task sees its own uncommitted writes. At
/// commit its entries become the changelog records (one per key per commit
/// interval: the buffer is also the changelog's dedup cache), then, once the
/// commit succeeded, are [`drain`](Self::drain)ed into the stores with
/// [`KeyValueStore::apply`]. On abort it is [`clear`](Self::clear)ed and the
/// stores never see its writes.
///
/// # Local drops
///
/// [`drop_locally`](Self::drop_locally) deletes a key range from the local
/// store only: nothing of it goes to the changelog. It discards the
/// buffered writes in the range (they never reach the changelog either),
/// and from then on reads see nothing there except writes made after the
/// drop. At commit the ranges are taken with
/// [`take_dropped`](Self::take_dropped) and deleted in the same batch as
/// the entries ([`KeyValueStore::apply_dropping`]), before them, so a write
/// made after the drop survives it. An abort discards them with the rest.
/// The segmented window store uses it to drop closed windows, which the
/// changelog's time retention removes on the broker side.
#[derive(Debug, Default)]
pub(crate) struct WriteBuffer {
    stores: HashMap<String, StoreWrites>,
}

/// One store's buffered writes and local drops.
#[derive(Debug, Default)]
struct StoreWrites {
    entries: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Disjoint, sorted, non-adjacent `[from, to)` ranges.
    dropped: Vec<KeyRange>,
}

impl StoreWrites {
    fn is_dropped(&self, key: &[u8]) -> bool {
        self.dropped.iter().any(|(from, to)| in_range(key, Some(from), Some(to)))
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.dropped.is_empty()
    }
}

impl WriteBuffer {
    /// An empty buffer.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Buffers `value` under `key` in `store`, replacing any buffered write.
    pub(crate) fn put(&mut self, store: &str, key: Vec<u8>, value: Vec<u8>) {
        self.store_mut(store).entries.insert(key, Some(value));
    }

    /// Buffers the deletion of `key` in `store`: reads see no value even if
    /// the store has one.
    pub(crate) fn delete(&mut self, store: &str, key: Vec<u8>) {
        self.store_mut(store).entries.insert(key, None);
    }

    /// Drops the keys `from <= key < to` of `store` locally, without
    /// changelog records (see the type's docs): buffered writes in the range
    /// are discarded, and reads see nothing there until a later write.
    pub(crate) fn drop_locally(&mut self, store: &str, from: Vec<u8>, to: Vec<u8>) {
        if from >= to {
            return;
        }
        let writes = self.store_mut(store);
        let mut inside = writes.entries.split_off(&from);
        let mut after = inside.split_off(&to);
        writes.entries.append(&mut after);
        // Merge with the ranges it overlaps or touches, so that a store
        // dropping a growing prefix of time keeps one range.
        let (mut from, mut to) = (from, to);
        writes.dropped.retain(|(a, b)| {
            let apart = *b < from || *a > to;
            if !apart {
                from = from.clone().min(a.clone());
                to = to.clone().max(b.clone());
            }
            apart
        });
        let at = writes.dropped.partition_point(|(a, _)| *a < from);
        writes.dropped.insert(at, (from, to));
    }

    /// The buffered write for `key`: `None` if the buffer knows nothing (read
    /// the store), `Some(None)` if the key was deleted or lies in a range
    /// dropped locally, `Some(Some(value))` if it was written.
    pub(crate) fn get(&self, store: &str, key: &[u8]) -> Option<Option<&[u8]>> {
        let writes = self.stores.get(store)?;
        match writes.entries.get(key) {
            Some(value) => Some(value.as_deref()),
            None if !writes.dropped.is_empty() && writes.is_dropped(key) => Some(None),
            None => None,
        }
    }

    /// Whether nothing is buffered (no write, no local drop) for any store.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.stores.values().all(StoreWrites::is_empty)
    }

    /// The number of buffered keys, over all stores.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.stores.values().map(|writes| writes.entries.len()).sum()
    }

    /// The stores with buffered writes or local drops.
    #[cfg(test)]
    pub(crate) fn stores(&self) -> impl Iterator<Item = &str> + '_ {
        self.stores.iter().filter(|(_, writes)| !writes.is_empty()).map(|(store, _)| store.as_str())
    }

    /// The buffered writes of `store` with `from <= key < to` (`None` =
    /// unbounded), in key order, without removing them: what commit sends to
    /// the changelog.
    pub(crate) fn range<'a>(
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
            .flat_map(move |writes| writes.entries.range::<[u8], _>(bounds))
            .map(|(key, value)| (key.as_slice(), value.as_deref()))
    }

    /// Removes and returns the buffered writes of `store`, one per key (the
    /// latest), in key order: the batch for [`KeyValueStore::apply`]. Local
    /// drops stay until [`take_dropped`](Self::take_dropped) or
    /// [`clear`](Self::clear).
    pub(crate) fn drain(&mut self, store: &str) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        match self.stores.get_mut(store) {
            Some(writes) => std::mem::take(&mut writes.entries).into_iter().collect(),
            None => Vec::new(),
        }
    }

    /// Removes and returns the ranges of `store` dropped locally, in key
    /// order: what [`KeyValueStore::apply_dropping`] deletes before the
    /// drained entries.
    pub(crate) fn take_dropped(&mut self, store: &str) -> Vec<KeyRange> {
        self.stores.get_mut(store).map(|writes| std::mem::take(&mut writes.dropped)).unwrap_or_default()
    }

    /// Drops every buffered write and local drop, as on abort.
    pub(crate) fn clear(&mut self) {
        self.stores.clear();
    }

    /// Entries of `store` with `from <= key < to`, as they read with the
    /// buffered writes and local drops on top.
    pub(crate) fn scan(
        &self,
        store: &dyn KeyValueStore,
        from: Option<&[u8]>,
        to: Option<&[u8]>,
    ) -> StateResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let buffered = self.range(store.name(), from, to);
        match self.stores.get(store.name()).filter(|writes| !writes.dropped.is_empty()) {
            None => scan_merged(store, buffered, from, to),
            Some(writes) => merge(stored_outside(store, &writes.dropped, from, to)?, buffered, from, to),
        }
    }

    /// Entries of `store` whose key starts with `prefix`, as they read with
    /// the buffered writes on top.
    pub(crate) fn prefix_scan(&self, store: &dyn KeyValueStore, prefix: &[u8]) -> StateResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let end = prefix_end(prefix);
        self.scan(store, Some(prefix), end.as_deref())
    }

    fn store_mut(&mut self, store: &str) -> &mut StoreWrites {
        self.stores.entry(store.to_string()).or_default()
    }
}

/// Entries of `store` with `from <= key < to` (`None` = unbounded) as they
/// read with `buffered` writes on top: a buffered value replaces the stored
/// one, a buffered delete (`None`) hides it. `buffered` must be in key order
/// with one write per key, as [`WriteBuffer::range`] gives them; writes
/// outside the bounds are ignored.
pub(crate) fn scan_merged<'a>(
    store: &dyn KeyValueStore,
    buffered: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    from: Option<&[u8]>,
    to: Option<&[u8]>,
) -> StateResult<Vec<(Vec<u8>, Vec<u8>)>> {
    merge(store.range(from, to)?, buffered, from, to)
}

/// The stored entries in `[from, to)` outside the `dropped` ranges (sorted
/// and disjoint): one store range read per gap between them.
fn stored_outside(
    store: &dyn KeyValueStore,
    dropped: &[KeyRange],
    from: Option<&[u8]>,
    to: Option<&[u8]>,
) -> StateResult<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut found = Vec::new();
    let mut gap_from = from.map(<[u8]>::to_vec);
    for (drop_from, drop_to) in dropped {
        let gap_to = match to {
            Some(to) if to <= drop_from.as_slice() => to,
            _ => drop_from.as_slice(),
        };
        found.extend(store.range(gap_from.as_deref(), Some(gap_to))?);
        if to.is_some_and(|to| to <= drop_to.as_slice()) {
            return Ok(found);
        }
        if gap_from.as_deref().is_none_or(|f| f < drop_to.as_slice()) {
            gap_from = Some(drop_to.clone());
        }
    }
    found.extend(store.range(gap_from.as_deref(), to)?);
    Ok(found)
}

/// `stored` entries (in key order) with `buffered` writes on top, as
/// [`scan_merged`] describes.
fn merge<'a>(
    stored: Vec<(Vec<u8>, Vec<u8>)>,
    buffered: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    from: Option<&[u8]>,
    to: Option<&[u8]>,
) -> StateResult<Vec<(Vec<u8>, Vec<u8>)>> {
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
    use crate::state::{InMemoryStore, KeyRange};

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

    fn drop(buffer: &mut WriteBuffer, from: &str, to: &str) {
        buffer.drop_locally("s", from.as_bytes().to_vec(), to.as_bytes().to_vec());
    }

    #[test]
    fn a_local_drop_hides_stored_keys_and_discards_buffered_writes_in_its_range() {
        let store = store_with(&[("a", "1"), ("b", "1"), ("c", "1"), ("d", "1")]);
        let mut buffer = WriteBuffer::new();
        buffer.put("s", b"b".to_vec(), b"2".to_vec());
        buffer.put("s", b"x".to_vec(), b"2".to_vec());
        drop(&mut buffer, "b", "d");
        assert_eq!(buffer.get("s", b"b"), Some(None), "a buffered write in the range is gone");
        assert_eq!(buffer.get("s", b"c"), Some(None), "a stored key in the range reads as deleted");
        assert_eq!(buffer.get("s", b"a"), None);
        assert_eq!(buffer.get("s", b"d"), None, "the end is exclusive");
        assert_eq!(pairs(buffer.scan(&store, None, None).unwrap()), owned(&[("a", "1"), ("d", "1"), ("x", "2")]));
        assert_eq!(pairs(buffer.scan(&store, Some(b"c"), Some(b"e")).unwrap()), owned(&[("d", "1")]));
        // Only the write outside the range reaches the changelog.
        let drained: Vec<(Vec<u8>, Option<Vec<u8>>)> = vec![(b"x".to_vec(), Some(b"2".to_vec()))];
        assert_eq!(buffer.drain("s"), drained);
        assert_eq!(buffer.get("s", b"c"), Some(None), "the drop outlives the drain until it is taken");
        assert_eq!(buffer.take_dropped("s"), vec![(b"b".to_vec(), b"d".to_vec())]);
        assert_eq!(buffer.get("s", b"c"), None);
        assert!(buffer.is_empty());
    }

    #[test]
    fn a_write_after_a_local_drop_survives_it_and_touching_drops_merge() {
        let mut store = store_with(&[("a", "1"), ("b", "1"), ("c", "1"), ("d", "1"), ("e", "1"), ("g", "1")]);
        let mut buffer = WriteBuffer::new();
        drop(&mut buffer, "b", "d");
        buffer.put("s", b"c".to_vec(), b"2".to_vec());
        drop(&mut buffer, "d", "f");
        drop(&mut buffer, "g", "h");
        assert_eq!(buffer.get("s", b"c"), Some(Some(&b"2"[..])));
        let before = buffer.scan(&store, None, None).unwrap();
        assert_eq!(pairs(before.clone()), owned(&[("a", "1"), ("c", "2")]));
        let dropped = buffer.take_dropped("s");
        let expected: Vec<KeyRange> = vec![(b"b".to_vec(), b"f".to_vec()), (b"g".to_vec(), b"h".to_vec())];
        assert_eq!(dropped, expected);
        store.apply_dropping(&dropped, &buffer.drain("s"), Some(1)).unwrap();
        assert_eq!(store.range(None, None).unwrap(), before, "the store holds what the buffer showed");
    }

    #[test]
    fn a_scan_across_several_drops_reads_only_the_gaps() {
        let store = store_with(&[("a", "1"), ("b", "1"), ("c", "1"), ("d", "1"), ("e", "1"), ("f", "1")]);
        let mut buffer = WriteBuffer::new();
        drop(&mut buffer, "b", "c");
        drop(&mut buffer, "d", "f");
        assert_eq!(pairs(buffer.scan(&store, None, None).unwrap()), owned(&[("a", "1"), ("c", "1"), ("f", "1")]));
        assert_eq!(pairs(buffer.scan(&store, Some(b"b"), Some(b"e")).unwrap()), owned(&[("c", "1")]));
        assert_eq!(pairs(buffer.scan(&store, Some(b"d"), None).unwrap()), owned(&[("f", "1")]));
        assert!(buffer.scan(&store, Some(b"d"), Some(b"f")).unwrap().is_empty());
        assert_eq!(pairs(buffer.prefix_scan(&store, b"a").unwrap()), owned(&[("a", "1")]));
    }

    #[test]
    fn an_abort_discards_local_drops() {
        let store = store_with(&[("a", "1")]);
        let mut buffer = WriteBuffer::new();
        drop(&mut buffer, "a", "b");
        assert!(buffer.scan(&store, None, None).unwrap().is_empty());
        assert!(!buffer.is_empty());
        buffer.clear();
        assert_eq!(buffer.get("s", b"a"), None, "reads go to the store again");
        assert_eq!(pairs(buffer.scan(&store, None, None).unwrap()), owned(&[("a", "1")]));
        assert!(buffer.take_dropped("s").is_empty(), "nothing is left for a commit to delete");
    }
}
