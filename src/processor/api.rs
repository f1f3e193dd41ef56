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

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use crate::processor::error::ProcessError;
use crate::processor::store::KeyValueView;
use crate::processor::TaskContext;
use crate::record::{Record, SourceOffset};

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

/// A node's view of its task while it handles a record or a callback:
/// where its output goes ([`forward`](Self::forward)), its stores, its
/// callbacks, and the time and place of the record at hand. `K` and `V`
/// are the types the node emits.
///
/// ```
/// # use rivulet::prelude::*;
/// # use rivulet::processor::ProcessError;
/// # use rivulet::testing::TopologyTestDriver;
/// /// Tags each value with where it came from.
/// struct Provenance;
/// impl Processor<(), String, (), String> for Provenance {
///     fn process(&mut self, r: Record<(), String>, ctx: &mut ProcessorContext<'_, (), String>) -> Result<(), ProcessError> {
///         let tag = format!("{} (task {}, {:?})", r.value, ctx.task_id(), ctx.source().map(|s| s.offset));
///         ctx.forward(r.with_value(tag))
///     }
/// }
/// # fn main() -> rivulet::Result<()> {
/// # let mut b = Topology::builder();
/// # b.stream("in", Serdes::unit(), Serdes::string()).process(&[], || Provenance).to("out", Serdes::unit(), Serdes::string());
/// # let mut driver = TopologyTestDriver::new(b.build()?)?;
/// # let input = driver.input_topic("in", Serdes::unit(), Serdes::string());
/// # let output = driver.output_topic("out", Serdes::unit(), Serdes::string());
/// driver.pipe(&input, (), "hello".into(), 0)?;
/// assert_eq!(driver.read_key_values(&output)?, [((), "hello (task 0_0, Some(0))".to_string())]);
/// # Ok(()) }
/// ```
pub struct ProcessorContext<'a, K, V> {
    pub(crate) task: &'a mut TaskContext,
    pub(crate) children: &'a Children<K, V>,
    pub(crate) node: &'a NodeInfo,
}

