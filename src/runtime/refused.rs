//! Records the broker refuses for a reason of their own, and how they
//! reach `errors.production` under both guarantees.
//!
//! A produce request can fail for the records in it rather than for the
//! broker, the network or the transaction. These Kafka error codes say so,
//! and sending the same record again is refused again:
//!
//! | code | Kafka | why |
//! |---|---|---|
//! | `INVALID_TIMESTAMP` | 32 | the record's timestamp is more than the topic's `message.timestamp.after.max.ms` ahead of the broker's clock (1 hour by default since Kafka 4.0) or `message.timestamp.before.max.ms` behind it |
//! | `INVALID_RECORD` | 87 | the broker failed to validate the record: a null key for a compacted topic, or any record error when more than one record of a batch was refused (librdkafka then reports `INVALID_RECORD` for each, KIP-467) |
//! | `MESSAGE_TOO_LARGE` | 10 | the batch holding the record is larger than the topic's `max.message.bytes` |
//! | `RECORD_LIST_TOO_LARGE` | 18 | the batch holding the record is larger than the topic's `segment.bytes` |
//! | `CORRUPT_MESSAGE` | 2 | the broker found the record corrupt (brokers before 2.x said so of a null key for a compacted topic) |
//!
//! Not in the list: errors that pass (`NOT_LEADER_OR_FOLLOWER`, timeouts:
//! librdkafka retries them), that concern the producer or the transaction
//! (`INVALID_PRODUCER_EPOCH`, `OUT_OF_ORDER_SEQUENCE_NUMBER`: the runtime's
//! classifier), a permission (`TOPIC_AUTHORIZATION_FAILED`: stops with the
//! ACL to grant) or the topic's configuration for every record
//! (`UNSUPPORTED_FOR_MESSAGE_FORMAT`).
//!
//! The broker refuses a whole batch. librdkafka may fail the other records
//! of the batch with `_INVALID_DIFFERENT_RECORD` (KIP-467's record errors),
//! but under transactions it reports the batch's error for every record in
//! it (seen on Kafka 4.3.1: 41 records, all `INVALID_TIMESTAMP`), so
//! [`culprits`] picks the record at fault by what the error says; the
//! others are sent again (at-least-once) or reprocessed (exactly-once). The
//! two size errors are the batch's own: librdkafka does not split a batch
//! the broker finds too large (the Java producer does), so with a topic
//! whose `max.message.bytes` is below the producer's `message.max.bytes`
//! (1,000,000 by default, below the broker's default of 1,048,588) a batch
//! of small records is refused; its largest record goes to the policy,
//! wrongly (keep `message.max.bytes` at or below the topics'
//! `max.message.bytes`; docs/configuration.md says so). A record larger than
//! the producer's own `message.max.bytes` is refused before it is sent,
//! with the record at hand.
//!
//! Each output remembers the input record it was produced for (the
//! delivery report's opaque, [`Source`]). Under at-least-once a refused
//! record goes to the policy at the commit, with that input record's
//! coordinates. Under exactly-once the refusal fails the transaction, which
//! is aborted; the refusal is remembered here ([`Refusals`]) and, when the
//! tasks process the input record again, its write to that topic goes to
//! the policy at once instead of to the broker, as a refusal at send does:
//! the record is dead-lettered (the input record's bytes, as for every
//! record the policy meets while processing), skipped, or the application
//! stops naming it. The rest of the aborted transaction is processed again
//! and written once. Kafka Streams hands such errors to its
//! `ProductionExceptionHandler` (`RecordCollectorImpl.recordSendError`:
//! fail, or continue and drop the record); under exactly-once its producer
//! leaves the transaction to abort all the same, and the reprocessing
//! meets the record again. Remembering the refusal for the reprocessing is
//! rivulet's own.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode as C;

use crate::processor::wall_clock_ms;
use crate::record::{Headers, SourceOffset};

/// An output record the broker did not accept.
#[derive(Debug, Clone)]
pub(crate) struct DeliveryFailure {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) timestamp: Option<i64>,
    pub(crate) headers: Headers,
    /// The input record it was produced for, if any.
    pub(crate) source: Option<SourceOffset>,
    pub(crate) reason: String,
    pub(crate) code: Option<rdkafka::types::RDKafkaErrorCode>,
    pub(crate) cause: FailureCause,
}

