//! Windowed aggregation: tumbling, hopping, sliding, session and count
//! windows on a grouped stream, with a grace period, two emit modes and
//! late-record handling.
//!
//! ```text
//! record --timestamp--> its windows --open?--> fold into each window's aggregate
//!                                   \--all closed--> late: counted, dropped or written to the late topic
//! watermark advances --> windows with end (+ gap) + grace <= watermark close:
//!                        emit_final emits each once, then every closed window is purged
//! commit --> emit_on_update emits each window changed since the last commit
//! ```
//!
//! A window store is one key-value store (changelogged like any other)
//! holding, by byte-key prefix:
//!
//! - `0x00 | key | ...` the windows' aggregates (the layout after the key
//!   depends on the kind: session end and start; sliding end; count);
//! - `0x01 | close_at | data key` an index by the watermark at which each
//!   window closes, so closing is a range scan;
//! - `0x02 | key | ts | offset` and `0x03 | ts | key | offset` the raw values
//!   sliding windows aggregate over, and their purge index;
//! - `0x04` the last watermark, restored when the task starts again so
//!   windows closed before a restart or a move are never reopened;
//! - `0x05 | start | key` the aggregates of tumbling and hopping windows:
//!   the segmented window store (`windows/segmented.rs`), which needs no
//!   close index and drops closed windows locally, without changelog
//!   records, its changelog being `compact,delete` with time retention.
//!
//! Timestamps are encoded big-endian with the sign bit flipped, so byte
//! order is time order.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::record::Record;
use crate::serde::{Encoded, Serde, SerdeError, Serdes};
use crate::topology::builder::{ArcSerde, Data, KGroupedStream, KStream, NoSerde, TopologyBuilder};
use crate::topology::ops::Emit;
use crate::topology::processor::{ProcessError, Processor, ProcessorContext};
use crate::topology::store::StoreSpec;
use crate::topology::time::duration_ms;
use crate::topology::TopologyError;

/// A key with the window its aggregate belongs to.
///
/// `start` and `end` are ms since the epoch. Tumbling and hopping windows
/// cover `[start, end)`; a sliding window covers `[start, end]` and ends at
/// the record that made it; a session runs from its first record's
/// timestamp (`start`) to its last's (`end`); a count window from its first
/// record's timestamp to its last's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Windowed<K> {
    /// The grouping key.
    pub key: K,
    /// Window start, ms.
    pub start: i64,
    /// Window end, ms.
    pub end: i64,
}

/// A window result in one JSON-friendly value:
/// `{"key":..,"window_start":..,"window_end":..,"value":..}`; see
/// [`KStream::with_window_in_value`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowResult<K, A> {
    /// The grouping key.
    pub key: K,
    /// Window start, ms.
    pub window_start: i64,
    /// Window end, ms.
    pub window_end: i64,
    /// The aggregate.
    pub value: A,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Fixed windows of `size`, one starting every `advance` (tumbling when
    /// equal), aligned to the epoch.
    Time { size: i64, advance: i64 },
    /// One window of `length` ending at each record.
    Sliding { length: i64 },
    /// Records of a key closer than `gap` to each other.
    Session { gap: i64 },
    /// Every `n` records of a key.
    Count { n: u64 },
}

/// How records are grouped into windows, and how long a window stays open
/// for records that arrive late (the grace period).
///
/// ```
/// use std::time::Duration;
/// use rivulet::topology::Windows;
/// let minute = Windows::tumbling(Duration::from_secs(60)).grace(Duration::from_secs(10));
/// let hopping = Windows::hopping(Duration::from_secs(60), Duration::from_secs(10));
/// let sliding = Windows::sliding(Duration::from_secs(60));
/// let sessions = Windows::session(Duration::from_secs(30 * 60));
/// let every_100 = Windows::count(100);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Windows {
    kind: Kind,
    grace: i64,
}

impl Windows {
    /// Back-to-back windows of `size`: `[0, size)`, `[size, 2 size)`, ...
    pub fn tumbling(size: Duration) -> Windows {
        let size = duration_ms(size).max(1);
        Windows { kind: Kind::Time { size, advance: size }, grace: 0 }
    }

    /// Windows of `size` starting every `advance` (Flink's sliding
    /// windows): a record belongs to `size / advance` of them.
    pub fn hopping(size: Duration, advance: Duration) -> Windows {
        let size = duration_ms(size).max(1);
        Windows { kind: Kind::Time { size, advance: duration_ms(advance).clamp(1, size) }, grace: 0 }
    }

    /// Kafka Streams' sliding windows: for each record at `t`, the window
    /// `[t - length, t]` over the records of its key.
    pub fn sliding(length: Duration) -> Windows {
        Windows { kind: Kind::Sliding { length: duration_ms(length) }, grace: 0 }
    }

