//! The application: a config and a topology become running processing
//! threads and an HTTP server.
//!
//! ```text
//! App::new(config) --start(topology)--> RunningApp --shutdown()--> stopped
//!                  \--run(topology): start, wait for SIGTERM/SIGINT or a failure, shut down
//! ```
//!
//! # Graceful shutdown
//!
//! [`App::run`] stops on the first SIGTERM or SIGINT: `/health/ready`
//! turns 503, every processing thread stops polling, finishes the record in
//! flight, commits (under exactly-once: commits its transaction), closes
//! its tasks (RocksDB flushes its memtables, so a restart replays nothing)
//! and closes its consumer, which leaves the group unless it is a static
//! member; then the HTTP server stops and `run` returns `Ok`, so `main`
//! exits 0. If that takes longer than `shutdown_timeout_ms`, or a second
//! signal arrives, the process exits at once with a non-zero code (1 after
//! the timeout, 128 + the signal number after a second signal) without
//! committing anything more: what was not committed is processed again
//! after the restart, and under exactly-once the open transaction is
//! aborted by the next instance with the same `instance_id`. A bounded run
//! ([`App::run_to_end`]) stopped so returns [`Error::Interrupted`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod queries;
mod signals;

use signals::Signals;

use crate::config::GroupProtocol;
use crate::error::{Error, Result};
use crate::http::{HttpServer, HttpState};
use crate::kafka::admin::prepare_topics;
use crate::metrics::Metrics;
use crate::processor::Clock;
use crate::query::directory::DirectoryThread;
use crate::query::Queries;
use crate::runtime::purge::RecordPurger;
use crate::runtime::stats::{RuntimeStats, StatsSnapshot, ThreadPhase};
use crate::runtime::task_manager::bounded::BoundedRun;
use crate::runtime::thread;
use crate::runtime::AppContext;
use crate::state::{StateDirLock, StateResources};
use crate::topology::Topology;
use crate::Config;

/// Exit code after the shutdown timeout passed.
const EXIT_SHUTDOWN_TIMEOUT: i32 = 1;

/// A configured rivulet application: [`App::run`] is a service's `main`,
/// [`App::start`] runs it in the background (for tests and embedding).
///
/// ```no_run
/// use rivulet::prelude::*;
///
/// fn main() -> Result<()> {
///     let config = Config::load()?; // RIVULET__KAFKA__BOOTSTRAP_SERVERS, RIVULET__APPLICATION_ID, ...
///     rivulet::init_logging(&config)?;
///     let mut b = Topology::builder();
///     b.stream("orders", Serdes::string(), Serdes::string())
///         .filter(|_, order: &String| !order.is_empty())
///         .to("valid-orders", Serdes::string(), Serdes::string());
///     App::new(config)?.run(b.build()?)
/// }
/// ```
pub struct App {
    config: Config,
}

impl App {
    /// An application with this configuration. Fails when no Kafka cluster
    /// is configured.
    ///
    /// ```
    /// use rivulet::{App, Config};
    /// # fn main() -> rivulet::Result<()> {
    /// let mut config = Config::loader().env([("RIVULET__APPLICATION_ID", "orders")]).load()?;
    /// assert!(App::new(config.clone()).is_err()); // kafka.bootstrap_servers is not set
    /// config.kafka.bootstrap_servers = "kafka-0:9092".into();
    /// let app = App::new(config)?; // nothing connects before start or run
    /// # drop(app);
    /// # Ok(()) }
    /// ```
    pub fn new(config: Config) -> Result<App> {
        crate::kafka::client_config(&config, crate::kafka::ClientRole::Admin)?;
        Ok(App { config })
    }

