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

mod dsl;
pub(crate) use dsl::late_records_to;
mod processor;
mod segmented;

#[cfg(test)]
#[path = "window_tests.rs"]
pub(crate) mod tests;