    /// Sessions: a key's records with less than `gap` between neighbours
    /// (inclusive) form one session; a record that bridges two sessions
    /// merges them.
    pub fn session(gap: Duration) -> Windows {
        Windows { kind: Kind::Session { gap: duration_ms(gap) }, grace: 0 }
    }

    /// Every `n` records of a key. Count windows do not depend on time, so
    /// they never close late and ignore the grace period.
    pub fn count(n: u64) -> Windows {
        Windows { kind: Kind::Count { n: n.max(1) }, grace: 0 }
    }

    /// How long after its end a window still takes records (default 0).
    pub fn grace(mut self, grace: Duration) -> Windows {
        self.grace = duration_ms(grace);
        self
    }

    fn describe(&self) -> String {
        match self.kind {
            Kind::Time { size, advance } if size == advance => format!("tumbling {size} ms, grace {} ms", self.grace),
            Kind::Time { size, advance } => format!("hopping {size} ms every {advance} ms, grace {} ms", self.grace),
            Kind::Sliding { length } => format!("sliding {length} ms, grace {} ms", self.grace),
            Kind::Session { gap } => format!("session gap {gap} ms, grace {} ms", self.grace),
            Kind::Count { n } => format!("count {n}"),
        }
    }
}

/// When window results are emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmitMode {
    /// Each change, at most once per key and window per commit (the
    /// default).
    OnUpdate,
    /// Once per window, when the watermark passes its end plus grace
    /// (Flink's default trigger; Kafka Streams' `suppress(untilWindowCloses)`).
    Final,
}

/// A user aggregation for windows: an accumulator, how a value is added,
/// and (for session windows, whose sessions merge) how two accumulators
/// combine.
///
/// ```
/// use rivulet::topology::Aggregator;
/// /// Distinct pages per window.
/// struct Pages;
/// impl Aggregator<String> for Pages {
///     type Acc = std::collections::BTreeSet<String>;
///     fn init(&self) -> Self::Acc { Default::default() }
///     fn add(&self, mut acc: Self::Acc, page: &String) -> Self::Acc { acc.insert(page.clone()); acc }
///     fn merge(&self, mut a: Self::Acc, b: Self::Acc) -> Self::Acc { a.extend(b); a }
/// }
/// ```
pub trait Aggregator<V>: Send + Sync + 'static {
    /// The accumulator, stored as JSON in the window store.
    type Acc: Clone + Serialize + DeserializeOwned + 'static;
    /// The accumulator of an empty window.
    fn init(&self) -> Self::Acc;
    /// Adds one value.
    fn add(&self, acc: Self::Acc, value: &V) -> Self::Acc;
    /// Combines two accumulators (when sessions merge).
    fn merge(&self, a: Self::Acc, b: Self::Acc) -> Self::Acc;
}

type AddFn<V, S> = Arc<dyn Fn(S, &V) -> S + Send + Sync>;
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// An aggregation with state `S` and result `O`, type-erased into closures.
struct Agg<V, S, O> {
    init: Arc<dyn Fn() -> S + Send + Sync>,
    add: AddFn<V, S>,
    merge: Arc<dyn Fn(S, S) -> S + Send + Sync>,
    result: Arc<dyn Fn(&S) -> O + Send + Sync>,
    codec: Arc<dyn Serde<S>>,
}

impl<V, S, O> Clone for Agg<V, S, O> {
    fn clone(&self) -> Self {
        Agg {
            init: self.init.clone(),
            add: self.add.clone(),
            merge: self.merge.clone(),
            result: self.result.clone(),
            codec: self.codec.clone(),
        }
    }
}

/// A window's count and first/last timestamps, kept with the aggregate of
/// count windows.
const COUNT_HEADER: usize = 24;

/// A grouped stream cut into windows, ready to aggregate.
pub struct WindowedStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: Windows,
    emit: EmitMode,
    late_topic: Option<String>,
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    /// Cuts each key's records into `windows` for aggregation.
    pub fn windowed_by(&self, windows: Windows) -> WindowedStream<K, V> {
        WindowedStream {
            grouped: KGroupedStream { stream: self.stream.clone() },
            windows,
            emit: EmitMode::OnUpdate,
            late_topic: None,
        }
    }
}

impl<K: Data, V: Data> WindowedStream<K, V> {
    /// Emits each window once, when it closes.
    pub fn emit_final(mut self) -> Self {
        self.emit = EmitMode::Final;
        self
    }

    /// Emits each change, at most once per key and window per commit (the
    /// default).
    pub fn emit_on_update(mut self) -> Self {
        self.emit = EmitMode::OnUpdate;
        self
    }

    /// Writes records that arrive after all their windows closed to
    /// `topic`, unchanged (key, value and timestamp), instead of dropping
    /// them. Either way they are counted in `rivulet_late_records_total`.
    /// Needs the stream's key and value serdes.
    pub fn late_records_to(mut self, topic: &str) -> Self {
        self.late_topic = Some(topic.to_string());
        self
    }

