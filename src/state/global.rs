//! Global stores: the local copy of a global table's whole topic, one per
//! instance, shared by every task of every processing thread (Kafka
//! Streams' `GlobalStateManager`). The global thread writes; the tasks
//! only read, so the store needs no write buffer and no changelog: the
//! topic itself is the changelog.
//!
//! A RocksDB store (`<state_dir>/<application_id>/<instance_id>/global/<name>`) keeps
//! the offset after each record it applied, written with the record in one
//! batch, so a restart reads on from there instead of from the beginning.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::{wipe, StateError, StateResult};

/// The bytes of a global table, readable from any thread.
pub(crate) trait GlobalStore: Send + Sync {
    fn get(&self, key: &[u8]) -> StateResult<Option<Vec<u8>>>;
    /// Writes the record at `at` (topic, partition, offset after it): the
    /// latest value of `key` (`None` deletes it; no key writes nothing but
    /// the offset), and the offset to read on from.
    fn apply(&self, key: Option<&[u8]>, value: Option<&[u8]>, at: (&str, i32, i64)) -> StateResult<()>;
    /// The offset to read `topic`'s `partition` on from, if the store has
    /// read any of it.
    fn offset(&self, topic: &str, partition: i32) -> StateResult<Option<i64>>;
    /// Removes every record and offset: the store is rebuilt from its topic.
    fn clear(&self) -> StateResult<()>;
}

/// The global stores of an instance, by name.
#[derive(Clone, Default)]
pub(crate) struct GlobalStores(Arc<BTreeMap<String, Arc<dyn GlobalStore>>>);

impl GlobalStores {
    pub(crate) fn new(stores: BTreeMap<String, Arc<dyn GlobalStore>>) -> Self {
        GlobalStores(Arc::new(stores))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Arc<dyn GlobalStore>> {
        self.0.get(name)
    }

    /// Stores kept in memory, for the test driver.
    pub(crate) fn in_memory<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let stores = names
            .into_iter()
            .map(|n| (n.to_string(), Arc::new(MemoryGlobalStore::default()) as Arc<dyn GlobalStore>))
            .collect();
        GlobalStores::new(stores)
    }
}

#[derive(Default)]
pub(crate) struct MemoryGlobalStore {
    data: RwLock<HashMap<Vec<u8>, Vec<u8>>>,
    offsets: RwLock<HashMap<(String, i32), i64>>,
}

impl GlobalStore for MemoryGlobalStore {
    fn get(&self, key: &[u8]) -> StateResult<Option<Vec<u8>>> {
        Ok(self.data.read().unwrap_or_else(|e| e.into_inner()).get(key).cloned())
    }

    fn apply(&self, key: Option<&[u8]>, value: Option<&[u8]>, at: (&str, i32, i64)) -> StateResult<()> {
        let mut map = self.data.write().unwrap_or_else(|e| e.into_inner());
        match (key, value) {
            (Some(k), Some(v)) => map.insert(k.to_vec(), v.to_vec()),
            (Some(k), None) => map.remove(k),
            (None, _) => None,
        };
        let (topic, partition, next) = at;
        self.offsets.write().unwrap_or_else(|e| e.into_inner()).insert((topic.to_string(), partition), next);
        Ok(())
    }

    fn offset(&self, topic: &str, partition: i32) -> StateResult<Option<i64>> {
        Ok(self.offsets.read().unwrap_or_else(|e| e.into_inner()).get(&(topic.to_string(), partition)).copied())
    }

    fn clear(&self) -> StateResult<()> {
        self.data.write().unwrap_or_else(|e| e.into_inner()).clear();
        self.offsets.write().unwrap_or_else(|e| e.into_inner()).clear();
        Ok(())
    }
}

/// A global store in RocksDB that remembers, with each record, the offset
/// after it (in the column family `offsets`, keyed by topic and
/// partition), in one write batch: after a restart or a crash the store
/// and its offsets agree, and the global thread reads on from there (Kafka
/// Streams keeps a checkpoint file of offsets for the same purpose).
pub(crate) struct RocksGlobalStore {
    name: String,
    path: PathBuf,
    db: rocksdb::DB,
}

const OFFSETS: &str = "offsets";

impl RocksGlobalStore {
    /// Opens the store `name` under `dir`, as it was left; a directory that
    /// does not hold a readable store is wiped (the store is rebuilt from
    /// its topic).
    pub(crate) fn open(dir: &Path, name: &str) -> StateResult<Self> {
        match Self::open_dir(dir, name) {
            Ok(store) => Ok(store),
            Err(StateError::Corrupt { reason, .. }) => {
                tracing::warn!(store = name, path = %dir.display(), reason = %reason, "wiping an unreadable global store; it is rebuilt from its topic");
                Self::open_empty(dir, name)
            }
            Err(e) => Err(e),
        }
    }

    /// Opens the store `name` under `dir`, empty: what was there is wiped.
    pub(crate) fn open_empty(dir: &Path, name: &str) -> StateResult<Self> {
        wipe(dir)?;
        Self::open_dir(dir, name)
    }