impl<K: Clone + 'static, V: Clone + 'static> ProcessorContext<'_, K, V> {
    /// Sends a record to every child of this node, which handle it before
    /// `forward` returns. Call it as often as the node has records to emit.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::processor::ProcessError;
    /// # use rivulet::testing::TopologyTestDriver;
    /// /// One record per word.
    /// struct Words;
    /// impl Processor<(), String, (), String> for Words {
    ///     fn process(&mut self, r: Record<(), String>, ctx: &mut ProcessorContext<'_, (), String>) -> Result<(), ProcessError> {
    ///         for word in r.value.split_whitespace() {
    ///             ctx.forward(Record::new((), word.to_string(), r.timestamp))?;
    ///         }
    ///         Ok(())
    ///     }
    /// }
    /// # fn main() -> rivulet::Result<()> {
    /// # let mut b = Topology::builder();
    /// # b.stream("in", Serdes::unit(), Serdes::string()).process(&[], || Words).to("out", Serdes::unit(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::unit(), Serdes::string());
    /// # let output = driver.output_topic("out", Serdes::unit(), Serdes::string());
    /// driver.pipe(&input, (), "to be".into(), 0)?;
    /// assert_eq!(driver.read_key_values(&output)?, [((), "to".to_string()), ((), "be".to_string())]);
    /// # Ok(()) }
    /// ```
    pub fn forward(&mut self, record: Record<K, V>) -> Result<(), ProcessError> {
        self.children.forward(record, self.task)
    }

    /// A typed view of a key-value store this processor declared (listed in
    /// [`KStream::process`](crate::topology::KStream::process)'s stores, and
    /// added with [`TopologyBuilder::add_store`](crate::topology::TopologyBuilder::add_store)).
    /// `SK` and `SV` must be the store's types; an undeclared store or other
    /// types are a [`ProcessError::Topology`].
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::processor::ProcessError;
    /// # use rivulet::testing::TopologyTestDriver;
    /// /// Counts records per key in the store `counts`.
    /// struct Count;
    /// impl Processor<String, String, String, i64> for Count {
    ///     fn process(&mut self, r: Record<String, String>, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<(), ProcessError> {
    ///         let mut counts = ctx.store::<String, i64>("counts")?;
    ///         let n = counts.get(&r.key)?.unwrap_or(0) + 1;
    ///         counts.put(&r.key, &n)?;
    ///         ctx.forward(r.with_value(n))
    ///     }
    /// }
    /// # fn main() -> rivulet::Result<()> {
    /// let mut b = Topology::builder();
    /// b.add_store(StoreSpec::key_value("counts", Serdes::string(), Serdes::i64()));
    /// b.stream("in", Serdes::string(), Serdes::string()).process(&["counts"], || Count);
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// for key in ["a", "b", "a"] {
    ///     driver.pipe(&input, key.to_string(), "x".into(), 0)?;
    /// }
    /// assert_eq!(driver.store_get::<String, i64>("counts", &"a".to_string())?, Some(2));
    /// # Ok(()) }
    /// ```
    pub fn store<SK: 'static, SV: 'static>(&mut self, name: &str) -> Result<KeyValueView<'_, SK, SV>, ProcessError> {
        if !self.node.stores.iter().any(|s| s == name) {
            return Err(ProcessError::Topology {
                node: self.node.name.clone(),
                reason: format!(
                    "it uses store `{name}` but did not declare it; list it in the stores of KStream::process"
                ),
            });
        }
        KeyValueView::new(self.task, name, &self.node.name)
    }

    /// Calls [`Processor::on_timer`] every `interval` of `kind` time, from
    /// now on; usually called in [`Processor::init`]. Wall-clock callbacks
    /// fire while the task is idle too; stream-time ones only as records
    /// move stream time on (see [`TimeKind`]).
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::processor::ProcessError;
    /// # use rivulet::testing::TopologyTestDriver;
    /// use std::time::Duration;
    /// use rivulet::processor::TimeKind;
    /// /// Every 10 s of wall-clock time, emits how many records arrived.
    /// struct PerTenSeconds(i64);
    /// impl Processor<(), String, (), i64> for PerTenSeconds {
    ///     fn init(&mut self, ctx: &mut ProcessorContext<'_, (), i64>) -> Result<(), ProcessError> {
    ///         ctx.schedule(Duration::from_secs(10), TimeKind::WallClock);
    ///         Ok(())
    ///     }
    ///     fn process(&mut self, _: Record<(), String>, _: &mut ProcessorContext<'_, (), i64>) -> Result<(), ProcessError> { self.0 += 1; Ok(()) }
    ///     fn on_timer(&mut self, _: TimeKind, at: i64, ctx: &mut ProcessorContext<'_, (), i64>) -> Result<(), ProcessError> {
    ///         ctx.forward(Record::new((), std::mem::take(&mut self.0), at))
    ///     }
    /// }
    /// # fn main() -> rivulet::Result<()> {
    /// # let mut b = Topology::builder();
    /// # b.stream("in", Serdes::unit(), Serdes::string()).process(&[], || PerTenSeconds(0)).to("out", Serdes::unit(), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::unit(), Serdes::string());
    /// # let output = driver.output_topic("out", Serdes::unit(), Serdes::i64());
    /// driver.pipe(&input, (), "a".into(), 0)?;
    /// driver.pipe(&input, (), "b".into(), 0)?;
    /// driver.advance_wall_clock(Duration::from_secs(10))?;
    /// driver.advance_wall_clock(Duration::from_secs(10))?;
    /// let counts: Vec<i64> = driver.read(&output)?.into_iter().map(|r| r.value).collect();
    /// assert_eq!(counts, [2, 0]);
    /// # Ok(()) }
    /// ```
    pub fn schedule(&mut self, interval: Duration, kind: TimeKind) {
        self.task.schedule(self.node.id, interval, kind);
    }

    /// The Kafka coordinates of the record being processed (none inside a
    /// wall-clock callback).
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::processor::ProcessError;
    /// # use rivulet::testing::TopologyTestDriver;
    /// /// Emits each record's source offset.
    /// struct Offsets;
    /// impl Processor<(), String, (), String> for Offsets {
    ///     fn process(&mut self, r: Record<(), String>, ctx: &mut ProcessorContext<'_, (), String>) -> Result<(), ProcessError> {
    ///         let at = ctx.source().map(|s| format!("{}@{}", s.topic, s.offset)).unwrap_or_default();
    ///         ctx.forward(r.with_value(at))
    ///     }
    /// }
    /// # fn main() -> rivulet::Result<()> {
    /// # let mut b = Topology::builder();
    /// # b.stream("in", Serdes::unit(), Serdes::string()).process(&[], || Offsets).to("out", Serdes::unit(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::unit(), Serdes::string());
    /// # let output = driver.output_topic("out", Serdes::unit(), Serdes::string());
    /// driver.pipe(&input, (), "a".into(), 0)?;
    /// driver.pipe(&input, (), "b".into(), 0)?;
    /// assert_eq!(driver.read_key_values(&output)?, [((), "in@0".to_string()), ((), "in@1".to_string())]);
    /// # Ok(()) }
    /// ```
    pub fn source(&self) -> Option<&SourceOffset> {
        self.task.source.as_ref()
    }

    /// The task's stream time: the largest timestamp seen, ms.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::processor::ProcessError;
    /// # use rivulet::testing::TopologyTestDriver;
    /// struct StreamTime;
    /// impl Processor<(), String, (), i64> for StreamTime {
    ///     fn process(&mut self, r: Record<(), String>, ctx: &mut ProcessorContext<'_, (), i64>) -> Result<(), ProcessError> {
    ///         let now = ctx.stream_time();
    ///         ctx.forward(r.with_value(now))
    ///     }
    /// }
    /// # fn main() -> rivulet::Result<()> {
    /// # let mut b = Topology::builder();
    /// # b.stream("in", Serdes::unit(), Serdes::string()).process(&[], || StreamTime).to("out", Serdes::unit(), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::unit(), Serdes::string());
    /// # let output = driver.output_topic("out", Serdes::unit(), Serdes::i64());
    /// driver.pipe(&input, (), "a".into(), 500)?;
    /// driver.pipe(&input, (), "b".into(), 200)?; // out of order: stream time stays
    /// assert_eq!(driver.read_key_values(&output)?, [((), 500), ((), 500)]);
    /// # Ok(()) }
    /// ```
    pub fn stream_time(&self) -> i64 {
        self.task.stream_time
    }

    /// The task's watermark (ms; `i64::MIN` before the first record): the
    /// partition times minus the source's out-of-orderness, minimum over
    /// the task's partitions, never decreasing.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::processor::ProcessError;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # use std::time::Duration;
    /// /// Drops records the watermark has passed.
    /// struct DropLate;
    /// impl Processor<(), String, (), String> for DropLate {
    ///     fn process(&mut self, r: Record<(), String>, ctx: &mut ProcessorContext<'_, (), String>) -> Result<(), ProcessError> {
    ///         if r.timestamp < ctx.watermark() { Ok(()) } else { ctx.forward(r) }
    ///     }
    /// }
    /// # fn main() -> rivulet::Result<()> {
    /// let mut b = Topology::builder();
    /// let time = Timestamps::record().out_of_orderness(Duration::from_secs(1));
    /// b.stream_with_time("in", Serdes::unit(), Serdes::string(), time).process(&[], || DropLate).to("out", Serdes::unit(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::unit(), Serdes::string());
    /// # let output = driver.output_topic("out", Serdes::unit(), Serdes::string());
    /// for (value, t) in [("a", 5_000), ("b", 4_500), ("c", 3_000)] {
    ///     driver.pipe(&input, (), value.to_string(), t)?;
    /// }
    /// // The watermark is 4_000 after "a": "b" is on time, "c" late.
    /// assert_eq!(driver.read_key_values(&output)?, [((), "a".to_string()), ((), "b".to_string())]);
    /// # Ok(()) }
    /// ```
    pub fn watermark(&self) -> i64 {
        self.task.time.watermark()
    }

    /// The wall clock, in ms since the epoch: processing time (Kafka
    /// Streams' `currentSystemTimeMs`). Under the
    /// [`TopologyTestDriver`](crate::testing::TopologyTestDriver) it is the
    /// driver's clock, which the test advances.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::processor::ProcessError;
    /// # use rivulet::testing::TopologyTestDriver;
    /// use std::time::Duration;
    /// /// Stamps each value with the time it was processed.
    /// struct ProcessedAt;
    /// impl Processor<(), String, (), i64> for ProcessedAt {
    ///     fn process(&mut self, r: Record<(), String>, ctx: &mut ProcessorContext<'_, (), i64>) -> Result<(), ProcessError> {
    ///         let now = ctx.current_system_time_ms();
    ///         ctx.forward(r.with_value(now))
    ///     }
    /// }
    /// # fn main() -> rivulet::Result<()> {
    /// # let mut b = Topology::builder();
    /// # b.stream("in", Serdes::unit(), Serdes::string()).process(&[], || ProcessedAt).to("out", Serdes::unit(), Serdes::i64());
    /// let mut driver = TopologyTestDriver::new(b.build()?)?.start_wall_clock_at(1_000_000)?;
    /// # let input = driver.input_topic("in", Serdes::unit(), Serdes::string());
    /// # let output = driver.output_topic("out", Serdes::unit(), Serdes::i64());
    /// driver.pipe(&input, (), "a".into(), 0)?;
    /// driver.advance_wall_clock(Duration::from_secs(5))?;
    /// driver.pipe(&input, (), "b".into(), 0)?;
    /// assert_eq!(driver.read_key_values(&output)?, [((), 1_000_000), ((), 1_005_000)]);
    /// # Ok(()) }
    /// ```
    pub fn current_system_time_ms(&self) -> i64 {
        self.task.clock.now_ms()
    }

    /// The task this node runs in, as `<sub-topology>_<partition>`: for
    /// logs, or to name per-task resources.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::processor::ProcessError;
    /// # use rivulet::testing::TopologyTestDriver;
    /// struct TaskIds;
    /// impl Processor<(), String, (), String> for TaskIds {
    ///     fn process(&mut self, r: Record<(), String>, ctx: &mut ProcessorContext<'_, (), String>) -> Result<(), ProcessError> {
    ///         let task = ctx.task_id();
    ///         ctx.forward(r.with_value(task))
    ///     }
    /// }
    /// # fn main() -> rivulet::Result<()> {
    /// # let mut b = Topology::builder();
    /// # b.stream("in", Serdes::unit(), Serdes::string()).process(&[], || TaskIds).to("out", Serdes::unit(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::unit(), Serdes::string());
    /// # let output = driver.output_topic("out", Serdes::unit(), Serdes::string());
    /// driver.pipe(&input, (), "a".into(), 0)?;
    /// // The test driver runs partition 0 of sub-topology 0.
    /// assert_eq!(driver.read_key_values(&output)?, [((), "0_0".to_string())]);
    /// # Ok(()) }
    /// ```
    pub fn task_id(&self) -> String {
        self.task.task_id.to_string()
    }
}

