//! The keyed processor trait and the store it keeps its state in.

use super::*;

/// A processor whose state and timers are scoped to the key of the record
/// it handles (Flink's `KeyedProcessFunction`); add it with
/// [`KeyedProcess::new`]. Its state handles ([`ValueState`], [`ListState`],
/// [`MapState`]) are fields, made with the processor in the factory
/// closure of [`KStream::process`](crate::topology::KStream::process).
/// `on_timer` is optional.
///
/// ```
/// use rivulet::prelude::*;
/// use rivulet::testing::TopologyTestDriver;
/// use rivulet::topology::keyed::{KeyedContext, KeyedProcess, KeyedProcessor, ValueState};
/// use rivulet::topology::ProcessError;
///
/// /// Alerts on a user's third failed login in a row.
/// struct FailedLogins {
///     failures: ValueState<i64>,
/// }
///
/// impl KeyedProcessor<String, String, String, i64> for FailedLogins {
///     fn process_element(
///         &mut self,
///         r: Record<String, String>,
///         ctx: &mut KeyedContext<'_, '_, String, String, i64>,
///     ) -> Result<(), ProcessError> {
///         if r.value == "ok" {
///             return self.failures.clear(ctx);
///         }
///         let n = self.failures.get(ctx)?.unwrap_or(0) + 1;
///         self.failures.set(ctx, &n)?;
///         if n == 3 {
///             ctx.forward(Record::new(r.key, n, r.timestamp))?;
///         }
///         Ok(())
///     }
/// }
///
/// let mut b = Topology::builder();
/// b.add_store(StoreSpec::keyed("failed-logins"));
/// b.stream("logins", Serdes::string(), Serdes::string())
///     .process(&["failed-logins"], || {
///         let failures = ValueState::new("failures", Serdes::i64());
///         KeyedProcess::new("failed-logins", Serdes::string(), FailedLogins { failures })
///     })
///     .to("login-alerts", Serdes::string(), Serdes::i64());
/// let mut driver = TopologyTestDriver::new(b.build()?)?;
/// let logins = driver.input_topic("logins", Serdes::string(), Serdes::string());
/// let alerts = driver.output_topic("login-alerts", Serdes::string(), Serdes::i64());
/// for outcome in ["fail", "fail", "ok", "fail", "fail", "fail"] {
///     driver.pipe(&logins, "alice".to_string(), outcome.to_string(), 0)?;
/// }
/// assert_eq!(driver.read_key_values(&alerts)?, vec![("alice".to_string(), 3)]);
/// # Ok::<(), rivulet::Error>(())
/// ```
pub trait KeyedProcessor<K, V, KOut, VOut>: 'static {
    /// Handles one record; the context is scoped to `record.key`.
    fn process_element(
        &mut self,
        record: Record<K, V>,
        ctx: &mut KeyedContext<'_, '_, K, KOut, VOut>,
    ) -> Result<(), ProcessError>;

    /// A timer registered for the context's key is due. It has been deleted
    /// already: register it again to repeat it.
    fn on_timer(&mut self, timer: Timer, ctx: &mut KeyedContext<'_, '_, K, KOut, VOut>) -> Result<(), ProcessError> {
        let _ = (timer, ctx);
        Ok(())
    }
}

impl StoreSpec {
    /// The store of a [`KeyedProcess`]: its state entries, timers and
    /// watermark, as bytes, in RocksDB (changelog
    /// `<application_id>-<name>-changelog`); `.in_memory()` keeps it in memory
    /// (restored from the changelog at start). Declare it with
    /// [`TopologyBuilder::add_store`](crate::topology::TopologyBuilder::add_store)
    /// and list it in `process`.
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
    /// b.add_store(StoreSpec::keyed("sessions").in_memory());
    /// b.stream("clicks", Serdes::string(), Serdes::string())
    ///     .process(&["sessions"], || KeyedProcess::new("sessions", Serdes::string(), Noop))
    ///     .to("out", Serdes::string(), Serdes::string());
    /// assert!(b.build()?.describe().contains("sessions (in-memory, changelog <application_id>-sessions-changelog)"));
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn keyed(name: &str) -> StoreSpec {
        StoreSpec::key_value(name, Serdes::bytes(), Serdes::bytes()).queried_as(
            crate::processor::store::QueryLayout::Internal(
                "a keyed-state store (StoreSpec::keyed) holds rivulet's own layout of values, lists, maps and timers",
            ),
        )
    }
}
