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

mod context;
mod layout;
use layout::*;
mod process;
mod processor;
mod state;
#[cfg(test)]
mod tests;
mod timer;

use std::sync::Arc;
use std::time::Duration;

pub use context::KeyedContext;
pub use process::KeyedProcess;
pub use processor::KeyedProcessor;
pub use state::{ListState, MapState, ValueState};
pub use timer::{TimeDomain, Timer};

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
