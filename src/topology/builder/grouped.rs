//! `KGroupedStream`: aggregations of a stream per key.

use super::*;

impl<K: Data, V: Data> KGroupedStream<K, V> {
    /// The stream an aggregation named `name` reads, repartitioned when the
    /// key changed, with its key serde; `None` after recording a topology
    /// error.
    #[allow(clippy::type_complexity)]
    pub(crate) fn input(&self, name: &str) -> Option<(KStream<K, V>, Arc<dyn Serde<K>>)> {
        let s = &self.stream;
        let Some(key_serde) = s.key_serde.clone() else {
            s.graph.borrow_mut().errors.push(TopologyError::Invalid(format!(
                "aggregation `{name}` needs a key serde; pass one to group_by or call .with_serdes(..) before group_by_key"
            )));
            return None;
        };
        if !s.key_changed {
            return Some((s.clone(), key_serde));
        }
        if s.value_serde.is_none() {
            s.graph.borrow_mut().errors.push(TopologyError::Invalid(format!(
                "aggregation `{name}` regroups records by a new key, so they are written to a repartition topic, \
                 which needs a value serde; call .with_serdes(key_serde, value_serde) before grouping"
            )));
            return None;
        }
        let r = s.repartition(name);
        Some((KStream { key_serde: Some(key_serde.clone()), ..r }, key_serde))
    }

    pub(super) fn aggregate_with<A: Data>(
        &self,
        name: &str,
        fold: FoldFn<K, V, A>,
        agg_serde: Arc<dyn Serde<A>>,
    ) -> KTable<K, A> {
        let s = &self.stream;
        let Some(key_serde) = s.key_serde.clone() else {
            s.graph.borrow_mut().errors.push(TopologyError::Invalid(format!(
                "aggregation `{name}` needs a key serde; pass one to group_by or call .with_serdes(..) before group_by_key"
            )));
            return KTable::broken(s, Arc::new(NoSerde), agg_serde);
        };
        let input = if s.key_changed {
            if s.value_serde.is_none() {
                s.graph.borrow_mut().errors.push(TopologyError::Invalid(format!(
                    "aggregation `{name}` regroups records by a new key, so they are written to a repartition topic, \
                     which needs a value serde; call .with_serdes(key_serde, value_serde) before grouping"
                )));
                return KTable::broken(s, key_serde, agg_serde);
            }
            s.repartition(name)
        } else {
            s.clone()
        };
        let mut builder = TopologyBuilder { graph: s.graph.clone() };
        builder.add_store(StoreSpec::key_value(name, ArcSerde(key_serde.clone()), ArcSerde(agg_serde.clone())));
        let store = name.to_string();
        let table = input.add_processor("AGGREGATE", vec![store.clone()], {
            let store = store.clone();
            move |node| AggregateProcessor { name: node.to_string(), store: store.clone(), fold: fold.clone() }
        });
        KTable { stream: table, key_serde, value_serde: agg_serde, store: Some(store) }
    }

