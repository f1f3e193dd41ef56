//! The typed DSL: [`TopologyBuilder`], [`KStream`], [`KGroupedStream`],
//! [`KTable`].

use std::any::Any;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use crate::record::Record;
use crate::serde::{Encoded, Serde, Serdes};
use crate::topology::cache::{CacheProcessor, CACHE_MAX_KEYS};
use crate::topology::graph::{BuildFn, Instantiator, NodeKind, NodeSpec, RawSource, SourceEntry, TopicName};
use crate::topology::ops::{
    AggregateProcessor, Emit, Fallible, FlatMapProcessor, FoldFn, SplitProcessor, TableProcessor,
};
use crate::topology::processor::{Children, Entry, Node, ProcessError, Processor, ProcessorNode, Typed, UserError};
use crate::topology::store::StoreSpec;
use crate::topology::time::{decode_mark, is_marker, Extract, Timestamps, MARKER_HEADER};
use crate::topology::{Topology, TopologyError};

/// Data that flows between operators: cloned when a stream feeds several
/// operators.
pub trait Data: Clone + 'static {}
impl<T: Clone + 'static> Data for T {}

pub(crate) struct Graph {
    pub(crate) nodes: Vec<NodeSpec>,
    pub(crate) stores: Vec<StoreSpec>,
    pub(crate) errors: Vec<TopologyError>,
    counter: usize,
}

impl Graph {
    fn node_name(&mut self, op: &str) -> String {
        self.counter += 1;
        format!("{op}-{:04}", self.counter)
    }

    fn add(&mut self, name: String, kind: NodeKind, parents: &[usize], stores: Vec<String>, build: BuildFn) -> usize {
        let id = self.nodes.len();
        self.nodes.push(NodeSpec { name, kind, parents: parents.to_vec(), children: Vec::new(), stores, build });
        for &p in parents {
            self.nodes[p].children.push(id);
        }
        id
    }
}

/// Builds a [`Topology`].
///
/// ```
/// use rivulet::prelude::*;
/// let mut b = Topology::builder();
/// b.stream("lines", Serdes::unit(), Serdes::string())
///     .flat_map_values(|line: String| line.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>())
///     .group_by(|_, word: &String| word.clone(), Serdes::string())
///     .count("word-counts")
///     .to_stream()
///     .to("word-counts", Serdes::string(), Serdes::i64());
/// let topology = b.build().unwrap();
/// assert!(topology.describe().contains("word-counts-repartition"));
/// ```
#[derive(Clone)]
pub struct TopologyBuilder {
    pub(crate) graph: Rc<RefCell<Graph>>,
}

impl Default for TopologyBuilder {
    fn default() -> Self {
        TopologyBuilder {
            graph: Rc::new(RefCell::new(Graph {
                nodes: Vec::new(),
                stores: Vec::new(),
                errors: Vec::new(),
                counter: 0,
            })),
        }
    }
}

impl TopologyBuilder {
    /// A stream of the records of `topic`.
    pub fn stream<K: Data, V: Data>(
        &mut self,
        topic: &str,
        key_serde: impl Serde<K> + Clone,
        value_serde: impl Serde<V> + Clone,
    ) -> KStream<K, V> {
        self.stream_with_time(topic, key_serde, value_serde, Timestamps::record())
    }

    /// A stream of the records of `topic`, with each record's timestamp
    /// taken as `time` says (the Kafka timestamp, a value field, or the wall
    /// clock) and the watermark trailing it by `time`'s out-of-orderness.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rivulet::prelude::*;
    /// use rivulet::topology::Timestamps;
    /// #[derive(Clone, serde::Serialize, serde::Deserialize)]
    /// struct View { page: String, ts: i64 }
    /// let mut b = Topology::builder();
    /// b.stream_with_time(
    ///     "views",
    ///     Serdes::unit(),
    ///     Serdes::json::<View>(),
    ///     Timestamps::from_value(|v: &View| Some(v.ts)).out_of_orderness(Duration::from_secs(5)),
    /// );
    /// ```
    pub fn stream_with_time<K: Data, V: Data>(
        &mut self,
        topic: &str,
        key_serde: impl Serde<K> + Clone,
        value_serde: impl Serde<V> + Clone,
        time: Timestamps<V>,
    ) -> KStream<K, V> {
        let s =
            source(&self.graph, TopicName::External(topic.to_string()), key_serde.clone(), value_serde.clone(), time);
        KStream { key_serde: Some(Arc::new(key_serde)), value_serde: Some(Arc::new(value_serde)), ..s }
    }

