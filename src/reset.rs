//! Resetting an application so that it processes its input again: the
//! `reset` subcommand of [`crate::main`], as Kafka Streams'
//! `kafka-streams-application-reset` tool (`StreamsResetter` in
//! apache/kafka's `tools`).
//!
//! Since the topology lives in the application's binary, the binary itself
//! knows what to reset. [`plan`] looks without changing anything:
//!
//! 1. it refuses while the group (`application_id`) has members, as a
//!    consumer group or as a streams group (`group_protocol = "streams"`,
//!    KIP-1071, which DescribeConsumerGroups does not see): an instance
//!    that runs would commit over the new offsets and write to the topics
//!    being deleted (Kafka Streams refuses the same way);
//! 2. it computes, for every partition of every source topic, the offset to
//!    start from ([`ResetTo`]; the earliest by default);
//! 3. it lists the internal topics to delete: the repartition, changelog and
//!    foreign-key subscription/response topics the topology names, the
//!    instances directory of interactive queries (`-instances`), and the
//!    ones a former version of it left (`<application_id>-` topics with an
//!    internal suffix, as Kafka Streams infers them), never a topic the
//!    topology reads or writes as a user topic (KAFKA-7930);
//! 4. it names the local state directory, `<state_dir>/<application_id>`.
//!
//! [`ResetPlan::apply`] then commits the offsets, deletes the topics (and
//! waits until the broker no longer lists them, so that the next start
//! creates them anew) and removes the state directory. Kafka Streams' tool
//! leaves the local state to `KafkaStreams#cleanUp()`; here the binary that
//! owns the state directory removes it (every instance's under it on this
//! machine). Other machines' state directories cannot be reached; an
//! instance that starts there with its old state finds its stores ahead
//! of the recreated changelogs, wipes them and restores
//! (`Task::restore_plan`).
//!
//! Left alone, as by Kafka Streams: output topics, the dead-letter topic
//! and the topics of global tables (read whole at every start, with no
//! committed offsets).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::AdminOptions;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use crate::error::{Error, Result};
use crate::kafka::admin::{admin_client, existing_topics};
use crate::kafka::{client_config, ClientRole};
use crate::processor::graph::TopicName;
use crate::topology::Topology;
use crate::Config;

const TIMEOUT: Duration = Duration::from_secs(30);

// The refusal while the application's group has live members.
mod members;
use members::{check_no_members, check_no_streams_members};

/// The name endings of rivulet's internal topics (after
/// `<application_id>-`): what a reset deletes even when the topology no
/// longer names the topic.
const INTERNAL_SUFFIXES: &[&str] =
    &["-repartition", "-changelog", "-subscription-registration", "-subscription-response", "-instances"];

/// Where the source topics' offsets are set (Kafka Streams' `--to-earliest`,
/// `--to-latest`, `--to-datetime`, `--by-duration`, `--to-offset`,
/// `--shift-by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResetTo {
    /// The first record still in each partition.
    #[default]
    Earliest,
    /// The end of each partition: only records written later are processed.
    Latest,
    /// The first record whose timestamp is at or after this time
    /// (milliseconds since the epoch); the end when there is none.
    Datetime(i64),
    /// As [`ResetTo::Datetime`], for the time this long before now.
    Duration(Duration),
    /// This offset in every partition, kept within the records there.
    Offset(i64),
    /// The committed offset moved by this many records (negative: back),
    /// kept within the records there; from the earliest when nothing was
    /// committed.
    ShiftBy(i64),
}

impl fmt::Display for ResetTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResetTo::Earliest => f.write_str("the earliest offsets"),
            ResetTo::Latest => f.write_str("the latest offsets (the end)"),
            ResetTo::Datetime(ms) => write!(f, "the first records at or after {ms} ms since the epoch"),
            ResetTo::Duration(d) => write!(f, "the first records of the last {} s", d.as_secs_f64()),
            ResetTo::Offset(o) => write!(f, "offset {o}"),
            ResetTo::ShiftBy(n) => write!(f, "the committed offsets shifted by {n}"),
        }
    }
}

