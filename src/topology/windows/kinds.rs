//! [`Windows`]: the window kinds (tumbling, hopping, sliding, session,
//! count) and the grace period.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
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
    pub(super) kind: Kind,
    pub(super) grace: i64,
}

impl Windows {
    /// Back-to-back windows of `size`, aligned to the epoch: `[0, size)`,
    /// `[size, 2 size)`, ... Each record is in exactly one (Kafka Streams'
    /// `TimeWindows.ofSizeWithNoGrace`, Flink's `TumblingEventTimeWindows`).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("clicks", Serdes::string(), Serdes::string())
    ///     .group_by_key()
    ///     .windowed_by(Windows::tumbling(Duration::from_secs(60)))
    ///     .count("clicks-per-minute")
    ///     .to("clicks-per-minute", Serdes::windowed(Serdes::string()), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let clicks = driver.input_topic("clicks", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("clicks-per-minute", Serdes::windowed(Serdes::string()), Serdes::i64());
    /// driver.pipe(&clicks, "alice".to_string(), "/home".to_string(), 59_000)?;
    /// driver.pipe(&clicks, "alice".to_string(), "/cart".to_string(), 61_000)?;
    /// let windows: Vec<(i64, i64)> = driver.read(&out)?.iter().map(|r| (r.key.start, r.key.end)).collect();
    /// assert_eq!(windows, [(0, 60_000), (60_000, 120_000)]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn tumbling(size: Duration) -> Windows {
        let size = duration_ms(size).max(1);
        Windows { kind: Kind::Time { size, advance: size }, grace: 0 }
    }

    /// Windows of `size` starting every `advance` (Flink's sliding
    /// windows, Kafka Streams' `TimeWindows..advanceBy`), aligned to the
    /// epoch: a record belongs to `size / advance` of them. `advance` is
    /// clamped to `1 ms..=size`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("clicks", Serdes::string(), Serdes::string())
    ///     .group_by_key()
    ///     .windowed_by(Windows::hopping(Duration::from_secs(10), Duration::from_secs(5)))
    ///     .count("clicks-10s-every-5s")
    ///     .to("clicks-10s", Serdes::windowed(Serdes::string()), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let clicks = driver.input_topic("clicks", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("clicks-10s", Serdes::windowed(Serdes::string()), Serdes::i64());
    /// driver.pipe(&clicks, "alice".to_string(), "/home".to_string(), 7_000)?;
    /// let windows: Vec<(i64, i64)> = driver.read(&out)?.iter().map(|r| (r.key.start, r.key.end)).collect();
    /// assert_eq!(windows, [(0, 10_000), (5_000, 15_000)]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
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
    ///
    /// The example above, counted with `emit_final` (the record at 100 s
    /// only moves the watermark on, so the five windows close):
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("events", Serdes::string(), Serdes::string())
    ///     .group_by_key()
    ///     .windowed_by(Windows::sliding(Duration::from_secs(5)))
    ///     .emit_final()
    ///     .count("events-within-5s")
    ///     .to("events-within-5s", Serdes::windowed(Serdes::string()), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let events = driver.input_topic("events", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("events-within-5s", Serdes::windowed(Serdes::string()), Serdes::i64());
    /// for t in [8_000, 9_200, 12_400, 100_000] {
    ///     driver.pipe(&events, "k".to_string(), "e".to_string(), t)?;
    /// }
    /// let windows: Vec<_> = driver.read(&out)?.into_iter().map(|r| (r.key.start, r.key.end, r.value)).collect();
    /// let expected =
    ///     [(3_000, 8_000, 1), (4_200, 9_200, 2), (7_400, 12_400, 3), (8_001, 13_001, 2), (9_201, 14_201, 1)];
    /// assert_eq!(windows, expected);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn sliding(length: Duration) -> Windows {
        Windows { kind: Kind::Sliding { length: duration_ms(length) }, grace: 0 }
    }

    /// Sessions: a key's records with less than `gap` between neighbours
    /// (inclusive) form one session; a record that bridges two sessions
    /// merges them. A session's window runs from its first record's
    /// timestamp to its last's; it closes `gap` (plus grace) after its end.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("page-views", Serdes::string(), Serdes::string())
    ///     .group_by_key()
    ///     .windowed_by(Windows::session(Duration::from_secs(5 * 60)))
    ///     .count("views-per-visit")
    ///     .to("views-per-visit", Serdes::windowed(Serdes::string()), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let views = driver.input_topic("page-views", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("views-per-visit", Serdes::windowed(Serdes::string()), Serdes::i64());
    /// for minute in [0, 1, 10] {
    ///     driver.pipe(&views, "alice".to_string(), "/".to_string(), minute * 60_000)?;
    /// }
    /// let sessions: Vec<_> = driver.read(&out)?.into_iter().map(|r| (r.key.start, r.key.end, r.value)).collect();
    /// // One update per record: the first session grows, then a new one starts.
    /// assert_eq!(sessions, [(0, 0, 1), (0, 60_000, 2), (600_000, 600_000, 1)]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn session(gap: Duration) -> Windows {
        Windows { kind: Kind::Session { gap: duration_ms(gap) }, grace: 0 }
    }

    /// Every `n` records of a key. Count windows do not depend on time, so
    /// they never close late and ignore the grace period. A window runs from
    /// its first record's timestamp to its last's; with `emit_final` it is
    /// emitted when its `n`th record arrives.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("readings", Serdes::string(), Serdes::i64())
    ///     .group_by_key()
    ///     .windowed_by(Windows::count(3))
    ///     .emit_final()
    ///     .reduce("sum-of-3", |a, b| a + b)
    ///     .to("sums-of-3", Serdes::windowed(Serdes::string()), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let readings = driver.input_topic("readings", Serdes::string(), Serdes::i64());
    /// # let out = driver.output_topic("sums-of-3", Serdes::windowed(Serdes::string()), Serdes::i64());
    /// for (i, value) in [1, 2, 3, 4].into_iter().enumerate() {
    ///     driver.pipe(&readings, "sensor".to_string(), value, 1_000 * (i as i64 + 1))?;
    /// }
    /// let sums: Vec<_> = driver.read(&out)?.into_iter().map(|r| (r.key.start, r.key.end, r.value)).collect();
    /// assert_eq!(sums, [(1_000, 3_000, 6)]); // the fourth reading waits for two more
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn count(n: u64) -> Windows {
        Windows { kind: Kind::Count { n: n.max(1) }, grace: 0 }
    }

    /// How long after its end a window still takes records (default 0): a
    /// window closes when the watermark reaches its end plus `grace`
    /// (plus the gap, for sessions). Records for closed windows are late:
    /// counted, and dropped or sent to
    /// [`late_records_to`](WindowedStream::late_records_to).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// b.stream("clicks", Serdes::string(), Serdes::string())
    ///     .group_by_key()
    ///     .windowed_by(Windows::tumbling(Duration::from_secs(60)).grace(Duration::from_secs(10)))
    ///     .count("clicks-per-minute")
    ///     .to("clicks-per-minute", Serdes::windowed(Serdes::string()), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let clicks = driver.input_topic("clicks", Serdes::string(), Serdes::string());
    /// for t in [65_000, 55_000, 100_000, 30_000] {
    ///     driver.pipe(&clicks, "alice".to_string(), "/".to_string(), t)?;
    /// }
    /// // 55 s is in time for [0, 60 s), open until 70 s; 30 s comes after 100 s: late.
    /// assert_eq!(driver.late_records(), 1);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn grace(mut self, grace: Duration) -> Windows {
        self.grace = duration_ms(grace);
        self
    }

    pub(super) fn describe(&self) -> String {
        match self.kind {
            Kind::Time { size, advance } if size == advance => format!("tumbling {size} ms, grace {} ms", self.grace),
            Kind::Time { size, advance } => format!("hopping {size} ms every {advance} ms, grace {} ms", self.grace),
            Kind::Sliding { length } => format!("sliding {length} ms, grace {} ms", self.grace),
            Kind::Session { gap } => format!("session gap {gap} ms, grace {} ms", self.grace),
            Kind::Count { n } => format!("count {n}"),
        }
    }
}
