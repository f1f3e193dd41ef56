//! Key-value stores as processors see them: the typed layer over the
//! task's write buffer and the bytes-level store.
//!
//! Reads see the task's uncommitted writes first (the write buffer), then
//! the local store. Writes go only to the buffer; the commit cycle sends
//! the latest value per key to the store's changelog and, once the commit
//! succeeded, applies the buffer to the local store in one batch.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::processor::ProcessError;
use crate::processor::TaskContext;
use crate::serde::{Encoded, Serde};

/// Where a store keeps its data locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// RocksDB under `state_dir`; restarts replay only the changelog tail.
    RocksDb,
    /// In memory; every start restores the whole changelog. For tests and
    /// small state.
    InMemory,
}

/// A key-value store declared in a topology: its name (which also names
/// its changelog topic, `<application_id>-<name>-changelog`), serdes and kind.
pub struct StoreSpec {
    pub(crate) name: String,
    pub(crate) kind: StoreKind,
    /// For a windowed changelog (`cleanup.policy=compact,delete`), how long
    /// in ms a record of it is needed at least: the window size plus grace.
    /// `None`: compacted only, kept forever.
    pub(crate) windowed_retention_ms: Option<i64>,
    pub(crate) serdes: Arc<dyn Any + Send + Sync>,
    pub(crate) type_names: (String, String),
}

impl StoreSpec {
    /// A RocksDB key-value store.
    pub fn key_value<K: 'static, V: 'static>(
        name: &str,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> StoreSpec {
        let serdes: StoreSerdes<K, V> = StoreSerdes { key: Arc::new(key_serde), value: Arc::new(value_serde) };
        StoreSpec {
            name: name.to_string(),
            kind: StoreKind::RocksDb,
            windowed_retention_ms: None,
            type_names: (std::any::type_name::<K>().to_string(), std::any::type_name::<V>().to_string()),
            serdes: Arc::new(serdes),
        }
    }

    /// The same store kept in memory instead of RocksDB.
    pub fn in_memory(mut self) -> StoreSpec {
        self.kind = StoreKind::InMemory;
        self
    }

    /// A changelog whose records are needed for `retention_ms` at most
    /// (the segmented window store drops its closed windows locally, with
    /// no tombstones): created `compact,delete` with `retention.ms` =
    /// `retention_ms` + `state.window_changelog_additional_retention_ms`.
    pub(crate) fn windowed_changelog(mut self, retention_ms: i64) -> StoreSpec {
        self.windowed_retention_ms = Some(retention_ms.max(0));
        self
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSpec")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("windowed_retention_ms", &self.windowed_retention_ms)
            .finish()
    }
}

pub(crate) struct StoreSerdes<K, V> {
    pub(crate) key: Arc<dyn Serde<K>>,
    pub(crate) value: Arc<dyn Serde<V>>,
}

/// A typed view of one store, borrowed from the processor's context.
pub struct KeyValueView<'a, K, V> {
    task: &'a mut TaskContext,
    store: usize,
    serdes: Arc<dyn Any + Send + Sync>,
    _types: PhantomData<fn(K, V)>,
}

impl<'a, K: 'static, V: 'static> KeyValueView<'a, K, V> {
    pub(crate) fn new(task: &'a mut TaskContext, name: &str, node: &str) -> Result<Self, ProcessError> {
        let Some(store) = task.stores.iter().position(|s| s.name == name) else {
            return Err(ProcessError::Topology {
                node: node.to_string(),
                reason: format!("store `{name}` is not part of this task"),
            });
        };
        let slot = &task.stores[store];
        if !slot.serdes.is::<StoreSerdes<K, V>>() {
            return Err(ProcessError::Topology {
                node: node.to_string(),
                reason: format!(
                    "store `{name}` holds {} -> {}, not {} -> {}",
                    slot.type_names.0,
                    slot.type_names.1,
                    std::any::type_name::<K>(),
                    std::any::type_name::<V>()
                ),
            });
        }
        let serdes = slot.serdes.clone();
        Ok(KeyValueView { task, store, serdes, _types: PhantomData })
    }

