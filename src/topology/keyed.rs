//! Keyed state and timers: Flink's `KeyedProcessFunction` on the Processor API.
//!
//! A [`KeyedProcessor`] sees one record at a time with a [`KeyedContext`]
//! scoped to the record's key: the state handles it holds as fields
//! ([`ValueState`], [`ListState`], [`MapState`]) read and write the current
//! key's entry, and the timers it registers belong to the current key. When
//! a timer is due, [`KeyedProcessor::on_timer`] runs with the context scoped
//! to the timer's key, so it can read that key's state and emit.
//!
//! ```
//! use std::time::Duration;
//! use rivulet::prelude::*;
//! use rivulet::topology::keyed::{KeyedContext, KeyedProcess, KeyedProcessor, Timer, ValueState};
//! use rivulet::topology::ProcessError;
//!
//! /// Emits a key's count one minute (event time) after its first record.
//! struct CountPerMinute { count: ValueState<i64> }
//!
//! impl KeyedProcessor<String, String, String, i64> for CountPerMinute {
//!     fn process_element(
//!         &mut self,
//!         r: Record<String, String>,
//!         ctx: &mut KeyedContext<'_, '_, String, String, i64>,
//!     ) -> Result<(), ProcessError> {
//!         let n = self.count.get(ctx)?.unwrap_or(0);
//!         if n == 0 {
//!             ctx.register_event_time_timer(r.timestamp + 60_000)?;
//!         }
//!         self.count.set(ctx, &(n + 1))
//!     }
//!
//!     fn on_timer(&mut self, timer: Timer, ctx: &mut KeyedContext<'_, '_, String, String, i64>) -> Result<(), ProcessError> {
//!         let n = self.count.get(ctx)?.unwrap_or(0);
//!         self.count.clear(ctx)?;
//!         let key = ctx.key().clone();
//!         ctx.forward(Record::new(key, n, timer.time))
//!     }
//! }
//!
//! let mut b = Topology::builder();
//! b.add_store(StoreSpec::keyed("per-minute"));
//! b.stream("events", Serdes::string(), Serdes::string())
//!     .process(&["per-minute"], || {
//!         let count = ValueState::new("count", Serdes::i64()).with_ttl(Duration::from_secs(3600));
//!         KeyedProcess::new("per-minute", Serdes::string(), CountPerMinute { count })
//!     })
//!     .to("counts", Serdes::string(), Serdes::i64());
//! b.build().unwrap();
//! ```
//!
//! # Where state and timers live
//!
//! Everything a keyed processor keeps is in one declared store
//! ([`StoreSpec::keyed`]), so it goes through the task's write buffer, is
//! changelogged, committed with the Kafka transaction and restored with the
//! task like any other store. Its keys are:
//!
//! ```text
//! S | u32 len | state name | u32 len | record key | map key (MapState only)   -> u64 expiry | payload
//! T | domain  | timestamp (i64, big-endian, sign bit flipped) | record key    -> [1]
//! X | expiry (same encoding) | state entry key                                -> [1]   (TTL index)
//! W                                                                          -> watermark (i64 BE)
//! ```
//!
//! Timer keys sort by domain, then time, then key, so the due timers are one
//! range scan. A timer is deleted in the write buffer just before its
//! callback runs, so the deletion is committed with the callback's outputs:
//! under `exactly_once` a timer's output appears once for `read_committed`
//! readers, across crashes and restarts (under `at_least_once` a crash
//! before the commit fires it again). A timer is one per (key, domain,
//! time): registering it twice registers it once.
//!
//! # Time
//!
//! Event-time timers fire when the task's watermark reaches their time
//! ([`Processor::on_watermark`]), in time order, then key order; a timer
//! registered at or below the current watermark fires right after the
//! callback that registered it. The last watermark is kept in the store and
//! restored into the task's time when the task starts, so a restarted task
//! does not reopen time it had passed. Processing-time timers fire on the
//! wall clock, checked every [`KeyedProcess::tick`] (default 100 ms), also
//! while no records arrive.
//!
//! # Time-to-live
//!
//! A state handle built `.with_ttl(d)` keeps each entry for `d` of
//! processing time (wall clock) after its last write, as Flink's default
//! (`OnCreateAndWrite`, never return expired): reads do not extend it, an
//! expired entry reads as absent and is deleted when read, and a TTL index
//! lets the wall-clock tick delete expired entries nobody reads. Processing
//! time rather than event time, because an entry must expire also for keys
//! whose records stopped coming, when event time no longer moves for them.

mod layout;
use layout::*;
mod state;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

pub use state::{ListState, MapState, ValueState};

use crate::processor::api::{Processor, ProcessorContext, TimeKind};
use crate::processor::store::{KeyValueView, StoreSpec};
use crate::processor::ProcessError;
use crate::record::Record;
use crate::serde::{Encoded, Serde, SerdeError, Serdes};

const STATE: u8 = b'S';
const TIMER: u8 = b'T';
const TTL_INDEX: u8 = b'X';
const WATERMARK: &[u8] = b"W";

/// Expiry of an entry without a time-to-live.
const NEVER: i64 = i64::MAX;

/// Rounds of due timers fired in one go; a callback that keeps registering
/// timers at or before the current time cannot stall the task forever (the
/// rest fire at the next watermark or tick).
const MAX_FIRING_ROUNDS: usize = 1_000;