    /// Starts the HTTP server on `http.listen`, checks topics, creates
    /// internal topics and starts `num_threads` processing threads; returns
    /// at once. With `bounded.enabled` the threads stop by themselves at
    /// the end of their input (see [`run_to_end`](Self::run_to_end)).
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// use rivulet::kafka::embedded::EmbeddedKafka;
    /// # use rivulet::prelude::*;
    /// # fn main() -> rivulet::Result<()> {
    /// let kafka = EmbeddedKafka::start()?;
    /// let mut config = Config::loader().env([("RIVULET__APPLICATION_ID", "doc-start")]).load()?;
    /// config.kafka.bootstrap_servers = kafka.bootstrap_servers();
    /// config.http.listen = ([127, 0, 0, 1], 0).into();
    /// config.state_dir = std::env::temp_dir().join(format!("rivulet-doc-start-{}", std::process::id()));
    /// let mut b = Topology::builder();
    /// b.stream("in", Serdes::string(), Serdes::string()).to("out", Serdes::string(), Serdes::string());
    /// let topology = b.build()?;
    /// kafka.create_topics_for(&topology, &config, 1)?;
    /// let app = App::new(config)?.start(topology)?;
    /// let deadline = Instant::now() + Duration::from_secs(30);
    /// while app.assignment().is_empty() && Instant::now() < deadline {
    ///     std::thread::sleep(Duration::from_millis(50));
    /// }
    /// assert_eq!(app.assignment(), [("in".to_string(), 0)].into());
    /// app.shutdown()?;
    /// # Ok(()) }
    /// ```
    pub fn start(self, topology: Topology) -> Result<RunningApp> {
        let config = self.config;
        let metrics = Arc::new(Metrics::new()?);
        let stats = Arc::new(RuntimeStats::new(config.num_threads));
        let queries_slot = Arc::new(std::sync::OnceLock::new());
        let http = HttpServer::start(
            config.http.listen,
            HttpState {
                metrics: metrics.clone(),
                stats: stats.clone(),
                topology: topology.describe(),
                queries: queries_slot.clone(),
            },
        )?;
        tracing::info!(
            application_id = %config.application_id,
            instance_id = %config.instance_id,
            static_membership = config.group_instance_id(0).is_some() && config.group_protocol != GroupProtocol::Streams,
            processing_guarantee = %config.processing_guarantee,
            threads = config.num_threads,
            "starting"
        );
        let plan = prepare_topics(&config, &topology)?;
        let state_lock = StateDirLock::acquire(&config.instance_state_dir())?;
        let adopted = state_lock.adopt_legacy_stores(&config.instance_state_dir())?;
        if adopted > 0 {
            tracing::info!(
                dir = %config.instance_state_dir().display(), stores = adopted,
                "moved the local state of the layout without instance directories into this instance's directory"
            );
        }
        let resources = StateResources::new(config.state.block_cache_bytes, config.state.write_buffer_bytes)
            .with_cache_bytes(config.state.cache_bytes);
        let mut source_topics: Vec<String> = plan.topic_to_subtopology.keys().cloned().collect();
        source_topics.sort();
        let shutdown_timeout = config.shutdown_timeout;
        let purger = RecordPurger::start(&config, plan.repartition_topics)?;
        let globals = crate::runtime::global::open_stores(&config, &topology)?;
        let at = (plan.partitions.as_slice(), &plan.topic_to_subtopology);
        let (queries, directory) = queries::start(&config, &topology, at, http.addr(), &stats)?;
        let _ = queries_slot.set(queries.clone());
        let shutdown = Arc::new(AtomicBool::new(false));
        let bounded =
            config.bounded.enabled.then(|| BoundedRun::start(&config, &topology, &plan.partitions, shutdown.clone()));
        let bounded = bounded.transpose()?.map(Arc::new);
        let membership = streams_membership(&config, &topology, &plan.partitions)?;
        let app = Arc::new(AppContext {
            dead_letter_topic: config.dead_letter_topic(),
            config,
            topology: Arc::new(topology),
            stats: stats.clone(),
            metrics,
            resources,
            topic_to_subtopology: plan.topic_to_subtopology,
            partitions: plan.partitions,
            purger,
            clock: Clock::System,
            globals,
            queryable: queries.readers.clone(),
            bounded,
            membership: membership.clone(),
        });
        let mut threads = Vec::new();
        if !app.topology.globals.is_empty() {
            stats.globals_loading();
            let (app, stop) = (app.clone(), shutdown.clone());
            let spawned = std::thread::Builder::new().name("rivulet-global".into()).spawn(move || {
                let result = crate::runtime::global::run(app, stop.clone());
                if let Err(e) = &result {
                    tracing::error!(error = %e, "the global thread failed; stopping the application");
                    stop.store(true, Ordering::Relaxed);
                }
                result
            });
            match spawned {
                Ok(handle) => threads.push(handle),
                Err(e) => return Err(Error::Internal(format!("spawning the global thread: {e}"))),
            }
        }
        let mut running = RunningApp {
            shutdown: shutdown.clone(),
            threads,
            stats,
            http: Some(http),
            shutdown_timeout,
            queries,
            directory,
            _state_lock: state_lock,
        };
        if let Some(m) = membership {
            let stop = shutdown.clone();
            let spawned = std::thread::Builder::new().name("rivulet-membership".into()).spawn(move || m.run(stop));
            match spawned {
                Ok(handle) => running.threads.push(handle),
                Err(e) => return Err(Error::Internal(format!("spawning the membership thread: {e}"))),
            }
        }
        for index in 0..app.config.num_threads {
            let (app, topics, stop) = (app.clone(), source_topics.clone(), shutdown.clone());
            let spawned = std::thread::Builder::new().name(format!("rivulet-{index}")).spawn(move || {
                let result = thread::run(app.clone(), index, topics, stop.clone());
                if let Some(m) = &app.membership {
                    m.thread_stopped();
                }
                app.stats.set_phase(index, ThreadPhase::Stopped);
                if let Err(e) = &result {
                    tracing::error!(thread = index, error = %e, "processing thread failed; stopping the application");
                    stop.store(true, Ordering::Relaxed);
                }
                result
            });
            match spawned {
                Ok(handle) => running.threads.push(handle),
                Err(e) => {
                    if let Err(stopping) = running.shutdown() {
                        tracing::warn!(error = %stopping, "stopping the threads already started");
                    }
                    return Err(Error::Internal(format!("spawning a processing thread: {e}")));
                }
            }
        }
        Ok(running)
    }

