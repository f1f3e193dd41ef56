//! Two-phase aggregation on a real broker under exactly-once: a backlog
//! already in the input, the default commit interval (100 ms), an instance
//! killed with SIGKILL in the middle of its work (its open transaction,
//! held partials and the partials it wrote, is aborted), and a restart
//! that finishes: the count per key and the tumbling-window counts are the
//! ones the input makes, each window emitted once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::collections::BTreeMap;
use std::time::Duration;

use harness::child::{self, ChildApp};
use harness::TestRecord;
use rivulet::prelude::*;
use rivulet::topology::WindowResult;

const PARTITIONS: i32 = 2;
const RECORDS: usize = 12_000;
/// A multiple of the window size.
const BASE: i64 = 1_700_000_000_000;
const STEP_MS: i64 = 5;
const WINDOW_MS: i64 = 5_000;

fn windows_topic(output: &str) -> String {
    format!("{output}-windows")
}

/// Counts per page, and per page and 5 s window (emit_final), both in two
/// phases; a little slow per record, so that a kill falls mid-backlog.
fn pages(input: &str, output: &str) -> Topology {
    let mut b = Topology::builder();
    let by_page = b
        .stream(input, Serdes::string(), Serdes::string())
        .peek(|_, _| std::thread::sleep(Duration::from_micros(500)))
        .group_by(|_, page: &String| page.clone(), Serdes::string());
    by_page.two_phase().count("page-counts").to_stream().to(output, Serdes::string(), Serdes::i64());
    by_page
        .windowed_by(Windows::tumbling(Duration::from_millis(WINDOW_MS as u64)))
        .two_phase()
        .emit_final()
        .count("page-windows")
        .with_window_in_value()
        .to(&windows_topic(output), Serdes::string(), Serdes::json::<WindowResult<String, i64>>());
    b.build().unwrap()
}

/// Not a test of its own: the body of the child process the test kills.
#[test]
fn child_process_entry_point_for_the_crash_test() {
    let Some(spec) = child::spec() else { return };
    child::run_exactly_once(&spec, pages)
}

/// The backlog: a hot page, a warm one and a tail, in time order in each
/// partition.
fn backlog() -> Vec<TestRecord> {
    (0..RECORDS)
        .map(|i| {
            let page = match i % 10 {
                0..=5 => "/home".to_string(),
                6 | 7 => "/cart".to_string(),
                n => format!("/item/{}", (i / 10 + n) % 5),
            };
            TestRecord {
                partition: (i % PARTITIONS as usize) as i32,
                timestamp: Some(BASE + i as i64 * STEP_MS),
                ..TestRecord::kv(&format!("user-{}", i % 17), &page)
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_phase_counts_and_windows_are_exact_across_a_kill_under_exactly_once() {
    // Timestamps of 2023: no retention by time may delete them.
    let input = harness::new_history_topic("two-phase-in", PARTITIONS).await;
    let output = harness::new_history_topic("two-phase-out", PARTITIONS).await;
    harness::create_topic(&windows_topic(&output), PARTITIONS, &[("retention.ms", "-1")]).await;
    let app_id = harness::unique("two-phase");
    let state = tempfile::tempdir().unwrap();
    let instance = harness::unique("pod");
    let records = backlog();
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    let mut windows: BTreeMap<(String, i64), i64> = BTreeMap::new();
    // The watermark downstream ends at the smaller of the partitions' last
    // timestamps: the windows ending by then close, the others stay open.
    let mut last = [i64::MIN; PARTITIONS as usize];
    for r in &records {
        let (page, ts) = (r.value_str().to_string(), r.timestamp.unwrap());
        *counts.entry(page.clone()).or_default() += 1;
        *windows.entry((page, ts - ts.rem_euclid(WINDOW_MS))).or_default() += 1;
        last[r.partition as usize] = last[r.partition as usize].max(ts);
    }
    let watermark = *last.iter().min().unwrap();
    windows.retain(|(_, start), _| start + WINDOW_MS <= watermark);
    harness::produce_many(&input, &records).await;

    // A child works through the backlog and is killed once it has
    // committed a tenth of it.
    let spec = format!("{input}|{output}|{app_id}|{}|{instance}", state.path().display());
    let child = ChildApp::spawn_test("child_process_entry_point_for_the_crash_test", &spec);
    harness::eventually("the child commits a tenth of the input", Duration::from_secs(90), || {
        let committed = harness::committed_offsets(&app_id, &input, PARTITIONS);
        let n: i64 = committed.iter().map(|o| o.unwrap_or(0)).sum();
        if n >= RECORDS as i64 / 10 {
            Ok(())
        } else {
            Err(format!("{committed:?}"))
        }
    });
    drop(child); // SIGKILL

    // Half a millisecond per record: the backlog takes six seconds.
    let committed = harness::committed_offsets(&app_id, &input, PARTITIONS);
    let ends: Vec<Option<i64>> = harness::watermarks(&input).iter().map(|(_, high)| Some(*high)).collect();
    assert_ne!(committed, ends, "the child was killed in the middle of the backlog");

    // The same instance finishes the work.
    let app = App::new(harness::eos_config(&app_id, state.path(), &instance, &[]))
        .unwrap()
        .start(pages(&input, &output))
        .unwrap();
    harness::eventually("every page counted once", Duration::from_secs(120), || {
        let mut seen: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for r in harness::read_committed(&output) {
            let n = i64::from_be_bytes(r.value.as_deref().unwrap().try_into().unwrap());
            seen.entry(r.key_str().to_string()).or_default().push(n);
        }
        for (page, updates) in &seen {
            assert!(updates.windows(2).all(|w| w[0] < w[1]), "{page}: updates go back or repeat: {updates:?}");
        }
        let latest: BTreeMap<String, i64> = seen.iter().map(|(p, u)| (p.clone(), *u.last().unwrap())).collect();
        if latest == counts {
            Ok(())
        } else {
            Err(format!("{latest:?}, want {counts:?}; {:?} stopped {}", app.stats(), app.has_stopped()))
        }
    });
    harness::eventually("every closed window emitted once", Duration::from_secs(60), || {
        let mut got: BTreeMap<(String, i64), i64> = BTreeMap::new();
        for r in harness::read_committed(&windows_topic(&output)) {
            let w: WindowResult<String, i64> = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
            let before = got.insert((w.key.clone(), w.window_start), w.value);
            assert!(before.is_none(), "window {} @ {} emitted twice", w.key, w.window_start);
        }
        if got == windows {
            Ok(())
        } else {
            Err(format!("{} windows of {}", got.len(), windows.len()))
        }
    });
    app.shutdown().unwrap();
}
