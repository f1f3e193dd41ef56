//! Time: where a record's timestamp comes from, and how a task's stream
//! time and watermark advance.
//!
//! ```text
//! source record --Timestamps--> record timestamp --max per source partition--> partition time
//!   partition time - out-of-orderness, min over the task's partitions with data (idle ones left out)
//!   --never decreasing--> watermark --> windows close, event-time timers fire
//! ```
//!
//! A task's *stream time* is the largest timestamp it has seen. Its
//! *watermark* says "no record older than this is expected any more": each
//! source partition of the task contributes its largest timestamp minus the
//! source's allowed out-of-orderness, and the task takes the minimum over
//! the partitions that have had data, leaving out those idle for longer than
//! the source's idle timeout, so one quiet partition does not stop time.

use std::sync::Arc;
use std::time::Duration;

/// Where the timestamps of a source's records come from, and how far out
/// of order they may arrive. Pass it to
/// [`TopologyBuilder::stream_with_time`](crate::topology::TopologyBuilder::stream_with_time).
///
/// ```
/// use std::time::Duration;
/// use rivulet::topology::Timestamps;
/// #[derive(Clone, serde::Deserialize)]
/// struct View { ts: i64 }
/// // Event time from a field, records up to 5 s out of order, a partition
/// // quiet for a minute stops holding the watermark back.
/// let t = Timestamps::from_value(|v: &View| Some(v.ts))
///     .out_of_orderness(Duration::from_secs(5))
///     .idle_after(Duration::from_secs(60));
/// ```
pub struct Timestamps<V> {
    pub(crate) extract: Extract<V>,
    pub(crate) out_of_orderness_ms: i64,
    pub(crate) idle_after_ms: Option<i64>,
}

pub(crate) enum Extract<V> {
    Record,
    WallClock,
    #[allow(clippy::type_complexity)]
    Value(Arc<dyn Fn(&V) -> Option<i64> + Send + Sync>),
}

impl<V> Clone for Timestamps<V> {
    fn clone(&self) -> Self {
        let extract = match &self.extract {
            Extract::Record => Extract::Record,
            Extract::WallClock => Extract::WallClock,
            Extract::Value(f) => Extract::Value(f.clone()),
        };
        Timestamps { extract, out_of_orderness_ms: self.out_of_orderness_ms, idle_after_ms: self.idle_after_ms }
    }
}

impl<V> Timestamps<V> {
    fn with(extract: Extract<V>) -> Self {
        Timestamps { extract, out_of_orderness_ms: 0, idle_after_ms: None }
    }

    /// The Kafka record's timestamp (the default): event time when the
    /// topic uses `CreateTime`, ingestion time under `LogAppendTime`.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # fn main() -> rivulet::Result<()> {
    /// let mut b = Topology::builder();
    /// // The same as b.stream("in", ..).
    /// b.stream_with_time("in", Serdes::unit(), Serdes::string(), Timestamps::record())
    ///     .to("out", Serdes::unit(), Serdes::string());
    /// let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::unit(), Serdes::string());
    /// # let output = driver.output_topic("out", Serdes::unit(), Serdes::string());
    /// driver.pipe(&input, (), "x".into(), 1_234)?;
    /// assert_eq!(driver.read(&output)?[0].timestamp, 1_234);
    /// # Ok(()) }
    /// ```
    pub fn record() -> Self {
        Self::with(Extract::Record)
    }

    /// The wall clock when the record is processed: processing time. The
    /// record's own timestamp is ignored, and the outputs carry the new one.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # fn main() -> rivulet::Result<()> {
    /// let mut b = Topology::builder();
    /// b.stream_with_time("in", Serdes::unit(), Serdes::string(), Timestamps::wall_clock())
    ///     .to("out", Serdes::unit(), Serdes::string());
    /// let mut driver = TopologyTestDriver::new(b.build()?)?.start_wall_clock_at(1_700_000_000_000)?;
    /// # let input = driver.input_topic("in", Serdes::unit(), Serdes::string());
    /// # let output = driver.output_topic("out", Serdes::unit(), Serdes::string());
    /// driver.pipe(&input, (), "x".into(), 5)?;
    /// assert_eq!(driver.read(&output)?[0].timestamp, 1_700_000_000_000);
    /// # Ok(()) }
    /// ```
    pub fn wall_clock() -> Self {
        Self::with(Extract::WallClock)
    }

