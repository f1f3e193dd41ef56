//! [`MapState`]: a map per key, one store entry per map entry.

use super::*;

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
