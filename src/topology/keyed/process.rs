//! [`KeyedProcess`]: a keyed processor run as a [`Processor`]: firing due
//! timers, expiring state, keeping the watermark.

use super::*;

/// A [`KeyedProcessor`] as a [`Processor`], for
/// [`KStream::process`](crate::topology::KStream::process) with the store
/// it keeps its state in (declare it with [`StoreSpec::keyed`]). The
/// factory closure runs once per task, so each task has its own processor
/// and state handles.
///
/// ```
/// use rivulet::prelude::*;
/// use rivulet::testing::TopologyTestDriver;
/// use rivulet::topology::keyed::{KeyedContext, KeyedProcess, KeyedProcessor, ValueState};
/// use rivulet::topology::ProcessError;
///
/// /// Forwards the first record of each key.
/// struct FirstSeen {
///     seen: ValueState<i64>,
/// }
///
/// impl KeyedProcessor<String, String, String, String> for FirstSeen {
///     fn process_element(
///         &mut self,
///         r: Record<String, String>,
///         ctx: &mut KeyedContext<'_, '_, String, String, String>,
///     ) -> Result<(), ProcessError> {
///         if self.seen.get(ctx)?.is_some() {
///             return Ok(());
///         }
///         self.seen.set(ctx, &r.timestamp)?;
///         ctx.forward(r)
///     }
/// }
///
/// let mut b = Topology::builder();
/// b.add_store(StoreSpec::keyed("first-seen"));
/// b.stream("events", Serdes::string(), Serdes::string())
///     .process(&["first-seen"], || {
///         let seen = ValueState::new("seen", Serdes::i64());
///         KeyedProcess::new("first-seen", Serdes::string(), FirstSeen { seen })
///     })
///     .to("first-events", Serdes::string(), Serdes::string());
/// let mut driver = TopologyTestDriver::new(b.build()?)?;
/// let events = driver.input_topic("events", Serdes::string(), Serdes::string());
/// let first = driver.output_topic("first-events", Serdes::string(), Serdes::string());
/// for (user, event) in [("alice", "signup"), ("alice", "login"), ("bob", "login")] {
///     driver.pipe(&events, user.to_string(), event.to_string(), 0)?;
/// }
/// let out = driver.read_key_values(&first)?;
/// assert_eq!(out, [("alice".to_string(), "signup".to_string()), ("bob".to_string(), "login".to_string())]);
/// # Ok::<(), rivulet::Error>(())
/// ```
pub struct KeyedProcess<K, P> {
    store: String,
    key_serde: Arc<dyn Serde<K>>,
    processor: P,
    tick: Duration,
}