    /// Records per window.
    pub fn count(self, name: &str) -> KStream<Windowed<K>, i64> {
        let agg = Agg {
            init: Arc::new(|| 0i64),
            add: Arc::new(|n: i64, _: &V| n + 1),
            merge: Arc::new(|a: i64, b: i64| a + b),
            result: Arc::new(|n: &i64| *n),
            codec: Arc::new(Serdes::i64()),
        };
        self.build(name, agg, Arc::new(Serdes::i64()))
    }

    /// The sum of `f(value)` per window.
    pub fn sum(self, name: &str, f: impl Fn(&V) -> f64 + Send + Sync + 'static) -> KStream<Windowed<K>, f64> {
        let agg = Agg {
            init: Arc::new(|| 0.0f64),
            add: Arc::new(move |s: f64, v: &V| s + f(v)),
            merge: Arc::new(|a: f64, b: f64| a + b),
            result: Arc::new(|s: &f64| *s),
            codec: Arc::new(Serdes::json::<f64>()),
        };
        self.build(name, agg, Arc::new(Serdes::json::<f64>()))
    }

    /// The smallest `f(value)` per window.
    pub fn min(self, name: &str, f: impl Fn(&V) -> f64 + Send + Sync + 'static) -> KStream<Windowed<K>, f64> {
        self.extreme(name, f, f64::min)
    }

    /// The largest `f(value)` per window.
    pub fn max(self, name: &str, f: impl Fn(&V) -> f64 + Send + Sync + 'static) -> KStream<Windowed<K>, f64> {
        self.extreme(name, f, f64::max)
    }

