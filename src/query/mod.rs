//! Interactive queries: reading a running instance's stores from outside
//! the topology, in Rust ([`RunningApp::store`](crate::RunningApp::store))
//! and over HTTP (`/stores/{store}/keys/{key}`,
//! `/stores/{store}/owner/{key}`), as Kafka Streams' `KafkaStreams#store`
//! and `queryMetadataForKey`.
//!
//! - **What a read sees**: the store as of its task's last commit (commit
//!   step 4 applied it), read straight from RocksDB. Writes made since the
//!   last commit sit in the task's write buffer and are not seen, nor is
//!   anything an aborted transaction wrote; so a value lags the stream by
//!   up to `commit_interval_ms`. (Kafka Streams reads through its record
//!   cache, which holds writes not yet flushed; under exactly-once those
//!   are uncommitted. rivulet's read cache holds only committed values, so
//!   reading past it changes nothing.)
//! - **Which stores**: those of running tasks (restored and processing)
//!   of this instance, in RocksDB or in memory: the tables of `count`,
//!   `aggregate`, `reduce`, `table`, `materialize`, `transform_values` and
//!   stores declared with `StoreSpec::key_value`. The stores of tumbling and
//!   hopping windowed aggregations are read as a key's windows over a time
//!   range ([`ReadOnlyWindowStore`]); session, sliding and count window
//!   stores and keyed-state stores hold rivulet's own byte layouts and are
//!   not decoded.
//! - **Where a key lives**: in the task of the partition Kafka's default
//!   partitioner gives its serialized key (murmur2, as rivulet's sinks and
//!   the Java producer write), among the partitions of the store's
//!   sub-topology. This holds when the input was written by such a
//!   producer with the same key bytes, or went through a repartition topic
//!   (`group_by`); as in Kafka Streams, a custom partitioner upstream
//!   breaks it.
//! - **Who owns it**: the instances directory ([`directory`]): each
//!   instance publishes its assignment and advertised address to
//!   `<application_id>-instances`, and reads everyone's.

pub(crate) mod answer;
pub(crate) mod directory;
mod window;

pub use crate::error::query::QueryError;
pub use window::ReadOnlyWindowStore;

use std::any::Any;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::processor::store::{QueryLayout, StoreSerdes};
use crate::serde::text::TextCodec;
use crate::serde::Encoded;
use crate::state::QueryableStores;
use crate::topology::Topology;
use directory::{Directory, InstanceRecord};

/// Which partition and instance hold a key, from
/// [`ReadOnlyStore::owner`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyOwner {
    /// The key's partition (= its task's) among the store's partitions.
    pub partition: i32,
    /// The owning instance's id and advertised `host:port`, when the
    /// instances directory names one (none during a rebalance).
    pub instance: Option<(String, String)>,
    /// Whether the key's task runs on this instance now (its store is
    /// readable here).
    pub local: bool,
}

/// Kafka's default partitioner for a key's bytes: murmur2, positive, modulo
/// the partition count (the Java producer's `Utils.toPositive(murmur2(key))
/// % numPartitions`, librdkafka's `murmur2_random` for a key).
///
/// ```
/// // murmur2("21") is -973932308 (Kafka's UtilsTest): partition 0 of 6.
/// assert_eq!(rivulet::query::partition_for_key(b"21", 6), 0);
/// ```
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    ((murmur2(key) & 0x7fff_ffff) % partitions.max(1) as u32) as i32
}

/// Kafka's `Utils.murmur2`, as unsigned bits.
fn murmur2(key: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ key.len() as u32;
    let mut chunks = key.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]).wrapping_mul(M);
        k ^= k >> 24;
        h = h.wrapping_mul(M) ^ k.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, b) in tail.iter().enumerate() {
            h ^= u32::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// What queries know of one store.
struct StoreInfo {
    /// The partitions (tasks) of its sub-topology.
    partitions: i32,
    /// A source topic of its sub-topology: the directory names owners by
    /// source partition.
    topic: String,
    serdes: Arc<dyn Any + Send + Sync>,
    type_names: (String, String),
    text: TextCodec,
    /// The window size and advance of a store of tumbling or hopping windows.
    window_ms: Option<(i64, i64)>,
    /// Why queries cannot read the store, if they cannot.
    not_queryable: Option<&'static str>,
}

impl StoreInfo {
    fn new(spec: &crate::processor::store::StoreSpec, partitions: i32, topic: String) -> StoreInfo {
        let mut info = StoreInfo {
            partitions,
            topic,
            serdes: spec.serdes.clone(),
            type_names: spec.type_names.clone(),
            text: spec.text.clone(),
            window_ms: None,
            not_queryable: None,
        };
        match &spec.query {
            QueryLayout::KeyValue => {}
            QueryLayout::TimeWindows { size_ms, advance_ms, serdes, type_names, text } => {
                info.window_ms = Some((*size_ms, *advance_ms));
                info.serdes = serdes.clone();
                info.type_names = type_names.clone();
                info.text = text.clone();
            }
            QueryLayout::Internal(why) => info.not_queryable = Some(why),
        }
        info
    }
}

/// A window of a key and its result's bytes, from a window store.
pub(crate) struct WindowBytes {
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) value: Vec<u8>,
}

