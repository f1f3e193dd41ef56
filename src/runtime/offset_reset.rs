//! No silent skipping: a source partition whose next offset is no longer
//! in its topic (the records were deleted by retention or `DeleteRecords`
//! under a stopped or slow application) is handled by
//! `errors.offset_out_of_range` ([`OffsetResetPolicy`]), logged as an ERROR
//! naming the partition and the offsets skipped, and counted in
//! `rivulet_offset_resets_total`.
//!
//! How it is detected: librdkafka keeps `auto.offset.reset = earliest`
//! (which is also where a group without committed offsets starts). A fetch
//! at an offset the broker no longer has, whether the committed offset at
//! assignment or the position of a running consumer, fails with
//! OFFSET_OUT_OF_RANGE; librdkafka then resets the position and logs one
//! warning, `<topic> [<partition>]: offset reset (at offset <n> ...) to ...:
//! Broker: Offset out of range` (`rd_kafka_offset_reset` in librdkafka's
//! `rdkafka_offset.c`), and nothing else: no error event, unless
//! `auto.offset.reset = error`, which would also stop a new group's first
//! start (librdkafka issues #2961, #4224). rust-rdkafka routes librdkafka's
//! log lines through the consumer's queue, so the consumer context sees
//! the line in `poll`, before any record fetched from the new position; it
//! records it ([`ResetSignals::note`]) and the processing thread acts on it
//! ([`ResetSignals::check`]) before it processes the next record, so under
//! `fail` no record past the gap is processed, and so none is committed.
//! A gap in the offsets of the polled records is not a signal: transaction
//! markers, aborted transactions and compaction leave gaps too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::message::BorrowedMessage;
use rdkafka::{ClientConfig, Message, Offset};

use crate::config::OffsetResetPolicy;
use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// How long the watermark query and the seek after a reset may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A fetch that librdkafka found out of range: the partition and the
/// offset it could not read (the committed offset at assignment, or the
/// running consumer's position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutOfRange {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) at: i64,
}

/// Reads librdkafka's offset-reset warning for an out-of-range fetch;
/// `None` for any other log line (other resets, such as a group's first
/// start, are logged at debug level and never get here).
pub(crate) fn parse(fac: &str, message: &str) -> Option<OutOfRange> {
    if fac != "OFFSET" || !message.ends_with("Offset out of range") {
        return None;
    }
    let (head, rest) = message.split_once("]: offset reset (at offset ")?;
    // After librdkafka's thread name, `[thrd:main]: `; topic names have no spaces.
    let (before, partition) = head.rsplit_once(" [")?;
    let topic = before.rsplit(' ').next().filter(|t| !t.is_empty())?;
    let digits = rest.split(|c: char| !c.is_ascii_digit()).next()?;
    Some(OutOfRange { topic: topic.to_string(), partition: partition.parse().ok()?, at: digits.parse().ok()? })
}

/// What the policy makes of an out-of-range offset `at`, given the offsets
/// the partition still holds, `[low, high)`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Stop the application.
    Fail,
    /// Go on from `to`, skipping `skipped` offsets; `seek` when rivulet
    /// must move the position itself (librdkafka went to the earliest).
    GoOn { to: i64, skipped: u64, seek: bool },
}

pub(crate) fn decide(policy: OffsetResetPolicy, at: i64, low: i64, high: i64) -> Decision {
    let skipped = |to: i64| u64::try_from(to - at).unwrap_or(0);
    match policy {
        OffsetResetPolicy::Fail => Decision::Fail,
        OffsetResetPolicy::Earliest => Decision::GoOn { to: low, skipped: skipped(low), seek: false },
        OffsetResetPolicy::Latest => Decision::GoOn { to: high, skipped: skipped(high), seek: true },
    }
}

/// What happened to the offsets from `at` on, for the ERROR log.
pub(crate) fn lost(at: i64, low: i64, high: i64) -> String {
    if at < low {
        format!("offsets [{at}, {low}) were deleted before they were processed")
    } else {
        format!(
            "the partition holds offsets [{low}, {high}) only, so offset {at} is past its end (the topic \
             was recreated, or lost records)"
        )
    }
}