    fn extreme(
        self,
        name: &str,
        f: impl Fn(&V) -> f64 + Send + Sync + 'static,
        pick: fn(f64, f64) -> f64,
    ) -> KStream<Windowed<K>, f64> {
        let both = move |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(pick(a, b)),
            (a, b) => a.or(b),
        };
        let agg = Agg {
            init: Arc::new(|| None::<f64>),
            add: Arc::new(move |s: Option<f64>, v: &V| both(s, Some(f(v)))),
            merge: Arc::new(both),
            result: Arc::new(|s: &Option<f64>| s.unwrap_or(f64::NAN)),
            codec: Arc::new(Serdes::json::<Option<f64>>()),
        };
        self.build(name, agg, Arc::new(Serdes::json::<f64>()))
    }

    /// The mean of `f(value)` per window.
    pub fn average(self, name: &str, f: impl Fn(&V) -> f64 + Send + Sync + 'static) -> KStream<Windowed<K>, f64> {
        let agg = Agg {
            init: Arc::new(|| (0.0f64, 0u64)),
            add: Arc::new(move |(s, n): (f64, u64), v: &V| (s + f(v), n + 1)),
            merge: Arc::new(|a: (f64, u64), b: (f64, u64)| (a.0 + b.0, a.1 + b.1)),
            result: Arc::new(|(s, n): &(f64, u64)| if *n == 0 { f64::NAN } else { s / *n as f64 }),
            codec: Arc::new(Serdes::json::<(f64, u64)>()),
        };
        self.build(name, agg, Arc::new(Serdes::json::<f64>()))
    }

    /// Combines each window's values with `reduce(old, new)`. Needs the
    /// stream's value serde (the running value is stored with it).
    pub fn reduce(self, name: &str, reduce: impl Fn(V, V) -> V + Send + Sync + 'static) -> KStream<Windowed<K>, V> {
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
        // Windows are created by their first value, so the result is never
        // `None`; the flat map below unwraps it without a panic path.
        let out: KStream<Windowed<K>, Option<V>> = self.build(name, agg, Arc::new(NoSerde));
        let s = out.flat(
            "UNWRAP",
            false,
            Arc::new(|r: Record<Windowed<K>, Option<V>>| {
                let Record { key, value, timestamp, headers } = r;
                Ok(match value {
                    Some(value) => Emit::One(Record { key, value, timestamp, headers }),
                    None => Emit::None,
                })
            }),
        );
        KStream { key_serde: out.key_serde.clone(), value_serde: Some(value_serde), ..s }
    }

    /// Aggregates each window with a user [`Aggregator`].
    pub fn aggregate<G: Aggregator<V>>(self, name: &str, aggregator: G) -> KStream<Windowed<K>, G::Acc>
    where
        G::Acc: Send + Sync,
    {
        let g = Arc::new(aggregator);
        let (g1, g2, g3) = (g.clone(), g.clone(), g.clone());
        let agg = Agg {
            init: Arc::new(move || g1.init()),
            add: Arc::new(move |s: G::Acc, v: &V| g2.add(s, v)),
            merge: Arc::new(move |a: G::Acc, b: G::Acc| g3.merge(a, b)),
            result: Arc::new(|s: &G::Acc| s.clone()),
            codec: Arc::new(Serdes::json::<G::Acc>()),
        };
        self.build(name, agg, Arc::new(Serdes::json::<G::Acc>()))
    }

    fn build<S: Data, O: Data>(
        self,
        name: &str,
        agg: Agg<V, S, O>,
        out_serde: Arc<dyn Serde<O>>,
    ) -> KStream<Windowed<K>, O> {
        let WindowedStream { grouped, windows, emit, late_topic } = self;
        let Some((input, key_serde)) = grouped.input(name) else {
            return grouped.stream.derive(grouped.stream.node_id(), false);
        };
        let value_serde = input.value_serde.clone();
        if matches!(windows.kind, Kind::Sliding { .. }) && value_serde.is_none() {
            input.graph.borrow_mut().errors.push(TopologyError::Invalid(format!(
                "sliding-window aggregation `{name}` keeps each window's values, so it needs the value serde; \
                 call .with_serdes(..) before grouping"
            )));
        }
        let mut builder = TopologyBuilder { graph: input.graph.clone() };
        builder.add_store(segmented::store_spec(name, &windows));
        let store = name.to_string();
        let op = format!("WINDOW({})", windows.describe());
        let (ks, vs) = (key_serde.clone(), value_serde.clone());
        let node: KStream<(), WinOut<K, V, O>> =
            input.add_processor(&op, vec![store.clone()], move |node| WindowProcessor {
                node: node.to_string(),
                store: store.clone(),
                windows,
                emit,
                agg: agg.clone(),
                key_serde: ks.clone(),
                value_serde: vs.clone(),
                dirty: BTreeSet::new(),
                closes: BTreeMap::new(),
                persisted_watermark: i64::MIN,
                watermark: i64::MIN,
                store_index: usize::MAX,
                raw_purged: i64::MIN,
                closed_below: i64::MIN,
                _k: std::marker::PhantomData,
            });
        if let Some(topic) = late_topic {
            let late = node.flat(
                "LATE",
                false,
                Arc::new(|r: Record<(), WinOut<K, V, O>>| {
                    Ok(match r.value {
                        WinOut::Late(key, value) => {
                            Emit::One(Record { key, value, timestamp: r.timestamp, headers: r.headers })
                        }
                        WinOut::Result(..) => Emit::None,
                    })
                }),
            );
            match value_serde {
                Some(vs) => late.to(&topic, ArcSerde(key_serde.clone()), ArcSerde(vs)),
                None => node.graph.borrow_mut().errors.push(TopologyError::Invalid(format!(
                    "late records of `{name}` go to topic {topic} unchanged, which needs the value serde; \
                     call .with_serdes(..) before grouping"
                ))),
            }
        }
        let results = node.flat(
            "WINDOW_RESULTS",
            false,
            Arc::new(|r: Record<(), WinOut<K, V, O>>| {
                Ok(match r.value {
                    WinOut::Result(key, value) => {
                        Emit::One(Record { key, value, timestamp: r.timestamp, headers: r.headers })
                    }
                    WinOut::Late(..) => Emit::None,
                })
            }),
        );
        KStream {
            key_serde: Some(Arc::new(Serdes::windowed(ArcSerde(key_serde)))),
            value_serde: Some(out_serde),
            ..results
        }
    }
}

