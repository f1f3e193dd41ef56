//! The state handles of a keyed processor: each names its state and how
//! its values become bytes, and reads and writes the entry of the
//! [`KeyedContext`]'s current key.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use super::KeyedContext;
use crate::processor::time::duration_ms;
use crate::processor::ProcessError;
use crate::serde::{Encoded, Serde};

/// What every state handle has: its name, its serde, its time-to-live.
struct Cell<T> {
    name: String,
    serde: Arc<dyn Serde<T>>,
    ttl_ms: Option<i64>,
}

impl<T: 'static> Cell<T> {
    fn new(name: &str, serde: impl Serde<T>) -> Self {
        Cell { name: name.to_string(), serde: Arc::new(serde), ttl_ms: None }
    }

    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<(), ProcessError> {
        let at = out.len();
        match self.serde.serialize(value, out) {
            Ok(Encoded::Bytes) => Ok(()),
            // A serde meaning null (Serdes::unit, optional None) wrote nothing.
            Ok(Encoded::Null) => {
                out.truncate(at);
                Ok(())
            }
            Err(e) => Err(ProcessError::Serde { what: format!("value of keyed state `{}`", self.name), source: e }),
        }
    }

    fn decode(&self, bytes: &[u8]) -> Result<T, ProcessError> {
        self.serde
            .deserialize(Some(bytes))
            .map_err(|e| ProcessError::Serde { what: format!("value of keyed state `{}`", self.name), source: e })
    }

    /// The current key's entry (`suffix`: its map key, if any), decoded.
    fn get<K, KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        ctx: &mut KeyedContext<'_, '_, K, KO, VO>,
        suffix: &[u8],
    ) -> Result<Option<T>, ProcessError> {
        let entry = ctx.entry_key(&self.name, suffix)?;
        ctx.read_entry(&entry)?.map(|bytes| self.decode(&bytes)).transpose()
    }

    /// Sets the current key's entry to `value`.
    fn set<K, KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        ctx: &mut KeyedContext<'_, '_, K, KO, VO>,
        suffix: &[u8],
        value: &T,
    ) -> Result<(), ProcessError> {
        let entry = ctx.entry_key(&self.name, suffix)?;
        let mut payload = Vec::new();
        self.encode(value, &mut payload)?;
        ctx.write_entry(entry, &payload, self.ttl_ms)
    }

    /// Removes the current key's entry.
    fn delete<K, KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        ctx: &mut KeyedContext<'_, '_, K, KO, VO>,
        suffix: &[u8],
    ) -> Result<(), ProcessError> {
        let entry = ctx.entry_key(&self.name, suffix)?;
        ctx.delete_entry(entry)
    }
}

/// One value per key (Flink's `ValueState`): a field of a
/// [`KeyedProcessor`](super::KeyedProcessor), read and written through
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
    /// written (see the [module docs](super#time-to-live)): reads do not
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

/// A map per key, one store entry per map entry, iterated in the order of
/// the encoded map keys. Each map entry has its own time-to-live. Reading
/// or writing one map entry does not touch the others, so a map can be
/// large.
///
/// ```
/// use rivulet::prelude::*;
/// use rivulet::testing::TopologyTestDriver;
/// use rivulet::topology::keyed::{KeyedContext, KeyedProcess, KeyedProcessor, MapState};
/// use rivulet::topology::ProcessError;
///
/// /// Each user's visits per page.
/// struct Visits {
///     per_page: MapState<String, i64>,
/// }
///
/// impl KeyedProcessor<String, String, String, i64> for Visits {
///     fn process_element(
///         &mut self,
///         r: Record<String, String>,
///         ctx: &mut KeyedContext<'_, '_, String, String, i64>,
///     ) -> Result<(), ProcessError> {
///         let n = self.per_page.get(ctx, &r.value)?.unwrap_or(0) + 1;
///         self.per_page.put(ctx, &r.value, &n)?;
///         ctx.forward(r.with_value(n))
///     }
/// }
///
/// let mut b = Topology::builder();
/// b.add_store(StoreSpec::keyed("visits"));
/// b.stream("page-views", Serdes::string(), Serdes::string())
///     .process(&["visits"], || {
///         let per_page = MapState::new("per-page", Serdes::string(), Serdes::i64());
///         KeyedProcess::new("visits", Serdes::string(), Visits { per_page })
///     })
///     .to("visit-counts", Serdes::string(), Serdes::i64());
/// let mut driver = TopologyTestDriver::new(b.build()?)?;
/// let views = driver.input_topic("page-views", Serdes::string(), Serdes::string());
/// let counts = driver.output_topic("visit-counts", Serdes::string(), Serdes::i64());
/// for page in ["/home", "/cart", "/home"] {
///     driver.pipe(&views, "alice".to_string(), page.to_string(), 0)?;
/// }
/// let out: Vec<i64> = driver.read_key_values(&counts)?.into_iter().map(|(_, n)| n).collect();
/// assert_eq!(out, [1, 1, 2]);
/// # Ok::<(), rivulet::Error>(())
/// ```
pub struct MapState<MK, MV> {
    cell: Cell<MV>,
    key_serde: Arc<dyn Serde<MK>>,
    _key: PhantomData<fn(MK)>,
}

