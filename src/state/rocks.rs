//! A store in RocksDB, with its changelog offset in the same atomic batches.
//!
//! # Layout
//!
//! Two column families: `default` holds the data, `rivulet_meta` holds the
//! changelog offset under one fixed key (an 8-byte big-endian `i64`). Every
//! [`apply`](KeyValueStore::apply) is one `WriteBatch` carrying both.
//!
//! # Durability without a WAL
//!
//! Writes skip RocksDB's write-ahead log: the changelog topic is the durable
//! log. Without a WAL only flushed memtables survive a crash, and RocksDB
//! flushes a memtable whole, at a batch boundary, so what survives is a
//! prefix of the applied batches. `atomic_flush` makes every flush (manual,
//! memtable full, or triggered by the shared write-buffer manager) cover both
//! column families up to the same sequence number and commit them to the
//! MANIFEST together; so the offset in `rivulet_meta` always belongs to the
//! data that survived, and a restore replays exactly the lost tail. (Without
//! `atomic_flush` either column family could be flushed alone and the offset
//! could run ahead of, or lag behind, the data.) The
//! `crash_without_flush_keeps_the_offset_of_the_data_that_survived` test
//! kills a writer mid-stream and checks this.
//!
//! A clean shutdown calls [`RocksDbStore::close`] (or [`RocksDbStore::flush`])
//! so nothing needs replaying on the next start. RocksDB also flushes on drop
//! when the WAL is off, but a drop cannot report a failure.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{
    BlockBasedOptions, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, Direction, ErrorKind, FlushOptions,
    IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions, DB, DEFAULT_COLUMN_FAMILY_NAME,
};

use super::registry::StoreReader;
use super::{Change, KeyRange, KeyValueStore, StateError, StateResources, StateResult};

/// The column family holding the changelog offset.
const META_COLUMN_FAMILY: &str = "rivulet_meta";
/// The key of the changelog offset in [`META_COLUMN_FAMILY`].
const CHANGELOG_OFFSET_KEY: &[u8] = b"changelog_offset";

/// A [`KeyValueStore`] in a RocksDB instance of its own, using the process's
/// shared [`StateResources`]. See the module docs for its layout and why its
/// changelog offset always matches its data after a crash.
pub(crate) struct RocksDbStore {
    name: String,
    path: PathBuf,
    /// Shared with the store's readers (`reader`), which interactive
    /// queries use from other threads.
    db: Arc<DB>,
    write_options: WriteOptions,
}

impl RocksDbStore {
    /// Opens the store called `name` in the directory `path`, creating both
    /// the directory and the store if missing.
    ///
    /// Fails with [`StateError::Corrupt`] if `path` holds something that is
    /// not a readable rivulet store (wipe it and restore from the changelog),
    /// and with [`StateError::Open`] for anything that does not call for a
    /// wipe (a lock held elsewhere, permissions).
    pub(crate) fn open(path: &Path, name: &str, resources: &StateResources) -> StateResult<Self> {
        check_is_store_or_empty(path, name)?;
        std::fs::create_dir_all(path).map_err(|source| StateError::Io { path: path.to_path_buf(), source })?;

        let options = options(resources);
        let column_families = [
            ColumnFamilyDescriptor::new(DEFAULT_COLUMN_FAMILY_NAME, options.clone()),
            ColumnFamilyDescriptor::new(META_COLUMN_FAMILY, options.clone()),
        ];
        let db = DB::open_cf_descriptors(&options, path, column_families).map_err(|err| {
            let kind = err.kind();
            let reason = err.into_string();
            match kind {
                // InvalidArgument: a RocksDB whose column families or options are
                // not ours; another program's data is no more usable than garbage.
                ErrorKind::Corruption | ErrorKind::InvalidArgument => {
                    StateError::Corrupt { store: name.to_string(), path: path.to_path_buf(), reason }
                }
                _ => StateError::Open { store: name.to_string(), path: path.to_path_buf(), reason },
            }
        })?;

        let mut write_options = WriteOptions::default();
        write_options.disable_wal(true);
        let store = RocksDbStore { name: name.to_string(), path: path.to_path_buf(), db: Arc::new(db), write_options };
        // A damaged offset found now costs a restore; found mid-processing it
        // would fail a commit.
        store.changelog_offset()?;
        Ok(store)
    }

