//! Stream-table and table-table joins.
//!
//! **Stream-table** (Kafka Streams' `KStreamKTableJoin`): each stream
//! record looks up the table's current value for its key; an update of the
//! table emits nothing. `join_table` drops a record whose key the table
//! lacks, `left_join_table` joins it with `None`. The result keeps the
//! stream record's timestamp and headers.
//!
//! **Table-table** (`KTableKTableInnerJoin`, `...LeftJoin`, `...RightJoin`,
//! `...OuterJoin`): an update on either side looks up the other side and
//! forwards the new result with the one it replaces, so a delete on either
//! side retracts the result:
//!
//! ```text
//!              left update (k: old a0 -> new a1), right value b (or none)
//! inner:       b present: Change(j(a1, b), j(a0, b))   (a missing side gives none)
//!              b absent:  nothing
//! left:        Change(j(a1, b?), j(a0, b?)); a right update with a left value a:
//!              Change(j(a, b1?), j(a, b0?))
//! outer:       each side optional; a result is none only where both sides are
//! ```
//!
//! Unlike Kafka Streams, whose result timestamp is the larger of the two
//! sides' timestamps, the result carries the timestamp of the update that
//! caused it: rivulet's table stores keep values without timestamps.

use std::sync::Arc;

use crate::processor::{ProcessError, Processor, ProcessorContext, TopologyError};
use crate::record::Record;
use crate::serde::Serde;
use crate::topology::builder::{Data, KStream, KTable};
use crate::topology::change::Change;

/// Joins a stream record with the table value of its key, or with none.
type StreamJoiner<K, V, VT, VR> = Arc<dyn Fn(&K, &V, Option<&VT>) -> Option<VR> + Send + Sync>;

impl<K: Data, V: Data> KStream<K, V> {
    /// Joins each record with the value `table` holds for its key, and drops
    /// records whose key the table lacks (Kafka Streams' `KStream#join` with
    /// a `KTable`). Updates of the table emit nothing. A stream whose key
    /// changed is repartitioned first, through `<table store>-join-repartition`.
    ///
    /// Which of a stream record and a table update of the same key is
    /// processed first depends on the order the consumer returns them:
    /// rivulet does not yet align the partitions of a task by timestamp as
    /// Kafka Streams does (`max.task.idle.ms`). Load the table before the
    /// stream's records arrive, or use a left join and treat `None` as "not
    /// known yet".
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// use rivulet::testing::TopologyTestDriver;
    ///
    /// let mut b = Topology::builder();
    /// let customers = b.table("customers", "customers", Serdes::string(), Serdes::string());
    /// b.stream("orders", Serdes::string(), Serdes::string())
    ///     .join_table(&customers, |_id, order, name| format!("{order} for {name}"))
    ///     .to("orders-with-names", Serdes::string(), Serdes::string());
    /// let mut driver = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    /// let customers = driver.input_topic("customers", Serdes::string(), Serdes::optional(Serdes::string()));
    /// let orders = driver.input_topic("orders", Serdes::string(), Serdes::string());
    /// driver.pipe(&customers, "c1".to_string(), Some("Ann".to_string()), 0).unwrap();
    /// driver.pipe(&orders, "c1".to_string(), "2 pens".to_string(), 0).unwrap();
    /// driver.pipe(&orders, "c9".to_string(), "1 lamp".to_string(), 0).unwrap(); // no customer: dropped
    /// let out = driver.output_topic("orders-with-names", Serdes::string(), Serdes::string());
    /// assert_eq!(driver.read_key_values(&out).unwrap(), vec![("c1".to_string(), "2 pens for Ann".to_string())]);
    /// ```
    pub fn join_table<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&K, &V, &VT) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.stream_table_join("JOIN_TABLE", table, Arc::new(move |k, v, t| t.map(|t| joiner(k, v, t))))
    }

    /// Joins each record with the value `table` holds for its key, or with
    /// `None` when it holds none (Kafka Streams' `KStream#leftJoin` with a
    /// `KTable`). See [`join_table`](Self::join_table).
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// use rivulet::testing::TopologyTestDriver;
    ///
    /// let mut b = Topology::builder();
    /// let customers = b.table("customers", "customers", Serdes::string(), Serdes::string());
    /// b.stream("orders", Serdes::string(), Serdes::string())
    ///     .left_join_table(&customers, |_id, order, name| match name {
    ///         Some(name) => format!("{order} for {name}"),
    ///         None => format!("{order} for an unknown customer"),
    ///     })
    ///     .to("orders-with-names", Serdes::string(), Serdes::string());
    /// let mut driver = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    /// let orders = driver.input_topic("orders", Serdes::string(), Serdes::string());
    /// driver.pipe(&orders, "c9".to_string(), "1 lamp".to_string(), 0).unwrap();
    /// let out = driver.output_topic("orders-with-names", Serdes::string(), Serdes::string());
    /// assert_eq!(driver.read_key_values(&out).unwrap()[0].1, "1 lamp for an unknown customer");
    /// ```
    pub fn left_join_table<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&K, &V, Option<&VT>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.stream_table_join("LEFT_JOIN_TABLE", table, Arc::new(move |k, v, t| Some(joiner(k, v, t))))
    }

    fn stream_table_join<VT: Data, VR: Data>(
        &self,
        op: &str,
        table: &KTable<K, VT>,
        joiner: StreamJoiner<K, V, VT, VR>,
    ) -> KStream<K, VR> {
        let Some(store) = table.store_for(op) else {
            return self.derive(self.node_id(), false);
        };
        let input = if self.key_changed {
            if self.key_serde.is_none() || self.value_serde.is_none() {
                self.graph.borrow_mut().errors.push(TopologyError::Invalid(format!(
                    "{op} with table `{store}` reads a stream whose key changed, so it is repartitioned first, \
                     which needs its serdes; call .with_serdes(key_serde, value_serde) before the join"
                )));
                return self.derive(self.node_id(), false);
            }
            self.repartition(&format!("{store}-join"))
        } else {
            self.clone()
        };
        let joined = input.add_processor(op, vec![store.clone()], move |_| StreamTableJoin {
            store: store.clone(),
            joiner: joiner.clone(),
        });
        KStream { key_serde: input.key_serde.clone(), ..joined }
    }
}

