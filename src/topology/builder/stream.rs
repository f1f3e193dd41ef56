//! `KStream`: the stateless operators, repartitioning, sinks and the
//! Processor API entry point.

use super::*;
use crate::processor::graph::REPARTITION_SUFFIX;

mod async_io;
mod stateless;

impl<K: Data, V: Data> KStream<K, V> {
    pub(crate) fn node_id(&self) -> usize {
        self.node
    }

    pub(crate) fn derive<K2, V2>(&self, node: usize, key_changed: bool) -> KStream<K2, V2> {
        KStream { graph: self.graph.clone(), node, key_serde: None, value_serde: None, key_changed, _t: PhantomData }
    }

    pub(crate) fn add_processor<K2: Data, V2: Data, P: Processor<K, V, K2, V2>>(
        &self,
        op: &str,
        stores: Vec<String>,
        factory: impl Fn(&str) -> P + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        let build: BuildFn = Arc::new(move |inst: &mut Instantiator<'_>, id| {
            let children = inst.children::<K2, V2>(id)?;
            let info = inst.info(id);
            let node = Rc::new(RefCell::new(ProcessorNode { processor: factory(&info.name), children, info }));
            inst.register_lifecycle(id, Rc::new(RefCell::new(Typed { node: node.clone(), _types: PhantomData })));
            let entry: Entry<K, V> = node;
            Ok(Box::new(entry) as Box<dyn Any>)
        });
        let mut g = self.graph.borrow_mut();
        let name = g.node_name(op);
        let id = g.add(name, NodeKind::Processor, &[self.node], stores, build);
        drop(g);
        self.derive(id, self.key_changed)
    }

    #[allow(clippy::type_complexity)]
    pub(crate) fn flat<K2: Data, V2: Data>(
        &self,
        op: &str,
        key_changed: bool,
        f: Arc<dyn Fn(Record<K, V>) -> Fallible<Emit<K2, V2>> + Send + Sync>,
    ) -> KStream<K2, V2> {
        let s =
            self.add_processor(op, Vec::new(), move |name| FlatMapProcessor { name: name.to_string(), f: f.clone() });
        KStream { key_changed: self.key_changed || key_changed, ..s }
    }

    /// Declares the serdes of this stream's keys and values, needed by
    /// `group_by_key` and `repartition` after operators that change types.
    /// A stream read from a topic has the serdes it was read with, and an
    /// operator that keeps a type keeps its serde; `build()` says when one
    /// is missing.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("purchases", Serdes::unit(), Serdes::json::<(String, i64)>())
    ///     .map(|(), (customer, amount): (String, i64)| (customer, amount))
    ///     .with_serdes(Serdes::string(), Serdes::i64()) // new types: how to write them
    ///     .group_by_key()
    ///     .reduce("spent-per-customer", |total, amount| total + amount);
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let purchases = driver.input_topic("purchases", Serdes::unit(), Serdes::json::<(String, i64)>());
    /// driver.pipe(&purchases, (), ("alice".to_string(), 30), 0)?;
    /// driver.pipe(&purchases, (), ("alice".to_string(), 12), 0)?;
    /// assert_eq!(driver.store_get::<String, i64>("spent-per-customer", &"alice".to_string())?, Some(42));
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn with_serdes(mut self, key_serde: impl Serde<K>, value_serde: impl Serde<V>) -> Self {
        self.key_serde = Some(Arc::new(key_serde));
        self.value_serde = Some(Arc::new(value_serde));
        self
    }

    pub(super) fn same_serdes(&self, s: KStream<K, V>) -> KStream<K, V> {
        KStream { key_serde: self.key_serde.clone(), value_serde: self.value_serde.clone(), ..s }
    }

    /// Named branches (Kafka Streams' `split()`): each record goes to the
    /// first branch whose predicate holds, or to none; see [`Split`].
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// let mut b = Topology::builder();
    /// let branches = b
    ///     .stream("payments", Serdes::string(), Serdes::i64())
    ///     .split()
    ///     .branch("refunds", |_, amount| *amount < 0)
    ///     .default_branch("charges");
    /// branches.get("refunds").to("refunds", Serdes::string(), Serdes::i64());
    /// branches.get("charges").to("charges", Serdes::string(), Serdes::i64());
    /// # b.build()?;
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn split(&self) -> Split<K, V> {
        Split { stream: self.clone(), branches: Vec::new() }
    }

    /// One stream of the records of both, in the order they arrive. Both
    /// streams must be of one topology; `build()` puts them (and the
    /// stores downstream) in one sub-topology.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// let web = b.stream("web-orders", Serdes::string(), Serdes::i64());
    /// let shop = b.stream("shop-orders", Serdes::string(), Serdes::i64());
    /// web.merge(&shop).to("all-orders", Serdes::string(), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let web_in = driver.input_topic("web-orders", Serdes::string(), Serdes::i64());
    /// # let shop_in = driver.input_topic("shop-orders", Serdes::string(), Serdes::i64());
    /// # let out = driver.output_topic("all-orders", Serdes::string(), Serdes::i64());
    /// driver.pipe(&web_in, "w-1".to_string(), 10, 0)?;
    /// driver.pipe(&shop_in, "s-1".to_string(), 20, 0)?;
    /// assert_eq!(driver.read_key_values(&out)?, vec![("w-1".to_string(), 10), ("s-1".to_string(), 20)]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn merge(&self, other: &KStream<K, V>) -> KStream<K, V> {
        let build: BuildFn = Arc::new(move |inst: &mut Instantiator<'_>, id| {
            let children = inst.children::<K, V>(id)?;
            let entry: Entry<K, V> = Rc::new(RefCell::new(PassThrough { children }));
            Ok(Box::new(entry) as Box<dyn Any>)
        });
        let mut g = self.graph.borrow_mut();
        let name = g.node_name("MERGE");
        let id = g.add(name, NodeKind::Processor, &[self.node, other.node], Vec::new(), build);
        drop(g);
        let s = self.derive(id, self.key_changed || other.key_changed);
        self.same_serdes(s)
    }

    /// Writes the stream to the internal topic `<application_id>-<name>-repartition`
    /// and reads it back, so that records are partitioned by their current
    /// key. Needs the stream's serdes (see [`with_serdes`](Self::with_serdes)).
    /// Aggregations repartition by themselves when the key changed; call it
    /// to co-partition before a custom [`process`](Self::process) step.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("views", Serdes::unit(), Serdes::string()) // "user:page"
    ///     .select_key(|_, view: &String| view.split(':').next().unwrap_or_default().to_string())
    ///     .with_serdes(Serdes::string(), Serdes::string())
    ///     .repartition("views-by-user")
    ///     .to("views-by-user", Serdes::string(), Serdes::string());
    /// let topology = b.build()?;
    /// assert!(topology.describe().contains("Sink SINK-0003 (topic <application_id>-views-by-user-repartition"));
    /// # let mut driver = TopologyTestDriver::new(topology)?;
    /// # let views = driver.input_topic("views", Serdes::unit(), Serdes::string());
    /// driver.pipe(&views, (), "alice:/home".to_string(), 0)?;
    /// // The test driver's application_id is "rivulet-test".
    /// assert_eq!(driver.read_raw("rivulet-test-views-by-user-repartition")[0].key.as_deref(), Some(&b"alice"[..]));
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn repartition(&self, name: &str) -> KStream<K, V> {
        let (Some(ks), Some(vs)) = (self.key_serde.clone(), self.value_serde.clone()) else {
            self.graph.borrow_mut().errors.push(TopologyError::Invalid(format!(
                "repartition `{name}` needs the serdes of the stream's keys and values; call .with_serdes(key_serde, value_serde) before it"
            )));
            return self.clone();
        };
        self.through_internal(&format!("{name}{REPARTITION_SUFFIX}"), ks, vs)
    }

    /// Writes the stream to the internal topic `<application_id>-<topic>`
    /// and reads it back: a repartition topic under a name of the caller's
    /// (the foreign-key join's subscription and response topics).
    pub(crate) fn through_internal(
        &self,
        topic: &str,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> KStream<K, V> {
        let topic = TopicName::Internal(topic.to_string());
        self.sink(SinkTopic::Topic(topic.clone()), key_serde.clone(), value_serde.clone());
        let s = source(
            &self.graph,
            topic,
            ArcSerde(key_serde.clone()),
            ArcSerde(value_serde.clone()),
            Timestamps::record(),
        );
        KStream { key_serde: Some(key_serde), value_serde: Some(value_serde), ..s }
    }

    pub(super) fn sink(&self, target: SinkTopic<K, V>, key_serde: Arc<dyn Serde<K>>, value_serde: Arc<dyn Serde<V>>) {
        let serdes = format!("{} / {}", key_serde.name(), value_serde.name());
        let (topic_name, target) = match target {
            SinkTopic::Topic(t) => (Some(t.clone()), SinkTopic::Topic(t)),
            SinkTopic::PerRecord(f) => (None, SinkTopic::PerRecord(f)),
        };
        let marks = matches!(topic_name, Some(TopicName::Internal(_)));
        let build: BuildFn = Arc::new(move |inst: &mut Instantiator<'_>, _id| {
            let target = match &target {
                SinkTopic::Topic(t) => SinkTarget::Fixed(t.resolve(inst.application_id())),
                SinkTopic::PerRecord(f) => SinkTarget::PerRecord(f.clone()),
            };
            let entry: Entry<K, V> = Rc::new(RefCell::new(SinkNode {
                target,
                key_serde: key_serde.clone(),
                value_serde: value_serde.clone(),
                marks,
            }));
            Ok(Box::new(entry) as Box<dyn Any>)
        });
        let mut g = self.graph.borrow_mut();
        let name = g.node_name("SINK");
        g.add(name, NodeKind::Sink { topic: topic_name, serdes }, &[self.node], Vec::new(), build);
    }

    /// Writes every record to `topic` with these serdes (Kafka Streams'
    /// `to(topic, Produced.with(..))`), partitioned by key; the record's
    /// timestamp and headers go with it. A stream can be written to several
    /// topics, and go on to other operators as well.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// let orders = b.stream("orders", Serdes::string(), Serdes::i64());
    /// orders.to("orders-archive", Serdes::string(), Serdes::i64());
    /// orders.map_values(|cents: i64| cents.to_string()).to("orders-text", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("orders", Serdes::string(), Serdes::i64());
    /// # let archive = driver.output_topic("orders-archive", Serdes::string(), Serdes::i64());
    /// driver.pipe(&input, "o-1".to_string(), 250, 1_000)?;
    /// let written = driver.read(&archive)?;
    /// assert_eq!((written[0].value, written[0].timestamp), (250, 1_000));
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn to(&self, topic: &str, key_serde: impl Serde<K>, value_serde: impl Serde<V>) {
        self.sink(SinkTopic::Topic(TopicName::External(topic.to_string())), Arc::new(key_serde), Arc::new(value_serde));
    }

    /// Writes each record to the topic `choose(&key, &value)` names for it
    /// (Kafka Streams' `TopicNameExtractor`). Like the topic of
    /// [`to`](Self::to), they are not created by rivulet, which creates only
    /// its internal topics.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("events", Serdes::string(), Serdes::string()) // tenant -> event
    ///     .to_dynamic(|tenant, _| format!("events-{tenant}"), Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let events = driver.input_topic("events", Serdes::string(), Serdes::string());
    /// # let acme = driver.output_topic("events-acme", Serdes::string(), Serdes::string());
    /// driver.pipe(&events, "acme".to_string(), "signup".to_string(), 0)?;
    /// assert_eq!(driver.read_key_values(&acme)?, vec![("acme".to_string(), "signup".to_string())]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn to_dynamic(
        &self,
        choose: impl Fn(&K, &V) -> String + Send + Sync + 'static,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) {
        self.sink(SinkTopic::PerRecord(Arc::new(choose)), Arc::new(key_serde), Arc::new(value_serde));
    }

    /// Adds a custom [`Processor`], made by `factory` once per task, with
    /// access to the named stores (declared with
    /// [`TopologyBuilder::add_store`]). The processor forwards any number of
    /// records of any types; it can schedule callbacks and keep state (see
    /// also [`keyed`](crate::topology::keyed) for per-key state and timers).
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// use rivulet::testing::TopologyTestDriver;
    /// use rivulet::topology::ProcessError;
    ///
    /// /// Forwards a sensor's reading only when it differs from the last one.
    /// struct Changes;
    /// impl Processor<String, i64, String, i64> for Changes {
    ///     fn process(
    ///         &mut self,
    ///         r: Record<String, i64>,
    ///         ctx: &mut ProcessorContext<'_, String, i64>,
    ///     ) -> Result<(), ProcessError> {
    ///         let mut last = ctx.store::<String, i64>("last-reading")?;
    ///         if last.get(&r.key)? == Some(r.value) {
    ///             return Ok(());
    ///         }
    ///         last.put(&r.key, &r.value)?;
    ///         ctx.forward(r)
    ///     }
    /// }
    ///
    /// let mut b = Topology::builder();
    /// b.add_store(StoreSpec::key_value("last-reading", Serdes::string(), Serdes::i64()).in_memory());
    /// b.stream("readings", Serdes::string(), Serdes::i64())
    ///     .process(&["last-reading"], || Changes)
    ///     .to("changes", Serdes::string(), Serdes::i64());
    /// let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// let readings = driver.input_topic("readings", Serdes::string(), Serdes::i64());
    /// let changes = driver.output_topic("changes", Serdes::string(), Serdes::i64());
    /// for value in [20, 20, 21] {
    ///     driver.pipe(&readings, "s-1".to_string(), value, 0)?;
    /// }
    /// assert_eq!(driver.read_key_values(&changes)?, vec![("s-1".to_string(), 20), ("s-1".to_string(), 21)]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn process<K2: Data, V2: Data, P: Processor<K, V, K2, V2>>(
        &self,
        stores: &[&str],
        factory: impl Fn() -> P + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        let s = self.add_processor("PROCESS", stores.iter().map(|s| s.to_string()).collect(), move |_| factory());
        KStream { key_serde: carry(&self.key_serde), value_serde: carry(&self.value_serde), ..s }
    }

    /// Groups by the current key, for aggregation. Repartitions first when
    /// an earlier operator changed the key. Needs the stream's serdes (see
    /// [`with_serdes`](Self::with_serdes)).
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("clicks", Serdes::string(), Serdes::string()) // user -> page
    ///     .group_by_key()
    ///     .count("clicks-per-user");
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let clicks = driver.input_topic("clicks", Serdes::string(), Serdes::string());
    /// driver.pipe(&clicks, "alice".to_string(), "/home".to_string(), 0)?;
    /// driver.pipe(&clicks, "alice".to_string(), "/cart".to_string(), 0)?;
    /// assert_eq!(driver.store_get::<String, i64>("clicks-per-user", &"alice".to_string())?, Some(2));
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn group_by_key(&self) -> KGroupedStream<K, V> {
        KGroupedStream { stream: self.clone() }
    }

    /// Groups by a new key computed from each record, written with
    /// `key_serde` (Kafka Streams' `groupBy(.., Grouped.with(..))`). The
    /// aggregation repartitions through `<application_id>-<name>-repartition`,
    /// so that each new key is aggregated by one task.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("clicks", Serdes::string(), Serdes::string()) // user -> page
    ///     .group_by(|_user, page: &String| page.clone(), Serdes::string())
    ///     .count("clicks-per-page");
    /// let topology = b.build()?;
    /// assert!(topology.describe().contains("clicks-per-page-repartition"));
    /// # let mut driver = TopologyTestDriver::new(topology)?;
    /// # let clicks = driver.input_topic("clicks", Serdes::string(), Serdes::string());
    /// driver.pipe(&clicks, "alice".to_string(), "/home".to_string(), 0)?;
    /// driver.pipe(&clicks, "bob".to_string(), "/home".to_string(), 0)?;
    /// assert_eq!(driver.store_get::<String, i64>("clicks-per-page", &"/home".to_string())?, Some(2));
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn group_by<K2: Data>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
        key_serde: impl Serde<K2>,
    ) -> KGroupedStream<K2, V> {
        let keyed = self.select_key(f);
        KGroupedStream { stream: KStream { key_serde: Some(Arc::new(key_serde)), key_changed: true, ..keyed } }
    }
}
