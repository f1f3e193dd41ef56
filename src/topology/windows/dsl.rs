//! The windowed-aggregation DSL: `windowed_by`, the emit modes, the
//! aggregations, and moving the window into the value.

use super::*;

impl<K: Data, V: Data> KGroupedStream<K, V> {
    /// Cuts each key's records into `windows` for aggregation (Kafka
    /// Streams' `windowedBy`); one grouped stream can be windowed several
    /// ways.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rivulet::prelude::*;
    /// let mut b = Topology::builder();
    /// let by_user = b.stream("clicks", Serdes::string(), Serdes::string()).group_by_key();
    /// by_user.windowed_by(Windows::tumbling(Duration::from_secs(60))).count("clicks-per-minute");
    /// by_user.windowed_by(Windows::session(Duration::from_secs(1800))).count("clicks-per-visit");
    /// let described = b.build()?.describe();
    /// assert!(described.contains("WINDOW(tumbling 60000 ms, grace 0 ms)"));
    /// assert!(described.contains("WINDOW(session gap 1800000 ms, grace 0 ms)"));
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn windowed_by(&self, windows: Windows) -> WindowedStream<K, V> {
        WindowedStream {
            grouped: KGroupedStream { stream: self.stream.clone() },
            windows,
            emit: EmitMode::OnUpdate,
            late_topic: None,
            two_phase: false,
            _out: std::marker::PhantomData,
        }
    }
}

impl<K: Data, V: Data> WindowedStream<K, V, Updates> {
    /// Results as `Option<O>`: under `emit_on_update`, a session that a
    /// later record merges into a bigger one after it was emitted gets a
    /// tombstone (`None`, keyed by its old window), so a table (compacted
    /// topic) of sessions holds only the sessions that exist. Kafka
    /// Streams does the same (`KStreamSessionWindowAggregate` forwards a
    /// null for each session it merges away; its cache forwards it only
    /// for a session it had forwarded). Write the stream with
    /// `Serdes::optional(..)` as the value serde. Other window kinds and
    /// `emit_final` never retract a result: all their values are `Some`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("clicks", Serdes::string(), Serdes::string())
    ///     .group_by_key()
    ///     .windowed_by(Windows::session(Duration::from_secs(300)).grace(Duration::from_secs(3600)))
    ///     .with_tombstones()
    ///     .count("clicks-per-visit")
    ///     .to("visits", Serdes::windowed(Serdes::string()), Serdes::optional(Serdes::i64()));
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let clicks = driver.input_topic("clicks", Serdes::string(), Serdes::string());
    /// # let visits = driver.output_topic("visits", Serdes::windowed(Serdes::string()), Serdes::optional(Serdes::i64()));
    /// for minute in [0, 6, 3] {
    ///     driver.pipe(&clicks, "alice".to_string(), "/".to_string(), minute * 60_000)?;
    /// }
    /// let out: Vec<_> = driver.read(&visits)?.into_iter().map(|r| (r.key.start, r.key.end, r.value)).collect();
    /// assert_eq!(out[..2], [(0, 0, Some(1)), (360_000, 360_000, Some(1))]);
    /// // The record at 3 min merges the sessions at 0 and 6 min: both are deleted.
    /// assert_eq!(out[2..], [(0, 0, None), (360_000, 360_000, None), (0, 360_000, Some(3))]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn with_tombstones(self) -> WindowedStream<K, V, WithTombstones> {
        let WindowedStream { grouped, windows, emit, late_topic, two_phase, .. } = self;
        WindowedStream { grouped, windows, emit, late_topic, two_phase, _out: std::marker::PhantomData }
    }
}