    /// Event time read from the deserialized value, in ms since the epoch.
    /// A record for which `f` returns `None` is a processing error (it goes
    /// to `errors.processing`).
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// #[derive(Clone, serde::Serialize, serde::Deserialize)]
    /// struct Reading { sensor: String, taken_at: i64 }
    /// # fn main() -> rivulet::Result<()> {
    /// let mut b = Topology::builder();
    /// let time = Timestamps::from_value(|r: &Reading| Some(r.taken_at));
    /// b.stream_with_time("in", Serdes::unit(), Serdes::json::<Reading>(), time)
    ///     .to("out", Serdes::unit(), Serdes::json::<Reading>());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::unit(), Serdes::json::<Reading>());
    /// # let output = driver.output_topic("out", Serdes::unit(), Serdes::json::<Reading>());
    /// // Kafka says 5; the reading says when it was taken.
    /// driver.pipe(&input, (), Reading { sensor: "t1".into(), taken_at: 60_000 }, 5)?;
    /// assert_eq!(driver.read(&output)?[0].timestamp, 60_000);
    /// # Ok(()) }
    /// ```
    pub fn from_value(f: impl Fn(&V) -> Option<i64> + Send + Sync + 'static) -> Self {
        Self::with(Extract::Value(Arc::new(f)))
    }

    /// How far behind the largest timestamp seen a record may arrive and
    /// still be on time: the watermark trails the partition time by this
    /// much. Default 0.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// use std::time::Duration;
    /// // Counts per 10 s window; returns how many records came too late.
    /// fn late(time: Timestamps<String>) -> rivulet::Result<u64> {
    ///     let mut b = Topology::builder();
    ///     b.stream_with_time("in", Serdes::string(), Serdes::string(), time)
    ///         .group_by_key()
    ///         .windowed_by(Windows::tumbling(Duration::from_secs(10)))
    ///         .count("counts");
    /// #   let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// #   let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    ///     for t in [1_000, 12_000, 8_000] {
    ///         driver.pipe(&input, "k".into(), "x".into(), t)?;
    ///     }
    ///     Ok(driver.late_records())
    /// }
    /// # fn main() -> rivulet::Result<()> {
    /// // At 12 s the window [0 s, 10 s) closes, unless records may be 5 s late.
    /// assert_eq!(late(Timestamps::record())?, 1);
    /// assert_eq!(late(Timestamps::record().out_of_orderness(Duration::from_secs(5)))?, 0);
    /// # Ok(()) }
    /// ```
    pub fn out_of_orderness(mut self, d: Duration) -> Self {
        self.out_of_orderness_ms = duration_ms(d);
        self
    }

    /// A source partition with no record for this long (wall clock) stops
    /// holding the task's watermark back, until it has data again. Default:
    /// never.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::processor::ProcessError;
    /// # use rivulet::testing::TopologyTestDriver;
    /// use std::time::Duration;
    /// # /// Emits each new watermark.
    /// # struct Marks;
    /// # impl Processor<(), String, (), i64> for Marks {
    /// #     fn process(&mut self, _: Record<(), String>, _: &mut ProcessorContext<'_, (), i64>) -> Result<(), ProcessError> { Ok(()) }
    /// #     fn on_watermark(&mut self, w: i64, ctx: &mut ProcessorContext<'_, (), i64>) -> Result<(), ProcessError> {
    /// #         ctx.forward(Record::new((), w, w))
    /// #     }
    /// # }
    /// # fn main() -> rivulet::Result<()> {
    /// let mut b = Topology::builder();
    /// let time = Timestamps::record().idle_after(Duration::from_secs(60));
    /// let a = b.stream_with_time("a", Serdes::unit(), Serdes::string(), time.clone());
    /// let c = b.stream_with_time("c", Serdes::unit(), Serdes::string(), time);
    /// // Marks (see Processor::on_watermark) emits each new watermark of the task.
    /// a.merge(&c).process(&[], || Marks).to("watermarks", Serdes::unit(), Serdes::i64());
    /// let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let (a, c) = (driver.input_topic("a", Serdes::unit(), Serdes::string()), driver.input_topic("c", Serdes::unit(), Serdes::string()));
    /// # let watermarks = driver.output_topic("watermarks", Serdes::unit(), Serdes::i64());
    /// driver.pipe(&a, (), "x".into(), 1_000)?;
    /// driver.pipe(&c, (), "x".into(), 1_000)?;
    /// driver.pipe(&a, (), "x".into(), 20_000)?; // "c" holds the watermark at 1 s...
    /// driver.advance_wall_clock(Duration::from_secs(60))?;
    /// driver.pipe(&a, (), "x".into(), 50_000)?; // ...until it has been quiet for a minute
    /// assert_eq!(driver.read_key_values(&watermarks)?, [((), 1_000), ((), 50_000)]);
    /// # Ok(()) }
    /// ```
    pub fn idle_after(mut self, d: Duration) -> Self {
        self.idle_after_ms = Some(duration_ms(d));
        self
    }