/// Why a delivery failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureCause {
    /// The broker refused for lack of WRITE on the topic: `reason` names
    /// the ACL to grant.
    Denied,
    /// The broker refused the record for a reason of its own
    /// (`runtime::refused`): sending it again would be refused again.
    Refused,
    /// Another record of its batch was refused (librdkafka's
    /// `_INVALID_DIFFERENT_RECORD`): this one may be sent again.
    OtherRecord,
    /// Anything else (its time ran out, ...).
    Other,
}

/// What a delivery report needs to know of its record beyond what
/// librdkafka reports: the input record it was produced for (`None`: a
/// changelog record, a watermark marker, a dead letter, or an output of a
/// timer or of the commit) and its timestamp (a failed report has the
/// broker's, -1). The record's opaque, shared by the outputs of one input
/// record with one timestamp.
pub(crate) type Source = Arc<Sent>;

/// See [`Source`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Sent {
    pub(crate) source: Option<SourceOffset>,
    pub(crate) timestamp: i64,
}

/// At most this many refusals are remembered per thread; the oldest go
/// first (a forgotten one is refused again and remembered again).
const REMEMBERED: usize = 10_000;

/// If `e` refuses the record for a reason of its own (see the module
/// docs), the broker's reason in words, naming the error code and what to
/// change. `timestamp` is the record's, `size` its key and value bytes.
pub(crate) fn refusal(e: &KafkaError, timestamp: Option<i64>, size: usize) -> Option<String> {
    let code = e.rdkafka_error_code()?;
    let why = match code {
        C::InvalidTimestamp => format!("INVALID_TIMESTAMP: {}", timestamp_out_of_range(timestamp)),
        C::InvalidRecord => {
            let mut why = "INVALID_RECORD: the broker failed to validate the record (a null key for a compacted \
                           topic, or a timestamp out of range when more than one record of the batch was refused)"
                .to_string();
            if timestamp.is_some_and(|t| t - wall_clock_ms() > HOUR_MS) {
                why.push_str("; if it is the timestamp: ");
                why.push_str(&timestamp_out_of_range(timestamp));
            }
            why
        }
        C::MessageSizeTooLarge => format!(
            "MESSAGE_TOO_LARGE: the batch holding the record ({size} bytes of key and value) is larger \
             than the topic's max.message.bytes"
        ),
        C::MessageBatchTooLarge => format!(
            "RECORD_LIST_TOO_LARGE: the batch holding the record ({size} bytes of key and value) is larger \
             than the topic's segment.bytes"
        ),
        C::InvalidMessage => "CORRUPT_MESSAGE: the broker found the record corrupt".to_string(),
        _ => return None,
    };
    Some(format!("{why} ({e})"))
}

const HOUR_MS: i64 = 3_600_000;

/// "timestamp 2033-05-18T03:33:20Z (2000000000000) is more than
/// message.timestamp.after.max.ms ahead of the broker's clock ...".
fn timestamp_out_of_range(timestamp: Option<i64>) -> String {
    let Some(ts) = timestamp else {
        return "the record's timestamp is out of the range the topic accepts".into();
    };
    let (direction, key, default) = if ts > wall_clock_ms() {
        ("ahead of", "message.timestamp.after.max.ms", "1 hour")
    } else {
        ("behind", "message.timestamp.before.max.ms", "unlimited")
    };
    format!(
        "timestamp {} ({ts}) is more than the topic's {key} (default {default}) {direction} the broker's clock; \
         fix the record's time or raise {key} on the topic",
        iso_utc(ts)
    )
}

