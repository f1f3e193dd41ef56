//! The runtime: processing threads, tasks, and the commit cycle.
//!
//! The chain of types mirrors Kafka Streams': a [`thread`] (one OS thread
//! per `num_threads`) owns a consumer and a [`TaskManager`](task_manager),
//! which owns the [`Task`](task)s assigned to the thread; a task pushes
//! records through its instance of the sub-topology into the
//! [`RecordCollector`](collector), which alone talks to the producer.
//!
//! Each processing thread is a plain loop: poll a record, route it to the
//! task of its (sub-topology, partition), run it through the task's nodes,
//! and every `commit_interval_ms` run the commit cycle
//! ([`task_manager::TaskManager::commit`]).

pub(crate) mod collector;
pub(crate) mod global;
pub(crate) mod membership;
pub(crate) mod offset_reset;
pub(crate) mod policy;
pub(crate) mod producer;
pub(crate) mod purge;
pub(crate) mod refused;
pub(crate) mod restore;
pub(crate) mod retry;
pub(crate) mod standby;
pub(crate) mod stats;
pub(crate) mod task;
pub(crate) mod task_manager;
pub(crate) mod thread;

pub(crate) use collector::RecordCollector;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use rdkafka::error::KafkaError;

use crate::config::Config;
use crate::error::kafka::Access;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::processor::Clock;
use crate::state::{GlobalStores, QueryableStores, StateResources};
use crate::topology::Topology;
use purge::RecordPurger;
use stats::RuntimeStats;

/// What every thread of one application shares, read-only.
pub(crate) struct AppContext {
    pub(crate) config: Config,
    pub(crate) topology: Arc<Topology>,
    pub(crate) stats: Arc<RuntimeStats>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) resources: StateResources,
    /// Resolved source topic name -> sub-topology.
    pub(crate) topic_to_subtopology: HashMap<String, usize>,
    /// The partition count (tasks) of each sub-topology, by id, as the
    /// topic checks at start found them.
    pub(crate) partitions: Vec<i32>,
    pub(crate) dead_letter_topic: String,
    /// Deletes repartition records once their reader committed past them;
    /// `None` without repartition topics (or on the embedded cluster).
    pub(crate) purger: Option<RecordPurger>,
    /// The wall clock of the tasks (the system's, or a test driver's).
    pub(crate) clock: Clock,
    /// The global tables' stores (written by the global thread).
    pub(crate) globals: GlobalStores,
    /// The running tasks' stores, for interactive queries (`crate::query`).
    pub(crate) queryable: Arc<QueryableStores>,
    /// A bounded run's shared state (`None`: the run is continuous).
    pub(crate) bounded: Option<Arc<task_manager::bounded::BoundedRun>>,
    /// The instance's member of the streams group (`group_protocol =
    /// "streams"`; `None` under the consumer protocols).
    pub(crate) membership: Option<Arc<membership::Membership>>,
}

impl AppContext {
    /// When `e` is an authorization error met while `doing` something, the
    /// error naming the missing permission: `READ` on the topics the thread
    /// reads, or `WRITE` on those it writes (see [`Access`]); `thread` gives
    /// the transactional id under exactly-once.
    pub(crate) fn denied(&self, e: &KafkaError, doing: &str, topic_operation: &str, thread: usize) -> Option<Error> {
        let app = &self.config.application_id;
        let topics: BTreeSet<String> = if topic_operation == "READ" {
            self.topic_to_subtopology
                .keys()
                .cloned()
                .chain(self.topology.globals.iter().map(|g| g.topic.clone()))
                .collect()
        } else {
            let sinks = self.topology.subtopologies.iter().flat_map(|st| st.sinks.iter().map(|t| t.resolve(app)));
            sinks.chain(self.config.errors.uses_dead_letter().then(|| self.dead_letter_topic.clone())).collect()
        };
        let topics = topics.into_iter().collect::<Vec<_>>().join(", ");
        let transactional_id = self.config.transactional_id(thread);
        let access = Access {
            application_id: app,
            topic_operation,
            topics: &topics,
            transactional_id: transactional_id.as_deref(),
        };
        access.denied(e, doing)
    }
}
