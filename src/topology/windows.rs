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

use crate::processor::api::{Processor, ProcessorContext};
use crate::processor::store::StoreSpec;
use crate::processor::time::duration_ms;
use crate::processor::ProcessError;
use crate::record::{Record, Windowed};
use crate::serde::{Encoded, Serde, SerdeError, Serdes};
use crate::topology::builder::{ArcSerde, Data, KGroupedStream, KStream, TopologyBuilder};
use crate::topology::ops::Emit;
use crate::topology::TopologyError;

/// A window result in one JSON-friendly value:
/// `{"key":..,"window_start":..,"window_end":..,"value":..}`; see
/// [`KStream::with_window_in_value`].
///
/// ```
/// use rivulet::topology::WindowResult;
/// let r = WindowResult { key: "alice".to_string(), window_start: 0, window_end: 60_000, value: 3_i64 };
/// assert_eq!(
///     serde_json::to_string(&r).unwrap(),
///     r#"{"key":"alice","window_start":0,"window_end":60000,"value":3}"#
/// );
/// ```
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

mod kinds;
use kinds::Kind;
pub use kinds::Windows;

/// When window results are emitted; chosen with
/// [`WindowedStream::emit_on_update`] and [`WindowedStream::emit_final`].
///
/// ```
/// use rivulet::topology::{Data, EmitMode, WindowOutput, WindowedStream};
/// /// The emit mode from a setting.
/// fn emit<K: Data, V: Data, R: WindowOutput>(w: WindowedStream<K, V, R>, mode: EmitMode) -> WindowedStream<K, V, R> {
///     match mode {
///         EmitMode::OnUpdate => w.emit_on_update(),
///         EmitMode::Final => w.emit_final(),
///     }
/// }
/// ```
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
///
/// Made by [`KGroupedStream::windowed_by`]; set the emit mode and the late
/// topic, then end with one aggregation (`count`, `sum`, `min`, `max`,
/// `average`, `reduce` or `aggregate`), which names the window store and
/// returns a stream keyed by [`Windowed`] keys.
///
/// ```
/// use std::time::Duration;
/// use rivulet::prelude::*;
/// use rivulet::topology::WindowedStream;
/// let mut b = Topology::builder();
/// let per_minute: WindowedStream<String, String> = b
///     .stream("clicks", Serdes::string(), Serdes::string())
///     .group_by_key()
///     .windowed_by(Windows::tumbling(Duration::from_secs(60)));
/// let counts: KStream<Windowed<String>, i64> = per_minute.emit_final().count("clicks-per-minute");
/// counts.to("clicks-per-minute", Serdes::windowed(Serdes::string()), Serdes::i64());
/// assert!(b.build()?.describe().contains("WINDOW(tumbling 60000 ms, grace 0 ms)"));
/// # Ok::<(), rivulet::Error>(())
/// ```
pub struct WindowedStream<K, V, R: WindowOutput = Updates> {
    grouped: KGroupedStream<K, V>,
    windows: Windows,
    emit: EmitMode,
    late_topic: Option<String>,
    /// Pre-aggregated before the repartition ([`WindowedStream::two_phase`]).
    two_phase: bool,
    _out: std::marker::PhantomData<R>,
}

mod sealed {
    pub trait Sealed {}
}

/// What the result stream of a windowed aggregation carries: see
/// [`Updates`] and [`WithTombstones`]. Sealed: users meet it as a bound,
/// to write code for both.
///
/// ```
/// use std::time::Duration;
/// use rivulet::prelude::*;
/// use rivulet::topology::{WindowOutput, WindowedStream};
///
/// /// Counts bots' requests, with or without tombstones.
/// fn count_bots<R: WindowOutput>(
///     w: WindowedStream<String, String, R>,
///     name: &str,
/// ) -> KStream<Windowed<String>, R::Value<i64>> {
///     w.count(name).filter(|window, _| window.key.starts_with("bot-"))
/// }
///
/// let mut b = Topology::builder();
/// let requests = b.stream("requests", Serdes::string(), Serdes::string()).group_by_key();
/// let per_minute: KStream<Windowed<String>, i64> =
///     count_bots(requests.windowed_by(Windows::tumbling(Duration::from_secs(60))), "bot-minutes");
/// let per_visit: KStream<Windowed<String>, Option<i64>> =
///     count_bots(requests.windowed_by(Windows::session(Duration::from_secs(300))).with_tombstones(), "bot-visits");
/// ```
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
/// leaves out deletes. The default of a [`WindowedStream`].
///
/// ```
/// # use std::time::Duration;
/// # use rivulet::prelude::*;
/// # use rivulet::testing::TopologyTestDriver;
/// let mut b = Topology::builder();
/// let visits: KStream<Windowed<String>, i64> = b
///     .stream("page-views", Serdes::string(), Serdes::string())
///     .group_by_key()
///     .windowed_by(Windows::session(Duration::from_secs(300)).grace(Duration::from_secs(3600)))
///     .count("views-per-visit");
/// visits.to("views-per-visit", Serdes::windowed(Serdes::string()), Serdes::i64());
/// # let mut driver = TopologyTestDriver::new(b.build()?)?;
/// # let views = driver.input_topic("page-views", Serdes::string(), Serdes::string());
/// # let out = driver.output_topic("views-per-visit", Serdes::windowed(Serdes::string()), Serdes::i64());
/// // Two sessions, then a record in between merges them into one.
/// for minute in [0, 6, 3] {
///     driver.pipe(&views, "alice".to_string(), "/".to_string(), minute * 60_000)?;
/// }
/// let sessions: Vec<_> = driver.read(&out)?.into_iter().map(|r| (r.key.start, r.key.end, r.value)).collect();
/// assert_eq!(sessions, [(0, 0, 1), (360_000, 360_000, 1), (0, 360_000, 3)]);
/// # Ok::<(), rivulet::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Updates;

/// Results as `Some(aggregate)`, and under `emit_on_update` a tombstone
/// (`None`) for each session absorbed into a bigger one after it was
/// emitted (`KStream<Windowed<K>, Option<O>>`, value serde
/// [`Serdes::optional`]: written to a topic, `None` is a Kafka tombstone).
/// Chosen with [`WindowedStream::with_tombstones`].
///
/// ```
/// use std::time::Duration;
/// use rivulet::prelude::*;
/// let mut b = Topology::builder();
/// let visits: KStream<Windowed<String>, Option<i64>> = b
///     .stream("page-views", Serdes::string(), Serdes::string())
///     .group_by_key()
///     .windowed_by(Windows::session(Duration::from_secs(300)))
///     .with_tombstones()
///     .count("views-per-visit");
/// visits.to("visits", Serdes::windowed(Serdes::string()), Serdes::optional(Serdes::i64()));
/// # b.build()?;
/// # Ok::<(), rivulet::Error>(())
/// ```
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

mod layout;
use layout::*;

type Ctx<'a, K, V, O> = ProcessorContext<'a, (), WinOut<K, V, O>>;

mod build;
mod dsl;
pub(crate) use dsl::late_records_to;
mod processor;
pub(crate) mod query;
mod segmented;

#[cfg(test)]
#[path = "window_tests.rs"]
pub(crate) mod tests;