/// One source partition's offsets: committed now, and after the reset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReset {
    /// The source topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The group's committed offset, if any.
    pub committed: Option<i64>,
    /// The offset the reset commits.
    pub offset: i64,
    /// Why the offset is not the one asked for (kept within the records,
    /// or no record that late).
    pub note: Option<String>,
}

/// What a reset will do, from [`plan`]; [`ResetPlan::apply`] does it. Its
/// `Display` is what `reset` (and `reset --dry-run`) prints.
#[derive(Debug, Clone)]
pub struct ResetPlan {
    /// The application id, which is also the consumer group.
    pub application_id: String,
    /// Where the offsets go.
    pub to: ResetTo,
    /// Every partition of every existing source topic.
    pub partitions: Vec<PartitionReset>,
    /// Source topics that do not exist: skipped, and reported as an error
    /// once the rest is done (as Kafka Streams' tool).
    pub missing_topics: Vec<String>,
    /// The internal topics that exist and will be deleted, sorted.
    pub delete_topics: Vec<String>,
    /// This application's local state directory.
    pub state_dir: PathBuf,
    /// Whether [`ResetPlan::state_dir`] exists on this machine.
    pub state_dir_exists: bool,
}

/// Looks at the group, the topics and the state directory, and says what a
/// reset to `to` would do; changes nothing. Fails while the group has
/// members, naming them.
pub fn plan(config: &Config, topology: &Topology, to: ResetTo) -> Result<ResetPlan> {
    let group = &config.application_id;
    let consumer = reset_consumer(config)?;
    check_no_members(&consumer, group, &config.kafka.bootstrap_servers)?;
    check_no_streams_members(config)?;
    let existing = existing_topics(config, consumer.client())?;

    let mut missing_topics = Vec::new();
    let mut tpl = TopicPartitionList::new();
    for topic in topology.source_topics() {
        match existing.get(&topic) {
            Some(&n) => {
                for p in 0..n {
                    tpl.add_partition(&topic, p);
                }
            }
            None => missing_topics.push(topic),
        }
    }
    let committed = if tpl.count() == 0 {
        TopicPartitionList::new()
    } else {
        consumer
            .committed_offsets(tpl.clone(), TIMEOUT)
            .map_err(|e| Error::kafka(format!("reading the committed offsets of group {group}"), e))?
    };
    let committed: BTreeMap<(String, i32), i64> = committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some(((e.topic().to_string(), e.partition()), o)),
            _ => None,
        })
        .collect();
    let by_time = match to {
        ResetTo::Datetime(ms) => Some(ms),
        ResetTo::Duration(d) => Some(now_ms().saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))),
        _ => None,
    };
    let at_time: BTreeMap<(String, i32), Offset> = match by_time {
        Some(ms) if tpl.count() > 0 => {
            let mut times = TopicPartitionList::new();
            for e in tpl.elements() {
                times
                    .add_partition_offset(e.topic(), e.partition(), Offset::Offset(ms))
                    .map_err(|e| Error::kafka("building the timestamp query", e))?;
            }
            consumer
                .offsets_for_times(times, TIMEOUT)
                .map_err(|e| Error::kafka("looking up offsets by timestamp", e))?
                .elements()
                .iter()
                .map(|e| ((e.topic().to_string(), e.partition()), e.offset()))
                .collect()
        }
        _ => BTreeMap::new(),
    };

    let mut partitions = Vec::new();
    for e in tpl.elements() {
        let (topic, partition) = (e.topic().to_string(), e.partition());
        let (low, high) = consumer
            .fetch_watermarks(&topic, partition, TIMEOUT)
            .map_err(|e| Error::kafka(format!("reading the offsets of {topic} partition {partition}"), e))?;
        let key = (topic.clone(), partition);
        let current = committed.get(&key).copied();
        let (offset, note) = match to {
            ResetTo::Earliest => (low, None),
            ResetTo::Latest => (high, None),
            ResetTo::Offset(o) => clamp(o, low, high),
            ResetTo::ShiftBy(n) => clamp(current.unwrap_or(low).saturating_add(n), low, high),
            ResetTo::Datetime(_) | ResetTo::Duration(_) => match at_time.get(&key) {
                Some(Offset::Offset(o)) => (*o, None),
                _ => (high, Some("no record that late: the end".to_string())),
            },
        };
        partitions.push(PartitionReset { topic, partition, committed: current, offset, note });
    }

    let state_dir = config.state_dir.join(&config.application_id);
    Ok(ResetPlan {
        application_id: group.clone(),
        to,
        partitions,
        missing_topics,
        delete_topics: internal_topics_to_delete(topology, group, existing.keys()),
        state_dir_exists: state_dir.exists(),
        state_dir,
    })
}

