//! The Processor API: the one way records move through a topology.
//!
//! A [`Processor`] receives records one at a time and emits records to its
//! children through its [`ProcessorContext`]. Every DSL operator is a
//! processor; user code can add its own with
//! [`KStream::process`](crate::topology::KStream::process).
//!
//! A topology is instantiated once per task. Each node of the instance is
//! an `Rc<RefCell<..>>` shared by its parents (so a node can have several,
//! as after `merge`), and a record moves by plain dynamic calls from node to
//! node: no queues, no locks, no allocation per hop. Records are cloned only
//! when a node has more than one child.

use crate::processor::error::ProcessError;
use crate::record::Record;

mod context;
mod node;

pub use context::ProcessorContext;
pub(crate) use node::{Children, Entry, Lifecycle, Node, NodeInfo, ProcessorNode, Typed};

/// Which clock a scheduled callback follows; see
/// [`ProcessorContext::schedule`].
///
/// ```
/// # use rivulet::prelude::*;
/// # use rivulet::testing::TopologyTestDriver;
/// # use std::time::Duration;
/// use rivulet::processor::{ProcessError, TimeKind};
/// /// Every 10 s of stream time, emits how many records arrived.
/// struct Tally(i64);
/// impl Processor<(), String, (), i64> for Tally {
///     fn init(&mut self, ctx: &mut ProcessorContext<'_, (), i64>) -> Result<(), ProcessError> {
///         ctx.schedule(Duration::from_secs(10), TimeKind::StreamTime);
///         Ok(())
///     }
///     fn process(&mut self, _: Record<(), String>, _: &mut ProcessorContext<'_, (), i64>) -> Result<(), ProcessError> { self.0 += 1; Ok(()) }
///     fn on_timer(&mut self, _: TimeKind, at: i64, ctx: &mut ProcessorContext<'_, (), i64>) -> Result<(), ProcessError> {
///         ctx.forward(Record::new((), std::mem::take(&mut self.0), at))
///     }
/// }
/// # fn main() -> rivulet::Result<()> {
/// # let mut b = Topology::builder();
/// # b.stream("in", Serdes::unit(), Serdes::string()).process(&[], || Tally(0)).to("out", Serdes::unit(), Serdes::i64());
/// # let mut driver = TopologyTestDriver::new(b.build()?)?;
/// # let input = driver.input_topic("in", Serdes::unit(), Serdes::string());
/// # let output = driver.output_topic("out", Serdes::unit(), Serdes::i64());
/// for t in [1_000, 4_000, 9_000, 12_000, 25_000] {
///     driver.pipe(&input, (), "x".into(), t)?;
/// }
/// // At the first record, then when a record takes stream time 10 s past the last firing.
/// let fired: Vec<(i64, i64)> = driver.read(&output)?.iter().map(|r| (r.timestamp, r.value)).collect();
/// assert_eq!(fired, [(1_000, 1), (12_000, 3), (25_000, 1)]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeKind {
    /// The task's stream time: the largest record timestamp seen. Fires
    /// only as records arrive.
    StreamTime,
    /// The wall clock. Fires while the task is idle too.
    WallClock,
}