    /// Writes the memtables of both column families to disk, atomically, so
    /// that every batch applied so far survives a crash.
    pub(crate) fn flush(&self) -> StateResult<()> {
        let data = self.column_family(DEFAULT_COLUMN_FAMILY_NAME)?;
        let meta = self.column_family(META_COLUMN_FAMILY)?;
        // DB::flush would flush the default column family only.
        self.db.flush_cfs_opt(&[data, meta], &FlushOptions::default()).map_err(|err| self.error("flush", err))
    }

    /// Flushes and closes the store: a clean shutdown, after which reopening
    /// needs no changelog replay.
    #[cfg(test)]
    pub(crate) fn close(self) -> StateResult<()> {
        self.flush()
    }

    fn column_family(&self, name: &str) -> StateResult<&ColumnFamily> {
        self.db.cf_handle(name).ok_or_else(|| StateError::Store {
            store: self.name.clone(),
            path: self.path.clone(),
            operation: "open column family",
            reason: format!("column family `{name}` is not open"),
        })
    }

    fn error(&self, operation: &'static str, err: rocksdb::Error) -> StateError {
        store_error(&self.name, &self.path, operation, err)
    }
}

fn store_error(name: &str, path: &Path, operation: &'static str, err: rocksdb::Error) -> StateError {
    let corrupt = err.kind() == ErrorKind::Corruption;
    let reason = err.into_string();
    if corrupt {
        StateError::Corrupt { store: name.to_string(), path: path.to_path_buf(), reason }
    } else {
        StateError::Store { store: name.to_string(), path: path.to_path_buf(), operation, reason }
    }
}

/// A stored key and value.
type Entry = (Vec<u8>, Vec<u8>);

/// Up to `limit` entries with `from <= key < to`, in key order.
fn read_range(db: &DB, from: Option<&[u8]>, to: Option<&[u8]>, limit: usize) -> Result<Vec<Entry>, rocksdb::Error> {
    if let (Some(from), Some(to)) = (from, to) {
        if from >= to {
            return Ok(Vec::new());
        }
    }
    let mut read_options = ReadOptions::default();
    if let Some(to) = to {
        // A bound lets RocksDB stop at `to` rather than read the block past it.
        read_options.set_iterate_upper_bound(to);
    }
    let mode = match from {
        Some(from) => IteratorMode::From(from, Direction::Forward),
        None => IteratorMode::Start,
    };
    db.iterator_opt(mode, read_options)
        .take(limit)
        .map(|entry| entry.map(|(k, v)| (k.into_vec(), v.into_vec())))
        .collect()
}

/// A [`StoreReader`] sharing an open store's database.
struct RocksReader {
    name: String,
    path: PathBuf,
    db: Arc<DB>,
}

impl StoreReader for RocksReader {
    fn get(&self, key: &[u8]) -> StateResult<Option<Vec<u8>>> {
        self.db.get(key).map_err(|err| store_error(&self.name, &self.path, "get", err))
    }

    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>, limit: usize) -> StateResult<Vec<(Vec<u8>, Vec<u8>)>> {
        read_range(&self.db, from, to, limit).map_err(|err| store_error(&self.name, &self.path, "range", err))
    }

    fn last_below(&self, to: &[u8]) -> StateResult<Option<Vec<u8>>> {
        // Reverse from `to` starts at the greatest key <= `to`.
        for entry in self.db.iterator(IteratorMode::From(to, Direction::Reverse)) {
            let (key, _) = entry.map_err(|err| store_error(&self.name, &self.path, "last key", err))?;
            if &*key < to {
                return Ok(Some(key.into_vec()));
            }
        }
        Ok(None)
    }
}

impl KeyValueStore for RocksDbStore {
    fn flush(&self) -> StateResult<()> {
        RocksDbStore::flush(self)
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, key: &[u8]) -> StateResult<Option<Vec<u8>>> {
        self.db.get(key).map_err(|err| self.error("get", err))
    }

    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> StateResult<Vec<(Vec<u8>, Vec<u8>)>> {
        read_range(&self.db, from, to, usize::MAX).map_err(|err| self.error("range", err))
    }

    fn reader(&self) -> Option<Box<dyn StoreReader>> {
        Some(Box::new(RocksReader { name: self.name.clone(), path: self.path.clone(), db: self.db.clone() }))
    }