/// The error that stops the application under `fail`.
pub(crate) fn fail_error(r: &OutOfRange, low: i64, high: i64) -> Error {
    Error::OffsetOutOfRange(format!(
        "offset {at} of source topic {topic} partition {partition} (the committed offset, or the next one \
         to read) is out of range: {lost}; the partition now holds offsets [{low}, {high}). Nothing was \
         committed past offset {at} (errors.offset_out_of_range = \"fail\"). To go on, restart once with \
         errors.offset_out_of_range = \"earliest\" (RIVULET__ERRORS__OFFSET_OUT_OF_RANGE=earliest) to \
         continue from offset {low}, or \"latest\" to continue from the end; or stop every instance and \
         run `reset --to-earliest` to process the application's input again from the start (it also \
         deletes the internal topics and local state)",
        at = r.at,
        topic = r.topic,
        partition = r.partition,
        lost = lost(r.at, low, high),
    ))
}

/// librdkafka's log level must let its offset-reset warning through
/// (it follows the `log` crate's level otherwise, which `log.level` may
/// have set to errors only).
pub(crate) fn keep_warnings(config: &mut ClientConfig) {
    if matches!(
        config.log_level,
        RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error
    ) {
        config.set_log_level(RDKafkaLogLevel::Warning);
    }
}

/// The out-of-range fetches of one consumer, from its context's log
/// callback to its processing thread.
pub(crate) struct ResetSignals {
    policy: OffsetResetPolicy,
    metrics: Arc<Metrics>,
    /// Whether `pending` may hold something: one atomic read per record.
    seen: AtomicBool,
    pending: Mutex<Vec<OutOfRange>>,
    /// Under `latest`: the offset each partition was moved to; a record
    /// below it was fetched from the earliest before the move and is
    /// dropped. Touched only by the processing thread.
    floors: Mutex<HashMap<(String, i32), i64>>,
    has_floors: AtomicBool,
}

impl ResetSignals {
    pub(crate) fn new(policy: OffsetResetPolicy, metrics: Arc<Metrics>) -> ResetSignals {
        ResetSignals {
            policy,
            metrics,
            seen: AtomicBool::new(false),
            pending: Mutex::default(),
            floors: Mutex::default(),
            has_floors: AtomicBool::new(false),
        }
    }

    /// Called with every librdkafka log line of the consumer; keeps the
    /// out-of-range resets.
    pub(crate) fn note(&self, fac: &str, message: &str) {
        if let Some(reset) = parse(fac, message) {
            self.pending.lock().unwrap_or_else(|e| e.into_inner()).push(reset);
            self.seen.store(true, Ordering::Release);
        }
    }

