//! [`ListState`]: a list of values per key, kept as one entry.

use super::*;

/// A list of values per key, kept as one entry (read and written whole:
/// for short lists; a [`MapState`] suits many entries better).
///
/// ```
/// use rivulet::prelude::*;
/// use rivulet::testing::TopologyTestDriver;
/// use rivulet::topology::keyed::{KeyedContext, KeyedProcess, KeyedProcessor, ListState};
/// use rivulet::topology::ProcessError;
///
/// /// The average of each sensor's last three readings.
/// struct LastThree {
///     readings: ListState<i64>,
/// }
///
/// impl KeyedProcessor<String, i64, String, i64> for LastThree {
///     fn process_element(
///         &mut self,
///         r: Record<String, i64>,
///         ctx: &mut KeyedContext<'_, '_, String, String, i64>,
///     ) -> Result<(), ProcessError> {
///         let mut last = self.readings.get(ctx)?;
///         last.push(r.value);
///         if last.len() > 3 {
///             last.remove(0);
///         }
///         self.readings.update(ctx, &last)?;
///         let average = last.iter().sum::<i64>() / last.len() as i64;
///         ctx.forward(r.with_value(average))
///     }
/// }
///
/// let mut b = Topology::builder();
/// b.add_store(StoreSpec::keyed("last-three"));
/// b.stream("readings", Serdes::string(), Serdes::i64())
///     .process(&["last-three"], || {
///         let readings = ListState::new("readings", Serdes::i64());
///         KeyedProcess::new("last-three", Serdes::string(), LastThree { readings })
///     })
///     .to("averages", Serdes::string(), Serdes::i64());
/// let mut driver = TopologyTestDriver::new(b.build()?)?;
/// let readings = driver.input_topic("readings", Serdes::string(), Serdes::i64());
/// let averages = driver.output_topic("averages", Serdes::string(), Serdes::i64());
/// for value in [10, 20, 30, 40] {
///     driver.pipe(&readings, "s-1".to_string(), value, 0)?;
/// }
/// let out: Vec<i64> = driver.read_key_values(&averages)?.into_iter().map(|(_, avg)| avg).collect();
/// assert_eq!(out, [10, 15, 20, 30]);
/// # Ok::<(), rivulet::Error>(())
/// ```
pub struct ListState<T> {
    cell: Cell<T>,
}

