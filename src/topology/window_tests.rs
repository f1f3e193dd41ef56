//! Window operators driven record by record through the test driver (the
//! runtime's task code over in-memory topics), checked against an oracle
//! that computes the same windows with plain arithmetic from the arrival
//! order, including records late for some of their windows that land in
//! open ones (hopping and sliding windows, open sessions) and tombstones
//! for merged sessions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use crate::record::Record;
use crate::serde::Serdes;
use crate::testing::{TestInputTopic, TestOutputTopic, TopologyTestDriver};
use crate::topology::{KStream, StoreKind, Timestamps, Topology};

use super::{Windowed, Windows};

const INPUT: &str = "in";
const OUTPUT: &str = "counts-out";
const LATE: &str = "late";

/// A driver for a topology reading `INPUT` and writing its windowed counts
/// to `OUTPUT`, with its input and output topics.
struct Run {
    driver: TopologyTestDriver,
    input: TestInputTopic<String, Ev>,
    output: TestOutputTopic<Windowed<String>, Option<i64>>,
}

impl Run {
    /// Commits only when the test says so (`manual`), or after every record.
    fn new(topology: Topology, manual: bool) -> Run {
        let driver = TopologyTestDriver::new(topology).unwrap();
        let driver = if manual { driver.manual_commits() } else { driver };
        let input = driver.input_topic(INPUT, Serdes::string(), Serdes::json::<Ev>());
        let output = driver.output_topic(OUTPUT, Serdes::windowed(Serdes::string()), Serdes::optional(Serdes::i64()));
        Run { driver, input, output }
    }

    /// One record, its event time in the value (the record's own
    /// timestamp is not used).
    fn push(&mut self, key: &str, ts: i64) {
        self.driver.pipe(&self.input, key.to_string(), Ev { ts }, 0).unwrap();
    }

    /// The results written since the last call.
    fn take(&mut self) -> Vec<Out> {
        self.driver.read(&self.output).unwrap()
    }
}