    /// A table of the latest value per key of the compacted topic `topic`;
    /// a null value deletes the key. The table is kept in the store `name`.
    pub fn table<K: Data, V: Data>(
        &mut self,
        topic: &str,
        name: &str,
        key_serde: impl Serde<K> + Clone,
        value_serde: impl Serde<V> + Clone,
    ) -> KTable<K, V> {
        let s: KStream<K, Option<V>> = source(
            &self.graph,
            TopicName::External(topic.to_string()),
            key_serde.clone(),
            Serdes::optional(value_serde.clone()),
            Timestamps::record(),
        );
        self.add_store(StoreSpec::key_value(name, key_serde.clone(), value_serde.clone()));
        let store = name.to_string();
        let node = s.add_processor("TABLE", vec![store.clone()], move |_| TableProcessor { store: store.clone() });
        KTable { stream: node, key_serde: Arc::new(key_serde), value_serde: Arc::new(value_serde) }
    }

    /// Declares a store for processors added with [`KStream::process`].
    pub fn add_store(&mut self, store: StoreSpec) -> &mut Self {
        let mut g = self.graph.borrow_mut();
        if g.stores.iter().any(|s| s.name == store.name) {
            let name = store.name.clone();
            g.errors.push(TopologyError::Invalid(format!(
                "store `{name}` is declared twice; store names must be unique in a topology"
            )));
        } else {
            g.stores.push(store);
        }
        drop(g);
        self
    }

    /// Validates the graph and freezes it into a [`Topology`].
    pub fn build(self) -> Result<Topology, TopologyError> {
        let graph = Rc::try_unwrap(self.graph).map(RefCell::into_inner).or_else(|rc| {
            // Streams still hold the graph; take it from under them.
            let mut g = rc.borrow_mut();
            Ok::<Graph, TopologyError>(Graph {
                nodes: std::mem::take(&mut g.nodes),
                stores: std::mem::take(&mut g.stores),
                errors: std::mem::take(&mut g.errors),
                counter: g.counter,
            })
        })?;
        Topology::from_graph(graph)
    }
}

fn source<K: Data, V: Data>(
    graph: &Rc<RefCell<Graph>>,
    topic: TopicName,
    key_serde: impl Serde<K>,
    value_serde: impl Serde<V>,
    time: Timestamps<V>,
) -> KStream<K, V> {
    let key_serde: Arc<dyn Serde<K>> = Arc::new(key_serde);
    let value_serde: Arc<dyn Serde<V>> = Arc::new(value_serde);
    let mut serdes = format!("{} / {}", key_serde.name(), value_serde.name());
    if !matches!(time.extract, Extract::Record) || time.out_of_orderness_ms > 0 || time.idle_after_ms.is_some() {
        serdes = format!("{serdes}; {}", time.describe());
    }
    let (ks, vs, t) = (key_serde.clone(), value_serde.clone(), topic.clone());
    // Repartition topics carry the upstream tasks' watermarks as markers.
    let markers = matches!(topic, TopicName::Internal(_));
    let build: BuildFn = Arc::new(move |inst: &mut Instantiator<'_>, id| {
        let children = inst.children::<K, V>(id)?;
        let topic = t.resolve(inst.application_id());
        let entry: SourceEntry = Rc::new(RefCell::new(SourceNode {
            topic_name: Arc::from(topic.as_str()),
            topic,
            key_serde: ks.clone(),
            value_serde: vs.clone(),
            time: time.clone(),
            slot: None,
            markers,
            children,
        }));
        Ok(Box::new(entry) as Box<dyn Any>)
    });
    let mut g = graph.borrow_mut();
    let name = g.node_name("SOURCE");
    let id = g.add(name, NodeKind::Source { topic, serdes }, &[], Vec::new(), build);
    drop(g);
    KStream { graph: graph.clone(), node: id, key_serde: None, value_serde: None, key_changed: false, _t: PhantomData }
}

