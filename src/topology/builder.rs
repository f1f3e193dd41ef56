//! The typed DSL: [`TopologyBuilder`], [`KStream`], [`KGroupedStream`],
//! [`KTable`].

use std::any::Any;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use crate::processor::api::{Children, Entry, Node, Processor, ProcessorContext, ProcessorNode, Typed};
use crate::processor::graph::{BuildFn, Instantiator, NodeKind, NodeSpec, RawSource, SourceEntry, TopicName};
use crate::processor::store::{GlobalSpec, StoreSpec};
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

mod global;
mod grouped;
mod grouped_table;
mod nodes;
mod split;
mod stream;
mod table;
mod table_transform;
mod two_phase;

pub use global::GlobalKTable;
pub use grouped_table::KGroupedTable;
pub use table_transform::{ValueTransformerContext, ValueTransformerWithKey};
pub use two_phase::TwoPhaseGroupedStream;

use nodes::{source, SinkNode, SinkTarget};

/// Data that flows between operators: cloned when a stream feeds several
/// operators.
///
/// Implemented for every `Clone + 'static` type, so a user type meets it
/// with `#[derive(Clone)]`; its serde (here [`Serdes::json`]) is what needs
/// `serde`'s derives.
///
/// ```
/// use rivulet::prelude::*;
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct Order { customer: String, amount: i64 }
///
/// let mut b = Topology::builder();
/// b.stream("orders", Serdes::unit(), Serdes::json::<Order>())
///     .map(|(), o: Order| (o.customer, o.amount))
///     .to("amounts", Serdes::string(), Serdes::i64());
/// # b.build()?;
/// # Ok::<(), rivulet::Error>(())
/// ```
pub trait Data: Clone + 'static {}
impl<T: Clone + 'static> Data for T {}

pub(crate) struct Graph {
    pub(crate) nodes: Vec<NodeSpec>,
    pub(crate) stores: Vec<StoreSpec>,
    pub(crate) globals: Vec<GlobalSpec>,
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
                globals: Vec::new(),
                errors: Vec::new(),
                counter: 0,
            })),
        }
    }
}

impl TopologyBuilder {
    /// A stream of the records of `topic`, keys and values read with
    /// `key_serde` and `value_serde` (Kafka Streams' `builder.stream(topic,
    /// Consumed.with(..))`). Record timestamps are the Kafka timestamps; see
    /// [`stream_with_time`](Self::stream_with_time) for event time from the
    /// value. A topic can be read by one `stream` only: reuse (clone) the
    /// stream to feed several operators.
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// let mut b = Topology::builder();
    /// let orders: KStream<String, i64> = b.stream("orders", Serdes::string(), Serdes::i64());
    /// orders.filter(|_, amount| *amount < 0).to("refunds", Serdes::string(), Serdes::i64());
    /// orders.filter(|_, amount| *amount >= 0).to("sales", Serdes::string(), Serdes::i64());
    /// assert!(b.build()?.describe().contains("Source SOURCE-0001 (topic orders; string / i64)"));
    /// # Ok::<(), rivulet::Error>(())
    /// ```
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
    /// a null value deletes the key. The table is kept in the store `name`
    /// (with its changelog, `<application_id>-<name>-changelog`), which
    /// joins read and the test driver's `store_get` shows.
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// use rivulet::testing::TopologyTestDriver;
    ///
    /// let mut b = Topology::builder();
    /// b.table("users", "users", Serdes::string(), Serdes::string());
    /// let mut driver = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    /// let users = driver.input_topic("users", Serdes::string(), Serdes::optional(Serdes::string()));
    /// driver.pipe(&users, "u1".to_string(), Some("Ann".to_string()), 0).unwrap();
    /// driver.pipe(&users, "u2".to_string(), Some("Bob".to_string()), 0).unwrap();
    /// driver.pipe(&users, "u2".to_string(), None, 0).unwrap(); // a tombstone deletes u2
    /// assert_eq!(driver.store_entries::<String, String>("users").unwrap(), [("u1".to_string(), "Ann".to_string())]);
    /// ```
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

