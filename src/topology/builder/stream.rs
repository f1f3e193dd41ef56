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
    pub fn with_serdes(mut self, key_serde: impl Serde<K>, value_serde: impl Serde<V>) -> Self {
        self.key_serde = Some(Arc::new(key_serde));
        self.value_serde = Some(Arc::new(value_serde));
        self
    }

    pub(super) fn same_serdes(&self, s: KStream<K, V>) -> KStream<K, V> {
        KStream { key_serde: self.key_serde.clone(), value_serde: self.value_serde.clone(), ..s }
    }

    /// Keeps the records for which `predicate` holds.
    pub fn filter(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KStream<K, V> {
        self.try_filter(move |k, v| Ok::<_, UserError>(predicate(k, v)))
    }

    /// Fallible [`filter`](Self::filter): an error sends the record to the
    /// processing-error policy.
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

    /// Calls `f` on each record and passes it on unchanged.
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

    /// A new key and value for each record. Changes the key: grouping
    /// afterwards repartitions.
    pub fn map<K2: Data, V2: Data>(&self, f: impl Fn(K, V) -> (K2, V2) + Send + Sync + 'static) -> KStream<K2, V2> {
        self.try_map(move |k, v| Ok::<_, UserError>(f(k, v)))
    }

    /// Fallible [`map`](Self::map).
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

    /// A new value for each record; the key stays.
    pub fn map_values<V2: Data>(&self, f: impl Fn(V) -> V2 + Send + Sync + 'static) -> KStream<K, V2> {
        self.try_map_values(move |v| Ok::<_, UserError>(f(v)))
    }

    /// Fallible [`map_values`](Self::map_values).
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

    /// Zero or more new records per record. Changes the key.
    pub fn flat_map<K2: Data, V2: Data, I>(&self, f: impl Fn(K, V) -> I + Send + Sync + 'static) -> KStream<K2, V2>
    where
        I: IntoIterator<Item = (K2, V2)>,
    {
        self.try_flat_map(move |k, v| Ok::<_, UserError>(f(k, v)))
    }

    /// Fallible [`flat_map`](Self::flat_map).
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

    /// Zero or more new values per record, each with the record's key.
    pub fn flat_map_values<V2: Data, I>(&self, f: impl Fn(V) -> I + Send + Sync + 'static) -> KStream<K, V2>
    where
        I: IntoIterator<Item = V2>,
    {
        self.try_flat_map_values(move |v| Ok::<_, UserError>(f(v)))
    }

    /// Fallible [`flat_map_values`](Self::flat_map_values).
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

    /// A new key for each record, computed from key and value. Grouping
    /// afterwards repartitions.
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

    /// Named branches: each record goes to the first branch whose predicate
    /// holds, or to none.
    pub fn split(&self) -> Split<K, V> {
        Split { stream: self.clone(), branches: Vec::new() }
    }

    /// One stream of the records of both.
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
    pub fn repartition(&self, name: &str) -> KStream<K, V> {
        let (Some(ks), Some(vs)) = (self.key_serde.clone(), self.value_serde.clone()) else {
            self.graph.borrow_mut().errors.push(TopologyError::Invalid(format!(
                "repartition `{name}` needs the serdes of the stream's keys and values; call .with_serdes(key_serde, value_serde) before it"
            )));
            return self.clone();
        };
        let topic = TopicName::Internal(format!("{name}-repartition"));
        self.sink(SinkTopic::Topic(topic.clone()), ks.clone(), vs.clone());
        let s = source(&self.graph, topic, ArcSerde(ks.clone()), ArcSerde(vs.clone()), Timestamps::record());
        KStream { key_serde: Some(ks), value_serde: Some(vs), ..s }
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

    /// Writes every record to `topic`.
    pub fn to(&self, topic: &str, key_serde: impl Serde<K>, value_serde: impl Serde<V>) {
        self.sink(SinkTopic::Topic(TopicName::External(topic.to_string())), Arc::new(key_serde), Arc::new(value_serde));
    }

    /// Writes each record to the topic `choose` names for it.
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
    /// [`TopologyBuilder::add_store`]).
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
    pub fn group_by_key(&self) -> KGroupedStream<K, V> {
        KGroupedStream { stream: self.clone() }
    }

    /// Groups by a new key computed from each record; repartitions.
    pub fn group_by<K2: Data>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
        key_serde: impl Serde<K2>,
    ) -> KGroupedStream<K2, V> {
        let keyed = self.select_key(f);
        KGroupedStream { stream: KStream { key_serde: Some(Arc::new(key_serde)), key_changed: true, ..keyed } }
    }
}