/// State entries (store key, payload).
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Which clock a keyed timer follows: [`Timer::domain`] in
/// [`KeyedProcessor::on_timer`].
///
/// ```
/// # use std::time::Duration;
/// # use rivulet::prelude::*;
/// # use rivulet::testing::TopologyTestDriver;
/// # use rivulet::topology::keyed::*;
/// # use rivulet::topology::ProcessError;
/// struct Both;
/// impl KeyedProcessor<String, String, String, String> for Both {
/// #     fn process_element(&mut self, r: Record<String, String>, ctx: &mut KeyedContext<'_, '_, String, String, String>) -> Result<(), ProcessError> {
/// #         ctx.register_event_time_timer(r.timestamp + 1_000)?;
/// #         ctx.register_processing_time_timer(ctx.current_processing_time() + 1_000)
/// #     }
///     fn on_timer(
///         &mut self,
///         timer: Timer,
///         ctx: &mut KeyedContext<'_, '_, String, String, String>,
///     ) -> Result<(), ProcessError> {
///         let clock = match timer.domain {
///             TimeDomain::EventTime => "event time",
///             TimeDomain::ProcessingTime => "processing time",
///         };
///         let key = ctx.key().clone();
///         ctx.forward(Record::new(key, clock.to_string(), timer.time))
///     }
/// }
/// # let mut b = Topology::builder();
/// # b.add_store(StoreSpec::keyed("state"));
/// # b.stream("in", Serdes::string(), Serdes::string())
/// #     .process(&["state"], || KeyedProcess::new("state", Serdes::string(), Both))
/// #     .to("out", Serdes::string(), Serdes::string());
/// # let mut driver = TopologyTestDriver::new(b.build()?)?.start_wall_clock_at(0)?;
/// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
/// # let out = driver.output_topic("out", Serdes::string(), Serdes::string());
/// driver.pipe(&input, "k".to_string(), "start".to_string(), 0)?; // both timers at 1 s
/// driver.pipe(&input, "k".to_string(), "later".to_string(), 5_000)?; // the watermark passes 1 s
/// driver.advance_wall_clock(Duration::from_secs(2))?; // so does the wall clock
/// let fired: Vec<String> = driver.read_key_values(&out)?.into_iter().map(|(_, clock)| clock).collect();
/// assert_eq!(fired, ["event time", "processing time"]);
/// # Ok::<(), rivulet::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimeDomain {
    /// The task's watermark: fires when no record older than the timer is
    /// expected any more.
    EventTime,
    /// The wall clock.
    ProcessingTime,
}

impl TimeDomain {
    fn tag(self) -> u8 {
        match self {
            TimeDomain::EventTime => 0,
            TimeDomain::ProcessingTime => 1,
        }
    }
}

/// A timer that is due: its time (ms) and clock. The key is the context's
/// ([`KeyedContext::key`]). `time` is the time the timer was registered
/// for, whatever the watermark or wall clock that fired it.
///
/// ```
/// # use std::time::Duration;
/// # use rivulet::prelude::*;
/// # use rivulet::testing::TopologyTestDriver;
/// # use rivulet::topology::keyed::*;
/// # use rivulet::topology::ProcessError;
/// struct Reminder;
/// impl KeyedProcessor<String, String, String, String> for Reminder {
/// #     fn process_element(&mut self, r: Record<String, String>, ctx: &mut KeyedContext<'_, '_, String, String, String>) -> Result<(), ProcessError> {
/// #         ctx.register_event_time_timer(r.timestamp + 60_000)
/// #     }
///     fn on_timer(
///         &mut self,
///         timer: Timer,
///         ctx: &mut KeyedContext<'_, '_, String, String, String>,
///     ) -> Result<(), ProcessError> {
///         let key = ctx.key().clone();
///         ctx.forward(Record::new(key, format!("due at {}", timer.time), timer.time))
///     }
/// }
/// # let mut b = Topology::builder();
/// # b.add_store(StoreSpec::keyed("state"));
/// # b.stream("in", Serdes::string(), Serdes::string())
/// #     .process(&["state"], || KeyedProcess::new("state", Serdes::string(), Reminder))
/// #     .to("out", Serdes::string(), Serdes::string());
/// # let mut driver = TopologyTestDriver::new(b.build()?)?;
/// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
/// # let out = driver.output_topic("out", Serdes::string(), Serdes::string());
/// driver.pipe(&input, "k".to_string(), "start".to_string(), 0)?;
/// driver.pipe(&input, "k".to_string(), "later".to_string(), 100_000)?;
/// let fired = driver.read(&out)?;
/// assert_eq!((fired[0].value.as_str(), fired[0].timestamp), ("due at 60000", 60_000));
/// # Ok::<(), rivulet::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timer {
    /// The time the timer was registered for, ms since the epoch.
    pub time: i64,
    /// Event time or processing time.
    pub domain: TimeDomain,
}

/// A processor whose state and timers are scoped to the key of the record
/// it handles (Flink's `KeyedProcessFunction`); add it with
/// [`KeyedProcess::new`]. Its state handles ([`ValueState`], [`ListState`],
/// [`MapState`]) are fields, made with the processor in the factory
/// closure of [`KStream::process`](crate::topology::KStream::process).
/// `on_timer` is optional.
///
/// ```
/// use rivulet::prelude::*;
/// use rivulet::testing::TopologyTestDriver;
/// use rivulet::topology::keyed::{KeyedContext, KeyedProcess, KeyedProcessor, ValueState};
/// use rivulet::topology::ProcessError;
///
/// /// Alerts on a user's third failed login in a row.
/// struct FailedLogins {
///     failures: ValueState<i64>,
/// }
///
/// impl KeyedProcessor<String, String, String, i64> for FailedLogins {
///     fn process_element(
///         &mut self,
///         r: Record<String, String>,
///         ctx: &mut KeyedContext<'_, '_, String, String, i64>,
///     ) -> Result<(), ProcessError> {
///         if r.value == "ok" {
///             return self.failures.clear(ctx);
///         }
///         let n = self.failures.get(ctx)?.unwrap_or(0) + 1;
///         self.failures.set(ctx, &n)?;
///         if n == 3 {
///             ctx.forward(Record::new(r.key, n, r.timestamp))?;
///         }
///         Ok(())
///     }
/// }
///
/// let mut b = Topology::builder();
/// b.add_store(StoreSpec::keyed("failed-logins"));
/// b.stream("logins", Serdes::string(), Serdes::string())
///     .process(&["failed-logins"], || {
///         let failures = ValueState::new("failures", Serdes::i64());
///         KeyedProcess::new("failed-logins", Serdes::string(), FailedLogins { failures })
///     })
///     .to("login-alerts", Serdes::string(), Serdes::i64());
/// let mut driver = TopologyTestDriver::new(b.build()?)?;
/// let logins = driver.input_topic("logins", Serdes::string(), Serdes::string());
/// let alerts = driver.output_topic("login-alerts", Serdes::string(), Serdes::i64());
/// for outcome in ["fail", "fail", "ok", "fail", "fail", "fail"] {
///     driver.pipe(&logins, "alice".to_string(), outcome.to_string(), 0)?;
/// }
/// assert_eq!(driver.read_key_values(&alerts)?, vec![("alice".to_string(), 3)]);
/// # Ok::<(), rivulet::Error>(())
/// ```
pub trait KeyedProcessor<K, V, KOut, VOut>: 'static {
    /// Handles one record; the context is scoped to `record.key`.
    fn process_element(
        &mut self,
        record: Record<K, V>,
        ctx: &mut KeyedContext<'_, '_, K, KOut, VOut>,
    ) -> Result<(), ProcessError>;

    /// A timer registered for the context's key is due. It has been deleted
    /// already: register it again to repeat it.
    fn on_timer(&mut self, timer: Timer, ctx: &mut KeyedContext<'_, '_, K, KOut, VOut>) -> Result<(), ProcessError> {
        let _ = (timer, ctx);
        Ok(())
    }
}

