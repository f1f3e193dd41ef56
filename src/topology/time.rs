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
    pub fn record() -> Self {
        Self::with(Extract::Record)
    }

    /// The wall clock when the record is processed: processing time.
    pub fn wall_clock() -> Self {
        Self::with(Extract::WallClock)
    }

    /// Event time read from the deserialized value, in ms since the epoch.
    /// A record for which `f` returns `None` is a processing error (it goes
    /// to `errors.processing`).
    pub fn from_value(f: impl Fn(&V) -> Option<i64> + Send + Sync + 'static) -> Self {
        Self::with(Extract::Value(Arc::new(f)))
    }

    /// How far behind the largest timestamp seen a record may arrive and
    /// still be on time: the watermark trails the partition time by this
    /// much. Default 0.
    pub fn out_of_orderness(mut self, d: Duration) -> Self {
        self.out_of_orderness_ms = duration_ms(d);
        self
    }

    /// A source partition with no record for this long (wall clock) stops
    /// holding the task's watermark back, until it has data again. Default:
    /// never.
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
    /// Wall clock of the last record.
    last_seen: i64,
}

/// A task's stream time and watermark.
pub(crate) struct TaskTime {
    partitions: Vec<PartitionTime>,
    watermark: i64,
}

impl Default for TaskTime {
    fn default() -> Self {
        TaskTime { partitions: Vec::new(), watermark: i64::MIN }
    }
}

impl TaskTime {
    /// The slot of a source partition, registered on its first record.
    pub(crate) fn slot(&mut self, topic: &Arc<str>, out_of_orderness: i64, idle_after: Option<i64>) -> usize {
        if let Some(i) = self.partitions.iter().position(|p| p.topic == *topic) {
            return i;
        }
        self.partitions.push(PartitionTime {
            topic: topic.clone(),
            max: i64::MIN,
            out_of_orderness,
            idle_after,
            last_seen: i64::MIN,
        });
        self.partitions.len() - 1
    }

    /// A record with timestamp `ts` arrived on partition `slot` at wall
    /// clock `now`. Returns whether the watermark advanced.
    pub(crate) fn observe(&mut self, slot: usize, ts: i64, now: i64) -> bool {
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

    fn recompute(&mut self, now: i64) -> bool {
        let active = self.partitions.iter().filter(|p| p.max != i64::MIN).filter(|p| match p.idle_after {
            Some(idle) => now.saturating_sub(p.last_seen) < idle,
            None => true,
        });
        let Some(candidate) = active.map(|p| p.max.saturating_sub(p.out_of_orderness)).min() else {
            return false;
        };
        if candidate > self.watermark {
            self.watermark = candidate;
            true
        } else {
            false
        }
    }

    /// The watermark: `i64::MIN` before any record.
    pub(crate) fn watermark(&self) -> i64 {
        self.watermark
    }

    /// Raises the watermark to one kept in the task's state (after a
    /// restart or a move), so windows closed before are not reopened.
    #[allow(dead_code)] // used by the window operators, being added
    pub(crate) fn restore(&mut self, watermark: i64) {
        self.watermark = self.watermark.max(watermark);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(t: &str) -> Arc<str> {
        Arc::from(t)
    }

    #[test]
    fn the_watermark_is_the_minimum_over_partitions_with_data_minus_out_of_orderness() {
        let mut t = TaskTime::default();
        let a = t.slot(&topic("a"), 10, None);
        assert!(t.observe(a, 100, 0));
        assert_eq!(t.watermark(), 90);
        // A second partition with data holds it back; never decreases.
        let b = t.slot(&topic("b"), 0, None);
        assert!(!t.observe(b, 50, 0));
        assert_eq!(t.watermark(), 90);
        assert!(!t.observe(a, 200, 0));
        assert!(t.observe(b, 120, 0));
        assert_eq!(t.watermark(), 120);
        // Out of order records do not move it.
        assert!(!t.observe(a, 150, 0));
        assert_eq!(t.watermark(), 120);
    }

    #[test]
    fn an_idle_partition_stops_holding_the_watermark_back() {
        let mut t = TaskTime::default();
        let a = t.slot(&topic("a"), 0, Some(1_000));
        let b = t.slot(&topic("b"), 0, Some(1_000));
        t.observe(a, 100, 0);
        t.observe(b, 500, 500);
        assert_eq!(t.watermark(), 100);
        assert!(!t.tick(999));
        assert!(t.tick(1_000));
        assert_eq!(t.watermark(), 500);
        // Active again: it counts, but the watermark does not go back.
        t.observe(a, 200, 1_100);
        assert_eq!(t.watermark(), 500);
        // Every partition idle: the watermark stays.
        assert!(!t.tick(5_000));
        assert_eq!(t.watermark(), 500);
    }

    #[test]
    fn a_restored_watermark_is_a_floor() {
        let mut t = TaskTime::default();
        t.restore(1_000);
        let a = t.slot(&topic("a"), 0, None);
        assert!(!t.observe(a, 10, 0));
        assert_eq!(t.watermark(), 1_000);
        assert!(t.observe(a, 1_001, 0));
    }
}
