//! # rivulet
//!
//! Kafka-to-Kafka stream processing microservices in Rust: Kafka Streams'
//! model (a keyed topology, tasks per partition, RocksDB state backed by
//! compacted changelog topics, offsets committed with outputs) with Flink's
//! time and window semantics.
//!
//! This crate is being built up issue by issue. What exists today:
//!
//! - [`config`]: the typed, validated configuration of an instance, loaded
//!   from `config/default.toml`, a file and `RIVULET__*` environment
//!   variables;
//! - [`kafka`]: construction of librdkafka clients from that configuration.
//!
//! `docs/architecture.md` maps the code and the design it follows.

pub mod config;
pub mod error;
pub mod kafka;

pub use crate::config::{Config, ConfigError, ConfigLoader, ProcessingGuarantee};
pub use crate::error::{Error, Result};

/// The everyday types, for `use rivulet::prelude::*`.
pub mod prelude {
    pub use crate::config::{Config, ProcessingGuarantee};
    pub use crate::error::{Error, Result};
}
