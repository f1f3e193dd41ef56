//! `KTable::transform_values`: a user transformer with state stores
//! (Kafka Streams' `KTable#transformValues` with a
//! `ValueTransformerWithKey`, materialized).

use super::*;
use crate::processor::KeyValueView;
use crate::record::SourceOffset;

/// Turns a table's value into another, with access to state stores:
/// Kafka Streams' `ValueTransformerWithKey`. Made once per task by the
/// factory given to [`KTable::transform_values`].
///
/// ```
/// use rivulet::prelude::*;
/// use rivulet::topology::{ProcessError, ValueTransformerContext, ValueTransformerWithKey};
///
/// /// Numbers each version of a key's value: 1, 2, 3, ...
/// struct Versions;
///
/// impl ValueTransformerWithKey<String, String, String> for Versions {
///     fn transform(
///         &mut self,
///         key: &String,
///         value: Option<&String>,
///         ctx: &mut ValueTransformerContext<'_, '_, String, String>,
///     ) -> Result<Option<String>, ProcessError> {
///         let mut versions = ctx.store::<String, i64>("versions")?;
///         let n = versions.get(key)?.unwrap_or(0) + 1;
///         versions.put(key, &n)?;
///         Ok(value.map(|v| format!("{v} (version {n})")))
///     }
/// }
///
/// let mut b = Topology::builder();
/// b.add_store(StoreSpec::key_value("versions", Serdes::string(), Serdes::i64()));
/// b.table("docs", "docs", Serdes::string(), Serdes::string())
///     .transform_values("versioned-docs", &["versions"], || Versions, Serdes::string())
///     .to_stream()
///     .to("versioned-docs", Serdes::string(), Serdes::string());
/// assert!(b.build().is_ok());
/// ```
pub trait ValueTransformerWithKey<K, V, V2>: 'static {
    /// Called when the task starts and again after an aborted
    /// transaction (its state is then as of the last commit).
    fn init(&mut self, ctx: &mut ValueTransformerContext<'_, '_, K, V2>) -> Result<(), ProcessError> {
        let _ = ctx;
        Ok(())
    }

    /// The new value of `key` for its table value `value` (`None`: the key
    /// was deleted); `None` deletes the key from the result.
    fn transform(
        &mut self,
        key: &K,
        value: Option<&V>,
        ctx: &mut ValueTransformerContext<'_, '_, K, V2>,
    ) -> Result<Option<V2>, ProcessError>;
}

/// What a [`ValueTransformerWithKey`] may ask of its task: its declared
/// stores, time and the record's coordinates. It cannot forward records:
/// its result is the value it returns.
///
/// ```
/// # use rivulet::prelude::*;
/// use rivulet::topology::{ProcessError, ValueTransformerContext, ValueTransformerWithKey};
/// /// Keeps the first value each key ever had, in the store `first`.
/// struct First;
/// impl ValueTransformerWithKey<String, String, String> for First {
///     fn transform(&mut self, key: &String, v: Option<&String>, ctx: &mut ValueTransformerContext<'_, '_, String, String>)
///         -> Result<Option<String>, ProcessError> {
///         let mut first = ctx.store::<String, String>("first")?;
///         if let (None, Some(v)) = (first.get(key)?, v) {
///             first.put(key, v)?;
///         }
///         first.get(key)
///     }
/// }
/// # let mut b = Topology::builder();
/// # b.add_store(StoreSpec::key_value("first", Serdes::string(), Serdes::string()));
/// # b.table("t", "t", Serdes::string(), Serdes::string()).transform_values("firsts", &["first"], || First, Serdes::string());
/// # assert!(b.build().is_ok());
/// ```
pub struct ValueTransformerContext<'c, 'a, K, V2> {
    ctx: &'c mut ProcessorContext<'a, K, Change<V2>>,
}

