//! Joins (Kafka Streams' developer guide, "Joining", is the specification):
//!
//! - [`table`]: stream-table (`KStream::join_table`, `left_join_table`) and
//!   table-table (`KTable::join`, `left_join`, `outer_join`).
//!
//! A join looks keys up in the other side's store, so the node that does it
//! and the nodes that write that store are in one sub-topology: their
//! source topics must be co-partitioned, which the start checks.

mod table;

#[cfg(test)]
mod tests;