impl<K: Data, V: Data, R: WindowOutput> WindowedStream<K, V, R> {
    /// Emits each window once, when it closes: when the watermark passes
    /// its end plus grace (Kafka Streams' `suppress(untilWindowCloses(..))`,
    /// `EmitStrategy.onWindowClose()`). Count windows close when full.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("clicks", Serdes::string(), Serdes::string())
    ///     .group_by_key()
    ///     .windowed_by(Windows::tumbling(Duration::from_secs(60)))
    ///     .emit_final()
    ///     .count("clicks-per-minute")
    ///     .to("clicks-per-minute", Serdes::windowed(Serdes::string()), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let clicks = driver.input_topic("clicks", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("clicks-per-minute", Serdes::windowed(Serdes::string()), Serdes::i64());
    /// for t in [1_000, 2_000, 61_000] {
    ///     driver.pipe(&clicks, "alice".to_string(), "/".to_string(), t)?;
    /// }
    /// // [0, 60 s) closed at 61 s; [60 s, 120 s) is still open.
    /// let out: Vec<_> = driver.read(&out)?.into_iter().map(|r| (r.key.start, r.value)).collect();
    /// assert_eq!(out, [(0, 2)]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn emit_final(mut self) -> Self {
        self.emit = EmitMode::Final;
        self
    }

    /// Emits each change, at most once per key and window per commit (the
    /// default): the window's latest aggregate, at the commit.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("clicks", Serdes::string(), Serdes::string())
    ///     .group_by_key()
    ///     .windowed_by(Windows::tumbling(Duration::from_secs(60)))
    ///     .emit_on_update()
    ///     .count("clicks-per-minute")
    ///     .to("clicks-per-minute", Serdes::windowed(Serdes::string()), Serdes::i64());
    /// let mut driver = TopologyTestDriver::new(b.build()?)?.manual_commits();
    /// # let clicks = driver.input_topic("clicks", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("clicks-per-minute", Serdes::windowed(Serdes::string()), Serdes::i64());
    /// driver.pipe(&clicks, "alice".to_string(), "/home".to_string(), 1_000)?;
    /// driver.pipe(&clicks, "alice".to_string(), "/cart".to_string(), 2_000)?;
    /// driver.commit()?; // one update for both records
    /// let out: Vec<_> = driver.read(&out)?.into_iter().map(|r| (r.key.start, r.value)).collect();
    /// assert_eq!(out, [(0, 2)]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn emit_on_update(mut self) -> Self {
        self.emit = EmitMode::OnUpdate;
        self
    }

    /// Writes records that arrive after all their windows closed to
    /// `topic`, unchanged (key, value and timestamp), instead of dropping
    /// them. Either way they are counted in `rivulet_late_records_total`.
    /// Needs the stream's key and value serdes.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("clicks", Serdes::string(), Serdes::string())
    ///     .group_by_key()
    ///     .windowed_by(Windows::tumbling(Duration::from_secs(60)))
    ///     .late_records_to("late-clicks")
    ///     .count("clicks-per-minute");
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let clicks = driver.input_topic("clicks", Serdes::string(), Serdes::string());
    /// # let late = driver.output_topic("late-clicks", Serdes::string(), Serdes::string());
    /// driver.pipe(&clicks, "alice".to_string(), "/home".to_string(), 61_000)?;
    /// driver.pipe(&clicks, "alice".to_string(), "/cart".to_string(), 1_000)?; // [0, 60 s) has closed
    /// assert_eq!(driver.read_key_values(&late)?, vec![("alice".to_string(), "/cart".to_string())]);
    /// assert_eq!(driver.late_records(), 1);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn late_records_to(mut self, topic: &str) -> Self {
        self.late_topic = Some(topic.to_string());
        self
    }

    /// Records per window, kept in the window store `name`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("clicks", Serdes::string(), Serdes::string())
    ///     .group_by_key()
    ///     .windowed_by(Windows::tumbling(Duration::from_secs(60)))
    ///     .count("clicks-per-minute")
    ///     .to("clicks-per-minute", Serdes::windowed(Serdes::string()), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let clicks = driver.input_topic("clicks", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("clicks-per-minute", Serdes::windowed(Serdes::string()), Serdes::i64());
    /// for t in [1_000, 2_000] {
    ///     driver.pipe(&clicks, "alice".to_string(), "/".to_string(), t)?;
    /// }
    /// let last = driver.read(&out)?.pop().unwrap();
    /// assert_eq!((last.key, last.value), (Windowed { key: "alice".to_string(), start: 0, end: 60_000 }, 2));
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn count(self, name: &str) -> KStream<Windowed<K>, R::Value<i64>> {
        let agg = Agg {
            init: Arc::new(|| 0i64),
            add: Arc::new(|n: i64, _: &V| n + 1),
            merge: Arc::new(|a: i64, b: i64| a + b),
            result: Arc::new(|n: &i64| Some(*n)),
            codec: Arc::new(Serdes::i64()),
        };
        self.build(name, agg, Arc::new(Serdes::i64()))
    }

    /// The sum of `f(value)` per window.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("sales", Serdes::string(), Serdes::i64()) // shop -> cents
    ///     .group_by_key()
    ///     .windowed_by(Windows::tumbling(Duration::from_secs(3600)))
    ///     .sum("sales-per-hour", |cents| *cents as f64 / 100.0)
    ///     .to("sales-per-hour", Serdes::windowed(Serdes::string()), Serdes::json::<f64>());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let sales = driver.input_topic("sales", Serdes::string(), Serdes::i64());
    /// # let out = driver.output_topic("sales-per-hour", Serdes::windowed(Serdes::string()), Serdes::json::<f64>());
    /// driver.pipe(&sales, "shop-1".to_string(), 1_050, 0)?;
    /// driver.pipe(&sales, "shop-1".to_string(), 200, 60_000)?;
    /// let totals: Vec<f64> = driver.read(&out)?.into_iter().map(|r| r.value).collect();
    /// assert_eq!(totals, [10.5, 12.5]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn sum(self, name: &str, f: impl Fn(&V) -> f64 + Send + Sync + 'static) -> KStream<Windowed<K>, R::Value<f64>> {
        let agg = Agg {
            init: Arc::new(|| 0.0f64),
            add: Arc::new(move |s: f64, v: &V| s + f(v)),
            merge: Arc::new(|a: f64, b: f64| a + b),
            result: Arc::new(|s: &f64| Some(*s)),
            codec: Arc::new(Serdes::json::<f64>()),
        };
        self.build(name, agg, Arc::new(Serdes::json::<f64>()))
    }

    /// The smallest `f(value)` per window.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("temperatures", Serdes::string(), Serdes::json::<f64>())
    ///     .group_by_key()
    ///     .windowed_by(Windows::tumbling(Duration::from_secs(86_400)))
    ///     .emit_final()
    ///     .min("daily-low", |celsius| *celsius)
    ///     .to("daily-low", Serdes::windowed(Serdes::string()), Serdes::json::<f64>());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let temps = driver.input_topic("temperatures", Serdes::string(), Serdes::json::<f64>());
    /// # let out = driver.output_topic("daily-low", Serdes::windowed(Serdes::string()), Serdes::json::<f64>());
    /// for (hour, celsius) in [(6, 4.5), (14, 12.0), (23, 3.0), (30, 9.0)] {
    ///     driver.pipe(&temps, "oslo".to_string(), celsius, hour * 3_600_000)?;
    /// }
    /// assert_eq!(driver.read_key_values(&out)?[0].1, 3.0);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn min(self, name: &str, f: impl Fn(&V) -> f64 + Send + Sync + 'static) -> KStream<Windowed<K>, R::Value<f64>> {
        self.extreme(name, f, f64::min)
    }

    /// The largest `f(value)` per window.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("latencies", Serdes::string(), Serdes::i64()) // endpoint -> ms
    ///     .group_by_key()
    ///     .windowed_by(Windows::tumbling(Duration::from_secs(60)))
    ///     .max("slowest-per-minute", |ms| *ms as f64)
    ///     .to("slowest-per-minute", Serdes::windowed(Serdes::string()), Serdes::json::<f64>());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let latencies = driver.input_topic("latencies", Serdes::string(), Serdes::i64());
    /// # let out = driver.output_topic("slowest-per-minute", Serdes::windowed(Serdes::string()), Serdes::json::<f64>());
    /// for ms in [120, 480, 95] {
    ///     driver.pipe(&latencies, "/search".to_string(), ms, 1_000)?;
    /// }
    /// assert_eq!(driver.read_key_values(&out)?.last().map(|(_, max)| *max), Some(480.0));
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn max(self, name: &str, f: impl Fn(&V) -> f64 + Send + Sync + 'static) -> KStream<Windowed<K>, R::Value<f64>> {
        self.extreme(name, f, f64::max)
    }

    fn extreme(
        self,
        name: &str,
        f: impl Fn(&V) -> f64 + Send + Sync + 'static,
        pick: fn(f64, f64) -> f64,
    ) -> KStream<Windowed<K>, R::Value<f64>> {
        let both = move |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(pick(a, b)),
            (a, b) => a.or(b),
        };
        let agg = Agg {
            init: Arc::new(|| None::<f64>),
            add: Arc::new(move |s: Option<f64>, v: &V| both(s, Some(f(v)))),
            merge: Arc::new(both),
            result: Arc::new(|s: &Option<f64>| Some(s.unwrap_or(f64::NAN))),
            codec: Arc::new(Serdes::json::<Option<f64>>()),
        };
        self.build(name, agg, Arc::new(Serdes::json::<f64>()))
    }

    /// The mean of `f(value)` per window.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("ratings", Serdes::string(), Serdes::i64()) // product -> stars
    ///     .group_by_key()
    ///     .windowed_by(Windows::tumbling(Duration::from_secs(86_400)))
    ///     .average("daily-rating", |stars| *stars as f64)
    ///     .to("daily-rating", Serdes::windowed(Serdes::string()), Serdes::json::<f64>());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let ratings = driver.input_topic("ratings", Serdes::string(), Serdes::i64());
    /// # let out = driver.output_topic("daily-rating", Serdes::windowed(Serdes::string()), Serdes::json::<f64>());
    /// for stars in [5, 4, 3] {
    ///     driver.pipe(&ratings, "p-1".to_string(), stars, 1_000)?;
    /// }
    /// assert_eq!(driver.read_key_values(&out)?.last().map(|(_, avg)| *avg), Some(4.0));
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn average(
        self,
        name: &str,
        f: impl Fn(&V) -> f64 + Send + Sync + 'static,
    ) -> KStream<Windowed<K>, R::Value<f64>> {
        let agg = Agg {
            init: Arc::new(|| (0.0f64, 0u64)),
            add: Arc::new(move |(s, n): (f64, u64), v: &V| (s + f(v), n + 1)),
            merge: Arc::new(|a: (f64, u64), b: (f64, u64)| (a.0 + b.0, a.1 + b.1)),
            result: Arc::new(|(s, n): &(f64, u64)| Some(if *n == 0 { f64::NAN } else { s / *n as f64 })),
            codec: Arc::new(Serdes::json::<(f64, u64)>()),
        };
        self.build(name, agg, Arc::new(Serdes::json::<f64>()))
    }

    /// Combines each window's values with `reduce(old, new)`. Needs the
    /// stream's value serde (the running value is stored with it). A
    /// window's first value is kept as it is.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("clicks", Serdes::string(), Serdes::string()) // user -> page
    ///     .group_by_key()
    ///     .windowed_by(Windows::session(Duration::from_secs(1800)))
    ///     .reduce("click-paths", |path, page| format!("{path} > {page}"))
    ///     .to("click-paths", Serdes::windowed(Serdes::string()), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let clicks = driver.input_topic("clicks", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("click-paths", Serdes::windowed(Serdes::string()), Serdes::string());
    /// for (t, page) in [(0, "/home"), (5_000, "/cart"), (9_000, "/pay")] {
    ///     driver.pipe(&clicks, "alice".to_string(), page.to_string(), t)?;
    /// }
    /// let path = driver.read_key_values(&out)?.pop().map(|(_, path)| path);
    /// assert_eq!(path.as_deref(), Some("/home > /cart > /pay"));
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn reduce(
        self,
        name: &str,
        reduce: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> KStream<Windowed<K>, R::Value<V>> {
        let Some(value_serde) = self.grouped.stream.value_serde.clone() else {
            self.grouped.stream.graph.borrow_mut().errors.push(TopologyError::Invalid(format!(
                "windowed reduce `{name}` needs the value serde; call .with_serdes(..) before grouping"
            )));
            return self.grouped.stream.derive(self.grouped.stream.node_id(), false);
        };
        let reduce = Arc::new(reduce);
        let r2 = reduce.clone();
        let agg = Agg {
            init: Arc::new(|| None::<V>),
            add: Arc::new(move |s: Option<V>, v: &V| {
                Some(match s {
                    Some(old) => reduce(old, v.clone()),
                    None => v.clone(),
                })
            }),
            merge: Arc::new(move |a: Option<V>, b: Option<V>| match (a, b) {
                (Some(a), Some(b)) => Some(r2(a, b)),
                (a, b) => a.or(b),
            }),
            result: Arc::new(|s: &Option<V>| s.clone()),
            codec: Arc::new(Serdes::optional(ArcSerde(value_serde.clone()))),
        };
        // Windows are created by their first value, so the state is never
        // `None` when a result is emitted.
        self.build(name, agg, value_serde)
    }

    /// Aggregates each window with a user [`Aggregator`]; its accumulator
    /// is stored, and emitted, as JSON.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// use std::collections::BTreeSet;
    /// use rivulet::topology::Aggregator;
    ///
    /// /// The distinct pages of each window.
    /// struct Pages;
    /// impl Aggregator<String> for Pages {
    ///     type Acc = BTreeSet<String>;
    ///     fn init(&self) -> Self::Acc { BTreeSet::new() }
    ///     fn add(&self, mut pages: Self::Acc, page: &String) -> Self::Acc { pages.insert(page.clone()); pages }
    ///     fn merge(&self, mut a: Self::Acc, b: Self::Acc) -> Self::Acc { a.extend(b); a }
    /// }
    ///
    /// let mut b = Topology::builder();
    /// b.stream("clicks", Serdes::string(), Serdes::string())
    ///     .group_by_key()
    ///     .windowed_by(Windows::tumbling(Duration::from_secs(60)))
    ///     .aggregate("pages-per-minute", Pages)
    ///     .to("pages-per-minute", Serdes::windowed(Serdes::string()), Serdes::json::<BTreeSet<String>>());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let clicks = driver.input_topic("clicks", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("pages-per-minute", Serdes::windowed(Serdes::string()), Serdes::json::<BTreeSet<String>>());
    /// for page in ["/home", "/cart", "/home"] {
    ///     driver.pipe(&clicks, "alice".to_string(), page.to_string(), 1_000)?;
    /// }
    /// let pages = driver.read_key_values(&out)?.pop().map(|(_, pages)| pages.into_iter().collect::<Vec<_>>());
    /// assert_eq!(pages, Some(vec!["/cart".to_string(), "/home".to_string()]));
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn aggregate<G: Aggregator<V>>(self, name: &str, aggregator: G) -> KStream<Windowed<K>, R::Value<G::Acc>>
    where
        G::Acc: Send + Sync,
    {
        let g = Arc::new(aggregator);
        let (g1, g2, g3) = (g.clone(), g.clone(), g.clone());
        let agg = Agg {
            init: Arc::new(move || g1.init()),
            add: Arc::new(move |s: G::Acc, v: &V| g2.add(s, v)),
            merge: Arc::new(move |a: G::Acc, b: G::Acc| g3.merge(a, b)),
            result: Arc::new(|s: &G::Acc| Some(s.clone())),
            codec: Arc::new(Serdes::json::<G::Acc>()),
        };
        self.build(name, agg, Arc::new(Serdes::json::<G::Acc>()))
    }
}

