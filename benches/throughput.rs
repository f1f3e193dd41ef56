//! Throughput on a real broker, first cut of issue 7: W0 (a bare rdkafka
//! consume-produce loop, the practical limit), W1 (stateless: parse JSON,
//! filter, map, write) and W2 (count per key with RocksDB and a changelog),
//! each under at-least-once and exactly-once, on the same input loaded once.
//!
//! ```sh
//! cargo bench --bench throughput                        # 500,000 records
//! RIVULET_BENCH_RECORDS=2000000 cargo bench --bench throughput
//! ```
//!
//! Each workload runs in this process, one after the other, and reports
//! records per second from start to the last output committed and CPU
//! seconds (user + system of the whole process, librdkafka's threads
//! included) per million records, with ratios to W0 of the same guarantee
//! measured in the same run. Not yet here: W3 (windows), Kafka Streams,
//! peak RSS per workload (needs a process each), latency at a fixed rate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../integration-tests/harness/mod.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::TestRecord;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use rivulet::prelude::*;

const PARTITIONS: i32 = 4;
const KEYS: u64 = 100_000;

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct View {
    user: String,
    page: String,
    amount: f64,
    ts: i64,
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Out {
    user: String,
    cents: i64,
}

/// CPU seconds (user + system) of this process so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which may hold spaces): utime is the
    // 12th, stime the 13th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn input(n: usize) -> Vec<TestRecord> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let user = format!("user-{:06}", x % KEYS);
            let v = View {
                user: user.clone(),
                page: format!("/page/{}", x % 97),
                amount: (x % 10_000) as f64 / 100.0 - 10.0,
                ts: 1_700_000_000_000 + i as i64,
            };
            let mut value = serde_json::to_vec(&v).unwrap();
            value.resize(100.max(value.len()), b' ');
            TestRecord {
                partition: (x % PARTITIONS as u64) as i32,
                key: Some(user.into_bytes()),
                value: Some(value),
                headers: vec![],
                timestamp: None,
            }
        })
        .collect()
}

struct Run {
    name: &'static str,
    guarantee: &'static str,
    seconds: f64,
    cpu: f64,
}

/// W0: consume every record and produce it unchanged, committing offsets
/// (in a transaction under exactly-once) every 100 ms.
fn w0(input: &str, output: &str, n: usize, exactly_once: bool) -> (f64, f64) {
    let group = harness::unique("w0");
    let consumer: BaseConsumer = harness::client_config()
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut pc = harness::client_config();
    if exactly_once {
        pc.set("transactional.id", harness::unique("w0-txn"));
    }
    let producer: BaseProducer = pc.create().unwrap();
    if exactly_once {
        producer.init_transactions(Duration::from_secs(30)).unwrap();
    }
    consumer.subscribe(&[input]).unwrap();
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let mut done = 0usize;
    let mut last_commit = Instant::now();
    let mut offsets: std::collections::BTreeMap<i32, i64> = Default::default();
    if exactly_once {
        producer.begin_transaction().unwrap();
    }
    let commit = |offsets: &std::collections::BTreeMap<i32, i64>| {
        let mut tpl = TopicPartitionList::new();
        for (p, o) in offsets {
            tpl.add_partition_offset(input, *p, Offset::Offset(*o)).unwrap();
        }
        if exactly_once {
            producer
                .send_offsets_to_transaction(&tpl, &consumer.group_metadata().unwrap(), Duration::from_secs(30))
                .unwrap();
            producer.commit_transaction(Duration::from_secs(30)).unwrap();
            producer.begin_transaction().unwrap();
        } else {
            producer.flush(Duration::from_secs(30)).unwrap();
            consumer.commit(&tpl, CommitMode::Async).unwrap();
        }
    };
    while done < n {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            let mut r = BaseRecord::<[u8], [u8]>::to(output);
            if let Some(k) = m.key() {
                r = r.key(k);
            }
            if let Some(v) = m.payload() {
                r = r.payload(v);
            }
            while let Err((e, back)) = producer.send(r) {
                assert!(matches!(e, rdkafka::error::KafkaError::MessageProduction(_)), "{e}");
                producer.poll(Duration::from_millis(10));
                r = back;
            }
            offsets.insert(m.partition(), m.offset() + 1);
            done += 1;
        }
        producer.poll(Duration::ZERO);
        if last_commit.elapsed() >= Duration::from_millis(100) {
            commit(&offsets);
            last_commit = Instant::now();
        }
    }
    commit(&offsets);
    if exactly_once {
        producer.abort_transaction(Duration::from_secs(30)).unwrap();
    }
    (t0.elapsed().as_secs_f64(), cpu_seconds() - cpu0)
}