/// `ms` since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
fn iso_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// Which of `refused` (failures with a [`refusal`] code, in the order
/// reported) are at fault. librdkafka reports the error of a refused batch
/// for every record in it, under transactions always (KIP-467's record
/// errors are not passed on there), so the culprit is picked per topic
/// partition by what the code says: a timestamp more than an hour (the
/// broker's default) ahead of the clock, else the latest one if ahead,
/// else the earliest; the largest record for a size; a null key, else the
/// first, for an invalid record. At least one is picked in each partition,
/// so each round makes progress; the others are sent again or reprocessed.
pub(crate) fn culprits(refused: &[DeliveryFailure]) -> Vec<usize> {
    let now = wall_clock_ms();
    let ts = |i: &usize| refused[*i].timestamp.unwrap_or(now);
    let mut partitions: Vec<(&str, i32)> = refused.iter().map(|f| (f.topic.as_str(), f.partition)).collect();
    partitions.sort_unstable();
    partitions.dedup();
    let mut picked = Vec::new();
    for (topic, partition) in partitions {
        let group: Vec<usize> =
            (0..refused.len()).filter(|&i| refused[i].topic == topic && refused[i].partition == partition).collect();
        let Some(&first) = group.first() else { continue };
        let far_ahead: Vec<usize> = group.iter().copied().filter(|i| ts(i) - now > HOUR_MS).collect();
        let null_keys: Vec<usize> = group.iter().copied().filter(|&i| refused[i].key.is_none()).collect();
        let size =
            |i: &usize| refused[*i].key.as_ref().map_or(0, Vec::len) + refused[*i].value.as_ref().map_or(0, Vec::len);
        picked.extend(match refused[first].code {
            Some(C::InvalidTimestamp) if far_ahead.is_empty() => {
                let latest = group.iter().copied().max_by_key(ts).unwrap_or(first);
                let earliest = group.iter().copied().min_by_key(ts).unwrap_or(first);
                vec![if ts(&latest) > now { latest } else { earliest }]
            }
            Some(C::InvalidTimestamp) => far_ahead,
            Some(C::MessageSizeTooLarge | C::MessageBatchTooLarge) => {
                vec![group.iter().copied().max_by_key(size).unwrap_or(first)]
            }
            _ if !null_keys.is_empty() => null_keys,
            _ if !far_ahead.is_empty() => far_ahead,
            _ => vec![first],
        });
    }
    picked.sort_unstable();
    picked
}

/// A record the broker refused inside a failed transaction: the input
/// record it was produced for, the topic it went to, and why.
struct Refusal {
    source: SourceOffset,
    topic: String,
    reason: String,
}

/// The refusals of this thread's aborted transactions, until their input
/// records are committed (at most the last [`REMEMBERED`]).
#[derive(Default)]
pub(crate) struct Refusals {
    any: AtomicBool,
    list: Mutex<VecDeque<Refusal>>,
}

impl Refusals {
    /// Remembers that the broker refused the record `source` produced for
    /// `topic`.
    pub(crate) fn remember(&self, source: SourceOffset, topic: String, reason: String) {
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        if list.iter().any(|r| r.source == source && r.topic == topic) {
            return;
        }
        if list.len() >= REMEMBERED {
            list.pop_front();
        }
        list.push_back(Refusal { source, topic, reason });
        self.any.store(true, Ordering::Relaxed);
    }