/// Where a key is, for one query.
pub(crate) struct Location {
    pub(crate) partition: i32,
    pub(crate) owner: Option<InstanceRecord>,
    pub(crate) local: bool,
}

/// The queryable stores of a running instance and the directory.
pub(crate) struct Queries {
    pub(crate) instance_id: String,
    pub(crate) address: String,
    stores: BTreeMap<String, StoreInfo>,
    pub(crate) readers: Arc<QueryableStores>,
    pub(crate) directory: Arc<Directory>,
}

impl Queries {
    /// `partitions` is the partition count of each sub-topology and
    /// `topic_to_subtopology` the resolved source topics (from the topic
    /// checks at start).
    pub(crate) fn new(
        topology: &Topology,
        partitions: &[i32],
        topic_to_subtopology: &std::collections::HashMap<String, usize>,
        instance_id: String,
        address: String,
        readers: Arc<QueryableStores>,
    ) -> Queries {
        let mut stores = BTreeMap::new();
        for sub in &topology.subtopologies {
            let mut topics: Vec<&String> =
                topic_to_subtopology.iter().filter(|(_, &s)| s == sub.id).map(|(t, _)| t).collect();
            topics.sort();
            let Some(topic) = topics.first() else { continue };
            for name in &sub.stores {
                let Some(spec) = topology.stores.iter().find(|s| &s.name == name) else { continue };
                let count = partitions.get(sub.id).copied().unwrap_or(1);
                stores.insert(name.clone(), StoreInfo::new(spec, count, topic.to_string()));
            }
        }
        Queries { instance_id, address, stores, readers, directory: Arc::default() }
    }

    /// Whether the topology has stores to query (else no directory runs).
    pub(crate) fn has_stores(&self) -> bool {
        !self.stores.is_empty()
    }

    fn info(&self, store: &str) -> Result<&StoreInfo, QueryError> {
        let info = self.stores.get(store).ok_or_else(|| QueryError::UnknownStore {
            store: store.to_string(),
            known: self.stores.keys().cloned().collect::<Vec<_>>().join(", "),
        })?;
        let not = |reason: &str| QueryError::NotQueryable { store: store.to_string(), reason: reason.to_string() };
        if let Some(why) = info.not_queryable {
            return Err(not(why));
        }
        Ok(info)
    }

    /// The info of a key-value store (`window: false`) or of a window store.
    fn info_of_kind(&self, store: &str, window: bool) -> Result<&StoreInfo, QueryError> {
        let info = self.info(store)?;
        match (info.window_ms.is_some(), window) {
            (true, false) => Err(QueryError::NotQueryable {
                store: store.to_string(),
                reason: "it is a window store: fetch a key's windows (RunningApp::window_store, or from= and to= \
                         over HTTP)"
                    .into(),
            }),
            (false, true) => Err(QueryError::NotQueryable {
                store: store.to_string(),
                reason: "it is a key-value store, not a window store (RunningApp::store)".into(),
            }),
            _ => Ok(info),
        }
    }

    /// Whether `store` is a window store.
    pub(crate) fn is_window_store(&self, store: &str) -> bool {
        self.stores.get(store).is_some_and(|i| i.window_ms.is_some())
    }

