//! The windowed stream-stream join: [`KStream::join_stream`],
//! [`KStream::left_join_stream`] and [`KStream::outer_join_stream`].
//!
//! Kafka Streams' semantics (`KStreamKStreamJoin.java`, `KStreamImplJoin.java`,
//! `JoinWindows.java`, and the outer-join "shared store" of KAFKA-10847 /
//! 3.1+): both sides are buffered in their own store; a record of this
//! stream at `t` joins every buffered record of the other stream with its
//! key and a timestamp in `[t - before, t + after]` (and symmetrically),
//! each pair once, stamped with the later of the two timestamps; the left
//! and outer joins emit a record that found no partner (with `None` for
//! the other side) only once its window has closed, never a
//! left-with-null result that a later partner would contradict.
//!
//! # Time
//!
//! Each side has its own time: the largest timestamp it has delivered to
//! the join, held back by the task's watermark (so a source's
//! out-of-orderness, a repartition topic's slowest upstream task and idle
//! partitions count), never going back, kept in the store across restarts.
//! Kafka Streams has one stream time for both sides, the largest timestamp
//! of either (its `TimeTracker`); rivulet does not process records across
//! partitions in timestamp order, so a backlog of one side read before the
//! other would make the other side all late. Here each side is judged
//! against its own progress, and the other side's time decides when no
//! partner can come any more.
//!
//! # Lateness, windows closing, purging
//!
//! With `grace` the grace period:
//!
//! - a record is **late** when `ts + grace` is before its own side's time:
//!   it is counted in `rivulet_late_records_total`, dropped (or written to
//!   the late topic), and joins nothing. Flink's interval join drops a
//!   record behind the watermark the same way; Kafka Streams still joins
//!   such a record with what its stores hold;
//! - the other side's records still to come are then at or after the other
//!   side's time minus `grace`, so a record of this stream at `t` has no
//!   partner to wait for once `t + after + grace` is before the other
//!   side's time: its window has **closed**. The left and outer joins then
//!   emit it if it never joined, and it is purged from its store (Kafka
//!   Streams keeps it `before + after + grace`, as its late records may
//!   still join). A record of the other stream closes when
//!   `t + before + grace` is before this stream's time. A record whose
//!   window is closed when it arrives (the other side runs ahead) joins
//!   what is buffered and is not buffered itself: without a partner, the
//!   left and outer joins emit it at once, as Kafka Streams does.
//!
//! Unmatched records are emitted in timestamp order (this stream's first on
//! a tie), stamped with their own timestamp.
//!
//! # Stores
//!
//! `<name>-this` and `<name>-other`, key-value stores of bytes with
//! compacted changelogs (`<application_id>-<name>-this-changelog`, ...):
//!
//! - `0x00 | key | ts | seq` -> `matched | value`: a buffered record;
//!   `matched` (one byte) says whether it has joined, for the unmatched
//!   result of left and outer joins (Kafka Streams keeps unmatched records
//!   in a third, shared store; here a record's window closes when it is
//!   purged, so a flag on the buffered record does it);
//! - `0x01 | ts | seq` -> key: the index by time that purging walks;
//! - `0x02` (in `<name>-this` only) -> both sides' largest timestamps and
//!   times, and the next sequence number, written at each commit that
//!   changed them.
//!
//! All of it goes through the task's write buffer and changelogs, so under
//! exactly-once a restart from the changelogs resumes the same join.

use std::sync::Arc;

use crate::processor::api::{Processor, ProcessorContext};
use crate::processor::store::StoreSpec;
use crate::processor::ProcessError;
use crate::record::Record;
use crate::serde::{Encoded, Serde, Serdes};
use crate::state::{sortable_time as enc, time_from_sortable as dec};
use crate::topology::builder::{Data, KStream, TopologyBuilder};
use crate::topology::ops::Emit;
use crate::topology::windows::late_records_to;
use crate::topology::TopologyError;

