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
pub(crate) mod policy;
pub(crate) mod producer;
pub(crate) mod purge;
pub(crate) mod restore;
pub(crate) mod retry;
pub(crate) mod stats;
pub(crate) mod task;
pub(crate) mod task_manager;
pub(crate) mod thread;

pub(crate) use collector::RecordCollector;
