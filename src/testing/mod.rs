//! Testing a topology without a broker: [`TopologyTestDriver`], Kafka
//! Streams' name for the same thing.
//!
//! The driver runs the topology's tasks (one per sub-topology, partition
//! 0) with the same task, processor, store and bad-record code as
//! [`App`](crate::App); only the Kafka clients are replaced by in-memory
//! topics. Records piped into an input topic are processed at once, and
//! so are the records the tasks write to repartition topics or to topics
//! that other sub-topologies read. Stores are the kinds the topology
//! declares (RocksDB in a temporary directory, or in memory), their
//! changelogs are in-memory topics, and a [`restart`](TopologyTestDriver::restart)
//! restores them from there.
//!
//! By default the driver commits after every piped record, as Kafka
//! Streams' driver does (so a cache emits at once);
//! [`manual_commits`](TopologyTestDriver::manual_commits) leaves the
//! commits to the test.
//!
//! ```
//! use rivulet::prelude::*;
//! use rivulet::testing::TopologyTestDriver;
//!
//! # fn main() -> rivulet::Result<()> {
//! let mut b = Topology::builder();
//! b.stream("lines", Serdes::unit(), Serdes::string())
//!     .flat_map_values(|line: String| line.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>())
//!     .group_by(|_, word: &String| word.clone(), Serdes::string())
//!     .count("word-counts")
//!     .to_stream()
//!     .to("word-counts", Serdes::string(), Serdes::i64());
//!
//! let mut driver = TopologyTestDriver::new(b.build()?)?;
//! let lines = driver.input_topic("lines", Serdes::unit(), Serdes::string());
//! let counts = driver.output_topic("word-counts", Serdes::string(), Serdes::i64());
//! driver.pipe(&lines, (), "to be or not to be".to_string(), 1_000)?;
//! let last = driver.read_key_values(&counts)?.into_iter().last();
//! assert_eq!(last, Some(("be".to_string(), 2)));
//! assert_eq!(driver.store_get::<String, i64>("word-counts", &"to".to_string())?, Some(2));
//! # Ok(())
//! # }
//! ```

mod engine;
pub(crate) mod log;
mod topics;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub(crate) use log::MemoryCollector;
pub use log::RawRecord;
pub use topics::{TestInputTopic, TestOutputTopic};

use engine::{decode_error, encode};

use crate::config::{Config, ConfigError};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::processor::time::RECORD_MARK_HEADER;
use crate::processor::{wall_clock_ms, Clock, KeyValueView, TaskId, TimeKind};
use crate::record::{Headers, Record};
use crate::runtime::policy::{handle_bad_record, Original};
use crate::runtime::stats::RuntimeStats;
use crate::runtime::task::{Input, RestorePartition, Task};
use crate::runtime::AppContext;
use crate::serde::{Encoded, Serde};
use crate::state::{GlobalStores, StateResources};
use crate::topology::Topology;

/// Runs a topology without a broker; see the [module docs](self). Each
/// piped record is processed, with everything it leads to, before the call
/// returns.
///
/// ```
/// use rivulet::prelude::*;
/// use rivulet::testing::TopologyTestDriver;
/// # fn main() -> rivulet::Result<()> {
/// let mut b = Topology::builder();
/// b.stream("in", Serdes::string(), Serdes::string()).map_values(|v: String| v.to_uppercase()).to("out", Serdes::string(), Serdes::string());
/// let mut driver = TopologyTestDriver::new(b.build()?)?;
/// let input = driver.input_topic("in", Serdes::string(), Serdes::string());
/// let output = driver.output_topic("out", Serdes::string(), Serdes::string());
/// driver.pipe(&input, "k".into(), "hello".into(), 1_000)?;
/// assert_eq!(driver.read_key_values(&output)?, [("k".to_string(), "HELLO".to_string())]);
/// # Ok(()) }
/// ```
pub struct TopologyTestDriver {
    pub(crate) app: Arc<AppContext>,
    /// One task per sub-topology (partition 0), by sub-topology id.
    pub(crate) tasks: Vec<Task>,
    pub(crate) collector: MemoryCollector,
    pub(crate) clock: Arc<AtomicI64>,
    pub(crate) auto_commit: bool,
    /// How far the tasks have read each source topic, and how far as of
    /// the last commit.
    pub(crate) consumed: BTreeMap<String, usize>,
    pub(crate) committed: BTreeMap<String, usize>,
    /// How far the test has read each output topic.
    pub(crate) read: HashMap<String, usize>,
    /// Interned source topic names, as the tasks expect them (in name
    /// order, so the driver feeds topics in the same order every run).
    pub(crate) names: BTreeMap<String, Arc<str>>,
    pub(crate) late: u64,
    pub(crate) state: tempfile::TempDir,
}

