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
//!   `Collector` its records go to).
//!
//! Nothing here knows Kafka clients or the DSL: the runtime gives a task a
//! collector that produces to Kafka, the test driver one that keeps
//! records in memory.

pub(crate) mod api;
pub(crate) mod collector;
pub(crate) mod context;
pub(crate) mod error;
pub(crate) mod graph;
pub(crate) mod store;
pub(crate) mod time;

pub use api::{Processor, ProcessorContext, TimeKind};
pub use error::{ProcessError, TopologyError, UserError};
pub use store::{KeyValueView, StoreKind, StoreSpec};
pub use time::Timestamps;

pub(crate) use context::{wall_clock_ms, Clock, FailedCall, StoreSlot, TaskContext, TaskId};