/// Receives records and emits records to its children.
///
/// `process` is required; `init`, `on_timer` and `close` are optional.
/// ```
/// use rivulet::topology::{Processor, ProcessorContext, ProcessError};
/// use rivulet::Record;
///
/// /// Emits each value's length.
/// struct Lengths;
/// impl Processor<String, String, String, usize> for Lengths {
///     fn process(&mut self, r: Record<String, String>, ctx: &mut ProcessorContext<'_, String, usize>) -> Result<(), ProcessError> {
///         let n = r.value.len();
///         ctx.forward(r.with_value(n))
///     }
/// }
/// ```
pub trait Processor<KIn, VIn, KOut, VOut>: 'static {
    /// Called once when the task starts, after its stores are restored:
    /// fetch stores, schedule callbacks.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::processor::ProcessError;
    /// # use rivulet::testing::TopologyTestDriver;
    /// /// A running sum, kept in a field and saved in the store `sum`.
    /// struct Sum(i64);
    /// impl Processor<(), i64, (), i64> for Sum {
    ///     fn init(&mut self, ctx: &mut ProcessorContext<'_, (), i64>) -> Result<(), ProcessError> {
    ///         self.0 = ctx.store::<u32, i64>("sum")?.get(&0)?.unwrap_or(0);
    ///         Ok(())
    ///     }
    ///     fn process(&mut self, r: Record<(), i64>, ctx: &mut ProcessorContext<'_, (), i64>) -> Result<(), ProcessError> {
    ///         self.0 += r.value;
    ///         ctx.store::<u32, i64>("sum")?.put(&0, &self.0)?;
    ///         ctx.forward(r.with_value(self.0))
    ///     }
    /// }
    /// # fn main() -> rivulet::Result<()> {
    /// # let mut b = Topology::builder();
    /// b.add_store(StoreSpec::key_value("sum", Serdes::u32(), Serdes::i64()));
    /// b.stream("in", Serdes::unit(), Serdes::i64()).process(&["sum"], || Sum(0)).to("out", Serdes::unit(), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::unit(), Serdes::i64());
    /// # let output = driver.output_topic("out", Serdes::unit(), Serdes::i64());
    /// driver.pipe(&input, (), 5, 0)?;
    /// driver.restart()?; // a new processor, whose init reads the restored sum
    /// driver.pipe(&input, (), 2, 0)?;
    /// assert_eq!(driver.read_key_values(&output)?, [((), 5), ((), 7)]);
    /// # Ok(()) }
    /// ```
    fn init(&mut self, ctx: &mut ProcessorContext<'_, KOut, VOut>) -> Result<(), ProcessError> {
        let _ = ctx;
        Ok(())
    }

    /// Handles one record: forwards none, one or many.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::processor::ProcessError;
    /// # use rivulet::testing::TopologyTestDriver;
    /// /// Drops blank lines, trims the others.
    /// struct Trim;
    /// impl Processor<(), String, (), String> for Trim {
    ///     fn process(&mut self, r: Record<(), String>, ctx: &mut ProcessorContext<'_, (), String>) -> Result<(), ProcessError> {
    ///         match r.value.trim() {
    ///             "" => Ok(()),
    ///             line => ctx.forward(Record::new((), line.to_string(), r.timestamp)),
    ///         }
    ///     }
    /// }
    /// # fn main() -> rivulet::Result<()> {
    /// # let mut b = Topology::builder();
    /// # b.stream("in", Serdes::unit(), Serdes::string()).process(&[], || Trim).to("out", Serdes::unit(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::unit(), Serdes::string());
    /// # let output = driver.output_topic("out", Serdes::unit(), Serdes::string());
    /// for line in [" a ", "  ", "b"] {
    ///     driver.pipe(&input, (), line.to_string(), 0)?;
    /// }
    /// assert_eq!(driver.read_key_values(&output)?, [((), "a".to_string()), ((), "b".to_string())]);
    /// # Ok(()) }
    /// ```
    fn process(
        &mut self,
        record: Record<KIn, VIn>,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
    ) -> Result<(), ProcessError>;

    /// A callback scheduled with [`ProcessorContext::schedule`] is due;
    /// `timestamp` is the stream time or wall-clock time (ms) it fired at.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use std::time::Duration;
    /// use rivulet::processor::{ProcessError, TimeKind};
    /// /// Emits a heartbeat every minute of wall-clock time, records or not.
    /// struct Heartbeat;
    /// impl Processor<(), String, (), String> for Heartbeat {
    ///     fn init(&mut self, ctx: &mut ProcessorContext<'_, (), String>) -> Result<(), ProcessError> {
    ///         ctx.schedule(Duration::from_secs(60), TimeKind::WallClock);
    ///         Ok(())
    ///     }
    ///     fn process(&mut self, _: Record<(), String>, _: &mut ProcessorContext<'_, (), String>) -> Result<(), ProcessError> { Ok(()) }
    ///     fn on_timer(&mut self, kind: TimeKind, at: i64, ctx: &mut ProcessorContext<'_, (), String>) -> Result<(), ProcessError> {
    ///         ctx.forward(Record::new((), format!("{kind:?} {at}"), at))
    ///     }
    /// }
    /// # fn main() -> rivulet::Result<()> {
    /// # let mut b = Topology::builder();
    /// # b.stream("in", Serdes::unit(), Serdes::string()).process(&[], || Heartbeat).to("out", Serdes::unit(), Serdes::string());
    /// let mut driver = TopologyTestDriver::new(b.build()?)?.start_wall_clock_at(0)?;
    /// # let output = driver.output_topic("out", Serdes::unit(), Serdes::string());
    /// driver.advance_wall_clock(Duration::from_secs(60))?;
    /// assert_eq!(driver.read_key_values(&output)?, [((), "WallClock 60000".to_string())]);
    /// # Ok(()) }
    /// ```
    fn on_timer(
        &mut self,
        kind: TimeKind,
        timestamp: i64,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
    ) -> Result<(), ProcessError> {
        let _ = (kind, timestamp, ctx);
        Ok(())
    }

    /// The task's watermark advanced to `watermark` (ms): no record older
    /// than it is expected any more. Windows close and event-time timers
    /// fire here.
    /// `i64::MAX` is the end of a bounded run's input
    /// ([`App::run_to_end`](crate::App::run_to_end) with
    /// `bounded.close_windows_at_end`): close everything (do not stamp a
    /// record with it; brokers refuse timestamps that far ahead).
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::processor::ProcessError;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use std::time::Duration;
    /// /// Emits each new watermark.
    /// struct Marks;
    /// impl Processor<(), String, (), i64> for Marks {
    ///     fn process(&mut self, _: Record<(), String>, _: &mut ProcessorContext<'_, (), i64>) -> Result<(), ProcessError> { Ok(()) }
    ///     fn on_watermark(&mut self, watermark: i64, ctx: &mut ProcessorContext<'_, (), i64>) -> Result<(), ProcessError> {
    ///         ctx.forward(Record::new((), watermark, watermark))
    ///     }
    /// }
    /// # fn main() -> rivulet::Result<()> {
    /// let mut b = Topology::builder();
    /// let time = Timestamps::record().out_of_orderness(Duration::from_secs(1));
    /// b.stream_with_time("in", Serdes::unit(), Serdes::string(), time).process(&[], || Marks).to("out", Serdes::unit(), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::unit(), Serdes::string());
    /// # let output = driver.output_topic("out", Serdes::unit(), Serdes::i64());
    /// for t in [3_000, 2_500, 5_000] {
    ///     driver.pipe(&input, (), "x".into(), t)?;
    /// }
    /// // 1 s behind the largest timestamp; the late 2_500 does not move it.
    /// assert_eq!(driver.read_key_values(&output)?, [((), 2_000), ((), 4_000)]);
    /// # Ok(()) }
    /// ```
    fn on_watermark(&mut self, watermark: i64, ctx: &mut ProcessorContext<'_, KOut, VOut>) -> Result<(), ProcessError> {
        let _ = (watermark, ctx);
        Ok(())
    }

    /// Called at the start of every commit, before the task's state is
    /// written: emit what the processor holds back until a commit (at most
    /// one update per key per commit interval).
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::processor::ProcessError;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use std::collections::BTreeMap;
    /// /// Emits only the latest value of each key, once per commit.
    /// struct Latest(BTreeMap<String, i64>);
    /// impl Processor<String, i64, String, i64> for Latest {
    ///     fn process(&mut self, r: Record<String, i64>, _: &mut ProcessorContext<'_, String, i64>) -> Result<(), ProcessError> {
    ///         self.0.insert(r.key, r.value);
    ///         Ok(())
    ///     }
    ///     fn on_commit(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<(), ProcessError> {
    ///         let now = ctx.stream_time();
    ///         std::mem::take(&mut self.0).into_iter().try_for_each(|(k, v)| ctx.forward(Record::new(k, v, now)))
    ///     }
    /// }
    /// # fn main() -> rivulet::Result<()> {
    /// # let mut b = Topology::builder();
    /// # b.stream("in", Serdes::string(), Serdes::i64()).process(&[], || Latest(BTreeMap::new())).to("out", Serdes::string(), Serdes::i64());
    /// let mut driver = TopologyTestDriver::new(b.build()?)?.manual_commits();
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::i64());
    /// # let output = driver.output_topic("out", Serdes::string(), Serdes::i64());
    /// for (k, v) in [("a", 1), ("a", 2), ("b", 1)] {
    ///     driver.pipe(&input, k.to_string(), v, 0)?;
    /// }
    /// assert_eq!(driver.read_key_values(&output)?, []); // nothing before the commit
    /// driver.commit()?;
    /// assert_eq!(driver.read_key_values(&output)?, [("a".to_string(), 2), ("b".to_string(), 1)]);
    /// # Ok(()) }
    /// ```
    fn on_commit(&mut self, ctx: &mut ProcessorContext<'_, KOut, VOut>) -> Result<(), ProcessError> {
        let _ = ctx;
        Ok(())
    }

    /// Called when the task closes (revoked partitions, shutdown): release
    /// what the processor holds outside its stores.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::processor::ProcessError;
    /// # use rivulet::testing::TopologyTestDriver;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// /// Counts its closes in a counter the test holds.
    /// struct Tracked(Arc<AtomicUsize>);
    /// impl Processor<(), String, (), String> for Tracked {
    ///     fn process(&mut self, r: Record<(), String>, ctx: &mut ProcessorContext<'_, (), String>) -> Result<(), ProcessError> { ctx.forward(r) }
    ///     fn close(&mut self) {
    ///         self.0.fetch_add(1, Ordering::Relaxed);
    ///     }
    /// }
    /// # fn main() -> rivulet::Result<()> {
    /// let closed = Arc::new(AtomicUsize::new(0));
    /// let counter = closed.clone();
    /// let mut b = Topology::builder();
    /// b.stream("in", Serdes::unit(), Serdes::string()).process(&[], move || Tracked(counter.clone()));
    /// let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// driver.restart()?; // closes the task, then opens a new one
    /// assert_eq!(closed.load(Ordering::Relaxed), 1);
    /// # Ok(()) }
    /// ```
    fn close(&mut self) {}
}
