//! Window operators driven record by record through an in-memory task
//! instance (no Kafka), checked against an oracle that computes the same
//! windows with plain arithmetic from the arrival order.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientConfig;

use crate::record::{Headers, Record};
use crate::runtime::collector::{DeliveryTracker, RecordCollector, ThreadProducer};
use crate::runtime::{StoreSlot, TaskContext, TaskId};
use crate::serde::Serdes;
use crate::state::{InMemoryStore, KeyValueStore, WriteBuffer};
use crate::topology::graph::{Instance, Instantiator};
use crate::topology::{
    changelog_topic, Data, KStream, ProcessError, Processor, ProcessorContext, Timestamps, Topology,
};

use super::{Windowed, Windows};

type Seen<K, V> = Arc<Mutex<Vec<Record<K, V>>>>;

struct Capture<K, V>(Seen<K, V>);

impl<K: Data, V: Data> Processor<K, V, K, V> for Capture<K, V> {
    fn process(&mut self, r: Record<K, V>, ctx: &mut ProcessorContext<'_, K, V>) -> Result<(), ProcessError> {
        self.0.lock().unwrap().push(r.clone());
        ctx.forward(r)
    }
}

fn capture<K: Data + Send, V: Data + Send>(s: &KStream<K, V>) -> Seen<K, V> {
    let seen: Seen<K, V> = Arc::new(Mutex::new(Vec::new()));
    let c = seen.clone();
    let _: KStream<K, V> = s.process(&[], move || Capture(c.clone()));
    seen
}

/// One task of a topology, with in-memory stores that outlive it (so a
/// "restart" builds a new instance over the same committed stores).
struct Task {
    ctx: TaskContext,
    instance: Instance,
    offset: i64,
}

impl Task {
    fn start(topology: &Topology, stores: Vec<Box<dyn KeyValueStore>>) -> Task {
        let sub = &topology.subtopologies[0];
        let slots = sub
            .stores
            .iter()
            .zip(stores)
            .map(|(name, store)| {
                let spec = topology.stores.iter().find(|s| &s.name == name).unwrap();
                StoreSlot {
                    name: name.clone(),
                    store,
                    serdes: spec.serdes.clone(),
                    type_names: spec.type_names.clone(),
                    changelog: changelog_topic(name).resolve("app"),
                }
            })
            .collect();
        let source_ids: Vec<usize> = sub.sources.iter().map(|(n, _)| *n).collect();
        let instance = Instantiator::instantiate(&topology.nodes, "app", &source_ids).unwrap();
        let producer: ThreadProducer = ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("message.timeout.ms", "10")
            .create_with_context(DeliveryTracker::default())
            .unwrap();
        let ctx = TaskContext {
            task_id: TaskId { subtopology: 0, partition: 0 },
            source: None,
            stream_time: i64::MIN,
            time: Default::default(),
            stores: slots,
            buffer: WriteBuffer::new(),
            collector: RecordCollector::new(Arc::new(producer), false),
            schedules: Vec::new(),
            late_records: 0,
            key_buf: Vec::new(),
            value_buf: Vec::new(),
            shuffle: Default::default(),
        };
        let mut task = Task { ctx, instance, offset: 0 };
        for (_, node) in &task.instance.lifecycles {
            node.borrow_mut().init(&mut task.ctx).unwrap();
        }
        task
    }

    fn fresh(topology: &Topology) -> Task {
        let stores = topology.subtopologies[0]
            .stores
            .iter()
            .map(|n| Box::new(InMemoryStore::new(n.clone())) as Box<dyn KeyValueStore>)
            .collect();
        Task::start(topology, stores)
    }

    /// As the runtime's Task::process: the source extracts the timestamp
    /// and moves the watermark; the nodes hear of it.
    fn push(&mut self, key: &str, ts: i64) {
        self.ctx.source =
            Some(crate::record::SourceOffset { topic: Arc::from("in"), partition: 0, offset: self.offset });
        self.offset += 1;
        let before = self.ctx.time.watermark();
        let source = self.instance.sources.get("in").unwrap().clone();
        let value = format!("{{\"ts\":{ts}}}");
        source
            .borrow_mut()
            .process_raw(Some(key.as_bytes()), Some(value.as_bytes()), 0, Headers::new(), None, &mut self.ctx)
            .unwrap();
        let now = self.ctx.time.watermark();
        if now > before {
            for (_, node) in &self.instance.lifecycles {
                node.borrow_mut().on_watermark(now, &mut self.ctx).unwrap();
            }
        }
    }

