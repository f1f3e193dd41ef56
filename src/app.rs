//! The application: a config and a topology become running processing
//! threads.
//!
//! ```text
//! App::new(config) --start(topology)--> RunningApp --shutdown()--> stopped
//!                  \--run(topology): start, wait for SIGTERM/SIGINT or a failure, shut down
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::kafka::admin::prepare_topics;
use crate::runtime::stats::{RuntimeStats, StatsSnapshot};
use crate::runtime::task_manager::AppContext;
use crate::runtime::thread;
use crate::state::StateResources;
use crate::topology::Topology;
use crate::Config;

/// A configured rivulet application.
pub struct App {
    config: Config,
}

impl App {
    /// An application with this configuration. Fails when no Kafka cluster
    /// is configured.
    pub fn new(config: Config) -> Result<App> {
        crate::kafka::client_config(&config, crate::kafka::ClientRole::Admin)?;
        Ok(App { config })
    }

    /// Checks topics, creates internal topics and starts `num_threads`
    /// processing threads; returns at once.
    pub fn start(self, topology: Topology) -> Result<RunningApp> {
        let config = self.config;
        let plan = prepare_topics(&config, &topology)?;
        let stats = Arc::new(RuntimeStats::default());
        let resources = StateResources::new(config.state.block_cache_bytes, config.state.write_buffer_bytes);
        let mut source_topics: Vec<String> = plan.topic_to_subtopology.keys().cloned().collect();
        source_topics.sort();
        let app = Arc::new(AppContext {
            dead_letter_topic: config.dead_letter_topic(),
            config,
            topology: Arc::new(topology),
            stats: stats.clone(),
            resources,
            topic_to_subtopology: plan.topic_to_subtopology,
        });
        let shutdown = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for index in 0..app.config.num_threads {
            let (app, topics, shutdown) = (app.clone(), source_topics.clone(), shutdown.clone());
            let handle = std::thread::Builder::new()
                .name(format!("rivulet-{index}"))
                .spawn(move || {
                    let result = thread::run(app, index, topics, shutdown.clone());
                    if let Err(e) = &result {
                        tracing::error!(thread = index, error = %e, "processing thread failed; stopping the application");
                        shutdown.store(true, Ordering::Relaxed);
                    }
                    result
                })
                .map_err(|e| Error::Internal(format!("spawning a processing thread: {e}")))?;
            threads.push(handle);
        }
        Ok(RunningApp { shutdown, threads, stats })
    }

    /// Runs until SIGTERM or SIGINT (then commits and exits cleanly) or
    /// until a processing thread fails (then returns its error).
    pub fn run(self, topology: Topology) -> Result<()> {
        let running = self.start(topology)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("starting the signal runtime: {e}")))?;
        runtime.block_on(async {
            #[cfg(unix)]
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            loop {
                #[cfg(unix)]
                let terminated = async {
                    match term.as_mut() {
                        Some(t) => {
                            t.recv().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                #[cfg(not(unix))]
                let terminated = std::future::pending::<()>();
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => { tracing::info!("SIGINT: shutting down"); break; }
                    _ = terminated => { tracing::info!("SIGTERM: shutting down"); break; }
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {
                        if running.has_stopped() { break; }
                    }
                }
            }
        });
        running.shutdown()
    }
}

/// A started application.
pub struct RunningApp {
    shutdown: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Result<()>>>,
    stats: Arc<RuntimeStats>,
}

impl RunningApp {
    /// What the application has done so far.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// The source partitions (topic, partition) assigned to this instance.
    pub fn assignment(&self) -> std::collections::BTreeSet<(String, i32)> {
        self.stats.assignment()
    }

    /// Whether a thread has stopped (after a failure every thread stops).
    pub fn has_stopped(&self) -> bool {
        self.threads.iter().any(JoinHandle::is_finished)
    }

    /// Stops polling, commits, closes the tasks (keeping their state on
    /// disk) and waits for the threads; returns the first thread's error.
    pub fn shutdown(self) -> Result<()> {
        self.shutdown.store(true, Ordering::Relaxed);
        let mut first = Ok(());
        for t in self.threads {
            let result = t.join().unwrap_or_else(|_| Err(Error::Internal("a processing thread panicked".into())));
            if first.is_ok() {
                first = result;
            }
        }
        first
    }
}