impl<K: Clone + 'static, V2: Clone + 'static> ValueTransformerContext<'_, '_, K, V2> {
    /// A typed view of a store the transformer declared in
    /// [`KTable::transform_values`].
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::topology::{ProcessError, ValueTransformerContext, ValueTransformerWithKey};
    /// struct Seen;
    /// impl ValueTransformerWithKey<String, String, i64> for Seen {
    ///     fn transform(&mut self, key: &String, _: Option<&String>, ctx: &mut ValueTransformerContext<'_, '_, String, i64>)
    ///         -> Result<Option<i64>, ProcessError> {
    ///         let mut seen = ctx.store::<String, i64>("seen")?;
    ///         let n = seen.get(key)?.unwrap_or(0) + 1;
    ///         seen.put(key, &n)?;
    ///         Ok(Some(n))
    ///     }
    /// }
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::key_value("seen", Serdes::string(), Serdes::i64()));
    /// # b.table("t", "t", Serdes::string(), Serdes::string()).transform_values("seen-counts", &["seen"], || Seen, Serdes::i64());
    /// # assert!(b.build().is_ok());
    /// ```
    pub fn store<SK: 'static, SV: 'static>(&mut self, name: &str) -> Result<KeyValueView<'_, SK, SV>, ProcessError> {
        self.ctx.store(name)
    }

    /// The task's stream time (ms), as [`ProcessorContext::stream_time`].
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::topology::{ProcessError, ValueTransformerContext, ValueTransformerWithKey};
    /// struct Stamp;
    /// impl ValueTransformerWithKey<String, String, String> for Stamp {
    ///     fn transform(&mut self, _: &String, v: Option<&String>, ctx: &mut ValueTransformerContext<'_, '_, String, String>)
    ///         -> Result<Option<String>, ProcessError> {
    ///         Ok(v.map(|v| format!("{v} @ {}", ctx.stream_time())))
    ///     }
    /// }
    /// # let mut b = Topology::builder();
    /// # b.table("t", "t", Serdes::string(), Serdes::string()).transform_values("stamped", &[], || Stamp, Serdes::string());
    /// # assert!(b.build().is_ok());
    /// ```
    pub fn stream_time(&self) -> i64 {
        self.ctx.stream_time()
    }

    /// The wall clock (ms), as [`ProcessorContext::current_system_time_ms`]:
    /// the test driver's clock under the driver.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::topology::{ProcessError, ValueTransformerContext, ValueTransformerWithKey};
    /// struct SeenAt;
    /// impl ValueTransformerWithKey<String, String, i64> for SeenAt {
    ///     fn transform(&mut self, _: &String, v: Option<&String>, ctx: &mut ValueTransformerContext<'_, '_, String, i64>)
    ///         -> Result<Option<i64>, ProcessError> {
    ///         Ok(v.map(|_| ctx.current_system_time_ms()))
    ///     }
    /// }
    /// # let mut b = Topology::builder();
    /// # b.table("t", "t", Serdes::string(), Serdes::string()).transform_values("seen-at", &[], || SeenAt, Serdes::i64());
    /// # assert!(b.build().is_ok());
    /// ```
    pub fn current_system_time_ms(&self) -> i64 {
        self.ctx.current_system_time_ms()
    }

    /// The Kafka coordinates of the table update being transformed.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::topology::{ProcessError, ValueTransformerContext, ValueTransformerWithKey};
    /// struct Origin;
    /// impl ValueTransformerWithKey<String, String, String> for Origin {
    ///     fn transform(&mut self, _: &String, v: Option<&String>, ctx: &mut ValueTransformerContext<'_, '_, String, String>)
    ///         -> Result<Option<String>, ProcessError> {
    ///         let at = ctx.source().map(|s| format!("{}[{}]@{}", s.topic, s.partition, s.offset)).unwrap_or_default();
    ///         Ok(v.map(|v| format!("{v} from {at}")))
    ///     }
    /// }
    /// # let mut b = Topology::builder();
    /// # b.table("t", "t", Serdes::string(), Serdes::string()).transform_values("origins", &[], || Origin, Serdes::string());
    /// # assert!(b.build().is_ok());
    /// ```
    pub fn source(&self) -> Option<&SourceOffset> {
        self.ctx.source()
    }
}