impl StoreSpec {
    /// The store of a [`KeyedProcess`]: its state entries, timers and
    /// watermark, as bytes, in RocksDB (changelog
    /// `<application_id>-<name>-changelog`); `.in_memory()` keeps it in memory
    /// (restored from the changelog at start). Declare it with
    /// [`TopologyBuilder::add_store`](crate::topology::TopologyBuilder::add_store)
    /// and list it in `process`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// # struct Noop;
    /// # impl KeyedProcessor<String, String, String, String> for Noop {
    /// #     fn process_element(&mut self, _: Record<String, String>, _: &mut KeyedContext<'_, '_, String, String, String>) -> Result<(), ProcessError> {
    /// #         Ok(())
    /// #     }
    /// # }
    /// let mut b = Topology::builder();
    /// b.add_store(StoreSpec::keyed("sessions").in_memory());
    /// b.stream("clicks", Serdes::string(), Serdes::string())
    ///     .process(&["sessions"], || KeyedProcess::new("sessions", Serdes::string(), Noop))
    ///     .to("out", Serdes::string(), Serdes::string());
    /// assert!(b.build()?.describe().contains("sessions (in-memory, changelog <application_id>-sessions-changelog)"));
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn keyed(name: &str) -> StoreSpec {
        StoreSpec::key_value(name, Serdes::bytes(), Serdes::bytes())
    }
}

/// A [`KeyedProcessor`] as a [`Processor`], for
/// [`KStream::process`](crate::topology::KStream::process) with the store
/// it keeps its state in (declare it with [`StoreSpec::keyed`]). The
/// factory closure runs once per task, so each task has its own processor
/// and state handles.
///
/// ```
/// use rivulet::prelude::*;
/// use rivulet::testing::TopologyTestDriver;
/// use rivulet::topology::keyed::{KeyedContext, KeyedProcess, KeyedProcessor, ValueState};
/// use rivulet::topology::ProcessError;
///
/// /// Forwards the first record of each key.
/// struct FirstSeen {
///     seen: ValueState<i64>,
/// }
///
/// impl KeyedProcessor<String, String, String, String> for FirstSeen {
///     fn process_element(
///         &mut self,
///         r: Record<String, String>,
///         ctx: &mut KeyedContext<'_, '_, String, String, String>,
///     ) -> Result<(), ProcessError> {
///         if self.seen.get(ctx)?.is_some() {
///             return Ok(());
///         }
///         self.seen.set(ctx, &r.timestamp)?;
///         ctx.forward(r)
///     }
/// }
///
/// let mut b = Topology::builder();
/// b.add_store(StoreSpec::keyed("first-seen"));
/// b.stream("events", Serdes::string(), Serdes::string())
///     .process(&["first-seen"], || {
///         let seen = ValueState::new("seen", Serdes::i64());
///         KeyedProcess::new("first-seen", Serdes::string(), FirstSeen { seen })
///     })
///     .to("first-events", Serdes::string(), Serdes::string());
/// let mut driver = TopologyTestDriver::new(b.build()?)?;
/// let events = driver.input_topic("events", Serdes::string(), Serdes::string());
/// let first = driver.output_topic("first-events", Serdes::string(), Serdes::string());
/// for (user, event) in [("alice", "signup"), ("alice", "login"), ("bob", "login")] {
///     driver.pipe(&events, user.to_string(), event.to_string(), 0)?;
/// }
/// let out = driver.read_key_values(&first)?;
/// assert_eq!(out, [("alice".to_string(), "signup".to_string()), ("bob".to_string(), "login".to_string())]);
/// # Ok::<(), rivulet::Error>(())
/// ```
pub struct KeyedProcess<K, P> {
    store: String,
    key_serde: Arc<dyn Serde<K>>,
    processor: P,
    tick: Duration,
}