    /// Reads every input to the end offsets seen at start, processes,
    /// commits and returns `Ok`: the topology as a batch job (a bounded
    /// run; the same as [`run`](Self::run) with `bounded.enabled = true`).
    /// Records the run writes to repartition topics are processed too;
    /// with `bounded.close_windows_at_end` (the default) every window
    /// closes at the end of input. A second run finds nothing new and
    /// returns at once. A signal stops it as [`run`](Self::run) but it then
    /// returns [`Error::Interrupted`]. See README.md, "Bounded runs".
    ///
    /// ```no_run
    /// use rivulet::prelude::*;
    /// # fn topology() -> Result<Topology> { unimplemented!() }
    /// fn main() -> Result<()> {
    ///     // Exits 0 once everything up to the ends is processed and committed.
    ///     App::new(Config::load()?)?.run_to_end(topology()?)
    /// }
    /// ```
    pub fn run_to_end(mut self, topology: Topology) -> Result<()> {
        self.config.bounded.enabled = true;
        self.run(topology)
    }

    /// Runs until SIGTERM or SIGINT, then shuts down gracefully within
    /// `shutdown_timeout_ms` (see the module docs), or until a processing
    /// thread fails (then returns its error). With `bounded.enabled` it
    /// stops by itself at the end of its input, as
    /// [`run_to_end`](Self::run_to_end).
    ///
    /// ```no_run
    /// use rivulet::prelude::*;
    /// # fn topology() -> Result<Topology> { unimplemented!() }
    /// fn main() -> Result<()> {
    ///     // Returns Ok after a SIGTERM once the tasks are committed and
    ///     // closed, so the process exits 0.
    ///     App::new(Config::load()?)?.run(topology()?)
    /// }
    /// ```
    pub fn run(self, topology: Topology) -> Result<()> {
        let bounded = self.config.bounded.enabled;
        let mut signalled = None;
        let running = self.start(topology)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("starting the signal runtime: {e}")))?;
        let waited: Result<()> = runtime.block_on(async {
            let mut signals = Signals::new()?;
            loop {
                tokio::select! {
                    name = signals.next() => {
                        tracing::info!(
                            signal = name,
                            timeout_ms = running.shutdown_timeout.as_millis() as u64,
                            "shutting down: committing and closing the tasks"
                        );
                        signalled = Some(name);
                        break;
                    }
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {
                        if running.has_stopped() {
                            return Ok(());
                        }
                    }
                }
            }
            running.begin_shutdown();
            let deadline = tokio::time::Instant::now() + running.shutdown_timeout;
            loop {
                tokio::select! {
                    name = signals.next() => {
                        tracing::error!(signal = name, "second signal during the shutdown: exiting now, committing nothing more");
                        std::process::exit(128 + signals.number(name));
                    }
                    _ = tokio::time::sleep_until(deadline) => {
                        tracing::error!(
                            timeout_ms = running.shutdown_timeout.as_millis() as u64,
                            "the shutdown took longer than shutdown_timeout_ms: exiting now, committing nothing more"
                        );
                        std::process::exit(EXIT_SHUTDOWN_TIMEOUT);
                    }
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {
                        if running.threads.iter().all(JoinHandle::is_finished) {
                            return Ok(());
                        }
                    }
                }
            }
        });
        if let Err(e) = waited {
            if let Err(stopping) = running.shutdown() {
                tracing::warn!(error = %stopping, "stopping after the signal handlers could not be installed");
            }
            return Err(e);
        }
        let started = Instant::now();
        let result = running.shutdown();
        tracing::info!(ok = result.is_ok(), elapsed_ms = started.elapsed().as_millis() as u64, "stopped");
        match signalled {
            // A batch job stopped half-way must not look finished (a
            // Kubernetes Job would count it as succeeded).
            Some(signal) if bounded && result.is_ok() => Err(Error::Interrupted(format!(
                "the bounded run was stopped by {signal} before the end of its input; what it processed is \
                 committed, and running it again goes on from there"
            ))),
            _ => result,
        }
    }
}

