//! Timers: their two clocks, what fires, and registering them on a
//! [`KeyedContext`].

use super::*;

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
    pub(super) fn tag(self) -> u8 {
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

impl<'a, K, KOut: Clone + 'static, VOut: Clone + 'static> KeyedContext<'_, 'a, K, KOut, VOut> {
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
}