    pub(crate) fn describe(&self) -> String {
        let what = match self.extract {
            Extract::Record => "record timestamp",
            Extract::WallClock => "wall clock",
            Extract::Value(_) => "from the value",
        };
        let mut s = format!("time: {what}");
        if self.out_of_orderness_ms > 0 {
            s.push_str(&format!(", out-of-orderness {} ms", self.out_of_orderness_ms));
        }
        if let Some(idle) = self.idle_after_ms {
            s.push_str(&format!(", idle after {idle} ms"));
        }
        s
    }
}

pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Time of one source partition of a task.
struct PartitionTime {
    topic: Arc<str>,
    /// Largest timestamp seen.
    max: i64,
    out_of_orderness: i64,
    idle_after: Option<i64>,
    /// Wall clock of the last record (or of the task's start, before any).
    last_seen: i64,
    /// A repartition topic's partition: its time is the minimum of the
    /// watermarks the upstream tasks sent through it, not its records'
    /// timestamps (the shuffle interleaves the upstream tasks' records).
    upstream: Option<Upstream>,
}

/// What the upstream tasks of a repartition partition said of their time.
struct Upstream {
    /// How many upstream tasks write to it.
    expected: usize,
    /// Upstream task partition -> its latest watermark, and whether it said
    /// it is idle since.
    marks: std::collections::BTreeMap<i32, UpstreamMark>,
}

#[derive(Debug, Clone, Copy)]
struct UpstreamMark {
    watermark: i64,
    idle: bool,
}

impl Upstream {
    /// Every upstream task has been heard from.
    fn complete(&self) -> bool {
        self.marks.len() >= self.expected
    }

    /// The minimum watermark of the upstream tasks that are not idle:
    /// `None` while one has not been heard from yet (it holds the
    /// partition back) and `Some(None)` when all of them are idle.
    fn watermark(&self) -> Option<Option<i64>> {
        if !self.complete() {
            return None;
        }
        Some(self.marks.values().filter(|m| !m.idle).map(|m| m.watermark).min())
    }
}

/// The header of a watermark marker: a record with no value that an
/// upstream task writes to every partition of a repartition topic it
/// writes, to say how far its time has come (or that it is idle) when it
/// has no record to send there.
pub(crate) const MARKER_HEADER: &str = "rivulet.watermark";

/// The header every record written to a repartition topic carries: the
/// writing task's watermark as of that record, so the reading task judges
/// each record by the upstream time it was sent at, whatever the commit
/// interval. Same value format as a marker's.
pub(crate) const RECORD_MARK_HEADER: &str = "rivulet.upstream";

/// What an upstream task says of its time in a marker or a record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    /// Its watermark.
    At(i64),
    /// It has had no data for its sources' `idle_after`: leave it out of
    /// the minimum until it sends again (Flink's idleness, carried across
    /// the shuffle).
    Idle,
}

/// A marker's or record header's value:
/// `<upstream partition>/<upstream tasks>/<watermark or "idle">`.
pub(crate) fn encode_mark(from: i32, upstream_tasks: usize, mark: Mark, out: &mut Vec<u8>) {
    use std::io::Write as _;
    out.clear();
    // Writing to a Vec cannot fail.
    let _ = match mark {
        Mark::At(wm) => write!(out, "{from}/{upstream_tasks}/{wm}"),
        Mark::Idle => write!(out, "{from}/{upstream_tasks}/idle"),
    };
}

pub(crate) fn decode_mark(value: &[u8]) -> Option<(i32, usize, Mark)> {
    let text = std::str::from_utf8(value).ok()?;
    let mut parts = text.split('/');
    let from = parts.next()?.parse().ok()?;
    let tasks = parts.next()?.parse().ok()?;
    let mark = match parts.next()? {
        "idle" => Mark::Idle,
        wm => Mark::At(wm.parse().ok()?),
    };
    parts.next().is_none().then_some((from, tasks, mark))
}

/// Whether a record of a repartition topic is a watermark marker (no value,
/// the marker header) rather than a record to process. The one place that
/// decides it: the source node and the task manager's counts both ask here.
pub(crate) fn is_marker<'a>(value: Option<&[u8]>, mut header_keys: impl Iterator<Item = &'a str>) -> bool {
    value.is_none() && header_keys.any(|k| k == MARKER_HEADER)
}

