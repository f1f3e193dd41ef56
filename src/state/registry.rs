//! The stores interactive queries may read: each running task's stores,
//! registered when the task starts processing and removed when it closes,
//! readable from any thread (the HTTP server's, a user's).
//!
//! A processing thread owns its tasks and their stores; a query must not
//! touch the task (its nodes hold `Rc`s, its write buffer is not shared).
//! It reads the store underneath instead: RocksDB is safe for concurrent
//! reads, and the store's [`StoreReader`] shares the open database with
//! the task (an in-memory store shares its map, behind a lock). What a reader sees is what commit step 4 applied: the state
//! as of the task's last commit, never an uncommitted or aborted write
//! (the write buffer holds those, above the store).
//!
//! A read holds the registry's read lock for its duration, and a task's
//! close takes the write lock to remove its readers: once removed, no
//! reader of the task's databases is left, so the task's close really
//! closes them (RocksDB refuses to open a database this process still has
//! open, and the task may be created again here at the next rebalance).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::StateResult;

/// Read access to one store of one task, from any thread.
pub(crate) trait StoreReader: Send + Sync {
    /// The value under `key`, if any.
    fn get(&self, key: &[u8]) -> StateResult<Option<Vec<u8>>>;

    /// Up to `limit` entries with `from <= key < to` (`None` = unbounded),
    /// in key order.
    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>, limit: usize) -> StateResult<Vec<(Vec<u8>, Vec<u8>)>>;

    /// The greatest key below `to`, if any.
    fn last_below(&self, to: &[u8]) -> StateResult<Option<Vec<u8>>>;
}

/// A reader and the registration that put it there.
type Readers = HashMap<String, BTreeMap<i32, (u64, Box<dyn StoreReader>)>>;

/// Numbers the registrations, so one removes only its own readers.
static REGISTRATIONS: AtomicU64 = AtomicU64::new(0);

/// The queryable stores of one instance: store name -> partition (task) ->
/// reader.
#[derive(Default)]
pub(crate) struct QueryableStores {
    stores: RwLock<Readers>,
}

impl QueryableStores {
    /// Makes the store `name` of the task of `partition` readable, for
    /// registration `id`; a reader registered before for it is replaced.
    fn register(&self, id: u64, name: &str, partition: i32, reader: Box<dyn StoreReader>) {
        let mut stores = self.stores.write().unwrap_or_else(|e| e.into_inner());
        stores.entry(name.to_string()).or_default().insert(partition, (id, reader));
    }

    /// Removes the readers that registration `id` made of the stores
    /// `names` of the task of `partition` (not those of a later task of the
    /// partition: another thread of this instance may have created it while
    /// this one was dropping its tasks after they migrated); returns once
    /// no read of them is in flight.
    fn deregister(&self, id: u64, names: &[String], partition: i32) {
        let mut stores = self.stores.write().unwrap_or_else(|e| e.into_inner());
        for name in names {
            if let Some(partitions) = stores.get_mut(name) {
                if partitions.get(&partition).is_some_and(|(owner, _)| *owner == id) {
                    partitions.remove(&partition);
                }
                if partitions.is_empty() {
                    stores.remove(name);
                }
            }
        }
    }

    /// Runs `read` on the reader of store `name`, partition `partition`;
    /// `None` when no running task of this instance has it.
    pub(crate) fn read<T>(&self, name: &str, partition: i32, read: impl FnOnce(&dyn StoreReader) -> T) -> Option<T> {
        let stores = self.stores.read().unwrap_or_else(|e| e.into_inner());
        stores.get(name).and_then(|p| p.get(&partition)).map(|(_, reader)| read(reader.as_ref()))
    }

    /// Runs `read` on every reader of store `name`, in partition order.
    pub(crate) fn read_each<E>(
        &self,
        name: &str,
        mut read: impl FnMut(i32, &dyn StoreReader) -> Result<(), E>,
    ) -> Result<(), E> {
        let stores = self.stores.read().unwrap_or_else(|e| e.into_inner());
        for (partition, (_, reader)) in stores.get(name).into_iter().flatten() {
            read(*partition, reader.as_ref())?;
        }
        Ok(())
    }