    /// One range tombstone per dropped range, then the entries, then the
    /// offset, in one `WriteBatch`: reads skip a dropped range at once and
    /// compaction removes its files whole, as dropping a segment does in
    /// Kafka Streams' segmented stores.
    fn apply_dropping(&mut self, dropped: &[KeyRange], batch: &[Change], offset: Option<i64>) -> StateResult<()> {
        let mut write_batch = WriteBatch::default();
        for (from, to) in dropped {
            write_batch.delete_range(from, to);
        }
        for (key, value) in batch {
            match value {
                Some(value) => write_batch.put(key, value),
                None => write_batch.delete(key),
            }
        }
        if let Some(offset) = offset {
            let meta = self.column_family(META_COLUMN_FAMILY)?;
            write_batch.put_cf(meta, CHANGELOG_OFFSET_KEY, offset.to_be_bytes());
        }
        self.db.write_opt(write_batch, &self.write_options).map_err(|err| self.error("apply", err))
    }

    fn last_key(&self) -> StateResult<Option<Vec<u8>>> {
        match self.db.iterator(IteratorMode::End).next() {
            Some(entry) => entry.map(|(key, _)| Some(key.into_vec())).map_err(|err| self.error("last key", err)),
            None => Ok(None),
        }
    }

    fn changelog_offset(&self) -> StateResult<Option<i64>> {
        let meta = self.column_family(META_COLUMN_FAMILY)?;
        let Some(bytes) = self.db.get_cf(meta, CHANGELOG_OFFSET_KEY).map_err(|err| self.error("read offset", err))?
        else {
            return Ok(None);
        };
        let bytes = <[u8; 8]>::try_from(bytes.as_slice()).map_err(|_| StateError::Corrupt {
            store: self.name.clone(),
            path: self.path.clone(),
            reason: format!("the changelog offset is {} bytes long, not 8", bytes.len()),
        })?;
        Ok(Some(i64::from_be_bytes(bytes)))
    }

    /// RocksDB's `estimate-num-keys`: it counts overwrites and deletes not yet
    /// compacted away, so it can be well off after many updates.
    #[cfg(test)]
    fn approximate_len(&self) -> StateResult<u64> {
        let estimate = self
            .db
            .property_int_value(rocksdb::properties::ESTIMATE_NUM_KEYS)
            .map_err(|err| self.error("estimate size", err))?;
        Ok(estimate.unwrap_or(0))
    }

    /// RocksDB's estimate of live data in its files plus its memtables.
    fn approximate_size_bytes(&self) -> StateResult<u64> {
        let mut total = 0;
        for property in [rocksdb::properties::ESTIMATE_LIVE_DATA_SIZE, rocksdb::properties::CUR_SIZE_ALL_MEM_TABLES] {
            let value = self.db.property_int_value(property).map_err(|err| self.error("estimate size", err))?;
            total += value.unwrap_or(0);
        }
        Ok(total)
    }
}

impl std::fmt::Debug for RocksDbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksDbStore").field("name", &self.name).field("path", &self.path).finish_non_exhaustive()
    }
}

/// The options of every store: shared memory, lz4, no-WAL safety.
fn options(resources: &StateResources) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&resources.block_cache);
    // Index and filter blocks go in the shared cache too; otherwise their
    // memory would grow with the number of stores, outside the bound.
    table.set_cache_index_and_filter_blocks(true);
    table.set_bloom_filter(10.0, false);

    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    options.set_atomic_flush(true);
    options.set_write_buffer_manager(&resources.write_buffer_manager);
    options.set_block_based_table_factory(&table);
    options.set_compression_type(DBCompressionType::Lz4);
    // RocksDB keeps an info log per store and rolls it at each open; with many
    // stores and restarts the default of 1000 old logs adds up.
    options.set_keep_log_file_num(2);
    options
}

