//! [`ValueState`]: one value per key.

use super::*;

/// One value per key (Flink's `ValueState`): a field of a
/// [`KeyedProcessor`](crate::topology::keyed::KeyedProcessor), read and written through
/// its [`KeyedContext`] for the context's key. See
/// [`get`](Self::get) for one in use.
///
/// ```
/// use std::time::Duration;
/// use rivulet::serde::Serdes;
/// use rivulet::topology::keyed::ValueState;
/// let last_seen = ValueState::new("last-seen", Serdes::i64()).with_ttl(Duration::from_secs(86_400));
/// ```
pub struct ValueState<T> {
    cell: Cell<T>,
}

impl<T: 'static> ValueState<T> {
    /// The state `name` (unique within its keyed processor), values encoded
    /// with `serde`. Make it in the factory closure of `process`, with the
    /// processor that holds it.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// # struct LastLogin { at: ValueState<i64> }
    /// # impl KeyedProcessor<String, String, String, String> for LastLogin {
    /// #     fn process_element(&mut self, _: Record<String, String>, _: &mut KeyedContext<'_, '_, String, String, String>) -> Result<(), ProcessError> {
    /// #         Ok(())
    /// #     }
    /// # }
    /// let mut b = Topology::builder();
    /// b.add_store(StoreSpec::keyed("logins"));
    /// b.stream("logins", Serdes::string(), Serdes::string())
    ///     .process(&["logins"], || {
    ///         let at = ValueState::new("last-login", Serdes::i64());
    ///         KeyedProcess::new("logins", Serdes::string(), LastLogin { at })
    ///     })
    ///     .to("out", Serdes::string(), Serdes::string());
    /// assert!(b.build().is_ok());
    /// ```
    pub fn new(name: &str, serde: impl Serde<T>) -> Self {
        ValueState { cell: Cell::new(name, serde) }
    }

    /// Each key's value expires `ttl` of processing time after it was last
    /// written (see the [module docs](crate::topology::keyed#time-to-live)): reads do not
    /// extend it, and an expired value reads as `None`. Here a key's record is
    /// forwarded when the key was not seen for an hour:
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// # struct FirstInAnHour { seen: ValueState<i64> }
    /// # impl KeyedProcessor<String, String, String, String> for FirstInAnHour {
    /// #     fn process_element(&mut self, r: Record<String, String>, ctx: &mut KeyedContext<'_, '_, String, String, String>) -> Result<(), ProcessError> {
    /// #         let quiet = self.seen.get(ctx)?.is_none();
    /// #         self.seen.set(ctx, &r.timestamp)?;
    /// #         if quiet { ctx.forward(r)?; }
    /// #         Ok(())
    /// #     }
    /// # }
    /// let mut b = Topology::builder();
    /// b.add_store(StoreSpec::keyed("state"));
    /// b.stream("in", Serdes::string(), Serdes::string())
    ///     .process(&["state"], || {
    ///         let seen = ValueState::new("seen", Serdes::i64()).with_ttl(Duration::from_secs(3600));
    ///         KeyedProcess::new("state", Serdes::string(), FirstInAnHour { seen })
    ///     })
    ///     .to("out", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?.start_wall_clock_at(0)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("out", Serdes::string(), Serdes::string());
    /// driver.pipe(&input, "alice".to_string(), "login".to_string(), 0)?;
    /// driver.pipe(&input, "alice".to_string(), "login".to_string(), 0)?; // seen: dropped
    /// driver.advance_wall_clock(Duration::from_secs(2 * 3600))?;
    /// driver.pipe(&input, "alice".to_string(), "login".to_string(), 0)?; // expired: forwarded
    /// assert_eq!(driver.read(&out)?.len(), 2);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.cell.ttl_ms = Some(duration_ms(ttl));
        self
    }

    /// The current key's value (`None` if never set, cleared or expired).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// struct SinceLast { last: ValueState<i64> }
    /// impl KeyedProcessor<String, String, String, i64> for SinceLast {
    ///     fn process_element(
    ///         &mut self,
    ///         r: Record<String, String>,
    ///         ctx: &mut KeyedContext<'_, '_, String, String, i64>,
    ///     ) -> Result<(), ProcessError> {
    ///         let previous: Option<i64> = self.last.get(ctx)?;
    ///         self.last.set(ctx, &r.timestamp)?;
    ///         let gap = r.timestamp - previous.unwrap_or(r.timestamp);
    ///         ctx.forward(r.with_value(gap))
    ///     }
    /// }
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::keyed("state"));
    /// # b.stream("in", Serdes::string(), Serdes::string())
    /// #     .process(&["state"], || KeyedProcess::new("state", Serdes::string(), SinceLast { last: ValueState::new("last", Serdes::i64()) }))
    /// #     .to("out", Serdes::string(), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("out", Serdes::string(), Serdes::i64());
    /// driver.pipe(&input, "alice".to_string(), "login".to_string(), 1_000)?;
    /// driver.pipe(&input, "alice".to_string(), "login".to_string(), 5_000)?;
    /// assert_eq!(driver.read_key_values(&out)?, vec![("alice".to_string(), 0), ("alice".to_string(), 4_000)]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn get<K, KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        ctx: &mut KeyedContext<'_, '_, K, KO, VO>,
    ) -> Result<Option<T>, ProcessError> {
        self.cell.get(ctx, &[])
    }

    /// Sets the current key's value (restarting its time-to-live, if it has
    /// one).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// struct HighScore { best: ValueState<i64> }
    /// impl KeyedProcessor<String, i64, String, i64> for HighScore {
    ///     fn process_element(
    ///         &mut self,
    ///         r: Record<String, i64>,
    ///         ctx: &mut KeyedContext<'_, '_, String, String, i64>,
    ///     ) -> Result<(), ProcessError> {
    ///         if self.best.get(ctx)?.is_some_and(|best| best >= r.value) {
    ///             return Ok(());
    ///         }
    ///         self.best.set(ctx, &r.value)?;
    ///         ctx.forward(r)
    ///     }
    /// }
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::keyed("state"));
    /// # b.stream("in", Serdes::string(), Serdes::i64())
    /// #     .process(&["state"], || KeyedProcess::new("state", Serdes::string(), HighScore { best: ValueState::new("best", Serdes::i64()) }))
    /// #     .to("out", Serdes::string(), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::i64());
    /// # let out = driver.output_topic("out", Serdes::string(), Serdes::i64());
    /// for score in [10, 7, 12] {
    ///     driver.pipe(&input, "alice".to_string(), score, 0)?;
    /// }
    /// let highs: Vec<i64> = driver.read_key_values(&out)?.into_iter().map(|(_, s)| s).collect();
    /// assert_eq!(highs, [10, 12]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn set<K, KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        ctx: &mut KeyedContext<'_, '_, K, KO, VO>,
        value: &T,
    ) -> Result<(), ProcessError> {
        self.cell.set(ctx, &[], value)
    }

    /// Removes the current key's value.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// struct PerSession { events: ValueState<i64> }
    /// impl KeyedProcessor<String, String, String, i64> for PerSession {
    ///     fn process_element(
    ///         &mut self,
    ///         r: Record<String, String>,
    ///         ctx: &mut KeyedContext<'_, '_, String, String, i64>,
    ///     ) -> Result<(), ProcessError> {
    ///         let n = self.events.get(ctx)?.unwrap_or(0);
    ///         if r.value == "logout" {
    ///             self.events.clear(ctx)?;
    ///             return ctx.forward(r.with_value(n));
    ///         }
    ///         self.events.set(ctx, &(n + 1))
    ///     }
    /// }
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::keyed("state"));
    /// # b.stream("in", Serdes::string(), Serdes::string())
    /// #     .process(&["state"], || KeyedProcess::new("state", Serdes::string(), PerSession { events: ValueState::new("events", Serdes::i64()) }))
    /// #     .to("out", Serdes::string(), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("out", Serdes::string(), Serdes::i64());
    /// for event in ["click", "click", "logout", "click", "logout"] {
    ///     driver.pipe(&input, "alice".to_string(), event.to_string(), 0)?;
    /// }
    /// let per_session: Vec<i64> = driver.read_key_values(&out)?.into_iter().map(|(_, n)| n).collect();
    /// assert_eq!(per_session, [2, 1]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn clear<K, KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        ctx: &mut KeyedContext<'_, '_, K, KO, VO>,
    ) -> Result<(), ProcessError> {
        self.cell.delete(ctx, &[])
    }
}
