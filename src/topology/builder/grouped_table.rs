//! `KGroupedTable`: a table regrouped by a new key and aggregated with an
//! adder and a subtractor (Kafka Streams' `KGroupedTable`,
//! `KTableRepartitionMap`, `KTableAggregate` and `KTableReduce`).
//!
//! ```text
//! update k: old v0 -> new v1      group_by(k, v) = (g, w)
//!   g(k, v0) == g(k, v1)  --> one record to g:  Change { new: w1, old: w0 }
//!   otherwise             --> to g(k, v0): Change { old: w0 }   (subtract)
//!                             to g(k, v1): Change { new: w1 }   (add)
//! aggregate of g: subtract old (when the group has an aggregate), then add new
//! ```
//!
//! The records always go through the repartition topic `<name>-repartition`,
//! as in Kafka Streams, carrying both values ([`ChangeSerde`]).

use super::*;

/// A table regrouped by a new key, ready to aggregate with
/// [`aggregate`](Self::aggregate), [`reduce`](Self::reduce) or
/// [`count`](Self::count). Made by [`KTable::group_by`].
///
/// ```
/// use rivulet::prelude::*;
/// use rivulet::topology::KGroupedTable;
/// let mut b = Topology::builder();
/// let by_team: KGroupedTable<String, ()> = b
///     .table("players", "players", Serdes::string(), Serdes::string())
///     .group_by(|_player, team: String| (team, ()), Serdes::string(), Serdes::unit());
/// by_team.count("players-per-team").to_stream().to("team-sizes", Serdes::string(), Serdes::i64());
/// assert!(b.build().is_ok());
/// ```
pub struct KGroupedTable<K, V> {
    stream: KStream<K, Change<V>>,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
}

/// Folds a value into an aggregate (`None`: the group has none yet).
type AddFn<K, V, A> = Arc<dyn Fn(&K, V, Option<A>) -> A + Send + Sync>;
/// Takes a value out of an aggregate.
type SubtractFn<K, V, A> = Arc<dyn Fn(&K, V, A) -> A + Send + Sync>;

impl<K: Data, V: Data> KTable<K, V> {
    /// Regroups the table by the key `f` gives each entry, with the new
    /// value to aggregate: when an entry changes, its old value leaves its
    /// old group and its new value joins its new group (Kafka Streams'
    /// `KTable#groupBy`). Always goes through a repartition topic, named
    /// after the aggregation.
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// use rivulet::testing::TopologyTestDriver;
    ///
    /// // users -> region; how many users per region, as users move.
    /// let mut b = Topology::builder();
    /// b.table("user-regions", "user-regions", Serdes::string(), Serdes::string())
    ///     .group_by(|_user, region: String| (region, ()), Serdes::string(), Serdes::unit())
    ///     .count("users-per-region")
    ///     .to_stream()
    ///     .to("users-per-region", Serdes::string(), Serdes::i64());
    /// let mut driver = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    /// let users = driver.input_topic("user-regions", Serdes::string(), Serdes::optional(Serdes::string()));
    /// driver.pipe(&users, "ann".to_string(), Some("eu".to_string()), 0).unwrap();
    /// driver.pipe(&users, "bob".to_string(), Some("eu".to_string()), 0).unwrap();
    /// driver.pipe(&users, "ann".to_string(), Some("us".to_string()), 0).unwrap();
    /// let counts = driver.output_topic("users-per-region", Serdes::string(), Serdes::i64());
    /// let last: std::collections::BTreeMap<_, _> = driver.read_key_values(&counts).unwrap().into_iter().collect();
    /// assert_eq!(last["eu"], 1);
    /// assert_eq!(last["us"], 1);
    /// ```
    pub fn group_by<K2: Data + PartialEq, V2: Data>(
        &self,
        f: impl Fn(&K, V) -> (K2, V2) + Send + Sync + 'static,
        key_serde: impl Serde<K2>,
        value_serde: impl Serde<V2>,
    ) -> KGroupedTable<K2, V2> {
        let stream = self.stream.flat(
            "TABLE_GROUP_BY",
            true,
            Arc::new(move |r: Record<K, Change<V>>| {
                let Record { key, value, timestamp, headers } = r;
                let old = value.old.map(|v| f(&key, v));
                let new = value.new.map(|v| f(&key, v));
                let record = |key, value| Record { key, value, timestamp, headers: headers.clone() };
                Ok(match (new, old) {
                    (Some((nk, nv)), Some((ok, ov))) if nk == ok => {
                        Emit::One(record(nk, Change::new(Some(nv), Some(ov))))
                    }
                    (new, old) => Emit::Many(
                        old.map(|(k, v)| record(k, Change::new(None, Some(v))))
                            .into_iter()
                            .chain(new.map(|(k, v)| record(k, Change::new(Some(v), None))))
                            .collect(),
                    ),
                })
            }),
        );
        KGroupedTable { stream, key_serde: Arc::new(key_serde), value_serde: Arc::new(value_serde) }
    }
}

