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
use crate::serde::text::TextCodec;
use crate::serde::{Encoded, Serde};

/// Where a store keeps its data locally: RocksDB unless
/// [`StoreSpec::in_memory`] says otherwise. `Topology::describe()` shows it.
///
/// ```
/// use rivulet::prelude::*;
/// # use rivulet::processor::ProcessError;
/// # struct Dedupe;
/// # impl Processor<String, i64, String, i64> for Dedupe {
/// #     fn process(&mut self, r: Record<String, i64>, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<(), ProcessError> {
/// #         ctx.forward(r)
/// #     }
/// # }
/// let mut b = Topology::builder();
/// b.table("prices", "prices", Serdes::string(), Serdes::i64());
/// b.add_store(StoreSpec::key_value("seen", Serdes::string(), Serdes::i64()).in_memory());
/// b.stream("clicks", Serdes::string(), Serdes::i64()).process(&["seen"], || Dedupe);
/// let described = b.build().unwrap().describe();
/// assert!(described.contains("prices (rocksdb, "), "{described}");
/// assert!(described.contains("seen (in-memory, "), "{described}");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// RocksDB under `state_dir`; restarts replay only the changelog tail.
    RocksDb,
    /// In memory; every start restores the whole changelog. For tests and
    /// small state.
    InMemory,
}

/// A global table: the topic every instance reads whole into the
/// store `name` (see `TopologyBuilder::global_table`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GlobalSpec {
    pub(crate) name: String,
    pub(crate) topic: String,
}

/// A key-value store declared in a topology: its name (which also names
/// its changelog topic, `<application_id>-<name>-changelog`), serdes and kind.
/// Declare it with [`TopologyBuilder::add_store`](crate::topology::TopologyBuilder::add_store)
/// and name it in the stores of
/// [`KStream::process`](crate::topology::KStream::process); the processor
/// then reads and writes it through [`ProcessorContext::store`](crate::processor::ProcessorContext::store).
///
/// ```
/// use rivulet::prelude::*;
/// # use rivulet::processor::ProcessError;
/// struct Remember;
/// impl Processor<String, String, String, String> for Remember {
///     fn process(&mut self, r: Record<String, String>, ctx: &mut ProcessorContext<'_, String, String>) -> Result<(), ProcessError> {
///         ctx.store::<String, String>("last-seen")?.put(&r.key, &r.value)
///     }
/// }
/// let mut b = Topology::builder();
/// b.add_store(StoreSpec::key_value("last-seen", Serdes::string(), Serdes::string()));
/// b.stream("in", Serdes::string(), Serdes::string()).process(&["last-seen"], || Remember);
/// assert!(b.build().is_ok());
/// ```
pub struct StoreSpec {
    pub(crate) name: String,
    pub(crate) kind: StoreKind,
    /// For a windowed changelog (`cleanup.policy=compact,delete`), how long
    /// in ms a record of it is needed at least: the window size plus grace.
    /// `None`: compacted only, kept forever.
    pub(crate) windowed_retention_ms: Option<i64>,
    pub(crate) serdes: Arc<dyn Any + Send + Sync>,
    pub(crate) type_names: (String, String),
    /// The serdes with their types erased, for queries over HTTP.
    pub(crate) text: TextCodec,
    /// How interactive queries read the store.
    pub(crate) query: QueryLayout,
}