    /// The partitions of store `name` readable here.
    pub(crate) fn partitions(&self, name: &str) -> Vec<i32> {
        let stores = self.stores.read().unwrap_or_else(|e| e.into_inner());
        stores.get(name).map(|p| p.keys().copied().collect()).unwrap_or_default()
    }
}

/// The registration of one task's stores; dropping it removes them, so a
/// task removes its readers however it ends (closed, aborted, dropped on
/// an error).
pub(crate) struct Registration {
    id: u64,
    stores: Arc<QueryableStores>,
    names: Vec<String>,
    partition: i32,
}

impl Registration {
    /// Registers `readers` (store name, reader) of the task of `partition`.
    pub(crate) fn new(
        stores: &Arc<QueryableStores>,
        partition: i32,
        readers: Vec<(String, Box<dyn StoreReader>)>,
    ) -> Registration {
        let id = REGISTRATIONS.fetch_add(1, Ordering::Relaxed);
        let mut names = Vec::with_capacity(readers.len());
        for (name, reader) in readers {
            stores.register(id, &name, partition, reader);
            names.push(name);
        }
        Registration { id, stores: stores.clone(), names, partition }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.stores.deregister(self.id, &self.names, self.partition);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::state::tests::put;
    use crate::state::{InMemoryStore, KeyValueStore, RocksDbStore, StateResources};

    #[test]
    fn a_registered_rocksdb_store_is_read_from_another_thread_and_gone_after_the_registration() {
        let dir = tempfile::tempdir().unwrap();
        let resources = StateResources::new(1 << 20, 1 << 20);
        let mut store = RocksDbStore::open(dir.path(), "counts", &resources).unwrap();
        store.apply(&[put("a", "1"), put("b", "2"), put("c", "3")], Some(3)).unwrap();
        let registry = Arc::new(QueryableStores::default());
        let registration =
            Registration::new(&registry, 4, vec![("counts".to_string(), store.reader().expect("rocksdb is readable"))]);
        let reader = registry.clone();
        let read = std::thread::spawn(move || {
            let got = reader.read("counts", 4, |r| r.get(b"b").unwrap());
            let range = reader.read("counts", 4, |r| r.range(Some(b"a"), None, 2).unwrap());
            let last = reader.read("counts", 4, |r| (r.last_below(b"c").unwrap(), r.last_below(b"a").unwrap()));
            (got, range, last)
        });
        let (got, range, last) = read.join().unwrap();
        assert_eq!(last, Some((Some(b"b".to_vec()), None)), "the greatest key strictly below");
        assert_eq!(got, Some(Some(b"2".to_vec())));
        assert_eq!(range.unwrap().len(), 2, "the limit holds");
        assert_eq!(registry.partitions("counts"), [4]);
        assert!(registry.read("counts", 5, |_| ()).is_none());
        drop(registration);
        assert!(registry.read("counts", 4, |_| ()).is_none());
        drop(store);
        // Nothing holds the database any more: it opens again.
        RocksDbStore::open(dir.path(), "counts", &resources).unwrap();
    }

    #[test]
    fn dropping_a_registration_leaves_a_later_one_of_the_same_partition() {
        let registry = Arc::new(QueryableStores::default());
        let reader = || InMemoryStore::new("counts").reader().expect("in-memory stores are readable");
        let old = Registration::new(&registry, 2, vec![("counts".to_string(), reader())]);
        // Another thread created the task again before this one dropped its
        // copy (its tasks migrated).
        let new = Registration::new(&registry, 2, vec![("counts".to_string(), reader())]);
        drop(old);
        assert_eq!(registry.partitions("counts"), [2], "the later task's store stays readable");
        drop(new);
        assert!(registry.partitions("counts").is_empty());
    }
}