    /// Declares a store for processors added with [`KStream::process`]
    /// (Kafka Streams' `addStateStore`). Each processor lists the stores it
    /// uses; `build()` fails on a store declared twice, declared but never
    /// used, or used but never declared. The store is changelogged to
    /// `<application_id>-<name>-changelog` and restored from it.
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// use rivulet::topology::ProcessError;
    ///
    /// /// Forwards the first record of each key only.
    /// struct FirstPerKey;
    /// impl Processor<String, String, String, String> for FirstPerKey {
    ///     fn process(
    ///         &mut self,
    ///         r: Record<String, String>,
    ///         ctx: &mut ProcessorContext<'_, String, String>,
    ///     ) -> Result<(), ProcessError> {
    ///         let mut seen = ctx.store::<String, i64>("seen")?;
    ///         if seen.get(&r.key)?.is_some() {
    ///             return Ok(());
    ///         }
    ///         seen.put(&r.key, &r.timestamp)?;
    ///         ctx.forward(r)
    ///     }
    /// }
    ///
    /// let mut b = Topology::builder();
    /// b.add_store(StoreSpec::key_value("seen", Serdes::string(), Serdes::i64()));
    /// b.stream("signups", Serdes::string(), Serdes::string())
    ///     .process(&["seen"], || FirstPerKey)
    ///     .to("first-signups", Serdes::string(), Serdes::string());
    /// assert!(b.build()?.describe().contains("seen (rocksdb, changelog <application_id>-seen-changelog)"));
    /// # Ok::<(), rivulet::Error>(())
    /// ```
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

    /// Validates the graph and freezes it into a [`Topology`]. Mistakes in
    /// the DSL (a missing serde, a store nobody uses, a topic read twice, a
    /// name that cannot name a topic) are reported here, the first one as a
    /// [`TopologyError`] saying what to change.
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// use rivulet::topology::TopologyError;
    /// let mut b = Topology::builder();
    /// b.stream("a", Serdes::string(), Serdes::string()).to("out", Serdes::string(), Serdes::string());
    /// b.stream("a", Serdes::string(), Serdes::string()).to("out2", Serdes::string(), Serdes::string());
    /// let Err(TopologyError::Invalid(why)) = b.build() else { panic!("topic `a` is read twice") };
    /// assert!(why.contains("read it once and reuse the stream"));
    /// ```
    pub fn build(self) -> Result<Topology, TopologyError> {
        let graph = Rc::try_unwrap(self.graph).map(RefCell::into_inner).or_else(|rc| {
            // Streams still hold the graph; take it from under them.
            let mut g = rc.borrow_mut();
            Ok::<Graph, TopologyError>(Graph {
                nodes: std::mem::take(&mut g.nodes),
                stores: std::mem::take(&mut g.stores),
                globals: std::mem::take(&mut g.globals),
                errors: std::mem::take(&mut g.errors),
                counter: g.counter,
            })
        })?;
        Topology::from_graph(graph)
    }
}

/// A stream of keyed records (Kafka Streams' `KStream`), made by
/// [`TopologyBuilder::stream`] or by an operator on another stream.
///
/// Operators take `&self` and return a new stream, so one stream can feed
/// several operators (each gets every record). Closures take keys and
/// values by value where they make new ones (`map`, `map_values`) and by
/// reference where they only look (`filter`, `select_key`); the `try_*`
/// variants return a `Result` whose error sends the record to the
/// `errors.processing` policy. Operators that change the key mark the
/// stream, and grouping it afterwards goes through a repartition topic.
///
/// The examples of the operators run a few records through
/// [`TopologyTestDriver`](crate::testing::TopologyTestDriver), with its
/// setup lines hidden:
///
/// ```
/// use rivulet::prelude::*;
/// use rivulet::testing::TopologyTestDriver;
///
/// let mut b = Topology::builder();
/// b.stream("words", Serdes::string(), Serdes::string())
///     .filter(|_, word| !word.is_empty())
///     .map_values(|word: String| word.len() as i64)
///     .to("lengths", Serdes::string(), Serdes::i64());
///
/// let mut driver = TopologyTestDriver::new(b.build()?)?;
/// let words = driver.input_topic("words", Serdes::string(), Serdes::string());
/// let lengths = driver.output_topic("lengths", Serdes::string(), Serdes::i64());
/// driver.pipe(&words, "k".to_string(), "hello".to_string(), 0)?;
/// driver.pipe(&words, "k".to_string(), "".to_string(), 0)?;
/// assert_eq!(driver.read_key_values(&lengths)?, vec![("k".to_string(), 5)]);
/// # Ok::<(), rivulet::Error>(())
/// ```
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