struct SourceNode<K, V> {
    topic: String,
    topic_name: Arc<str>,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    time: Timestamps<V>,
    /// This source partition's slot in the task's time, once it has data.
    slot: Option<usize>,
    /// A repartition topic: watermark markers move its time.
    markers: bool,
    children: Children<K, V>,
}

impl<K: Data, V: Data> SourceNode<K, V> {
    fn bad_mark(&self, value: &[u8]) -> ProcessError {
        ProcessError::Topology {
            node: format!("the source of {}", self.topic),
            reason: format!(
                "a watermark mark reads {:?}, not <partition>/<tasks>/<watermark or idle>; only rivulet itself may \
                 write to its internal topic {}",
                String::from_utf8_lossy(value),
                self.topic
            ),
        }
    }
}

impl<K: Data, V: Data> RawSource for SourceNode<K, V> {
    fn register_time(&mut self, task: &mut crate::runtime::TaskContext, now: i64) {
        if !self.markers {
            let (ooo, idle) = (self.time.out_of_orderness_ms, self.time.idle_after_ms);
            self.slot = Some(task.time.slot(&self.topic_name, ooo, idle, now));
        }
    }

    fn process_raw(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
        headers: crate::record::Headers,
        mark: Option<&[u8]>,
        task: &mut crate::runtime::TaskContext,
    ) -> Result<(), ProcessError> {
        // A repartition topic: the upstream task's watermark comes with
        // each record (a header) or alone (a marker). A record is judged by
        // the watermark as of the records before it; its own mark applies
        // after it, as a Flink watermark that follows the record.
        let mut upstream = None;
        if self.markers {
            let slot = *self.slot.get_or_insert_with(|| task.time.marker_slot(&self.topic_name));
            if is_marker(value, headers.iter().map(|(k, _)| k.as_str())) {
                let raw = headers.iter().find(|(k, _)| k == MARKER_HEADER).and_then(|(_, v)| v.as_deref());
                let Some((from, tasks, m)) = raw.and_then(decode_mark) else {
                    return Err(self.bad_mark(raw.unwrap_or_default()));
                };
                task.time.observe_mark(slot, from, tasks, m, crate::runtime::wall_clock_ms());
                return Ok(());
            }
            if let Some(raw) = mark {
                upstream = Some(decode_mark(raw).ok_or_else(|| self.bad_mark(raw))?);
            }
        }
        let key = self
            .key_serde
            .deserialize(key)
            .map_err(|e| ProcessError::Deserialize { what: format!("key of topic {}", self.topic), source: e })?;
        let value = self
            .value_serde
            .deserialize(value)
            .map_err(|e| ProcessError::Deserialize { what: format!("value of topic {}", self.topic), source: e })?;
        let timestamp = match &self.time.extract {
            Extract::Record => timestamp,
            Extract::WallClock => crate::runtime::wall_clock_ms(),
            Extract::Value(f) => f(&value).ok_or_else(|| ProcessError::Rejected {
                node: format!("the timestamp extractor of topic {}", self.topic),
                source: "the value has no timestamp; the extractor returned None".into(),
            })?,
        };
        let now = if self.time.idle_after_ms.is_some() { crate::runtime::wall_clock_ms() } else { 0 };
        let (ooo, idle) = (self.time.out_of_orderness_ms, self.time.idle_after_ms);
        let slot = *self.slot.get_or_insert_with(|| task.time.slot(&self.topic_name, ooo, idle, now));
        task.time.observe(slot, timestamp, now);
        task.stream_time = task.stream_time.max(timestamp);
        self.children.forward(Record { key, value, timestamp, headers }, task)?;
        if let Some((from, tasks, m)) = upstream {
            task.time.observe_mark(slot, from, tasks, m, 0);
        }
        Ok(())
    }
}

