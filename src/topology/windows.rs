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
//!            (and a tombstone for each emitted session merged away since)
//! ```
//!
//! A record is late only when no open window takes it, judged per kind as
//! Flink and Kafka Streams judge it (the close time itself is rivulet's:
//! the watermark, not Kafka Streams' stream time):
//!
//! - tumbling and hopping: each window of the record is judged on its own;
//!   late when all are closed;
//! - sliding (Kafka Streams' definition): late when the last window the
//!   record can fall in, `[t, t + size]`, is closed; otherwise it joins
//!   every open window holding it, and a window closed already is not
//!   created;
//! - session: the record first merges with the open sessions of its key
//!   within the gap, then the merged session is judged, so a record inside
//!   an open session joins it however old it is; closed sessions are
//!   purged and merge with nothing;
//! - count: never late.
//!
//! A window store is one key-value store (changelogged like any other)
//! holding, by byte-key prefix:
//!
//! - `0x00 | key | ...` the windows' aggregates (the layout after the key
//!   depends on the kind: session end and start; sliding end, which with
//!   the size fixes the start; count);
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
use crate::topology::builder::{ArcSerde, Data, KGroupedStream, KStream, TopologyBuilder};
use crate::topology::ops::Emit;
use crate::topology::processor::{ProcessError, Processor, ProcessorContext};
use crate::topology::store::StoreSpec;
use crate::topology::time::duration_ms;
use crate::topology::TopologyError;

/// A key with the window its aggregate belongs to.
///
/// `start` and `end` are ms since the epoch. Tumbling and hopping windows
/// cover `[start, end)`; a sliding window covers `[start, end]` (`end -
/// start` is its size); a session runs from its first record's
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
    /// Kafka Streams' sliding windows of `length`: `[t - length, t]` for
    /// each record and `[t + 1, t + 1 + length]` for each record with a
    /// later one in it.
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

    /// Kafka Streams' sliding windows (`SlidingWindows.ofTimeDifference..`):
    /// windows of `length` (both ends inclusive) over a key's records, one
    /// for every distinct set of records within `length` of each other.
    /// For each record at `t` there is the window `[t - length, t]` that it
    /// ends and, if a later record falls in it, the window
    /// `[t + 1, t + 1 + length]` that begins just after it. With a length of
    /// 5 s, records at 8.0, 9.2 and 12.4 s give `[3.0, 8.0]` (one record),
    /// `[4.2, 9.2]` (two), `[7.4, 12.4]` (three), `[8.001, 13.001]` (two)
    /// and `[9.201, 14.201]` (one), as in Kafka Streams. Unlike Kafka
    /// Streams, a window may start before the epoch (Kafka Streams folds a
    /// record earlier than `length` into one window `[0, length]`, as its
    /// stores cannot hold negative starts).
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
type ResultFn<S, O> = Arc<dyn Fn(&S) -> Option<O> + Send + Sync>;
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// An aggregation with state `S` and result `O`, type-erased into closures.
struct Agg<V, S, O> {
    init: Arc<dyn Fn() -> S + Send + Sync>,
    add: AddFn<V, S>,
    merge: Arc<dyn Fn(S, S) -> S + Send + Sync>,
    /// The result of a window's state; `None` emits nothing.
    result: ResultFn<S, O>,
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

/// A grouped stream cut into windows, ready to aggregate. `R` says what
/// the result stream carries: [`Updates`] (the default) or, after
/// [`with_tombstones`](WindowedStream::with_tombstones), [`WithTombstones`].
pub struct WindowedStream<K, V, R: WindowOutput = Updates> {
    grouped: KGroupedStream<K, V>,
    windows: Windows,
    emit: EmitMode,
    late_topic: Option<String>,
    _out: std::marker::PhantomData<R>,
}

mod sealed {
    pub trait Sealed {}
}

/// What the result stream of a windowed aggregation carries: see
/// [`Updates`] and [`WithTombstones`].
pub trait WindowOutput: sealed::Sealed + 'static {
    /// The result stream's value for an aggregate `O`.
    type Value<O: Data>: Data;
    /// The stream value for a result; `None` in is a tombstone, `None` out
    /// is not forwarded.
    #[doc(hidden)]
    fn wrap<O: Data>(result: Option<O>) -> Option<Self::Value<O>>;
    /// The result stream's value serde.
    #[doc(hidden)]
    fn serde<O: Data>(serde: Arc<dyn Serde<O>>) -> Arc<dyn Serde<Self::Value<O>>>;
}