impl<K: Data, A: Data> KStream<Windowed<K>, A> {
    /// Moves the window into the value, as
    /// `{"key":..,"window_start":..,"window_end":..,"value":..}` with
    /// [`Serdes::json`]; the key stays the grouping key. For consumers
    /// that read windows as plain JSON rather than [`Serdes::windowed`]
    /// keys.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// use rivulet::topology::WindowResult;
    /// let mut b = Topology::builder();
    /// b.stream("clicks", Serdes::string(), Serdes::string())
    ///     .group_by_key()
    ///     .windowed_by(Windows::tumbling(Duration::from_secs(60)))
    ///     .count("clicks-per-minute")
    ///     .with_window_in_value()
    ///     .to("clicks-per-minute", Serdes::string(), Serdes::json::<WindowResult<String, i64>>());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let clicks = driver.input_topic("clicks", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("clicks-per-minute", Serdes::string(), Serdes::string());
    /// driver.pipe(&clicks, "alice".to_string(), "/home".to_string(), 1_000)?;
    /// let (key, json) = driver.read_key_values(&out)?.remove(0);
    /// assert_eq!(key, "alice");
    /// assert_eq!(json, r#"{"key":"alice","window_start":0,"window_end":60000,"value":1}"#);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn with_window_in_value(&self) -> KStream<K, WindowResult<K, A>>
    where
        K: Serialize + DeserializeOwned + Send + Sync,
        A: Serialize + DeserializeOwned + Send + Sync,
    {
        let s = self.map(|w: Windowed<K>, value: A| {
            let result = WindowResult { key: w.key.clone(), window_start: w.start, window_end: w.end, value };
            (w.key, result)
        });
        KStream { value_serde: Some(Arc::new(Serdes::json::<WindowResult<K, A>>())), ..s }
    }
}

