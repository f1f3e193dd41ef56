//! The async I/O operator's throughput on a real broker under
//! exactly-once: `examples/async_enrichment.rs`'s topology (an HTTP GET per
//! record against a local server answering after 20 ms) with 1, 8 and 64
//! calls in flight, one input partition (one task).
//!
//! ```sh
//! cargo bench --bench async_io
//! RIVULET_BENCH_LATENCY_MS=50 cargo bench --bench async_io
//! ```
//!
//! Each run reads a backlog already in the input topic; its time runs from
//! the first record processed to the last input offset committed (commits
//! every 100 ms). docs/benchmarks.md records a run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../integration-tests/harness/mod.rs"]
mod harness;

#[allow(dead_code)]
#[path = "../examples/async_enrichment.rs"]
mod async_enrichment;

use std::time::{Duration, Instant};

use harness::TestRecord;
use rivulet::prelude::*;

/// Runs the enrichment over `records` input records with `concurrency`
/// calls in flight; returns the records per second.
fn run(runtime: &tokio::runtime::Runtime, directory: std::net::SocketAddr, concurrency: usize, records: usize) -> f64 {
    let (input, output) = runtime.block_on(async {
        let input = harness::new_topic("bench-async-in", 1).await;
        let batch: Vec<TestRecord> = (0..records).map(|i| TestRecord::kv(&format!("k{i}"), &format!("u{i}"))).collect();
        harness::produce_many(&input, &batch).await;
        (input, harness::new_topic("bench-async-out", 1).await)
    });
    let app_id = harness::unique("bench-async");
    let state = tempfile::tempdir().unwrap();
    let config = harness::eos_config(&app_id, state.path(), "bench-0", &[]);
    let topology = async_enrichment::topology(&input, &output, directory, concurrency).unwrap();
    let app = App::new(config).unwrap().start(topology).unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    while app.stats().records_processed == 0 {
        assert!(Instant::now() < deadline, "nothing processed");
        std::thread::sleep(Duration::from_millis(2));
    }
    let started = Instant::now();
    let end = records as i64;
    while harness::committed_offsets(&app_id, &input, 1)[0] != Some(end) {
        assert!(Instant::now() < deadline, "the input was not committed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed();
    app.shutdown().unwrap();
    assert_eq!(harness::read_committed(&output).len(), records);
    records as f64 / elapsed.as_secs_f64()
}

fn main() {
    let latency_ms: u64 = std::env::var("RIVULET_BENCH_LATENCY_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let directory = async_enrichment::start_user_directory(Duration::from_millis(latency_ms)).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    println!("| calls in flight | records | records/s | vs 1 in flight | bound (concurrency / latency) |");
    println!("|---|---|---|---|---|");
    let mut base = None;
    for (concurrency, records) in [(1, 200), (8, 1_000), (64, 5_000)] {
        let rate = run(&runtime, directory, concurrency, records);
        let base = *base.get_or_insert(rate);
        let bound = concurrency as f64 * 1000.0 / latency_ms as f64;
        println!("| {concurrency} | {records} | {rate:.0} | {:.1}x | {bound:.0} |", rate / base);
    }
}
