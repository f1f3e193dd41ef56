//! Joins (Kafka Streams' developer guide, "Joining", is the specification):
//!
//! - [`table`]: stream-table (`KStream::join_table`, `left_join_table`) and
//!   table-table (`KTable::join`, `left_join`, `outer_join`);
//! - [`foreign_key`]: the foreign-key table-table join
//!   (`KTable::join_foreign_key`, `left_join_foreign_key`), through a
//!   subscription and a response topic;
//! - `stream_stream`: the windowed join of two streams
//!   ([`KStream::join_stream`](crate::topology::KStream::join_stream) and its
//!   left and outer forms), with [`JoinWindows`].
//!
//! Global tables and the stream-global join are in
//! `topology/builder/global.rs`.
//!
//! A join looks keys up in the other side's store, so the node that does it
//! and the nodes that write that store are in one sub-topology: their
//! source topics must be co-partitioned, which the start checks.

mod foreign_key;
mod murmur3;
mod stream_stream;
mod table;
mod windows;

#[cfg(test)]
pub(crate) use stream_stream::StreamJoinKind;
pub use windows::JoinWindows;

#[cfg(test)]
mod foreign_key_tests;
#[cfg(test)]
mod shared_tests;
#[cfg(test)]
mod stream_stream_tests;
#[cfg(test)]
mod tests;