    /// As a commit: on_commit hooks, then the buffer reaches the stores.
    fn commit(&mut self) {
        for (_, node) in &self.instance.lifecycles {
            node.borrow_mut().on_commit(&mut self.ctx).unwrap();
        }
        for slot in &mut self.ctx.stores {
            let batch = self.ctx.buffer.drain(&slot.name);
            slot.store.apply(&batch, None).unwrap();
        }
    }

    /// Records sent to the late topic (the producer has no broker: they
    /// come back as delivery failures).
    fn late_sent(&self) -> usize {
        let _ = self.ctx.collector.flush(Duration::from_secs(30));
        self.ctx.collector.take_failures().iter().filter(|f| f.topic == "late").count()
    }

    fn into_stores(self) -> Vec<Box<dyn KeyValueStore>> {
        self.ctx.stores.into_iter().map(|s| s.store).collect()
    }
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Ev {
    ts: i64,
}

const GRACE: i64 = 2_000;
const OOO: i64 = 1_000;

/// A topology counting per key in `windows`, event time from the value.
fn counting(windows: Windows, final_only: bool) -> (Topology, Seen<Windowed<String>, i64>) {
    let mut b = Topology::builder();
    let s = b.stream_with_time(
        "in",
        Serdes::string(),
        Serdes::json::<Ev>(),
        Timestamps::from_value(|v: &Ev| Some(v.ts)).out_of_orderness(Duration::from_millis(OOO as u64)),
    );
    let w = s.group_by_key().windowed_by(windows.grace(Duration::from_millis(GRACE as u64)));
    let w = if final_only { w.emit_final() } else { w };
    let w = w.late_records_to("late");
    let out = w.count("counts");
    let seen = capture(&out);
    (b.build().unwrap(), seen)
}

/// The input: 12 keys' worth of records with timestamps mostly rising,
/// some out of order within the out-of-orderness, some far behind (late).
fn input(seed: u64, n: usize) -> Vec<(String, i64)> {
    let mut x = seed;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut t = 1_000_000i64;
    (0..n)
        .map(|_| {
            t += (next() % 700) as i64;
            let r = next() % 100;
            let ts = if r < 70 {
                t
            } else if r < 92 {
                t - (next() % (OOO as u64 + GRACE as u64)) as i64
            } else {
                t - 5_000 - (next() % 20_000) as i64
            };
            // Whole 100 ms steps, so records land exactly on window
            // bounds and close times often.
            (format!("k{}", next() % 12), ts - ts.rem_euclid(100))
        })
        .collect()
}

/// A window the oracle tracks: key, start, end, count.
type Win = (String, i64, i64);

/// Plain-arithmetic windows from the arrival order: the watermark is the
/// largest timestamp so far minus the out-of-orderness; a window closes
/// when the watermark reaches its close time.
struct Oracle {
    open: BTreeMap<Win, (i64, i64)>, // -> (count, close_at)
    closed: BTreeMap<Win, i64>,
    late: usize,
    wm: i64,
    /// On-time records (sliding windows aggregate over them).
    accepted: Vec<(String, i64)>,
}

impl Oracle {
    fn new() -> Self {
        Oracle { open: BTreeMap::new(), closed: BTreeMap::new(), late: 0, wm: i64::MIN, accepted: Vec::new() }
    }

    fn advance(&mut self, ts: i64) {
        self.wm = self.wm.max(ts - OOO);
        let wm = self.wm;
        let due: Vec<Win> = self.open.iter().filter(|(_, (_, c))| *c <= wm).map(|(w, _)| w.clone()).collect();
        for w in due {
            let (n, _) = self.open.remove(&w).unwrap();
            self.closed.insert(w, n);
        }
    }

    fn time(&mut self, input: &[(String, i64)], size: i64, advance: i64) {
        for (k, ts) in input {
            // The watermark moves with the record, before it is placed.
            self.wm = self.wm.max(ts - OOO);
            let mut added = false;
            let mut start = ts.div_euclid(advance) * advance;
            while start + size > *ts {
                let close = start + size + GRACE;
                if close > self.wm {
                    self.open.entry((k.clone(), start, start + size)).or_insert((0, close)).0 += 1;
                    added = true;
                }
                start -= advance;
            }
            if !added {
                self.late += 1;
            }
            self.advance(*ts);
        }
    }

