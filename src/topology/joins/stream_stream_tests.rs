//! The stream-stream join driven record by record through the test driver,
//! checked against an oracle written from Kafka Streams' join semantics
//! (`KStreamKStreamJoin`): every pair of records of a key with the other
//! side's timestamp in `[t - before, t + after]`, each once, stamped with
//! the later timestamp; for left and outer joins every record with no
//! partner once, with `None`, stamped with its own timestamp. The oracle
//! decides which records are late by replaying rivulet's time rule (a
//! record is late when it is more than the grace behind its side's time:
//! the largest timestamp the side delivered, held back by the task's
//! watermark, restored at a restart) and computes the results from the
//! accepted records alone, with plain loops.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use crate::serde::Serdes;
use crate::testing::{TestInputTopic, TestOutputTopic, TopologyTestDriver};
use crate::topology::windows::tests::xorshift;
use crate::topology::{JoinWindows, StreamJoinKind, Topology};

const LEFT: &str = "left";
const RIGHT: &str = "right";
const OUT: &str = "joined";
const LATE_LEFT: &str = "late-left";
const LATE_RIGHT: &str = "late-right";
const BEFORE: i64 = 3_000;
const AFTER: i64 = 1_000;
const GRACE: i64 = 500;

/// A result: the left record's id, the right record's id.
type Pair = (Option<u64>, Option<u64>);

fn windows() -> JoinWindows {
    JoinWindows::of(Duration::from_millis(BEFORE as u64), Duration::from_millis(AFTER as u64))
        .grace(Duration::from_millis(GRACE as u64))
        .late_records_to(LATE_LEFT, LATE_RIGHT)
}

fn topology(kind: StreamJoinKind) -> Topology {
    let mut b = Topology::builder();
    let l = b.stream(LEFT, Serdes::string(), Serdes::u64());
    let r = b.stream(RIGHT, Serdes::string(), Serdes::u64());
    let out = match kind {
        StreamJoinKind::Inner => l.join_stream(&r, "j", windows(), |_, a, b| (Some(*a), Some(*b))),
        StreamJoinKind::Left => l.left_join_stream(&r, "j", windows(), |_, a, b| (Some(*a), b.copied())),
        StreamJoinKind::Outer => l.outer_join_stream(&r, "j", windows(), |_, a, b| (a.copied(), b.copied())),
    };
    out.to(OUT, Serdes::string(), Serdes::json::<Pair>());
    b.build().unwrap()
}

/// One input record: side (0 left, 1 right), key, timestamp, id.
#[derive(Debug, Clone)]
struct In {
    side: usize,
    key: String,
    ts: i64,
    id: u64,
}

/// Both sides interleaved, sometimes one side running seconds ahead of the
/// other (as when one topic's backlog is read first), records out of order
/// within the grace and a few far behind (late).
fn input(seed: u64, n: usize) -> Vec<In> {
    let mut next = xorshift(seed);
    let mut t = [1_000_000i64; 2];
    let mut ahead = 0usize;
    (0..n as u64)
        .map(|id| {
            if next().is_multiple_of(40) {
                ahead = (next() % 3) as usize; // 0: in step, 1: left ahead, 2: right ahead
            }
            let side =
                if ahead == 0 { (next() % 2) as usize } else { usize::from(!next().is_multiple_of(4)) ^ (ahead - 1) };
            t[side] += (next() % 400) as i64;
            let r = next() % 100;
            let ts = if r < 75 {
                t[side]
            } else if r < 93 {
                t[side] - (next() % (GRACE as u64 + 1_500)) as i64
            } else {
                t[side] - 4_000 - (next() % 10_000) as i64
            };
            // Whole 100 ms steps, so records land on window bounds often.
            In { side, key: format!("k{}", next() % 6), ts: ts - ts.rem_euclid(100), id }
        })
        .collect()
}

/// rivulet's clocks for the join, as the oracle replays them.
#[derive(Debug, Clone, Default)]
struct Clock {
    /// Per side: the largest timestamp delivered, and the side's time
    /// (persisted at commits).
    seen: [Option<i64>; 2],
    time: [Option<i64>; 2],
    /// The task's per-topic times and watermark (not persisted).
    topic: [Option<i64>; 2],
    watermark: Option<i64>,
}

