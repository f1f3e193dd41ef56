//! `KGroupedStream::two_phase`: aggregations pre-aggregated per task
//! before the repartition topic (`topology/two_phase.rs`).

use super::*;
use crate::topology::two_phase::{PartialFn, PreAggregateProcessor, PRE_AGGREGATE_MAX_KEYS};

/// A grouped stream whose aggregations run in two phases, against hot
/// keys (Flink SQL's local-global aggregation, `TWO_PHASE` with
/// MiniBatch): each task folds its records per key into a partial
/// aggregate, held until the commit, and writes one partial per key to the
/// repartition topic; the aggregation after it merges the partials. The
/// table's contents are those of the one-phase aggregation; it is updated
/// once per key, upstream task and commit rather than once per record (as
/// with [`KTable::with_caching`]). Made by [`KGroupedStream::two_phase`].
///
/// The merge must be associative and combine partials as `add` combines
/// records: `merge(a, b)` is the aggregate of a's records then b's.
pub struct TwoPhaseGroupedStream<K, V> {
    grouped: KGroupedStream<K, V>,
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    /// Two-phase aggregations (see [`TwoPhaseGroupedStream`]): when
    /// `group_by` changed the key, the records are pre-aggregated per task
    /// and key within each commit before the repartition topic. Without a
    /// repartition there is nothing to save and they run in one phase.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("clicks", Serdes::unit(), Serdes::string()) // page
    ///     .group_by(|_, page: &String| page.clone(), Serdes::string())
    ///     .two_phase()
    ///     .count("clicks-per-page")
    ///     .to_stream()
    ///     .to("clicks-per-page", Serdes::string(), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?.manual_commits();
    /// # let clicks = driver.input_topic("clicks", Serdes::unit(), Serdes::string());
    /// # let counts = driver.output_topic("clicks-per-page", Serdes::string(), Serdes::i64());
    /// for page in ["/home", "/home", "/cart", "/home"] {
    ///     driver.pipe(&clicks, (), page.to_string(), 0)?;
    /// }
    /// driver.commit()?; // one partial per page goes through the repartition topic
    /// let updates: Vec<(String, i64)> = driver.read_key_values(&counts)?;
    /// assert_eq!(updates, [("/home".to_string(), 3), ("/cart".to_string(), 1)]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn two_phase(&self) -> TwoPhaseGroupedStream<K, V> {
        TwoPhaseGroupedStream { grouped: KGroupedStream { stream: self.stream.clone() } }
    }
}

impl<K: Data, V: Data> TwoPhaseGroupedStream<K, V> {
    /// Builds the local phase (`add`, per task and key) and the global one
    /// (`merge` of the partials into the table `name`).
    fn local_global<A: Data>(
        &self,
        name: &str,
        add: PartialFn<K, V, A>,
        merge: Arc<dyn Fn(A, A) -> A + Send + Sync>,
        agg_serde: Arc<dyn Serde<A>>,
    ) -> KTable<K, A> {
        let s = &self.grouped.stream;
        let key_serde = match (&s.key_serde, s.key_changed) {
            (Some(ks), true) => ks.clone(),
            // No repartition (or an error `aggregate_with` reports): one
            // phase, where `add` is the fold.
            _ => return self.grouped.aggregate_with(name, add, agg_serde),
        };
        let ks = key_serde.clone();
        let local = s.add_processor("PRE_AGGREGATE", Vec::new(), move |node| {
            PreAggregateProcessor::new(node, ks.clone(), add.clone(), None, PRE_AGGREGATE_MAX_KEYS)
        });
        let partials = KStream { key_serde: Some(key_serde), value_serde: Some(agg_serde.clone()), ..local };
        KGroupedStream { stream: partials }.aggregate_with(
            name,
            Arc::new(move |_, partial, acc: Option<A>| {
                Ok(match acc {
                    Some(acc) => merge(acc, partial),
                    None => partial,
                })
            }),
            agg_serde,
        )
    }

