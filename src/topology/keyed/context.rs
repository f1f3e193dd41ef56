//! [`KeyedContext`]: a keyed processor's view of its task, and the state
//! entries it reads and writes for the state handles.

use super::*;

/// A keyed processor's view of its task, scoped to one key: the key of the
/// record being processed, or of the timer that fired. State handles read
/// and write this key's entries through it; timers registered through it
/// belong to this key.
///
/// ```
/// use rivulet::prelude::*;
/// use rivulet::testing::TopologyTestDriver;
/// use rivulet::topology::keyed::{KeyedContext, KeyedProcess, KeyedProcessor, ListState, Timer};
/// use rivulet::topology::ProcessError;
///
/// /// Batches each key's values for one minute of event time after its first.
/// struct Batch {
///     values: ListState<String>,
/// }
///
/// impl KeyedProcessor<String, String, String, String> for Batch {
///     fn process_element(
///         &mut self,
///         r: Record<String, String>,
///         ctx: &mut KeyedContext<'_, '_, String, String, String>,
///     ) -> Result<(), ProcessError> {
///         if self.values.get(ctx)?.is_empty() {
///             ctx.register_event_time_timer(r.timestamp + 60_000)?;
///         }
///         self.values.add(ctx, &r.value)
///     }
///
///     fn on_timer(
///         &mut self,
///         timer: Timer,
///         ctx: &mut KeyedContext<'_, '_, String, String, String>,
///     ) -> Result<(), ProcessError> {
///         let batch = self.values.get(ctx)?.join(",");
///         self.values.clear(ctx)?;
///         let key = ctx.key().clone();
///         ctx.forward(Record::new(key, batch, timer.time))
///     }
/// }
/// # let mut b = Topology::builder();
/// # b.add_store(StoreSpec::keyed("batches"));
/// # b.stream("in", Serdes::string(), Serdes::string())
/// #     .process(&["batches"], || KeyedProcess::new("batches", Serdes::string(), Batch { values: ListState::new("values", Serdes::string()) }))
/// #     .to("out", Serdes::string(), Serdes::string());
/// # let mut driver = TopologyTestDriver::new(b.build()?)?;
/// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
/// # let out = driver.output_topic("out", Serdes::string(), Serdes::string());
/// for (key, t, v) in [("k", 0, "a"), ("k", 30_000, "b"), ("other", 90_000, "c")] {
///     driver.pipe(&input, key.to_string(), v.to_string(), t)?;
/// }
/// // The watermark passed 60 s: "k"'s batch is out, "other"'s waits.
/// assert_eq!(driver.read_key_values(&out)?, vec![("k".to_string(), "a,b".to_string())]);
/// # Ok::<(), rivulet::Error>(())
/// ```
pub struct KeyedContext<'c, 'a, K, KOut, VOut> {
    pub(super) ctx: &'c mut ProcessorContext<'a, KOut, VOut>,
    pub(super) store: &'c str,
    pub(super) key: &'c K,
    pub(super) key_bytes: &'c [u8],
    pub(super) now: i64,
    /// Set when an event-time timer at or below the watermark is registered.
    pub(super) fire_now: &'c mut bool,
}