/// A consumer of the group, to read and commit its offsets; it never
/// subscribes, so it never joins the group.
fn reset_consumer(config: &Config) -> Result<BaseConsumer> {
    client_config(config, ClientRole::Reset)?
        .set("statistics.interval.ms", "0")
        .create()
        .map_err(|e| Error::kafka("creating the reset consumer", e))
}

/// Keeps `offset` within the partition's records, saying so when it moved
/// (Kafka Streams' `checkOffsetRange`).
fn clamp(offset: i64, low: i64, high: i64) -> (i64, Option<String>) {
    if offset < low {
        (low, Some(format!("{offset} is before the earliest record: the earliest")))
    } else if offset > high {
        (high, Some(format!("{offset} is past the end: the end")))
    } else {
        (offset, None)
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The existing internal topics of `application_id`: the ones the topology
/// names, and the ones that look internal (a former version's), never a
/// user topic the topology reads or writes.
fn internal_topics_to_delete<'a>(
    topology: &Topology,
    application_id: &str,
    existing: impl Iterator<Item = &'a String>,
) -> Vec<String> {
    let named: BTreeSet<String> = topology.internal_topics().iter().map(|t| t.resolve(application_id)).collect();
    let mut user: BTreeSet<&str> = BTreeSet::new();
    for st in &topology.subtopologies {
        for t in st.sources.iter().map(|(_, t)| t).chain(&st.sinks) {
            if let TopicName::External(name) = t {
                user.insert(name);
            }
        }
    }
    for g in &topology.globals {
        user.insert(&g.topic);
    }
    let prefix = format!("{application_id}-");
    existing
        .filter(|t| named.contains(*t) || (t.starts_with(&prefix) && INTERNAL_SUFFIXES.iter().any(|s| t.ends_with(s))))
        .filter(|t| !user.contains(t.as_str()))
        .cloned()
        .collect()
}

impl ResetPlan {
    /// Commits the new offsets, deletes the internal topics and removes the
    /// local state directory. Fails at the first step that fails (a reset
    /// can be run again), and at the end when source topics were missing.
    pub fn apply(&self, config: &Config) -> Result<()> {
        let group = &self.application_id;
        if !self.partitions.is_empty() {
            let consumer = reset_consumer(config)?;
            let mut tpl = TopicPartitionList::new();
            for p in &self.partitions {
                tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.offset))
                    .map_err(|e| Error::kafka("building the offsets to commit", e))?;
            }
            // Assigned, never subscribed: the commit is a simple consumer's,
            // which the broker accepts only while the group is empty.
            consumer.assign(&tpl).map_err(|e| Error::kafka("assigning the source partitions", e))?;
            consumer.commit(&tpl, CommitMode::Sync).map_err(|e| {
                Error::kafka(
                    format!(
                        "committing the new offsets of group {group} (if an instance started meanwhile, stop it \
                         and run reset again)"
                    ),
                    e,
                )
            })?;
        }
        if !self.delete_topics.is_empty() {
            delete_topics(config, &self.delete_topics)?;
        }
        if self.state_dir.exists() {
            std::fs::remove_dir_all(&self.state_dir).map_err(|e| {
                Error::Reset(format!(
                    "cannot remove the local state directory {}: {e}; remove it by hand before starting the \
                     application",
                    self.state_dir.display()
                ))
            })?;
        }
        self.check_source_topics()
    }

    /// Fails when source topics are missing (after a reset, or a dry run,
    /// has done all the rest), as Kafka Streams' tool exits 1 then.
    pub fn check_source_topics(&self) -> Result<()> {
        if self.missing_topics.is_empty() {
            return Ok(());
        }
        Err(Error::Reset(format!(
            "source topic(s) {} do not exist, so their offsets are not reset (everything else is); create them \
             or fix the topology",
            self.missing_topics.join(", ")
        )))
    }
}