    /// Forgets the refusals of input records `committed` says are behind
    /// the committed offsets: they are not processed again.
    pub(crate) fn forget(&self, committed: impl Fn(&SourceOffset) -> bool) {
        if !self.any.load(Ordering::Relaxed) {
            return;
        }
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|r| !committed(&r.source));
        self.any.store(!list.is_empty(), Ordering::Relaxed);
    }

    /// If the broker refused what `source` produced for `topic`, why.
    /// Remembered still: the transaction that sends the record to the
    /// policy may abort too (librdkafka's first transaction after a refused
    /// batch fails with `OUT_OF_ORDER_SEQUENCE_NUMBER` and bumps the epoch),
    /// and the record would be refused again.
    pub(crate) fn reason(&self, source: &SourceOffset, topic: &str) -> Option<String> {
        if !self.any.load(Ordering::Relaxed) {
            return None;
        }
        let list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        list.iter().find(|r| r.topic == topic && &r.source == source).map(|r| r.reason.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_written_in_utc() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_utc(2_000_000_000_000), "2033-05-18T03:33:20Z");
        assert_eq!(iso_utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(iso_utc(-1_000), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn a_timestamp_years_ahead_is_named_with_the_setting_to_change() {
        let e = KafkaError::MessageProduction(C::InvalidTimestamp);
        let why = refusal(&e, Some(2_000_000_000_000), 10).unwrap();
        assert!(why.starts_with("INVALID_TIMESTAMP: timestamp 2033-05-18T03:33:20Z (2000000000000)"), "{why}");
        assert!(why.contains("message.timestamp.after.max.ms") && why.contains("ahead of"), "{why}");
        let why = refusal(&e, Some(1_000), 10).unwrap();
        assert!(why.contains("message.timestamp.before.max.ms") && why.contains("behind"), "{why}");
        let why = refusal(&KafkaError::MessageProduction(C::InvalidRecord), Some(2_000_000_000_000), 10).unwrap();
        assert!(why.starts_with("INVALID_RECORD") && why.contains("after.max.ms"), "{why}");
    }

    #[test]
    fn only_errors_of_the_record_itself_are_refusals() {
        for code in
            [C::InvalidTimestamp, C::InvalidRecord, C::MessageSizeTooLarge, C::MessageBatchTooLarge, C::InvalidMessage]
        {
            assert!(refusal(&KafkaError::MessageProduction(code), None, 1).is_some(), "{code:?}");
        }
        for code in
            [C::InvalidDifferentRecord, C::State, C::TopicAuthorizationFailed, C::MessageTimedOut, C::PurgeQueue]
        {
            assert!(refusal(&KafkaError::MessageProduction(code), None, 1).is_none(), "{code:?}");
        }
    }

    #[test]
    fn a_refusal_is_found_by_its_source_and_topic() {
        let refusals = Refusals::default();
        let at = |offset| SourceOffset { topic: "in".into(), partition: 0, offset };
        assert_eq!(refusals.reason(&at(3), "out"), None);
        refusals.remember(at(3), "out".into(), "too late".into());
        assert_eq!(refusals.reason(&at(3), "other"), None);
        assert_eq!(refusals.reason(&at(4), "out"), None);
        assert_eq!(refusals.reason(&at(3), "out").as_deref(), Some("too late"));
        assert_eq!(refusals.reason(&at(3), "out").as_deref(), Some("too late"));
        refusals.forget(|s| s.offset < 3);
        assert_eq!(refusals.reason(&at(3), "out").as_deref(), Some("too late"));
        refusals.forget(|s| s.offset < 4);
        assert_eq!(refusals.reason(&at(3), "out"), None);
    }

    fn failure(partition: i32, key: Option<&str>, value: usize, timestamp: i64, code: C) -> DeliveryFailure {
        DeliveryFailure {
            topic: "out".into(),
            partition,
            key: key.map(|k| k.as_bytes().to_vec()),
            value: Some(vec![b'v'; value]),
            timestamp: Some(timestamp),
            headers: Vec::new(),
            source: None,
            reason: String::new(),
            code: Some(code),
            cause: FailureCause::Refused,
        }
    }

    #[test]
    fn the_culprit_of_a_refused_batch_is_picked_by_what_the_broker_said() {
        let now = wall_clock_ms();
        let t = C::InvalidTimestamp;
        // A batch refused whole: the record years ahead, in each partition.
        let batch = [
            failure(0, Some("a"), 1, now, t),
            failure(0, Some("b"), 1, 2_000_000_000_000, t),
            failure(0, Some("c"), 1, now, t),
            failure(1, Some("d"), 1, now - 5, t),
            failure(1, Some("e"), 1, now + 600_000, t),
        ];
        assert_eq!(culprits(&batch), vec![1, 4], "years ahead; else the latest ahead of the clock");
        let behind = [failure(0, Some("a"), 1, now - 5, t), failure(0, Some("b"), 1, 1_000, t)];
        assert_eq!(culprits(&behind), vec![1], "else the earliest");
        let size = C::MessageSizeTooLarge;
        let large = [failure(0, Some("a"), 10, now, size), failure(0, Some("b"), 900, now, size)];
        assert_eq!(culprits(&large), vec![1], "the largest");
        let invalid = C::InvalidRecord;
        let null_key = [failure(0, Some("a"), 1, now, invalid), failure(0, None, 1, now, invalid)];
        assert_eq!(culprits(&null_key), vec![1], "a null key");
        assert_eq!(culprits(&[failure(0, Some("a"), 1, now, invalid)]), vec![0]);
    }
}