impl<MK: 'static, MV: 'static> MapState<MK, MV> {
    /// The state `name` (unique within its keyed processor), map keys and
    /// values encoded with `key_serde` and `value_serde`. Entries are
    /// iterated in the order of the encoded keys (byte order: for strings,
    /// their UTF-8 order).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// # struct Prices { by_item: MapState<String, i64> }
    /// # impl KeyedProcessor<String, String, String, String> for Prices {
    /// #     fn process_element(&mut self, _: Record<String, String>, _: &mut KeyedContext<'_, '_, String, String, String>) -> Result<(), ProcessError> {
    /// #         Ok(())
    /// #     }
    /// # }
    /// let mut b = Topology::builder();
    /// b.add_store(StoreSpec::keyed("prices"));
    /// b.stream("price-updates", Serdes::string(), Serdes::string())
    ///     .process(&["prices"], || {
    ///         let by_item = MapState::new("by-item", Serdes::string(), Serdes::i64());
    ///         KeyedProcess::new("prices", Serdes::string(), Prices { by_item })
    ///     })
    ///     .to("out", Serdes::string(), Serdes::string());
    /// assert!(b.build().is_ok());
    /// ```
    pub fn new(name: &str, key_serde: impl Serde<MK>, value_serde: impl Serde<MV>) -> Self {
        MapState { cell: Cell::new(name, value_serde), key_serde: Arc::new(key_serde), _key: PhantomData }
    }

