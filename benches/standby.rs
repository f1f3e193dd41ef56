//! Failover after `kill -9` with and without a standby replica, on a real
//! broker (`group_protocol = "streams"`): two instances count per key
//! under exactly-once; the one in a child process is killed and the other
//! takes over its tasks. Measured: time from the kill until the survivor
//! runs every task, until a record written to a taken-over partition right
//! after the kill comes out (read_committed), and changelog records the
//! survivor replays.
//!
//! ```sh
//! cargo test --bench standby                            # 1,000,000 keys
//! RIVULET_BENCH_KEYS=200000 cargo test --bench standby  # smaller
//! ```
//!
//! The broker is the test broker (its streams groups time a member out
//! after 6 s: `group.streams.session.timeout.ms` in
//! integration-tests/kafka/broker.sh). docs/benchmarks.md records a run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../integration-tests/harness/mod.rs"]
mod harness;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use harness::http::{sample, scrape};
use harness::TestRecord;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use rivulet::prelude::*;
use rivulet::RunningApp;

const PARTITIONS: i32 = 4;

fn config(app_id: &str, state: &Path, instance: &str, standbys: &str) -> Config {
    harness::app_config(
        app_id,
        state,
        &[
            ("RIVULET__PROCESSING_GUARANTEE", "exactly_once"),
            ("RIVULET__INSTANCE_ID", instance),
            ("RIVULET__GROUP_PROTOCOL", "streams"),
            ("RIVULET__NUM_STANDBY_REPLICAS", standbys),
            // The default commit interval under exactly-once.
            ("RIVULET__COMMIT_INTERVAL_MS", "100"),
        ],
    )
}

/// The child: `input|output|app_id|state|standbys`, runs until killed.
fn child(spec: &str) -> ! {
    let parts: Vec<&str> = spec.split('|').collect();
    let [input, output, app_id, state, standbys] = parts[..] else { panic!("bad spec {spec}") };
    let app = App::new(config(app_id, Path::new(state), "bench-a", standbys))
        .unwrap()
        .start(harness::count_per_key(input, output, "per-key"))
        .unwrap();
    harness::child::run_until_stopped(app)
}

/// Whether the group has committed offsets up to the end of `input`.
fn caught_up(app_id: &str, input: &str) -> bool {
    let ends = harness::watermarks(input);
    let committed = harness::committed_offsets(app_id, input, PARTITIONS);
    committed.iter().zip(&ends).all(|(c, (_, end))| *c == Some(*end))
}

fn active(app: &RunningApp, input: &str) -> BTreeSet<i32> {
    app.assignment().into_iter().filter(|(t, _)| t == input).map(|(_, p)| p).collect()
}

struct Failover {
    /// From the kill until the broker gave the survivor every task.
    assigned: Duration,
    tasks_running: Duration,
    probe_out: Duration,
    replayed: u64,
    taken_over: usize,
}

