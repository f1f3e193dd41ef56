//! The typed DSL: [`TopologyBuilder`], [`KStream`], [`KGroupedStream`],
//! [`KTable`].

use std::any::Any;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use crate::processor::api::{Children, Entry, Node, Processor, ProcessorContext, ProcessorNode, Typed};
use crate::processor::graph::{BuildFn, Instantiator, NodeKind, NodeSpec, RawSource, SourceEntry, TopicName};
use crate::processor::store::StoreSpec;
use crate::processor::time::{decode_mark, is_marker, Extract, Timestamps, MARKER_HEADER};
use crate::processor::{ProcessError, UserError};
use crate::record::Record;
use crate::serde::{Encoded, Serde, Serdes};
use crate::topology::cache::{CacheProcessor, CACHE_MAX_KEYS};
use crate::topology::change::{Change, ChangeSerde};
use crate::topology::ops::{
    AggregateProcessor, Emit, Fallible, FlatMapProcessor, FoldFn, MaterializeProcessor, SplitProcessor, TableProcessor,
};
use crate::topology::{Topology, TopologyError};

mod grouped;
mod grouped_table;
mod nodes;
mod split;
mod stream;
mod table;

pub use grouped_table::KGroupedTable;

use nodes::{source, SinkNode, SinkTarget};

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
        let node = s.add_processor("TABLE", vec![store.clone()], {
            let store = store.clone();
            move |_| TableProcessor { store: store.clone() }
        });
        KTable { stream: node, key_serde: Arc::new(key_serde), value_serde: Arc::new(value_serde), store: Some(store) }
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
    fn process(&mut self, record: Record<K, V>, task: &mut crate::processor::TaskContext) -> Result<(), ProcessError> {
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

/// The streams of a split, by branch name.
pub struct Branches<K, V> {
    /// The split stream, for errors and for `get` of an unknown branch.
    source: KStream<K, V>,
    branches: Vec<(String, KStream<K, V>)>,
}

/// A stream grouped by key, ready to aggregate into a [`KTable`].
pub struct KGroupedStream<K, V> {
    pub(crate) stream: KStream<K, V>,
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

/// A changelog of the latest value per key: every update replaces the
/// key's value, and a delete removes it.
///
/// Inside, each update travels with the value it replaces (Kafka Streams'
/// `Change`), so `filter` turns a key that stops passing into a delete,
/// `group_by` moves a value from its old group to its new one, and joins
/// retract what they emitted before.
pub struct KTable<K, V> {
    pub(crate) stream: KStream<K, Change<V>>,
    pub(crate) key_serde: Arc<dyn Serde<K>>,
    pub(crate) value_serde: Arc<dyn Serde<V>>,
    /// The store holding the table's current values, when it has one (a
    /// source table, an aggregate, or after `materialize`): joins look
    /// keys up in it.
    pub(crate) store: Option<String>,
}
