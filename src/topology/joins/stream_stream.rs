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

/// The join's clocks (see the module docs): per side, the largest
/// timestamp it has delivered (`seen`) and its time (`time`: `seen` held
/// back by the task's watermark, never decreasing); and the next sequence
/// number of a buffered record. Index 0 is this stream, 1 the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Times {
    seen: [i64; 2],
    time: [i64; 2],
    seq: u64,
}

impl Default for Times {
    fn default() -> Self {
        Times { seen: [i64::MIN; 2], time: [i64::MIN; 2], seq: 0 }
    }
}

impl Times {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(40);
        for t in [self.seen[0], self.seen[1], self.time[0], self.time[1]] {
            out.extend_from_slice(&enc(t));
        }
        out.extend_from_slice(&self.seq.to_be_bytes());
        out
    }

    fn decode(b: &[u8]) -> Option<Times> {
        if b.len() != 40 {
            return None;
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&b[32..]);
        Some(Times {
            seen: [dec(&b[..8]), dec(&b[8..16])],
            time: [dec(&b[16..24]), dec(&b[24..32])],
            seq: u64::from_be_bytes(seq),
        })
    }
}

type Ctx<'a, K, V, V2, VR> = ProcessorContext<'a, K, JoinOut<V, V2, VR>>;

/// A buffered record whose window closed, for the unmatched results.
struct Closed {
    ts: i64,
    side: usize,
    seq: Vec<u8>,
    kb: Vec<u8>,
    value: Option<Vec<u8>>,
}

struct JoinProcessor<K, V, V2, VR> {
    node: String,
    /// This stream's store and the other's; 0 and 1 below.
    stores: [String; 2],
    store_index: [usize; 2],
    before: i64,
    after: i64,
    grace: i64,
    kind: StreamJoinKind,
    joiner: JoinFn<K, V, V2, VR>,
    key_serde: Arc<dyn Serde<K>>,
    this_serde: Arc<dyn Serde<V>>,
    other_serde: Arc<dyn Serde<V2>>,
    time: Times,
    persisted: Times,
    /// Per side: the index holds no record before this time (all closed
    /// and purged); `i64::MIN` after `init`.
    scanned_below: [i64; 2],
}

impl<K: Data, V: Data, V2: Data, VR: Data> JoinProcessor<K, V, V2, VR> {
    fn serde_error(&self, what: &str, e: crate::serde::SerdeError) -> ProcessError {
        ProcessError::Serde { what: format!("{what} in stream join store `{}`", self.stores[0]), source: e }
    }

    fn corrupt(&self, what: &str) -> ProcessError {
        ProcessError::Topology {
            node: self.node.clone(),
            reason: format!(
                "stream join store `{}` or `{}` is damaged: {what}; stop the instance and delete this task's \
                 directories of the stores under state_dir, and they are restored from their changelogs",
                self.stores[0], self.stores[1]
            ),
        }
    }

    /// Whether records of `side` that find no partner are emitted.
    fn unmatched(&self, side: usize) -> bool {
        match self.kind {
            StreamJoinKind::Inner => false,
            StreamJoinKind::Left => side == 0,
            StreamJoinKind::Outer => true,
        }
    }

    /// How far after a record of `side` its partners may be: `after` for
    /// this stream's records, `before` for the other's.
    fn ahead(&self, side: usize) -> i64 {
        if side == 0 {
            self.after
        } else {
            self.before
        }
    }

    fn behind(&self, side: usize) -> i64 {
        if side == 0 {
            self.before
        } else {
            self.after
        }
    }