    /// Counts records per key into the store `name` (a table of `i64`).
    /// After [`group_by`](KStream::group_by) only the keys go through the
    /// repartition topic, so no value serde is needed.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("clicks", Serdes::string(), Serdes::string()) // user -> page
    ///     .group_by_key()
    ///     .count("clicks-per-user")
    ///     .to_stream()
    ///     .to("clicks-per-user", Serdes::string(), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let clicks = driver.input_topic("clicks", Serdes::string(), Serdes::string());
    /// # let counts = driver.output_topic("clicks-per-user", Serdes::string(), Serdes::i64());
    /// for user in ["alice", "bob", "alice"] {
    ///     driver.pipe(&clicks, user.to_string(), "/home".to_string(), 0)?;
    /// }
    /// let updates: Vec<(String, i64)> = driver.read_key_values(&counts)?;
    /// assert_eq!(updates, [("alice".to_string(), 1), ("bob".to_string(), 1), ("alice".to_string(), 2)]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn count(&self, name: &str) -> KTable<K, i64> {
        if self.stream.key_changed && self.stream.value_serde.is_none() {
            // Counting needs no values: repartition keys alone.
            let s = &self.stream;
            let keys = s.flat("DROP_VALUES", false, Arc::new(|r: Record<K, V>| Ok(Emit::One(r.with_value(())))));
            let keys: KStream<K, ()> =
                KStream { key_serde: s.key_serde.clone(), value_serde: Some(Arc::new(Serdes::unit())), ..keys };
            return KGroupedStream { stream: keys }.aggregate_with(
                name,
                Arc::new(|_, _, n: Option<i64>| Ok(n.unwrap_or(0) + 1)),
                Arc::new(Serdes::i64()),
            );
        }
        self.aggregate_with(name, Arc::new(|_, _, n: Option<i64>| Ok(n.unwrap_or(0) + 1)), Arc::new(Serdes::i64()))
    }

    /// Folds records per key into an aggregate kept in the store `name`:
    /// `initial()` starts a key's aggregate, `fold(&key, value, aggregate)`
    /// returns the next one, and `agg_serde` stores it.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("purchases", Serdes::string(), Serdes::i64())
    ///     .group_by_key()
    ///     .aggregate(
    ///         "purchase-stats",
    ///         || (0_i64, 0_i64),
    ///         |_customer, amount, (n, total)| (n + 1, total + amount),
    ///         Serdes::json::<(i64, i64)>(),
    ///     );
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let purchases = driver.input_topic("purchases", Serdes::string(), Serdes::i64());
    /// driver.pipe(&purchases, "alice".to_string(), 30, 0)?;
    /// driver.pipe(&purchases, "alice".to_string(), 12, 0)?;
    /// let stats = driver.store_get::<String, (i64, i64)>("purchase-stats", &"alice".to_string())?;
    /// assert_eq!(stats, Some((2, 42)));
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn aggregate<A: Data>(
        &self,
        name: &str,
        initial: impl Fn() -> A + Send + Sync + 'static,
        fold: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        agg_serde: impl Serde<A>,
    ) -> KTable<K, A> {
        self.aggregate_with(
            name,
            Arc::new(move |k, v, a: Option<A>| Ok(fold(k, v, a.unwrap_or_else(&initial)))),
            Arc::new(agg_serde),
        )
    }

    /// Fallible [`aggregate`](Self::aggregate): an error leaves the
    /// aggregate unchanged and sends the record to the processing-error policy.
    /// Here the policy is `skip`:
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("deposits", Serdes::string(), Serdes::i64())
    ///     .group_by_key()
    ///     .try_aggregate(
    ///         "balances",
    ///         || 0_i64,
    ///         |_account, amount, balance| balance.checked_add(amount).ok_or("balance overflow"),
    ///         Serdes::i64(),
    ///     );
    /// let config = Config::loader().default_value("errors.processing", "skip");
    /// # let config = config.default_value("application_id", "bank").env(std::iter::empty::<(String, String)>());
    /// let mut driver = TopologyTestDriver::with_config(b.build()?, config.load()?)?;
    /// # let deposits = driver.input_topic("deposits", Serdes::string(), Serdes::i64());
    /// driver.pipe(&deposits, "acc-1".to_string(), 5, 0)?;
    /// driver.pipe(&deposits, "acc-1".to_string(), i64::MAX, 0)?; // rejected and skipped
    /// assert_eq!(driver.store_get::<String, i64>("balances", &"acc-1".to_string())?, Some(5));
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn try_aggregate<A: Data, E: Into<UserError>>(
        &self,
        name: &str,
        initial: impl Fn() -> A + Send + Sync + 'static,
        fold: impl Fn(&K, V, A) -> Result<A, E> + Send + Sync + 'static,
        agg_serde: impl Serde<A>,
    ) -> KTable<K, A> {
        self.aggregate_with(
            name,
            Arc::new(move |k, v, a: Option<A>| fold(k, v, a.unwrap_or_else(&initial)).map_err(Into::into)),
            Arc::new(agg_serde),
        )
    }

    /// Combines the values of each key with `reduce(old, new)`, kept in the
    /// store `name`. Needs the stream's value serde. A key's first value is
    /// kept as it is.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("temperatures", Serdes::string(), Serdes::i64())
    ///     .group_by_key()
    ///     .reduce("max-temperature", |max, t| max.max(t));
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let temperatures = driver.input_topic("temperatures", Serdes::string(), Serdes::i64());
    /// for t in [18, 23, 21] {
    ///     driver.pipe(&temperatures, "oslo".to_string(), t, 0)?;
    /// }
    /// assert_eq!(driver.store_get::<String, i64>("max-temperature", &"oslo".to_string())?, Some(23));
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn reduce(&self, name: &str, reduce: impl Fn(V, V) -> V + Send + Sync + 'static) -> KTable<K, V> {
        let Some(value_serde) = self.stream.value_serde.clone() else {
            self.stream.graph.borrow_mut().errors.push(TopologyError::Invalid(format!(
                "reduce `{name}` needs the value serde; call .with_serdes(..) before grouping"
            )));
            return KTable::broken(&self.stream, Arc::new(NoSerde), Arc::new(NoSerde));
        };
        self.aggregate_with(
            name,
            Arc::new(move |_, v, acc: Option<V>| {
                Ok(match acc {
                    Some(old) => reduce(old, v),
                    None => v,
                })
            }),
            value_serde,
        )
    }
}
