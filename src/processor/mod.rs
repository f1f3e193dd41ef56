//! The Processor API and the task kernel: the floor that both the DSL
//! ([`topology`](crate::topology)) and the runtime stand on.
//!
//! - [`Processor`] and [`ProcessorContext`]: how a node receives records
//!   and emits them to its children, and the errors it returns
//!   ([`ProcessError`]);
//! - [`KeyValueView`] and [`StoreSpec`]: the typed view of a task's stores
//!   that processors read and write;
//! - [`Timestamps`]: where a record's time comes from; the task's stream
//!   time and watermark (`time`);
//! - the node graph and its instantiation per task (`graph`), and the
//!   task's shared context (`context`: stores, write buffer, time, and the
//!   [`Collector`](collector) its records go to).
//!
//! Nothing here knows Kafka clients or the DSL: the runtime gives a task a
//! collector that produces to Kafka, the test driver one that keeps
//! records in memory.

pub(crate) mod api;
pub(crate) mod collector;
pub(crate) mod context;
pub(crate) mod graph;
pub(crate) mod store;
pub(crate) mod time;

pub use api::{ProcessError, Processor, ProcessorContext, TimeKind, UserError};
pub use store::{KeyValueView, StoreKind, StoreSpec};
pub use time::Timestamps;

pub(crate) use context::{wall_clock_ms, Clock, StoreSlot, TaskContext, TaskId};

/// Why a topology cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopologyError {
    /// The topology is not valid; the message says what to change.
    #[error("invalid topology: {0}")]
    Invalid(String),
    /// A bug in rivulet's graph construction.
    #[error("internal topology error (a rivulet bug): {0}")]
    Internal(String),
}