impl<'a, K, KOut: Clone + 'static, VOut: Clone + 'static> KeyedContext<'_, 'a, K, KOut, VOut> {
    /// The current key: the record's, or the timer's in
    /// [`KeyedProcessor::on_timer`], where there is no record.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// struct Expire;
    /// impl KeyedProcessor<String, String, String, String> for Expire {
    /// #     fn process_element(&mut self, r: Record<String, String>, ctx: &mut KeyedContext<'_, '_, String, String, String>) -> Result<(), ProcessError> {
    /// #         ctx.register_event_time_timer(r.timestamp + 1_000)
    /// #     }
    ///     fn on_timer(
    ///         &mut self,
    ///         timer: Timer,
    ///         ctx: &mut KeyedContext<'_, '_, String, String, String>,
    ///     ) -> Result<(), ProcessError> {
    ///         let key: String = ctx.key().clone();
    ///         ctx.forward(Record::new(key, "expired".to_string(), timer.time))
    ///     }
    /// }
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::keyed("state"));
    /// # b.stream("in", Serdes::string(), Serdes::string())
    /// #     .process(&["state"], || KeyedProcess::new("state", Serdes::string(), Expire))
    /// #     .to("out", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("out", Serdes::string(), Serdes::string());
    /// driver.pipe(&input, "alice".to_string(), "login".to_string(), 0)?;
    /// driver.pipe(&input, "bob".to_string(), "login".to_string(), 5_000)?;
    /// assert_eq!(driver.read_key_values(&out)?, vec![("alice".to_string(), "expired".to_string())]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn key(&self) -> &K {
        self.key
    }

    /// Sends a record to the processor's children: any key and value of
    /// the output types, with any timestamp.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// struct Lengths;
    /// impl KeyedProcessor<String, String, String, i64> for Lengths {
    ///     fn process_element(
    ///         &mut self,
    ///         r: Record<String, String>,
    ///         ctx: &mut KeyedContext<'_, '_, String, String, i64>,
    ///     ) -> Result<(), ProcessError> {
    ///         let n = r.value.len() as i64;
    ///         ctx.forward(r.with_value(n))
    ///     }
    /// }
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::keyed("state"));
    /// # b.stream("in", Serdes::string(), Serdes::string())
    /// #     .process(&["state"], || KeyedProcess::new("state", Serdes::string(), Lengths))
    /// #     .to("out", Serdes::string(), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("out", Serdes::string(), Serdes::i64());
    /// driver.pipe(&input, "k".to_string(), "hello".to_string(), 0)?;
    /// assert_eq!(driver.read_key_values(&out)?, vec![("k".to_string(), 5)]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn forward(&mut self, record: Record<KOut, VOut>) -> Result<(), ProcessError> {
        self.ctx.forward(record)
    }

    /// The task's watermark (ms; `i64::MIN` before the first record): no
    /// record older than it is expected any more.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// struct OnTime;
    /// impl KeyedProcessor<String, String, String, String> for OnTime {
    ///     fn process_element(
    ///         &mut self,
    ///         r: Record<String, String>,
    ///         ctx: &mut KeyedContext<'_, '_, String, String, String>,
    ///     ) -> Result<(), ProcessError> {
    ///         if r.timestamp < ctx.watermark() {
    ///             return Ok(()); // late: drop it
    ///         }
    ///         ctx.forward(r)
    ///     }
    /// }
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::keyed("state"));
    /// # b.stream("in", Serdes::string(), Serdes::string())
    /// #     .process(&["state"], || KeyedProcess::new("state", Serdes::string(), OnTime))
    /// #     .to("out", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("out", Serdes::string(), Serdes::string());
    /// for (t, v) in [(10_000, "a"), (5_000, "late"), (12_000, "b")] {
    ///     driver.pipe(&input, "k".to_string(), v.to_string(), t)?;
    /// }
    /// let values: Vec<String> = driver.read_key_values(&out)?.into_iter().map(|(_, v)| v).collect();
    /// assert_eq!(values, ["a", "b"]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn watermark(&self) -> i64 {
        self.ctx.watermark()
    }

    /// Processing time: the wall clock (ms) when the callback started (the
    /// driver's clock under
    /// [`TopologyTestDriver`](crate::testing::TopologyTestDriver)).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// struct Lag;
    /// impl KeyedProcessor<String, String, String, i64> for Lag {
    ///     fn process_element(
    ///         &mut self,
    ///         r: Record<String, String>,
    ///         ctx: &mut KeyedContext<'_, '_, String, String, i64>,
    ///     ) -> Result<(), ProcessError> {
    ///         let lag_ms = ctx.current_processing_time() - r.timestamp;
    ///         ctx.forward(r.with_value(lag_ms))
    ///     }
    /// }
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::keyed("state"));
    /// # b.stream("in", Serdes::string(), Serdes::string())
    /// #     .process(&["state"], || KeyedProcess::new("state", Serdes::string(), Lag))
    /// #     .to("out", Serdes::string(), Serdes::i64());
    /// let mut driver = TopologyTestDriver::new(b.build()?)?.start_wall_clock_at(100_000)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("out", Serdes::string(), Serdes::i64());
    /// driver.pipe(&input, "k".to_string(), "v".to_string(), 40_000)?;
    /// assert_eq!(driver.read_key_values(&out)?, vec![("k".to_string(), 60_000)]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn current_processing_time(&self) -> i64 {
        self.now
    }

    /// The processor's own context: other stores, the source offset, the
    /// stream time.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// struct Offsets;
    /// impl KeyedProcessor<String, String, String, i64> for Offsets {
    ///     fn process_element(
    ///         &mut self,
    ///         r: Record<String, String>,
    ///         ctx: &mut KeyedContext<'_, '_, String, String, i64>,
    ///     ) -> Result<(), ProcessError> {
    ///         let offset = ctx.context().source().map_or(-1, |source| source.offset);
    ///         ctx.forward(r.with_value(offset))
    ///     }
    /// }
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::keyed("state"));
    /// # b.stream("in", Serdes::string(), Serdes::string())
    /// #     .process(&["state"], || KeyedProcess::new("state", Serdes::string(), Offsets))
    /// #     .to("out", Serdes::string(), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("out", Serdes::string(), Serdes::i64());
    /// driver.pipe(&input, "a".to_string(), "x".to_string(), 0)?;
    /// driver.pipe(&input, "b".to_string(), "y".to_string(), 0)?;
    /// assert_eq!(driver.read_key_values(&out)?, vec![("a".to_string(), 0), ("b".to_string(), 1)]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn context(&mut self) -> &mut ProcessorContext<'a, KOut, VOut> {
        self.ctx
    }

    /// The store key of state `name`'s entry for the current key, followed
    /// by `suffix` (a map key).
    pub(crate) fn entry_key(&self, name: &str, suffix: &[u8]) -> Result<Vec<u8>, ProcessError> {
        let mut out = Vec::with_capacity(9 + name.len() + self.key_bytes.len() + suffix.len());
        out.push(STATE);
        out.extend_from_slice(&self.len_prefix(name.len())?);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&self.len_prefix(self.key_bytes.len())?);
        out.extend_from_slice(self.key_bytes);
        out.extend_from_slice(suffix);
        Ok(out)
    }

    fn len_prefix(&self, len: usize) -> Result<[u8; 4], ProcessError> {
        u32::try_from(len).map(u32::to_be_bytes).map_err(|_| ProcessError::Topology {
            node: format!("keyed state in store `{}`", self.store),
            reason: format!("a state name or key of {len} bytes is too long (at most 4 GiB)"),
        })
    }

    /// The payload of a state entry, `None` if absent or expired (an
    /// expired entry is deleted).
    pub(crate) fn read_entry(&mut self, entry: &[u8]) -> Result<Option<Vec<u8>>, ProcessError> {
        let now = self.now;
        let store_name = self.store;
        let mut store = raw(self.ctx, self.store)?;
        let Some(value) = store.get(&entry.to_vec())? else { return Ok(None) };
        let (expires, payload) =
            split_value(&value).ok_or_else(|| corrupt(store_name, "a state value is too short"))?;
        if expires <= now {
            store.delete(&entry.to_vec())?;
            store.delete(&ttl_index_key(expires, entry))?;
            return Ok(None);
        }
        Ok(Some(payload.to_vec()))
    }

    /// Every live entry whose key starts with `prefix`, with its payload.
    pub(crate) fn scan_entries(&mut self, prefix: &[u8]) -> Result<Entries, ProcessError> {
        let now = self.now;
        let store_name = self.store;
        let mut store = raw(self.ctx, self.store)?;
        let mut live = Vec::new();
        for (entry, value) in store.prefix_scan(&prefix.to_vec())? {
            let (expires, payload) =
                split_value(&value).ok_or_else(|| corrupt(store_name, "a state value is too short"))?;
            if expires <= now {
                store.delete(&entry)?;
                store.delete(&ttl_index_key(expires, &entry))?;
            } else {
                let payload = payload.to_vec();
                live.push((entry, payload));
            }
        }
        Ok(live)
    }

    /// Writes a state entry; with a TTL it expires `ttl_ms` from now.
    pub(crate) fn write_entry(
        &mut self,
        entry: Vec<u8>,
        payload: &[u8],
        ttl_ms: Option<i64>,
    ) -> Result<(), ProcessError> {
        let expires = ttl_ms.map_or(NEVER, |ttl| self.now.saturating_add(ttl));
        self.unindex(&entry)?;
        let mut store = raw(self.ctx, self.store)?;
        if expires != NEVER {
            store.put(&ttl_index_key(expires, &entry), &vec![1])?;
        }
        let mut value = Vec::with_capacity(8 + payload.len());
        value.extend_from_slice(&sortable(expires));
        value.extend_from_slice(payload);
        store.put(&entry, &value)
    }

    /// Deletes a state entry.
    pub(crate) fn delete_entry(&mut self, entry: Vec<u8>) -> Result<(), ProcessError> {
        self.unindex(&entry)?;
        raw(self.ctx, self.store)?.delete(&entry)
    }

    /// Removes the TTL index entry of `entry`'s current value, if any.
    fn unindex(&mut self, entry: &[u8]) -> Result<(), ProcessError> {
        let store_name = self.store;
        let mut store = raw(self.ctx, self.store)?;
        if let Some(old) = store.get(&entry.to_vec())? {
            let (expires, _) = split_value(&old).ok_or_else(|| corrupt(store_name, "a state value is too short"))?;
            if expires != NEVER {
                store.delete(&ttl_index_key(expires, entry))?;
            }
        }
        Ok(())
    }
}