struct StreamTableJoin<K, V, VT, VR> {
    store: String,
    joiner: StreamJoiner<K, V, VT, VR>,
}

impl<K: Data, V: Data, VT: Data, VR: Data> Processor<K, V, K, VR> for StreamTableJoin<K, V, VT, VR> {
    fn process(&mut self, record: Record<K, V>, ctx: &mut ProcessorContext<'_, K, VR>) -> Result<(), ProcessError> {
        let table_value = ctx.store::<K, VT>(&self.store)?.get(&record.key)?;
        let Record { key, value, timestamp, headers } = record;
        match (self.joiner)(&key, &value, table_value.as_ref()) {
            Some(value) => ctx.forward(Record { key, value, timestamp, headers }),
            None => Ok(()),
        }
    }
}

/// Joins one side's value with the other's, either possibly missing;
/// `None` where the join kind has no result.
type TableJoiner<K, A, B, VR> = Arc<dyn Fn(&K, Option<&A>, Option<&B>) -> Option<VR> + Send + Sync>;

impl<K: Data, V: Data> KTable<K, V> {
    /// The table of the keys both tables hold, with `joiner`'s result
    /// (Kafka Streams' `KTable#join`). An update or delete on either side
    /// updates or deletes the result. Both tables need a store (see
    /// [`materialize`](Self::materialize)) and co-partitioned topics.
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// use rivulet::testing::TopologyTestDriver;
    ///
    /// let mut b = Topology::builder();
    /// let names = b.table("names", "names", Serdes::string(), Serdes::string());
    /// let emails = b.table("emails", "emails", Serdes::string(), Serdes::string());
    /// names
    ///     .join(&emails, |_, name, email| format!("{name} <{email}>"), Serdes::string())
    ///     .to_change_stream()
    ///     .to("contacts", Serdes::string(), Serdes::optional(Serdes::string()));
    /// let mut driver = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    /// let names = driver.input_topic("names", Serdes::string(), Serdes::optional(Serdes::string()));
    /// let emails = driver.input_topic("emails", Serdes::string(), Serdes::optional(Serdes::string()));
    /// driver.pipe(&names, "u1".to_string(), Some("Ann".to_string()), 0).unwrap();
    /// driver.pipe(&emails, "u1".to_string(), Some("ann@example.com".to_string()), 0).unwrap();
    /// driver.pipe(&emails, "u1".to_string(), None, 0).unwrap();
    /// let out = driver.output_topic("contacts", Serdes::string(), Serdes::optional(Serdes::string()));
    /// assert_eq!(
    ///     driver.read_key_values(&out).unwrap(),
    ///     vec![("u1".to_string(), Some("Ann <ann@example.com>".to_string())), ("u1".to_string(), None)]
    /// );
    /// ```
    pub fn join<V2: Data, VR: Data>(
        &self,
        other: &KTable<K, V2>,
        joiner: impl Fn(&K, &V, &V2) -> VR + Send + Sync + 'static,
        value_serde: impl Serde<VR>,
    ) -> KTable<K, VR> {
        let joiner = Arc::new(joiner);
        self.table_join("JOIN", other, value_serde, move |k, a, b| match (a, b) {
            (Some(a), Some(b)) => Some(joiner(k, a, b)),
            _ => None,
        })
    }