use super::JoinWindows;

mod processor;

use processor::*;

/// Which records of a stream-stream join are emitted without a partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamJoinKind {
    /// Only pairs.
    Inner,
    /// Pairs, and this stream's records that found none.
    Left,
    /// Pairs, and both streams' records that found none.
    Outer,
}

/// A record of either input, as the join node receives it.
#[derive(Clone)]
pub(crate) enum Side<V, V2> {
    This(V),
    Other(V2),
}

/// What the join node emits: a result, or a late record of either side.
#[derive(Clone)]
pub(crate) enum JoinOut<V, V2, VR> {
    Joined(VR),
    LateThis(V),
    LateOther(V2),
}

/// The joiner as the node calls it: `None` for a side without a partner
/// (never both); `None` back emits nothing (only an inner joiner called
/// without both sides, which does not happen).
type JoinFn<K, V, V2, VR> = Arc<dyn Fn(&K, Option<&V>, Option<&V2>) -> Option<VR> + Send + Sync>;

type Entries = Vec<(Vec<u8>, Vec<u8>)>;

const DATA: u8 = 0;
const INDEX: u8 = 1;
const META: &[u8] = &[2];

fn key_of(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    k.push(prefix);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

impl<K: Data, V: Data> KStream<K, V> {
    /// The inner windowed join with `other`: for each pair of records with
    /// the same key whose timestamps are within `windows` of each other
    /// (the other's in `[t - before, t + after]` for this one's `t`),
    /// `joiner(key, this, other)`, stamped with the later timestamp.
    ///
    /// Both streams must be co-partitioned (their topics have the same
    /// number of partitions and the same key partitioning); a stream whose
    /// key was changed is repartitioned first, through
    /// `<name>-this-repartition` / `<name>-other-repartition`. Both need
    /// their key and value serdes (the records wait in the stores
    /// `<name>-this` and `<name>-other`). A record arriving more than
    /// `grace` behind its stream's time (the largest timestamp that stream
    /// has delivered, held back by the watermark) is late: counted, and
    /// dropped or written to the late topics of
    /// [`JoinWindows::late_records_to`]. See `docs/architecture.md`
    /// ("Stream-stream joins") for the details.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rivulet::prelude::*;
    /// use rivulet::topology::JoinWindows;
    /// let mut b = Topology::builder();
    /// let orders = b.stream("orders", Serdes::string(), Serdes::string());
    /// let payments = b.stream("payments", Serdes::string(), Serdes::i64());
    /// orders
    ///     .join_stream(&payments, "paid", JoinWindows::symmetric(Duration::from_secs(3600)), |id, order, amount| {
    ///         format!("{id}: {order} paid {amount} cents")
    ///     })
    ///     .to("paid-orders", Serdes::string(), Serdes::string());
    /// let described = b.build().unwrap().describe();
    /// assert!(described.contains("paid-this") && described.contains("paid-other"));
    /// ```
    pub fn join_stream<V2: Data, VR: Data>(
        &self,
        other: &KStream<K, V2>,
        name: &str,
        windows: JoinWindows,
        joiner: impl Fn(&K, &V, &V2) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        let f: JoinFn<K, V, V2, VR> = Arc::new(move |k, a, b| match (a, b) {
            (Some(a), Some(b)) => Some(joiner(k, a, b)),
            _ => None,
        });
        self.stream_join(other, name, windows, StreamJoinKind::Inner, f)
    }

    /// The left windowed join with `other`: as [`join_stream`](Self::join_stream),
    /// and each record of this stream that joins nothing is emitted once
    /// with `None`, when its window has closed (the other stream's time is
    /// past its timestamp + `after` + grace), as Kafka Streams 3.1+ does: never
    /// early, so no left-with-null result is followed by a joined one.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rivulet::prelude::*;
    /// use rivulet::testing::TopologyTestDriver;
    /// use rivulet::topology::JoinWindows;
    ///
    /// let mut b = Topology::builder();
    /// let clicks = b.stream("clicks", Serdes::string(), Serdes::string());
    /// let views = b.stream("views", Serdes::string(), Serdes::string());
    /// let ten_minutes = JoinWindows::of(Duration::from_secs(600), Duration::ZERO);
    /// clicks
    ///     .left_join_stream(&views, "attribution", ten_minutes, |_, click, view| {
    ///         format!("{click} <- {}", view.map_or("nothing", String::as_str))
    ///     })
    ///     .to("attributed", Serdes::string(), Serdes::string());
    /// let mut driver = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    /// let (clicks, views) = (
    ///     driver.input_topic("clicks", Serdes::string(), Serdes::string()),
    ///     driver.input_topic("views", Serdes::string(), Serdes::string()),
    /// );
    /// driver.pipe(&views, "u1".into(), "ad-1".into(), 1_000).unwrap();
    /// driver.pipe(&clicks, "u1".into(), "c1".into(), 2_000).unwrap(); // joins ad-1 at once
    /// driver.pipe(&clicks, "u2".into(), "c2".into(), 3_000).unwrap(); // waits for its window to close
    /// // Both streams move on (a side's time is held back by the watermark):
    /// driver.pipe(&views, "u3".into(), "ad-3".into(), 700_000).unwrap();
    /// driver.pipe(&clicks, "u4".into(), "c4".into(), 700_000).unwrap();
    /// let out = driver.output_topic("attributed", Serdes::string(), Serdes::string());
    /// let got: Vec<String> = driver.read_key_values(&out).unwrap().into_iter().map(|(_, v)| v).collect();
    /// assert_eq!(got, ["c1 <- ad-1", "c2 <- nothing"]);
    /// ```
    pub fn left_join_stream<V2: Data, VR: Data>(
        &self,
        other: &KStream<K, V2>,
        name: &str,
        windows: JoinWindows,
        joiner: impl Fn(&K, &V, Option<&V2>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        let f: JoinFn<K, V, V2, VR> = Arc::new(move |k, a, b| a.map(|a| joiner(k, a, b)));
        self.stream_join(other, name, windows, StreamJoinKind::Left, f)
    }

    /// The outer windowed join with `other`: as [`left_join_stream`](Self::left_join_stream),
    /// and the records of `other` that join nothing too (with `None` for
    /// this side), once their window has closed (timestamp + `before` +
    /// grace).
    ///
    /// ```
    /// use std::time::Duration;
    /// use rivulet::prelude::*;
    /// use rivulet::topology::JoinWindows;
    /// let mut b = Topology::builder();
    /// let sent = b.stream("sent", Serdes::string(), Serdes::i64());
    /// let received = b.stream("received", Serdes::string(), Serdes::i64());
    /// sent.outer_join_stream(&received, "delivery", JoinWindows::symmetric(Duration::from_secs(60)), |id, s, r| {
    ///     match (s, r) {
    ///         (Some(_), Some(_)) => format!("{id} delivered"),
    ///         (Some(_), None) => format!("{id} lost"),
    ///         _ => format!("{id} unexpected"),
    ///     }
    /// })
    /// .to("deliveries", Serdes::string(), Serdes::string());
    /// assert!(b.build().is_ok());
    /// ```
    pub fn outer_join_stream<V2: Data, VR: Data>(
        &self,
        other: &KStream<K, V2>,
        name: &str,
        windows: JoinWindows,
        joiner: impl Fn(&K, Option<&V>, Option<&V2>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        let f: JoinFn<K, V, V2, VR> = Arc::new(move |k, a, b| Some(joiner(k, a, b)));
        self.stream_join(other, name, windows, StreamJoinKind::Outer, f)
    }

    /// This stream, repartitioned through `<store>-repartition` if its key
    /// changed, with its serdes; `None` after recording a topology error.
    #[allow(clippy::type_complexity)]
    fn join_input(
        &self,
        join: &str,
        store: &str,
        which: &str,
    ) -> Option<(KStream<K, V>, Arc<dyn Serde<K>>, Arc<dyn Serde<V>>)> {
        let (Some(ks), Some(vs)) = (self.key_serde.clone(), self.value_serde.clone()) else {
            self.graph.borrow_mut().errors.push(TopologyError::Invalid(format!(
                "stream join `{join}` keeps the records of {which} stream in a store, which needs its key and value \
                 serdes; call .with_serdes(key_serde, value_serde) on it before the join"
            )));
            return None;
        };
        let input = if self.key_changed { self.repartition(store) } else { self.clone() };
        Some((input, ks, vs))
    }

    fn stream_join<V2: Data, VR: Data>(
        &self,
        other: &KStream<K, V2>,
        name: &str,
        windows: JoinWindows,
        kind: StreamJoinKind,
        joiner: JoinFn<K, V, V2, VR>,
    ) -> KStream<K, VR> {
        let (this_store, other_store) = (format!("{name}-this"), format!("{name}-other"));
        let (Some((this, ks, vs)), Some((that, _, vs2))) =
            (self.join_input(name, &this_store, "this"), other.join_input(name, &other_store, "the other"))
        else {
            return self.derive(self.node, false);
        };
        let mut builder = TopologyBuilder { graph: self.graph.clone() };
        builder.add_store(StoreSpec::key_value(&this_store, Serdes::bytes(), Serdes::bytes()));
        builder.add_store(StoreSpec::key_value(&other_store, Serdes::bytes(), Serdes::bytes()));
        // One node takes both sides (so both stores are in one
        // sub-topology): each side is tagged, then the two are merged.
        let a = this.map_values(Side::<V, V2>::This);
        let b = that.map_values(Side::<V, V2>::Other);
        let both = a.merge(&b);
        let kind_name = match kind {
            StreamJoinKind::Inner => "inner",
            StreamJoinKind::Left => "left",
            StreamJoinKind::Outer => "outer",
        };
        let op = format!("STREAM_JOIN({kind_name}, {})", windows.describe());
        let (w, k2, v1, v2) = (windows.clone(), ks.clone(), vs.clone(), vs2.clone());
        let node: KStream<K, JoinOut<V, V2, VR>> =
            both.add_processor(&op, vec![this_store.clone(), other_store.clone()], move |node| JoinProcessor {
                node: node.to_string(),
                stores: [this_store.clone(), other_store.clone()],
                store_index: [usize::MAX; 2],
                before: w.before,
                after: w.after,
                grace: w.grace,
                kind,
                joiner: joiner.clone(),
                key_serde: k2.clone(),
                this_serde: v1.clone(),
                other_serde: v2.clone(),
                time: Times::default(),
                persisted: Times::default(),
                scanned_below: [i64::MIN; 2],
            });
        if let Some((this_late, other_late)) = &windows.late_topics {
            let hint = format!("late records of stream join `{name}`");
            let fix = "on both streams before the join";
            late_records_to(&node, &hint, fix, this_late, ks.clone(), Some(vs), |k, out| match out {
                JoinOut::LateThis(v) => Some((k, v)),
                _ => None,
            });
            late_records_to(&node, &hint, fix, other_late, ks.clone(), Some(vs2), |k, out| match out {
                JoinOut::LateOther(v) => Some((k, v)),
                _ => None,
            });
        }
        let results = node.flat(
            "STREAM_JOIN_RESULTS",
            false,
            Arc::new(|r: Record<K, JoinOut<V, V2, VR>>| {
                let Record { key, value, timestamp, headers } = r;
                Ok(match value {
                    JoinOut::Joined(value) => Emit::One(Record { key, value, timestamp, headers }),
                    _ => Emit::None,
                })
            }),
        );
        KStream { key_serde: Some(ks), value_serde: None, key_changed: false, ..results }
    }
}
