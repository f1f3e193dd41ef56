//! [`JoinWindows`]: how far apart in time two records of a stream-stream
//! join may be, and the grace period.

use std::time::Duration;

use crate::processor::time::duration_ms;

/// The time bounds of a stream-stream join: a record of this stream at `t`
/// joins the records of the other stream with the same key and a timestamp
/// in `[t - before, t + after]` (both ends inclusive), and so a record of
/// the other stream at `t` joins this stream's records in
/// `[t - after, t + before]`. `grace` is how far behind its stream's time a
/// record may arrive and still join (default 0).
///
/// Kafka Streams' `JoinWindows` (`streams/.../kstream/JoinWindows.java`)
/// maps onto it as:
///
/// | Kafka Streams | rivulet |
/// |---|---|
/// | `JoinWindows.ofTimeDifferenceWithNoGrace(d)` | `JoinWindows::symmetric(d)` |
/// | `JoinWindows.ofTimeDifferenceAndGrace(d, g)` | `JoinWindows::symmetric(d).grace(g)` |
/// | `ofTimeDifferenceWithNoGrace(d).before(b).after(a)` | `JoinWindows::of(b, a)` |
/// | `.grace(g)` | `.grace(g)` |
///
/// ```
/// use std::time::Duration;
/// use rivulet::topology::JoinWindows;
/// // A click joins the impressions of the 10 minutes before it (and none after).
/// let w = JoinWindows::of(Duration::from_secs(600), Duration::ZERO).grace(Duration::from_secs(30));
/// assert_eq!((w.before_ms(), w.after_ms(), w.grace_ms()), (600_000, 0, 30_000));
/// ```
#[derive(Debug, Clone)]
pub struct JoinWindows {
    pub(crate) before: i64,
    pub(crate) after: i64,
    pub(crate) grace: i64,
    /// Topics for late records of this stream and of the other stream.
    pub(crate) late_topics: Option<(String, String)>,
}

impl JoinWindows {
    /// Records of the other stream from `before` earlier to `after` later
    /// than a record of this stream join it; no grace.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rivulet::topology::JoinWindows;
    /// // A payment joins the orders of the hour before it, and up to a minute after.
    /// let w = JoinWindows::of(Duration::from_secs(3600), Duration::from_secs(60));
    /// assert_eq!((w.before_ms(), w.after_ms(), w.grace_ms()), (3_600_000, 60_000, 0));
    /// ```
    pub fn of(before: Duration, after: Duration) -> JoinWindows {
        JoinWindows { before: duration_ms(before), after: duration_ms(after), grace: 0, late_topics: None }
    }

    /// Records at most `time_difference` apart, either way, join (Kafka
    /// Streams' `ofTimeDifferenceWithNoGrace`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use rivulet::topology::JoinWindows;
    /// let w = JoinWindows::symmetric(Duration::from_secs(5));
    /// assert_eq!((w.before_ms(), w.after_ms()), (5_000, 5_000));
    /// ```
    pub fn symmetric(time_difference: Duration) -> JoinWindows {
        JoinWindows::of(time_difference, time_difference)
    }

    /// How far behind its stream's time a record may arrive and still join,
    /// and how much longer each record waits for a partner (default 0).
    ///
    /// ```
    /// use std::time::Duration;
    /// use rivulet::topology::JoinWindows;
    /// let w = JoinWindows::symmetric(Duration::from_secs(5)).grace(Duration::from_secs(30));
    /// assert_eq!(w.grace_ms(), 30_000);
    /// ```
    pub fn grace(mut self, grace: Duration) -> JoinWindows {
        self.grace = duration_ms(grace);
        self
    }

    /// Writes late records (see [`KStream::join_stream`](crate::topology::KStream::join_stream))
    /// unchanged to `this_topic` (this stream's) and `other_topic` (the
    /// other stream's) instead of dropping them; either way they are counted
    /// in `rivulet_late_records_total`. Written with the streams' serdes.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rivulet::prelude::*;
    /// use rivulet::topology::JoinWindows;
    /// let mut b = Topology::builder();
    /// let clicks = b.stream("clicks", Serdes::string(), Serdes::string());
    /// let views = b.stream("views", Serdes::string(), Serdes::string());
    /// let windows = JoinWindows::of(Duration::from_secs(600), Duration::ZERO).late_records_to("late-clicks", "late-views");
    /// clicks.join_stream(&views, "attributed", windows, |_, c, v| format!("{c} after {v}")).to(
    ///     "attributed",
    ///     Serdes::string(),
    ///     Serdes::string(),
    /// );
    /// assert!(b.build().is_ok());
    /// ```
    pub fn late_records_to(mut self, this_topic: &str, other_topic: &str) -> JoinWindows {
        self.late_topics = Some((this_topic.to_string(), other_topic.to_string()));
        self
    }

    /// `before`, in ms.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::topology::JoinWindows;
    /// assert_eq!(JoinWindows::of(Duration::from_millis(7), Duration::ZERO).before_ms(), 7);
    /// ```
    pub fn before_ms(&self) -> i64 {
        self.before
    }

    /// `after`, in ms.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::topology::JoinWindows;
    /// assert_eq!(JoinWindows::of(Duration::ZERO, Duration::from_millis(9)).after_ms(), 9);
    /// ```
    pub fn after_ms(&self) -> i64 {
        self.after
    }

    /// The grace period, in ms.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::topology::JoinWindows;
    /// assert_eq!(JoinWindows::symmetric(Duration::ZERO).grace_ms(), 0);
    /// ```
    pub fn grace_ms(&self) -> i64 {
        self.grace
    }

    pub(crate) fn describe(&self) -> String {
        format!("before {} ms, after {} ms, grace {} ms", self.before, self.after, self.grace)
    }
}
