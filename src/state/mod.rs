//! Local state: bytes-level key-value stores and the per-task write buffer.
//!
//! # The model
//!
//! Each stateful processor names its stores. A task owns one store per name,
//! on disk under `<state.dir>/<application.id>/<task>/<store>` (see
//! `store_dir`), and every store is backed by a compacted changelog topic.
//!
//! Processors never write to a store directly. Their writes go to the task's
//! `WriteBuffer`, which also serves their reads (a buffered delete hides the
//! store's value; `scan_merged` merges buffer and store for range scans).
//! At commit, after the changelog records, outputs and consumed offsets are
//! committed, the runtime drains the buffer and hands each store its entries
//! with `KeyValueStore::apply`: the entries and the changelog offset they
//! bring the store up to are written as ONE atomic batch. On abort the buffer
//! is dropped and nothing reaches the store. A buffer can also drop a key
//! range locally, without changelog records (closed windows, which the
//! changelog's time retention deletes on the broker):
//! `KeyValueStore::apply_dropping` deletes such ranges in the same batch.
//!
//! So a local store is always a consistent snapshot at a known changelog
//! offset (`KeyValueStore::changelog_offset`): after a crash a task replays
//! only the changelog tail past that offset instead of restoring everything.
//!
//! RocksDB's write-ahead log is off: the changelog is the durable log, and
//! losing the last unflushed batches only means replaying a longer tail (see
//! `RocksDbStore` for why the recorded offset always matches the data that
//! survived). A store that cannot be read at all is `StateError::Corrupt`:
//! `wipe` it and restore it from the changelog.
//!
//! Layers, innermost first: the bytes level (`KeyValueStore`:
//! `InMemoryStore`, `RocksDbStore`); a read cache of committed values
//! (`CachedStore`); the write buffer, whose drained entries are both the
//! changelog records and the batch applied (so change logging is not a
//! layer of its own but steps 1 and 4 of the commit, in
//! `runtime::commit`); and outermost the typed (serde) view processors use
//! (`processor::store::KeyValueView`). There is no metrics layer: store
//! sizes are read for `rivulet_store_size_bytes` by the task manager.

use std::io;
use std::path::{Path, PathBuf};

mod cache;
mod global;
mod lock;
mod memory;
mod registry;
mod resources;
mod rocks;
mod write_buffer;

pub(crate) use self::cache::CachedStore;
pub(crate) use self::global::{GlobalStore, GlobalStores, RocksGlobalStore};
pub(crate) use self::lock::StateDirLock;
pub(crate) use self::memory::InMemoryStore;
pub(crate) use self::registry::{QueryableStores, Registration, StoreReader};
pub(crate) use self::resources::StateResources;
pub(crate) use self::rocks::RocksDbStore;
pub(crate) use self::write_buffer::WriteBuffer;

/// Something went wrong in a local state store. Each variant says what to
/// do; an application meets it as [`Error::State`](crate::Error::State) or
/// inside a [`ProcessError`](crate::processor::ProcessError).
///
/// ```
/// use rivulet::state::StateError;
/// let err = StateError::Corrupt {
///     store: "counts".into(),
///     path: "/var/lib/rivulet/orders/0_1/counts".into(),
///     reason: "unreadable offset file".into(),
/// };
/// assert!(err.to_string().ends_with("is corrupt: unreadable offset file; wipe it and restore it from the changelog"));
/// assert!(matches!(rivulet::Error::from(err), rivulet::Error::State(_)));
/// ```
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The store could not be opened, but its contents are not known to be
    /// damaged: the directory may be locked by another instance or another
    /// task still open in this process, unwritable, or the disk may be full.
    /// Fix the cause and retry; do not wipe.
    #[error(
        "cannot open state store `{store}` at {}: {reason}; check that no other instance or task uses this \
         state directory and that it is writable",
        path.display()
    )]
    Open {
        /// The store's name.
        store: String,
        /// The store's directory.
        path: PathBuf,
        /// What RocksDB or the file system reported.
        reason: String,
    },
    /// The store is damaged, or its directory holds something that is not a
    /// rivulet store. Its contents cannot be trusted: `wipe` the directory and
    /// restore the store from its changelog.
    #[error(
        "state store `{store}` at {} is corrupt: {reason}; wipe it and restore it from the changelog",
        path.display()
    )]
    Corrupt {
        /// The store's name.
        store: String,
        /// The store's directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A read, write or flush on an open store failed (usually the disk). The
    /// store's last committed state is intact on disk: close the task and
    /// reopen the store; if this repeats, check the disk.
    #[error("state store `{store}` at {}: {operation} failed: {reason}", path.display())]
    Store {
        /// The store's name.
        store: String,
        /// The store's directory.
        path: PathBuf,
        /// What rivulet was doing ("get", "apply", "flush", ...).
        operation: &'static str,
        /// What RocksDB reported.
        reason: String,
    },
    /// Another process holds this instance's state directory: two processes
    /// sharing one would corrupt each other's stores.
    #[error(
        "the state directory {} is in use by another process{holder}; two instances cannot share a \
         state directory: give each its own `state_dir` (RIVULET__STATE_DIR) or its own `instance_id` \
         (RIVULET__INSTANCE_ID), or stop the other process",
        path.display()
    )]
    InUse {
        /// The instance's state directory.
        path: PathBuf,
        /// ` (pid N)` when the lock file names the holder, else empty.
        holder: String,
    },
    /// A file system operation on the state directory failed. Check the
    /// path's permissions and the disk.
    #[error("state directory {}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

