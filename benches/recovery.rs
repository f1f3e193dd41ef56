//! Recovery after `kill -9`, on a real broker: time until the restarted
//! instance processes again and changelog records it replays, with its
//! state dir (a tail) and with an empty one (everything).
//!
//! ```sh
//! cargo bench --bench recovery            # 1,000,000 keys
//! RIVULET_BENCH_KEYS=200000 cargo bench --bench recovery
//! ```
//!
//! The broker is the test broker (started if none answers). Figures are
//! printed as a table; docs/benchmarks.md records a run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../integration-tests/harness/mod.rs"]
mod harness;

use std::path::Path;
use std::time::{Duration, Instant};

use harness::TestRecord;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rivulet::prelude::*;

const PARTITIONS: i32 = 4;

fn config(app_id: &str, state: &Path) -> Config {
    harness::app_config(
        app_id,
        state,
        &[("RIVULET__PROCESSING_GUARANTEE", "exactly_once"), ("RIVULET__INSTANCE_ID", "bench-0")],
    )
}

/// The child: runs until killed.
fn child(spec: &str) -> ! {
    let parts: Vec<&str> = spec.split('|').collect();
    let [input, output, app_id, state] = parts[..] else { panic!("bad spec {spec}") };
    let app = App::new(config(app_id, Path::new(state)))
        .unwrap()
        .start(harness::count_per_key(input, output, "per-key"))
        .unwrap();
    harness::child::run_until_stopped(app)
}

/// Whether the group has committed offsets up to the end of `input`.
fn caught_up(app_id: &str, input: &str) -> bool {
    let c: BaseConsumer = harness::client_config().set("group.id", app_id).create().unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(input, p);
    }
    let committed = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    committed.elements().iter().all(|e| {
        let (_, high) = c.fetch_watermarks(input, e.partition(), Duration::from_secs(10)).unwrap();
        matches!(e.offset(), rdkafka::Offset::Offset(o) if o >= high)
    })
}

/// Starts an instance on `state` and measures until every task runs.
fn restart(app_id: &str, input: &str, output: &str, state: &Path) -> (Duration, u64) {
    let started = Instant::now();
    let app = App::new(config(app_id, state)).unwrap().start(harness::count_per_key(input, output, "per-key")).unwrap();
    loop {
        let s = app.stats();
        if s.tasks_running == PARTITIONS as u64 && s.tasks_restoring == 0 {
            let elapsed = started.elapsed();
            app.shutdown().unwrap();
            return (elapsed, s.records_restored);
        }
        assert!(started.elapsed() < Duration::from_secs(600), "restart did not finish: {s:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn main() {
    if let Some(spec) = harness::child::spec() {
        child(&spec);
    }
    let keys: usize = std::env::var("RIVULET_BENCH_KEYS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (input, output) = runtime.block_on(async {
        (harness::new_topic("bench-in", PARTITIONS).await, harness::new_topic("bench-out", PARTITIONS).await)
    });
    let app_id = harness::unique("recovery");
    let state = tempfile::tempdir().unwrap();

    let started = Instant::now();
    runtime.block_on(async {
        let records: Vec<TestRecord> = (0..keys)
            .map(|i| TestRecord {
                partition: (i % PARTITIONS as usize) as i32,
                ..TestRecord::kv(&format!("key-{i}"), "v")
            })
            .collect();
        for chunk in records.chunks(50_000) {
            harness::produce_many(&input, chunk).await;
        }
    });
    eprintln!("wrote {keys} keys in {:.1?}", started.elapsed());

    let spec = format!("{input}|{output}|{app_id}|{}", state.path().display());
    let mut child = harness::child::ChildApp::spawn(&[], &spec);
    let started = Instant::now();
    while !caught_up(&app_id, &input) {
        assert!(started.elapsed() < Duration::from_secs(1200), "the child did not process the input");
        std::thread::sleep(Duration::from_secs(1));
    }
    eprintln!("processed {keys} keys in {:.1?}", started.elapsed());
    child.kill(); // SIGKILL
    let killed = Instant::now();

    let (tail_time, tail_replayed) = restart(&app_id, &input, &output, state.path());
    let since_kill = killed.elapsed();
    let empty = tempfile::tempdir().unwrap();
    let (full_time, full_replayed) = restart(&app_id, &input, &output, empty.path());

    println!("| restart after kill -9 ({keys} keys) | time to all tasks running | changelog records replayed |");
    println!("|---|---|---|");
    println!("| with its state dir | {:.2?} ({:.2?} after the kill) | {tail_replayed} |", tail_time, since_kill);
    println!("| with an empty state dir | {full_time:.2?} | {full_replayed} |");
    println!(
        "ratio (state dir / empty): time {:.3}, records replayed {:.4}",
        tail_time.as_secs_f64() / full_time.as_secs_f64(),
        tail_replayed as f64 / full_replayed.max(1) as f64
    );
}