/// Where a sink writes: one topic, or a topic chosen per record.
enum SinkTarget<K, V> {
    Fixed(String),
    #[allow(clippy::type_complexity)]
    PerRecord(Arc<dyn Fn(&K, &V) -> String + Send + Sync>),
}

struct SinkNode<K, V> {
    target: SinkTarget<K, V>,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    /// A repartition topic: each record carries the task's watermark.
    marks: bool,
}

impl<K: 'static, V: 'static> Node<K, V> for SinkNode<K, V> {
    fn process(&mut self, record: Record<K, V>, task: &mut crate::runtime::TaskContext) -> Result<(), ProcessError> {
        let topic: std::borrow::Cow<'_, str> = match &self.target {
            SinkTarget::Fixed(t) => t.as_str().into(),
            SinkTarget::PerRecord(f) => f(&record.key, &record.value).into(),
        };
        let mut key = std::mem::take(&mut task.key_buf);
        let mut value = std::mem::take(&mut task.value_buf);
        key.clear();
        value.clear();
        let mark = if self.marks { Some(task.take_mark()) } else { None };
        let result = (|| {
            let k = self
                .key_serde
                .serialize(&record.key, &mut key)
                .map_err(|e| ProcessError::Serde { what: format!("key for topic {topic}"), source: e })?;
            let v = self
                .value_serde
                .serialize(&record.value, &mut value)
                .map_err(|e| ProcessError::Serde { what: format!("value for topic {topic}"), source: e })?;
            task.collector.send(
                &topic,
                None,
                (k == Encoded::Bytes).then_some(key.as_slice()),
                (v == Encoded::Bytes).then_some(value.as_slice()),
                record.timestamp,
                &record.headers,
                mark.as_deref(),
            )
        })();
        task.key_buf = key;
        task.value_buf = value;
        if let Some(mark) = mark {
            task.return_mark(mark);
        }
        result
    }
}

/// A stream of keyed records.
pub struct KStream<K, V> {
    pub(crate) graph: Rc<RefCell<Graph>>,
    pub(crate) node: usize,
    pub(crate) key_serde: Option<Arc<dyn Serde<K>>>,
    pub(crate) value_serde: Option<Arc<dyn Serde<V>>>,
    pub(crate) key_changed: bool,
    pub(crate) _t: PhantomData<fn(K, V)>,
}

