//! `KTable`: a changelog of the latest value per key, and the operators
//! that derive one table from another (Kafka Streams' `KTableImpl`).
//!
//! Each update carries the value it replaces ([`Change`]), so the derived
//! tables stay exact: `filter` forwards a delete when a key stops passing,
//! and nothing when the key neither passed before nor passes now (Kafka
//! Streams' `KTableFilter` with old values on).

use super::*;

impl<K: Data, V: Data> KTable<K, V> {
    /// A table that stands in after a topology error already recorded.
    pub(crate) fn broken<X: Data>(
        at: &KStream<K, X>,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> Self {
        KTable { stream: at.derive(at.node, false), key_serde, value_serde, store: None }
    }

    /// A table of this one's keys whose updates `f` turned into others.
    fn derived<V2: Data>(
        &self,
        op: &str,
        value_serde: Arc<dyn Serde<V2>>,
        f: impl Fn(&K, Change<V>) -> Fallible<Change<V2>> + Send + Sync + 'static,
    ) -> KTable<K, V2> {
        let stream = self.stream.flat(
            op,
            false,
            Arc::new(move |r: Record<K, Change<V>>| {
                let Record { key, value, timestamp, headers } = r;
                let change = f(&key, value)?;
                Ok(if change.is_empty() {
                    Emit::None
                } else {
                    Emit::One(Record { key, value: change, timestamp, headers })
                })
            }),
        );
        KTable { stream, key_serde: self.key_serde.clone(), value_serde, store: None }
    }

    /// The table of the keys whose value satisfies `predicate`: a key whose
    /// new value fails it is deleted downstream (Kafka Streams'
    /// `KTable#filter`).
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// use rivulet::testing::TopologyTestDriver;
    ///
    /// let mut b = Topology::builder();
    /// b.table("stock", "stock", Serdes::string(), Serdes::i64())
    ///     .filter(|_, level| *level < 10)
    ///     .to_change_stream()
    ///     .to("low-stock", Serdes::string(), Serdes::optional(Serdes::i64()));
    /// let mut driver = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    /// let stock = driver.input_topic("stock", Serdes::string(), Serdes::optional(Serdes::i64()));
    /// driver.pipe(&stock, "bolts".to_string(), Some(3), 0).unwrap();
    /// driver.pipe(&stock, "bolts".to_string(), Some(50), 0).unwrap(); // no longer low: a delete
    /// driver.pipe(&stock, "nuts".to_string(), Some(80), 0).unwrap(); // never low: nothing
    /// let low = driver.output_topic("low-stock", Serdes::string(), Serdes::optional(Serdes::i64()));
    /// assert_eq!(
    ///     driver.read_key_values(&low).unwrap(),
    ///     vec![("bolts".to_string(), Some(3)), ("bolts".to_string(), None)]
    /// );
    /// ```
    pub fn filter(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KTable<K, V> {
        self.derived("TABLE_FILTER", self.value_serde.clone(), move |k, c| {
            Ok(Change::new(c.new.filter(|v| predicate(k, v)), c.old.filter(|v| predicate(k, v))))
        })
    }

    /// The table of the keys whose value does not satisfy `predicate`.
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// let mut b = Topology::builder();
    /// b.table("accounts", "accounts", Serdes::string(), Serdes::string())
    ///     .filter_not(|_, status| status == "closed")
    ///     .to_stream()
    ///     .to("open-accounts", Serdes::string(), Serdes::string());
    /// assert!(b.build().unwrap().describe().contains("TABLE_FILTER"));
    /// ```
    pub fn filter_not(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KTable<K, V> {
        self.filter(move |k, v| !predicate(k, v))
    }

    /// The table with each value replaced by `f(value)` (Kafka Streams'
    /// `KTable#mapValues`). `f` runs on the new value and again on the old
    /// one, so it must give the same result for the same input. The result
    /// has no store until [`materialize`](Self::materialize).
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// let mut b = Topology::builder();
    /// b.table("prices", "prices", Serdes::string(), Serdes::i64())
    ///     .map_values(|cents: i64| format!("{}.{:02} EUR", cents / 100, cents % 100), Serdes::string())
    ///     .to_stream()
    ///     .to("price-labels", Serdes::string(), Serdes::string());
    /// assert!(b.build().is_ok());
    /// ```
    pub fn map_values<V2: Data>(
        &self,
        f: impl Fn(V) -> V2 + Send + Sync + 'static,
        value_serde: impl Serde<V2>,
    ) -> KTable<K, V2> {
        self.try_map_values_with_key(move |_, v| Ok::<_, UserError>(f(v)), value_serde)
    }

    /// [`map_values`](Self::map_values) with the key, and fallible: an
    /// error sends the update to the processing-error policy (Kafka
    /// Streams' `KTable#mapValues` with a `ValueMapperWithKey`). For a
    /// transformer with state stores, see
    /// [`transform_values`](Self::transform_values).
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// let mut b = Topology::builder();
    /// b.table("users", "users", Serdes::string(), Serdes::string())
    ///     .try_map_values_with_key(
    ///         |id: &String, name: String| -> Result<String, std::num::ParseIntError> {
    ///             Ok(format!("{name} (#{})", id.parse::<u32>()?))
    ///         },
    ///         Serdes::string(),
    ///     )
    ///     .to_stream()
    ///     .to("user-labels", Serdes::string(), Serdes::string());
    /// assert!(b.build().is_ok());
    /// ```
    pub fn try_map_values_with_key<V2: Data, E: Into<UserError>>(
        &self,
        f: impl Fn(&K, V) -> Result<V2, E> + Send + Sync + 'static,
        value_serde: impl Serde<V2>,
    ) -> KTable<K, V2> {
        self.derived("TABLE_MAP_VALUES", Arc::new(value_serde), move |k, c| {
            let new = c.new.map(|v| f(k, v)).transpose().map_err(Into::into)?;
            let old = c.old.map(|v| f(k, v)).transpose().map_err(Into::into)?;
            Ok(Change::new(new, old))
        })
    }

    /// Keeps the table's current values in the store `name` (with a
    /// changelog, as every store), so that joins can look keys up in it
    /// (Kafka Streams' `Materialized.as(name)`). Source tables and
    /// aggregations already have their store; derived tables need this
    /// before they are joined.
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// let mut b = Topology::builder();
    /// let active = b
    ///     .table("customers", "customers", Serdes::string(), Serdes::string())
    ///     .filter(|_, c| !c.contains("\"inactive\""))
    ///     .materialize("active-customers");
    /// b.stream("orders", Serdes::string(), Serdes::string())
    ///     .join_table(&active, |_, order, customer| format!("{order} for {customer}"))
    ///     .to("orders-with-customers", Serdes::string(), Serdes::string());
    /// assert!(b.build().unwrap().describe().contains("active-customers"));
    /// ```
    pub fn materialize(&self, name: &str) -> KTable<K, V> {
        let mut builder = TopologyBuilder { graph: self.stream.graph.clone() };
        builder.add_store(StoreSpec::key_value(
            name,
            ArcSerde(self.key_serde.clone()),
            ArcSerde(self.value_serde.clone()),
        ));
        let store = name.to_string();
        let stream = self.stream.add_processor("MATERIALIZE", vec![store.clone()], {
            let store = store.clone();
            move |_| MaterializeProcessor { store: store.clone() }
        });
        KTable { stream, store: Some(store), ..self.clone() }
    }

    /// The table's store, or a topology error saying how to give it one.
    pub(crate) fn store_for(&self, what: &str) -> Option<String> {
        if self.store.is_none() {
            self.stream.graph.borrow_mut().errors.push(TopologyError::Invalid(format!(
                "{what} looks keys up in a table that has no store; call .materialize(\"<store name>\") on the \
                 table first (source tables and aggregations have one already)"
            )));
        }
        self.store.clone()
    }

    /// The same table with its updates held back until the commit: at most
    /// one update per key per commit interval goes downstream (the key's
    /// latest value, with the timestamp and headers of the record that
    /// wrote it), as with Kafka Streams' record cache
    /// (`statestore.cache.max.bytes`, `Materialized.withCachingEnabled()`).
    /// Off by default: without it every update is forwarded at once.
    ///
    /// The held updates are forwarded in the first step of the commit, in
    /// the same transaction as the changelog records and input offsets, or
    /// earlier when 10,000 keys of one task are held (the cache is full).
    /// An aborted transaction drops them with the rest of its work. How many
    /// updates are merged depends on `commit_interval_ms` and on how fast
    /// records arrive; the last value per key does not. A window downstream
    /// in the same task sees the updates at the commit, so it judges their
    /// lateness against the watermark then.
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// let mut b = Topology::builder();
    /// b.stream("clicks", Serdes::string(), Serdes::string())
    ///     .group_by_key()
    ///     .count("clicks-per-user")
    ///     .with_caching()
    ///     .to_stream()
    ///     .to("clicks-per-user", Serdes::string(), Serdes::i64());
    /// assert!(b.build().unwrap().describe().contains("CACHE"));
    /// ```
    pub fn with_caching(&self) -> KTable<K, V> {
        let key_serde = self.key_serde.clone();
        let stream = self.stream.add_processor("CACHE", Vec::new(), move |name| {
            CacheProcessor::new(name, key_serde.clone(), CACHE_MAX_KEYS)
        });
        KTable { stream, ..self.clone() }
    }

    /// The table's updates as a stream of the new values (deletes are left out).
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// let mut b = Topology::builder();
    /// b.stream("words", Serdes::unit(), Serdes::string())
    ///     .group_by(|_, w: &String| w.clone(), Serdes::string())
    ///     .count("word-counts")
    ///     .to_stream()
    ///     .to("word-counts", Serdes::string(), Serdes::i64());
    /// assert!(b.build().unwrap().describe().contains("TO_STREAM"));
    /// ```
    pub fn to_stream(&self) -> KStream<K, V> {
        let s = self.stream.flat(
            "TO_STREAM",
            false,
            Arc::new(|r: Record<K, Change<V>>| {
                let Record { key, value, timestamp, headers } = r;
                Ok(match value.new {
                    Some(value) => Emit::One(Record { key, value, timestamp, headers }),
                    None => Emit::None,
                })
            }),
        );
        KStream { key_serde: Some(self.key_serde.clone()), value_serde: Some(self.value_serde.clone()), ..s }
    }

    /// The table's updates and deletes (`None`) as a stream; written to a
    /// topic, deletes become tombstones.
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// let mut b = Topology::builder();
    /// b.table("users", "users", Serdes::string(), Serdes::string())
    ///     .filter(|_, name| !name.is_empty())
    ///     .to_change_stream()
    ///     .to("named-users", Serdes::string(), Serdes::optional(Serdes::string()));
    /// assert!(b.build().is_ok());
    /// ```
    pub fn to_change_stream(&self) -> KStream<K, Option<V>> {
        let s = self.stream.flat(
            "TO_CHANGE_STREAM",
            false,
            Arc::new(|r: Record<K, Change<V>>| {
                let Record { key, value, timestamp, headers } = r;
                Ok(Emit::One(Record { key, value: value.new, timestamp, headers }))
            }),
        );
        let value_serde: Arc<dyn Serde<Option<V>>> = Arc::new(Serdes::optional(ArcSerde(self.value_serde.clone())));
        KStream { key_serde: Some(self.key_serde.clone()), value_serde: Some(value_serde), ..s }
    }
}

impl<K, V> Clone for KTable<K, V> {
    fn clone(&self) -> Self {
        KTable {
            stream: self.stream.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
            store: self.store.clone(),
        }
    }
}