    fn serdes(&self) -> Result<&StoreSerdes<K, V>, ProcessError> {
        self.serdes.downcast_ref::<StoreSerdes<K, V>>().ok_or_else(|| ProcessError::Topology {
            node: self.task.stores[self.store].name.clone(),
            reason: "store serdes changed type".into(),
        })
    }

    fn key_bytes(&self, key: &K) -> Result<Vec<u8>, ProcessError> {
        let mut out = Vec::new();
        match self.serdes()?.key.serialize(key, &mut out) {
            Ok(Encoded::Bytes) => Ok(out),
            Ok(Encoded::Null) => Err(self.serde_error("key", "a store key cannot be null".into())),
            Err(e) => Err(ProcessError::Serde { what: self.what("key"), source: e }),
        }
    }

    fn what(&self, part: &str) -> String {
        format!("{part} of store `{}`", self.task.stores[self.store].name)
    }

    fn serde_error(&self, part: &str, reason: String) -> ProcessError {
        ProcessError::Serde {
            what: self.what(part),
            source: crate::serde::SerdeError::new(self.task.stores[self.store].name.clone(), reason),
        }
    }

    fn decode_value(&self, bytes: &[u8]) -> Result<V, ProcessError> {
        self.serdes()?
            .value
            .deserialize(Some(bytes))
            .map_err(|e| ProcessError::Serde { what: self.what("value"), source: e })
    }

    fn decode_key(&self, bytes: &[u8]) -> Result<K, ProcessError> {
        self.serdes()?
            .key
            .deserialize(Some(bytes))
            .map_err(|e| ProcessError::Serde { what: self.what("key"), source: e })
    }

    /// The value under `key`, seeing this task's uncommitted writes.
    pub fn get(&self, key: &K) -> Result<Option<V>, ProcessError> {
        let k = self.key_bytes(key)?;
        let slot = &self.task.stores[self.store];
        match self.task.buffer.get(&slot.name, &k) {
            Some(Some(bytes)) => self.decode_value(bytes).map(Some),
            Some(None) => Ok(None),
            None => match slot.store.get(&k)? {
                Some(bytes) => self.decode_value(&bytes).map(Some),
                None => Ok(None),
            },
        }
    }

    /// Stores `value` under `key`.
    pub fn put(&mut self, key: &K, value: &V) -> Result<(), ProcessError> {
        let k = self.key_bytes(key)?;
        let mut v = Vec::new();
        match self.serdes()?.value.serialize(value, &mut v) {
            Ok(Encoded::Bytes) => {}
            Ok(Encoded::Null) => return self.delete(key),
            Err(e) => return Err(ProcessError::Serde { what: self.what("value"), source: e }),
        }
        let name = self.task.stores[self.store].name.clone();
        self.task.buffer.put(&name, k, v);
        Ok(())
    }

    /// Removes `key`.
    pub fn delete(&mut self, key: &K) -> Result<(), ProcessError> {
        let k = self.key_bytes(key)?;
        let name = self.task.stores[self.store].name.clone();
        self.task.buffer.delete(&name, k);
        Ok(())
    }

    /// Entries with `from <= key < to` in the order of their serialized
    /// keys (`None` = unbounded).
    pub fn range(&self, from: Option<&K>, to: Option<&K>) -> Result<Vec<(K, V)>, ProcessError> {
        let from = from.map(|k| self.key_bytes(k)).transpose()?;
        let to = to.map(|k| self.key_bytes(k)).transpose()?;
        let slot = &self.task.stores[self.store];
        let raw = self.task.buffer.scan(slot.store.as_ref(), from.as_deref(), to.as_deref())?;
        self.decode_all(raw)
    }

    /// Entries whose serialized key starts with the serialized `prefix`.
    pub fn prefix_scan(&self, prefix: &K) -> Result<Vec<(K, V)>, ProcessError> {
        let p = self.key_bytes(prefix)?;
        let slot = &self.task.stores[self.store];
        let raw = self.task.buffer.prefix_scan(slot.store.as_ref(), &p)?;
        self.decode_all(raw)
    }

    fn decode_all(&self, raw: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Vec<(K, V)>, ProcessError> {
        raw.iter().map(|(k, v)| Ok((self.decode_key(k)?, self.decode_value(v)?))).collect()
    }
}
