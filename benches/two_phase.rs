//! Two-phase aggregation against a hot key, on a real broker: a count per
//! key over a Zipf-distributed key (s = 1.2), in one phase and with
//! `two_phase()`, measured in the same run: repartition records written
//! and input records per second.
//!
//! ```sh
//! cargo test --bench two_phase                                  # 1,000,000 records
//! RIVULET_BENCH_RECORDS=200000 cargo test --bench two_phase     # smaller
//! ```
//!
//! Knobs: `RIVULET_BENCH_RECORDS` (1,000,000), `RIVULET_BENCH_KEYS`
//! (distinct keys the Zipf law ranks, 100,000), `RIVULET_BENCH_GUARANTEE`
//! (`exactly_once`, at its default commit interval of 100 ms, or
//! `at_least_once`, at its default of 30 s), `RIVULET_BENCH_COMMIT_INTERVAL_MS`
//! (another commit interval), `RIVULET_BENCH_RUNS` (rounds of
//! one phase then two, 1). The input (4 partitions, null keys, the grouping
//! key in the value, so the count repartitions) is written once. Each run is
//! a fresh application that counts the whole backlog; its time is from
//! `App::start` until the last record is processed (the processed count
//! stops moving and the table counts every input record: two phases'
//! last partials wait for a commit), and the
//! repartition records are the records processed beyond the input (the
//! downstream sub-topology's; watermark markers are not counted). Both
//! runs' tables are checked equal, summing to the input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../integration-tests/harness/mod.rs"]
mod harness;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use harness::TestRecord;
use rivulet::prelude::*;

const PARTITIONS: i32 = 4;
const STORE: &str = "per-key";

/// Ranks 1..=n drawn with probability proportional to 1/rank^s, by inverse
/// transform on the cumulative weights; the uniform draws come from a
/// seeded xorshift, so every run has the same input.
struct Zipf {
    cdf: Vec<f64>,
    state: u64,
}

impl Zipf {
    fn new(n: usize, s: f64, seed: u64) -> Zipf {
        let mut total = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|k| {
                total += 1.0 / (k as f64).powf(s);
                total
            })
            .collect();
        cdf.iter_mut().for_each(|c| *c /= total);
        Zipf { cdf, state: seed.max(1) }
    }

    /// A rank from 0 (the hottest).
    fn sample(&mut self) -> usize {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let u = (self.state >> 11) as f64 / (1u64 << 53) as f64;
        self.cdf.partition_point(|c| *c < u).min(self.cdf.len() - 1)
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(default)
}

fn topology(input: &str, output: &str, two_phase: bool) -> Topology {
    let mut b = Topology::builder();
    let grouped =
        b.stream(input, Serdes::unit(), Serdes::string()).group_by(|_, k: &String| k.clone(), Serdes::string());
    let counts = if two_phase { grouped.two_phase().count(STORE) } else { grouped.count(STORE) };
    counts.to_stream().to(output, Serdes::string(), Serdes::i64());
    b.build().unwrap()
}

struct Run {
    time: Duration,
    repartitioned: u64,
    table: BTreeMap<String, i64>,
}

fn run(input: &str, records: u64, guarantee: &str, two_phase: bool, runtime: &tokio::runtime::Runtime) -> Run {
    // Empty: the guarantee's default.
    let commit_interval = std::env::var("RIVULET_BENCH_COMMIT_INTERVAL_MS").unwrap_or_default();
    let commit_interval = commit_interval.as_str();
    let output = runtime.block_on(harness::new_topic("two-phase-out", PARTITIONS));
    let app_id = harness::unique(if two_phase { "two-phase" } else { "one-phase" });
    let state = tempfile::tempdir().unwrap();
    let config = harness::app_config(
        &app_id,
        state.path(),
        &[("RIVULET__PROCESSING_GUARANTEE", guarantee), ("RIVULET__COMMIT_INTERVAL_MS", commit_interval)],
    );
    let started = Instant::now();
    let app = App::new(config).unwrap().start(topology(input, &output, two_phase)).unwrap();
    let store = || app.store::<String, i64>(STORE).ok().and_then(|s| s.range(None, None).ok()).unwrap_or_default();
    let (mut last, mut last_change, mut checked) = (0, Instant::now(), Instant::now());
    let table = loop {
        let processed = app.stats().records_processed;
        if processed != last {
            (last, last_change) = (processed, Instant::now());
        }
        // Done when the table counts every input record (the partials of
        // two phases wait for a commit) and nothing moved for a second.
        if processed > records
            && last_change.elapsed() > Duration::from_secs(1)
            && checked.elapsed() > Duration::from_secs(1)
        {
            checked = Instant::now();
            let table: BTreeMap<String, i64> = store().into_iter().collect();
            if table.values().sum::<i64>() == records as i64 && app.stats().records_processed == last {
                break table;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(1800), "the run did not finish: {:?}", app.stats());
        std::thread::sleep(Duration::from_millis(20));
    };
    let time = last_change - started;
    app.shutdown().unwrap();
    Run { time, repartitioned: last - records, table }
}

fn main() {
    let records = env("RIVULET_BENCH_RECORDS", 1_000_000);
    let keys = env("RIVULET_BENCH_KEYS", 100_000);
    let runs = env("RIVULET_BENCH_RUNS", 1);
    let guarantee = std::env::var("RIVULET_BENCH_GUARANTEE").unwrap_or_else(|_| "exactly_once".to_string());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let input = runtime.block_on(harness::new_topic("two-phase-in", PARTITIONS));
    let mut zipf = Zipf::new(keys, 1.2, 0x5eed);
    let mut hottest = 0;
    let started = Instant::now();
    runtime.block_on(async {
        let mut batch = Vec::with_capacity(50_000);
        for i in 0..records {
            let rank = zipf.sample();
            hottest += usize::from(rank == 0);
            batch.push(TestRecord {
                partition: (i % PARTITIONS as usize) as i32,
                key: None,
                ..TestRecord::kv("", &format!("key-{rank:06}"))
            });
            if batch.len() == 50_000 {
                harness::produce_many(&input, &batch).await;
                batch.clear();
            }
        }
        harness::produce_many(&input, &batch).await;
    });
    eprintln!(
        "wrote {records} records over {keys} Zipf(1.2) keys in {:.1?}; the hottest key has {hottest} ({:.1}%)",
        started.elapsed(),
        100.0 * hottest as f64 / records as f64
    );
    let records = records as u64;
    println!("| {guarantee}, {records} records | time | records/s | repartition records written |");
    println!("|---|---|---|---|");
    for round in 0..runs {
        let one = run(&input, records, &guarantee, false, &runtime);
        let two = run(&input, records, &guarantee, true, &runtime);
        assert_eq!(one.table.values().sum::<i64>(), records as i64, "one phase counted every record");
        assert!(one.table == two.table, "two phases give the one-phase table");
        for (name, r) in [("one phase", &one), ("two_phase()", &two)] {
            let rate = records as f64 / r.time.as_secs_f64();
            println!("| {name} (round {round}) | {:.2?} | {rate:.0} | {} |", r.time, r.repartitioned);
        }
        println!(
            "ratio (two / one): time {:.3}, records/s {:.2}, repartition records {:.4}",
            two.time.as_secs_f64() / one.time.as_secs_f64(),
            one.time.as_secs_f64() / two.time.as_secs_f64(),
            two.repartitioned as f64 / one.repartitioned.max(1) as f64
        );
    }
}