/// Writes the late records an operator's node emits (a window operator's
/// or a stream-stream join's) to `topic` unchanged: `pick` takes a late
/// record's key and value out of the node's output and leaves the rest out.
/// Needs the value serde; `what` and `fix` name the operator and where to
/// call `with_serdes` in the error.
pub(crate) fn late_records_to<KI: Data, T: Data, K: Data, V: Data>(
    node: &KStream<KI, T>,
    what: &str,
    fix: &str,
    topic: &str,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Option<Arc<dyn Serde<V>>>,
    pick: impl Fn(KI, T) -> Option<(K, V)> + Send + Sync + 'static,
) {
    let late = node.flat(
        "LATE",
        false,
        Arc::new(move |r: Record<KI, T>| {
            Ok(match pick(r.key, r.value) {
                Some((key, value)) => Emit::One(Record { key, value, timestamp: r.timestamp, headers: r.headers }),
                None => Emit::None,
            })
        }),
    );
    match value_serde {
        Some(vs) => late.to(topic, ArcSerde(key_serde), ArcSerde(vs)),
        None => node.graph.borrow_mut().errors.push(TopologyError::Invalid(format!(
            "{what} go to topic {topic} unchanged, which needs the value serde; call .with_serdes(..) {fix}"
        ))),
    }
}