impl Clock {
    /// A record arrives: its side's time after it.
    fn observe(&mut self, side: usize, ts: i64) -> Option<i64> {
        self.topic[side] = Some(self.topic[side].map_or(ts, |t| t.max(ts)));
        let seen = self.topic.iter().flatten().copied().min();
        self.watermark = self.watermark.max(seen);
        self.seen[side] = Some(self.seen[side].map_or(ts, |t| t.max(ts)));
        for s in 0..2 {
            if let (Some(seen), Some(wm)) = (self.seen[s], self.watermark) {
                self.time[s] = self.time[s].max(Some(seen.min(wm)));
            }
        }
        self.time[side]
    }

    /// A restart: the task's watermark starts again from the larger of
    /// the sides' times.
    fn restart(&mut self) {
        self.topic = [None, None];
        self.watermark = self.time[0].max(self.time[1]);
    }
}

/// Which records are accepted (not late), replaying the arrival order with
/// commits every `commit_every` records and a restart (without a commit
/// first) after record `restart_after`: the records since the last commit
/// are processed again from the committed clock.
fn accepted(input: &[In], commit_every: usize, restart_after: usize) -> Vec<bool> {
    let mut ok = vec![false; input.len()];
    let mut clock = Clock::default();
    let mut process = |clock: &mut Clock, i: usize| {
        let r = &input[i];
        let time = clock.observe(r.side, r.ts);
        ok[i] = time.is_none_or(|t| r.ts + GRACE >= t);
    };
    let mut committed = (Clock::default(), 0usize);
    for i in 0..=restart_after {
        process(&mut clock, i);
        if (i + 1) % commit_every == 0 {
            committed = (clock.clone(), i + 1);
        }
    }
    // The driver reads the uncommitted records again topic by topic, in
    // name order: the left ones, then the right ones.
    clock = committed.0;
    clock.restart();
    let mut replay: Vec<usize> = (committed.1..=restart_after).collect();
    replay.sort_by_key(|&i| input[i].side);
    for i in replay.into_iter().chain(restart_after + 1..input.len()) {
        process(&mut clock, i);
    }
    ok
}

/// The join's results over the accepted records, by Kafka Streams' join
/// semantics: (key, timestamp, left id, right id), sorted.
fn expected(input: &[In], ok: &[bool], kind: StreamJoinKind) -> Vec<(String, i64, Pair)> {
    let recs: Vec<&In> = input.iter().zip(ok).filter(|(_, ok)| **ok).map(|(r, _)| r).collect();
    let mut out = Vec::new();
    let mut matched = BTreeMap::new();
    for l in recs.iter().filter(|r| r.side == 0) {
        for r in recs.iter().filter(|r| r.side == 1 && r.key == l.key) {
            if l.ts - BEFORE <= r.ts && r.ts <= l.ts + AFTER {
                out.push((l.key.clone(), l.ts.max(r.ts), (Some(l.id), Some(r.id))));
                matched.insert(l.id, ());
                matched.insert(r.id, ());
            }
        }
    }
    for x in &recs {
        let emit = match kind {
            StreamJoinKind::Inner => false,
            StreamJoinKind::Left => x.side == 0,
            StreamJoinKind::Outer => true,
        };
        if emit && !matched.contains_key(&x.id) {
            let pair = if x.side == 0 { (Some(x.id), None) } else { (None, Some(x.id)) };
            out.push((x.key.clone(), x.ts, pair));
        }
    }
    out.sort();
    out
}

/// Runs the join over `input`, then a record far ahead on each side (keys
/// of their own, never joined) so that every window of the input closes.
/// The restart loses the local state when `fresh` (the stores come back
/// from their whole changelogs).
fn run(
    kind: StreamJoinKind,
    input: &[In],
    commit_every: usize,
    restart_after: usize,
    fresh: bool,
) -> (Vec<(String, i64, Pair)>, u64, usize) {
    let mut driver = TopologyTestDriver::new(topology(kind)).unwrap().manual_commits();
    let topics = [
        driver.input_topic(LEFT, Serdes::string(), Serdes::u64()),
        driver.input_topic(RIGHT, Serdes::string(), Serdes::u64()),
    ];
    let out = driver.output_topic(OUT, Serdes::string(), Serdes::json::<Pair>());
    for (i, r) in input.iter().enumerate() {
        driver.pipe(&topics[r.side], r.key.clone(), r.id, r.ts).unwrap();
        if (i + 1) % commit_every == 0 {
            driver.commit().unwrap();
        }
        if i == restart_after && fresh {
            driver.restart_without_local_state().unwrap();
        } else if i == restart_after {
            driver.restart().unwrap();
        }
    }
    let end = input.iter().map(|r| r.ts).max().unwrap() + 100_000;
    driver.pipe(&topics[0], "flush-left".to_string(), u64::MAX, end).unwrap();
    driver.pipe(&topics[1], "flush-right".to_string(), u64::MAX, end).unwrap();
    driver.commit().unwrap();
    let mut got: Vec<(String, i64, Pair)> =
        driver.read(&out).unwrap().into_iter().map(|r| (r.key, r.timestamp, r.value)).collect();
    got.sort();
    let late_sent = driver.read_raw(LATE_LEFT).len() + driver.read_raw(LATE_RIGHT).len();
    (got, driver.late_records(), late_sent)
}

