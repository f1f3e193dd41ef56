//! `ProcessorContext`: what a processor may ask of its task while it
//! handles a record or a callback.

use std::time::Duration;

#[cfg(doc)]
use super::Processor;
use super::{Children, NodeInfo, TimeKind};
use crate::processor::error::ProcessError;
use crate::processor::store::KeyValueView;
use crate::processor::TaskContext;
use crate::record::{Record, SourceOffset};

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