/// A task's stream time and watermark.
pub(crate) struct TaskTime {
    partitions: Vec<PartitionTime>,
    watermark: i64,
    /// After [`end_of_input`](Self::end_of_input): the watermark the data
    /// had reached, which is what downstream tasks are told.
    before_end: Option<i64>,
    /// Per async I/O node (`topology::async_io`), the oldest timestamp of
    /// its calls in flight: the watermark stays below it until their
    /// results are forwarded, as Flink queues watermarks behind in-flight
    /// records.
    holds: Vec<(usize, i64)>,
}

impl Default for TaskTime {
    fn default() -> Self {
        TaskTime { partitions: Vec::new(), watermark: i64::MIN, before_end: None, holds: Vec::new() }
    }
}

/// How often an idle task repeats that it is idle when its sources set no
/// `idle_after` of their own (a task fed only by repartition topics whose
/// upstream tasks are all idle): a downstream task that restarted, or
/// aborted and went back, learns it again within this time.
const IDLE_REPEAT_MS: i64 = 10_000;

impl TaskTime {
    /// The slot of a source partition, registered when the task starts (so
    /// a partition that never has data can become idle) or on its first
    /// record. `now` is the wall clock.
    pub(crate) fn slot(&mut self, topic: &Arc<str>, out_of_orderness: i64, idle_after: Option<i64>, now: i64) -> usize {
        if let Some(i) = self.partitions.iter().position(|p| p.topic == *topic) {
            return i;
        }
        self.partitions.push(PartitionTime {
            topic: topic.clone(),
            max: i64::MIN,
            out_of_orderness,
            idle_after,
            last_seen: now,
            upstream: None,
        });
        self.partitions.len() - 1
    }

    /// The slot of a repartition partition, whose time comes from its
    /// upstream tasks' marks.
    pub(crate) fn marker_slot(&mut self, topic: &Arc<str>) -> usize {
        let i = self.slot(topic, 0, None, 0);
        if let Some(p) = self.partitions.get_mut(i) {
            if p.upstream.is_none() {
                p.upstream = Some(Upstream { expected: usize::MAX, marks: Default::default() });
            }
        }
        i
    }

    /// Upstream task `from` (one of `expected`) says `mark`. Returns
    /// whether the task's watermark advanced.
    pub(crate) fn observe_mark(&mut self, slot: usize, from: i32, expected: usize, mark: Mark, now: i64) -> bool {
        if let Some(p) = self.partitions.get_mut(slot) {
            if let Some(u) = p.upstream.as_mut() {
                u.expected = expected;
                let m = u.marks.entry(from).or_insert(UpstreamMark { watermark: i64::MIN, idle: false });
                match mark {
                    Mark::At(wm) => *m = UpstreamMark { watermark: m.watermark.max(wm), idle: false },
                    Mark::Idle => m.idle = true,
                }
            }
            p.last_seen = now;
        }
        self.recompute(now)
    }

    /// A record with timestamp `ts` arrived on partition `slot` at wall
    /// clock `now`. Returns whether the watermark advanced.
    pub(crate) fn observe(&mut self, slot: usize, ts: i64, now: i64) -> bool {
        if self.partitions.get(slot).is_some_and(|p| p.upstream.is_some()) {
            // Marks, not records' timestamps, move a repartition partition's time.
            return false;
        }
        if let Some(p) = self.partitions.get_mut(slot) {
            p.max = p.max.max(ts);
            p.last_seen = now;
        }
        self.recompute(now)
    }

    /// Re-evaluates idleness at wall clock `now`. Returns whether the
    /// watermark advanced.
    pub(crate) fn tick(&mut self, now: i64) -> bool {
        if self.partitions.iter().any(|p| p.idle_after.is_some()) {
            self.recompute(now)
        } else {
            false
        }
    }

    fn partition_idle(p: &PartitionTime, now: i64) -> bool {
        match &p.upstream {
            Some(u) => matches!(u.watermark(), Some(None)),
            None => p.idle_after.is_some_and(|idle| now.saturating_sub(p.last_seen) >= idle),
        }
    }