impl<K: Data, V: Data> KTable<K, V> {
    /// The table with each value replaced by what the transformer made by
    /// `factory` (once per task) returns for it, with access to the stores
    /// `stores` (declared with [`TopologyBuilder::add_store`]); Kafka
    /// Streams' `KTable#transformValues`. The result is kept in the store
    /// `name`, so each update carries the result it replaces and the
    /// transformer runs once per update (also for deletes, with `None`).
    /// See [`ValueTransformerWithKey`] for a transformer with a store.
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// use rivulet::testing::TopologyTestDriver;
    /// use rivulet::topology::{ProcessError, ValueTransformerContext, ValueTransformerWithKey};
    ///
    /// struct Upper;
    /// impl ValueTransformerWithKey<String, String, String> for Upper {
    ///     fn transform(&mut self, _: &String, v: Option<&String>, _: &mut ValueTransformerContext<'_, '_, String, String>)
    ///         -> Result<Option<String>, ProcessError> {
    ///         Ok(v.map(|v| v.to_uppercase()))
    ///     }
    /// }
    /// let mut b = Topology::builder();
    /// b.table("names", "names", Serdes::string(), Serdes::string()).transform_values("upper", &[], || Upper, Serdes::string());
    /// let mut driver = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    /// let names = driver.input_topic("names", Serdes::string(), Serdes::optional(Serdes::string()));
    /// driver.pipe(&names, "u1".to_string(), Some("ann".to_string()), 0).unwrap();
    /// assert_eq!(driver.store_get::<String, String>("upper", &"u1".to_string()).unwrap(), Some("ANN".to_string()));
    /// ```
    pub fn transform_values<V2: Data, T: ValueTransformerWithKey<K, V, V2>>(
        &self,
        name: &str,
        stores: &[&str],
        factory: impl Fn() -> T + Send + Sync + 'static,
        value_serde: impl Serde<V2>,
    ) -> KTable<K, V2> {
        let value_serde: Arc<dyn Serde<V2>> = Arc::new(value_serde);
        let mut builder = TopologyBuilder { graph: self.stream.graph.clone() };
        builder.add_store(StoreSpec::key_value(name, ArcSerde(self.key_serde.clone()), ArcSerde(value_serde.clone())));
        let store = name.to_string();
        let mut declared: Vec<String> = stores.iter().map(|s| s.to_string()).collect();
        declared.push(store.clone());
        let stream = self.stream.add_processor("TABLE_TRANSFORM_VALUES", declared, {
            let store = store.clone();
            move |_| TransformValues { store: store.clone(), transformer: factory() }
        });
        KTable { stream, key_serde: self.key_serde.clone(), value_serde, store: Some(store) }
    }
}

struct TransformValues<T> {
    store: String,
    transformer: T,
}

impl<K: Data, V: Data, V2: Data, T: ValueTransformerWithKey<K, V, V2>> Processor<K, Change<V>, K, Change<V2>>
    for TransformValues<T>
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V2>>) -> Result<(), ProcessError> {
        self.transformer.init(&mut ValueTransformerContext { ctx })
    }

    fn process(
        &mut self,
        record: Record<K, Change<V>>,
        ctx: &mut ProcessorContext<'_, K, Change<V2>>,
    ) -> Result<(), ProcessError> {
        let new =
            self.transformer.transform(&record.key, record.value.new.as_ref(), &mut ValueTransformerContext { ctx })?;
        let mut store = ctx.store::<K, V2>(&self.store)?;
        let old = store.get(&record.key)?;
        match &new {
            Some(v) => store.put(&record.key, v)?,
            None => store.delete(&record.key)?,
        }
        let change = Change::new(new, old);
        if change.is_empty() {
            return Ok(());
        }
        let Record { key, timestamp, headers, .. } = record;
        ctx.forward(Record { key, value: change, timestamp, headers })
    }
}