impl<K: 'static, P> KeyedProcess<K, P> {
    /// `processor`, keeping its state and timers in the store `store`;
    /// `key_serde` encodes record keys into state and timer keys (records
    /// with a null key fail: give them a key first). A store is for one keyed
    /// processor: two keyed processors need two stores.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// # struct Noop;
    /// # impl KeyedProcessor<String, String, String, String> for Noop {
    /// #     fn process_element(&mut self, _: Record<String, String>, _: &mut KeyedContext<'_, '_, String, String, String>) -> Result<(), ProcessError> {
    /// #         Ok(())
    /// #     }
    /// # }
    /// let mut b = Topology::builder();
    /// b.add_store(StoreSpec::keyed("per-user"));
    /// b.stream("clicks", Serdes::string(), Serdes::string())
    ///     .process(&["per-user"], || KeyedProcess::new("per-user", Serdes::string(), Noop))
    ///     .to("out", Serdes::string(), Serdes::string());
    /// assert!(b.build()?.describe().contains("(stores: per-user)"));
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn new(store: &str, key_serde: impl Serde<K>, processor: P) -> Self {
        KeyedProcess {
            store: store.to_string(),
            key_serde: Arc::new(key_serde),
            processor,
            tick: Duration::from_millis(100),
        }
    }

    /// How often processing-time timers and expired state are checked
    /// (default 100 ms): a processing-time timer fires at the first check at
    /// or after its time.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// # struct Later;
    /// # impl KeyedProcessor<String, String, String, String> for Later {
    /// #     fn process_element(&mut self, r: Record<String, String>, ctx: &mut KeyedContext<'_, '_, String, String, String>) -> Result<(), ProcessError> {
    /// #         ctx.register_processing_time_timer(ctx.current_processing_time() + 100)
    /// #     }
    /// #     fn on_timer(&mut self, _: Timer, ctx: &mut KeyedContext<'_, '_, String, String, String>) -> Result<(), ProcessError> {
    /// #         let key = ctx.key().clone();
    /// #         ctx.forward(Record::new(key, "fired".to_string(), 0))
    /// #     }
    /// # }
    /// let mut b = Topology::builder();
    /// b.add_store(StoreSpec::keyed("later"));
    /// b.stream("in", Serdes::string(), Serdes::string())
    ///     .process(&["later"], || KeyedProcess::new("later", Serdes::string(), Later).tick(Duration::from_secs(1)))
    ///     .to("out", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?.start_wall_clock_at(0)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("out", Serdes::string(), Serdes::string());
    /// driver.pipe(&input, "k".to_string(), "v".to_string(), 0)?; // a timer at 100 ms
    /// driver.advance_wall_clock(Duration::from_millis(500))?;
    /// assert!(driver.read_key_values(&out)?.is_empty()); // not checked yet
    /// driver.advance_wall_clock(Duration::from_millis(500))?;
    /// assert_eq!(driver.read_key_values(&out)?.len(), 1);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn tick(mut self, every: Duration) -> Self {
        self.tick = every;
        self
    }

    fn encode_key(&self, key: &K) -> Result<Vec<u8>, ProcessError> {
        let mut out = Vec::new();
        match self.key_serde.serialize(key, &mut out) {
            Ok(Encoded::Bytes) => Ok(out),
            Ok(Encoded::Null) => Err(ProcessError::Serde {
                what: format!("record key for the keyed state in store `{}`", self.store),
                source: SerdeError::new(
                    self.key_serde.name(),
                    "a null key has no keyed state; give the records a key (select_key) before the keyed processor",
                ),
            }),
            Err(e) => Err(ProcessError::Serde {
                what: format!("record key for the keyed state in store `{}`", self.store),
                source: e,
            }),
        }
    }

    /// Fires the timers of `domain` due at `limit`, in (time, key) order.
    fn fire_due<V, KOut, VOut>(
        &mut self,
        domain: TimeDomain,
        limit: i64,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
    ) -> Result<(), ProcessError>
    where
        K: Clone + 'static,
        KOut: Clone + 'static,
        VOut: Clone + 'static,
        P: KeyedProcessor<K, V, KOut, VOut>,
    {
        let from = vec![TIMER, domain.tag()];
        let to = match limit.checked_add(1) {
            Some(end) => timer_prefix(domain, end),
            None => vec![TIMER, domain.tag() + 1],
        };
        for _ in 0..MAX_FIRING_ROUNDS {
            let due = raw(ctx, &self.store)?.range(Some(&from), Some(&to))?;
            if due.is_empty() {
                return Ok(());
            }
            for (timer_key, _) in due {
                // An earlier callback of this round may have deleted it.
                let mut store = raw(ctx, &self.store)?;
                if store.get(&timer_key)?.is_none() {
                    continue;
                }
                store.delete(&timer_key)?;
                let Some((time, key_bytes)) = parse_timer(&timer_key) else {
                    return Err(corrupt(&self.store, "a timer key is shorter than its header"));
                };
                let key = self.key_serde.deserialize(Some(key_bytes)).map_err(|e| ProcessError::Serde {
                    what: format!("record key of a timer in store `{}`", self.store),
                    source: e,
                })?;
                let mut fire_now = false;
                let now = ctx.current_system_time_ms();
                let mut kctx =
                    KeyedContext { ctx, store: &self.store, key: &key, key_bytes, now, fire_now: &mut fire_now };
                self.processor.on_timer(Timer { time, domain }, &mut kctx)?;
            }
        }
        tracing::warn!(store = %self.store, "timers keep registering timers that are already due; the rest fire later");
        Ok(())
    }

    /// Deletes state entries whose time-to-live passed by `now`.
    fn expire_state<KOut, VOut>(&self, now: i64, ctx: &mut ProcessorContext<'_, KOut, VOut>) -> Result<(), ProcessError>
    where
        KOut: Clone + 'static,
        VOut: Clone + 'static,
    {
        let from = vec![TTL_INDEX];
        let mut to = vec![TTL_INDEX];
        to.extend_from_slice(&sortable(now.saturating_add(1)));
        let mut store = raw(ctx, &self.store)?;
        for (index_key, _) in store.range(Some(&from), Some(&to))? {
            store.delete(&index_key)?;
            let Some(entry) = index_key.get(9..).map(<[u8]>::to_vec) else { continue };
            if let Some(value) = store.get(&entry)? {
                let (expires, _) =
                    split_value(&value).ok_or_else(|| corrupt(&self.store, "a state value is too short"))?;
                if expires <= now {
                    store.delete(&entry)?;
                }
            }
        }
        Ok(())
    }
}