fn run(keys: usize, standbys: &str, runtime: &tokio::runtime::Runtime) -> Failover {
    let (input, output) = runtime.block_on(async {
        (harness::new_topic("sb-bench-in", PARTITIONS).await, harness::new_topic("sb-bench-out", PARTITIONS).await)
    });
    let app_id = harness::unique("standby-bench");
    let (state_a, state_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let spec = format!("{input}|{output}|{app_id}|{}|{standbys}", state_a.path().display());
    let mut a = harness::child::ChildApp::spawn(&[], &spec);
    let b = App::new(config(&app_id, state_b.path(), "bench-b", standbys))
        .unwrap()
        .start(harness::count_per_key(&input, &output, "per-key"))
        .unwrap();
    // Written once the tasks are split, so the survivor has no local state
    // of the child's tasks but what its standbys read.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(1..PARTITIONS as usize).contains(&active(&b, &input).len()) {
        assert!(Instant::now() < deadline, "the tasks were not split; log of the child:\n{}", a.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let b_tasks = active(&b, &input);
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
    eprintln!("[standbys={standbys}] wrote {keys} keys in {:.1?}", started.elapsed());
    while !caught_up(&app_id, &input) {
        assert!(started.elapsed() < Duration::from_secs(1800), "the input was not processed");
        std::thread::sleep(Duration::from_secs(1));
    }
    let a_partitions: Vec<i32> = (0..PARTITIONS).filter(|p| !b_tasks.contains(p)).collect();
    let taken_over = keys / PARTITIONS as usize * a_partitions.len();
    if standbys != "0" {
        // The standbys have read everything the child wrote to its changelogs.
        loop {
            let applied = sample(&scrape(&b), "rivulet_standby_records_total", &[]).unwrap_or(0.0);
            if applied >= taken_over as f64 {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(1800), "standbys did not catch up: {applied}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    eprintln!("[standbys={standbys}] processed in {:.1?}", started.elapsed());
    let restored_before = b.stats().records_restored;

    // A reader of the probe's output, positioned at the end before the kill.
    let reader: BaseConsumer = harness::client_config()
        .set("group.id", harness::unique("probe"))
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        let (_, high) = reader.fetch_watermarks(&output, p, Duration::from_secs(10)).unwrap();
        tpl.add_partition_offset(&output, p, Offset::Offset(high)).unwrap();
    }
    reader.assign(&tpl).unwrap();
    let probe = a_partitions[0];

    a.kill(); // SIGKILL
    let killed = Instant::now();
    runtime.block_on(harness::produce(
        &input,
        &[TestRecord { partition: probe, ..TestRecord::kv(&format!("probe-{probe}"), "v") }],
    ));
    let mut assigned = None;
    let mut tasks_running = None;
    let mut probe_out = None;
    while tasks_running.is_none() || probe_out.is_none() {
        assert!(killed.elapsed() < Duration::from_secs(1200), "the survivor did not take over");
        if assigned.is_none() && active(&b, &input).len() == PARTITIONS as usize {
            assigned = Some(killed.elapsed());
        }
        if tasks_running.is_none() {
            let s = b.stats();
            if s.tasks_running == PARTITIONS as u64 && s.tasks_restoring == 0 {
                tasks_running = Some(killed.elapsed());
            }
        }
        if probe_out.is_none() {
            if let Some(Ok(m)) = reader.poll(Duration::from_millis(20)) {
                if m.key() == Some(format!("probe-{probe}").as_bytes()) {
                    probe_out = Some(killed.elapsed());
                }
            }
        } else {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let replayed = b.stats().records_restored - restored_before;
    b.shutdown().unwrap();
    let tasks_running = tasks_running.unwrap();
    Failover {
        assigned: assigned.unwrap_or(tasks_running),
        tasks_running,
        probe_out: probe_out.unwrap(),
        replayed,
        taken_over,
    }
}

fn main() {
    if let Some(spec) = harness::child::spec() {
        child(&spec);
    }
    let keys: usize = std::env::var("RIVULET_BENCH_KEYS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let without = run(keys, "0", &runtime);
    let with = run(keys, "1", &runtime);
    println!("| failover after kill -9 ({keys} keys, 4 tasks, 2 taken over) | tasks assigned to the survivor | all tasks running | assigned to running | first output of a taken-over partition | changelog records replayed |");
    println!("|---|---|---|---|---|---|");
    for (name, f) in [("without a standby (baseline)", &without), ("with one standby", &with)] {
        println!(
            "| {name} | {:.2?} | {:.2?} | {:.2?} | {:.2?} | {} of {} |",
            f.assigned,
            f.tasks_running,
            f.tasks_running.saturating_sub(f.assigned),
            f.probe_out,
            f.replayed,
            f.taken_over
        );
    }
    println!(
        "ratio (with / without): assigned to running {:.3}, all tasks running {:.3}, first output {:.3}",
        with.tasks_running.saturating_sub(with.assigned).as_secs_f64()
            / without.tasks_running.saturating_sub(without.assigned).as_secs_f64().max(0.001),
        with.tasks_running.as_secs_f64() / without.tasks_running.as_secs_f64(),
        with.probe_out.as_secs_f64() / without.probe_out.as_secs_f64()
    );
}