    /// Applies the policy to the resets noted since the last call, telling
    /// `went_on(topic, partition, offset)` where each partition goes on
    /// (so that the next commit records it), and says whether `msg`, just
    /// polled, is to be processed (`false`: it was read before a move to
    /// the end, and is skipped with the rest). Call it after every `poll`,
    /// before processing what it returned.
    pub(crate) fn check<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        msg: Option<&BorrowedMessage<'_>>,
        mut went_on: impl FnMut(&str, i32, i64),
    ) -> Result<bool> {
        if self.seen.load(Ordering::Acquire) && self.seen.swap(false, Ordering::AcqRel) {
            let resets = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
            for reset in resets {
                let to = self.apply(consumer, &reset)?;
                went_on(&reset.topic, reset.partition, to);
            }
        }
        let Some(msg) = msg else { return Ok(true) };
        if !self.has_floors.load(Ordering::Acquire) {
            return Ok(true);
        }
        let mut floors = self.floors.lock().unwrap_or_else(|e| e.into_inner());
        let key = (msg.topic().to_string(), msg.partition());
        match floors.get(&key) {
            Some(&floor) if msg.offset() < floor => return Ok(false),
            Some(_) => {
                floors.remove(&key);
                self.has_floors.store(!floors.is_empty(), Ordering::Release);
            }
            None => {}
        }
        Ok(true)
    }

    /// Applies the policy to one reset: where the partition goes on.
    fn apply<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>, r: &OutOfRange) -> Result<i64> {
        let (topic, partition) = (r.topic.as_str(), r.partition);
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, TIMEOUT)
            .map_err(|e| Error::kafka(format!("reading the offsets of {topic}[{partition}] after a reset"), e))?;
        match decide(self.policy, r.at, low, high) {
            Decision::Fail => {
                let e = fail_error(r, low, high);
                tracing::error!(topic, partition, offset = r.at, low, high, "{e}");
                Err(e)
            }
            Decision::GoOn { to, skipped, seek } => {
                if seek {
                    consumer.seek(topic, partition, Offset::Offset(to), TIMEOUT).map_err(|e| {
                        Error::kafka(format!("moving {topic}[{partition}] to its end after an out-of-range offset"), e)
                    })?;
                    self.floors.lock().unwrap_or_else(|e| e.into_inner()).insert((r.topic.clone(), partition), to);
                    self.has_floors.store(true, Ordering::Release);
                }
                let policy = if seek { "latest" } else { "earliest" };
                self.metrics.offset_resets.with_label_values(&[topic, &partition.to_string()]).inc_by(skipped);
                tracing::error!(
                    topic,
                    partition,
                    from = r.at,
                    to,
                    skipped,
                    "offset {at} of source topic {topic} partition {partition} was out of range: {lost}; \
                     skipping offsets [{at}, {to}) ({skipped} offsets, counted in rivulet_offset_resets_total) \
                     and going on from offset {to} (errors.offset_out_of_range = \"{policy}\")",
                    at = r.at,
                    lost = lost(r.at, low, high),
                );
                Ok(to)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// The line librdkafka 2.12 logs (rdkafka_offset.c), as seen on the
    /// broker in integration-tests/offset_reset.rs.
    const LINE: &str =
        "[thrd:main]: in-3f.x_y [2]: offset reset (at offset 5 (leader epoch 0), broker 1) to offset BEGINNING \
                        (leader epoch -1): fetch failed due to requested offset not available on the broker: \
                        Broker: Offset out of range";

    #[test]
    fn reads_the_out_of_range_reset_line() {
        assert_eq!(parse("OFFSET", LINE), Some(OutOfRange { topic: "in-3f.x_y".into(), partition: 2, at: 5 }));
        let cached = LINE.replace("to offset BEGINNING", "to cached BEGINNING offset 40");
        assert_eq!(parse("OFFSET", &cached).map(|r| r.at), Some(5));
        let bare = LINE.trim_start_matches("[thrd:main]: ");
        assert_eq!(parse("OFFSET", bare).map(|r| r.topic), Some("in-3f.x_y".to_string()));
    }

    #[test]
    fn ignores_other_lines() {
        assert_eq!(parse("FETCH", LINE), None);
        assert_eq!(parse("OFFSET", &LINE.replace("Offset out of range", "Unknown topic or partition")), None);
        assert_eq!(parse("OFFSET", "in [0]: offset reset (at offset INVALID, broker -1) to BEGINNING: no previously committed offset available: Local: No offset stored"), None);
        assert_eq!(parse("OFFSET", "garbage: Offset out of range"), None);
    }

    #[test]
    fn earliest_skips_the_deleted_offsets_latest_everything_to_the_end() {
        use OffsetResetPolicy::*;
        assert_eq!(decide(Earliest, 5, 40, 100), Decision::GoOn { to: 40, skipped: 35, seek: false });
        assert_eq!(decide(Latest, 5, 40, 100), Decision::GoOn { to: 100, skipped: 95, seek: true });
        assert_eq!(decide(Fail, 5, 40, 100), Decision::Fail);
        // Past the end (the topic was recreated): going back skips nothing.
        assert_eq!(decide(Earliest, 120, 0, 60), Decision::GoOn { to: 0, skipped: 0, seek: false });
    }

    #[test]
    fn the_failure_names_the_partition_the_offsets_and_what_to_do() {
        let e = fail_error(&OutOfRange { topic: "orders".into(), partition: 3, at: 5 }, 40, 100).to_string();
        for part in ["topic orders partition 3", "offset 5", "[5, 40) were deleted", "holds offsets [40, 100)"] {
            assert!(e.contains(part), "{part}: {e}");
        }
        assert!(e.contains("errors.offset_out_of_range = \"earliest\"") && e.contains("reset --to-earliest"), "{e}");
    }

    #[test]
    fn the_log_level_lets_warnings_through() {
        let mut c = ClientConfig::new();
        c.set_log_level(RDKafkaLogLevel::Error);
        keep_warnings(&mut c);
        assert!(matches!(c.log_level, RDKafkaLogLevel::Warning));
        c.set_log_level(RDKafkaLogLevel::Debug);
        keep_warnings(&mut c);
        assert!(matches!(c.log_level, RDKafkaLogLevel::Debug));
    }
}