/// A node's name, id and declared stores.
#[derive(Debug, Clone)]
pub(crate) struct NodeInfo {
    pub(crate) id: usize,
    pub(crate) name: String,
    pub(crate) stores: Vec<String>,
}

/// A node as its parents see it.
pub(crate) trait Node<K, V> {
    fn process(&mut self, record: Record<K, V>, task: &mut TaskContext) -> Result<(), ProcessError>;
}

/// A node as the task sees it, for its lifecycle.
pub(crate) trait Lifecycle {
    fn init(&mut self, task: &mut TaskContext) -> Result<(), ProcessError>;
    fn on_timer(&mut self, kind: TimeKind, timestamp: i64, task: &mut TaskContext) -> Result<(), ProcessError>;
    fn on_watermark(&mut self, watermark: i64, task: &mut TaskContext) -> Result<(), ProcessError>;
    fn on_commit(&mut self, task: &mut TaskContext) -> Result<(), ProcessError>;
    fn close(&mut self);
}

pub(crate) type Entry<K, V> = Rc<RefCell<dyn Node<K, V>>>;

/// The children of a node, all taking the node's output type.
pub(crate) struct Children<K, V> {
    pub(crate) entries: Vec<Entry<K, V>>,
}

impl<K: Clone, V: Clone> Children<K, V> {
    pub(crate) fn forward(&self, record: Record<K, V>, task: &mut TaskContext) -> Result<(), ProcessError> {
        let Some((last, rest)) = self.entries.split_last() else {
            return Ok(());
        };
        for child in rest {
            child.borrow_mut().process(record.clone(), task)?;
        }
        last.borrow_mut().process(record, task)
    }
}