    fn open_dir(dir: &Path, name: &str) -> StateResult<Self> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::Io { path: dir.to_path_buf(), source })?;
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let db = rocksdb::DB::open_cf(&options, dir, [rocksdb::DEFAULT_COLUMN_FAMILY_NAME, OFFSETS]).map_err(|e| {
            let reason = e.to_string();
            match e.kind() {
                rocksdb::ErrorKind::Corruption | rocksdb::ErrorKind::InvalidArgument => {
                    StateError::Corrupt { store: name.to_string(), path: dir.to_path_buf(), reason }
                }
                _ => StateError::Open { store: name.to_string(), path: dir.to_path_buf(), reason },
            }
        })?;
        Ok(RocksGlobalStore { name: name.to_string(), path: dir.to_path_buf(), db })
    }

    fn failed(&self, operation: &'static str, e: rocksdb::Error) -> StateError {
        StateError::Store { store: self.name.clone(), path: self.path.clone(), operation, reason: e.to_string() }
    }

    fn offsets_cf(&self) -> StateResult<&rocksdb::ColumnFamily> {
        self.db.cf_handle(OFFSETS).ok_or_else(|| StateError::Corrupt {
            store: self.name.clone(),
            path: self.path.clone(),
            reason: "the column family of offsets is missing".into(),
        })
    }
}

fn offset_key(topic: &str, partition: i32) -> Vec<u8> {
    let mut key = topic.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(&partition.to_be_bytes());
    key
}

impl GlobalStore for RocksGlobalStore {
    fn get(&self, key: &[u8]) -> StateResult<Option<Vec<u8>>> {
        self.db.get(key).map_err(|e| self.failed("get", e))
    }

    fn apply(&self, key: Option<&[u8]>, value: Option<&[u8]>, at: (&str, i32, i64)) -> StateResult<()> {
        let mut batch = rocksdb::WriteBatch::default();
        match (key, value) {
            (Some(k), Some(v)) => batch.put(k, v),
            (Some(k), None) => batch.delete(k),
            (None, _) => {}
        }
        let (topic, partition, next) = at;
        batch.put_cf(self.offsets_cf()?, offset_key(topic, partition), next.to_be_bytes());
        self.db.write(batch).map_err(|e| self.failed("write", e))
    }

    fn offset(&self, topic: &str, partition: i32) -> StateResult<Option<i64>> {
        let raw =
            self.db.get_cf(self.offsets_cf()?, offset_key(topic, partition)).map_err(|e| self.failed("get", e))?;
        match raw {
            None => Ok(None),
            Some(b) => match <[u8; 8]>::try_from(b.as_slice()) {
                Ok(b) => Ok(Some(i64::from_be_bytes(b))),
                Err(_) => Err(StateError::Corrupt {
                    store: self.name.clone(),
                    path: self.path.clone(),
                    reason: format!("the offset of {topic}[{partition}] is {} bytes, not 8", b.len()),
                }),
            },
        }
    }

    fn clear(&self) -> StateResult<()> {
        let offsets = self.offsets_cf()?;
        for cf in [None, Some(offsets)] {
            let iter = match cf {
                None => self.db.iterator(rocksdb::IteratorMode::Start),
                Some(cf) => self.db.iterator_cf(cf, rocksdb::IteratorMode::Start),
            };
            let mut batch = rocksdb::WriteBatch::default();
            for entry in iter {
                let (key, _) = entry.map_err(|e| self.failed("clear", e))?;
                match cf {
                    None => batch.delete(key),
                    Some(cf) => batch.delete_cf(cf, key),
                }
                if batch.len() >= 10_000 {
                    self.db.write(std::mem::take(&mut batch)).map_err(|e| self.failed("clear", e))?;
                }
            }
            self.db.write(batch).map_err(|e| self.failed("clear", e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_global_store_keeps_the_latest_value_per_key_and_the_offset_to_read_on_from() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g");
        let stores: Vec<Box<dyn GlobalStore>> =
            vec![Box::new(MemoryGlobalStore::default()), Box::new(RocksGlobalStore::open_empty(&path, "g").unwrap())];
        for store in stores {
            assert_eq!(store.offset("t", 0).unwrap(), None);
            store.apply(Some(b"k"), Some(b"1"), ("t", 0, 1)).unwrap();
            store.apply(Some(b"k"), Some(b"2"), ("t", 0, 2)).unwrap();
            store.apply(Some(b"j"), Some(b"3"), ("t", 1, 1)).unwrap();
            store.apply(Some(b"j"), None, ("t", 1, 2)).unwrap();
            store.apply(None, Some(b"x"), ("t", 1, 3)).unwrap();
            assert_eq!(store.get(b"k").unwrap(), Some(b"2".to_vec()));
            assert_eq!(store.get(b"j").unwrap(), None);
            assert_eq!((store.offset("t", 0).unwrap(), store.offset("t", 1).unwrap()), (Some(2), Some(3)));
        }
        let reopened = RocksGlobalStore::open(&path, "g").unwrap();
        assert_eq!(reopened.get(b"k").unwrap(), Some(b"2".to_vec()), "kept across a restart");
        assert_eq!(reopened.offset("t", 1).unwrap(), Some(3));
        reopened.clear().unwrap();
        assert_eq!((reopened.get(b"k").unwrap(), reopened.offset("t", 1).unwrap()), (None, None));
        drop(reopened);
        let wiped = RocksGlobalStore::open_empty(&path, "g").unwrap();
        assert_eq!((wiped.get(b"k").unwrap(), wiped.offset("t", 0).unwrap()), (None, None));
    }

    #[test]
    fn an_unreadable_global_store_is_wiped_and_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g");
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join("CURRENT"), b"garbage\n").unwrap();
        let store = RocksGlobalStore::open(&path, "g").unwrap();
        assert_eq!(store.offset("t", 0).unwrap(), None);
    }
}