/// How interactive queries (`crate::query`) read a store.
#[derive(Clone)]
pub(crate) enum QueryLayout {
    /// Keys and values through the store's serdes.
    KeyValue,
    /// The segmented store of tumbling or hopping windows of `size_ms`
    /// starting every `advance_ms`: `serdes` (a `StoreSerdes<K, O>`) give
    /// the grouping key and a window's result from its stored aggregate.
    TimeWindows {
        size_ms: i64,
        advance_ms: i64,
        serdes: Arc<dyn Any + Send + Sync>,
        type_names: (String, String),
        text: TextCodec,
    },
    /// rivulet's own byte layout, which queries do not decode: why.
    Internal(&'static str),
}

impl QueryLayout {
    /// Tumbling or hopping windows of `size_ms` every `advance_ms`, keyed
    /// by `key`, whose stored aggregates `result` decodes into results.
    pub(crate) fn time_windows<K: 'static, O: 'static>(
        (size_ms, advance_ms): (i64, i64),
        key: Arc<dyn Serde<K>>,
        result: Arc<dyn Serde<O>>,
    ) -> QueryLayout {
        let text = TextCodec::new(key.clone(), result.clone());
        let type_names = (std::any::type_name::<K>().to_string(), std::any::type_name::<O>().to_string());
        let serdes: Arc<dyn Any + Send + Sync> = Arc::new(StoreSerdes { key, value: result });
        QueryLayout::TimeWindows { size_ms, advance_ms, serdes, type_names, text }
    }
}

impl StoreSpec {
    /// A RocksDB key-value store named `name`, whose keys and values the
    /// serdes write.
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// let store = StoreSpec::key_value("counts", Serdes::string(), Serdes::i64());
    /// assert_eq!(store.name(), "counts");
    /// ```
    pub fn key_value<K: 'static, V: 'static>(
        name: &str,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> StoreSpec {
        let serdes: StoreSerdes<K, V> = StoreSerdes { key: Arc::new(key_serde), value: Arc::new(value_serde) };
        StoreSpec {
            text: TextCodec::new(serdes.key.clone(), serdes.value.clone()),
            query: QueryLayout::KeyValue,
            name: name.to_string(),
            kind: StoreKind::RocksDb,
            windowed_retention_ms: None,
            type_names: (std::any::type_name::<K>().to_string(), std::any::type_name::<V>().to_string()),
            serdes: Arc::new(serdes),
        }
    }

    /// The same store kept in memory instead of RocksDB: every start
    /// restores it from its whole changelog.
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// let store = StoreSpec::key_value("small", Serdes::string(), Serdes::i64()).in_memory();
    /// assert!(format!("{store:?}").contains("kind: InMemory"));
    /// ```
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

    /// The store as interactive queries read it.
    pub(crate) fn queried_as(mut self, query: QueryLayout) -> StoreSpec {
        self.query = query;
        self
    }

    /// The store's name, as processors ask for it.
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// let store = StoreSpec::key_value("sessions", Serdes::string(), Serdes::u64());
    /// assert_eq!(store.name(), "sessions");
    /// ```
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

/// A typed view of one store, borrowed from the processor's context with
/// [`ProcessorContext::store`](crate::processor::ProcessorContext::store).
/// Reads see this task's uncommitted writes; writes reach the store (and
/// its changelog) at the next commit.
///
/// ```
/// # use rivulet::prelude::*;
/// # use rivulet::processor::ProcessError;
/// # use rivulet::testing::TopologyTestDriver;
/// /// Keeps each key's largest value.
/// struct Max;
/// impl Processor<String, i64, String, i64> for Max {
///     fn process(&mut self, r: Record<String, i64>, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<(), ProcessError> {
///         let mut max = ctx.store::<String, i64>("max")?;
///         if max.get(&r.key)?.map_or(true, |m| r.value > m) {
///             max.put(&r.key, &r.value)?;
///         }
///         Ok(())
///     }
/// }
/// # fn main() -> rivulet::Result<()> {
/// # let mut b = Topology::builder();
/// # b.add_store(StoreSpec::key_value("max", Serdes::string(), Serdes::i64()));
/// # b.stream("in", Serdes::string(), Serdes::i64()).process(&["max"], || Max);
/// # let mut driver = TopologyTestDriver::new(b.build()?)?;
/// # let input = driver.input_topic("in", Serdes::string(), Serdes::i64());
/// for v in [3, 9, 4] {
///     driver.pipe(&input, "a".to_string(), v, 0)?;
/// }
/// assert_eq!(driver.store_get::<String, i64>("max", &"a".to_string())?, Some(9));
/// # Ok(()) }
/// ```
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
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::processor::ProcessError;
    /// # use rivulet::testing::TopologyTestDriver;
    /// /// Forwards only the first record of each key.
    /// struct FirstOnly;
    /// impl Processor<String, String, String, String> for FirstOnly {
    ///     fn process(&mut self, r: Record<String, String>, ctx: &mut ProcessorContext<'_, String, String>) -> Result<(), ProcessError> {
    ///         let mut seen = ctx.store::<String, i64>("seen")?;
    ///         if seen.get(&r.key)?.is_some() {
    ///             return Ok(());
    ///         }
    ///         seen.put(&r.key, &r.timestamp)?;
    ///         ctx.forward(r)
    ///     }
    /// }
    /// # fn main() -> rivulet::Result<()> {
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::key_value("seen", Serdes::string(), Serdes::i64()));
    /// # b.stream("in", Serdes::string(), Serdes::string()).process(&["seen"], || FirstOnly).to("out", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?.manual_commits();
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let output = driver.output_topic("out", Serdes::string(), Serdes::string());
    /// // No commit in between: the second read sees the first, uncommitted write.
    /// driver.pipe(&input, "a".into(), "1".into(), 0)?;
    /// driver.pipe(&input, "a".into(), "2".into(), 0)?;
    /// assert_eq!(driver.read_key_values(&output)?, [("a".to_string(), "1".to_string())]);
    /// # Ok(()) }
    /// ```
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