fn check(kind: StreamJoinKind) {
    for seed in [3u64, 11, 29] {
        let input = input(seed, 1_200);
        // Seed 11 restarts right after a commit: nothing to replay, the
        // sides' times come from the store alone.
        let (commit_every, restart_after) = (37, if seed == 11 { 17 * 37 - 1 } else { 611 });
        let ok = accepted(&input, commit_every, restart_after);
        let late = ok.iter().filter(|ok| !**ok).count();
        let want = expected(&input, &ok, kind);
        assert!(late > 10, "{kind:?} seed {seed}: the input must have late records ({late})");
        assert!(want.iter().any(|(_, _, (l, r))| l.is_some() && r.is_some()), "{kind:?}: no pair joined");
        let (got, counted, sent) = run(kind, &input, commit_every, restart_after, seed == 3);
        let missing: Vec<_> = want.iter().filter(|w| !got.contains(w)).take(5).collect();
        let extra: Vec<_> = got.iter().filter(|g| !want.contains(g)).take(5).collect();
        assert!(
            missing.is_empty() && extra.is_empty() && got.len() == want.len(),
            "{kind:?} seed {seed}: {} results, {} expected; missing {missing:?}, extra {extra:?}",
            got.len(),
            want.len()
        );
        // Late records of the replayed stretch count twice (the counter is
        // not transactional); the late topics are written once.
        assert!(counted as usize >= late, "{kind:?} seed {seed}: late records counted {counted}, {late} late");
        assert_eq!(sent, late, "{kind:?} seed {seed}: late records written to the late topics");
    }
}

#[test]
fn inner_join_matches_the_oracle_with_late_records_and_a_restart() {
    check(StreamJoinKind::Inner);
}

#[test]
fn left_join_matches_the_oracle_with_late_records_and_a_restart() {
    check(StreamJoinKind::Left);
}

#[test]
fn outer_join_matches_the_oracle_with_late_records_and_a_restart() {
    check(StreamJoinKind::Outer);
}

type Input = TestInputTopic<String, u64>;

/// A driver for the join of `kind`, auto-committing, with its topics.
fn driven(kind: StreamJoinKind) -> (TopologyTestDriver, Input, Input, TestOutputTopic<String, Pair>) {
    let driver = TopologyTestDriver::new(topology(kind)).unwrap();
    let l = driver.input_topic(LEFT, Serdes::string(), Serdes::u64());
    let r = driver.input_topic(RIGHT, Serdes::string(), Serdes::u64());
    let out = driver.output_topic(OUT, Serdes::string(), Serdes::json::<Pair>());
    (driver, l, r, out)
}

