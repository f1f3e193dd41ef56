//! Two-phase aggregations against their one-phase topologies, on the same
//! input through the test driver with manual commits: the same tables and
//! window results, fewer repartition records, nothing held across a crash.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use crate::processor::time::MARKER_HEADER;
use crate::record::Windowed;
use crate::serde::Serdes;
use crate::testing::TopologyTestDriver;
use crate::topology::{KGroupedStream, KStream, Topology, Windows};

/// Input records: (user, page, timestamp); the aggregations group by page,
/// a few pages hot. Deterministic (a fixed linear congruential sequence).
fn clicks(n: usize) -> Vec<(String, String, i64)> {
    let mut x: u64 = 42;
    (0..n)
        .map(|i| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let r = (x >> 33) % 100;
            // Half the clicks on one page, a quarter on another, the rest spread.
            let page = match r {
                0..=49 => "/home".to_string(),
                50..=74 => "/cart".to_string(),
                _ => format!("/item/{}", r % 7),
            };
            // Mostly in order, some a little out of order, a few very late.
            let jitter = ((x >> 20) % 5) as i64 * 1_000;
            let late = if r.is_multiple_of(23) { 40_000 } else { 0 };
            let ts = (i as i64) * 700 - jitter - late;
            (format!("user-{}", r % 13), page, ts.max(0))
        })
        .collect()
}

fn by_page(b: &mut crate::topology::TopologyBuilder) -> KGroupedStream<String, String> {
    b.stream("clicks", Serdes::string(), Serdes::string())
        .with_serdes(Serdes::string(), Serdes::string())
        .group_by(|_, page: &String| page.clone(), Serdes::string())
}

/// Runs `input` through `topology`, committing every `every` records
/// (none when 0) and at the end.
fn run(topology: Topology, input: &[(String, String, i64)], every: usize) -> TopologyTestDriver {
    let mut d = TopologyTestDriver::new(topology).unwrap().manual_commits();
    let topic = d.input_topic("clicks", Serdes::string(), Serdes::string());
    for (i, (user, page, ts)) in input.iter().enumerate() {
        d.pipe(&topic, user.clone(), page.clone(), *ts).unwrap();
        if every > 0 && (i + 1) % every == 0 {
            d.commit().unwrap();
        }
    }
    d.commit().unwrap();
    d
}

/// Records written to repartition topics (markers left out).
fn repartitioned(d: &TopologyTestDriver) -> usize {
    let log = d.collector.log.borrow();
    log.all()
        .filter(|(topic, r)| topic.ends_with("-repartition") && !r.headers.iter().any(|(k, _)| k == MARKER_HEADER))
        .count()
}

/// The last update per key of an output topic.
fn latest<V: Clone + 'static>(
    d: &mut TopologyTestDriver,
    topic: &str,
    serde: impl crate::serde::Serde<V>,
) -> BTreeMap<String, V> {
    let out = d.output_topic(topic, Serdes::string(), serde);
    d.read_key_values(&out).unwrap().into_iter().collect()
}

#[test]
fn count_reduce_and_aggregate_equal_one_phase_with_fewer_repartition_records() {
    let input = clicks(2_000);
    let build = |two: bool| {
        let mut b = Topology::builder();
        let g = by_page(&mut b);
        let g2 = g.two_phase();
        let counts = if two { g2.count("counts") } else { g.count("counts") };
        counts.to_stream().to("counts", Serdes::string(), Serdes::i64());
        let longest = |a: String, b: String| if b.len() > a.len() || (b.len() == a.len() && b > a) { b } else { a };
        let reduced = if two { g2.reduce("longest", longest) } else { g.reduce("longest", longest) };
        reduced.to_stream().to("longest", Serdes::string(), Serdes::string());
        let (init, add) =
            (|| (0_i64, 0_i64), |_: &String, user: String, (n, sum): (i64, i64)| (n + 1, sum + user.len() as i64));
        let stats = if two {
            g2.aggregate("stats", init, add, |(n1, s1), (n2, s2)| (n1 + n2, s1 + s2), Serdes::json::<(i64, i64)>())
        } else {
            g.aggregate("stats", init, add, Serdes::json::<(i64, i64)>())
        };
        stats.to_stream().to("stats", Serdes::string(), Serdes::json::<(i64, i64)>());
        b.build().unwrap()
    };
    assert!(build(true).describe().contains("PRE_AGGREGATE"));
    let mut one = run(build(false), &input, 100);
    let mut two = run(build(true), &input, 100);
    let a: Vec<(String, i64)> = one.store_entries("counts").unwrap();
    assert_eq!(a, two.store_entries::<String, i64>("counts").unwrap());
    assert_eq!(a.iter().map(|(_, n)| n).sum::<i64>(), 2_000);
    let a: Vec<(String, String)> = one.store_entries("longest").unwrap();
    assert_eq!(a, two.store_entries::<String, String>("longest").unwrap());
    let a: Vec<(String, (i64, i64))> = one.store_entries("stats").unwrap();
    assert_eq!(a, two.store_entries::<String, (i64, i64)>("stats").unwrap());
    // The outputs' latest update per key are the tables.
    assert_eq!(latest(&mut one, "counts", Serdes::i64()), latest(&mut two, "counts", Serdes::i64()));
    assert_eq!(latest(&mut one, "longest", Serdes::string()), latest(&mut two, "longest", Serdes::string()));
    let stats = Serdes::json::<(i64, i64)>;
    assert_eq!(latest(&mut one, "stats", stats()), latest(&mut two, "stats", stats()));
    // One phase writes each record to each of the three repartition topics
    // (count's holds keys only); two phases at most one per page and commit.
    assert_eq!(repartitioned(&one), 3 * 2_000);
    let commits = 2_000 / 100;
    assert!(repartitioned(&two) <= 3 * 9 * commits, "{}", repartitioned(&two));
}