    fn encode<T: 'static>(&self, serde: &dyn Serde<T>, value: &T, what: &str) -> Result<Vec<u8>, ProcessError> {
        let mut out = Vec::new();
        match serde.serialize(value, &mut out) {
            Ok(Encoded::Bytes) => Ok(out),
            Ok(Encoded::Null) if what == "key" => Err(ProcessError::Rejected {
                node: self.node.clone(),
                source: "a stream join needs a key; this record's key is null".into(),
            }),
            Ok(Encoded::Null) => Ok(Vec::new()),
            Err(e) => Err(self.serde_error(what, e)),
        }
    }

    fn range(
        &self,
        ctx: &mut Ctx<'_, K, V, V2, VR>,
        side: usize,
        from: Vec<u8>,
        to: Vec<u8>,
    ) -> Result<Entries, ProcessError> {
        ctx.store::<Vec<u8>, Vec<u8>>(&self.stores[side])?.range(Some(&from), Some(&to))
    }

    /// The sides' times as what they delivered and the task's watermark
    /// now allow; closes the windows they pass.
    fn advance(&mut self, ctx: &mut Ctx<'_, K, V, V2, VR>) -> Result<(), ProcessError> {
        let wm = ctx.watermark();
        let before = self.time.time;
        for side in 0..2 {
            if self.time.seen[side] != i64::MIN {
                self.time.time[side] = self.time.time[side].max(self.time.seen[side].min(wm));
            }
        }
        if self.time.time == before {
            return Ok(());
        }
        let mut closed = Vec::new();
        for side in 0..2 {
            // Closed: ts + ahead + grace < the other side's time.
            let bound = self.time.time[1 - side].saturating_sub(self.ahead(side)).saturating_sub(self.grace);
            if bound <= self.scanned_below[side] {
                continue;
            }
            // From where the last scan stopped: a record buffered since is
            // not late, so its ts is at or past that bound, and the purged
            // keys before it (tombstones in RocksDB until compaction) are
            // not walked again.
            let from = key_of(INDEX, &[&enc(self.scanned_below[side])]);
            self.scanned_below[side] = bound;
            let due = self.range(ctx, side, from, key_of(INDEX, &[&enc(bound)]))?;
            for (index_key, kb) in due {
                if index_key.len() != 17 {
                    return Err(self.corrupt("an index key is not 17 bytes"));
                }
                let (ts, seq) = (&index_key[1..9], &index_key[9..]);
                let data_key = key_of(DATA, &[&kb, ts, seq]);
                let value =
                    if self.unmatched(side) { ctx.task.raw_get(self.store_index[side], &data_key)? } else { None };
                ctx.task.raw_delete(self.store_index[side], data_key)?;
                ctx.task.raw_delete(self.store_index[side], index_key.clone())?;
                closed.push(Closed { ts: dec(ts), side, seq: seq.to_vec(), kb, value });
            }
        }
        closed.sort_by(|a, b| (a.ts, a.side, &a.seq).cmp(&(b.ts, b.side, &b.seq)));
        for c in closed {
            let Some(value) = c.value else { continue };
            let Some((&matched, vb)) = value.split_first() else {
                return Err(self.corrupt("a buffered record has no matched flag"));
            };
            if matched != 0 {
                continue;
            }
            let key = self.key_serde.deserialize(Some(&c.kb)).map_err(|e| self.serde_error("key", e))?;
            let out = if c.side == 0 {
                let v = self.this_serde.deserialize(Some(vb)).map_err(|e| self.serde_error("value", e))?;
                (self.joiner)(&key, Some(&v), None)
            } else {
                let v = self.other_serde.deserialize(Some(vb)).map_err(|e| self.serde_error("value", e))?;
                (self.joiner)(&key, None, Some(&v))
            };
            if let Some(out) = out {
                ctx.forward(Record::new(key, JoinOut::Joined(out), c.ts))?;
            }
        }
        Ok(())
    }
}