/// Results as plain aggregates (`KStream<Windowed<K>, O>`): tombstones for
/// merged sessions are left out, as [`KTable::to_stream`](crate::topology::KTable::to_stream)
/// leaves out deletes.
#[derive(Debug, Clone, Copy)]
pub struct Updates;

/// Results as `Some(aggregate)`, and under `emit_on_update` a tombstone
/// (`None`) for each session absorbed into a bigger one after it was
/// emitted (`KStream<Windowed<K>, Option<O>>`, value serde
/// [`Serdes::optional`]: written to a topic, `None` is a Kafka tombstone).
#[derive(Debug, Clone, Copy)]
pub struct WithTombstones;

impl sealed::Sealed for Updates {}
impl sealed::Sealed for WithTombstones {}

impl WindowOutput for Updates {
    type Value<O: Data> = O;
    fn wrap<O: Data>(result: Option<O>) -> Option<O> {
        result
    }
    fn serde<O: Data>(serde: Arc<dyn Serde<O>>) -> Arc<dyn Serde<O>> {
        serde
    }
}

impl WindowOutput for WithTombstones {
    type Value<O: Data> = Option<O>;
    fn wrap<O: Data>(result: Option<O>) -> Option<Option<O>> {
        Some(result)
    }
    fn serde<O: Data>(serde: Arc<dyn Serde<O>>) -> Arc<dyn Serde<Option<O>>> {
        Arc::new(Serdes::optional(ArcSerde(serde)))
    }
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    /// Cuts each key's records into `windows` for aggregation.
    pub fn windowed_by(&self, windows: Windows) -> WindowedStream<K, V> {
        WindowedStream {
            grouped: KGroupedStream { stream: self.stream.clone() },
            windows,
            emit: EmitMode::OnUpdate,
            late_topic: None,
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
    pub fn with_tombstones(self) -> WindowedStream<K, V, WithTombstones> {
        let WindowedStream { grouped, windows, emit, late_topic, .. } = self;
        WindowedStream { grouped, windows, emit, late_topic, _out: std::marker::PhantomData }
    }
}

impl<K: Data, V: Data, R: WindowOutput> WindowedStream<K, V, R> {
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
    pub fn min(self, name: &str, f: impl Fn(&V) -> f64 + Send + Sync + 'static) -> KStream<Windowed<K>, R::Value<f64>> {
        self.extreme(name, f, f64::min)
    }

    /// The largest `f(value)` per window.
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
    /// stream's value serde (the running value is stored with it).
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

    /// Aggregates each window with a user [`Aggregator`].
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

    fn build<S: Data, O: Data>(
        self,
        name: &str,
        agg: Agg<V, S, O>,
        out_serde: Arc<dyn Serde<O>>,
    ) -> KStream<Windowed<K>, R::Value<O>> {
        let WindowedStream { grouped, windows, emit, late_topic, .. } = self;
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
                unemitted: BTreeSet::new(),
                retracted: BTreeSet::new(),
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
                    WinOut::Result(key, value) => match R::wrap(value) {
                        Some(value) => Emit::One(Record { key, value, timestamp: r.timestamp, headers: r.headers }),
                        None => Emit::None,
                    },
                    WinOut::Late(..) => Emit::None,
                })
            }),
        );
        KStream {
            key_serde: Some(Arc::new(Serdes::windowed(ArcSerde(key_serde)))),
            value_serde: Some(R::serde(out_serde)),
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

/// What the window node emits: a window result (`None`: a tombstone for a
/// session merged into another after it was emitted), or a late record
/// for the late topic.
#[derive(Clone)]
pub(crate) enum WinOut<K, V, O> {
    Result(Windowed<K>, Option<O>),
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
    /// Sessions created since the last commit (emit_on_update): never
    /// emitted, so merging one away needs no tombstone.
    unemitted: BTreeSet<Vec<u8>>,
    /// Sessions emitted at an earlier commit and since merged into another
    /// (emit_on_update): each gets a tombstone at the next commit.
    retracted: BTreeSet<Vec<u8>>,
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

use crate::state::{sortable_time as enc, time_from_sortable as dec};

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
        let Some(result) = (self.agg.result)(&state) else { return Ok(()) };
        let out = WinOut::Result(Windowed { key, start, end }, Some(result));
        ctx.forward(Record::new((), out, timestamp))
    }

    /// A tombstone for a session merged into another after it was emitted,
    /// stamped with the session's end as Kafka Streams does.
    fn emit_tombstone(&self, ctx: &mut Ctx<'_, K, V, O>, data_key: &[u8]) -> Result<(), ProcessError> {
        let (key, start, end) = self.window_of(data_key, &[])?;
        ctx.forward(Record::new((), WinOut::Result(Windowed { key, start, end }, None), end))
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

    /// Sessions, judged as Kafka Streams (`KStreamSessionWindowAggregate`:
    /// a record is dropped only when `mergedWindow.end()` is past the close
    /// time) and Flink (`WindowOperator`: `isWindowLate(actualWindow)`, the
    /// window after `MergingWindowSet.addWindow`) judge them: the record
    /// first merges with the open sessions of its key within the gap, and
    /// only the merged session is judged, so a record inside an open
    /// session joins it however old it is. With nothing to merge with, it
    /// is late when its own session would be closed.
    fn process_session(
        &mut self,
        r: Record<K, V>,
        kb: Vec<u8>,
        gap: i64,
        ctx: &mut Ctx<'_, K, V, O>,
    ) -> Result<(), ProcessError> {
        let ts = r.timestamp;
        let wm = ctx.watermark();
        // Sessions of this key ending at or after ts - gap; those starting
        // at or before ts + gap touch the record. A session due to close at
        // this watermark (purged by on_watermark after this record) is
        // closed and merges with nothing.
        let from = key_of(DATA, &[&kb, &enc(ts.saturating_sub(gap))]);
        let to = key_of(DATA, &[&kb, &enc(i64::MAX)]);
        let mut start = ts;
        let mut end = ts;
        let mut merged = Vec::new();
        for (k, v) in self.range(ctx, from, to)? {
            if k.len() != kb.len() + 17 {
                continue; // another key that extends this one
            }
            let (s_end, s_start) = (dec(&k[k.len() - 16..]), dec(&k[k.len() - 8..]));
            if s_start > ts.saturating_add(gap) || self.close_at(s_end) <= wm {
                continue;
            }
            start = start.min(s_start);
            end = end.max(s_end);
            merged.push((k, v, s_end));
        }
        if self.close_at(end) <= wm {
            return self.late(ctx, r);
        }
        let mut state = (self.agg.init)();
        for (_, v, _) in &merged {
            state = (self.agg.merge)(state, self.decode_state(v)?);
        }
        state = (self.agg.add)(state, &r.value);
        let data_key = key_of(DATA, &[&kb, &enc(end), &enc(start)]);
        let mut unchanged = false;
        for (k, _, s_end) in merged {
            if k == data_key {
                unchanged = true;
                continue;
            }
            if self.emit == EmitMode::OnUpdate && !self.unemitted.remove(&k) {
                self.retracted.insert(k.clone());
            }
            self.remove_window(ctx, k, s_end)?;
        }
        if self.emit == EmitMode::OnUpdate && !unchanged {
            self.unemitted.insert(data_key.clone());
        }
        self.put_window(ctx, data_key, end, &state, !unchanged)
    }

    /// Kafka Streams' sliding windows (`SlidingWindows`,
    /// `KStreamSlidingWindowAggregate`): the windows of a key are
    /// `[t - size, t]` for each of its records (the left window) and
    /// `[t + 1, t + 1 + size]` for each record with a later one in that
    /// range (the right window), both inclusive, each over every record of
    /// the key between its bounds. A window is identified by its end. A
    /// record is late only when the last window it can fall in, ending at
    /// `t + size`, is closed (Kafka Streams drops a record when
    /// `timestamp + timeDifferenceMs` is past its close time); otherwise it
    /// joins every open window that contains it, and a window that would be
    /// created closed is not created (`updateWindowAndForward` skips it).
    fn process_sliding(
        &mut self,
        r: Record<K, V>,
        kb: Vec<u8>,
        size: i64,
        ctx: &mut Ctx<'_, K, V, O>,
    ) -> Result<(), ProcessError> {
        let ts = r.timestamp;
        let wm = ctx.watermark();
        if self.close_at(ts.saturating_add(size)) <= wm {
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
        // The windows of this key ending in [ts, ts + 1 + size]: the open
        // ones ending by ts + size contain the record and take it.
        let after = ts.saturating_add(1).saturating_add(size);
        let from = key_of(DATA, &[&kb, &enc(ts)]);
        let to = key_of(DATA, &[&kb, &enc(after.saturating_add(1))]);
        let mut exists = BTreeSet::new();
        for (k, v) in self.range(ctx, from, to)? {
            if k.len() != kb.len() + 9 {
                continue; // another key that extends this one
            }
            let end = dec(&k[k.len() - 8..]);
            exists.insert(end);
            if end < after && self.close_at(end) > wm {
                let state = (self.agg.add)(self.decode_state(&v)?, &r.value);
                self.put_window(ctx, k, end, &state, false)?;
            }
        }
        // The key's values from ts - 1 - size to ts + 1 + size (this one
        // included) give the windows the record creates: its left window,
        // its right window when a later value falls in it, and the right
        // window of the value just before it, which this one makes
        // non-empty. (Any earlier value's right window holds that value,
        // so it exists or closed.)
        let from = key_of(RAW, &[&kb, &enc(ts.saturating_sub(1).saturating_sub(size))]);
        let to = key_of(RAW, &[&kb, &enc(after.saturating_add(1))]);
        let raw: Vec<(i64, Vec<u8>)> = self
            .range(ctx, from, to)?
            .into_iter()
            .filter(|(k, _)| k.len() == kb.len() + 17)
            .map(|(k, v)| (dec(&k[kb.len() + 1..]), v))
            .collect();
        let mut ends = vec![ts];
        if raw.iter().any(|(t, _)| *t > ts) {
            ends.push(after);
        }
        if let Some(previous) = raw.iter().map(|(t, _)| *t).filter(|t| *t < ts).max() {
            ends.push(previous.saturating_add(1).saturating_add(size));
        }
        for end in ends {
            if self.close_at(end) <= wm || !exists.insert(end) {
                continue;
            }
            let mut state = (self.agg.init)();
            for (_, v) in raw.iter().filter(|(t, _)| end.saturating_sub(size) <= *t && *t <= end) {
                let value = value_serde.deserialize(Some(v)).map_err(|e| self.serde_error("value", e))?;
                state = (self.agg.add)(state, &value);
            }
            self.put_window(ctx, key_of(DATA, &[&kb, &enc(end)]), end, &state, true)?;
        }
        Ok(())
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
        self.unemitted.clear();
        self.retracted.clear();
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
        self.unemitted.clear();
        for data_key in std::mem::take(&mut self.retracted) {
            if !self.dirty.contains(&data_key) {
                self.emit_tombstone(ctx, &data_key)?;
            }
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
    /// still include. An open window ends at or after `wm - grace`, so it
    /// starts at or after `wm - grace - length`; a value one ms before that
    /// is kept too, as its right window (starting one ms after it) is open.
    fn purge_raw(&mut self, wm: i64, length: i64, ctx: &mut Ctx<'_, K, V, O>) -> Result<(), ProcessError> {
        let bound = wm.saturating_sub(length).saturating_sub(self.windows.grace).saturating_sub(1);
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