    /// [`KGroupedStream::count`] in two phases: each task counts per key,
    /// the table adds the counts. No value serde is needed.
    pub fn count(&self, name: &str) -> KTable<K, i64> {
        self.local_global(
            name,
            Arc::new(|_, _, n: Option<i64>| Ok(n.unwrap_or(0) + 1)),
            Arc::new(|a, b| a + b),
            Arc::new(Serdes::i64()),
        )
    }

    /// [`KGroupedStream::reduce`] in two phases: `reduce` combines each
    /// task's values per key, then the partial results, so it must be
    /// associative (`max`, `+`, ...). Needs the stream's value serde.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("readings", Serdes::string(), Serdes::i64()) // sensor -> temperature
    ///     .group_by(|sensor: &String, _| sensor.split('-').next().unwrap_or("").to_string(), Serdes::string())
    ///     .two_phase()
    ///     .reduce("max-per-site", |a, b| a.max(b));
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?.manual_commits();
    /// # let readings = driver.input_topic("readings", Serdes::string(), Serdes::i64());
    /// for (sensor, t) in [("oslo-1", 18), ("oslo-2", 23), ("oslo-1", 21)] {
    ///     driver.pipe(&readings, sensor.to_string(), t, 0)?;
    /// }
    /// driver.commit()?;
    /// assert_eq!(driver.store_get::<String, i64>("max-per-site", &"oslo".to_string())?, Some(23));
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn reduce(&self, name: &str, reduce: impl Fn(V, V) -> V + Send + Sync + 'static) -> KTable<K, V> {
        let Some(value_serde) = self.grouped.stream.value_serde.clone() else {
            // One phase reports the missing serde.
            return self.grouped.reduce(name, reduce);
        };
        let reduce = Arc::new(reduce);
        let r = reduce.clone();
        self.local_global(
            name,
            Arc::new(move |_, v, acc: Option<V>| {
                Ok(match acc {
                    Some(old) => r(old, v),
                    None => v,
                })
            }),
            Arc::new(move |a, b| reduce(a, b)),
            value_serde,
        )
    }

    /// [`KGroupedStream::aggregate`] in two phases: `initial` and
    /// `add(&key, value, aggregate)` fold each task's records per key into
    /// a partial aggregate, and `merge(aggregate, partial)` folds the
    /// partials into the table (Flink's `AggregateFunction::merge`). The
    /// merge must give what `add` would have given for the partial's
    /// records: an average kept as `(count, sum)` merges by adding both.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("purchases", Serdes::unit(), Serdes::json::<(String, i64)>())
    ///     .group_by(|_, (customer, _): &(String, i64)| customer.clone(), Serdes::string())
    ///     .two_phase()
    ///     .aggregate(
    ///         "purchase-stats",
    ///         || (0_i64, 0_i64),
    ///         |_customer, (_, amount), (n, total)| (n + 1, total + amount),
    ///         |(n1, t1), (n2, t2)| (n1 + n2, t1 + t2),
    ///         Serdes::json::<(i64, i64)>(),
    ///     );
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?.manual_commits();
    /// # let purchases = driver.input_topic("purchases", Serdes::unit(), Serdes::json::<(String, i64)>());
    /// driver.pipe(&purchases, (), ("alice".to_string(), 30), 0)?;
    /// driver.pipe(&purchases, (), ("alice".to_string(), 12), 0)?;
    /// driver.commit()?;
    /// let stats = driver.store_get::<String, (i64, i64)>("purchase-stats", &"alice".to_string())?;
    /// assert_eq!(stats, Some((2, 42)));
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn aggregate<A: Data>(
        &self,
        name: &str,
        initial: impl Fn() -> A + Send + Sync + 'static,
        add: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        merge: impl Fn(A, A) -> A + Send + Sync + 'static,
        agg_serde: impl Serde<A>,
    ) -> KTable<K, A> {
        self.local_global(
            name,
            Arc::new(move |k, v, a: Option<A>| Ok(add(k, v, a.unwrap_or_else(&initial)))),
            Arc::new(merge),
            Arc::new(agg_serde),
        )
    }
}