fn w1(input: &str, output: &str) -> Topology {
    let mut b = Topology::builder();
    b.stream(input, Serdes::string(), Serdes::json::<View>())
        .filter(|_, v| v.amount > -5.0)
        .map_values(|v: View| Out { user: v.user, cents: (v.amount * 100.0) as i64 })
        .to(output, Serdes::string(), Serdes::json::<Out>());
    b.build().unwrap()
}

fn w2(input: &str, output: &str) -> Topology {
    let mut b = Topology::builder();
    b.stream(input, Serdes::string(), Serdes::bytes()).group_by_key().count("per-user").to_stream().to(
        output,
        Serdes::string(),
        Serdes::i64(),
    );
    b.build().unwrap()
}

/// Runs a rivulet topology until it processed `n` records, then shuts it
/// down (the final commit included in the time).
fn rivulet(topology: Topology, n: usize, guarantee: &str) -> (f64, f64) {
    let state = tempfile::tempdir().unwrap();
    let config = harness::app_config(
        &harness::unique("bench"),
        state.path(),
        &[("RIVULET__PROCESSING_GUARANTEE", guarantee), ("RIVULET__COMMIT_INTERVAL_MS", "100")],
    );
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let app = App::new(config).unwrap().start(topology).unwrap();
    while app.stats().records_processed < n as u64 {
        assert!(!app.has_stopped(), "the application stopped");
        std::thread::sleep(Duration::from_millis(20));
    }
    app.shutdown().unwrap();
    (t0.elapsed().as_secs_f64(), cpu_seconds() - cpu0)
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("RIVULET_BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(500_000);
    let input_topic = harness::new_topic("bench-in", PARTITIONS).await;
    let records = input(n);
    let t = Instant::now();
    harness::produce_many(&input_topic, &records).await;
    eprintln!("loaded {n} records of ~100 bytes into {input_topic} in {:.1}s", t.elapsed().as_secs_f64());
    drop(records);

    let mut runs = Vec::new();
    for (guarantee, eos) in [("at_least_once", false), ("exactly_once", true)] {
        let out = harness::new_topic("bench-w0", PARTITIONS).await;
        let (seconds, cpu) = w0(&input_topic, &out, n, eos);
        runs.push(Run { name: "W0 raw rdkafka", guarantee, seconds, cpu });
        let out = harness::new_topic("bench-w1", PARTITIONS).await;
        let (seconds, cpu) = rivulet(w1(&input_topic, &out), n, guarantee);
        runs.push(Run { name: "W1 stateless", guarantee, seconds, cpu });
        let out = harness::new_topic("bench-w2", PARTITIONS).await;
        let (seconds, cpu) = rivulet(w2(&input_topic, &out), n, guarantee);
        runs.push(Run { name: "W2 count/key", guarantee, seconds, cpu });
    }
    println!("| workload | guarantee | seconds | records/s | CPU s per 1M | throughput vs W0 | CPU/record vs W0 |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for r in &runs {
        let w0 = runs.iter().find(|b| b.guarantee == r.guarantee && b.name.starts_with("W0")).unwrap();
        let rate = n as f64 / r.seconds;
        println!(
            "| {} | {} | {:.1} | {:.0} | {:.2} | {:.2} | {:.2} |",
            r.name,
            r.guarantee,
            r.seconds,
            rate,
            r.cpu / n as f64 * 1e6,
            rate / (n as f64 / w0.seconds),
            r.cpu / w0.cpu
        );
    }
}