    /// Whether every source partition of the task is idle at wall clock
    /// `now`: each input partition has had no record for its source's
    /// `idle_after` (or none since the task started), and each repartition
    /// partition's upstream tasks are all idle. An idle task tells its
    /// downstream tasks so, and they leave it out of their minimum. A task
    /// with async calls in flight is not idle: their results are to come.
    pub(crate) fn is_idle(&self, now: i64) -> bool {
        !self.partitions.is_empty()
            && self.holds.is_empty()
            && self.partitions.iter().all(|p| Self::partition_idle(p, now))
    }

    /// How often an idle task repeats that it is idle: its shortest
    /// `idle_after`, at least a second.
    pub(crate) fn idle_repeat_ms(&self) -> i64 {
        self.partitions.iter().filter_map(|p| p.idle_after).min().map_or(IDLE_REPEAT_MS, |ms| ms.max(1_000))
    }

    fn recompute(&mut self, now: i64) -> bool {
        let mut candidate: Option<i64> = None;
        for p in &self.partitions {
            let time = match &p.upstream {
                Some(u) => match u.watermark() {
                    // Until every upstream task has been heard from, this
                    // partition holds the task back.
                    None => return false,
                    // Every upstream task is idle.
                    Some(None) => continue,
                    Some(Some(wm)) => wm,
                },
                None if p.max == i64::MIN => continue,
                None if Self::partition_idle(p, now) => continue,
                None => p.max.saturating_sub(p.out_of_orderness),
            };
            candidate = Some(candidate.map_or(time, |c| c.min(time)));
        }
        let Some(mut candidate) = candidate else {
            return false;
        };
        if let Some(oldest) = self.holds.iter().map(|(_, ts)| *ts).min() {
            candidate = candidate.min(oldest.saturating_sub(1));
        }
        if candidate > self.watermark {
            self.watermark = candidate;
            true
        } else {
            false
        }
    }

    /// Forgets what the partitions have seen (after an abort, the records
    /// are processed again); the slots stay, as sources keep their index.
    /// Idleness is measured from `now` again.
    pub(crate) fn reset(&mut self, now: i64) {
        for p in &mut self.partitions {
            p.max = i64::MIN;
            p.last_seen = now;
            if let Some(u) = p.upstream.as_mut() {
                u.marks.clear();
            }
        }
        self.watermark = i64::MIN;
        self.before_end = None;
        self.holds.clear();
    }

    /// Whether an async node has calls in flight.
    pub(crate) fn holding(&self) -> bool {
        !self.holds.is_empty()
    }

    /// Node `node` has calls in flight whose oldest input has timestamp
    /// `oldest` (`None`: none in flight): the watermark stays below it.
    /// Returns whether the watermark advanced (a hold released).
    pub(crate) fn hold(&mut self, node: usize, oldest: Option<i64>, now: i64) -> bool {
        let at = self.holds.iter().position(|(n, _)| *n == node);
        match (at, oldest) {
            (Some(i), Some(ts)) if self.holds[i].1 == ts => return false,
            (Some(i), Some(ts)) => self.holds[i].1 = ts,
            (None, Some(ts)) => self.holds.push((node, ts)),
            (Some(i), None) => {
                self.holds.swap_remove(i);
            }
            (None, None) => return false,
        }
        self.recompute(now)
    }

    /// The end of a bounded run's input: the watermark goes to `i64::MAX`,
    /// so every window, session and join window closes and every event-time
    /// timer fires, as Flink's bounded sources end with `MAX_WATERMARK`.
    /// Returns whether it moved.
    pub(crate) fn end_of_input(&mut self) -> bool {
        if self.watermark == i64::MAX {
            return false;
        }
        self.before_end = Some(self.watermark);
        self.watermark = i64::MAX;
        true
    }

    /// The watermark told to downstream tasks (markers, record marks): the
    /// data's, never the `i64::MAX` of the end of input (a marker's
    /// timestamp is its watermark, which no broker would take, and records
    /// a task emits as its windows close at the end are not late
    /// downstream). `i64::MIN` (nothing to tell) when the end was restored
    /// from a store.
    pub(crate) fn reported(&self) -> i64 {
        match (self.watermark, self.before_end) {
            (i64::MAX, before) => before.unwrap_or(i64::MIN),
            (wm, _) => wm,
        }
    }

    /// The watermark: `i64::MIN` before any record.
    pub(crate) fn watermark(&self) -> i64 {
        self.watermark
    }

    /// Raises the watermark to one kept in the task's state (after a
    /// restart or a move), so windows closed before are not reopened.
    pub(crate) fn restore(&mut self, watermark: i64) {
        self.watermark = self.watermark.max(watermark);
    }
}

#[cfg(test)]
mod tests;