/// The builder of [`KStream::split`]'s named branches (Kafka Streams'
/// `BranchedKStream`): add branches with [`branch`](Self::branch), end with
/// [`default_branch`](Self::default_branch) or [`finish`](Self::finish),
/// then take each branch's stream from the [`Branches`].
///
/// ```
/// use rivulet::prelude::*;
/// use rivulet::topology::{Branches, Split};
/// let mut b = Topology::builder();
/// let split: Split<String, i64> = b.stream("scores", Serdes::string(), Serdes::i64()).split();
/// let branches: Branches<String, i64> = split.branch("negative", |_, v| *v < 0).default_branch("other");
/// branches.get("negative").to("negative-scores", Serdes::string(), Serdes::i64());
/// branches.get("other").to("scores-out", Serdes::string(), Serdes::i64());
/// # b.build()?;
/// # Ok::<(), rivulet::Error>(())
/// ```
pub struct Split<K, V> {
    stream: KStream<K, V>,
    #[allow(clippy::type_complexity)]
    branches: Vec<(String, Arc<dyn Fn(&K, &V) -> bool + Send + Sync>)>,
}

/// The streams of a split, by branch name; from [`Split::default_branch`]
/// or [`Split::finish`].
///
/// ```
/// use rivulet::prelude::*;
/// let mut b = Topology::builder();
/// let by_level = b
///     .stream("logs", Serdes::unit(), Serdes::string())
///     .split()
///     .branch("errors", |_, line| line.starts_with("ERROR"))
///     .branch("warnings", |_, line| line.starts_with("WARN"))
///     .finish();
/// for level in ["errors", "warnings"] {
///     by_level.get(level).to(&format!("logs-{level}"), Serdes::unit(), Serdes::string());
/// }
/// assert!(b.build()?.describe().contains("topic logs-warnings"));
/// # Ok::<(), rivulet::Error>(())
/// ```
pub struct Branches<K, V> {
    /// The split stream, for errors and for `get` of an unknown branch.
    source: KStream<K, V>,
    branches: Vec<(String, KStream<K, V>)>,
}

/// A stream grouped by key, ready to aggregate into a [`KTable`] (Kafka
/// Streams' `KGroupedStream`), or to cut into windows with
/// [`windowed_by`](Self::windowed_by). Made by [`KStream::group_by_key`] or
/// [`KStream::group_by`]. Each aggregation keeps its table in a store named
/// by the user, and if the key changed before grouping, first goes through
/// the repartition topic `<application_id>-<name>-repartition`.
///
/// ```
/// use rivulet::prelude::*;
/// use rivulet::topology::KGroupedStream;
/// let mut b = Topology::builder();
/// let by_user: KGroupedStream<String, i64> = b.stream("purchases", Serdes::string(), Serdes::i64()).group_by_key();
/// by_user.count("purchases-per-user");
/// by_user.reduce("spent-per-user", |total, amount| total + amount);
/// let described = b.build()?.describe();
/// assert!(described.contains("stores: purchases-per-user"));
/// assert!(!described.contains("repartition"));
/// # Ok::<(), rivulet::Error>(())
/// ```
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
///
/// ```
/// use rivulet::prelude::*;
/// // A table from a topic, and one from an aggregation; both have a store.
/// let mut b = Topology::builder();
/// let names: KTable<String, String> = b.table("names", "names", Serdes::string(), Serdes::string());
/// let clicks: KTable<String, i64> = b.stream("clicks", Serdes::string(), Serdes::string()).group_by_key().count("clicks");
/// names
///     .join(&clicks, |_, name, n| format!("{name}: {n} clicks"), Serdes::string())
///     .to_stream()
///     .to("clicks-by-name", Serdes::string(), Serdes::string());
/// assert!(b.build().is_ok());
/// ```
pub struct KTable<K, V> {
    pub(crate) stream: KStream<K, Change<V>>,
    pub(crate) key_serde: Arc<dyn Serde<K>>,
    pub(crate) value_serde: Arc<dyn Serde<V>>,
    /// The store holding the table's current values, when it has one (a
    /// source table, an aggregate, or after `materialize`): joins look
    /// keys up in it.
    pub(crate) store: Option<String>,
}