/// A started application, from [`App::start`]: what it has done, and how
/// to stop it.
///
/// ```
/// # use std::time::{Duration, Instant};
/// # use rivulet::kafka::embedded::EmbeddedKafka;
/// # use rivulet::prelude::*;
/// # fn main() -> rivulet::Result<()> {
/// # let kafka = EmbeddedKafka::start()?;
/// # let mut config = Config::loader().env([("RIVULET__APPLICATION_ID", "doc-app")]).load()?;
/// # config.kafka.bootstrap_servers = kafka.bootstrap_servers();
/// # config.http.listen = ([127, 0, 0, 1], 0).into();
/// # config.commit_interval = Duration::from_millis(100);
/// # config.state_dir = std::env::temp_dir().join(format!("rivulet-doc-app-{}", std::process::id()));
/// # let mut b = Topology::builder();
/// # b.stream("in", Serdes::string(), Serdes::string()).to("out", Serdes::string(), Serdes::string());
/// # let topology = b.build()?;
/// # kafka.create_topics_for(&topology, &config, 1)?;
/// // Set up as in App::start: `kafka` (embedded), `config` for it, `topology` reading "in".
/// let app = App::new(config)?.start(topology)?;
/// let deadline = Instant::now() + Duration::from_secs(30);
/// while app.stats().commits == 0 {
///     assert!(!app.has_stopped() && Instant::now() < deadline, "no commit within 30 s");
///     std::thread::sleep(Duration::from_millis(50));
/// }
/// app.shutdown()?;
/// # Ok(()) }
/// ```
pub struct RunningApp {
    shutdown: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Result<()>>>,
    stats: Arc<RuntimeStats>,
    http: Option<HttpServer>,
    shutdown_timeout: Duration,
    /// The store queries (`store`) and the instances directory.
    queries: Arc<Queries>,
    directory: Option<DirectoryThread>,
    /// Held until the application is dropped: no other process opens these stores.
    _state_lock: StateDirLock,
}