impl<K, V, KOut, VOut, P> Processor<K, V, KOut, VOut> for KeyedProcess<K, P>
where
    K: Clone + 'static,
    V: 'static,
    KOut: Clone + 'static,
    VOut: Clone + 'static,
    P: KeyedProcessor<K, V, KOut, VOut>,
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, KOut, VOut>) -> Result<(), ProcessError> {
        let store = match raw(ctx, &self.store) {
            Ok(s) => s,
            Err(ProcessError::Topology { node, reason }) => {
                return Err(ProcessError::Topology {
                    node,
                    reason: format!(
                        "{reason}; a keyed processor keeps its state in a store declared with \
                         builder.add_store(StoreSpec::keyed(\"{}\")) and listed in KStream::process",
                        self.store
                    ),
                })
            }
            Err(e) => return Err(e),
        };
        if let Some(bytes) = store.get(&WATERMARK.to_vec())? {
            let wm: [u8; 8] =
                bytes.as_slice().try_into().map_err(|_| corrupt(&self.store, "the stored watermark is not 8 bytes"))?;
            ctx.task.time.restore(i64::from_be_bytes(wm));
        }
        ctx.schedule(self.tick, TimeKind::WallClock);
        Ok(())
    }

    fn process(
        &mut self,
        record: Record<K, V>,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
    ) -> Result<(), ProcessError> {
        let key = record.key.clone();
        let key_bytes = self.encode_key(&key)?;
        let mut fire_now = false;
        let now = ctx.current_system_time_ms();
        let mut kctx =
            KeyedContext { ctx, store: &self.store, key: &key, key_bytes: &key_bytes, now, fire_now: &mut fire_now };
        self.processor.process_element(record, &mut kctx)?;
        if fire_now {
            let wm = ctx.watermark();
            self.fire_due(TimeDomain::EventTime, wm, ctx)?;
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        kind: TimeKind,
        _: i64,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
    ) -> Result<(), ProcessError> {
        if kind == TimeKind::WallClock {
            let now = ctx.current_system_time_ms();
            self.fire_due(TimeDomain::ProcessingTime, now, ctx)?;
            self.expire_state(now, ctx)?;
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, ctx: &mut ProcessorContext<'_, KOut, VOut>) -> Result<(), ProcessError> {
        raw(ctx, &self.store)?.put(&WATERMARK.to_vec(), &watermark.to_be_bytes().to_vec())?;
        self.fire_due(TimeDomain::EventTime, watermark, ctx)
    }
}
