//! # rivulet
//!
//! Kafka-to-Kafka stream processing microservices in Rust: Kafka Streams'
//! model (a keyed topology, tasks per partition, RocksDB state backed by
//! compacted changelog topics, offsets committed with outputs) with Flink's
//! time and window semantics.
//!
//! ```no_run
//! use rivulet::prelude::*;
//!
//! // `my-app` runs; `my-app describe` prints the topology; `my-app reset`
//! // makes it process its input again from the start.
//! fn main() -> std::process::ExitCode {
//!     rivulet::main(|_config| {
//!         let mut b = Topology::builder();
//!         b.stream("lines", Serdes::unit(), Serdes::string())
//!             .flat_map_values(|line: String| line.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>())
//!             .group_by(|_, word: &String| word.clone(), Serdes::string())
//!             .count("word-counts")
//!             .to_stream()
//!             .to("word-counts", Serdes::string(), Serdes::i64());
//!         Ok(b.build()?)
//!     })
//! }
//! ```
//!
//! - [`config`]: typed, validated configuration;
//! - [`topology`]: the DSL (streams, tables, windows, keyed state);
//! - [`processor`]: the Processor API that every operator is built on, and
//!   that user code extends with [`KStream::process`](topology::KStream::process);
//! - [`serde`]: how keys and values become bytes;
//! - [`state`]: [`StateError`](state::StateError), what local state reports (the stores are internal);
//! - the runtime (internal): processing threads, tasks, the commit cycle;
//! - [`App`]: a config and a topology become a running instance, with an
//!   HTTP server for `/metrics` and health checks, and a graceful shutdown;
//! - [`main`] (and [`Main`]): an application's whole `fn main`, with the
//!   subcommands `run`, `describe` and `reset` ([`reset`]: reprocess the
//!   input from the start, as Kafka Streams' application reset tool);
//! - [`init_logging`]: text or JSON logs as `log.format` and `log.level` say;
//! - [`testing`]: [`TopologyTestDriver`](testing::TopologyTestDriver), a
//!   topology run without a broker, for unit tests.
//!
//! `docs/architecture.md` maps the code and the design it follows.

pub mod app;
pub mod cli;
pub mod config;
pub mod error;
mod http;
pub mod kafka;
mod logging;
mod metrics;
pub mod processor;
pub mod query;
pub mod record;
pub mod reset;
pub(crate) mod runtime;
pub mod serde;
pub mod sql;
pub mod state;
pub mod testing;
pub mod topology;

pub use crate::app::{App, RunningApp};
pub use crate::cli::{main, Main};
pub use crate::config::{
    Config, ConfigError, ConfigLoader, ErrorPolicy, GroupProtocol, LogFormat, OffsetResetPolicy, ProcessingGuarantee,
};
pub use crate::error::{Error, Result};
pub use crate::logging::init_logging;
pub use crate::record::Record;
pub use crate::runtime::stats::StatsSnapshot;

/// The everyday types, for `use rivulet::prelude::*`: enough to build a
/// topology, configure and run it.
///
/// ```
/// use std::time::Duration;
/// use rivulet::prelude::*;
///
/// fn clicks_per_minute() -> Result<Topology> {
///     let mut b = Topology::builder();
///     b.stream("clicks", Serdes::string(), Serdes::string())
///         .group_by_key()
///         .windowed_by(Windows::tumbling(Duration::from_secs(60)))
///         .count("clicks-per-minute")
///         .to("clicks-per-minute", Serdes::windowed(Serdes::string()), Serdes::i64());
///     Ok(b.build()?)
/// }
/// assert_eq!(clicks_per_minute().unwrap().source_topics(), ["clicks"]);
/// ```
pub mod prelude {
    pub use crate::app::App;
    pub use crate::config::{Config, ProcessingGuarantee};
    pub use crate::error::{Error, Result};
    pub use crate::record::Record;
    pub use crate::serde::{Serde, Serdes};
    pub use crate::topology::{
        KStream, KTable, Processor, ProcessorContext, StoreSpec, Timestamps, Topology, Windowed, Windows,
    };
}