impl RunningApp {
    /// What the application has done so far.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use rivulet::kafka::embedded::EmbeddedKafka;
    /// # use rivulet::prelude::*;
    /// # fn main() -> rivulet::Result<()> {
    /// # let kafka = EmbeddedKafka::start()?;
    /// # let mut config = Config::loader().env([("RIVULET__APPLICATION_ID", "doc-app")]).load()?;
    /// # config.kafka.bootstrap_servers = kafka.bootstrap_servers();
    /// # config.http.listen = ([127, 0, 0, 1], 0).into();
    /// # config.commit_interval = Duration::from_millis(100);
    /// # config.state_dir = std::env::temp_dir().join(format!("rivulet-doc-app-{}", std::process::id()));
    /// # let mut b = Topology::builder();
    /// # b.stream("in", Serdes::string(), Serdes::string()).to("out", Serdes::string(), Serdes::string());
    /// # let topology = b.build()?;
    /// # kafka.create_topics_for(&topology, &config, 1)?;
    /// // Set up as in App::start: `kafka` (embedded), `config` for it, `topology` reading "in".
    /// use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    /// let producer: BaseProducer = rdkafka::ClientConfig::new().set("bootstrap.servers", kafka.bootstrap_servers()).create().unwrap();
    /// for line in ["a", "b", "c"] {
    ///     producer.send(BaseRecord::<str, str>::to("in").key("k").payload(line)).map_err(|(e, _)| e).unwrap();
    /// }
    /// producer.flush(Duration::from_secs(10)).unwrap();
    /// let app = App::new(config)?.start(topology)?;
    /// let deadline = Instant::now() + Duration::from_secs(30);
    /// while app.stats().records_processed < 3 && Instant::now() < deadline {
    ///     std::thread::sleep(Duration::from_millis(50));
    /// }
    /// assert_eq!(app.stats().records_processed, 3);
    /// # app.shutdown()?;
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// The source partitions (topic, partition) assigned to this instance;
    /// empty until its consumers have joined the group.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use rivulet::kafka::embedded::EmbeddedKafka;
    /// # use rivulet::prelude::*;
    /// # fn main() -> rivulet::Result<()> {
    /// # let kafka = EmbeddedKafka::start()?;
    /// # let mut config = Config::loader().env([("RIVULET__APPLICATION_ID", "doc-app")]).load()?;
    /// # config.kafka.bootstrap_servers = kafka.bootstrap_servers();
    /// # config.http.listen = ([127, 0, 0, 1], 0).into();
    /// # config.commit_interval = Duration::from_millis(100);
    /// # config.state_dir = std::env::temp_dir().join(format!("rivulet-doc-app-{}", std::process::id()));
    /// # let mut b = Topology::builder();
    /// # b.stream("in", Serdes::string(), Serdes::string()).to("out", Serdes::string(), Serdes::string());
    /// # let topology = b.build()?;
    /// # kafka.create_topics_for(&topology, &config, 1)?;
    /// // Set up as in App::start: `kafka` (embedded), `config` for it, `topology` reading "in".
    /// let app = App::new(config)?.start(topology)?;
    /// let deadline = Instant::now() + Duration::from_secs(30);
    /// while app.assignment().is_empty() && Instant::now() < deadline {
    ///     std::thread::sleep(Duration::from_millis(50));
    /// }
    /// assert_eq!(app.assignment(), [("in".to_string(), 0)].into());
    /// # app.shutdown()?;
    /// # Ok(()) }
    /// ```
    pub fn assignment(&self) -> std::collections::BTreeSet<(String, i32)> {
        self.stats.assignment()
    }