/// Refuses a path that holds anything other than a RocksDB store, so that a
/// store is never created amid unrelated files (RocksDB would happily do so).
fn check_is_store_or_empty(path: &Path, name: &str) -> StateResult<()> {
    let corrupt = |reason: &str| StateError::Corrupt {
        store: name.to_string(),
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let io_error = |source| StateError::Io { path: path.to_path_buf(), source };
    let mut entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(_) if path.is_file() => return Err(corrupt("a file is where the store's directory should be")),
        Err(err) => return Err(io_error(err)),
    };
    if entries.next().is_some() && !path.join("CURRENT").is_file() {
        return Err(corrupt("the directory is not empty and is not a RocksDB store (no CURRENT file)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::process::Command;

    use super::*;
    use crate::state::tests::{delete, keys, put};

    fn small_resources() -> StateResources {
        StateResources::new(8 << 20, 4 << 20)
    }

    #[test]
    fn put_get_delete_range_and_prefix_scan() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = RocksDbStore::open(dir.path(), "s", &small_resources()).unwrap();
        store.apply(&[put("a", "1"), put("ab", "2"), put("abc", "3"), put("b", "4"), put("c", "5")], None).unwrap();
        store.apply(&[delete("c"), put("b", "6"), put("d", "x"), delete("d")], None).unwrap();

        assert_eq!(store.get(b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(store.get(b"b").unwrap(), Some(b"6".to_vec()));
        assert_eq!(store.get(b"c").unwrap(), None);
        assert_eq!(store.get(b"d").unwrap(), None, "a later delete in the same batch wins");

        assert_eq!(keys(store.range(Some(b"ab"), Some(b"b")).unwrap()), ["ab", "abc"]);
        assert_eq!(keys(store.range(None, Some(b"ab")).unwrap()), ["a"]);
        assert_eq!(keys(store.range(Some(b"abc"), None).unwrap()), ["abc", "b"]);
        assert_eq!(keys(store.range(None, None).unwrap()), ["a", "ab", "abc", "b"]);
        assert!(store.range(Some(b"b"), Some(b"a")).unwrap().is_empty());
        assert_eq!(keys(store.prefix_scan(b"ab").unwrap()), ["ab", "abc"]);
        assert!(store.prefix_scan(b"z").unwrap().is_empty());
        assert_eq!(store.range(Some(b"b"), None).unwrap(), [(b"b".to_vec(), b"6".to_vec())]);
    }

    #[test]
    fn data_and_offset_of_a_batch_are_on_disk_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let resources = small_resources();
        let mut store = RocksDbStore::open(dir.path(), "s", &resources).unwrap();
        assert_eq!(store.changelog_offset().unwrap(), None);
        store.apply(&[put("a", "1"), put("b", "2")], Some(42)).unwrap();
        store.apply(&[delete("a")], None).unwrap();
        store.close().unwrap();

        let store = RocksDbStore::open(dir.path(), "s", &resources).unwrap();
        assert_eq!(store.get(b"a").unwrap(), None);
        assert_eq!(store.get(b"b").unwrap(), Some(b"2".to_vec()));
        assert_eq!(store.changelog_offset().unwrap(), Some(42), "a batch without an offset keeps the last one");
    }

    #[test]
    fn clear_removes_every_key_the_last_included_and_records_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let resources = small_resources();
        let mut store = RocksDbStore::open(dir.path(), "s", &resources).unwrap();
        assert_eq!(store.last_key().unwrap(), None);
        store.apply(&[put("", "empty key"), put("a", "1"), put("\u{ff}\u{ff}", "2")], Some(9)).unwrap();
        assert_eq!(store.last_key().unwrap(), Some("\u{ff}\u{ff}".as_bytes().to_vec()));
        store.clear(0).unwrap();
        assert!(store.range(None, None).unwrap().is_empty());
        assert_eq!(store.changelog_offset().unwrap(), Some(0));
        store.close().unwrap();

        let store = RocksDbStore::open(dir.path(), "s", &resources).unwrap();
        assert!(store.range(None, None).unwrap().is_empty(), "the wipe is durable");
        assert_eq!(store.last_key().unwrap(), None);
        assert_eq!(store.changelog_offset().unwrap(), Some(0));
    }

    #[test]
    fn dropped_ranges_go_with_the_batch_and_stay_gone_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let resources = small_resources();
        let mut store = RocksDbStore::open(dir.path(), "s", &resources).unwrap();
        store.apply(&[put("a", "1"), put("b1", "1"), put("b2", "1"), put("c", "1"), put("d", "1")], Some(3)).unwrap();
        let dropped = [(b"b".to_vec(), b"d".to_vec())];
        store.apply_dropping(&dropped, &[put("b2", "2"), put("e", "2")], Some(4)).unwrap();
        assert_eq!(keys(store.range(None, None).unwrap()), ["a", "b2", "d", "e"], "a write in the batch survives");
        store.close().unwrap();

        let store = RocksDbStore::open(dir.path(), "s", &resources).unwrap();
        assert_eq!(keys(store.range(None, None).unwrap()), ["a", "b2", "d", "e"]);
        assert_eq!(store.get(b"b1").unwrap(), None);
        assert_eq!(store.get(b"b2").unwrap(), Some(b"2".to_vec()));
        assert_eq!(store.changelog_offset().unwrap(), Some(4));
    }

    #[test]
    fn offset_survives_reopen_after_flush_and_drop() {
        let dir = tempfile::tempdir().unwrap();
        let resources = small_resources();
        {
            let mut store = RocksDbStore::open(dir.path(), "s", &resources).unwrap();
            store.apply(&[put("k", "v")], Some(7)).unwrap();
            store.flush().unwrap();
            store.apply(&[put("k", "w")], Some(i64::MAX)).unwrap();
        }
        let store = RocksDbStore::open(dir.path(), "s", &resources).unwrap();
        assert_eq!(store.changelog_offset().unwrap(), Some(i64::MAX));
        assert_eq!(store.get(b"k").unwrap(), Some(b"w".to_vec()));
    }

    #[test]
    fn approximate_len_counts_distinct_keys_written_without_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let resources = small_resources();
        let mut store = RocksDbStore::open(dir.path(), "s", &resources).unwrap();
        store.apply(&[put("a", "1"), put("b", "1"), put("c", "1")], None).unwrap();
        assert_eq!(store.approximate_len().unwrap(), 3);
        store.close().unwrap();
        let store = RocksDbStore::open(dir.path(), "s", &resources).unwrap();
        assert_eq!(store.approximate_len().unwrap(), 3);
    }

    #[test]
    fn size_estimate_grows_with_the_data_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = RocksDbStore::open(dir.path(), "s", &small_resources()).unwrap();
        let empty = store.approximate_size_bytes().unwrap();
        // Hex of a xorshift sequence: about 400 kB that lz4 cannot shrink much.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut value = || {
            (0..25)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    format!("{x:016x}")
                })
                .collect::<String>()
        };
        let batch: Vec<_> = (0..1000).map(|i| put(&format!("key-{i}"), &value())).collect();
        store.apply(&batch, Some(1)).unwrap();
        store.flush().unwrap();
        let size = store.approximate_size_bytes().unwrap();
        assert!(size > empty + 100_000, "{empty} -> {size}");
    }

    #[test]
    fn two_stores_share_one_cache_and_write_buffer_manager() {
        let root = tempfile::tempdir().unwrap();
        let resources = small_resources();
        let mut first = RocksDbStore::open(&root.path().join("first"), "first", &resources).unwrap();
        let mut second = RocksDbStore::open(&root.path().join("second"), "second", &resources).unwrap();
        first.apply(&[put("k", "1")], Some(1)).unwrap();
        second.apply(&[put("k", "2")], Some(2)).unwrap();
        assert!(resources.write_buffer_usage() > 0, "memtables are charged to the shared manager");
        first.flush().unwrap();
        second.flush().unwrap();
        assert_eq!(first.get(b"k").unwrap(), Some(b"1".to_vec()));
        assert_eq!(second.get(b"k").unwrap(), Some(b"2".to_vec()));
        assert_eq!((first.changelog_offset().unwrap(), second.changelog_offset().unwrap()), (Some(1), Some(2)));
        assert!(resources.block_cache_usage() > 0, "reads after a flush go through the shared cache");
    }

    #[test]
    fn a_directory_of_unrelated_files_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"not a store").unwrap();
        let err = RocksDbStore::open(dir.path(), "s", &small_resources()).unwrap_err();
        assert!(err.is_corrupt(), "{err}");
        assert!(dir.path().join("notes.txt").exists(), "open must not touch what it refuses");
    }

    #[test]
    fn a_store_with_garbage_files_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        RocksDbStore::open(dir.path(), "s", &small_resources()).unwrap().close().unwrap();
        std::fs::write(dir.path().join("CURRENT"), b"\0\x01garbage").unwrap();
        let err = RocksDbStore::open(dir.path(), "s", &small_resources()).unwrap_err();
        assert!(matches!(err, StateError::Corrupt { ref store, .. } if store == "s"), "{err}");
    }

    #[test]
    fn a_file_where_the_directory_should_be_is_corrupt_and_wipe_clears_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        std::fs::write(&path, b"garbage").unwrap();
        assert!(RocksDbStore::open(&path, "s", &small_resources()).unwrap_err().is_corrupt());
        crate::state::wipe(&path).unwrap();
        RocksDbStore::open(&path, "s", &small_resources()).unwrap();
    }

    #[test]
    fn a_malformed_offset_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut options = Options::default();
            options.create_if_missing(true);
            options.create_missing_column_families(true);
            let db = DB::open_cf(&options, dir.path(), [META_COLUMN_FAMILY]).unwrap();
            db.put_cf(db.cf_handle(META_COLUMN_FAMILY).unwrap(), CHANGELOG_OFFSET_KEY, b"123").unwrap();
        }
        let err = RocksDbStore::open(dir.path(), "s", &small_resources()).unwrap_err();
        assert!(err.is_corrupt(), "{err}");
    }

    #[test]
    fn a_store_open_elsewhere_is_not_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let _open = RocksDbStore::open(dir.path(), "s", &small_resources()).unwrap();
        let err = RocksDbStore::open(dir.path(), "s", &small_resources()).unwrap_err();
        assert!(matches!(err, StateError::Open { .. }), "a locked store must not be wiped: {err}");
    }

    /// Set in the child process of the crash test: the directory to write to.
    const CRASH_CHILD_DIR: &str = "RIVULET_TEST_CRASH_CHILD_DIR";
    const CRASH_BATCHES: i64 = 300;
    const CRASH_KEYS_PER_BATCH: i64 = 64;

    /// Batch `n` sets `counter` to `n` and overwrites filler keys, and brings
    /// the offset to `n + 1`. A 4 MiB write budget makes the write-buffer
    /// manager flush every few batches; then the process dies unflushed.
    fn write_until_killed(dir: &Path) -> ! {
        let mut store = RocksDbStore::open(dir, "s", &small_resources()).unwrap();
        let filler = vec![b'x'; 1024];
        for n in 0..CRASH_BATCHES {
            let mut batch = vec![(b"counter".to_vec(), Some(n.to_be_bytes().to_vec()))];
            for k in 0..CRASH_KEYS_PER_BATCH {
                let key = format!("filler-{:03}-{k:03}", n % 7);
                let mut value = n.to_be_bytes().to_vec();
                value.extend_from_slice(&filler);
                batch.push((key.into_bytes(), Some(value)));
            }
            store.apply(&batch, Some(n + 1)).unwrap();
        }
        std::process::abort()
    }

    #[test]
    fn crash_without_flush_keeps_the_offset_of_the_data_that_survived() {
        if let Some(dir) = std::env::var_os(CRASH_CHILD_DIR) {
            write_until_killed(Path::new(&dir));
        }
        let dir = tempfile::tempdir().unwrap();
        let test = "state::rocks::tests::crash_without_flush_keeps_the_offset_of_the_data_that_survived";
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(CRASH_CHILD_DIR, dir.path())
            .output()
            .unwrap();
        assert!(!child.status.success(), "the writer should have died: {child:?}");

        let store = RocksDbStore::open(dir.path(), "s", &small_resources()).unwrap();
        let offset = store.changelog_offset().unwrap().expect("the write-buffer manager flushed some batches");
        let counter = store.get(b"counter").unwrap().expect("counter flushed with the offset");
        let counter = i64::from_be_bytes(counter.try_into().unwrap());
        assert_eq!(offset, counter + 1, "the offset must belong to the surviving data");
        assert!(offset < CRASH_BATCHES, "the last batches were never flushed, so they must be lost");
        // Every filler key of the last surviving batches is there, from that batch.
        for n in (counter - 6).max(0)..=counter {
            for k in 0..CRASH_KEYS_PER_BATCH {
                let value = store.get(format!("filler-{:03}-{k:03}", n % 7).as_bytes()).unwrap().unwrap();
                assert_eq!(value[..8], n.to_be_bytes(), "batch {n} survived only in part");
            }
        }
    }
}
