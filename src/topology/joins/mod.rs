//! Joins (Kafka Streams' developer guide, "Joining", is the specification):
//!
//! - [`table`]: stream-table (`KStream::join_table`, `left_join_table`) and
//!   table-table (`KTable::join`, `left_join`, `outer_join`).
//! - [`foreign_key`]: the foreign-key table-table join
//!   (`KTable::join_foreign_key`, `left_join_foreign_key`), through a
//!   subscription and a response topic.
//!
//! A join looks keys up in the other side's store, so the node that does it
//! and the nodes that write that store are in one sub-topology: their
//! source topics must be co-partitioned, which the start checks.

mod foreign_key;
mod murmur3;
mod table;

#[cfg(test)]
mod foreign_key_tests;
#[cfg(test)]
mod shared_tests;
#[cfg(test)]
mod tests;