impl<K: Data, A: Data> KStream<Windowed<K>, A> {
    /// Moves the window into the value, as
    /// `{"key":..,"window_start":..,"window_end":..,"value":..}` with
    /// [`Serdes::json`]; the key stays the grouping key.
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

/// What the window node emits: a window result, or a late record for the
/// late topic.
#[derive(Clone)]
pub(crate) enum WinOut<K, V, O> {
    Result(Windowed<K>, O),
    Late(K, V),
}

struct WindowProcessor<K, V, S, O> {
    node: String,
    store: String,
    windows: Windows,
    emit: EmitMode,
    agg: Agg<V, S, O>,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Option<Arc<dyn Serde<V>>>,
    /// Windows changed since the last commit (emit_on_update).
    dirty: BTreeSet<Vec<u8>>,
    /// Close time -> windows closing then (the index, in memory, rebuilt
    /// from the store when the task starts).
    closes: BTreeMap<i64, usize>,
    persisted_watermark: i64,
    /// The latest watermark seen, persisted at the next commit.
    watermark: i64,
    /// The store's index in the task, resolved in `init` (get and put
    /// run per record and skip the typed view's lookups).
    store_index: usize,
    /// Raw values before this time are gone (sliding windows).
    raw_purged: i64,
    /// Tumbling and hopping windows starting before this are closed and
    /// dropped (see `segmented`).
    closed_below: i64,
    _k: std::marker::PhantomData<fn(K)>,
}

const DATA: u8 = 0;
const INDEX: u8 = 1;
const RAW: u8 = 2;
const RAW_INDEX: u8 = 3;
const WATERMARK: &[u8] = &[4];

fn enc(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

fn dec(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    (u64::from_be_bytes(a) ^ (1 << 63)) as i64
}

fn key_of(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    k.push(prefix);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

type Ctx<'a, K, V, O> = ProcessorContext<'a, (), WinOut<K, V, O>>;

impl<K: Data, V: Data, S: Data, O: Data> WindowProcessor<K, V, S, O> {
    fn serde_error(&self, what: &str, e: SerdeError) -> ProcessError {
        ProcessError::Serde { what: format!("{what} in window store `{}`", self.store), source: e }
    }

    fn corrupt(&self, what: &str) -> ProcessError {
        ProcessError::Topology {
            node: self.node.clone(),
            reason: format!(
                "window store `{}` is damaged: {what}; stop the instance and delete this task's directory of the \
                 store under state_dir, and it is restored from its changelog",
                self.store
            ),
        }
    }

    fn key_bytes(&self, key: &K) -> Result<Vec<u8>, ProcessError> {
        let mut out = Vec::new();
        match self.key_serde.serialize(key, &mut out) {
            Ok(Encoded::Bytes) => Ok(out),
            Ok(Encoded::Null) => Err(ProcessError::Rejected {
                node: self.node.clone(),
                source: "a windowed aggregation needs a key; this record's key is null".into(),
            }),
            Err(e) => Err(self.serde_error("key", e)),
        }
    }

    fn encode_state(&self, s: &S) -> Result<Vec<u8>, ProcessError> {
        let mut out = Vec::new();
        self.agg.codec.serialize(s, &mut out).map_err(|e| self.serde_error("aggregate", e))?;
        Ok(out)
    }

    fn decode_state(&self, b: &[u8]) -> Result<S, ProcessError> {
        self.agg.codec.deserialize(Some(b)).map_err(|e| self.serde_error("aggregate", e))
    }

    fn get(&self, ctx: &mut Ctx<'_, K, V, O>, k: &[u8]) -> Result<Option<Vec<u8>>, ProcessError> {
        ctx.task.raw_get(self.store_index, k)
    }

    fn put(&self, ctx: &mut Ctx<'_, K, V, O>, k: Vec<u8>, v: Vec<u8>) -> Result<(), ProcessError> {
        ctx.task.raw_put(self.store_index, k, v)
    }

    fn delete(&self, ctx: &mut Ctx<'_, K, V, O>, k: Vec<u8>) -> Result<(), ProcessError> {
        ctx.task.raw_delete(self.store_index, k)
    }

    fn range(&self, ctx: &mut Ctx<'_, K, V, O>, from: Vec<u8>, to: Vec<u8>) -> Result<Entries, ProcessError> {
        ctx.store::<Vec<u8>, Vec<u8>>(&self.store)?.range(Some(&from), Some(&to))
    }

    /// The watermark at which a window with this stored end closes.
    fn close_at(&self, end: i64) -> i64 {
        let g = self.windows.grace;
        match self.windows.kind {
            Kind::Time { .. } => end.saturating_add(g),
            Kind::Sliding { .. } => end.saturating_add(1).saturating_add(g),
            Kind::Session { gap } => end.saturating_add(gap).saturating_add(1).saturating_add(g),
            Kind::Count { .. } => i64::MAX,
        }
    }

    /// Writes a window's aggregate and (when new) its close-index entry.
    fn put_window(
        &mut self,
        ctx: &mut Ctx<'_, K, V, O>,
        data_key: Vec<u8>,
        end: i64,
        state: &S,
        new: bool,
    ) -> Result<(), ProcessError> {
        let bytes = self.encode_state(state)?;
        if new && !matches!(self.windows.kind, Kind::Count { .. }) {
            let close = self.close_at(end);
            self.put(ctx, key_of(INDEX, &[&enc(close), &data_key]), Vec::new())?;
            *self.closes.entry(close).or_insert(0) += 1;
        }
        if self.emit == EmitMode::OnUpdate {
            self.dirty.insert(data_key.clone());
        }
        self.put(ctx, data_key, bytes)
    }

    fn remove_window(&mut self, ctx: &mut Ctx<'_, K, V, O>, data_key: Vec<u8>, end: i64) -> Result<(), ProcessError> {
        let close = self.close_at(end);
        self.delete(ctx, key_of(INDEX, &[&enc(close), &data_key]))?;
        self.forget_close(close);
        self.dirty.remove(&data_key);
        self.delete(ctx, data_key)
    }

    fn forget_close(&mut self, close: i64) {
        if let Some(n) = self.closes.get_mut(&close) {
            *n -= 1;
            if *n == 0 {
                self.closes.remove(&close);
            }
        }
    }

    /// The key and window of a data key (count windows read their bounds
    /// from the stored value).
    fn window_of(&self, data_key: &[u8], value: &[u8]) -> Result<(K, i64, i64), ProcessError> {
        let n = data_key.len();
        let (kb, start, end) = match self.windows.kind {
            Kind::Time { size, .. } if n >= 9 => {
                let start = dec(&data_key[n - 8..]);
                (&data_key[1..n - 8], start, start.saturating_add(size))
            }
            Kind::Sliding { length } if n >= 9 => {
                let end = dec(&data_key[n - 8..]);
                (&data_key[1..n - 8], end.saturating_sub(length), end)
            }
            Kind::Session { .. } if n >= 17 => {
                (&data_key[1..n - 16], dec(&data_key[n - 8..]), dec(&data_key[n - 16..]))
            }
            Kind::Count { .. } if value.len() >= COUNT_HEADER => (&data_key[1..], dec(&value[8..]), dec(&value[16..])),
            _ => return Err(self.corrupt("a window key is too short")),
        };
        let key = self.key_serde.deserialize(Some(kb)).map_err(|e| self.serde_error("key", e))?;
        Ok((key, start, end))
    }

    fn emit_window(&self, ctx: &mut Ctx<'_, K, V, O>, data_key: &[u8], value: &[u8]) -> Result<(), ProcessError> {
        if data_key.first() == Some(&segmented::TIME_DATA) {
            return self.emit_time_window(ctx, data_key, value);
        }
        let (key, start, end) = self.window_of(data_key, value)?;
        let state_bytes = match self.windows.kind {
            Kind::Count { .. } => &value[COUNT_HEADER..],
            _ => value,
        };
        let state = self.decode_state(state_bytes)?;
        let timestamp = match self.windows.kind {
            Kind::Time { .. } => end - 1,
            _ => end,
        };
        let out = WinOut::Result(Windowed { key, start, end }, (self.agg.result)(&state));
        ctx.forward(Record::new((), out, timestamp))
    }

    fn late(&self, ctx: &mut Ctx<'_, K, V, O>, r: Record<K, V>) -> Result<(), ProcessError> {
        ctx.task.late_records += 1;
        let Record { key, value, timestamp, headers } = r;
        ctx.forward(Record { key: (), value: WinOut::Late(key, value), timestamp, headers })
    }

    fn process_time(
        &mut self,
        r: Record<K, V>,
        kb: Vec<u8>,
        size: i64,
        advance: i64,
        ctx: &mut Ctx<'_, K, V, O>,
    ) -> Result<(), ProcessError> {
        let wm = ctx.watermark();
        let ts = r.timestamp;
        // Window starts s with s <= ts < s + size, aligned to `advance`.
        let last = ts.div_euclid(advance) * advance;
        let mut start = last;
        let mut added = false;
        while start > ts.saturating_sub(size) {
            let end = start.saturating_add(size);
            if self.close_at(end) > wm {
                let data_key = segmented::time_key(&kb, start);
                let state = match self.get(ctx, &data_key)? {
                    Some(b) => self.decode_state(&b)?,
                    None => (self.agg.init)(),
                };
                let state = (self.agg.add)(state, &r.value);
                self.put_time_window(ctx, data_key, &state)?;
                added = true;
            }
            start -= advance;
        }
        if !added {
            return self.late(ctx, r);
        }
        Ok(())
    }

    fn process_session(
        &mut self,
        r: Record<K, V>,
        kb: Vec<u8>,
        gap: i64,
        ctx: &mut Ctx<'_, K, V, O>,
    ) -> Result<(), ProcessError> {
        let ts = r.timestamp;
        if self.close_at(ts) <= ctx.watermark() {
            return self.late(ctx, r);
        }
        // Sessions of this key ending at or after ts - gap; those starting
        // at or before ts + gap overlap the record.
        let from = key_of(DATA, &[&kb, &enc(ts.saturating_sub(gap))]);
        let to = key_of(DATA, &[&kb, &enc(i64::MAX)]);
        let mut start = ts;
        let mut end = ts;
        let mut state = (self.agg.init)();
        let mut merged = Vec::new();
        for (k, v) in self.range(ctx, from, to)? {
            if k.len() != kb.len() + 17 {
                continue; // another key that extends this one
            }
            let (s_end, s_start) = (dec(&k[k.len() - 16..]), dec(&k[k.len() - 8..]));
            if s_start > ts.saturating_add(gap) {
                continue;
            }
            start = start.min(s_start);
            end = end.max(s_end);
            state = (self.agg.merge)(state, self.decode_state(&v)?);
            merged.push((k, s_end));
        }
        state = (self.agg.add)(state, &r.value);
        let data_key = key_of(DATA, &[&kb, &enc(end), &enc(start)]);
        let mut unchanged = false;
        for (k, s_end) in merged {
            if k == data_key {
                unchanged = true;
                continue;
            }
            self.remove_window(ctx, k, s_end)?;
        }
        self.put_window(ctx, data_key, end, &state, !unchanged)
    }

    fn process_sliding(
        &mut self,
        r: Record<K, V>,
        kb: Vec<u8>,
        length: i64,
        ctx: &mut Ctx<'_, K, V, O>,
    ) -> Result<(), ProcessError> {
        let ts = r.timestamp;
        if self.close_at(ts) <= ctx.watermark() {
            return self.late(ctx, r);
        }
        let Some(value_serde) = self.value_serde.clone() else {
            return Err(self.corrupt("sliding windows need the value serde"));
        };
        let offset = ctx.source().map(|s| s.offset).unwrap_or(0);
        let mut vb = Vec::new();
        value_serde.serialize(&r.value, &mut vb).map_err(|e| self.serde_error("value", e))?;
        self.put(ctx, key_of(RAW, &[&kb, &enc(ts), &offset.to_be_bytes()]), vb)?;
        self.put(ctx, key_of(RAW_INDEX, &[&enc(ts), &kb, &offset.to_be_bytes()]), kb.clone())?;
        // Windows of this key ending after ts, within length, take the value.
        let from = key_of(DATA, &[&kb, &enc(ts.saturating_add(1))]);
        let to = key_of(DATA, &[&kb, &enc(ts.saturating_add(length).saturating_add(1))]);
        for (k, v) in self.range(ctx, from, to)? {
            if k.len() != kb.len() + 9 {
                continue;
            }
            let end = dec(&k[k.len() - 8..]);
            let state = (self.agg.add)(self.decode_state(&v)?, &r.value);
            self.put_window(ctx, k, end, &state, false)?;
        }
        // The window ending at this record.
        let data_key = key_of(DATA, &[&kb, &enc(ts)]);
        if let Some(b) = self.get(ctx, &data_key)? {
            let state = (self.agg.add)(self.decode_state(&b)?, &r.value);
            return self.put_window(ctx, data_key, ts, &state, false);
        }
        let from = key_of(RAW, &[&kb, &enc(ts.saturating_sub(length))]);
        let to = key_of(RAW, &[&kb, &enc(ts.saturating_add(1))]);
        let mut state = (self.agg.init)();
        for (k, v) in self.range(ctx, from, to)? {
            if k.len() != kb.len() + 17 {
                continue;
            }
            let value = value_serde.deserialize(Some(&v)).map_err(|e| self.serde_error("value", e))?;
            state = (self.agg.add)(state, &value);
        }
        self.put_window(ctx, data_key, ts, &state, true)
    }

    fn process_count(
        &mut self,
        r: Record<K, V>,
        kb: Vec<u8>,
        n: u64,
        ctx: &mut Ctx<'_, K, V, O>,
    ) -> Result<(), ProcessError> {
        let ts = r.timestamp;
        let data_key = key_of(DATA, &[&kb]);
        let (count, first, state) = match self.get(ctx, &data_key)? {
            Some(b) if b.len() >= COUNT_HEADER => {
                let mut c = [0u8; 8];
                c.copy_from_slice(&b[..8]);
                (u64::from_be_bytes(c), dec(&b[8..]), self.decode_state(&b[COUNT_HEADER..])?)
            }
            Some(_) => return Err(self.corrupt("a count window value is too short")),
            None => (0, ts, (self.agg.init)()),
        };
        let state = (self.agg.add)(state, &r.value);
        let count = count + 1;
        let mut value = Vec::with_capacity(COUNT_HEADER + 16);
        value.extend_from_slice(&count.to_be_bytes());
        value.extend_from_slice(&enc(first));
        value.extend_from_slice(&enc(ts));
        value.extend_from_slice(&self.encode_state(&state)?);
        if count >= n {
            // Complete: emit it (in either mode) and start the next one.
            self.dirty.remove(&data_key);
            self.emit_window(ctx, &data_key, &value)?;
            return self.delete(ctx, data_key);
        }
        if self.emit == EmitMode::OnUpdate {
            self.dirty.insert(data_key.clone());
        }
        self.put(ctx, data_key, value)
    }
}

impl<K: Data, V: Data, S: Data, O: Data> Processor<K, V, (), WinOut<K, V, O>> for WindowProcessor<K, V, S, O> {
    fn init(&mut self, ctx: &mut Ctx<'_, K, V, O>) -> Result<(), ProcessError> {
        // The typed view checks that the node declared the store and that
        // it holds bytes; per record the operator then goes by index.
        ctx.store::<Vec<u8>, Vec<u8>>(&self.store)?;
        self.store_index = ctx.task.store_index(&self.store).ok_or_else(|| ProcessError::Topology {
            node: self.node.clone(),
            reason: format!("store `{}` is not part of this task", self.store),
        })?;
        self.persisted_watermark = i64::MIN;
        self.watermark = i64::MIN;
        if let Some(b) = self.get(ctx, WATERMARK)? {
            if b.len() == 8 {
                let wm = dec(&b);
                self.persisted_watermark = wm;
                ctx.task.time.restore(wm);
            }
        }
        self.dirty.clear();
        self.closes.clear();
        self.raw_purged = i64::MIN;
        self.init_time_windows(ctx)?;
        if !matches!(self.windows.kind, Kind::Count { .. }) {
            for (k, _) in self.range(ctx, vec![INDEX], vec![INDEX + 1])? {
                if k.len() < 9 {
                    return Err(self.corrupt("an index key is too short"));
                }
                *self.closes.entry(dec(&k[1..9])).or_insert(0) += 1;
            }
        }
        Ok(())
    }

    fn process(&mut self, r: Record<K, V>, ctx: &mut Ctx<'_, K, V, O>) -> Result<(), ProcessError> {
        let kb = self.key_bytes(&r.key)?;
        match self.windows.kind {
            Kind::Time { size, advance } => self.process_time(r, kb, size, advance, ctx),
            Kind::Session { gap } => self.process_session(r, kb, gap, ctx),
            Kind::Sliding { length } => self.process_sliding(r, kb, length, ctx),
            Kind::Count { n } => self.process_count(r, kb, n, ctx),
        }
    }

    fn on_watermark(&mut self, wm: i64, ctx: &mut Ctx<'_, K, V, O>) -> Result<(), ProcessError> {
        if matches!(self.windows.kind, Kind::Count { .. }) {
            return Ok(());
        }
        // Persisted at the commit, with the state it belongs to: the
        // watermark moves with nearly every record.
        self.watermark = self.watermark.max(wm);
        if let Kind::Time { size, .. } = self.windows.kind {
            return self.close_time_windows(wm, size, ctx);
        }
        if self.closes.first_key_value().is_some_and(|(&c, _)| c <= wm) {
            self.close_windows(wm, ctx)?;
        }
        if let Kind::Sliding { length } = self.windows.kind {
            self.purge_raw(wm, length, ctx)?;
        }
        Ok(())
    }

    fn on_commit(&mut self, ctx: &mut Ctx<'_, K, V, O>) -> Result<(), ProcessError> {
        self.rewrite_watermark_with_windows(ctx)?;
        if self.watermark > self.persisted_watermark && !matches!(self.windows.kind, Kind::Count { .. }) {
            self.put(ctx, WATERMARK.to_vec(), enc(self.watermark).to_vec())?;
            self.persisted_watermark = self.watermark;
        }
        for data_key in std::mem::take(&mut self.dirty) {
            if let Some(value) = self.get(ctx, &data_key)? {
                self.emit_window(ctx, &data_key, &value)?;
            }
        }
        Ok(())
    }
}

impl<K: Data, V: Data, S: Data, O: Data> WindowProcessor<K, V, S, O> {
    /// Closes every window whose close time is at or before `wm`: emits it
    /// (`emit_final`, or a change not yet emitted) and purges it.
    fn close_windows(&mut self, wm: i64, ctx: &mut Ctx<'_, K, V, O>) -> Result<(), ProcessError> {
        let due = self.range(ctx, vec![INDEX], key_of(INDEX, &[&enc(wm.saturating_add(1))]))?;
        for (index_key, _) in due {
            if index_key.len() < 9 {
                return Err(self.corrupt("an index key is too short"));
            }
            let close = dec(&index_key[1..9]);
            let data_key = index_key[9..].to_vec();
            self.delete(ctx, index_key)?;
            self.forget_close(close);
            let Some(value) = self.get(ctx, &data_key)? else { continue };
            if self.emit == EmitMode::Final || self.dirty.contains(&data_key) {
                self.emit_window(ctx, &data_key, &value)?;
            }
            self.dirty.remove(&data_key);
            self.delete(ctx, data_key)?;
        }
        Ok(())
    }

    /// Drops the raw values of sliding windows that no open window can
    /// still include.
    fn purge_raw(&mut self, wm: i64, length: i64, ctx: &mut Ctx<'_, K, V, O>) -> Result<(), ProcessError> {
        let bound = wm.saturating_sub(length).saturating_sub(self.windows.grace);
        if bound <= self.raw_purged {
            return Ok(());
        }
        self.raw_purged = bound;
        {
            let old = self.range(ctx, vec![RAW_INDEX], key_of(RAW_INDEX, &[&enc(bound)]))?;
            for (index_key, kb) in old {
                let n = index_key.len();
                if n < 17 {
                    return Err(self.corrupt("a raw-value index key is too short"));
                }
                let ts = &index_key[1..9];
                let offset = &index_key[n - 8..];
                self.delete(ctx, key_of(RAW, &[&kb, ts, offset]))?;
                self.delete(ctx, index_key)?;
            }
        }
        Ok(())
    }
}

mod segmented;

#[cfg(test)]
#[path = "window_tests.rs"]
mod tests;