impl<K: Data, V: Data, V2: Data, VR: Data> Processor<K, Side<V, V2>, K, JoinOut<V, V2, VR>>
    for JoinProcessor<K, V, V2, VR>
{
    fn init(&mut self, ctx: &mut Ctx<'_, K, V, V2, VR>) -> Result<(), ProcessError> {
        for side in 0..2 {
            // The typed view checks that the node declared the store.
            ctx.store::<Vec<u8>, Vec<u8>>(&self.stores[side])?;
            self.store_index[side] =
                ctx.task.store_index(&self.stores[side]).ok_or_else(|| ProcessError::Topology {
                    node: self.node.clone(),
                    reason: format!("store `{}` is not part of this task", self.stores[side]),
                })?;
        }
        self.time = match ctx.task.raw_get(self.store_index[0], META)? {
            Some(b) => Times::decode(&b).ok_or_else(|| self.corrupt("the join's clocks are not 40 bytes"))?,
            None => Times::default(),
        };
        self.persisted = self.time;
        self.scanned_below = [i64::MIN; 2];
        let restored = self.time.time[0].max(self.time.time[1]);
        if restored != i64::MIN {
            ctx.task.time.restore(restored);
        }
        Ok(())
    }

    fn process(&mut self, r: Record<K, Side<V, V2>>, ctx: &mut Ctx<'_, K, V, V2, VR>) -> Result<(), ProcessError> {
        let kb = self.encode(self.key_serde.as_ref(), &r.key, "key")?;
        let Record { key, value, timestamp: ts, headers } = r;
        let side = match value {
            Side::This(_) => 0,
            Side::Other(_) => 1,
        };
        self.time.seen[side] = self.time.seen[side].max(ts);
        self.advance(ctx)?;
        if ts.saturating_add(self.grace) < self.time.time[side] {
            ctx.task.late_records += 1;
            let out = match value {
                Side::This(v) => JoinOut::LateThis(v),
                Side::Other(v) => JoinOut::LateOther(v),
            };
            return ctx.forward(Record { key, value: out, timestamp: ts, headers });
        }
        // The other side's records of this key within the window.
        let other = 1 - side;
        let from = key_of(DATA, &[&kb, &enc(ts.saturating_sub(self.behind(side)))]);
        let to = key_of(DATA, &[&kb, &enc(ts.saturating_add(self.ahead(side)).saturating_add(1))]);
        let partners: Vec<(Vec<u8>, Vec<u8>)> =
            self.range(ctx, other, from, to)?.into_iter().filter(|(k, _)| k.len() == kb.len() + 17).collect();
        for (data_key, stored) in &partners {
            let Some((&matched, vb)) = stored.split_first() else {
                return Err(self.corrupt("a buffered record has no matched flag"));
            };
            let other_ts = dec(&data_key[kb.len() + 1..]);
            let out = match &value {
                Side::This(v) => {
                    let w = self.other_serde.deserialize(Some(vb)).map_err(|e| self.serde_error("value", e))?;
                    (self.joiner)(&key, Some(v), Some(&w))
                }
                Side::Other(w) => {
                    let v = self.this_serde.deserialize(Some(vb)).map_err(|e| self.serde_error("value", e))?;
                    (self.joiner)(&key, Some(&v), Some(w))
                }
            };
            if matched == 0 && self.unmatched(other) {
                let mut flagged = stored.clone();
                flagged[0] = 1;
                ctx.task.raw_put(self.store_index[other], data_key.clone(), flagged)?;
            }
            if let Some(out) = out {
                let record = Record {
                    key: key.clone(),
                    value: JoinOut::Joined(out),
                    timestamp: ts.max(other_ts),
                    headers: headers.clone(),
                };
                ctx.forward(record)?;
            }
        }
        // The other side's time may be past this record's window already
        // (that side runs ahead): no partner can come, so it is not
        // buffered, and emitted at once if it has none (Kafka Streams does
        // the same for a record whose window ends before stream time).
        if ts.saturating_add(self.ahead(side)).saturating_add(self.grace) < self.time.time[other] {
            if !partners.is_empty() || !self.unmatched(side) {
                return Ok(());
            }
            let out = match &value {
                Side::This(v) => (self.joiner)(&key, Some(v), None),
                Side::Other(w) => (self.joiner)(&key, None, Some(w)),
            };
            return match out {
                Some(out) => ctx.forward(Record { key, value: JoinOut::Joined(out), timestamp: ts, headers }),
                None => Ok(()),
            };
        }
        // Buffer the record for the other side's records to come.
        let seq = self.time.seq.to_be_bytes();
        self.time.seq += 1;
        let mut stored = vec![u8::from(!partners.is_empty())];
        let vb = match &value {
            Side::This(v) => self.encode(self.this_serde.as_ref(), v, "value")?,
            Side::Other(w) => self.encode(self.other_serde.as_ref(), w, "value")?,
        };
        stored.extend_from_slice(&vb);
        ctx.task.raw_put(self.store_index[side], key_of(DATA, &[&kb, &enc(ts), &seq]), stored)?;
        ctx.task.raw_put(self.store_index[side], key_of(INDEX, &[&enc(ts), &seq]), kb)?;
        Ok(())
    }

    fn on_watermark(&mut self, _watermark: i64, ctx: &mut Ctx<'_, K, V, V2, VR>) -> Result<(), ProcessError> {
        self.advance(ctx)
    }

    fn on_commit(&mut self, ctx: &mut Ctx<'_, K, V, V2, VR>) -> Result<(), ProcessError> {
        if self.time != self.persisted {
            ctx.task.raw_put(self.store_index[0], META.to_vec(), self.time.encode())?;
            self.persisted = self.time;
        }
        Ok(())
    }
}