/// Deletes `topics` and waits until the broker no longer lists them, so
/// that the next start creates them anew rather than finding them being
/// deleted.
fn delete_topics(config: &Config, topics: &[String]) -> Result<()> {
    let admin = admin_client(config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("starting the admin runtime: {e}")))?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT)).request_timeout(Some(TIMEOUT));
    let results = runtime
        .block_on(admin.delete_topics(&names, &opts))
        .map_err(|e| Error::kafka("deleting the internal topics", e))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
            Err((name, code)) => {
                return Err(Error::Reset(format!(
                    "deleting internal topic {name} failed: {code}; the application needs permission to delete \
                     topics prefixed with its application_id (or delete it with kafka-topics --delete)"
                )))
            }
        }
    }
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let existing = existing_topics(config, admin.inner())?;
        let left: Vec<&str> = names.iter().copied().filter(|t| existing.contains_key(*t)).collect();
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Reset(format!(
                "the broker still lists {} {} s after deleting; wait, then check with kafka-topics --list",
                left.join(", "),
                TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl fmt::Display for ResetPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Reset of application `{}` (consumer group `{0}`) to {}:", self.application_id, self.to)?;
        if self.partitions.is_empty() {
            writeln!(f, "  source offsets: no source partition to reset")?;
        } else {
            writeln!(f, "  source offsets (committed -> new):")?;
            for p in &self.partitions {
                let committed = p.committed.map_or_else(|| "none".to_string(), |o| o.to_string());
                write!(f, "    {} partition {}: {committed} -> {}", p.topic, p.partition, p.offset)?;
                match &p.note {
                    Some(note) => writeln!(f, " ({note})")?,
                    None => writeln!(f)?,
                }
            }
        }
        for t in &self.missing_topics {
            writeln!(f, "  source topic {t} does not exist: skipped")?;
        }
        if self.delete_topics.is_empty() {
            writeln!(f, "  internal topics to delete: none exist")?;
        } else {
            writeln!(f, "  internal topics to delete: {}", self.delete_topics.join(", "))?;
        }
        if self.state_dir_exists {
            writeln!(f, "  local state to delete: {}", self.state_dir.display())?;
        } else {
            writeln!(f, "  local state: {} does not exist on this machine", self.state_dir.display())?;
        }
        writeln!(
            f,
            "  left as they are: output topics, the dead-letter topic, global-table topics, and the state \
             directories of other machines ({} there: an instance that starts with it finds its stores \
             ahead of the recreated changelogs, wipes them and restores)",
            self.state_dir.display()
        )
    }
}