/// A user processor wired to its children.
pub(crate) struct ProcessorNode<P, KOut, VOut> {
    pub(crate) processor: P,
    pub(crate) children: Children<KOut, VOut>,
    pub(crate) info: NodeInfo,
}

impl<P, KIn, VIn, KOut, VOut> Node<KIn, VIn> for ProcessorNode<P, KOut, VOut>
where
    P: Processor<KIn, VIn, KOut, VOut>,
    KOut: Clone + 'static,
    VOut: Clone + 'static,
{
    fn process(&mut self, record: Record<KIn, VIn>, task: &mut TaskContext) -> Result<(), ProcessError> {
        let mut ctx = ProcessorContext { task, children: &self.children, node: &self.info };
        self.processor.process(record, &mut ctx)
    }
}

/// `Lifecycle` needs the processor's input types to call it, which the
/// node alone does not name; this wrapper carries them.
pub(crate) struct Typed<P, KIn, VIn, KOut, VOut> {
    pub(crate) node: Rc<RefCell<ProcessorNode<P, KOut, VOut>>>,
    pub(crate) _types: std::marker::PhantomData<fn(KIn, VIn)>,
}

impl<P, KIn, VIn, KOut, VOut> Lifecycle for Typed<P, KIn, VIn, KOut, VOut>
where
    P: Processor<KIn, VIn, KOut, VOut>,
    KOut: Clone + 'static,
    VOut: Clone + 'static,
{
    fn init(&mut self, task: &mut TaskContext) -> Result<(), ProcessError> {
        let mut node = self.node.borrow_mut();
        let node = &mut *node;
        let mut ctx = ProcessorContext { task, children: &node.children, node: &node.info };
        node.processor.init(&mut ctx)
    }

    fn on_timer(&mut self, kind: TimeKind, timestamp: i64, task: &mut TaskContext) -> Result<(), ProcessError> {
        let mut node = self.node.borrow_mut();
        let node = &mut *node;
        let mut ctx = ProcessorContext { task, children: &node.children, node: &node.info };
        node.processor.on_timer(kind, timestamp, &mut ctx)
    }

    fn on_watermark(&mut self, watermark: i64, task: &mut TaskContext) -> Result<(), ProcessError> {
        let mut node = self.node.borrow_mut();
        let node = &mut *node;
        let mut ctx = ProcessorContext { task, children: &node.children, node: &node.info };
        node.processor.on_watermark(watermark, &mut ctx)
    }

    fn on_commit(&mut self, task: &mut TaskContext) -> Result<(), ProcessError> {
        let mut node = self.node.borrow_mut();
        let node = &mut *node;
        let mut ctx = ProcessorContext { task, children: &node.children, node: &node.info };
        node.processor.on_commit(&mut ctx)
    }

    fn close(&mut self) {
        self.node.borrow_mut().processor.close();
    }
}