    /// The windows of the key with bytes `key` starting in `[from, to]`, in
    /// start order, if its task runs here, else [`QueryError::NotHere`].
    pub(crate) fn fetch_bytes(
        &self,
        store: &str,
        key: &[u8],
        from: i64,
        to: i64,
    ) -> Result<(i32, Vec<WindowBytes>), QueryError> {
        let info = self.info_of_kind(store, true)?;
        let (size, advance) = info.window_ms.unwrap_or_default();
        let partition = partition_for_key(key, info.partitions);
        let read =
            self.readers.read(store, partition, |r| crate::topology::window_query::fetch(r, key, advance, from, to));
        let Some(entries) = read else {
            return Err(QueryError::NotHere {
                store: store.to_string(),
                partition,
                owner: self.directory.owner(&info.topic, partition).map(|o| o.address),
            });
        };
        let windows = entries?
            .into_iter()
            .map(|(start, value)| WindowBytes { start, end: start.saturating_add(size), value })
            .collect();
        Ok((partition, windows))
    }

    /// Where the key with these bytes lives.
    pub(crate) fn locate(&self, store: &str, key: &[u8]) -> Result<Location, QueryError> {
        let info = self.info(store)?;
        let partition = partition_for_key(key, info.partitions);
        let local = self.readers.read(store, partition, |_| ()).is_some();
        Ok(Location { partition, owner: self.directory.owner(&info.topic, partition), local })
    }

    /// The stored bytes of `key` if its task runs here (`Ok(None)`: no
    /// value), else [`QueryError::NotHere`].
    pub(crate) fn get_bytes(&self, store: &str, key: &[u8]) -> Result<(i32, Option<Vec<u8>>), QueryError> {
        let info = self.info_of_kind(store, false)?;
        let partition = partition_for_key(key, info.partitions);
        match self.readers.read(store, partition, |r| r.get(key)) {
            Some(found) => Ok((partition, found?)),
            None => Err(QueryError::NotHere {
                store: store.to_string(),
                partition,
                owner: self.directory.owner(&info.topic, partition).map(|o| o.address),
            }),
        }
    }

    /// The text codec of `store` (HTTP).
    pub(crate) fn text(&self, store: &str) -> Result<&TextCodec, QueryError> {
        Ok(&self.info(store)?.text)
    }

    /// A typed handle on `store`.
    pub(crate) fn store<K: 'static, V: 'static>(
        self: &Arc<Self>,
        store: &str,
        window: bool,
    ) -> Result<ReadOnlyStore<K, V>, QueryError> {
        let info = self.info_of_kind(store, window)?;
        if !info.serdes.is::<StoreSerdes<K, V>>() {
            return Err(QueryError::WrongTypes {
                store: store.to_string(),
                holds: format!("{} -> {}", info.type_names.0, info.type_names.1),
                asked: format!("{} -> {}", std::any::type_name::<K>(), std::any::type_name::<V>()),
            });
        }
        Ok(ReadOnlyStore {
            queries: self.clone(),
            name: store.to_string(),
            serdes: info.serdes.clone(),
            _types: PhantomData,
        })
    }
}

/// A read-only, typed view of one store of a running instance, from
/// [`RunningApp::store`](crate::RunningApp::store): reads see the state
/// as of each task's last commit (see the [module docs](self)).
///
/// ```no_run
/// # fn main() -> rivulet::Result<()> {
/// # let app: rivulet::RunningApp = unimplemented!();
/// // A topology with `.group_by_key().count("word-counts")` over string keys.
/// let counts = app.store::<String, i64>("word-counts")?;
/// match counts.get(&"kafka".to_string()) {
///     Ok(count) => println!("kafka: {count:?}"),
///     Err(rivulet::query::QueryError::NotHere { owner, .. }) => println!("ask {owner:?}"),
///     Err(e) => return Err(e.into()),
/// }
/// # Ok(()) }
/// ```
pub struct ReadOnlyStore<K, V> {
    queries: Arc<Queries>,
    name: String,
    serdes: Arc<dyn Any + Send + Sync>,
    _types: PhantomData<fn(K, V)>,
}

impl<K: 'static, V: 'static> ReadOnlyStore<K, V> {
    fn serdes(&self) -> Result<&StoreSerdes<K, V>, QueryError> {
        self.serdes.downcast_ref::<StoreSerdes<K, V>>().ok_or_else(|| self.serde_error("store serdes changed type"))
    }

    fn serde_error(&self, reason: impl std::fmt::Display) -> QueryError {
        QueryError::Serde { store: self.name.clone(), reason: reason.to_string() }
    }

    fn key_bytes(&self, key: &K) -> Result<Vec<u8>, QueryError> {
        let mut out = Vec::new();
        match self.serdes()?.key.serialize(key, &mut out) {
            Ok(Encoded::Bytes) => Ok(out),
            Ok(Encoded::Null) => Err(self.serde_error("a store key cannot be null")),
            Err(e) => Err(self.serde_error(format!("key: {e}"))),
        }
    }