    /// Each map entry expires `ttl` of processing time after it was last
    /// written, on its own.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// # struct Online { seen: MapState<String, i64> }
    /// # impl KeyedProcessor<String, String, String, String> for Online {
    /// #     fn process_element(&mut self, r: Record<String, String>, ctx: &mut KeyedContext<'_, '_, String, String, String>) -> Result<(), ProcessError> {
    /// #         self.seen.put(ctx, &r.value, &r.timestamp)?;
    /// #         let devices: Vec<String> = self.seen.entries(ctx)?.into_iter().map(|(d, _)| d).collect();
    /// #         ctx.forward(r.with_value(devices.join(",")))
    /// #     }
    /// # }
    /// let mut b = Topology::builder();
    /// b.add_store(StoreSpec::keyed("state"));
    /// b.stream("in", Serdes::string(), Serdes::string())
    ///     .process(&["state"], || {
    ///         let seen =
    ///             MapState::new("devices", Serdes::string(), Serdes::i64()).with_ttl(Duration::from_secs(3600));
    ///         KeyedProcess::new("state", Serdes::string(), Online { seen })
    ///     })
    ///     .to("out", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?.start_wall_clock_at(0)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("out", Serdes::string(), Serdes::string());
    /// driver.pipe(&input, "alice".to_string(), "laptop".to_string(), 0)?;
    /// driver.advance_wall_clock(Duration::from_secs(30 * 60))?;
    /// driver.pipe(&input, "alice".to_string(), "phone".to_string(), 0)?;
    /// driver.advance_wall_clock(Duration::from_secs(40 * 60))?; // laptop: 70 min, phone: 40 min
    /// driver.pipe(&input, "alice".to_string(), "phone".to_string(), 0)?;
    /// let online: Vec<String> = driver.read_key_values(&out)?.into_iter().map(|(_, d)| d).collect();
    /// assert_eq!(online, ["laptop", "laptop,phone", "phone"]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.cell.ttl_ms = Some(duration_ms(ttl));
        self
    }

    fn map_key(&self, key: &MK) -> Result<Vec<u8>, ProcessError> {
        let mut out = Vec::new();
        self.key_serde.serialize(key, &mut out).map_err(|e| ProcessError::Serde {
            what: format!("map key of keyed state `{}`", self.cell.name),
            source: e,
        })?;
        Ok(out)
    }

    /// The value under `key` in the current key's map (`None` if absent or
    /// expired).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// struct Progress { scores: MapState<String, i64> }
    /// impl KeyedProcessor<String, (String, i64), String, i64> for Progress {
    ///     fn process_element(
    ///         &mut self,
    ///         r: Record<String, (String, i64)>,
    ///         ctx: &mut KeyedContext<'_, '_, String, String, i64>,
    ///     ) -> Result<(), ProcessError> {
    ///         let (game, score) = &r.value;
    ///         let previous = self.scores.get(ctx, game)?.unwrap_or(0);
    ///         self.scores.put(ctx, game, score)?;
    ///         let gain = score - previous;
    ///         ctx.forward(r.with_value(gain))
    ///     }
    /// }
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::keyed("state"));
    /// # b.stream("in", Serdes::string(), Serdes::json::<(String, i64)>())
    /// #     .process(&["state"], || KeyedProcess::new("state", Serdes::string(), Progress { scores: MapState::new("scores", Serdes::string(), Serdes::i64()) }))
    /// #     .to("out", Serdes::string(), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::json::<(String, i64)>());
    /// # let out = driver.output_topic("out", Serdes::string(), Serdes::i64());
    /// for (game, score) in [("chess", 10), ("go", 5), ("chess", 14)] {
    ///     driver.pipe(&input, "alice".to_string(), (game.to_string(), score), 0)?;
    /// }
    /// let gains: Vec<i64> = driver.read_key_values(&out)?.into_iter().map(|(_, g)| g).collect();
    /// assert_eq!(gains, [10, 5, 4]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn get<K, KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        ctx: &mut KeyedContext<'_, '_, K, KO, VO>,
        key: &MK,
    ) -> Result<Option<MV>, ProcessError> {
        self.cell.get(ctx, &self.map_key(key)?)
    }

    /// Whether the current key's map holds `key` (a live entry).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// struct FirstVisits { pages: MapState<String, i64> }
    /// impl KeyedProcessor<String, String, String, String> for FirstVisits {
    ///     fn process_element(
    ///         &mut self,
    ///         r: Record<String, String>,
    ///         ctx: &mut KeyedContext<'_, '_, String, String, String>,
    ///     ) -> Result<(), ProcessError> {
    ///         if self.pages.contains(ctx, &r.value)? {
    ///             return Ok(());
    ///         }
    ///         self.pages.put(ctx, &r.value, &r.timestamp)?;
    ///         ctx.forward(r)
    ///     }
    /// }
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::keyed("state"));
    /// # b.stream("in", Serdes::string(), Serdes::string())
    /// #     .process(&["state"], || KeyedProcess::new("state", Serdes::string(), FirstVisits { pages: MapState::new("pages", Serdes::string(), Serdes::i64()) }))
    /// #     .to("out", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("out", Serdes::string(), Serdes::string());
    /// for page in ["/home", "/cart", "/home"] {
    ///     driver.pipe(&input, "alice".to_string(), page.to_string(), 0)?;
    /// }
    /// let first: Vec<String> = driver.read_key_values(&out)?.into_iter().map(|(_, p)| p).collect();
    /// assert_eq!(first, ["/home", "/cart"]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn contains<K, KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        ctx: &mut KeyedContext<'_, '_, K, KO, VO>,
        key: &MK,
    ) -> Result<bool, ProcessError> {
        let entry = ctx.entry_key(&self.cell.name, &self.map_key(key)?)?;
        Ok(ctx.read_entry(&entry)?.is_some())
    }

    /// Puts `value` under `key` in the current key's map (replacing what was
    /// there, and restarting the entry's time-to-live).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// struct DistinctPages { last_visit: MapState<String, i64> }
    /// impl KeyedProcessor<String, String, String, i64> for DistinctPages {
    ///     fn process_element(
    ///         &mut self,
    ///         r: Record<String, String>,
    ///         ctx: &mut KeyedContext<'_, '_, String, String, i64>,
    ///     ) -> Result<(), ProcessError> {
    ///         self.last_visit.put(ctx, &r.value, &r.timestamp)?;
    ///         let distinct = self.last_visit.entries(ctx)?.len() as i64;
    ///         ctx.forward(r.with_value(distinct))
    ///     }
    /// }
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::keyed("state"));
    /// # b.stream("in", Serdes::string(), Serdes::string())
    /// #     .process(&["state"], || KeyedProcess::new("state", Serdes::string(), DistinctPages { last_visit: MapState::new("last-visit", Serdes::string(), Serdes::i64()) }))
    /// #     .to("out", Serdes::string(), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("out", Serdes::string(), Serdes::i64());
    /// for page in ["/home", "/cart", "/home"] {
    ///     driver.pipe(&input, "alice".to_string(), page.to_string(), 0)?;
    /// }
    /// let distinct: Vec<i64> = driver.read_key_values(&out)?.into_iter().map(|(_, n)| n).collect();
    /// assert_eq!(distinct, [1, 2, 2]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn put<K, KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        ctx: &mut KeyedContext<'_, '_, K, KO, VO>,
        key: &MK,
        value: &MV,
    ) -> Result<(), ProcessError> {
        self.cell.set(ctx, &self.map_key(key)?, value)
    }

    /// Removes `key` from the current key's map.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// struct Cart { cart: MapState<String, i64> }
    /// impl KeyedProcessor<String, String, String, String> for Cart {
    ///     fn process_element(
    ///         &mut self,
    ///         r: Record<String, String>,
    ///         ctx: &mut KeyedContext<'_, '_, String, String, String>,
    ///     ) -> Result<(), ProcessError> {
    ///         if let Some(item) = r.value.strip_prefix('+') {
    ///             self.cart.put(ctx, &item.to_string(), &1)?;
    ///         } else if let Some(item) = r.value.strip_prefix('-') {
    ///             self.cart.remove(ctx, &item.to_string())?;
    ///         }
    ///         let items: Vec<String> = self.cart.entries(ctx)?.into_iter().map(|(item, _)| item).collect();
    ///         ctx.forward(r.with_value(items.join(",")))
    ///     }
    /// }
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::keyed("state"));
    /// # b.stream("in", Serdes::string(), Serdes::string())
    /// #     .process(&["state"], || KeyedProcess::new("state", Serdes::string(), Cart { cart: MapState::new("cart", Serdes::string(), Serdes::i64()) }))
    /// #     .to("out", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("out", Serdes::string(), Serdes::string());
    /// for event in ["+tea", "+milk", "-tea"] {
    ///     driver.pipe(&input, "cart-1".to_string(), event.to_string(), 0)?;
    /// }
    /// let carts: Vec<String> = driver.read_key_values(&out)?.into_iter().map(|(_, c)| c).collect();
    /// assert_eq!(carts, ["tea", "milk,tea", "milk"]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn remove<K, KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        ctx: &mut KeyedContext<'_, '_, K, KO, VO>,
        key: &MK,
    ) -> Result<(), ProcessError> {
        self.cell.delete(ctx, &self.map_key(key)?)
    }

    /// The current key's map entries, in the order of their encoded keys
    /// (expired entries are left out, and deleted).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// struct Spending { per_category: MapState<String, i64> }
    /// impl KeyedProcessor<String, (String, i64), String, String> for Spending {
    ///     fn process_element(
    ///         &mut self,
    ///         r: Record<String, (String, i64)>,
    ///         ctx: &mut KeyedContext<'_, '_, String, String, String>,
    ///     ) -> Result<(), ProcessError> {
    ///         let (category, amount) = &r.value;
    ///         let spent = self.per_category.get(ctx, category)?.unwrap_or(0) + amount;
    ///         self.per_category.put(ctx, category, &spent)?;
    ///         let all: Vec<(String, i64)> = self.per_category.entries(ctx)?;
    ///         let summary: Vec<String> = all.iter().map(|(c, n)| format!("{c}={n}")).collect();
    ///         ctx.forward(r.with_value(summary.join(" ")))
    ///     }
    /// }
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::keyed("state"));
    /// # b.stream("in", Serdes::string(), Serdes::json::<(String, i64)>())
    /// #     .process(&["state"], || KeyedProcess::new("state", Serdes::string(), Spending { per_category: MapState::new("spent", Serdes::string(), Serdes::i64()) }))
    /// #     .to("out", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::json::<(String, i64)>());
    /// # let out = driver.output_topic("out", Serdes::string(), Serdes::string());
    /// for (category, amount) in [("food", 12), ("books", 30), ("food", 8)] {
    ///     driver.pipe(&input, "alice".to_string(), (category.to_string(), amount), 0)?;
    /// }
    /// let last = driver.read_key_values(&out)?.pop().map(|(_, summary)| summary);
    /// assert_eq!(last.as_deref(), Some("books=30 food=20"));
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn entries<K, KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        ctx: &mut KeyedContext<'_, '_, K, KO, VO>,
    ) -> Result<Vec<(MK, MV)>, ProcessError> {
        let prefix = ctx.entry_key(&self.cell.name, &[])?;
        ctx.scan_entries(&prefix)?
            .into_iter()
            .map(|(entry, payload)| {
                let key = self.key_serde.deserialize(entry.get(prefix.len()..)).map_err(|e| ProcessError::Serde {
                    what: format!("map key of keyed state `{}`", self.cell.name),
                    source: e,
                })?;
                Ok((key, self.cell.decode(&payload)?))
            })
            .collect()
    }

    /// Removes every entry of the current key's map.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use rivulet::topology::keyed::*;
    /// # use rivulet::topology::ProcessError;
    /// struct Checkout { cart: MapState<String, i64> }
    /// impl KeyedProcessor<String, String, String, String> for Checkout {
    ///     fn process_element(
    ///         &mut self,
    ///         r: Record<String, String>,
    ///         ctx: &mut KeyedContext<'_, '_, String, String, String>,
    ///     ) -> Result<(), ProcessError> {
    ///         if r.value == "checkout" {
    ///             let items: Vec<String> = self.cart.entries(ctx)?.into_iter().map(|(item, _)| item).collect();
    ///             self.cart.clear(ctx)?;
    ///             return ctx.forward(r.with_value(items.join(",")));
    ///         }
    ///         let n = self.cart.get(ctx, &r.value)?.unwrap_or(0);
    ///         self.cart.put(ctx, &r.value, &(n + 1))
    ///     }
    /// }
    /// # let mut b = Topology::builder();
    /// # b.add_store(StoreSpec::keyed("state"));
    /// # b.stream("in", Serdes::string(), Serdes::string())
    /// #     .process(&["state"], || KeyedProcess::new("state", Serdes::string(), Checkout { cart: MapState::new("cart", Serdes::string(), Serdes::i64()) }))
    /// #     .to("out", Serdes::string(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let out = driver.output_topic("out", Serdes::string(), Serdes::string());
    /// for event in ["tea", "milk", "checkout", "jam", "checkout"] {
    ///     driver.pipe(&input, "cart-1".to_string(), event.to_string(), 0)?;
    /// }
    /// let orders: Vec<String> = driver.read_key_values(&out)?.into_iter().map(|(_, o)| o).collect();
    /// assert_eq!(orders, ["milk,tea", "jam"]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn clear<K, KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        ctx: &mut KeyedContext<'_, '_, K, KO, VO>,
    ) -> Result<(), ProcessError> {
        let prefix = ctx.entry_key(&self.cell.name, &[])?;
        for (entry, _) in ctx.scan_entries(&prefix)? {
            ctx.delete_entry(entry)?;
        }
        Ok(())
    }
}