/// Parses an RFC 3339 date-time with its zone (`2026-12-03T10:00:00Z`,
/// `2026-12-03T11:00:00.250+01:00`) into milliseconds since the epoch.
///
/// ```
/// use rivulet::reset::parse_datetime;
/// assert_eq!(parse_datetime("1970-01-01T00:00:01Z"), Ok(1_000));
/// assert_eq!(parse_datetime("2026-12-03T11:00:00.25+01:00"), parse_datetime("2026-12-03T10:00:00.250Z"));
/// assert!(parse_datetime("2026-12-03T10:00:00").is_err()); // no zone
/// ```
pub fn parse_datetime(text: &str) -> std::result::Result<i64, String> {
    let bad = || {
        format!(
            "`{text}` is not an RFC 3339 date-time with a zone, such as 2026-12-03T10:00:00Z or \
             2026-12-03T11:00:00+01:00"
        )
    };
    let b = text.trim().as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(digits).ok()?.parse().ok()
    };
    let sep = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if b.len() < 20 || !sep(4, b"-") || !sep(7, b"-") || !sep(10, b"Tt ") || !sep(13, b":") || !sep(16, b":") {
        return Err(bad());
    }
    let (year, month, day) = (num(0..4).ok_or_else(bad)?, num(5..7).ok_or_else(bad)?, num(8..10).ok_or_else(bad)?);
    let (hour, minute, second) =
        (num(11..13).ok_or_else(bad)?, num(14..16).ok_or_else(bad)?, num(17..19).ok_or_else(bad)?);
    let mut i = 19;
    let mut millis = 0;
    if sep(i, b".") {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let frac = num(start..i).ok_or_else(bad)?;
        let digits = (i - start) as u32;
        millis = if digits <= 3 { frac * 10i64.pow(3 - digits) } else { frac / 10i64.pow((digits - 3).min(18)) };
    }
    let offset_minutes = match b.get(i) {
        Some(b'Z' | b'z') if b.len() == i + 1 => 0,
        Some(sign @ (b'+' | b'-')) if b.len() == i + 6 && sep(i + 3, b":") => {
            let m = num(i + 1..i + 3).ok_or_else(bad)? * 60 + num(i + 4..i + 6).ok_or_else(bad)?;
            if *sign == b'-' {
                -m
            } else {
                m
            }
        }
        _ => return Err(bad()),
    };
    let days_in_month = match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => 0,
    };
    if !(1..=days_in_month).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return Err(bad());
    }
    // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
    // days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Ok(seconds * 1_000 + millis)
}

/// Parses a duration: ISO 8601 as Kafka Streams' `--by-duration` takes it
/// (`PnDTnHnMn.nS`: `PT1H`, `P1DT12H`, `PT0.5S`), or the short form
/// (`1h`, `90m`, `1h30m`, `2d`, `45s`, `500ms`).
///
/// ```
/// use std::time::Duration;
/// use rivulet::reset::parse_duration;
/// assert_eq!(parse_duration("PT1H"), Ok(Duration::from_secs(3_600)));
/// assert_eq!(parse_duration("P1DT0.5S"), Ok(Duration::from_millis(86_400_500)));
/// assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
/// assert!(parse_duration("an hour").is_err());
/// ```
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration; use ISO 8601 (PT1H, P1DT12H, PT30M) or 1h, 30m, 1h30m, 2d, 45s");
    let t = text.trim();
    let (iso, body) = match t.strip_prefix(['P', 'p']) {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let mut total_ms: f64 = 0.0;
    let mut in_time = !iso;
    let mut rest = body;
    let mut parts = 0;
    while !rest.is_empty() {
        if iso && !in_time && rest.starts_with(['T', 't']) {
            in_time = true;
            rest = &rest[1..];
            continue;
        }
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let n: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == 'T' || c == 't').unwrap_or(rest.len());
        let unit = rest[..unit_len].to_ascii_lowercase();
        rest = &rest[unit_len..];
        let ms = match (iso, in_time, unit.as_str()) {
            (true, false, "d") | (false, _, "d") => 86_400_000.0,
            (true, true, "h") | (false, _, "h") => 3_600_000.0,
            (true, true, "m") | (false, _, "m") => 60_000.0,
            (true, true, "s") | (false, _, "s") => 1_000.0,
            (false, _, "ms") => 1.0,
            _ => return Err(bad()),
        };
        total_ms += n * ms;
        parts += 1;
    }
    if parts == 0 || !total_ms.is_finite() {
        return Err(bad());
    }
    Ok(Duration::from_millis(total_ms.round() as u64))
}

#[cfg(test)]
mod tests;