impl<K: 'static, P> KeyedProcess<K, P> {
    /// `processor`, keeping its state and timers in the store `store`;
    /// `key_serde` encodes record keys into state and timer keys (records
    /// with a null key fail: give them a key first). A store is for one keyed
    /// processor: two keyed processors need two stores.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// # struct Noop;
    /// # impl KeyedProcessor<String, String, String, String> for Noop {
    /// #     fn process_element(&mut self, _: Record<String, String>, _: &mut KeyedContext<'_, '_, String, String, String>) -> Result<(), ProcessError> {
    /// #         Ok(())
    /// #     }
    /// # }
    /// let mut b = Topology::builder();
    /// b.add_store(StoreSpec::keyed("per-user"));
    /// b.stream("clicks", Serdes::string(), Serdes::string())
    ///     .process(&["per-user"], || KeyedProcess::new("per-user", Serdes::string(), Noop))
    ///     .to("out", Serdes::string(), Serdes::string());
    /// assert!(b.build()?.describe().contains("(stores: per-user)"));
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn new(store: &str, key_serde: impl Serde<K>, processor: P) -> Self {
        KeyedProcess {
            store: store.to_string(),
            key_serde: Arc::new(key_serde),
            processor,
            tick: Duration::from_millis(100),
        }
    }

    /// How often processing-time timers and expired state are checked
    /// (default 100 ms): a processing-time timer fires at the first check at
    /// or after its time.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// # struct Later;
    /// # impl KeyedProcessor<String, String, String, String> for Later {
    /// #     fn process_element(&mut self, r: Record<String, String>, ctx: &mut KeyedContext<'_, '_, String, String, String>) -> Result<(), ProcessError> {
    /// #         ctx.register_processing_time_timer(ctx.current_processing_time() + 100)
    /// #     }
    /// #     fn on_timer(&mut self, _: Timer, ctx: &mut KeyedContext<'_, '_, String, String, String>) -> Result<(), ProcessError> {
    /// #         let key = ctx.key().clone();
    /// #         ctx.forward(Record::new(key, "fired".to_string(), 0))
    /// #     }
    /// # }
    /// let mut b = Topology::builder();
    /// b.add_store(StoreSpec::keyed("later"));
    /// b.stream("in", Serdes::string(), Serdes::string())
    ///     .process(&["later"], || KeyedProcess::new("later", Serdes::string(), Later).tick(Duration::from_secs(1)))
    ///     .to("out", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?.start_wall_clock_at(0)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("out", Serdes::string(), Serdes::string());
    /// driver.pipe(&input, "k".to_string(), "v".to_string(), 0)?; // a timer at 100 ms
    /// driver.advance_wall_clock(Duration::from_millis(500))?;
    /// assert!(driver.read_key_values(&out)?.is_empty()); // not checked yet
    /// driver.advance_wall_clock(Duration::from_millis(500))?;
    /// assert_eq!(driver.read_key_values(&out)?.len(), 1);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn tick(mut self, every: Duration) -> Self {
        self.tick = every;
        self
    }

    fn encode_key(&self, key: &K) -> Result<Vec<u8>, ProcessError> {
        let mut out = Vec::new();
        match self.key_serde.serialize(key, &mut out) {
            Ok(Encoded::Bytes) => Ok(out),
            Ok(Encoded::Null) => Err(ProcessError::Serde {
                what: format!("record key for the keyed state in store `{}`", self.store),
                source: SerdeError::new(
                    self.key_serde.name(),
                    "a null key has no keyed state; give the records a key (select_key) before the keyed processor",
                ),
            }),
            Err(e) => Err(ProcessError::Serde {
                what: format!("record key for the keyed state in store `{}`", self.store),
                source: e,
            }),
        }
    }

    /// Fires the timers of `domain` due at `limit`, in (time, key) order.
    fn fire_due<V, KOut, VOut>(
        &mut self,
        domain: TimeDomain,
        limit: i64,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
    ) -> Result<(), ProcessError>
    where
        K: Clone + 'static,
        KOut: Clone + 'static,
        VOut: Clone + 'static,
        P: KeyedProcessor<K, V, KOut, VOut>,
    {
        let from = vec![TIMER, domain.tag()];
        let to = match limit.checked_add(1) {
            Some(end) => timer_prefix(domain, end),
            None => vec![TIMER, domain.tag() + 1],
        };
        for _ in 0..MAX_FIRING_ROUNDS {
            let due = raw(ctx, &self.store)?.range(Some(&from), Some(&to))?;
            if due.is_empty() {
                return Ok(());
            }
            for (timer_key, _) in due {
                // An earlier callback of this round may have deleted it.
                let mut store = raw(ctx, &self.store)?;
                if store.get(&timer_key)?.is_none() {
                    continue;
                }
                store.delete(&timer_key)?;
                let Some((time, key_bytes)) = parse_timer(&timer_key) else {
                    return Err(corrupt(&self.store, "a timer key is shorter than its header"));
                };
                let key = self.key_serde.deserialize(Some(key_bytes)).map_err(|e| ProcessError::Serde {
                    what: format!("record key of a timer in store `{}`", self.store),
                    source: e,
                })?;
                let mut fire_now = false;
                let now = ctx.current_system_time_ms();
                let mut kctx =
                    KeyedContext { ctx, store: &self.store, key: &key, key_bytes, now, fire_now: &mut fire_now };
                self.processor.on_timer(Timer { time, domain }, &mut kctx)?;
            }
        }
        tracing::warn!(store = %self.store, "timers keep registering timers that are already due; the rest fire later");
        Ok(())
    }

    /// Deletes state entries whose time-to-live passed by `now`.
    fn expire_state<KOut, VOut>(&self, now: i64, ctx: &mut ProcessorContext<'_, KOut, VOut>) -> Result<(), ProcessError>
    where
        KOut: Clone + 'static,
        VOut: Clone + 'static,
    {
        let from = vec![TTL_INDEX];
        let mut to = vec![TTL_INDEX];
        to.extend_from_slice(&sortable(now.saturating_add(1)));
        let mut store = raw(ctx, &self.store)?;
        for (index_key, _) in store.range(Some(&from), Some(&to))? {
            store.delete(&index_key)?;
            let Some(entry) = index_key.get(9..).map(<[u8]>::to_vec) else { continue };
            if let Some(value) = store.get(&entry)? {
                let (expires, _) =
                    split_value(&value).ok_or_else(|| corrupt(&self.store, "a state value is too short"))?;
                if expires <= now {
                    store.delete(&entry)?;
                }
            }
        }
        Ok(())
    }
}