    /// The address the HTTP server listens on (`http.listen`, with the
    /// port it got when `http.listen` asked for port 0).
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use rivulet::kafka::embedded::EmbeddedKafka;
    /// # use rivulet::prelude::*;
    /// # fn main() -> rivulet::Result<()> {
    /// # let kafka = EmbeddedKafka::start()?;
    /// # let mut config = Config::loader().env([("RIVULET__APPLICATION_ID", "doc-app")]).load()?;
    /// # config.kafka.bootstrap_servers = kafka.bootstrap_servers();
    /// # config.http.listen = ([127, 0, 0, 1], 0).into();
    /// # config.commit_interval = Duration::from_millis(100);
    /// # config.state_dir = std::env::temp_dir().join(format!("rivulet-doc-app-{}", std::process::id()));
    /// # let mut b = Topology::builder();
    /// # b.stream("in", Serdes::string(), Serdes::string()).to("out", Serdes::string(), Serdes::string());
    /// # let topology = b.build()?;
    /// # kafka.create_topics_for(&topology, &config, 1)?;
    /// // Set up as in App::start: `kafka` (embedded), `config` for it, `topology` reading "in".
    /// use std::io::{Read, Write};
    /// // config.http.listen is 127.0.0.1:0: any free port.
    /// let app = App::new(config)?.start(topology)?;
    /// let addr = app.http_addr().expect("the server runs until shutdown");
    /// let mut http = std::net::TcpStream::connect(addr).unwrap();
    /// http.write_all(b"GET /health/live HTTP/1.0\r\n\r\n").unwrap();
    /// let mut answer = String::new();
    /// http.read_to_string(&mut answer).unwrap();
    /// assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    /// # app.shutdown()?;
    /// # Ok(()) }
    /// ```
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(HttpServer::addr)
    }

    /// Whether a thread has stopped (after a failure every thread stops):
    /// then [`shutdown`](Self::shutdown) returns the failure.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use rivulet::kafka::embedded::EmbeddedKafka;
    /// # use rivulet::prelude::*;
    /// # fn main() -> rivulet::Result<()> {
    /// # let kafka = EmbeddedKafka::start()?;
    /// # let mut config = Config::loader().env([("RIVULET__APPLICATION_ID", "doc-app")]).load()?;
    /// # config.kafka.bootstrap_servers = kafka.bootstrap_servers();
    /// # config.http.listen = ([127, 0, 0, 1], 0).into();
    /// # config.commit_interval = Duration::from_millis(100);
    /// # config.state_dir = std::env::temp_dir().join(format!("rivulet-doc-app-{}", std::process::id()));
    /// # let mut b = Topology::builder();
    /// # b.stream("in", Serdes::string(), Serdes::string()).to("out", Serdes::string(), Serdes::string());
    /// # let topology = b.build()?;
    /// # kafka.create_topics_for(&topology, &config, 1)?;
    /// // Set up as in App::start: `kafka` (embedded), `config` for it, `topology` reading "in".
    /// use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    /// // A value that is not UTF-8, under errors.deserialization = "fail" (the default).
    /// let producer: BaseProducer = rdkafka::ClientConfig::new().set("bootstrap.servers", kafka.bootstrap_servers()).create().unwrap();
    /// producer.send(BaseRecord::<str, [u8]>::to("in").key("k").payload(&[0xff][..])).map_err(|(e, _)| e).unwrap();
    /// producer.flush(Duration::from_secs(10)).unwrap();
    /// let app = App::new(config)?.start(topology)?;
    /// let deadline = Instant::now() + Duration::from_secs(30);
    /// while !app.has_stopped() && Instant::now() < deadline {
    ///     std::thread::sleep(Duration::from_millis(50));
    /// }
    /// let err = app.shutdown().unwrap_err();
    /// assert!(err.to_string().contains("not valid UTF-8"), "{err}");
    /// # Ok(()) }
    /// ```
    pub fn has_stopped(&self) -> bool {
        self.threads.iter().any(JoinHandle::is_finished)
    }

    /// Tells the threads to stop, without waiting: `/health/ready` turns 503.
    fn begin_shutdown(&self) {
        self.stats.begin_shutdown();
        self.shutdown.store(true, Ordering::Relaxed);
    }

    /// Stops polling, commits, closes the tasks (keeping their state on
    /// disk) and waits for the threads, then stops the HTTP server; returns
    /// the first thread's error.
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use rivulet::kafka::embedded::EmbeddedKafka;
    /// # use rivulet::prelude::*;
    /// # fn main() -> rivulet::Result<()> {
    /// # let kafka = EmbeddedKafka::start()?;
    /// # let mut config = Config::loader().env([("RIVULET__APPLICATION_ID", "doc-app")]).load()?;
    /// # config.kafka.bootstrap_servers = kafka.bootstrap_servers();
    /// # config.http.listen = ([127, 0, 0, 1], 0).into();
    /// # config.commit_interval = Duration::from_millis(100);
    /// # config.state_dir = std::env::temp_dir().join(format!("rivulet-doc-app-{}", std::process::id()));
    /// # let mut b = Topology::builder();
    /// # b.stream("in", Serdes::string(), Serdes::string()).to("out", Serdes::string(), Serdes::string());
    /// # let topology = b.build()?;
    /// # kafka.create_topics_for(&topology, &config, 1)?;
    /// // Set up as in App::start: `kafka` (embedded), `config` for it, `topology` reading "in".
    /// let app = App::new(config)?.start(topology)?;
    /// app.shutdown()?; // Ok: every thread committed and closed its tasks
    /// # Ok(()) }
    /// ```
    pub fn shutdown(mut self) -> Result<()> {
        self.begin_shutdown();
        let mut first = Ok(());
        for t in std::mem::take(&mut self.threads) {
            let result = t.join().unwrap_or_else(|_| Err(Error::Internal("a processing thread panicked".into())));
            if first.is_ok() {
                first = result;
            }
        }
        // The instance owns nothing any more: tell the others.
        if let Some(directory) = self.directory.take() {
            directory.stop();
        }
        if let Some(http) = self.http.take() {
            let stopped = http.stop();
            if first.is_ok() {
                first = stopped;
            }
        }
        first
    }
}

/// Under `group_protocol = "streams"`: sets the group's standby replicas
/// and makes the instance's member (`runtime::membership`).
fn streams_membership(
    config: &Config,
    topology: &Topology,
    partitions: &[i32],
) -> Result<Option<Arc<crate::runtime::membership::Membership>>> {
    if config.group_protocol != GroupProtocol::Streams {
        return Ok(None);
    }
    let replicas = config.num_standby_replicas.to_string();
    let client_id = format!("{}-{}-admin", config.application_id, config.instance_id);
    let timeout = std::time::Duration::from_secs(30);
    let bootstrap = &config.kafka.bootstrap_servers;
    let security = crate::kafka::streams_group::SecurityConfig::from_config(config)?;
    crate::kafka::streams_group::StreamsGroupClient::connect(
        &security,
        bootstrap,
        &config.application_id,
        &client_id,
        timeout,
    )
    .and_then(|mut c| c.set_group_config("streams.num.standby.replicas", &replicas))?;
    Ok(Some(crate::runtime::membership::Membership::new(config, security, topology, partitions)))
}
