//! `KStream`: the stateless operators, repartitioning, sinks and the
//! Processor API entry point.

use super::*;

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

    /// Keeps the records for which `predicate(&key, &value)` holds.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("logins", Serdes::string(), Serdes::string())
    ///     .filter(|user, _ip| !user.starts_with("bot-"))
    ///     .to("human-logins", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let logins = driver.input_topic("logins", Serdes::string(), Serdes::string());
    /// # let human = driver.output_topic("human-logins", Serdes::string(), Serdes::string());
    /// driver.pipe(&logins, "bot-7".to_string(), "10.0.0.7".to_string(), 0)?;
    /// driver.pipe(&logins, "alice".to_string(), "10.0.0.1".to_string(), 0)?;
    /// assert_eq!(driver.read_key_values(&human)?, vec![("alice".to_string(), "10.0.0.1".to_string())]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn filter(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KStream<K, V> {
        self.try_filter(move |k, v| Ok::<_, UserError>(predicate(k, v)))
    }

    /// Fallible [`filter`](Self::filter): an error sends the record to the
    /// processing-error policy (`errors.processing`: by default `fail`,
    /// which stops the application).
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("amounts", Serdes::string(), Serdes::string())
    ///     .try_filter(|_, amount: &String| amount.parse::<i64>().map(|n| n > 0))
    ///     .to("positive-amounts", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let amounts = driver.input_topic("amounts", Serdes::string(), Serdes::string());
    /// driver.pipe(&amounts, "a".to_string(), "12".to_string(), 0)?;
    /// let err = driver.pipe(&amounts, "b".to_string(), "twelve".to_string(), 0).unwrap_err();
    /// assert!(err.to_string().contains("invalid digit"));
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn try_filter<E: Into<UserError>>(
        &self,
        predicate: impl Fn(&K, &V) -> Result<bool, E> + Send + Sync + 'static,
    ) -> KStream<K, V> {
        let s = self.flat(
            "FILTER",
            false,
            Arc::new(move |r| {
                Ok(if predicate(&r.key, &r.value).map_err(Into::into)? { Emit::One(r) } else { Emit::None })
            }),
        );
        self.same_serdes(s)
    }

    /// Calls `f` on each record and passes it on unchanged: for logging,
    /// metrics, debugging.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    /// let seen = Arc::new(AtomicU64::new(0));
    /// let counter = seen.clone();
    /// let mut b = Topology::builder();
    /// b.stream("orders", Serdes::string(), Serdes::i64())
    ///     .peek(move |id, amount| {
    ///         tracing::debug!(%id, amount, "order");
    ///         counter.fetch_add(1, Ordering::Relaxed);
    ///     })
    ///     .to("orders-copy", Serdes::string(), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let orders = driver.input_topic("orders", Serdes::string(), Serdes::i64());
    /// driver.pipe(&orders, "o-1".to_string(), 30, 0)?;
    /// assert_eq!(seen.load(Ordering::Relaxed), 1);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn peek(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) -> KStream<K, V> {
        let s = self.flat(
            "PEEK",
            false,
            Arc::new(move |r| {
                f(&r.key, &r.value);
                Ok(Emit::One(r))
            }),
        );
        self.same_serdes(s)
    }

    /// A new key and value for each record: `f(key, value)` takes both by
    /// value and returns the new pair. Changes the key: grouping afterwards
    /// repartitions.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("page-views", Serdes::string(), Serdes::string()) // user -> page
    ///     .map(|user: String, page: String| (page, user.len() as i64))
    ///     .to("views-by-page", Serdes::string(), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let views = driver.input_topic("page-views", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("views-by-page", Serdes::string(), Serdes::i64());
    /// driver.pipe(&views, "alice".to_string(), "/home".to_string(), 0)?;
    /// assert_eq!(driver.read_key_values(&out)?, vec![("/home".to_string(), 5)]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn map<K2: Data, V2: Data>(&self, f: impl Fn(K, V) -> (K2, V2) + Send + Sync + 'static) -> KStream<K2, V2> {
        self.try_map(move |k, v| Ok::<_, UserError>(f(k, v)))
    }

    /// Fallible [`map`](Self::map): an error sends the record to the
    /// processing-error policy. Here the policy is `dead_letter`, so a bad
    /// record goes to the dead-letter topic and the rest go on:
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("settings", Serdes::unit(), Serdes::string())
    ///     .try_map(|(), line: String| match line.split_once('=') {
    ///         Some((key, value)) => Ok((key.to_string(), value.to_string())),
    ///         None => Err(format!("{line:?} is not key=value")),
    ///     })
    ///     .to("settings-by-key", Serdes::string(), Serdes::string());
    /// let config = Config::loader().default_value("errors.processing", "dead_letter");
    /// # let config = config.default_value("application_id", "settings").env(std::iter::empty::<(String, String)>());
    /// let mut driver = TopologyTestDriver::with_config(b.build()?, config.load()?)?;
    /// # let settings = driver.input_topic("settings", Serdes::unit(), Serdes::string());
    /// # let out = driver.output_topic("settings-by-key", Serdes::string(), Serdes::string());
    /// driver.pipe(&settings, (), "color=blue".to_string(), 0)?;
    /// driver.pipe(&settings, (), "oops".to_string(), 0)?;
    /// assert_eq!(driver.read_key_values(&out)?, vec![("color".to_string(), "blue".to_string())]);
    /// assert_eq!(driver.dead_letters()[0].value.as_deref(), Some(&b"oops"[..]));
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn try_map<K2: Data, V2: Data, E: Into<UserError>>(
        &self,
        f: impl Fn(K, V) -> Result<(K2, V2), E> + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        let s = self.flat(
            "MAP",
            true,
            Arc::new(move |r: Record<K, V>| {
                let Record { key, value, timestamp, headers } = r;
                let (k, v) = f(key, value).map_err(Into::into)?;
                Ok(Emit::One(Record { key: k, value: v, timestamp, headers }))
            }),
        );
        KStream { key_serde: carry(&self.key_serde), value_serde: carry(&self.value_serde), ..s }
    }

    /// A new value for each record, `f(value)`; the key stays, so grouping
    /// afterwards does not repartition.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("names", Serdes::string(), Serdes::string())
    ///     .map_values(|name: String| name.trim().to_uppercase())
    ///     .to("names-upper", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let names = driver.input_topic("names", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("names-upper", Serdes::string(), Serdes::string());
    /// driver.pipe(&names, "id-1".to_string(), " ada ".to_string(), 0)?;
    /// assert_eq!(driver.read_key_values(&out)?, vec![("id-1".to_string(), "ADA".to_string())]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn map_values<V2: Data>(&self, f: impl Fn(V) -> V2 + Send + Sync + 'static) -> KStream<K, V2> {
        self.try_map_values(move |v| Ok::<_, UserError>(f(v)))
    }

    /// Fallible [`map_values`](Self::map_values): any error type that
    /// converts into [`UserError`] (`String`, `&str`, every
    /// `std::error::Error + Send + Sync`). Here the policy is `skip`:
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("temperatures", Serdes::string(), Serdes::string())
    ///     .try_map_values(|celsius: String| celsius.parse::<f64>().map(|c| (c * 1.8 + 32.0) as i64))
    ///     .to("fahrenheit", Serdes::string(), Serdes::i64());
    /// let config = Config::loader().default_value("errors.processing", "skip");
    /// # let config = config.default_value("application_id", "temps").env(std::iter::empty::<(String, String)>());
    /// let mut driver = TopologyTestDriver::with_config(b.build()?, config.load()?)?;
    /// # let input = driver.input_topic("temperatures", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("fahrenheit", Serdes::string(), Serdes::i64());
    /// driver.pipe(&input, "oslo".to_string(), "warm".to_string(), 0)?;
    /// driver.pipe(&input, "oslo".to_string(), "20".to_string(), 0)?;
    /// assert_eq!(driver.read_key_values(&out)?, vec![("oslo".to_string(), 68)]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn try_map_values<V2: Data, E: Into<UserError>>(
        &self,
        f: impl Fn(V) -> Result<V2, E> + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        let s = self.flat(
            "MAP_VALUES",
            false,
            Arc::new(move |r: Record<K, V>| {
                let Record { key, value, timestamp, headers } = r;
                Ok(Emit::One(Record { key, value: f(value).map_err(Into::into)?, timestamp, headers }))
            }),
        );
        KStream { key_serde: self.key_serde.clone(), value_serde: carry(&self.value_serde), ..s }
    }

    /// Zero or more new records per record: `f(key, value)` returns any
    /// `IntoIterator` of `(key, value)` pairs, each becoming a record with
    /// the input's timestamp and headers. Changes the key.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("orders", Serdes::string(), Serdes::string()) // order id -> "item,item,.."
    ///     .flat_map(|order: String, items: String| {
    ///         items.split(',').map(|item| (item.to_string(), order.clone())).collect::<Vec<_>>()
    ///     })
    ///     .to("orders-by-item", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let orders = driver.input_topic("orders", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("orders-by-item", Serdes::string(), Serdes::string());
    /// driver.pipe(&orders, "o-1".to_string(), "tea,milk".to_string(), 0)?;
    /// let by_item = driver.read_key_values(&out)?;
    /// assert_eq!(by_item, [("tea".to_string(), "o-1".to_string()), ("milk".to_string(), "o-1".to_string())]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn flat_map<K2: Data, V2: Data, I>(&self, f: impl Fn(K, V) -> I + Send + Sync + 'static) -> KStream<K2, V2>
    where
        I: IntoIterator<Item = (K2, V2)>,
    {
        self.try_flat_map(move |k, v| Ok::<_, UserError>(f(k, v)))
    }

    /// Fallible [`flat_map`](Self::flat_map): an error emits none of the
    /// record's outputs and sends the record to the processing-error policy.
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// use rivulet::topology::UserError;
    /// let mut b = Topology::builder();
    /// b.stream("scores", Serdes::unit(), Serdes::string()) // "alice 3,5"
    ///     .try_flat_map(|(), line: String| {
    ///         let (user, scores) = line.split_once(' ').ok_or("no scores")?;
    ///         let pairs = scores.split(',').map(|s| Ok((user.to_string(), s.parse::<i64>()?)));
    ///         pairs.collect::<Result<Vec<_>, UserError>>()
    ///     })
    ///     .to("scores-by-user", Serdes::string(), Serdes::i64());
    /// # b.build()?;
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn try_flat_map<K2: Data, V2: Data, I, E: Into<UserError>>(
        &self,
        f: impl Fn(K, V) -> Result<I, E> + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        I: IntoIterator<Item = (K2, V2)>,
    {
        let s = self.flat(
            "FLAT_MAP",
            true,
            Arc::new(move |r: Record<K, V>| {
                let Record { key, value, timestamp, headers } = r;
                let out = f(key, value).map_err(Into::into)?;
                Ok(Emit::Many(
                    out.into_iter()
                        .map(|(key, value)| Record { key, value, timestamp, headers: headers.clone() })
                        .collect(),
                ))
            }),
        );
        KStream { key_serde: carry(&self.key_serde), value_serde: carry(&self.value_serde), ..s }
    }

    /// Zero or more new values per record, each with the record's key (and
    /// timestamp and headers).
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("articles", Serdes::string(), Serdes::string()) // id -> "tag,tag,.."
    ///     .flat_map_values(|tags: String| tags.split(',').map(str::to_string).collect::<Vec<_>>())
    ///     .to("article-tags", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let articles = driver.input_topic("articles", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("article-tags", Serdes::string(), Serdes::string());
    /// driver.pipe(&articles, "a-1".to_string(), "rust,kafka".to_string(), 0)?;
    /// let tags: Vec<String> = driver.read_key_values(&out)?.into_iter().map(|(_, tag)| tag).collect();
    /// assert_eq!(tags, ["rust", "kafka"]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn flat_map_values<V2: Data, I>(&self, f: impl Fn(V) -> I + Send + Sync + 'static) -> KStream<K, V2>
    where
        I: IntoIterator<Item = V2>,
    {
        self.try_flat_map_values(move |v| Ok::<_, UserError>(f(v)))
    }

    /// Fallible [`flat_map_values`](Self::flat_map_values).
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("batches", Serdes::string(), Serdes::string()) // "[1,2,3]"
    ///     .try_flat_map_values(|batch: String| serde_json::from_str::<Vec<i64>>(&batch))
    ///     .to("readings", Serdes::string(), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let batches = driver.input_topic("batches", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("readings", Serdes::string(), Serdes::i64());
    /// driver.pipe(&batches, "sensor".to_string(), "[20,21]".to_string(), 0)?;
    /// let readings: Vec<i64> = driver.read_key_values(&out)?.into_iter().map(|(_, r)| r).collect();
    /// assert_eq!(readings, [20, 21]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn try_flat_map_values<V2: Data, I, E: Into<UserError>>(
        &self,
        f: impl Fn(V) -> Result<I, E> + Send + Sync + 'static,
    ) -> KStream<K, V2>
    where
        I: IntoIterator<Item = V2>,
    {
        let s = self.flat(
            "FLAT_MAP_VALUES",
            false,
            Arc::new(move |r: Record<K, V>| {
                let Record { key, value, timestamp, headers } = r;
                let out = f(value).map_err(Into::into)?;
                Ok(Emit::Many(
                    out.into_iter()
                        .map(|value| Record { key: key.clone(), value, timestamp, headers: headers.clone() })
                        .collect(),
                ))
            }),
        );
        KStream { key_serde: self.key_serde.clone(), value_serde: carry(&self.value_serde), ..s }
    }

    /// A new key for each record, computed from key and value; the value
    /// stays. Grouping afterwards repartitions.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("views", Serdes::unit(), Serdes::string()) // "user:page"
    ///     .select_key(|_, view: &String| view.split(':').next().unwrap_or_default().to_string())
    ///     .to("views-by-user", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let views = driver.input_topic("views", Serdes::unit(), Serdes::string());
    /// # let out = driver.output_topic("views-by-user", Serdes::string(), Serdes::string());
    /// driver.pipe(&views, (), "alice:/home".to_string(), 0)?;
    /// assert_eq!(driver.read_key_values(&out)?, vec![("alice".to_string(), "alice:/home".to_string())]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn select_key<K2: Data>(&self, f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static) -> KStream<K2, V> {
        let s = self.flat(
            "SELECT_KEY",
            true,
            Arc::new(move |r: Record<K, V>| {
                let key = f(&r.key, &r.value);
                let Record { value, timestamp, headers, .. } = r;
                Ok(Emit::One(Record { key, value, timestamp, headers }))
            }),
        );
        KStream { key_serde: carry(&self.key_serde), value_serde: self.value_serde.clone(), ..s }
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
        self.through_internal(&format!("{name}-repartition"), ks, vs)
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