#[test]
fn without_a_repartition_two_phase_is_one_phase() {
    let mut b = Topology::builder();
    b.stream("clicks", Serdes::string(), Serdes::string()).group_by_key().two_phase().count("counts");
    let described = b.build().unwrap().describe();
    assert!(!described.contains("PRE_AGGREGATE") && !described.contains("repartition"), "{described}");
}

#[test]
fn held_partials_are_dropped_by_a_crash_and_counted_once() {
    let mut b = Topology::builder();
    by_page(&mut b).two_phase().count("counts");
    let mut d = TopologyTestDriver::new(b.build().unwrap()).unwrap().manual_commits();
    let topic = d.input_topic("clicks", Serdes::string(), Serdes::string());
    for _ in 0..3 {
        d.pipe(&topic, "u".to_string(), "/home".to_string(), 0).unwrap();
    }
    d.commit().unwrap();
    for _ in 0..2 {
        d.pipe(&topic, "u".to_string(), "/home".to_string(), 0).unwrap();
    }
    // A crash before the commit: the two held clicks go with the aborted
    // work; the records are read and counted again after the restart.
    d.restart().unwrap();
    d.commit().unwrap();
    assert_eq!(d.store_get::<String, i64>("counts", &"/home".to_string()).unwrap(), Some(5));
}

/// A tumbling window count, one and two phases, both emit modes, with
/// out-of-order and late records and a grace period.
fn window_counts(two: bool, final_only: bool, every: usize) -> (Vec<(Windowed<String>, i64)>, u64, usize) {
    let mut b = Topology::builder();
    let w = by_page(&mut b).windowed_by(Windows::tumbling(Duration::from_secs(10)).grace(Duration::from_secs(3)));
    let w = if two { w.two_phase() } else { w };
    let w = if final_only { w.emit_final() } else { w };
    let counts: KStream<Windowed<String>, i64> = w.count("per-window");
    counts.to("per-window", Serdes::windowed(Serdes::string()), Serdes::i64());
    let mut d = run(b.build().unwrap(), &clicks(2_000), every);
    d.end_input().unwrap();
    d.commit().unwrap();
    let out = d.output_topic("per-window", Serdes::windowed(Serdes::string()), Serdes::i64());
    (d.read_key_values(&out).unwrap(), d.late_records(), repartitioned(&d))
}

#[test]
fn tumbling_window_counts_equal_one_phase_late_records_included() {
    for every in [1, 37, 500] {
        let (one, late_one, written_one) = window_counts(false, true, every);
        let (two, late_two, written_two) = window_counts(true, true, every);
        assert!(late_one > 0, "the input has late records");
        assert_eq!(late_one, late_two, "commit every {every}");
        // emit_final: the same results in the same order.
        assert_eq!(one, two, "commit every {every}");
        assert_eq!(written_one, 2_000);
        if every > 1 {
            assert!(written_two < written_one / 2, "{written_two}");
        }
        // emit_on_update: fewer updates, the same last one per window.
        let (one, _, _) = window_counts(false, false, every);
        let (two, late_two, _) = window_counts(true, false, every);
        assert_eq!(late_one, late_two);
        let last = |v: Vec<(Windowed<String>, i64)>| {
            v.into_iter().map(|(w, n)| ((w.key, w.start), n)).collect::<BTreeMap<_, _>>()
        };
        assert_eq!(last(one), last(two), "commit every {every}");
    }
}

#[test]
fn two_phase_windows_other_than_tumbling_are_refused() {
    let mut b = Topology::builder();
    by_page(&mut b).windowed_by(Windows::session(Duration::from_secs(5))).two_phase().count("sessions");
    let err = format!("{:?}", b.build().err().unwrap());
    assert!(err.contains("tumbling windows only"), "{err}");
    let mut b = Topology::builder();
    by_page(&mut b)
        .windowed_by(Windows::tumbling(Duration::from_secs(5)))
        .two_phase()
        .late_records_to("late")
        .count("per-window");
    let err = format!("{:?}", b.build().err().unwrap());
    assert!(err.contains("late records"), "{err}");
}