impl TopologyTestDriver {
    /// A driver for `topology` with the built-in config defaults and
    /// `application_id = "rivulet-test"`; the wall clock starts at the
    /// system's time.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # fn main() -> rivulet::Result<()> {
    /// let mut b = Topology::builder();
    /// b.stream("in", Serdes::string(), Serdes::string())
    ///     .group_by_key()
    ///     .count("counts")
    ///     .to_stream()
    ///     .to("out", Serdes::string(), Serdes::i64());
    /// let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let output = driver.output_topic("out", Serdes::string(), Serdes::i64());
    /// driver.pipe(&input, "a".into(), "x".into(), 0)?;
    /// // Internal topics are named after application_id "rivulet-test".
    /// assert_eq!(driver.read_raw("rivulet-test-counts-changelog").len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn new(topology: Topology) -> Result<Self> {
        let config = Config::loader()
            .env(std::iter::empty::<(String, String)>())
            .default_value("application_id", "rivulet-test")
            .load()?;
        Self::with_config(topology, config)
    }

    /// A driver with this config (for its `application_id`, `errors.*`
    /// policies and `state.*` sizes); `state_dir` is replaced by a
    /// temporary directory, removed when the driver is dropped.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # fn main() -> rivulet::Result<()> {
    /// let mut b = Topology::builder();
    /// b.stream("in", Serdes::string(), Serdes::string())
    ///     .group_by_key()
    ///     .count("counts")
    ///     .to_stream()
    ///     .to("out", Serdes::string(), Serdes::i64());
    /// let config = Config::loader()
    ///     .env([("RIVULET__APPLICATION_ID", "orders"), ("RIVULET__ERRORS__DESERIALIZATION", "skip")])
    ///     .load()?;
    /// let mut driver = TopologyTestDriver::with_config(b.build()?, config)?;
    /// # use rivulet::testing::RawRecord;
    /// driver.pipe_raw("in", RawRecord::new(Some(b"a"), Some(&[0xff]), 0))?; // skipped: not UTF-8
    /// driver.pipe_raw("in", RawRecord::new(Some(b"a"), Some(b"x"), 0))?;
    /// assert_eq!(driver.read_raw("orders-counts-changelog").len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn with_config(topology: Topology, mut config: Config) -> Result<Self> {
        let state = tempfile::Builder::new()
            .prefix("rivulet-test-")
            .tempdir()
            .map_err(|e| ConfigError::Load(format!("cannot create a temporary state directory: {e}")))?;
        config.state_dir = state.path().to_path_buf();
        let app_id = config.application_id.clone();
        let mut topic_to_subtopology = HashMap::new();
        for sub in &topology.subtopologies {
            for (_, topic) in &sub.sources {
                topic_to_subtopology.insert(topic.resolve(&app_id), sub.id);
            }
        }
        let names = topic_to_subtopology.keys().map(|t| (t.clone(), Arc::from(t.as_str()))).collect();
        let clock = Arc::new(AtomicI64::new(wall_clock_ms()));
        let resources = StateResources::new(config.state.block_cache_bytes, config.state.write_buffer_bytes)
            .with_cache_bytes(config.state.cache_bytes);
        let globals = GlobalStores::in_memory(topology.globals.iter().map(|g| g.name.as_str()));
        let app = Arc::new(AppContext {
            dead_letter_topic: config.dead_letter_topic(),
            partitions: vec![1; topology.subtopologies.len()],
            topology: Arc::new(topology),
            stats: Arc::new(RuntimeStats::new(1)),
            metrics: Arc::new(Metrics::new()?),
            resources,
            topic_to_subtopology,
            purger: None,
            clock: Clock::Manual(clock.clone()),
            config,
            globals,
            queryable: Default::default(),
            bounded: None,
            membership: None,
        });
        let mut driver = TopologyTestDriver {
            app,
            tasks: Vec::new(),
            collector: MemoryCollector::default(),
            clock,
            auto_commit: true,
            consumed: BTreeMap::new(),
            committed: BTreeMap::new(),
            read: HashMap::new(),
            names,
            late: 0,
            state,
        };
        driver.start_tasks()?;
        Ok(driver)
    }

    /// Sets the wall clock to `ms` (since the epoch) before anything is
    /// processed, so wall-clock callbacks and processing-time timers are
    /// scheduled from it.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # fn main() -> rivulet::Result<()> {
    /// # let mut b = Topology::builder();
    /// # b.stream("in", Serdes::string(), Serdes::string()).map_values(|v: String| v.to_uppercase()).to("out", Serdes::string(), Serdes::string());
    /// let driver = TopologyTestDriver::new(b.build()?)?.start_wall_clock_at(1_700_000_000_000)?;
    /// assert_eq!(driver.wall_clock_ms(), 1_700_000_000_000);
    /// # Ok(()) }
    /// ```
    pub fn start_wall_clock_at(mut self, ms: i64) -> Result<Self> {
        self.stop_tasks();
        self.clock.store(ms, Ordering::Relaxed);
        self.start_tasks()?;
        Ok(self)
    }

    /// Commits only when the test calls [`commit`](Self::commit) (or
    /// never), so a [`restart`](Self::restart) shows what a crash between
    /// commits loses and repeats.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # fn main() -> rivulet::Result<()> {
    /// let mut b = Topology::builder();
    /// b.stream("in", Serdes::string(), Serdes::string())
    ///     .group_by_key()
    ///     .count("counts")
    ///     .to_stream()
    ///     .to("out", Serdes::string(), Serdes::i64());
    /// let mut driver = TopologyTestDriver::new(b.build()?)?.manual_commits();
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let output = driver.output_topic("out", Serdes::string(), Serdes::i64());
    /// driver.pipe(&input, "a".into(), "x".into(), 0)?;
    /// driver.commit()?;
    /// driver.pipe(&input, "a".into(), "x".into(), 0)?; // not committed
    /// assert_eq!(driver.read_key_values(&output)?, [("a".to_string(), 1), ("a".to_string(), 2)]);
    /// // A crash: the uncommitted output is taken back, the record read and counted again.
    /// driver.restart()?;
    /// assert_eq!(driver.read_key_values(&output)?, [("a".to_string(), 2)]);
    /// assert_eq!(driver.store_get::<String, i64>("counts", &"a".to_string())?, Some(2));
    /// # Ok(()) }
    /// ```
    pub fn manual_commits(mut self) -> Self {
        self.auto_commit = false;
        self
    }

    /// An input topic: the test pipes typed records into it. The serdes
    /// should be the ones the topology reads the topic with.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # fn main() -> rivulet::Result<()> {
    /// # let mut b = Topology::builder();
    /// # b.stream("in", Serdes::string(), Serdes::string()).map_values(|v: String| v.to_uppercase()).to("out", Serdes::string(), Serdes::string());
    /// let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// driver.pipe(&input, "k".into(), "v".into(), 0)?;
    /// assert_eq!(driver.read_raw("out")[0].value.as_deref(), Some(&b"V"[..]));
    /// # Ok(()) }
    /// ```
    pub fn input_topic<K: 'static, V: 'static>(
        &self,
        name: &str,
        key: impl Serde<K>,
        value: impl Serde<V>,
    ) -> TestInputTopic<K, V> {
        TestInputTopic { name: name.to_string(), key: Arc::new(key), value: Arc::new(value) }
    }

    /// An output topic: the test reads typed records from it (with
    /// [`read`](Self::read) or [`read_key_values`](Self::read_key_values)).
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # fn main() -> rivulet::Result<()> {
    /// # let mut b = Topology::builder();
    /// # b.stream("in", Serdes::string(), Serdes::string()).map_values(|v: String| v.to_uppercase()).to("out", Serdes::string(), Serdes::string());
    /// let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// let output = driver.output_topic("out", Serdes::string(), Serdes::string());
    /// driver.pipe(&input, "k".into(), "v".into(), 0)?;
    /// assert_eq!(driver.read_key_values(&output)?, [("k".to_string(), "V".to_string())]);
    /// assert_eq!(driver.read_key_values(&output)?, []); // each record is read once
    /// # Ok(()) }
    /// ```
    pub fn output_topic<K: 'static, V: 'static>(
        &self,
        name: &str,
        key: impl Serde<K>,
        value: impl Serde<V>,
    ) -> TestOutputTopic<K, V> {
        TestOutputTopic { name: name.to_string(), key: Arc::new(key), value: Arc::new(value) }
    }

    /// The driver's wall clock, ms since the epoch: what
    /// `ProcessorContext::current_system_time_ms` and `Timestamps::wall_clock`
    /// read. It moves only when the test advances it.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # fn main() -> rivulet::Result<()> {
    /// # let mut b = Topology::builder();
    /// # b.stream("in", Serdes::string(), Serdes::string()).map_values(|v: String| v.to_uppercase()).to("out", Serdes::string(), Serdes::string());
    /// use std::time::Duration;
    /// let mut driver = TopologyTestDriver::new(b.build()?)?.start_wall_clock_at(0)?;
    /// driver.advance_wall_clock(Duration::from_millis(1_500))?;
    /// assert_eq!(driver.wall_clock_ms(), 1_500);
    /// # Ok(()) }
    /// ```
    pub fn wall_clock_ms(&self) -> i64 {
        self.clock.load(Ordering::Relaxed)
    }

    /// Moves the wall clock on and fires what is due: wall-clock callbacks,
    /// keyed processing-time timers and TTL, idleness.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// use std::time::Duration;
    /// # use rivulet::processor::{ProcessError, TimeKind};
    /// # struct Ticker;
    /// # impl Processor<(), String, (), String> for Ticker {
    /// #     fn init(&mut self, ctx: &mut ProcessorContext<'_, (), String>) -> Result<(), ProcessError> {
    /// #         ctx.schedule(Duration::from_secs(60), TimeKind::WallClock);
    /// #         Ok(())
    /// #     }
    /// #     fn process(&mut self, _: Record<(), String>, _: &mut ProcessorContext<'_, (), String>) -> Result<(), ProcessError> {
    /// #         Ok(())
    /// #     }
    /// #     fn on_timer(&mut self, _: TimeKind, at: i64, ctx: &mut ProcessorContext<'_, (), String>) -> Result<(), ProcessError> {
    /// #         ctx.forward(Record::new((), "tick".into(), at))
    /// #     }
    /// # }
    /// # fn main() -> rivulet::Result<()> {
    /// let mut b = Topology::builder();
    /// // Ticker schedules a wall-clock callback every minute, which emits "tick".
    /// b.stream("in", Serdes::unit(), Serdes::string()).process(&[], || Ticker).to("ticks", Serdes::unit(), Serdes::string());
    /// let mut driver = TopologyTestDriver::new(b.build()?)?.start_wall_clock_at(0)?;
    /// let ticks = driver.output_topic("ticks", Serdes::unit(), Serdes::string());
    /// driver.advance_wall_clock(Duration::from_secs(30))?;
    /// assert_eq!(driver.read(&ticks)?.len(), 0);
    /// driver.advance_wall_clock(Duration::from_secs(30))?;
    /// assert_eq!(driver.read(&ticks)?[0].timestamp, 60_000);
    /// # Ok(()) }
    /// ```
    pub fn advance_wall_clock(&mut self, by: Duration) -> Result<()> {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        let now = self.clock.load(Ordering::Relaxed).saturating_add(by);
        self.clock.store(now, Ordering::Relaxed);
        for i in 0..self.tasks.len() {
            let result = self.tasks[i].fire_timers(TimeKind::WallClock, now);
            self.handle(i, result, None)?;
        }
        self.settle()
    }

    /// Runs the commit: processors' commit hooks (caches, final results),
    /// changelog writes, then the stores take the committed state. Only
    /// needed after [`manual_commits`](Self::manual_commits).
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # fn main() -> rivulet::Result<()> {
    /// let mut b = Topology::builder();
    /// // A cached table emits at most one update per key per commit.
    /// b.stream("in", Serdes::string(), Serdes::string())
    ///     .group_by_key()
    ///     .count("counts")
    ///     .with_caching()
    ///     .to_stream()
    ///     .to("out", Serdes::string(), Serdes::i64());
    /// let mut driver = TopologyTestDriver::new(b.build()?)?.manual_commits();
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let output = driver.output_topic("out", Serdes::string(), Serdes::i64());
    /// for key in ["a", "a", "b"] {
    ///     driver.pipe(&input, key.to_string(), "x".into(), 0)?;
    /// }
    /// assert_eq!(driver.read_key_values(&output)?, []);
    /// driver.commit()?;
    /// assert_eq!(driver.read_key_values(&output)?, [("a".to_string(), 2), ("b".to_string(), 1)]);
    /// # Ok(()) }
    /// ```
    pub fn commit(&mut self) -> Result<()> {
        loop {
            for task in &mut self.tasks {
                task.prepare_commit().map_err(|e| Error::record(None, e))?;
                task.complete_commit()?;
            }
            self.consumed_to_committed();
            // Commit hooks may have written to topics other tasks read.
            if !self.process_pending()? {
                return Ok(());
            }
        }
    }

    /// The value of `key` in the store `store`, as the processors see it
    /// (uncommitted writes included). `K` and `V` are the store's types.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # fn main() -> rivulet::Result<()> {
    /// let mut b = Topology::builder();
    /// b.stream("in", Serdes::string(), Serdes::string())
    ///     .group_by_key()
    ///     .count("counts")
    ///     .to_stream()
    ///     .to("out", Serdes::string(), Serdes::i64());
    /// let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let output = driver.output_topic("out", Serdes::string(), Serdes::i64());
    /// driver.pipe(&input, "a".into(), "x".into(), 0)?;
    /// driver.pipe(&input, "a".into(), "x".into(), 0)?;
    /// assert_eq!(driver.store_get::<String, i64>("counts", &"a".to_string())?, Some(2));
    /// assert_eq!(driver.store_get::<String, i64>("counts", &"b".to_string())?, None);
    /// assert!(driver.store_get::<String, i64>("no-such-store", &"a".to_string()).is_err());
    /// # Ok(()) }
    /// ```
    pub fn store_get<K: 'static, V: 'static>(&mut self, store: &str, key: &K) -> Result<Option<V>> {
        let task = self.task_with_store(store)?;
        let view = KeyValueView::<K, V>::new(task.context_mut(), store, "the test driver")?;
        Ok(view.get(key)?)
    }

    /// Every entry of the store `store`, in key-byte order.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # fn main() -> rivulet::Result<()> {
    /// let mut b = Topology::builder();
    /// b.stream("in", Serdes::string(), Serdes::string())
    ///     .group_by_key()
    ///     .count("counts")
    ///     .to_stream()
    ///     .to("out", Serdes::string(), Serdes::i64());
    /// let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let output = driver.output_topic("out", Serdes::string(), Serdes::i64());
    /// for key in ["b", "a", "b"] {
    ///     driver.pipe(&input, key.to_string(), "x".into(), 0)?;
    /// }
    /// let entries = driver.store_entries::<String, i64>("counts")?;
    /// assert_eq!(entries, [("a".to_string(), 1), ("b".to_string(), 2)]);
    /// # Ok(()) }
    /// ```
    pub fn store_entries<K: 'static, V: 'static>(&mut self, store: &str) -> Result<Vec<(K, V)>> {
        let task = self.task_with_store(store)?;
        let view = KeyValueView::<K, V>::new(task.context_mut(), store, "the test driver")?;
        Ok(view.range(None, None)?)
    }

    /// A crash and restart: what was not committed is dropped (outputs
    /// too, as an aborted transaction), the stores reopen from their
    /// local files and replay the changelog tail, and the tasks read their
    /// sources again from the last committed position.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # fn main() -> rivulet::Result<()> {
    /// let mut b = Topology::builder();
    /// b.stream("in", Serdes::string(), Serdes::string())
    ///     .group_by_key()
    ///     .count("counts")
    ///     .to_stream()
    ///     .to("out", Serdes::string(), Serdes::i64());
    /// let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let output = driver.output_topic("out", Serdes::string(), Serdes::i64());
    /// driver.pipe(&input, "a".into(), "x".into(), 0)?;
    /// driver.restart()?; // every piped record was committed: nothing is lost or repeated
    /// driver.pipe(&input, "a".into(), "x".into(), 0)?;
    /// assert_eq!(driver.read_key_values(&output)?, [("a".to_string(), 1), ("a".to_string(), 2)]);
    /// # Ok(()) }
    /// ```
    pub fn restart(&mut self) -> Result<()> {
        self.stop_tasks();
        self.start_tasks()?;
        self.settle()
    }

    /// [`restart`](Self::restart) on a new machine: the local state is
    /// gone, and every store is restored from its whole changelog.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// # fn main() -> rivulet::Result<()> {
    /// let mut b = Topology::builder();
    /// b.stream("in", Serdes::string(), Serdes::string())
    ///     .group_by_key()
    ///     .count("counts")
    ///     .to_stream()
    ///     .to("out", Serdes::string(), Serdes::i64());
    /// let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    /// # let output = driver.output_topic("out", Serdes::string(), Serdes::i64());
    /// for key in ["a", "b", "a"] {
    ///     driver.pipe(&input, key.to_string(), "x".into(), 0)?;
    /// }
    /// driver.restart_without_local_state()?;
    /// assert_eq!(driver.store_entries::<String, i64>("counts")?, [("a".to_string(), 2), ("b".to_string(), 1)]);
    /// # Ok(()) }
    /// ```
    pub fn restart_without_local_state(&mut self) -> Result<()> {
        self.stop_tasks();
        let dir = self.state.path().join(&self.app.config.application_id);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| {
                Error::TestDriver(format!("cannot remove the test driver's state directory {}: {e}", dir.display()))
            })?;
        }
        self.start_tasks()?;
        self.settle()
    }

    /// Commits and closes the tasks, as a clean shutdown does (Kafka
    /// Streams' `TopologyTestDriver#close`): each processor's
    /// [`close`](crate::processor::Processor::close) runs once. Dropping the
    /// driver without it closes nothing and commits nothing.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// use rivulet::prelude::*;
    /// use rivulet::testing::TopologyTestDriver;
    /// use rivulet::topology::ProcessError;
    ///
    /// struct Flag(Arc<AtomicBool>);
    /// impl Processor<String, String, String, String> for Flag {
    ///     fn process(&mut self, r: Record<String, String>, ctx: &mut ProcessorContext<'_, String, String>) -> Result<(), ProcessError> {
    ///         ctx.forward(r)
    ///     }
    ///     fn close(&mut self) {
    ///         self.0.store(true, Ordering::SeqCst);
    ///     }
    /// }
    /// let closed = Arc::new(AtomicBool::new(false));
    /// let mut b = Topology::builder();
    /// let flag = closed.clone();
    /// b.stream("in", Serdes::string(), Serdes::string()).process(&[], move || Flag(flag.clone())).to("out", Serdes::string(), Serdes::string());
    /// let driver = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    /// driver.close().unwrap();
    /// assert!(closed.load(Ordering::SeqCst));
    /// ```
    pub fn close(mut self) -> Result<()> {
        self.commit()?;
        for task in self.tasks.drain(..) {
            task.close();
        }
        Ok(())
    }
}