/// Kafka Streams 3.1+: a left record with no partner yet is not emitted
/// with `None` until its window closes, and never when a partner comes in
/// time.
#[test]
fn left_join_emits_the_unmatched_only_when_the_window_closes() {
    let (mut driver, l, r, out) = driven(StreamJoinKind::Left);
    driver.pipe(&r, "other".to_string(), 100, 10_000).unwrap();
    driver.pipe(&l, "a".to_string(), 1, 10_000).unwrap();
    driver.pipe(&l, "b".to_string(), 2, 10_000).unwrap();
    assert!(driver.read(&out).unwrap().is_empty(), "nothing is emitted while the windows are open");
    // A partner for a within `after`: joined, at the later timestamp.
    driver.pipe(&r, "a".to_string(), 3, 10_900).unwrap();
    let got: Vec<_> = driver.read(&out).unwrap().into_iter().map(|r| (r.key, r.timestamp, r.value)).collect();
    assert_eq!(got, vec![("a".to_string(), 10_900, (Some(1), Some(3)))]);
    // Time 11_500 = 10_000 + after + grace: still open (closes strictly after).
    driver.pipe(&l, "c".to_string(), 4, 11_500).unwrap();
    driver.pipe(&r, "other".to_string(), 101, 11_500).unwrap();
    assert!(driver.read(&out).unwrap().is_empty());
    driver.pipe(&r, "other".to_string(), 102, 11_501).unwrap();
    driver.pipe(&l, "d".to_string(), 5, 11_501).unwrap();
    let got: Vec<_> = driver.read(&out).unwrap().into_iter().map(|r| (r.key, r.timestamp, r.value)).collect();
    assert_eq!(got, vec![("b".to_string(), 10_000, (Some(2), None))], "b closes, a was joined");
}

/// Each side is judged against its own time, so a backlog of one side read
/// first does not make the other side late.
#[test]
fn one_side_running_ahead_does_not_make_the_other_late() {
    let (mut driver, l, r, out) = driven(StreamJoinKind::Inner);
    for i in 0..50u64 {
        driver.pipe(&r, "k".to_string(), i, 1_000 * i as i64).unwrap();
    }
    driver.pipe(&l, "k".to_string(), 1_000, 10_500).unwrap();
    let got: Vec<_> = driver.read(&out).unwrap().into_iter().map(|r| r.value).collect();
    // Right records in [10_500 - before, 10_500 + after]: 8 s to 11 s.
    assert_eq!(got, (8..=11).map(|i| (Some(1_000), Some(i))).collect::<Vec<_>>());
    assert_eq!(driver.late_records(), 0);
}

#[test]
fn the_stores_changelogs_and_repartition_topics_are_described_and_a_rekeyed_side_joins() {
    let mut b = Topology::builder();
    let l = b.stream(LEFT, Serdes::string(), Serdes::u64());
    let r = b.stream(RIGHT, Serdes::u64(), Serdes::u64());
    let rekeyed = r.select_key(|k, _| format!("k{k}")).with_serdes(Serdes::string(), Serdes::u64());
    l.outer_join_stream(&rekeyed, "j", windows(), |_, a, b| (a.copied(), b.copied())).to(
        OUT,
        Serdes::string(),
        Serdes::json::<Pair>(),
    );
    let t = b.build().unwrap();
    let d = t.describe();
    for s in ["j-this (rocksdb", "j-this-changelog", "j-other (rocksdb", "j-other-changelog"] {
        assert!(d.contains(s), "{s} missing from\n{d}");
    }
    assert!(d.contains("j-other-repartition") && !d.contains("j-this-repartition"), "{d}");
    assert!(d.contains("STREAM_JOIN(outer, before 3000 ms, after 1000 ms, grace 500 ms)"), "{d}");
    // The source of `left` and the repartitioned right side meet in one sub-topology.
    assert_eq!(t.subtopologies.len(), 2, "{d}");
    // And the re-keyed records meet their partners.
    let mut driver = TopologyTestDriver::new(t).unwrap();
    let l = driver.input_topic(LEFT, Serdes::string(), Serdes::u64());
    let r = driver.input_topic(RIGHT, Serdes::u64(), Serdes::u64());
    let out = driver.output_topic(OUT, Serdes::string(), Serdes::json::<Pair>());
    driver.pipe(&l, "k7".to_string(), 1, 10_000).unwrap();
    driver.pipe(&r, 7, 2, 10_500).unwrap();
    driver.pipe(&r, 8, 3, 10_500).unwrap();
    let got: Vec<_> = driver.read(&out).unwrap().into_iter().map(|r| (r.key, r.timestamp, r.value)).collect();
    assert_eq!(got, vec![("k7".to_string(), 10_500, (Some(1), Some(2)))]);
}

#[test]
fn a_stream_join_needs_the_serdes_of_both_streams() {
    let mut b = Topology::builder();
    let l = b.stream(LEFT, Serdes::string(), Serdes::u64());
    let r = b.stream(RIGHT, Serdes::string(), Serdes::u64()).map_values(|v| v.to_string());
    l.join_stream(&r, "j", windows(), |_, a, b| format!("{a}{b}")).to(OUT, Serdes::string(), Serdes::string());
    let e = b.build().unwrap_err().to_string();
    assert!(e.contains("stream join `j`") && e.contains("with_serdes"), "{e}");
}