impl<T: 'static> ListState<T> {
    /// The state `name` (unique within its keyed processor), elements
    /// encoded with `serde`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// # struct Cart { items: ListState<String> }
    /// # impl KeyedProcessor<String, String, String, String> for Cart {
    /// #     fn process_element(&mut self, _: Record<String, String>, _: &mut KeyedContext<'_, '_, String, String, String>) -> Result<(), ProcessError> {
    /// #         Ok(())
    /// #     }
    /// # }
    /// let mut b = Topology::builder();
    /// b.add_store(StoreSpec::keyed("carts"));
    /// b.stream("cart-events", Serdes::string(), Serdes::string())
    ///     .process(&["carts"], || {
    ///         let items = ListState::new("items", Serdes::string());
    ///         KeyedProcess::new("carts", Serdes::string(), Cart { items })
    ///     })
    ///     .to("out", Serdes::string(), Serdes::string());
    /// assert!(b.build().is_ok());
    /// ```
    pub fn new(name: &str, serde: impl Serde<T>) -> Self {
        ListState { cell: Cell::new(name, serde) }
    }

    /// Each key's list expires `ttl` of processing time after it was last
    /// written: the whole list, as it is one entry.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// # struct Recent { values: ListState<String> }
    /// # impl KeyedProcessor<String, String, String, i64> for Recent {
    /// #     fn process_element(&mut self, r: Record<String, String>, ctx: &mut KeyedContext<'_, '_, String, String, i64>) -> Result<(), ProcessError> {
    /// #         self.values.add(ctx, &r.value)?;
    /// #         let n = self.values.get(ctx)?.len() as i64;
    /// #         ctx.forward(r.with_value(n))
    /// #     }
    /// # }
    /// let mut b = Topology::builder();
    /// b.add_store(StoreSpec::keyed("state"));
    /// b.stream("in", Serdes::string(), Serdes::string())
    ///     .process(&["state"], || {
    ///         let values = ListState::new("values", Serdes::string()).with_ttl(Duration::from_secs(600));
    ///         KeyedProcess::new("state", Serdes::string(), Recent { values })
    ///     })
    ///     .to("out", Serdes::string(), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?.start_wall_clock_at(0)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("out", Serdes::string(), Serdes::i64());
    /// driver.pipe(&input, "k".to_string(), "a".to_string(), 0)?;
    /// driver.pipe(&input, "k".to_string(), "b".to_string(), 0)?;
    /// driver.advance_wall_clock(Duration::from_secs(900))?;
    /// driver.pipe(&input, "k".to_string(), "c".to_string(), 0)?; // the list expired: a new one
    /// let lengths: Vec<i64> = driver.read_key_values(&out)?.into_iter().map(|(_, n)| n).collect();
    /// assert_eq!(lengths, [1, 2, 1]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.cell.ttl_ms = Some(duration_ms(ttl));
        self
    }

    /// The current key's elements, oldest first (empty if none).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// struct History { pages: ListState<String> }
    /// impl KeyedProcessor<String, String, String, String> for History {
    ///     fn process_element(
    ///         &mut self,
    ///         r: Record<String, String>,
    ///         ctx: &mut KeyedContext<'_, '_, String, String, String>,
    ///     ) -> Result<(), ProcessError> {
    ///         self.pages.add(ctx, &r.value)?;
    ///         let path: Vec<String> = self.pages.get(ctx)?;
    ///         ctx.forward(r.with_value(path.join(" > ")))
    ///     }
    /// }
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::keyed("state"));
    /// # b.stream("in", Serdes::string(), Serdes::string())
    /// #     .process(&["state"], || KeyedProcess::new("state", Serdes::string(), History { pages: ListState::new("pages", Serdes::string()) }))
    /// #     .to("out", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("out", Serdes::string(), Serdes::string());
    /// driver.pipe(&input, "alice".to_string(), "/home".to_string(), 0)?;
    /// driver.pipe(&input, "alice".to_string(), "/cart".to_string(), 0)?;
    /// let paths: Vec<String> = driver.read_key_values(&out)?.into_iter().map(|(_, p)| p).collect();
    /// assert_eq!(paths, ["/home", "/home > /cart"]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn get<K, KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        ctx: &mut KeyedContext<'_, '_, K, KO, VO>,
    ) -> Result<Vec<T>, ProcessError> {
        let entry = ctx.entry_key(&self.cell.name, &[])?;
        let Some(bytes) = ctx.read_entry(&entry)? else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            let len = rest.get(..4).and_then(|b| <[u8; 4]>::try_from(b).ok()).map(u32::from_be_bytes);
            let element = len.and_then(|n| rest.get(4..4 + n as usize));
            let Some(element) = element else {
                return Err(ProcessError::Serde {
                    what: format!("list of keyed state `{}`", self.cell.name),
                    source: crate::serde::SerdeError::new("keyed-state", "an element's length runs past the list"),
                });
            };
            out.push(self.cell.decode(element)?);
            rest = &rest[4 + element.len()..];
        }
        Ok(out)
    }

    /// Appends `value` to the current key's list (reading and writing the
    /// whole list).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// struct Order { items: ListState<String> }
    /// impl KeyedProcessor<String, String, String, String> for Order {
    ///     fn process_element(
    ///         &mut self,
    ///         r: Record<String, String>,
    ///         ctx: &mut KeyedContext<'_, '_, String, String, String>,
    ///     ) -> Result<(), ProcessError> {
    ///         if r.value != "checkout" {
    ///             return self.items.add(ctx, &r.value);
    ///         }
    ///         let items = self.items.get(ctx)?.join(",");
    ///         self.items.clear(ctx)?;
    ///         ctx.forward(r.with_value(items))
    ///     }
    /// }
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::keyed("state"));
    /// # b.stream("in", Serdes::string(), Serdes::string())
    /// #     .process(&["state"], || KeyedProcess::new("state", Serdes::string(), Order { items: ListState::new("items", Serdes::string()) }))
    /// #     .to("out", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("out", Serdes::string(), Serdes::string());
    /// for event in ["tea", "milk", "checkout"] {
    ///     driver.pipe(&input, "cart-1".to_string(), event.to_string(), 0)?;
    /// }
    /// assert_eq!(driver.read_key_values(&out)?, vec![("cart-1".to_string(), "tea,milk".to_string())]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn add<K, KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        ctx: &mut KeyedContext<'_, '_, K, KO, VO>,
        value: &T,
    ) -> Result<(), ProcessError> {
        let entry = ctx.entry_key(&self.cell.name, &[])?;
        let mut payload = ctx.read_entry(&entry)?.unwrap_or_default();
        self.append(value, &mut payload)?;
        ctx.write_entry(entry, &payload, self.cell.ttl_ms)
    }

    /// Replaces the current key's list (an empty one removes it). Here a
    /// rate limit: a user's requests of the last minute (event time) are kept,
    /// and a fourth within a minute is dropped.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// struct RateLimit { recent: ListState<i64> }
    /// impl KeyedProcessor<String, String, String, String> for RateLimit {
    ///     fn process_element(
    ///         &mut self,
    ///         r: Record<String, String>,
    ///         ctx: &mut KeyedContext<'_, '_, String, String, String>,
    ///     ) -> Result<(), ProcessError> {
    ///         let mut recent = self.recent.get(ctx)?;
    ///         recent.retain(|t| *t > r.timestamp - 60_000);
    ///         if recent.len() >= 3 {
    ///             return Ok(());
    ///         }
    ///         recent.push(r.timestamp);
    ///         self.recent.update(ctx, &recent)?;
    ///         ctx.forward(r)
    ///     }
    /// }
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::keyed("state"));
    /// # b.stream("in", Serdes::string(), Serdes::string())
    /// #     .process(&["state"], || KeyedProcess::new("state", Serdes::string(), RateLimit { recent: ListState::new("recent", Serdes::i64()) }))
    /// #     .to("out", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("out", Serdes::string(), Serdes::string());
    /// for t in [0, 10_000, 20_000, 30_000, 65_000] {
    ///     driver.pipe(&input, "alice".to_string(), "GET /".to_string(), t)?;
    /// }
    /// let passed: Vec<i64> = driver.read(&out)?.iter().map(|r| r.timestamp).collect();
    /// assert_eq!(passed, [0, 10_000, 20_000, 65_000]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn update<K, KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        ctx: &mut KeyedContext<'_, '_, K, KO, VO>,
        values: &[T],
    ) -> Result<(), ProcessError> {
        let entry = ctx.entry_key(&self.cell.name, &[])?;
        if values.is_empty() {
            return ctx.delete_entry(entry);
        }
        let mut payload = Vec::new();
        for v in values {
            self.append(v, &mut payload)?;
        }
        ctx.write_entry(entry, &payload, self.cell.ttl_ms)
    }

    /// Removes the current key's list.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// struct Resettable { values: ListState<String> }
    /// impl KeyedProcessor<String, String, String, i64> for Resettable {
    ///     fn process_element(
    ///         &mut self,
    ///         r: Record<String, String>,
    ///         ctx: &mut KeyedContext<'_, '_, String, String, i64>,
    ///     ) -> Result<(), ProcessError> {
    ///         if r.value == "reset" {
    ///             return self.values.clear(ctx);
    ///         }
    ///         self.values.add(ctx, &r.value)?;
    ///         let n = self.values.get(ctx)?.len() as i64;
    ///         ctx.forward(r.with_value(n))
    ///     }
    /// }
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::keyed("state"));
    /// # b.stream("in", Serdes::string(), Serdes::string())
    /// #     .process(&["state"], || KeyedProcess::new("state", Serdes::string(), Resettable { values: ListState::new("values", Serdes::string()) }))
    /// #     .to("out", Serdes::string(), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("out", Serdes::string(), Serdes::i64());
    /// for value in ["a", "b", "reset", "c"] {
    ///     driver.pipe(&input, "k".to_string(), value.to_string(), 0)?;
    /// }
    /// let lengths: Vec<i64> = driver.read_key_values(&out)?.into_iter().map(|(_, n)| n).collect();
    /// assert_eq!(lengths, [1, 2, 1]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn clear<K, KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        ctx: &mut KeyedContext<'_, '_, K, KO, VO>,
    ) -> Result<(), ProcessError> {
        self.cell.delete(ctx, &[])
    }

    /// Appends `[u32 length][encoding]`.
    fn append(&self, value: &T, payload: &mut Vec<u8>) -> Result<(), ProcessError> {
        let at = payload.len();
        payload.extend_from_slice(&[0; 4]);
        self.cell.encode(value, payload)?;
        let len = u32::try_from(payload.len() - at - 4).map_err(|_| ProcessError::Serde {
            what: format!("element of keyed state `{}`", self.cell.name),
            source: crate::serde::SerdeError::new("keyed-state", "an element of 4 GiB or more cannot be stored"),
        })?;
        payload[at..at + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }
}
