//! Exactly-once on a real broker: an instance killed with SIGKILL in the
//! middle of its work leaves no duplicate and no gap in what readers see
//! with `read_committed`, and its restart replays only the changelog tail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::collections::BTreeMap;
use std::time::Duration;

use harness::child::{self, ChildApp};
use harness::TestRecord;
use rivulet::prelude::*;

const KEYS: usize = 50;

/// Counts per key after a repartition and emits, for every input record,
/// the running count of its key.
fn running_counts(input: &str, output: &str) -> Topology {
    let mut b = Topology::builder();
    b.stream(input, Serdes::string(), Serdes::string())
        .group_by(|k: &String, _| k.clone(), Serdes::string())
        .count("running")
        .to_stream()
        .to(output, Serdes::string(), Serdes::i64());
    b.build().unwrap()
}

/// Not a test of its own: the body of the child processes the crash tests
/// start and kill. In a normal test run it returns at once.
#[test]
fn child_process_entry_point_for_crash_tests() {
    let Some(spec) = child::spec() else { return };
    child::run_exactly_once(&spec, running_counts)
}

fn spawn_child(spec: &str) -> ChildApp {
    ChildApp::spawn_test("child_process_entry_point_for_crash_tests", spec)
}

fn records(n: usize, start: usize) -> Vec<TestRecord> {
    (start..start + n)
        .map(|i| {
            let k = i % KEYS;
            TestRecord { partition: (k % 4) as i32, ..TestRecord::kv(&format!("key-{k}"), &i.to_string()) }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_processing_leaves_no_duplicate_and_no_gap_under_read_committed() {
    let input = harness::new_topic("eos-in", 4).await;
    let output = harness::new_topic("eos-out", 4).await;
    let app_id = harness::unique("eos");
    let state = tempfile::tempdir().unwrap();
    let instance = harness::unique("pod");
    let spec = format!("{input}|{output}|{app_id}|{}|{instance}", state.path().display());
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    let mut total = 0;
    let mut produce = |n: usize| {
        let batch = records(n, total);
        total += n;
        for r in &batch {
            *expected.entry(r.key_str().to_string()).or_default() += 1;
        }
        batch
    };

    // Two rounds: a child runs while input streams in, and is killed -9
    // once it has committed some output, in the middle of its work.
    for round in 0..2 {
        let before = harness::read_committed(&output).len();
        let child = spawn_child(&spec);
        let batch = produce(8_000);
        let topic = input.clone();
        let writer = tokio::spawn(async move {
            for chunk in batch.chunks(250) {
                harness::produce_many(&topic, chunk).await;
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        });
        harness::eventually(&format!("round {round}: the child commits output"), Duration::from_secs(90), || {
            let now = harness::read_committed(&output).len();
            if now > before + 1_000 {
                Ok(())
            } else {
                Err(format!("{now} outputs"))
            }
        });
        drop(child); // SIGKILL
        writer.await.unwrap();
    }

    // A last instance, with the same identity and state dir, finishes the work.
    let batch = produce(4_000);
    harness::produce_many(&input, &batch).await;
    let app = App::new(harness::eos_config(&app_id, state.path(), &instance, &[]))
        .unwrap()
        .start(running_counts(&input, &output))
        .unwrap();
    harness::eventually("every input counted exactly once", Duration::from_secs(120), || {
        harness::check_running_counts(&output, &expected)
    });
    let stats = app.stats();
    let changelog = harness::read_committed(&format!("{app_id}-running-changelog")).len() as u64;
    assert!(
        stats.records_restored < changelog,
        "the restart replayed only a tail of the changelog: {} of {changelog}",
        stats.records_restored
    );
    app.shutdown().unwrap();
    assert_eq!(total, 20_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn chaos_three_processes_killed_and_paused_still_count_every_record_exactly_once() {
    use nix::sys::signal::Signal;
    const RECORDS: usize = 200_000;
    let input = harness::new_topic("chaos-in", 6).await;
    let output = harness::new_topic("chaos-out", 6).await;
    let app_id = harness::unique("chaos");
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let specs: Vec<String> =
        (0..3).map(|i| format!("{input}|{output}|{app_id}|{}|{app_id}-pod-{i}", dirs[i].path().display())).collect();
    let mut children: Vec<ChildApp> = specs.iter().map(|s| spawn_child(s)).collect();

    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    let all: Vec<TestRecord> = (0..RECORDS)
        .map(|i| {
            let k = (i * 7919) % 997;
            TestRecord { partition: (k % 6) as i32, ..TestRecord::kv(&format!("key-{k}"), &i.to_string()) }
        })
        .collect();
    for r in &all {
        *expected.entry(r.key_str().to_string()).or_default() += 1;
    }
    let topic = input.clone();
    // About 40 s of input, so that kills and the pause happen mid-stream.
    let writer = tokio::spawn(async move {
        for chunk in all.chunks(2_000) {
            harness::produce_many(&topic, chunk).await;
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
    });

    // Kill -9 and restart a different instance three times, then pause one
    // past its session timeout (6 s) and resume it: a zombie that must be
    // fenced rather than commit.
    child::kill_in_turn(&mut children, &[0, 2, 1], 20_000, &output, |i| spawn_child(&specs[i]));
    harness::wait_for_output(&output, 80_000);
    children[0].signal(Signal::SIGSTOP);
    std::thread::sleep(Duration::from_secs(12)); // session timeout 6 s, transaction timeout 10 s
    children[0].signal(Signal::SIGCONT);
    let log_at_resume = children[0].log().len();
    assert!(!writer.is_finished(), "the pause ended while input was still streaming in");

    writer.await.unwrap();
    harness::eventually("every record counted exactly once, under read_committed", Duration::from_secs(300), || {
        harness::check_running_counts(&output, &expected)
    });
    // Woken past its session, the paused instance either had its
    // transaction fenced ("tasks migrated") or found its partitions gone;
    // either way it rejoined the group (and, above, committed nothing twice).
    let zombie = children[0].log();
    let after_resume = zombie.get(log_at_resume..).unwrap_or_default();
    assert!(
        after_resume.contains("partitions assigned"),
        "the paused instance rejoined the group; its log after the pause:\n{after_resume}"
    );
    eprintln!("paused instance fenced: {}", after_resume.contains("tasks migrated"));
    drop(children);
}