impl StateError {
    /// Whether the store must be wiped and restored from its changelog
    /// (rather than the operation retried or the instance stopped).
    pub(crate) fn is_corrupt(&self) -> bool {
        matches!(self, StateError::Corrupt { .. })
    }
}

/// `Result` with [`StateError`].
pub(crate) type StateResult<T> = Result<T, StateError>;

/// A key range `[from, to)`.
pub(crate) type KeyRange = (Vec<u8>, Vec<u8>);

/// One entry of a batch: a key and its new value, `None` deleting it.
pub(crate) type Change = (Vec<u8>, Option<Vec<u8>>);

/// A bytes-level key-value store, in key order (bytewise).
///
/// The outer layers (the read cache, the typed view) are built on this
/// trait; implementations only store bytes and the changelog offset.
/// `Send` so that a store can be opened on one thread and used on another;
/// a task itself never moves between processing threads (its nodes hold
/// `Rc`s), it is closed and created anew where it is assigned.
pub(crate) trait KeyValueStore: Send {
    /// The store's name, as the user gave it in the topology.
    fn name(&self) -> &str;

    /// The value stored under `key`, if any.
    fn get(&self, key: &[u8]) -> StateResult<Option<Vec<u8>>>;

    /// Entries with `from <= key < to` (`None` = unbounded), in key order.
    /// Empty when `from >= to`.
    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> StateResult<Vec<(Vec<u8>, Vec<u8>)>>;

    /// Entries whose key starts with `prefix`, in key order.
    #[cfg(test)]
    fn prefix_scan(&self, prefix: &[u8]) -> StateResult<Vec<(Vec<u8>, Vec<u8>)>> {
        self.range(Some(prefix), prefix_end(prefix).as_deref())
    }

    /// Applies puts (`Some`) and deletes (`None`) atomically, together with the
    /// changelog offset (the offset of the next changelog record to read on
    /// restore) they bring the store up to. Either all of it is visible
    /// afterwards, or none of it. `None` leaves the recorded offset as it was
    /// (a store without a changelog). Later entries for the same key win.
    fn apply(&mut self, batch: &[Change], offset: Option<i64>) -> StateResult<()> {
        self.apply_dropping(&[], batch, offset)
    }

    /// As [`apply`](Self::apply), deleting the keys in the `dropped` ranges
    /// first, in the same atomic write: the ranges a task dropped locally
    /// (`WriteBuffer::drop_locally`), whose deletion has no changelog
    /// records. Entries of `batch` inside a range survive (they were written
    /// after the drop). RocksDB deletes each range with one range tombstone.
    fn apply_dropping(&mut self, dropped: &[KeyRange], batch: &[Change], offset: Option<i64>) -> StateResult<()>;

    /// The changelog offset recorded by the last [`apply`](Self::apply) that
    /// carried one (`None` for a fresh store): restore reads from here.
    fn changelog_offset(&self) -> StateResult<Option<i64>>;

    /// The greatest key in the store, if any.
    fn last_key(&self) -> StateResult<Option<Vec<u8>>>;

    /// Deletes every entry and records `offset`, in one atomic write (one
    /// range tombstone in RocksDB): the store is empty, as if new, and
    /// restores from `offset`.
    fn clear(&mut self, offset: i64) -> StateResult<()> {
        let dropped = match self.last_key()? {
            Some(mut last) => {
                // The key right after `last`: the range ends past it.
                last.push(0);
                vec![(Vec::new(), last)]
            }
            None => Vec::new(),
        };
        self.apply_dropping(&dropped, &[], Some(offset))
    }

    /// The number of entries. Exact for in-memory stores; an estimate for
    /// RocksDB, which cannot count without a full scan (deletes and
    /// overwrites not yet compacted away skew it). For metrics, not logic.
    #[cfg(test)]
    fn approximate_len(&self) -> StateResult<u64>;