impl<K: Data, V: Data> KGroupedTable<K, V> {
    /// Aggregates each group into the store `name`: `adder` folds in a
    /// value that joined the group, `subtractor` takes out one that left
    /// it (Kafka Streams' `KGroupedTable#aggregate`). A group whose
    /// members all left keeps its aggregate (for a count, 0), as in Kafka
    /// Streams.
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// // Total stock value per warehouse, as items move or change price.
    /// let mut b = Topology::builder();
    /// b.table("items", "items", Serdes::string(), Serdes::json::<(String, i64)>())
    ///     .group_by(|_item, (warehouse, value)| (warehouse, value), Serdes::string(), Serdes::i64())
    ///     .aggregate(
    ///         "stock-value",
    ///         || 0i64,
    ///         |_, value, total| total + value,
    ///         |_, value, total| total - value,
    ///         Serdes::i64(),
    ///     )
    ///     .to_stream()
    ///     .to("stock-value", Serdes::string(), Serdes::i64());
    /// assert!(b.build().unwrap().describe().contains("stock-value-repartition"));
    /// ```
    pub fn aggregate<A: Data>(
        &self,
        name: &str,
        initial: impl Fn() -> A + Send + Sync + 'static,
        adder: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        subtractor: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        agg_serde: impl Serde<A>,
    ) -> KTable<K, A> {
        self.aggregate_with(
            name,
            Arc::new(move |k, v, a: Option<A>| adder(k, v, a.unwrap_or_else(&initial))),
            Arc::new(subtractor),
            Arc::new(agg_serde),
        )
    }

    /// Combines the values of each group with `adder(aggregate, value)`
    /// and takes leaving values out with `subtractor(aggregate, value)`
    /// (Kafka Streams' `KGroupedTable#reduce`). The first value of a group
    /// is its aggregate.
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// // Total balance per branch.
    /// let mut b = Topology::builder();
    /// b.table("accounts", "accounts", Serdes::string(), Serdes::json::<(String, i64)>())
    ///     .group_by(|_, (branch, balance)| (branch, balance), Serdes::string(), Serdes::i64())
    ///     .reduce("balance-per-branch", |total, b| total + b, |total, b| total - b)
    ///     .to_stream()
    ///     .to("balance-per-branch", Serdes::string(), Serdes::i64());
    /// assert!(b.build().is_ok());
    /// ```
    pub fn reduce(
        &self,
        name: &str,
        adder: impl Fn(V, V) -> V + Send + Sync + 'static,
        subtractor: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> KTable<K, V> {
        self.aggregate_with(
            name,
            Arc::new(move |_, v, a: Option<V>| match a {
                Some(a) => adder(a, v),
                None => v,
            }),
            Arc::new(move |_, v, a| subtractor(a, v)),
            self.value_serde.clone(),
        )
    }

    /// Counts the entries of each group (Kafka Streams'
    /// `KGroupedTable#count`).
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// let mut b = Topology::builder();
    /// b.table("orders", "orders", Serdes::string(), Serdes::string())
    ///     .group_by(|_, status: String| (status, ()), Serdes::string(), Serdes::unit())
    ///     .count("orders-per-status")
    ///     .to_stream()
    ///     .to("orders-per-status", Serdes::string(), Serdes::i64());
    /// assert!(b.build().is_ok());
    /// ```
    pub fn count(&self, name: &str) -> KTable<K, i64> {
        self.aggregate_with(
            name,
            Arc::new(|_, _, n: Option<i64>| n.unwrap_or(0) + 1),
            Arc::new(|_, _, n| n - 1),
            Arc::new(Serdes::i64()),
        )
    }

    fn aggregate_with<A: Data>(
        &self,
        name: &str,
        add: AddFn<K, V, A>,
        subtract: SubtractFn<K, V, A>,
        agg_serde: Arc<dyn Serde<A>>,
    ) -> KTable<K, A> {
        let change_serde: Arc<dyn Serde<Change<V>>> = Arc::new(ChangeSerde { inner: self.value_serde.clone() });
        let grouped =
            KStream { key_serde: Some(self.key_serde.clone()), value_serde: Some(change_serde), ..self.stream.clone() };
        let input = grouped.repartition(name);
        let mut builder = TopologyBuilder { graph: self.stream.graph.clone() };
        builder.add_store(StoreSpec::key_value(name, ArcSerde(self.key_serde.clone()), ArcSerde(agg_serde.clone())));
        let store = name.to_string();
        let stream = input.add_processor("TABLE_AGGREGATE", vec![store.clone()], {
            let store = store.clone();
            move |_| TableAggregateProcessor { store: store.clone(), add: add.clone(), subtract: subtract.clone() }
        });
        KTable { stream, key_serde: self.key_serde.clone(), value_serde: agg_serde, store: Some(store) }
    }
}

/// Subtracts a group's leaving value, then adds its joining one, and
/// forwards the new aggregate with the one it replaces.
struct TableAggregateProcessor<K, V, A> {
    store: String,
    add: AddFn<K, V, A>,
    subtract: SubtractFn<K, V, A>,
}

impl<K: Data, V: Data, A: Data> Processor<K, Change<V>, K, Change<A>> for TableAggregateProcessor<K, V, A> {
    fn process(
        &mut self,
        record: Record<K, Change<V>>,
        ctx: &mut ProcessorContext<'_, K, Change<A>>,
    ) -> Result<(), ProcessError> {
        let mut store = ctx.store::<K, A>(&self.store)?;
        let current = store.get(&record.key)?;
        let Record { key, value, timestamp, headers } = record;
        let mut agg = match (value.old, current.clone()) {
            (Some(old), Some(a)) => Some((self.subtract)(&key, old, a)),
            (_, a) => a,
        };
        if let Some(new) = value.new {
            agg = Some((self.add)(&key, new, agg));
        }
        match &agg {
            Some(a) => store.put(&key, a)?,
            None => store.delete(&key)?,
        }
        ctx.forward(Record { key, value: Change::new(agg, current), timestamp, headers })
    }
}