/// When the other side runs far ahead, a record can arrive on time for its
/// own side with its window already closed: no partner can come, so an
/// outer join emits it at once, and it is not buffered.
#[test]
fn a_record_whose_window_closed_on_arrival_is_emitted_at_once() {
    let (mut driver, l, r, out) = driven(StreamJoinKind::Outer);
    driver.pipe(&l, "a".to_string(), 1, 100_000).unwrap();
    driver.pipe(&r, "b".to_string(), 2, 50_000).unwrap();
    let got: Vec<_> = driver.read(&out).unwrap().into_iter().map(|r| (r.key, r.timestamp, r.value)).collect();
    assert_eq!(got, vec![("b".to_string(), 50_000, (None, Some(2)))]);
    assert_eq!(driver.late_records(), 0);
    let other: Vec<(Vec<u8>, Vec<u8>)> = driver.store_entries("j-other").unwrap();
    assert!(other.is_empty(), "nothing buffered: {other:?}");
}

/// A quiet side holds the watermark, and so the closing of the other
/// side's windows, until its partition is idle (`idle_after`).
#[test]
fn a_quiet_side_holds_the_unmatched_results_until_it_is_idle() {
    use crate::topology::Timestamps;
    for idle in [false, true] {
        let time = || {
            let t = Timestamps::record();
            if idle {
                t.idle_after(Duration::from_secs(1))
            } else {
                t
            }
        };
        let mut b = Topology::builder();
        let l = b.stream_with_time(LEFT, Serdes::string(), Serdes::u64(), time());
        let r = b.stream_with_time(RIGHT, Serdes::string(), Serdes::u64(), time());
        l.left_join_stream(&r, "j", windows(), |_, a, b| (Some(*a), b.copied())).to(
            OUT,
            Serdes::string(),
            Serdes::json::<Pair>(),
        );
        let mut driver = TopologyTestDriver::new(b.build().unwrap()).unwrap();
        let (lt, rt) = (
            driver.input_topic(LEFT, Serdes::string(), Serdes::u64()),
            driver.input_topic(RIGHT, Serdes::string(), Serdes::u64()),
        );
        let out = driver.output_topic(OUT, Serdes::string(), Serdes::json::<Pair>());
        driver.pipe(&lt, "a".to_string(), 1, 10_000).unwrap();
        driver.pipe(&rt, "b".to_string(), 2, 10_000).unwrap();
        // The left side goes quiet; the right side moves on.
        driver.advance_wall_clock(Duration::from_secs(5)).unwrap();
        for (i, ts) in [15_000i64, 20_000].into_iter().enumerate() {
            driver.pipe(&rt, "b".to_string(), 3 + i as u64, ts).unwrap();
        }
        let got: Vec<_> = driver.read(&out).unwrap().into_iter().map(|r| r.value).collect();
        let want = if idle { vec![(Some(1), None)] } else { vec![] };
        assert_eq!(got, want, "idle_after: {idle}");
    }
}

/// The sides' times are kept in the store: after a restart (with or
/// without the state dir) a record late before it is late still.
#[test]
fn a_restart_keeps_the_sides_times() {
    for fresh in [false, true] {
        let (driver, l, r, out) = driven(StreamJoinKind::Outer);
        let mut driver = driver.manual_commits();
        for (side, key, id, ts) in
            [(&l, "a", 1, 10_000), (&r, "x", 2, 10_000), (&l, "b", 3, 20_000), (&r, "y", 4, 20_000)]
        {
            driver.pipe(side, key.to_string(), id, ts).unwrap();
        }
        driver.commit().unwrap();
        if fresh {
            driver.restart_without_local_state().unwrap();
        } else {
            driver.restart().unwrap();
        }
        driver.pipe(&r, "c".to_string(), 5, 9_000).unwrap();
        driver.commit().unwrap();
        let got: Vec<_> = driver.read(&out).unwrap().into_iter().map(|r| r.value).collect();
        assert_eq!(got, vec![(Some(1), None), (None, Some(2))], "fresh: {fresh}");
        assert_eq!(driver.late_records(), 1, "fresh: {fresh}");
        assert_eq!(driver.read_raw(LATE_RIGHT).len(), 1, "fresh: {fresh}");
    }
}