    /// An estimate of the bytes the store holds, for the
    /// `rivulet_store_size_bytes` metric, not for logic. The default knows
    /// nothing and says 0.
    fn approximate_size_bytes(&self) -> StateResult<u64> {
        Ok(0)
    }

    /// Makes everything applied so far durable locally. With the WAL off,
    /// RocksDB keeps recent batches in memtables only; a crash loses them
    /// (together with their offset) and the restore replays them from the
    /// changelog, so flushing bounds how much a `kill -9` replays.
    fn flush(&self) -> StateResult<()> {
        Ok(())
    }

    /// A reader of the store for interactive queries, usable from other
    /// threads while the task writes (`registry`); `None` when the store
    /// cannot be read that way (in memory).
    fn reader(&self) -> Option<Box<dyn StoreReader>> {
        None
    }
}

/// The directory of one store: `<instance_dir>/<task>/<store>`, where
/// `instance_dir` is `Config::instance_state_dir`.
pub(crate) fn store_dir(instance_dir: &Path, task: &str, store: &str) -> PathBuf {
    instance_dir.join(task).join(store)
}

/// Deletes a store's directory (or a stray file at its path) and everything
/// in it, so that the store is recreated empty and restored from its
/// changelog. Succeeds if nothing is there. The store must be closed first.
pub(crate) fn wipe(path: &Path) -> StateResult<()> {
    let io_error = |source| StateError::Io { path: path.to_path_buf(), source };
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(io_error(err)),
    };
    tracing::warn!(path = %path.display(), "wiping state store; it will be restored from its changelog");
    let removed = if metadata.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
    match removed {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(io_error(err)),
        _ => Ok(()),
    }
}

/// The smallest key greater than every key starting with `prefix`, i.e. the
/// exclusive upper bound of a prefix scan; `None` when there is none (an
/// empty prefix, or one made only of `0xff` bytes).
/// `t` as 8 bytes that sort like the signed number (big-endian with the
/// sign bit flipped): the time part of store keys scanned in time order
/// (window stores, timers, TTL indexes).
pub(crate) fn sortable_time(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

/// The time [`sortable_time`] wrote into the first 8 bytes of `b` (missing
/// bytes read as zero; callers check lengths first).
pub(crate) fn time_from_sortable(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    let n = b.len().min(8);
    a[..n].copy_from_slice(&b[..n]);
    (u64::from_be_bytes(a) ^ (1 << 63)) as i64
}

pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|&byte| byte != 0xff)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(end)
}

/// Whether `key` lies in `[from, to)`.
pub(crate) fn in_range(key: &[u8], from: Option<&[u8]>, to: Option<&[u8]>) -> bool {
    let after_from = match from {
        Some(from) => key >= from,
        None => true,
    };
    let before_to = match to {
        Some(to) => key < to,
        None => true,
    };
    after_from && before_to
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// A put of `key` for a batch (the store tests).
    pub(super) fn put(key: &str, value: &str) -> Change {
        (key.as_bytes().to_vec(), Some(value.as_bytes().to_vec()))
    }

    /// A delete of `key` for a batch.
    pub(super) fn delete(key: &str) -> Change {
        (key.as_bytes().to_vec(), None)
    }

    /// The keys of a range's entries, as strings.
    pub(super) fn keys(entries: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<String> {
        entries.into_iter().map(|(key, _)| String::from_utf8(key).unwrap()).collect()
    }

    #[test]
    fn prefix_end_is_the_next_prefix_after_all_keys_with_the_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn store_dir_nests_task_and_store_in_the_instance_directory() {
        let dir = store_dir(Path::new("/var/lib/rivulet/app/pod-0"), "0_1", "counts");
        assert_eq!(dir, Path::new("/var/lib/rivulet/app/pod-0/0_1/counts"));
    }

    #[test]
    fn wipe_removes_a_directory_tree_a_stray_file_and_accepts_a_missing_path() {
        let root = tempfile::tempdir().unwrap();
        let store = root.path().join("store");
        std::fs::create_dir_all(store.join("sub")).unwrap();
        std::fs::write(store.join("sub/file"), b"x").unwrap();
        wipe(&store).unwrap();
        assert!(!store.exists());

        std::fs::write(&store, b"not a directory").unwrap();
        wipe(&store).unwrap();
        assert!(!store.exists());

        wipe(&store).unwrap();
    }

    #[test]
    fn only_corrupt_errors_ask_for_a_wipe() {
        let corrupt = StateError::Corrupt { store: "s".into(), path: "/p".into(), reason: "bad".into() };
        let open = StateError::Open { store: "s".into(), path: "/p".into(), reason: "locked".into() };
        assert!(corrupt.is_corrupt());
        assert!(!open.is_corrupt());
        assert!(corrupt.to_string().contains("restore it from the changelog"));
    }
}
