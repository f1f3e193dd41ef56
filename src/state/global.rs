//! Global stores: the local copy of a global table's whole topic, one per
//! instance, shared by every task of every processing thread (Kafka
//! Streams' `GlobalStateManager`). The global thread writes; the tasks
//! only read, so the store needs no write buffer and no changelog: the
//! topic itself is the changelog.
//!
//! A RocksDB store (`<state_dir>/<application_id>/global/<name>`) is
//! rebuilt from the topic at every start: rivulet keeps no checkpoint of
//! global stores yet.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::{wipe, StateError, StateResult};

/// The bytes of a global table, readable from any thread.
pub(crate) trait GlobalStore: Send + Sync {
    fn get(&self, key: &[u8]) -> StateResult<Option<Vec<u8>>>;
    /// Writes the latest value of `key` (`None` deletes it).
    fn put(&self, key: &[u8], value: Option<&[u8]>) -> StateResult<()>;
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
pub(crate) struct MemoryGlobalStore(RwLock<HashMap<Vec<u8>, Vec<u8>>>);

impl GlobalStore for MemoryGlobalStore {
    fn get(&self, key: &[u8]) -> StateResult<Option<Vec<u8>>> {
        Ok(self.0.read().unwrap_or_else(|e| e.into_inner()).get(key).cloned())
    }

    fn put(&self, key: &[u8], value: Option<&[u8]>) -> StateResult<()> {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        match value {
            Some(v) => map.insert(key.to_vec(), v.to_vec()),
            None => map.remove(key),
        };
        Ok(())
    }
}

/// A global store in RocksDB, written without a write-ahead log: after a
/// crash it is rebuilt from the topic anyway.
pub(crate) struct RocksGlobalStore {
    name: String,
    path: PathBuf,
    db: rocksdb::DB,
}

impl RocksGlobalStore {
    /// Opens the store `name` under `dir`, empty: what was there is wiped.
    pub(crate) fn open_empty(dir: &Path, name: &str) -> StateResult<Self> {
        wipe(dir)?;
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        let db = rocksdb::DB::open(&options, dir).map_err(|e| StateError::Open {
            store: name.to_string(),
            path: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(RocksGlobalStore { name: name.to_string(), path: dir.to_path_buf(), db })
    }

    fn failed(&self, operation: &'static str, e: rocksdb::Error) -> StateError {
        StateError::Store { store: self.name.clone(), path: self.path.clone(), operation, reason: e.to_string() }
    }
}

impl GlobalStore for RocksGlobalStore {
    fn get(&self, key: &[u8]) -> StateResult<Option<Vec<u8>>> {
        self.db.get(key).map_err(|e| self.failed("get", e))
    }

    fn put(&self, key: &[u8], value: Option<&[u8]>) -> StateResult<()> {
        let mut write = rocksdb::WriteOptions::default();
        write.disable_wal(true);
        match value {
            Some(v) => self.db.put_opt(key, v, &write).map_err(|e| self.failed("put", e)),
            None => self.db.delete_opt(key, &write).map_err(|e| self.failed("delete", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_global_store_starts_empty_and_keeps_the_latest_value_per_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g");
        let stores: Vec<Box<dyn GlobalStore>> =
            vec![Box::new(MemoryGlobalStore::default()), Box::new(RocksGlobalStore::open_empty(&path, "g").unwrap())];
        for store in stores {
            store.put(b"k", Some(b"1")).unwrap();
            store.put(b"k", Some(b"2")).unwrap();
            store.put(b"j", Some(b"3")).unwrap();
            store.put(b"j", None).unwrap();
            assert_eq!(store.get(b"k").unwrap(), Some(b"2".to_vec()));
            assert_eq!(store.get(b"j").unwrap(), None);
        }
        let reopened = RocksGlobalStore::open_empty(&path, "g").unwrap();
        assert_eq!(reopened.get(b"k").unwrap(), None, "rebuilt from the topic at every start");
    }
}