    fn value(&self, bytes: &[u8]) -> Result<V, QueryError> {
        self.serdes()?.value.deserialize(Some(bytes)).map_err(|e| self.serde_error(format!("value: {e}")))
    }

    /// The value of `key` as of its task's last commit, when the task runs
    /// on this instance; [`QueryError::NotHere`] (with the owner's address
    /// when known) when it does not.
    ///
    /// ```no_run
    /// # fn main() -> rivulet::Result<()> {
    /// # let app: rivulet::RunningApp = unimplemented!();
    /// let count: Option<i64> = app.store::<String, i64>("word-counts")?.get(&"kafka".to_string())?;
    /// # Ok(()) }
    /// ```
    pub fn get(&self, key: &K) -> Result<Option<V>, QueryError> {
        let k = self.key_bytes(key)?;
        match self.queries.get_bytes(&self.name, &k)? {
            (_, Some(bytes)) => self.value(&bytes).map(Some),
            (_, None) => Ok(None),
        }
    }

    /// The entries with `from <= key < to` (`None`: unbounded) of the
    /// store's partitions running on this instance only, in the order of
    /// the serialized keys (as Kafka Streams' `range` on a local store).
    /// The entries are collected before they are returned, and a task of
    /// this instance that closes meanwhile (a rebalance) waits for the
    /// read: keep ranges to what fits in memory comfortably.
    ///
    /// ```no_run
    /// # fn main() -> rivulet::Result<()> {
    /// # let app: rivulet::RunningApp = unimplemented!();
    /// let counts = app.store::<String, i64>("word-counts")?;
    /// let local_a_to_c = counts.range(Some(&"a".to_string()), Some(&"c".to_string()))?;
    /// # Ok(()) }
    /// ```
    pub fn range(&self, from: Option<&K>, to: Option<&K>) -> Result<Vec<(K, V)>, QueryError> {
        let from = from.map(|k| self.key_bytes(k)).transpose()?;
        let to = to.map(|k| self.key_bytes(k)).transpose()?;
        let mut raw = Vec::new();
        self.queries.readers.read_each(&self.name, |_, reader| {
            raw.extend(reader.range(from.as_deref(), to.as_deref(), usize::MAX)?);
            Ok::<_, QueryError>(())
        })?;
        raw.sort_by(|a, b| a.0.cmp(&b.0));
        raw.iter()
            .map(|(k, v)| {
                let key = self.serdes()?.key.deserialize(Some(k)).map_err(|e| self.serde_error(format!("key: {e}")))?;
                Ok((key, self.value(v)?))
            })
            .collect()
    }

    /// Which partition and instance own `key` (Kafka Streams'
    /// `queryMetadataForKey`).
    ///
    /// ```no_run
    /// # fn main() -> rivulet::Result<()> {
    /// # let app: rivulet::RunningApp = unimplemented!();
    /// let owner = app.store::<String, i64>("word-counts")?.owner(&"kafka".to_string())?;
    /// if let (false, Some((_, address))) = (owner.local, &owner.instance) {
    ///     println!("GET http://{address}/stores/word-counts/keys/kafka");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn owner(&self, key: &K) -> Result<KeyOwner, QueryError> {
        let k = self.key_bytes(key)?;
        let at = self.queries.locate(&self.name, &k)?;
        Ok(KeyOwner {
            partition: at.partition,
            instance: at.owner.map(|o| (o.instance_id, o.address)),
            local: at.local,
        })
    }

    /// The store's partitions whose tasks run on this instance now.
    ///
    /// ```no_run
    /// # fn main() -> rivulet::Result<()> {
    /// # let app: rivulet::RunningApp = unimplemented!();
    /// println!("{:?}", app.store::<String, i64>("word-counts")?.local_partitions());
    /// # Ok(()) }
    /// ```
    pub fn local_partitions(&self) -> Vec<i32> {
        self.queries.readers.partitions(&self.name)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn murmur2_is_kafkas() {
        // Kafka's UtilsTest.testMurmur2.
        for (key, hash) in [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            ("abc", 479_470_107),
        ] {
            assert_eq!(murmur2(key.as_bytes()) as i32, hash, "{key}");
        }
        assert_eq!(partition_for_key(b"21", 7), ((-973_932_308i32 & 0x7fff_ffff) % 7));
    }
}