impl<K, V, KOut, VOut, P> Processor<K, V, KOut, VOut> for KeyedProcess<K, P>
where
    K: Clone + 'static,
    V: 'static,
    KOut: Clone + 'static,
    VOut: Clone + 'static,
    P: KeyedProcessor<K, V, KOut, VOut>,
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, KOut, VOut>) -> Result<(), ProcessError> {
        let store = match raw(ctx, &self.store) {
            Ok(s) => s,
            Err(ProcessError::Topology { node, reason }) => {
                return Err(ProcessError::Topology {
                    node,
                    reason: format!(
                        "{reason}; a keyed processor keeps its state in a store declared with \
                         builder.add_store(StoreSpec::keyed(\"{}\")) and listed in KStream::process",
                        self.store
                    ),
                })
            }
            Err(e) => return Err(e),
        };
        if let Some(bytes) = store.get(&WATERMARK.to_vec())? {
            let wm: [u8; 8] =
                bytes.as_slice().try_into().map_err(|_| corrupt(&self.store, "the stored watermark is not 8 bytes"))?;
            ctx.task.time.restore(i64::from_be_bytes(wm));
        }
        ctx.schedule(self.tick, TimeKind::WallClock);
        Ok(())
    }

    fn process(
        &mut self,
        record: Record<K, V>,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
    ) -> Result<(), ProcessError> {
        let key = record.key.clone();
        let key_bytes = self.encode_key(&key)?;
        let mut fire_now = false;
        let now = ctx.current_system_time_ms();
        let mut kctx =
            KeyedContext { ctx, store: &self.store, key: &key, key_bytes: &key_bytes, now, fire_now: &mut fire_now };
        self.processor.process_element(record, &mut kctx)?;
        if fire_now {
            let wm = ctx.watermark();
            self.fire_due(TimeDomain::EventTime, wm, ctx)?;
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        kind: TimeKind,
        _: i64,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
    ) -> Result<(), ProcessError> {
        if kind == TimeKind::WallClock {
            let now = ctx.current_system_time_ms();
            self.fire_due(TimeDomain::ProcessingTime, now, ctx)?;
            self.expire_state(now, ctx)?;
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, ctx: &mut ProcessorContext<'_, KOut, VOut>) -> Result<(), ProcessError> {
        raw(ctx, &self.store)?.put(&WATERMARK.to_vec(), &watermark.to_be_bytes().to_vec())?;
        self.fire_due(TimeDomain::EventTime, watermark, ctx)
    }
}

/// A keyed processor's view of its task, scoped to one key: the key of the
/// record being processed, or of the timer that fired. State handles read
/// and write this key's entries through it; timers registered through it
/// belong to this key.
///
/// ```
/// use rivulet::prelude::*;
/// use rivulet::testing::TopologyTestDriver;
/// use rivulet::topology::keyed::{KeyedContext, KeyedProcess, KeyedProcessor, ListState, Timer};
/// use rivulet::topology::ProcessError;
///
/// /// Batches each key's values for one minute of event time after its first.
/// struct Batch {
///     values: ListState<String>,
/// }
///
/// impl KeyedProcessor<String, String, String, String> for Batch {
///     fn process_element(
///         &mut self,
///         r: Record<String, String>,
///         ctx: &mut KeyedContext<'_, '_, String, String, String>,
///     ) -> Result<(), ProcessError> {
///         if self.values.get(ctx)?.is_empty() {
///             ctx.register_event_time_timer(r.timestamp + 60_000)?;
///         }
///         self.values.add(ctx, &r.value)
///     }
///
///     fn on_timer(
///         &mut self,
///         timer: Timer,
///         ctx: &mut KeyedContext<'_, '_, String, String, String>,
///     ) -> Result<(), ProcessError> {
///         let batch = self.values.get(ctx)?.join(",");
///         self.values.clear(ctx)?;
///         let key = ctx.key().clone();
///         ctx.forward(Record::new(key, batch, timer.time))
///     }
/// }
/// # let mut b = Topology::builder();
/// # b.add_store(StoreSpec::keyed("batches"));
/// # b.stream("in", Serdes::string(), Serdes::string())
/// #     .process(&["batches"], || KeyedProcess::new("batches", Serdes::string(), Batch { values: ListState::new("values", Serdes::string()) }))
/// #     .to("out", Serdes::string(), Serdes::string());
/// # let mut driver = TopologyTestDriver::new(b.build()?)?;
/// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
/// # let out = driver.output_topic("out", Serdes::string(), Serdes::string());
/// for (key, t, v) in [("k", 0, "a"), ("k", 30_000, "b"), ("other", 90_000, "c")] {
///     driver.pipe(&input, key.to_string(), v.to_string(), t)?;
/// }
/// // The watermark passed 60 s: "k"'s batch is out, "other"'s waits.
/// assert_eq!(driver.read_key_values(&out)?, vec![("k".to_string(), "a,b".to_string())]);
/// # Ok::<(), rivulet::Error>(())
/// ```
pub struct KeyedContext<'c, 'a, K, KOut, VOut> {
    ctx: &'c mut ProcessorContext<'a, KOut, VOut>,
    store: &'c str,
    key: &'c K,
    key_bytes: &'c [u8],
    now: i64,
    /// Set when an event-time timer at or below the watermark is registered.
    fire_now: &'c mut bool,
}

impl<'a, K, KOut: Clone + 'static, VOut: Clone + 'static> KeyedContext<'_, 'a, K, KOut, VOut> {
    /// The current key: the record's, or the timer's in
    /// [`KeyedProcessor::on_timer`], where there is no record.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// struct Expire;
    /// impl KeyedProcessor<String, String, String, String> for Expire {
    /// #     fn process_element(&mut self, r: Record<String, String>, ctx: &mut KeyedContext<'_, '_, String, String, String>) -> Result<(), ProcessError> {
    /// #         ctx.register_event_time_timer(r.timestamp + 1_000)
    /// #     }
    ///     fn on_timer(
    ///         &mut self,
    ///         timer: Timer,
    ///         ctx: &mut KeyedContext<'_, '_, String, String, String>,
    ///     ) -> Result<(), ProcessError> {
    ///         let key: String = ctx.key().clone();
    ///         ctx.forward(Record::new(key, "expired".to_string(), timer.time))
    ///     }
    /// }
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::keyed("state"));
    /// # b.stream("in", Serdes::string(), Serdes::string())
    /// #     .process(&["state"], || KeyedProcess::new("state", Serdes::string(), Expire))
    /// #     .to("out", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("out", Serdes::string(), Serdes::string());
    /// driver.pipe(&input, "alice".to_string(), "login".to_string(), 0)?;
    /// driver.pipe(&input, "bob".to_string(), "login".to_string(), 5_000)?;
    /// assert_eq!(driver.read_key_values(&out)?, vec![("alice".to_string(), "expired".to_string())]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn key(&self) -> &K {
        self.key
    }

    /// Sends a record to the processor's children: any key and value of
    /// the output types, with any timestamp.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// struct Lengths;
    /// impl KeyedProcessor<String, String, String, i64> for Lengths {
    ///     fn process_element(
    ///         &mut self,
    ///         r: Record<String, String>,
    ///         ctx: &mut KeyedContext<'_, '_, String, String, i64>,
    ///     ) -> Result<(), ProcessError> {
    ///         let n = r.value.len() as i64;
    ///         ctx.forward(r.with_value(n))
    ///     }
    /// }
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::keyed("state"));
    /// # b.stream("in", Serdes::string(), Serdes::string())
    /// #     .process(&["state"], || KeyedProcess::new("state", Serdes::string(), Lengths))
    /// #     .to("out", Serdes::string(), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("out", Serdes::string(), Serdes::i64());
    /// driver.pipe(&input, "k".to_string(), "hello".to_string(), 0)?;
    /// assert_eq!(driver.read_key_values(&out)?, vec![("k".to_string(), 5)]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn forward(&mut self, record: Record<KOut, VOut>) -> Result<(), ProcessError> {
        self.ctx.forward(record)
    }

    /// The task's watermark (ms; `i64::MIN` before the first record): no
    /// record older than it is expected any more.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// struct OnTime;
    /// impl KeyedProcessor<String, String, String, String> for OnTime {
    ///     fn process_element(
    ///         &mut self,
    ///         r: Record<String, String>,
    ///         ctx: &mut KeyedContext<'_, '_, String, String, String>,
    ///     ) -> Result<(), ProcessError> {
    ///         if r.timestamp < ctx.watermark() {
    ///             return Ok(()); // late: drop it
    ///         }
    ///         ctx.forward(r)
    ///     }
    /// }
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::keyed("state"));
    /// # b.stream("in", Serdes::string(), Serdes::string())
    /// #     .process(&["state"], || KeyedProcess::new("state", Serdes::string(), OnTime))
    /// #     .to("out", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("out", Serdes::string(), Serdes::string());
    /// for (t, v) in [(10_000, "a"), (5_000, "late"), (12_000, "b")] {
    ///     driver.pipe(&input, "k".to_string(), v.to_string(), t)?;
    /// }
    /// let values: Vec<String> = driver.read_key_values(&out)?.into_iter().map(|(_, v)| v).collect();
    /// assert_eq!(values, ["a", "b"]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn watermark(&self) -> i64 {
        self.ctx.watermark()
    }

    /// Processing time: the wall clock (ms) when the callback started (the
    /// driver's clock under
    /// [`TopologyTestDriver`](crate::testing::TopologyTestDriver)).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// struct Lag;
    /// impl KeyedProcessor<String, String, String, i64> for Lag {
    ///     fn process_element(
    ///         &mut self,
    ///         r: Record<String, String>,
    ///         ctx: &mut KeyedContext<'_, '_, String, String, i64>,
    ///     ) -> Result<(), ProcessError> {
    ///         let lag_ms = ctx.current_processing_time() - r.timestamp;
    ///         ctx.forward(r.with_value(lag_ms))
    ///     }
    /// }
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::keyed("state"));
    /// # b.stream("in", Serdes::string(), Serdes::string())
    /// #     .process(&["state"], || KeyedProcess::new("state", Serdes::string(), Lag))
    /// #     .to("out", Serdes::string(), Serdes::i64());
    /// let mut driver = TopologyTestDriver::new(b.build()?)?.start_wall_clock_at(100_000)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("out", Serdes::string(), Serdes::i64());
    /// driver.pipe(&input, "k".to_string(), "v".to_string(), 40_000)?;
    /// assert_eq!(driver.read_key_values(&out)?, vec![("k".to_string(), 60_000)]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn current_processing_time(&self) -> i64 {
        self.now
    }

    /// The processor's own context: other stores, the source offset, the
    /// stream time.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// struct Offsets;
    /// impl KeyedProcessor<String, String, String, i64> for Offsets {
    ///     fn process_element(
    ///         &mut self,
    ///         r: Record<String, String>,
    ///         ctx: &mut KeyedContext<'_, '_, String, String, i64>,
    ///     ) -> Result<(), ProcessError> {
    ///         let offset = ctx.context().source().map_or(-1, |source| source.offset);
    ///         ctx.forward(r.with_value(offset))
    ///     }
    /// }
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::keyed("state"));
    /// # b.stream("in", Serdes::string(), Serdes::string())
    /// #     .process(&["state"], || KeyedProcess::new("state", Serdes::string(), Offsets))
    /// #     .to("out", Serdes::string(), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("out", Serdes::string(), Serdes::i64());
    /// driver.pipe(&input, "a".to_string(), "x".to_string(), 0)?;
    /// driver.pipe(&input, "b".to_string(), "y".to_string(), 0)?;
    /// assert_eq!(driver.read_key_values(&out)?, vec![("a".to_string(), 0), ("b".to_string(), 1)]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn context(&mut self) -> &mut ProcessorContext<'a, KOut, VOut> {
        self.ctx
    }

    /// Calls [`KeyedProcessor::on_timer`] for this key when the watermark
    /// reaches `time` (at once, after this callback, if it already has).
    /// Registering the same time twice registers one timer.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// struct Delay;
    /// impl KeyedProcessor<String, String, String, String> for Delay {
    ///     fn process_element(
    ///         &mut self,
    ///         r: Record<String, String>,
    ///         ctx: &mut KeyedContext<'_, '_, String, String, String>,
    ///     ) -> Result<(), ProcessError> {
    ///         ctx.register_event_time_timer(r.timestamp + 60_000) // a minute of event time later
    ///     }
    /// #     fn on_timer(&mut self, timer: Timer, ctx: &mut KeyedContext<'_, '_, String, String, String>) -> Result<(), ProcessError> {
    /// #         let key = ctx.key().clone();
    /// #         ctx.forward(Record::new(key, "a minute on".to_string(), timer.time))
    /// #     }
    /// }
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::keyed("state"));
    /// # b.stream("in", Serdes::string(), Serdes::string())
    /// #     .process(&["state"], || KeyedProcess::new("state", Serdes::string(), Delay))
    /// #     .to("out", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("out", Serdes::string(), Serdes::string());
    /// driver.pipe(&input, "k".to_string(), "v".to_string(), 0)?;
    /// assert!(driver.read(&out)?.is_empty());
    /// driver.pipe(&input, "other".to_string(), "v".to_string(), 90_000)?; // the watermark passes 60 s
    /// assert_eq!(driver.read(&out)?[0].timestamp, 60_000);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn register_event_time_timer(&mut self, time: i64) -> Result<(), ProcessError> {
        if time <= self.ctx.watermark() {
            *self.fire_now = true;
        }
        self.set_timer(TimeDomain::EventTime, time, true)
    }

    /// Deletes this key's event-time timer at `time`, if there is one. To
    /// delete a timer, keep its time (in a [`ValueState`]).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// struct Unpaid { deadline: ValueState<i64> }
    /// impl KeyedProcessor<String, String, String, String> for Unpaid {
    ///     fn process_element(
    ///         &mut self,
    ///         r: Record<String, String>,
    ///         ctx: &mut KeyedContext<'_, '_, String, String, String>,
    ///     ) -> Result<(), ProcessError> {
    ///         if r.value == "placed" {
    ///             let deadline = r.timestamp + 3_600_000;
    ///             self.deadline.set(ctx, &deadline)?;
    ///             ctx.register_event_time_timer(deadline)
    ///         } else if let Some(deadline) = self.deadline.get(ctx)? {
    ///             self.deadline.clear(ctx)?; // paid in time
    ///             ctx.delete_event_time_timer(deadline)
    ///         } else {
    ///             Ok(())
    ///         }
    ///     }
    /// #     fn on_timer(&mut self, timer: Timer, ctx: &mut KeyedContext<'_, '_, String, String, String>) -> Result<(), ProcessError> {
    /// #         let key = ctx.key().clone();
    /// #         ctx.forward(Record::new(key, "unpaid".to_string(), timer.time))
    /// #     }
    /// }
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::keyed("state"));
    /// # b.stream("in", Serdes::string(), Serdes::string())
    /// #     .process(&["state"], || KeyedProcess::new("state", Serdes::string(), Unpaid { deadline: ValueState::new("deadline", Serdes::i64()) }))
    /// #     .to("out", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("out", Serdes::string(), Serdes::string());
    /// driver.pipe(&input, "order-1".to_string(), "placed".to_string(), 0)?;
    /// driver.pipe(&input, "order-2".to_string(), "placed".to_string(), 0)?;
    /// driver.pipe(&input, "order-1".to_string(), "paid".to_string(), 600_000)?;
    /// driver.pipe(&input, "order-3".to_string(), "placed".to_string(), 7_200_000)?; // two hours on
    /// assert_eq!(driver.read_key_values(&out)?, vec![("order-2".to_string(), "unpaid".to_string())]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn delete_event_time_timer(&mut self, time: i64) -> Result<(), ProcessError> {
        self.set_timer(TimeDomain::EventTime, time, false)
    }

    /// Calls [`KeyedProcessor::on_timer`] for this key once the wall clock
    /// reaches `time` (checked every [`KeyedProcess::tick`]), also while no
    /// records arrive.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// struct Flush;
    /// impl KeyedProcessor<String, String, String, String> for Flush {
    ///     fn process_element(
    ///         &mut self,
    ///         r: Record<String, String>,
    ///         ctx: &mut KeyedContext<'_, '_, String, String, String>,
    ///     ) -> Result<(), ProcessError> {
    ///         ctx.register_processing_time_timer(ctx.current_processing_time() + 5_000)
    ///     }
    /// #     fn on_timer(&mut self, timer: Timer, ctx: &mut KeyedContext<'_, '_, String, String, String>) -> Result<(), ProcessError> {
    /// #         let key = ctx.key().clone();
    /// #         ctx.forward(Record::new(key, "flushed".to_string(), timer.time))
    /// #     }
    /// }
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::keyed("state"));
    /// # b.stream("in", Serdes::string(), Serdes::string())
    /// #     .process(&["state"], || KeyedProcess::new("state", Serdes::string(), Flush))
    /// #     .to("out", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?.start_wall_clock_at(0)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("out", Serdes::string(), Serdes::string());
    /// driver.pipe(&input, "k".to_string(), "v".to_string(), 0)?;
    /// driver.advance_wall_clock(Duration::from_secs(4))?;
    /// assert!(driver.read(&out)?.is_empty());
    /// driver.advance_wall_clock(Duration::from_secs(2))?;
    /// assert_eq!(driver.read_key_values(&out)?, vec![("k".to_string(), "flushed".to_string())]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn register_processing_time_timer(&mut self, time: i64) -> Result<(), ProcessError> {
        self.set_timer(TimeDomain::ProcessingTime, time, true)
    }

    /// Deletes this key's processing-time timer at `time`, if there is one.
    /// Here a debounce: each record moves the key's timer one second on, so it
    /// fires once the key has been quiet for a second.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// struct Debounce { pending: ValueState<i64> }
    /// impl KeyedProcessor<String, String, String, String> for Debounce {
    ///     fn process_element(
    ///         &mut self,
    ///         _r: Record<String, String>,
    ///         ctx: &mut KeyedContext<'_, '_, String, String, String>,
    ///     ) -> Result<(), ProcessError> {
    ///         if let Some(at) = self.pending.get(ctx)? {
    ///             ctx.delete_processing_time_timer(at)?;
    ///         }
    ///         let at = ctx.current_processing_time() + 1_000;
    ///         self.pending.set(ctx, &at)?;
    ///         ctx.register_processing_time_timer(at)
    ///     }
    /// #     fn on_timer(&mut self, timer: Timer, ctx: &mut KeyedContext<'_, '_, String, String, String>) -> Result<(), ProcessError> {
    /// #         self.pending.clear(ctx)?;
    /// #         let key = ctx.key().clone();
    /// #         ctx.forward(Record::new(key, "quiet".to_string(), timer.time))
    /// #     }
    /// }
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::keyed("state"));
    /// # b.stream("in", Serdes::string(), Serdes::string())
    /// #     .process(&["state"], || KeyedProcess::new("state", Serdes::string(), Debounce { pending: ValueState::new("pending", Serdes::i64()) }))
    /// #     .to("out", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?.start_wall_clock_at(0)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("out", Serdes::string(), Serdes::string());
    /// for _ in 0..3 {
    ///     driver.pipe(&input, "k".to_string(), "typing".to_string(), 0)?;
    ///     driver.advance_wall_clock(Duration::from_millis(600))?;
    /// }
    /// assert!(driver.read(&out)?.is_empty());
    /// driver.advance_wall_clock(Duration::from_secs(1))?;
    /// assert_eq!(driver.read_key_values(&out)?.len(), 1);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn delete_processing_time_timer(&mut self, time: i64) -> Result<(), ProcessError> {
        self.set_timer(TimeDomain::ProcessingTime, time, false)
    }

    fn set_timer(&mut self, domain: TimeDomain, time: i64, on: bool) -> Result<(), ProcessError> {
        let mut key = timer_prefix(domain, time);
        key.extend_from_slice(self.key_bytes);
        let mut store = raw(self.ctx, self.store)?;
        if on {
            store.put(&key, &vec![1])
        } else {
            store.delete(&key)
        }
    }

    /// The store key of state `name`'s entry for the current key, followed
    /// by `suffix` (a map key).
    pub(crate) fn entry_key(&self, name: &str, suffix: &[u8]) -> Result<Vec<u8>, ProcessError> {
        let mut out = Vec::with_capacity(9 + name.len() + self.key_bytes.len() + suffix.len());
        out.push(STATE);
        out.extend_from_slice(&self.len_prefix(name.len())?);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&self.len_prefix(self.key_bytes.len())?);
        out.extend_from_slice(self.key_bytes);
        out.extend_from_slice(suffix);
        Ok(out)
    }

    fn len_prefix(&self, len: usize) -> Result<[u8; 4], ProcessError> {
        u32::try_from(len).map(u32::to_be_bytes).map_err(|_| ProcessError::Topology {
            node: format!("keyed state in store `{}`", self.store),
            reason: format!("a state name or key of {len} bytes is too long (at most 4 GiB)"),
        })
    }

    /// The payload of a state entry, `None` if absent or expired (an
    /// expired entry is deleted).
    pub(crate) fn read_entry(&mut self, entry: &[u8]) -> Result<Option<Vec<u8>>, ProcessError> {
        let now = self.now;
        let store_name = self.store;
        let mut store = raw(self.ctx, self.store)?;
        let Some(value) = store.get(&entry.to_vec())? else { return Ok(None) };
        let (expires, payload) =
            split_value(&value).ok_or_else(|| corrupt(store_name, "a state value is too short"))?;
        if expires <= now {
            store.delete(&entry.to_vec())?;
            store.delete(&ttl_index_key(expires, entry))?;
            return Ok(None);
        }
        Ok(Some(payload.to_vec()))
    }

    /// Every live entry whose key starts with `prefix`, with its payload.
    pub(crate) fn scan_entries(&mut self, prefix: &[u8]) -> Result<Entries, ProcessError> {
        let now = self.now;
        let store_name = self.store;
        let mut store = raw(self.ctx, self.store)?;
        let mut live = Vec::new();
        for (entry, value) in store.prefix_scan(&prefix.to_vec())? {
            let (expires, payload) =
                split_value(&value).ok_or_else(|| corrupt(store_name, "a state value is too short"))?;
            if expires <= now {
                store.delete(&entry)?;
                store.delete(&ttl_index_key(expires, &entry))?;
            } else {
                let payload = payload.to_vec();
                live.push((entry, payload));
            }
        }
        Ok(live)
    }

    /// Writes a state entry; with a TTL it expires `ttl_ms` from now.
    pub(crate) fn write_entry(
        &mut self,
        entry: Vec<u8>,
        payload: &[u8],
        ttl_ms: Option<i64>,
    ) -> Result<(), ProcessError> {
        let expires = ttl_ms.map_or(NEVER, |ttl| self.now.saturating_add(ttl));
        self.unindex(&entry)?;
        let mut store = raw(self.ctx, self.store)?;
        if expires != NEVER {
            store.put(&ttl_index_key(expires, &entry), &vec![1])?;
        }
        let mut value = Vec::with_capacity(8 + payload.len());
        value.extend_from_slice(&sortable(expires));
        value.extend_from_slice(payload);
        store.put(&entry, &value)
    }

    /// Deletes a state entry.
    pub(crate) fn delete_entry(&mut self, entry: Vec<u8>) -> Result<(), ProcessError> {
        self.unindex(&entry)?;
        raw(self.ctx, self.store)?.delete(&entry)
    }

    /// Removes the TTL index entry of `entry`'s current value, if any.
    fn unindex(&mut self, entry: &[u8]) -> Result<(), ProcessError> {
        let store_name = self.store;
        let mut store = raw(self.ctx, self.store)?;
        if let Some(old) = store.get(&entry.to_vec())? {
            let (expires, _) = split_value(&old).ok_or_else(|| corrupt(store_name, "a state value is too short"))?;
            if expires != NEVER {
                store.delete(&ttl_index_key(expires, entry))?;
            }
        }
        Ok(())
    }
}

/// The bytes-level view of a keyed processor's store.
fn raw<'v, KOut: Clone + 'static, VOut: Clone + 'static>(
    ctx: &'v mut ProcessorContext<'_, KOut, VOut>,
    store: &str,
) -> Result<KeyValueView<'v, Vec<u8>, Vec<u8>>, ProcessError> {
    ctx.store::<Vec<u8>, Vec<u8>>(store)
}

fn corrupt(store: &str, reason: &str) -> ProcessError {
    ProcessError::Serde {
        what: format!("keyed state in store `{store}`"),
        source: SerdeError::new(
            "keyed-state",
            format!(
                "{reason}; the store holds data a keyed processor did not write (is it shared with another \
                 processor?)"
            ),
        ),
    }
}