    /// The table of the keys this table holds, joined with the other
    /// table's value or `None` (Kafka Streams' `KTable#leftJoin`).
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// let mut b = Topology::builder();
    /// let users = b.table("users", "users", Serdes::string(), Serdes::string());
    /// let plans = b.table("plans", "plans", Serdes::string(), Serdes::string());
    /// users
    ///     .left_join(&plans, |_, user, plan| format!("{user}: {}", plan.map_or("free", String::as_str)), Serdes::string())
    ///     .to_stream()
    ///     .to("user-plans", Serdes::string(), Serdes::string());
    /// assert!(b.build().is_ok());
    /// ```
    pub fn left_join<V2: Data, VR: Data>(
        &self,
        other: &KTable<K, V2>,
        joiner: impl Fn(&K, &V, Option<&V2>) -> VR + Send + Sync + 'static,
        value_serde: impl Serde<VR>,
    ) -> KTable<K, VR> {
        let joiner = Arc::new(joiner);
        self.table_join("LEFT_JOIN", other, value_serde, move |k, a, b| a.map(|a| joiner(k, a, b)))
    }

    /// The table of the keys either table holds, joined with the other's
    /// value or `None` (Kafka Streams' `KTable#outerJoin`).
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// let mut b = Topology::builder();
    /// let stock = b.table("stock", "stock", Serdes::string(), Serdes::i64());
    /// let orders = b.table("open-orders", "open-orders", Serdes::string(), Serdes::i64());
    /// stock
    ///     .outer_join(&orders, |_, have, want| have.copied().unwrap_or(0) - want.copied().unwrap_or(0), Serdes::i64())
    ///     .to_stream()
    ///     .to("stock-balance", Serdes::string(), Serdes::i64());
    /// assert!(b.build().is_ok());
    /// ```
    pub fn outer_join<V2: Data, VR: Data>(
        &self,
        other: &KTable<K, V2>,
        joiner: impl Fn(&K, Option<&V>, Option<&V2>) -> VR + Send + Sync + 'static,
        value_serde: impl Serde<VR>,
    ) -> KTable<K, VR> {
        let joiner = Arc::new(joiner);
        self.table_join("OUTER_JOIN", other, value_serde, move |k, a, b| match (a, b) {
            (None, None) => None,
            (a, b) => Some(joiner(k, a, b)),
        })
    }

    /// `joiner` gives `None` where the join kind has no result (a side it
    /// needs is missing); each side's updates look up the other side.
    fn table_join<V2: Data, VR: Data>(
        &self,
        op: &str,
        other: &KTable<K, V2>,
        value_serde: impl Serde<VR>,
        joiner: impl Fn(&K, Option<&V>, Option<&V2>) -> Option<VR> + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        let value_serde: Arc<dyn Serde<VR>> = Arc::new(value_serde);
        let (Some(this_store), Some(other_store)) = (self.store_for(op), other.store_for(op)) else {
            return KTable::broken(&self.stream, self.key_serde.clone(), value_serde);
        };
        let joiner: TableJoiner<K, V, V2, VR> = Arc::new(joiner);
        let reversed: TableJoiner<K, V2, V, VR> = {
            let joiner = joiner.clone();
            Arc::new(move |k, b, a| joiner(k, a, b))
        };
        let this_side = self.stream.add_processor(op, vec![other_store.clone()], move |_| TableJoinSide {
            other_store: other_store.clone(),
            joiner: joiner.clone(),
        });
        let other_side = other.stream.add_processor(op, vec![this_store.clone()], move |_| TableJoinSide {
            other_store: this_store.clone(),
            joiner: reversed.clone(),
        });
        KTable { stream: this_side.merge(&other_side), key_serde: self.key_serde.clone(), value_serde, store: None }
    }
}

/// One side of a table-table join: an update of this side, joined with the
/// other side's current value (Kafka Streams' `KTableKTable*Join`
/// processors, with old values on).
struct TableJoinSide<K, A, B, VR> {
    other_store: String,
    joiner: TableJoiner<K, A, B, VR>,
}

impl<K: Data, A: Data, B: Data, VR: Data> Processor<K, Change<A>, K, Change<VR>> for TableJoinSide<K, A, B, VR> {
    fn process(
        &mut self,
        record: Record<K, Change<A>>,
        ctx: &mut ProcessorContext<'_, K, Change<VR>>,
    ) -> Result<(), ProcessError> {
        let other = ctx.store::<K, B>(&self.other_store)?.get(&record.key)?;
        let Record { key, value, timestamp, headers } = record;
        let result = |this: Option<&A>| (self.joiner)(&key, this, other.as_ref());
        let change = Change::new(result(value.new.as_ref()), result(value.old.as_ref()));
        if change.is_empty() {
            return Ok(());
        }
        ctx.forward(Record { key, value: change, timestamp, headers })
    }
}