    fn sessions(&mut self, input: &[(String, i64)], gap: i64) {
        for (k, ts) in input {
            self.wm = self.wm.max(ts - OOO);
            if ts + gap + 1 + GRACE <= self.wm {
                self.late += 1;
                self.advance(*ts);
                continue;
            }
            let (mut start, mut end, mut n) = (*ts, *ts, 1);
            let touching: Vec<Win> =
                self.open.keys().filter(|(key, s, e)| key == k && *e >= ts - gap && *s <= ts + gap).cloned().collect();
            for w in touching {
                let (c, _) = self.open.remove(&w).unwrap();
                start = start.min(w.1);
                end = end.max(w.2);
                n += c;
            }
            self.open.insert((k.clone(), start, end), (n, end + gap + 1 + GRACE));
            self.advance(*ts);
        }
    }

    fn sliding(&mut self, input: &[(String, i64)], length: i64) {
        for (k, ts) in input {
            self.wm = self.wm.max(ts - OOO);
            if ts + 1 + GRACE <= self.wm {
                self.late += 1;
                self.advance(*ts);
                continue;
            }
            // Open windows of the key containing ts take it.
            for ((key, s, e), (n, _)) in self.open.iter_mut() {
                if key == k && *s <= *ts && *ts <= *e && *e != *ts {
                    *n += 1;
                }
            }
            let w = (k.clone(), ts - length, *ts);
            if let Some((n, _)) = self.open.get_mut(&w) {
                *n += 1;
            } else {
                // Every earlier on-time record of the key within the window.
                let n = self.accepted.iter().filter(|(key, t)| key == k && *t >= ts - length && *t <= *ts).count()
                    as i64
                    + 1;
                self.open.insert(w, (n, ts + 1 + GRACE));
            }
            self.accepted.push((k.clone(), *ts));
            self.advance(*ts);
        }
    }
}

fn run(
    windows: Windows,
    final_only: bool,
    input: &[(String, i64)],
    restart_at: Option<usize>,
) -> (Vec<Record<Windowed<String>, i64>>, u64, usize) {
    let (topology, seen) = counting(windows, final_only);
    let mut task = Task::fresh(&topology);
    let mut late = 0;
    let mut late_sent = 0;
    for (i, (k, ts)) in input.iter().enumerate() {
        task.push(k, *ts);
        if i % 50 == 49 {
            task.commit();
        }
        if restart_at == Some(i) {
            // Commit, close, start a new instance over the same stores.
            task.commit();
            late += task.ctx.late_records;
            late_sent += task.late_sent();
            let stores = task.into_stores();
            task = Task::start(&topology, stores);
        }
    }
    task.commit();
    late += task.ctx.late_records;
    late_sent += task.late_sent();
    let out = seen.lock().unwrap().clone();
    (out, late, late_sent)
}

fn finals(out: &[Record<Windowed<String>, i64>]) -> BTreeMap<Win, i64> {
    assert!(!out.is_empty());
    let mut m = BTreeMap::new();
    for r in out {
        let w = (r.key.key.clone(), r.key.start, r.key.end);
        assert!(m.insert(w.clone(), r.value).is_none(), "window {w:?} emitted twice");
    }
    m
}

fn latest(out: &[Record<Windowed<String>, i64>]) -> BTreeMap<Win, i64> {
    out.iter().map(|r| ((r.key.key.clone(), r.key.start, r.key.end), r.value)).collect()
}

fn check(kind: &str, windows: Windows, oracle: impl Fn(&mut Oracle, &[(String, i64)])) {
    for seed in [1u64, 7, 42] {
        let input = input(seed, 1_500);
        let mut o = Oracle::new();
        oracle(&mut o, &input);
        assert!(o.late > 0 && !o.closed.is_empty(), "{kind}: the input must have late records and closed windows");
        // emit_final: exactly the closed windows, each once, with a restart
        // in the middle.
        let (out, late, late_sent) = run(windows, true, &input, Some(700));
        let got = finals(&out);
        let diff: Vec<_> = o.closed.iter().filter(|(w, n)| got.get(*w) != Some(*n)).take(5).collect();
        let extra: Vec<_> = got.iter().filter(|(w, _)| !o.closed.contains_key(*w)).take(5).collect();
        assert!(diff.is_empty() && extra.is_empty(), "{kind} seed {seed}: emit_final differs: {diff:?} {extra:?}");
        assert_eq!(late as usize, o.late, "{kind} seed {seed}: late records counted");
        assert_eq!(late_sent, o.late, "{kind} seed {seed}: late records written to the late topic");
        // emit_on_update: the latest value of every window, open or closed.
        let (out, _, _) = run(windows, false, &input, None);
        let mut all = o.closed.clone();
        all.extend(o.open.iter().map(|(w, (n, _))| (w.clone(), *n)));
        let got = latest(&out);
        // Sessions emitted before a later record merged them into a bigger
        // one stay in the output (superseded, not retracted).
        let merged_away = |w: &Win| kind == "session" && all.keys().any(|o| o.0 == w.0 && o.1 <= w.1 && w.2 <= o.2);
        let wrong: Vec<_> = all.iter().filter(|(w, n)| got.get(*w) != Some(*n)).take(5).collect();
        let extra: Vec<_> = got.keys().filter(|w| !all.contains_key(*w) && !merged_away(w)).take(5).collect();
        assert!(
            wrong.is_empty() && extra.is_empty(),
            "{kind} seed {seed}: emit_on_update differs: {wrong:?} {extra:?}"
        );
    }
}

#[test]
fn tumbling_windows_equal_the_oracle() {
    check("tumbling", Windows::tumbling(Duration::from_secs(10)), |o, i| o.time(i, 10_000, 10_000));
}

#[test]
fn hopping_windows_equal_the_oracle() {
    check("hopping", Windows::hopping(Duration::from_secs(10), Duration::from_secs(3)), |o, i| {
        o.time(i, 10_000, 3_000)
    });
}

#[test]
fn session_windows_equal_the_oracle_including_merges() {
    check("session", Windows::session(Duration::from_millis(1_500)), |o, i| o.sessions(i, 1_500));
}

#[test]
fn sliding_windows_equal_the_oracle() {
    check("sliding", Windows::sliding(Duration::from_secs(5)), |o, i| o.sliding(i, 5_000));
}

#[test]
fn count_windows_emit_every_n_records_per_key() {
    let input = input(3, 500);
    let (out, late, _) = run(Windows::count(4), true, &input, Some(250));
    assert_eq!(late, 0);
    let mut per_key: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (k, ts) in &input {
        per_key.entry(k.clone()).or_default().push(*ts);
    }
    let mut expected = BTreeMap::new();
    for (k, ts) in per_key {
        for chunk in ts.chunks(4).filter(|c| c.len() == 4) {
            expected.insert((k.clone(), chunk[0], chunk[3]), 4);
        }
    }
    assert_eq!(finals(&out), expected);
}

#[test]
fn a_record_bridging_two_sessions_merges_them_and_sessions_close_a_gap_after_their_last_record() {
    let mut b = Topology::builder();
    // A watermark 25 minutes behind: alice's 30, arriving after her 50,
    // bridges her sessions 0..10 and 50..50.
    let time = Timestamps::from_value(|v: &Ev| Some(v.ts)).out_of_orderness(Duration::from_secs(25 * 60));
    let s = b.stream_with_time("in", Serdes::string(), Serdes::json::<Ev>(), time);
    let out = s.group_by_key().windowed_by(Windows::session(Duration::from_secs(1800))).emit_final().count("sessions");
    let seen = capture(&out);
    let topology = b.build().unwrap();
    let mut task = Task::fresh(&topology);
    let (t0, min) = (1_700_000_000_000i64, 60_000i64);
    for (k, t) in [("alice", 0), ("alice", 10), ("bob", 5), ("alice", 50), ("alice", 30), ("bob", 100), ("carol", 200)]
    {
        task.push(k, t0 + t * min);
    }
    task.commit();
    let got: Vec<(String, i64, i64, i64)> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| (r.key.key.clone(), (r.key.start - t0) / min, (r.key.end - t0) / min, r.value))
        .collect();
    assert_eq!(got, vec![("bob".into(), 5, 5, 1), ("alice".into(), 0, 50, 4), ("bob".into(), 100, 100, 1)]);
}