impl<K, V> Clone for KStream<K, V> {
    fn clone(&self) -> Self {
        KStream {
            graph: self.graph.clone(),
            node: self.node,
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
            key_changed: self.key_changed,
            _t: PhantomData,
        }
    }
}

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

    fn same_serdes(&self, s: KStream<K, V>) -> KStream<K, V> {
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

    fn sink(&self, target: SinkTopic<K, V>, key_serde: Arc<dyn Serde<K>>, value_serde: Arc<dyn Serde<V>>) {
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

enum SinkTopic<K, V> {
    Topic(TopicName),
    #[allow(clippy::type_complexity)]
    PerRecord(Arc<dyn Fn(&K, &V) -> String + Send + Sync>),
}

/// The serde of an operator's input carries over to its output when the
/// operator keeps the type (a `map_values` from `String` to `String`).
fn carry<A: 'static, B: 'static>(serde: &Option<Arc<dyn Serde<A>>>) -> Option<Arc<dyn Serde<B>>> {
    let boxed: Box<dyn Any> = Box::new(serde.clone()?);
    boxed.downcast::<Arc<dyn Serde<B>>>().ok().map(|b| *b)
}

/// Passes records on unchanged (the node `merge` adds).
struct PassThrough<K, V> {
    children: Children<K, V>,
}

impl<K: Data, V: Data> Node<K, V> for PassThrough<K, V> {
    fn process(&mut self, record: Record<K, V>, task: &mut crate::runtime::TaskContext) -> Result<(), ProcessError> {
        self.children.forward(record, task)
    }
}

/// A shared serde used where a serde is taken by value.
pub(crate) struct ArcSerde<T>(pub(crate) Arc<dyn Serde<T>>);

impl<T: 'static> Serde<T> for ArcSerde<T> {
    fn serialize(&self, value: &T, out: &mut Vec<u8>) -> Result<Encoded, crate::serde::SerdeError> {
        self.0.serialize(value, out)
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<T, crate::serde::SerdeError> {
        self.0.deserialize(bytes)
    }
    fn name(&self) -> String {
        self.0.name()
    }
}

/// The builder of [`KStream::split`]'s named branches.
pub struct Split<K, V> {
    stream: KStream<K, V>,
    #[allow(clippy::type_complexity)]
    branches: Vec<(String, Arc<dyn Fn(&K, &V) -> bool + Send + Sync>)>,
}

impl<K: Data, V: Data> Split<K, V> {
    /// A branch taking the records for which `predicate` holds (and no
    /// earlier branch's did).
    pub fn branch(mut self, name: &str, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Self {
        self.branches.push((name.to_string(), Arc::new(predicate)));
        self
    }

    /// A last branch taking every record no other branch took.
    pub fn default_branch(self, name: &str) -> Branches<K, V> {
        self.branch(name, |_, _| true).finish()
    }

    /// Ends the split without a default branch: records no branch takes are dropped.
    pub fn finish(self) -> Branches<K, V> {
        let mut names: Vec<&str> = self.branches.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        let mut twice: Vec<&str> = names.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]).collect();
        twice.dedup();
        if !twice.is_empty() {
            self.stream.graph.borrow_mut().errors.push(TopologyError::Invalid(format!(
                "split has more than one branch named {twice:?}; give each branch its own name"
            )));
        }
        if self.branches.is_empty() {
            self.stream.graph.borrow_mut().errors.push(TopologyError::Invalid(
                "split has no branch; add one with .branch(name, predicate) or .default_branch(name)".into(),
            ));
        }
        let predicates: Vec<_> = self.branches.iter().map(|(_, p)| p.clone()).collect();
        let split = self.stream.add_processor("SPLIT", Vec::new(), move |name| SplitProcessor {
            name: name.to_string(),
            predicates: predicates.clone(),
        });
        let split = self.stream.same_serdes(split);
        let branches = self
            .branches
            .iter()
            .map(|(name, _)| {
                let b = split.add_processor("BRANCH", Vec::new(), |name| FlatMapProcessor {
                    name: name.to_string(),
                    f: Arc::new(|r| Ok(Emit::One(r))),
                });
                (name.clone(), split.same_serdes(b))
            })
            .collect();
        Branches { source: split, branches }
    }
}

/// The streams of a split, by branch name.
pub struct Branches<K, V> {
    /// The split stream, for errors and for `get` of an unknown branch.
    source: KStream<K, V>,
    branches: Vec<(String, KStream<K, V>)>,
}

impl<K: Data, V: Data> Branches<K, V> {
    /// The stream of the branch `name`. A name that was not declared is a
    /// topology error reported by `build()`; the stream returned then takes
    /// no records.
    pub fn get(&self, name: &str) -> KStream<K, V> {
        match self.branches.iter().find(|(n, _)| n == name) {
            Some((_, s)) => s.clone(),
            None => {
                self.source.graph.borrow_mut().errors.push(TopologyError::Invalid(format!(
                    "split has no branch `{name}`; its branches are {:?}",
                    self.branches.iter().map(|(n, _)| n).collect::<Vec<_>>()
                )));
                self.source.filter(|_, _| false)
            }
        }
    }
}

/// A stream grouped by key, ready to aggregate into a [`KTable`].
pub struct KGroupedStream<K, V> {
    pub(crate) stream: KStream<K, V>,
}

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

    fn aggregate_with<A: Data>(&self, name: &str, fold: FoldFn<K, V, A>, agg_serde: Arc<dyn Serde<A>>) -> KTable<K, A> {
        let s = &self.stream;
        let Some(key_serde) = s.key_serde.clone() else {
            s.graph.borrow_mut().errors.push(TopologyError::Invalid(format!(
                "aggregation `{name}` needs a key serde; pass one to group_by or call .with_serdes(..) before group_by_key"
            )));
            return KTable { stream: s.derive(s.node, false), key_serde: Arc::new(NoSerde), value_serde: agg_serde };
        };
        let input = if s.key_changed {
            if s.value_serde.is_none() {
                s.graph.borrow_mut().errors.push(TopologyError::Invalid(format!(
                    "aggregation `{name}` regroups records by a new key, so they are written to a repartition topic, \
                     which needs a value serde; call .with_serdes(key_serde, value_serde) before grouping"
                )));
                return KTable { stream: s.derive(s.node, false), key_serde, value_serde: agg_serde };
            }
            s.repartition(name)
        } else {
            s.clone()
        };
        let mut builder = TopologyBuilder { graph: s.graph.clone() };
        builder.add_store(StoreSpec::key_value(name, ArcSerde(key_serde.clone()), ArcSerde(agg_serde.clone())));
        let store = name.to_string();
        let table = input.add_processor("AGGREGATE", vec![store.clone()], move |node| AggregateProcessor {
            name: node.to_string(),
            store: store.clone(),
            fold: fold.clone(),
        });
        KTable { stream: table, key_serde, value_serde: agg_serde }
    }

    /// Counts records per key into the store `name`.
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

    /// Folds records per key into an aggregate kept in the store `name`.
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
    /// store `name`. Needs the stream's value serde.
    pub fn reduce(&self, name: &str, reduce: impl Fn(V, V) -> V + Send + Sync + 'static) -> KTable<K, V> {
        let Some(value_serde) = self.stream.value_serde.clone() else {
            self.stream.graph.borrow_mut().errors.push(TopologyError::Invalid(format!(
                "reduce `{name}` needs the value serde; call .with_serdes(..) before grouping"
            )));
            return KTable {
                stream: self.stream.derive(self.stream.node, false),
                key_serde: Arc::new(NoSerde),
                value_serde: Arc::new(NoSerde),
            };
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

/// A serde that fails: stands in after a topology error already recorded.
pub(crate) struct NoSerde;

impl<T: 'static> Serde<T> for NoSerde {
    fn serialize(&self, _: &T, _: &mut Vec<u8>) -> Result<Encoded, crate::serde::SerdeError> {
        Err(crate::serde::SerdeError::new("none", "no serde was given"))
    }
    fn deserialize(&self, _: Option<&[u8]>) -> Result<T, crate::serde::SerdeError> {
        Err(crate::serde::SerdeError::new("none", "no serde was given"))
    }
    fn name(&self) -> String {
        "none".into()
    }
}

/// A changelog of the latest value per key. Updates carry `Some(value)`,
/// deletes `None`.
pub struct KTable<K, V> {
    stream: KStream<K, Option<V>>,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
}

impl<K: Data, V: Data> KTable<K, V> {
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
        KTable { stream, key_serde: self.key_serde.clone(), value_serde: self.value_serde.clone() }
    }

    /// The table's updates as a stream of the new values (deletes are left out).
    pub fn to_stream(&self) -> KStream<K, V> {
        let s = self.stream.flat(
            "TO_STREAM",
            false,
            Arc::new(|r: Record<K, Option<V>>| {
                let Record { key, value, timestamp, headers } = r;
                Ok(match value {
                    Some(value) => Emit::One(Record { key, value, timestamp, headers }),
                    None => Emit::None,
                })
            }),
        );
        KStream { key_serde: Some(self.key_serde.clone()), value_serde: Some(self.value_serde.clone()), ..s }
    }

    /// The table's updates and deletes (`None`) as a stream; written to a
    /// topic, deletes become tombstones.
    pub fn to_change_stream(&self) -> KStream<K, Option<V>> {
        let value_serde: Arc<dyn Serde<Option<V>>> = Arc::new(Serdes::optional(ArcSerde(self.value_serde.clone())));
        KStream { key_serde: Some(self.key_serde.clone()), value_serde: Some(value_serde), ..self.stream.clone() }
    }
}