/// Writes a windowed result stream to `OUTPUT`.
fn sink(out: &KStream<Windowed<String>, Option<i64>>) {
    out.to(OUTPUT, Serdes::windowed(Serdes::string()), Serdes::optional(Serdes::i64()));
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Ev {
    ts: i64,
}

const GRACE: i64 = 2_000;
const OOO: i64 = 1_000;

#[path = "window_tests/oracle.rs"]
mod oracle;
pub(crate) use oracle::xorshift;
use oracle::{Oracle, Win};

/// A topology counting per key in `windows`, event time from the value,
/// with tombstones for merged sessions.
fn counting(windows: Windows, final_only: bool) -> Topology {
    let mut b = Topology::builder();
    let s = b.stream_with_time(
        INPUT,
        Serdes::string(),
        Serdes::json::<Ev>(),
        Timestamps::from_value(|v: &Ev| Some(v.ts)).out_of_orderness(Duration::from_millis(OOO as u64)),
    );
    let w = s.group_by_key().windowed_by(windows.grace(Duration::from_millis(GRACE as u64)));
    let w = if final_only { w.emit_final() } else { w };
    let w = w.late_records_to(LATE).with_tombstones();
    sink(&w.count("counts"));
    b.build().unwrap()
}

/// The input: 12 keys' worth of records with timestamps mostly rising,
/// some out of order within the out-of-orderness, some far behind (late).
fn input(seed: u64, n: usize) -> Vec<(String, i64)> {
    let mut next = xorshift(seed);
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

/// Issue 12's shape: per-key records a few seconds apart, so sessions with
/// a 20 s gap run for tens of minutes, a two-minute pause now and then, and
/// 2% of the records 10 to 30 minutes behind.
fn long_sessions(seed: u64, n: usize) -> Vec<(String, i64)> {
    let mut next = xorshift(seed);
    let mut t = 1_000_000_000i64;
    let mut paused_until = [i64::MIN; 4];
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        t += (next() % 1_500) as i64;
        let k = (next() % 4) as usize;
        if t < paused_until[k] {
            continue;
        }
        if next() % 1_000 < 3 {
            paused_until[k] = t + 120_000;
        }
        let ts = if next() % 100 < 2 { t - 600_000 - (next() % 1_200_000) as i64 } else { t };
        out.push((format!("k{k}"), ts));
    }
    out
}

type Out = Record<Windowed<String>, Option<i64>>;

fn run(
    windows: Windows,
    final_only: bool,
    input: &[(String, i64)],
    restart_at: Option<usize>,
) -> (Vec<Out>, u64, usize) {
    let mut run = Run::new(counting(windows, final_only), true);
    for (i, (k, ts)) in input.iter().enumerate() {
        run.push(k, *ts);
        if i % 50 == 49 {
            run.driver.commit().unwrap();
        }
        if restart_at == Some(i) {
            // Commit, then a restart on the same stores.
            run.driver.commit().unwrap();
            run.driver.restart().unwrap();
        }
    }
    run.driver.commit().unwrap();
    let late_sent = run.driver.read_raw(LATE).len();
    (run.take(), run.driver.late_records(), late_sent)
}

fn window(r: &Out) -> Win {
    (r.key.key.clone(), r.key.start, r.key.end)
}

fn finals(out: &[Out]) -> BTreeMap<Win, i64> {
    assert!(!out.is_empty());
    let mut m = BTreeMap::new();
    for r in out {
        let w = window(r);
        let n = r.value.unwrap_or_else(|| panic!("emit_final emitted a tombstone for {w:?}"));
        assert!(m.insert(w.clone(), n).is_none(), "window {w:?} emitted twice");
    }
    m
}

/// The output read as a table: the latest value per window, a tombstone
/// deleting it. A tombstone must follow a value of its window (only an
/// emitted session is retracted) and come at most once.
fn table(out: &[Out]) -> BTreeMap<Win, i64> {
    let mut m = BTreeMap::new();
    let mut retracted = std::collections::BTreeSet::new();
    for r in out {
        let w = window(r);
        match r.value {
            Some(n) => {
                assert!(!retracted.contains(&w), "window {w:?} updated after its tombstone");
                m.insert(w, n);
            }
            None => {
                assert!(m.remove(&w).is_some(), "tombstone for {w:?}, which was not emitted");
                retracted.insert(w);
            }
        }
    }
    m
}

fn check(kind: &str, windows: Windows, oracle: impl Fn(&mut Oracle, &[(String, i64)])) {
    let inputs = [1u64, 7, 42].map(|seed| (seed, input(seed, 1_500)));
    check_on(kind, windows, &inputs, oracle);
}

fn check_on(
    kind: &str,
    windows: Windows,
    inputs: &[(u64, Vec<(String, i64)>)],
    oracle: impl Fn(&mut Oracle, &[(String, i64)]),
) {
    let mut rescued = 0;
    for (seed, input) in inputs {
        let mut o = Oracle::new(OOO, GRACE);
        oracle(&mut o, input);
        assert!(
            !o.late.is_empty() && !o.closed.is_empty(),
            "{kind}: the input must have late records and closed windows"
        );
        rescued += o.rescued;
        // emit_final: exactly the closed windows, each once, with a restart
        // in the middle.
        let (out, late, late_sent) = run(windows, true, input, Some(input.len() / 2));
        let got = finals(&out);
        let diff: Vec<_> = o.closed.iter().filter(|(w, n)| got.get(*w) != Some(*n)).take(5).collect();
        let extra: Vec<_> = got.iter().filter(|(w, _)| !o.closed.contains_key(*w)).take(5).collect();
        assert!(diff.is_empty() && extra.is_empty(), "{kind} seed {seed}: emit_final differs: {diff:?} {extra:?}");
        assert_eq!(late as usize, o.late.len(), "{kind} seed {seed}: late records counted");
        assert_eq!(late_sent, o.late.len(), "{kind} seed {seed}: late records written to the late topic");
        // emit_on_update read as a table: the latest value of every window,
        // open or closed, and no session merged into another.
        let (out, _, _) = run(windows, false, input, None);
        let mut all = o.closed.clone();
        all.extend(o.open.iter().map(|(w, (n, _))| (w.clone(), *n)));
        let got = table(&out);
        let wrong: Vec<_> = all.iter().filter(|(w, n)| got.get(*w) != Some(*n)).take(5).collect();
        let extra: Vec<_> = got.keys().filter(|w| !all.contains_key(*w)).take(5).collect();
        assert!(
            wrong.is_empty() && extra.is_empty(),
            "{kind} seed {seed}: emit_on_update differs: {wrong:?} {extra:?}"
        );
        if kind == "session" {
            assert!(out.iter().any(|r| r.value.is_none()), "{kind} seed {seed}: no session was retracted");
        }
    }
    if kind != "tumbling" {
        assert!(rescued > 0, "{kind}: no record late for one of its windows lands in an open one");
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
fn long_sessions_take_late_records_that_land_in_them() {
    let inputs = [3u64, 9].map(|seed| (seed, long_sessions(seed, 6_000)));
    check_on("session", Windows::session(Duration::from_secs(20)), &inputs, |o, i| o.sessions(i, 20_000));
}

#[test]
fn sliding_windows_equal_the_kafka_streams_oracle() {
    check("sliding", Windows::sliding(Duration::from_secs(5)), |o, i| o.sliding(i, 5_000));
}

/// Under emit_on_update with a commit after every record, each record's
/// output is exactly the windows it created or changed, as Kafka Streams
/// forwards them (without its cache), with their counts.
#[test]
fn sliding_windows_update_record_for_record_as_the_kafka_streams_oracle() {
    for seed in [5u64, 13] {
        let input = input(seed, 800);
        // The driver commits after every record; in memory, the stores
        // skip a RocksDB flush per commit.
        let mut topology = counting(Windows::sliding(Duration::from_secs(5)), false);
        for spec in &mut topology.stores {
            spec.kind = StoreKind::InMemory;
        }
        let mut run = Run::new(topology, false);
        let mut o = Oracle::new(OOO, GRACE);
        for (i, (k, ts)) in input.iter().enumerate() {
            let before = o.open.clone();
            o.sliding_step(k, *ts, 5_000);
            let mut want: BTreeMap<Win, i64> = BTreeMap::new();
            for (w, (n, _)) in &o.open {
                if before.get(w).map(|(b, _)| b) != Some(n) {
                    want.insert(w.clone(), *n);
                }
            }
            o.advance(*ts);
            run.push(k, *ts);
            let got: BTreeMap<Win, i64> = run.take().iter().map(|r| (window(r), r.value.unwrap())).collect();
            assert_eq!(got, want, "seed {seed}: record {i} ({k} at {ts})");
        }
    }
}

/// The example in Kafka Streams' `SlidingWindows` documentation: a time
/// difference of 5000 ms and records at 8000, 9200 and 12400 give five
/// windows.
#[test]
fn sliding_windows_give_the_five_windows_of_the_kafka_streams_documentation() {
    let mut run = Run::new(counting(Windows::sliding(Duration::from_millis(5_000)), true), true);
    for (k, ts) in [("A", 8_000), ("A", 9_200), ("A", 12_400), ("B", 100_000)] {
        run.push(k, ts);
    }
    run.driver.commit().unwrap();
    let got = finals(&run.take());
    let want: BTreeMap<Win, i64> =
        [(3_000, 8_000, 1), (4_200, 9_200, 2), (7_400, 12_400, 3), (8_001, 13_001, 2), (9_201, 14_201, 1)]
            .into_iter()
            .map(|(s, e, n)| (("A".to_string(), s, e), n))
            .collect();
    assert_eq!(got, want);
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
    let s = b.stream_with_time(INPUT, Serdes::string(), Serdes::json::<Ev>(), time);
    let out = s.group_by_key().windowed_by(Windows::session(Duration::from_secs(1800))).emit_final().count("sessions");
    out.to(OUTPUT, Serdes::windowed(Serdes::string()), Serdes::i64());
    let mut driver = TopologyTestDriver::new(b.build().unwrap()).unwrap().manual_commits();
    let input = driver.input_topic(INPUT, Serdes::string(), Serdes::json::<Ev>());
    let output = driver.output_topic(OUTPUT, Serdes::windowed(Serdes::string()), Serdes::i64());
    let (t0, min) = (1_700_000_000_000i64, 60_000i64);
    for (k, t) in [("alice", 0), ("alice", 10), ("bob", 5), ("alice", 50), ("alice", 30), ("bob", 100), ("carol", 200)]
    {
        driver.pipe(&input, k.to_string(), Ev { ts: t0 + t * min }, 0).unwrap();
    }
    driver.commit().unwrap();
    let got: Vec<(String, i64, i64, i64)> = driver
        .read(&output)
        .unwrap()
        .iter()
        .map(|r| (r.key.key.clone(), (r.key.start - t0) / min, (r.key.end - t0) / min, r.value))
        .collect();
    assert_eq!(got, vec![("bob".into(), 5, 5, 1), ("alice".into(), 0, 50, 4), ("bob".into(), 100, 100, 1)]);
}