    /// Stores `value` under `key`. A value its serde writes as a Kafka null
    /// (`None` under [`Serdes::optional`](crate::serde::Serdes::optional))
    /// deletes the key.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::processor::ProcessError;
    /// # use rivulet::testing::TopologyTestDriver;
    /// /// Remembers each user's latest page.
    /// struct LastPage;
    /// impl Processor<String, String, String, String> for LastPage {
    ///     fn process(&mut self, r: Record<String, String>, ctx: &mut ProcessorContext<'_, String, String>) -> Result<(), ProcessError> {
    ///         ctx.store::<String, String>("last-page")?.put(&r.key, &r.value)
    ///     }
    /// }
    /// # fn main() -> rivulet::Result<()> {
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::key_value("last-page", Serdes::string(), Serdes::string()));
    /// # b.stream("in", Serdes::string(), Serdes::string()).process(&["last-page"], || LastPage);
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// driver.pipe(&input, "ann".into(), "/home".into(), 0)?;
    /// driver.pipe(&input, "ann".into(), "/cart".into(), 0)?;
    /// assert_eq!(driver.store_get("last-page", &"ann".to_string())?, Some("/cart".to_string()));
    /// # Ok(()) }
    /// ```
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

    /// Removes `key` (its changelog gets a tombstone at the next commit).
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::processor::ProcessError;
    /// # use rivulet::testing::TopologyTestDriver;
    /// /// Tracks open sessions: "start" adds the key, "end" removes it.
    /// struct Open;
    /// impl Processor<String, String, String, String> for Open {
    ///     fn process(&mut self, r: Record<String, String>, ctx: &mut ProcessorContext<'_, String, String>) -> Result<(), ProcessError> {
    ///         let mut open = ctx.store::<String, i64>("open")?;
    ///         if r.value == "end" { open.delete(&r.key) } else { open.put(&r.key, &r.timestamp) }
    ///     }
    /// }
    /// # fn main() -> rivulet::Result<()> {
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::key_value("open", Serdes::string(), Serdes::i64()));
    /// # b.stream("in", Serdes::string(), Serdes::string()).process(&["open"], || Open);
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// for (k, v) in [("a", "start"), ("b", "start"), ("a", "end")] {
    ///     driver.pipe(&input, k.to_string(), v.to_string(), 7)?;
    /// }
    /// assert_eq!(driver.store_entries::<String, i64>("open")?, [("b".to_string(), 7)]);
    /// # Ok(()) }
    /// ```
    pub fn delete(&mut self, key: &K) -> Result<(), ProcessError> {
        let k = self.key_bytes(key)?;
        let name = self.task.stores[self.store].name.clone();
        self.task.buffer.delete(&name, k);
        Ok(())
    }

    /// Entries with `from <= key < to` in the order of their serialized
    /// keys (`None` = unbounded). The order is that of the bytes: for
    /// [`Serdes::string`](crate::serde::Serdes::string) alphabetical, for
    /// the big-endian integers numeric when not negative.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::processor::ProcessError;
    /// # use rivulet::testing::TopologyTestDriver;
    /// /// Stores each reading by its sensor number; a value of -1 asks for
    /// /// the sum of sensors 10 to 19.
    /// struct Sensors;
    /// impl Processor<u32, i64, u32, i64> for Sensors {
    ///     fn process(&mut self, r: Record<u32, i64>, ctx: &mut ProcessorContext<'_, u32, i64>) -> Result<(), ProcessError> {
    ///         let mut store = ctx.store::<u32, i64>("readings")?;
    ///         if r.value >= 0 {
    ///             return store.put(&r.key, &r.value);
    ///         }
    ///         let sum = store.range(Some(&10), Some(&20))?.iter().map(|(_, v)| v).sum();
    ///         ctx.forward(r.with_value(sum))
    ///     }
    /// }
    /// # fn main() -> rivulet::Result<()> {
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::key_value("readings", Serdes::u32(), Serdes::i64()));
    /// # b.stream("in", Serdes::u32(), Serdes::i64()).process(&["readings"], || Sensors).to("out", Serdes::u32(), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::u32(), Serdes::i64());
    /// # let output = driver.output_topic("out", Serdes::u32(), Serdes::i64());
    /// for (sensor, value) in [(9, 100), (10, 1), (15, 2), (20, 100), (0, -1)] {
    ///     driver.pipe(&input, sensor, value, 0)?;
    /// }
    /// assert_eq!(driver.read_key_values(&output)?, [(0, 3)]);
    /// # Ok(()) }
    /// ```
    pub fn range(&self, from: Option<&K>, to: Option<&K>) -> Result<Vec<(K, V)>, ProcessError> {
        let from = from.map(|k| self.key_bytes(k)).transpose()?;
        let to = to.map(|k| self.key_bytes(k)).transpose()?;
        let slot = &self.task.stores[self.store];
        let raw = self.task.buffer.scan(slot.store.as_ref(), from.as_deref(), to.as_deref())?;
        self.decode_all(raw)
    }

    /// Entries whose serialized key starts with the serialized `prefix`,
    /// in key order: with string keys such as `user/item`, all of one user.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::processor::ProcessError;
    /// # use rivulet::testing::TopologyTestDriver;
    /// /// Keeps a cart per user under `user/item` keys; "checkout" emits the cart.
    /// struct Carts;
    /// impl Processor<String, String, String, String> for Carts {
    ///     fn process(&mut self, r: Record<String, String>, ctx: &mut ProcessorContext<'_, String, String>) -> Result<(), ProcessError> {
    ///         let mut carts = ctx.store::<String, i64>("carts")?;
    ///         if r.value != "checkout" {
    ///             return carts.put(&format!("{}/{}", r.key, r.value), &1);
    ///         }
    ///         let items: Vec<String> = carts.prefix_scan(&format!("{}/", r.key))?.into_iter().map(|(k, _)| k).collect();
    ///         ctx.forward(r.with_value(items.join(",")))
    ///     }
    /// }
    /// # fn main() -> rivulet::Result<()> {
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::key_value("carts", Serdes::string(), Serdes::i64()));
    /// # b.stream("in", Serdes::string(), Serdes::string()).process(&["carts"], || Carts).to("out", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let output = driver.output_topic("out", Serdes::string(), Serdes::string());
    /// for (user, item) in [("ann", "tea"), ("bob", "jam"), ("ann", "cup"), ("ann", "checkout")] {
    ///     driver.pipe(&input, user.to_string(), item.to_string(), 0)?;
    /// }
    /// assert_eq!(driver.read_key_values(&output)?, [("ann".to_string(), "ann/cup,ann/tea".to_string())]);
    /// # Ok(()) }
    /// ```
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
