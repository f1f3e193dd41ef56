//! Issue 7's benchmark: rivulet against a bare rdkafka loop (W0, the
//! practical limit) and against Kafka Streams 4.3.1, on one input loaded
//! once into the real broker.
//!
//! ```sh
//! cargo bench --bench throughput                          # 2,000,000 records, 3 runs
//! RIVULET_BENCH_RECORDS=300000 RIVULET_BENCH_RUNS=1 cargo bench --bench throughput
//! ```
//!
//! Workloads, each under `at_least_once` and `exactly_once` with a 100 ms
//! commit interval: W0 a bare rdkafka consume-produce loop (transactional
//! under exactly-once); W1 stateless (parse JSON, filter, map, write JSON);
//! W2 count per key (RocksDB store with its changelog); W3 tumbling
//! one-minute window count on event time, emitted when windows close; W4
//! (issue 14) a stream-table join: each input record joined with its user's
//! profile from a table of `RIVULET_BENCH_KEYS` profiles (`left_join_table`,
//! Kafka Streams' `leftJoin` with a `KTable`), written as JSON. W1-W4
//! run in rivulet and in Kafka Streams (`benches/kstreams`, built with Maven
//! on the first run). Kafka Streams runs with its record cache on (its
//! default), so its W2 writes at most one count per key per commit; rivulet
//! writes every count unless `RIVULET_BENCH_CACHING=1`, which adds
//! `with_caching()` to its W2 table.
//!
//! W4's table topic is loaded once, co-partitioned with the input (the
//! input puts key `user-x` in partition `x % 4`, so the table does too; the
//! keys must be a multiple of 4), with timestamps older than the input's.
//! Each W4 run gets a fresh, empty stream topic: the driver spawns the
//! engine, waits until the group's committed offsets of the table reach its
//! end (both engines have loaded the table: rivulet does not order a task's
//! partitions by timestamp, so a stream record read before its profile
//! would join with null), then produces the same records as the shared
//! input to the stream topic. W4's time and CPU run from the start of that
//! production (the stream becoming available; the driver's producer stays
//! ahead of every engine, on the same 2 cores) until the committed offsets
//! reach the stream's end; the table load (time and CPU from the spawn) is
//! printed apart, with the outputs whose profile is null. See
//! `docs/benchmarks.md`, "Run of 2026-12-03", for the figures.
//!
//! Every workload runs in a process of its own (this binary re-executed, or
//! the JVM), so its CPU time (user + system, all threads, from
//! `/proc/<pid>/stat`) and peak RSS (`VmHWM`) are its own. Time runs from
//! the spawn until the group's committed offsets reach the end of the
//! input: the last output is committed by then, in the same transaction
//! under exactly-once, before the offsets under at-least-once. That holds
//! for W3 as well in rivulet, which closes windows as the watermark moves;
//! Kafka Streams' `onWindowClose` emits closed windows at most once a second
//! per task, when a record arrives, so at the end of the input it may never
//! emit the windows the last records closed: the driver counts the windows
//! the input closes (end + grace <= the partition's last timestamp) and
//! prints how many of them each engine wrote. The runs
//! alternate: each round runs every workload once, rivulet before Kafka
//! Streams in even rounds and after it in odd ones; the tables give
//! medians over the rounds and the spread (min-max).
//!
//! Written per input record, after each run (the process stopped): output
//! records, and changelog + repartition records (the application's topics
//! named `<application id>-*-changelog` / `-repartition`; Kafka Streams
//! names W2's and W3's `<id>-per-user-changelog` and
//! `<id>-per-user-minute-changelog`, as rivulet does, and neither engine
//! repartitions W2 or W3), counted by reading them `read_committed` (so
//! transaction markers and aborted records are left out); and broker bytes:
//! the sizes of the `.log` segment files of the output and internal topics'
//! partitions in the test broker's data dir
//! (`$RIVULET_CACHE_DIR`/`~/.cache/rivulet` + `broker-<port>/data`, see
//! `integration-tests/kafka/broker.sh`; rdkafka has no DescribeLogDirs), so
//! batch headers, transaction markers and aborted records count. Output
//! topics, and Kafka Streams' W3 changelog (which it would make
//! `compact,delete` with a one-day retention), are created with
//! `retention.ms=-1`: the input's timestamps are from 2023. A count marked
//! `>=` had records deleted by the broker's retention all the same.
//!
//! Latency: a second phase feeds W0, W1 and W2 a fresh topic at a fixed
//! rate (below every engine's saturation) and reads the output
//! `read_committed` as it appears: latency is the wall clock at receipt
//! minus the input record's create time (which the output keeps).
//!
//! Nexmark (issue 15, item 4; `benches/nexmark/`): queries q0-q5, q7 and
//! q8 as workloads `Q0`..`Q8`, on their own generated input, after W0-W4 by
//! default (`RIVULET_BENCH_NEXMARK_EVENTS`, `RIVULET_BENCH_NEXMARK_RUNS`; see
//! the module docs of `nexmark`).
//!
//! Settings (environment): `RIVULET_BENCH_RECORDS` (2,000,000),
//! `RIVULET_BENCH_KEYS` (100,000), `RIVULET_BENCH_SEED`, `RIVULET_BENCH_RUNS`
//! (3), `RIVULET_BENCH_WORKLOADS` (e.g. `W0,W1`), `RIVULET_BENCH_KSTREAMS`
//! (`0` to leave Kafka Streams out), `RIVULET_BENCH_JAVA_OPTS`,
//! `RIVULET_BENCH_CACHING` (`1`: rivulet's W2 table `with_caching()`),
//! `RIVULET_BENCH_RATE` (records/s in the latency phase, 5,000),
//! `RIVULET_BENCH_LATENCY_SECS` (20; `0` skips the phase),
//! `RIVULET_BENCH_READER_ISOLATION` (`read_uncommitted` shows when outputs
//! reach the broker rather than when they become visible to
//! `read_committed` readers), `RIVULET_BENCH_LOG` (rivulet's log level,
//! printed). Any `RIVULET__*` variable is passed to the rivulet workloads'
//! configuration, to try a setting; `RIVULET_BENCH_B` (space-separated
//! `RIVULET__KEY=value` pairs) adds a "rivulet B" run of each rivulet
//! workload with those settings to every round, an A/B in one run.
//!
//! Besides the table, it prints the steady-state rate (10% to 90% of the
//! input committed) and what the broker served during each run (its
//! request metrics over JMX, `throughput/broker.rs`): requests per 1,000
//! input records by type, produce KiB per request, broker CPU per record,
//! and in the latency phase each transaction request's rate and the
//! broker's mean time on it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "throughput/broker.rs"]
mod broker;
#[path = "../integration-tests/harness/mod.rs"]
mod harness;
#[path = "nexmark/mod.rs"]
mod nexmark;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use harness::child::ChildApp;
use harness::TestRecord;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, Timestamp, TopicPartitionList};
use rivulet::prelude::*;

const PARTITIONS: i32 = 4;
const COMMIT_INTERVAL_MS: &str = "100";
const KSTREAMS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/kstreams");
const KSTREAMS_JAR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/kstreams/target/rivulet-kstreams-bench.jar");
/// Event time of the first input record; each later one is 1 ms later.
const EVENT_TIME_START: i64 = 1_700_000_000_000;

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

/// W4's table value: user id -> profile.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Profile {
    name: String,
    tier: String,
    country: String,
}

/// W4's output: the input record's fields and its user's profile (`null`
/// when the table lacks the user when the record is processed).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Enriched {
    user: String,
    page: String,
    amount: f64,
    ts: i64,
    profile: Option<Profile>,
}

/// What W4's output value holds where the table side is missing.
const UNJOINED: &[u8] = b"\"profile\":null";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{name}={v} is not a valid value")),
        Err(_) => default,
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A deterministic generator (xorshift64).
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// One input record: a key from the key space, a ~100-byte JSON value.
    fn record(&mut self, keys: u64, ts: i64) -> TestRecord {
        let x = self.next();
        let user = format!("user-{:06}", x % keys);
        let v = View {
            user: user.clone(),
            page: format!("/page/{}", x % 97),
            amount: (x % 10_000) as f64 / 100.0 - 10.0,
            ts,
        };
        let mut value = serde_json::to_vec(&v).unwrap();
        value.resize(100.max(value.len()), b' ');
        TestRecord {
            partition: (x % PARTITIONS as u64) as i32,
            key: Some(user.into_bytes()),
            value: Some(value),
            headers: vec![],
            timestamp: Some(ts),
        }
    }
}

/// W4's table: one profile per key `user-000000`.. of the input, in the
/// partition the input puts that key in (`x % PARTITIONS` where the key is
/// `x % keys`: the same partition for every record of a key when `keys` is a
/// multiple of `PARTITIONS`), so table and stream are co-partitioned. The
/// timestamps are older than every input record's.
fn table_records(keys: u64) -> Vec<TestRecord> {
    const TIERS: [&str; 3] = ["bronze", "silver", "gold"];
    const COUNTRIES: [&str; 5] = ["DE", "FR", "US", "JP", "BR"];
    (0..keys)
        .map(|id| {
            let p = Profile {
                name: format!("name-{id:06}"),
                tier: TIERS[(id % 3) as usize].into(),
                country: COUNTRIES[(id % 5) as usize].into(),
            };
            TestRecord {
                partition: (id % PARTITIONS as u64) as i32,
                key: Some(format!("user-{id:06}").into_bytes()),
                value: Some(serde_json::to_vec(&p).unwrap()),
                headers: vec![],
                timestamp: Some(EVENT_TIME_START - 1),
            }
        })
        .collect()
}

/// W4's inputs: the table topic (loaded before the runs) and what makes a
/// fresh stream topic per run (the same records as the shared input).
struct JoinInput {
    table: String,
    table_end: TopicPartitionList,
    n: usize,
    keys: u64,
    seed: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Engine {
    Raw,
    Rivulet,
    /// rivulet with the settings of `RIVULET_BENCH_B` (an A/B in one run).
    RivuletB,
    KStreams,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct Workload {
    name: &'static str,
    engine: Engine,
}

impl Workload {
    fn label(&self) -> String {
        match self.engine {
            Engine::Raw => "W0 raw rdkafka".into(),
            Engine::Rivulet => format!("{} rivulet", self.name),
            Engine::RivuletB => format!("{} rivulet B", self.name),
            Engine::KStreams => format!("{} Kafka Streams", self.name),
        }
    }
}

/// What one run of a workload measured.
#[derive(Clone, Debug)]
struct Measured {
    seconds: f64,
    /// Seconds from 10% to 90% of the input committed (the steady state).
    steady: f64,
    /// What the broker served during the run (see `broker.rs`).
    broker: Option<broker::Snapshot>,
    cpu: f64,
    rss_mib: f64,
    written: Written,
    /// W4: seconds from the spawn until the table was loaded (its offsets
    /// committed to the end), and the CPU seconds spent until then (not in
    /// `cpu`); seconds the driver took to produce the stream input.
    table_load: Option<(f64, f64, f64)>,
}

/// What one run wrote to the broker (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
struct Written {
    /// Output records, committed (`None` for W0, killed mid-transaction).
    outputs: Option<u64>,
    /// W4: committed outputs whose table side is null.
    unjoined: Option<u64>,
    /// Changelog and repartition records, committed.
    internal: u64,
    /// Bytes of the output and internal topics' log segments.
    bytes: Option<u64>,
    /// The broker's retention deleted some of the records counted.
    truncated: bool,
}

// ---------------------------------------------------------------- children

/// The child side (`harness::child::spec()`): `<workload>|<guarantee>|<input>|<output>|<group>|<state dir>`.
fn child(spec: &str) {
    let parts: Vec<&str> = spec.split('|').collect();
    let [workload, guarantee, input, output, group, state] = parts[..] else { panic!("bad child spec {spec}") };
    let (workload, variant_b) = match workload.strip_suffix("+B") {
        Some(w) => (w, true),
        None => (workload, false),
    };
    if workload == "W0" {
        w0(input, output, group, guarantee == "exactly_once");
        return;
    }
    let topology = match workload {
        "W1" => w1(input, output),
        "W2" => w2(input, output),
        "W3" => w3(input, output),
        "W4" => w4(input, output),
        q if q.starts_with('Q') => nexmark::topology(q, input, output),
        other => panic!("unknown workload {other}"),
    };
    let mut env: Vec<(String, String)> = [
        ("RIVULET__APPLICATION_ID", group),
        ("RIVULET__KAFKA__BOOTSTRAP_SERVERS", harness::bootstrap()),
        ("RIVULET__STATE_DIR", state),
        ("RIVULET__PROCESSING_GUARANTEE", guarantee),
        ("RIVULET__COMMIT_INTERVAL_MS", COMMIT_INTERVAL_MS),
        ("RIVULET__HTTP__LISTEN", "127.0.0.1:0"),
        ("RIVULET__LOG__LEVEL", &std::env::var("RIVULET_BENCH_LOG").unwrap_or_else(|_| "warn".into())),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    // Other rivulet settings from the environment (to try a setting, e.g.
    // RIVULET__KAFKA__PRODUCER__LINGER_MS=20), after the bench's own.
    env.extend(std::env::vars().filter(|(k, _)| k.starts_with("RIVULET__")));
    if variant_b {
        env.extend(b_settings());
    }
    let config = rivulet::Config::loader().env(env).load().unwrap();
    rivulet::init_logging(&config).unwrap();
    App::new(config).unwrap().run(topology).unwrap();
}

/// Waits until every record is delivered, serving delivery reports every
/// millisecond, as rivulet's producer does: rdkafka's own `flush` (which
/// `commit_transaction` calls first) polls in slices of up to 100 ms, and
/// `BaseProducer::poll` waits out its whole timeout, so it takes about
/// 100 ms whenever a record is in flight (issue 15).
fn flush(producer: &BaseProducer) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match producer.flush(Duration::ZERO) {
            Ok(()) => return,
            Err(e) => {
                assert!(Instant::now() < deadline, "flush: {e}");
                producer.poll(Duration::from_millis(1));
            }
        }
    }
}

/// W0: consume every record and produce it unchanged, committing offsets
/// (in a transaction under exactly-once) every 100 ms, until killed.
fn w0(input: &str, output: &str, group: &str, exactly_once: bool) {
    let consumer: BaseConsumer = harness::client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        // rivulet's default (`kafka::FETCH_QUEUE_BACKOFF_MS`), so that W0
        // stays the client's practical limit: librdkafka's 1000 ms starved
        // the loop (issue 15).
        .set("fetch.queue.backoff.ms", "10")
        .create()
        .unwrap();
    let mut pc = harness::client_config();
    if exactly_once {
        pc.set("transactional.id", format!("{group}-txn"));
    }
    let producer: BaseProducer = pc.create().unwrap();
    if exactly_once {
        producer.init_transactions(Duration::from_secs(30)).unwrap();
        producer.begin_transaction().unwrap();
    }
    consumer.subscribe(&[input]).unwrap();
    let mut last_commit = Instant::now();
    let mut offsets: BTreeMap<i32, i64> = BTreeMap::new();
    loop {
        if let Some(m) = consumer.poll(Duration::from_millis(20)) {
            let m = m.unwrap();
            let mut r = BaseRecord::<[u8], [u8]>::to(output);
            if let Some(k) = m.key() {
                r = r.key(k);
            }
            if let Some(v) = m.payload() {
                r = r.payload(v);
            }
            if let Timestamp::CreateTime(t) = m.timestamp() {
                r = r.timestamp(t);
            }
            while let Err((e, back)) = producer.send(r) {
                assert!(matches!(e, rdkafka::error::KafkaError::MessageProduction(_)), "{e}");
                producer.poll(Duration::from_millis(10));
                r = back;
            }
            offsets.insert(m.partition(), m.offset() + 1);
        }
        producer.poll(Duration::ZERO);
        if last_commit.elapsed() >= Duration::from_millis(100) && !offsets.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for (p, o) in &offsets {
                tpl.add_partition_offset(input, *p, Offset::Offset(*o)).unwrap();
            }
            flush(&producer);
            if exactly_once {
                producer
                    .send_offsets_to_transaction(&tpl, &consumer.group_metadata().unwrap(), Duration::from_secs(30))
                    .unwrap();
                producer.commit_transaction(Duration::from_secs(30)).unwrap();
                producer.begin_transaction().unwrap();
            } else {
                consumer.commit(&tpl, CommitMode::Async).unwrap();
            }
            last_commit = Instant::now();
        }
    }
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
    let counts = b.stream(input, Serdes::string(), Serdes::bytes()).group_by_key().count("per-user");
    let counts = if caching() { counts.with_caching() } else { counts };
    counts.to_stream().to(output, Serdes::string(), Serdes::i64());
    b.build().unwrap()
}

/// `RIVULET_BENCH_B`: `KEY=VALUE` pairs separated by spaces (rivulet
/// settings, e.g. `RIVULET__KAFKA__PRODUCER__LINGER_MS=20`), which the "rivulet B"
/// runs add to the "rivulet" ones: an A/B in one run.
fn b_settings() -> Vec<(String, String)> {
    std::env::var("RIVULET_BENCH_B")
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn caching() -> bool {
    env_or::<String>("RIVULET_BENCH_CACHING", "0".into()) == "1"
}

fn w3(input: &str, output: &str) -> Topology {
    let mut b = Topology::builder();
    b.stream_with_time(input, Serdes::string(), Serdes::bytes(), Timestamps::record())
        .group_by_key()
        .windowed_by(Windows::tumbling(Duration::from_secs(60)).grace(Duration::from_secs(5)))
        .emit_final()
        .count("per-user-minute")
        .map(|w, count| (format!("{}@{}", w.key, w.start), count))
        .to(output, Serdes::string(), Serdes::i64());
    b.build().unwrap()
}

/// W4: each input record joined with its user's profile from the table
/// (`left_join_table`), written as JSON. `input` is `<stream>,<table>`.
fn w4(input: &str, output: &str) -> Topology {
    let (stream, table) = input.split_once(',').expect("W4's input is <stream topic>,<table topic>");
    let mut b = Topology::builder();
    let profiles = b.table(table, "profiles", Serdes::string(), Serdes::json::<Profile>());
    b.stream(stream, Serdes::string(), Serdes::json::<View>())
        .left_join_table(&profiles, |_, v, p| Enriched {
            user: v.user.clone(),
            page: v.page.clone(),
            amount: v.amount,
            ts: v.ts,
            profile: p.cloned(),
        })
        .to(output, Serdes::string(), Serdes::json::<Enriched>());
    b.build().unwrap()
}

// ---------------------------------------------------------------- driver

/// CPU seconds (user + system, all threads) and peak RSS (MiB) of a process.
fn proc_usage(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces): utime is the
    // 12th, stime the 13th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hwm_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    (ticks / 100.0, hwm_kib / 1024.0)
}

fn spawn(w: Workload, guarantee: &str, input: &str, output: &str, group: &str, state: &Path) -> ChildApp {
    match w.engine {
        Engine::Raw | Engine::Rivulet => {
            ChildApp::spawn(&[], &format!("{}|{guarantee}|{input}|{output}|{group}|{}", w.name, state.display()))
        }
        Engine::RivuletB => {
            ChildApp::spawn(&[], &format!("{}+B|{guarantee}|{input}|{output}|{group}|{}", w.name, state.display()))
        }
        Engine::KStreams => {
            let mut c = Command::new("java");
            if let Ok(opts) = std::env::var("RIVULET_BENCH_JAVA_OPTS") {
                c.args(opts.split_whitespace());
            }
            c.arg("-jar").arg(KSTREAMS_JAR).args([
                w.name,
                guarantee,
                harness::bootstrap(),
                input,
                output,
                group,
                &state.display().to_string(),
                COMMIT_INTERVAL_MS,
            ]);
            ChildApp::start(c)
        }
    }
}

/// Stops a run: SIGTERM (SIGKILL for the bare loop), then SIGKILL after
/// 30 s. With `RIVULET_BENCH_LOG` set, prints what the child wrote (rivulet's
/// logs at that level, Kafka Streams' output).
fn stop(mut child: ChildApp, engine: Engine) {
    let signal = if engine == Engine::Raw { nix::sys::signal::SIGKILL } else { nix::sys::signal::SIGTERM };
    child.signal(signal);
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if std::env::var("RIVULET_BENCH_LOG").is_ok() {
        print!("{}", child.log());
    }
}

/// Runs one workload over the whole input: from the spawn until the group's
/// committed offsets reach `end`. W4 (`join`) runs on a fresh stream topic
/// instead: from the spawn until the table is loaded (the group's committed
/// offsets of the table topic at its end), then the driver produces the
/// stream, and the time (and CPU) measured runs from the start of that
/// production until the committed offsets reach the stream's end.
async fn run_once(
    w: Workload,
    guarantee: &str,
    input: &str,
    end: &TopicPartitionList,
    join: Option<&JoinInput>,
) -> Measured {
    // The outputs keep the input's 2023 timestamps: keep them from the
    // broker's time-based retention until they are counted.
    let output = harness::unique(&format!("bench-{}", w.name.to_lowercase()));
    harness::create_topic(&output, PARTITIONS, &[("retention.ms", "-1")]).await;
    let group = harness::unique(&format!("bench-{}", w.name.to_lowercase()));
    let state = tempfile::tempdir().unwrap();
    if w == (Workload { name: "W3", engine: Engine::KStreams }) {
        // Kafka Streams makes its window changelog `compact,delete` with a
        // one-day retention, which the broker's cleaner applies within
        // seconds to records from 2023. Created here as Kafka Streams would,
        // but kept, so that it can be counted; Kafka Streams checks only
        // the partition count of an existing internal topic.
        let changelog = format!("{group}-per-user-minute-changelog");
        harness::create_topic(&changelog, PARTITIONS, &[("cleanup.policy", "compact,delete"), ("retention.ms", "-1")])
            .await;
    }
    let checker: BaseConsumer = harness::client_config().set("group.id", &group).create().unwrap();
    let before = broker::snapshot(KSTREAMS_JAR);
    let spawned = Instant::now();
    let Some(join) = join else {
        let mut child = spawn(w, guarantee, input, &output, &group, state.path());
        let steady = wait_committed(&mut child, w, guarantee, &checker, end, spawned).await;
        let seconds = spawned.elapsed().as_secs_f64();
        let (cpu, rss_mib) = proc_usage(child.id());
        let after = broker::snapshot(KSTREAMS_JAR);
        stop(child, w.engine);
        let written = written(w, &output, &group);
        let broker = before.zip(after).map(|(b, a)| broker::delta(&b, &a));
        return Measured { seconds, steady, broker, cpu, rss_mib, written, table_load: None };
    };
    let stream = harness::unique("bench-w4-in");
    harness::create_topic(&stream, PARTITIONS, &[("retention.ms", "-1")]).await;
    let mut gen = Gen(join.seed);
    let records: Vec<TestRecord> = (0..join.n).map(|i| gen.record(join.keys, EVENT_TIME_START + i as i64)).collect();
    let mut child = spawn(w, guarantee, &format!("{stream},{}", join.table), &output, &group, state.path());
    wait_committed(&mut child, w, guarantee, &checker, &join.table_end, spawned).await;
    let table_seconds = spawned.elapsed().as_secs_f64();
    let (table_cpu, _) = proc_usage(child.id());
    let started = Instant::now();
    harness::produce_many(&stream, &records).await;
    let produce_seconds = started.elapsed().as_secs_f64();
    drop(records);
    let mut stream_end = TopicPartitionList::new();
    for (p, (_, high)) in harness::watermarks(&stream).into_iter().enumerate() {
        stream_end.add_partition_offset(&stream, p as i32, Offset::Offset(high)).unwrap();
    }
    let steady = wait_committed(&mut child, w, guarantee, &checker, &stream_end, started).await;
    let seconds = started.elapsed().as_secs_f64();
    let (cpu, rss_mib) = proc_usage(child.id());
    stop(child, w.engine);
    let written = written(w, &output, &group);
    Measured {
        seconds,
        steady,
        // The driver's own production of the stream would be counted.
        broker: None,
        cpu: cpu - table_cpu,
        rss_mib,
        written,
        table_load: Some((table_seconds, table_cpu, produce_seconds)),
    }
}

/// Waits until `checker`'s group has committed `end` (every partition), the
/// child still running. Returns the seconds from 10% to 90% of the records
/// committed (the steady state, without start-up and the last batch), as
/// seen by polling every 50 ms.
async fn wait_committed(
    child: &mut ChildApp,
    w: Workload,
    guarantee: &str,
    checker: &BaseConsumer,
    end: &TopicPartitionList,
    spawned: Instant,
) -> f64 {
    let mut wanted = TopicPartitionList::new();
    for e in end.elements() {
        wanted.add_partition(e.topic(), e.partition());
    }
    let offset = |o: Offset| if let Offset::Offset(o) = o { o.max(0) } else { 0 };
    let total: i64 = end.elements().iter().map(|e| offset(e.offset())).sum();
    let (mut t10, mut t90) = (None, None);
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(status) = child.try_wait() {
            panic!("{} ({guarantee}) exited early with {status}; log:\n{}", w.label(), child.log());
        }
        assert!(spawned.elapsed() < Duration::from_secs(900), "{} ({guarantee}) took over 15 minutes", w.label());
        let Ok(committed) = checker.committed_offsets(wanted.clone(), Duration::from_secs(5)) else { continue };
        let sum: i64 = committed.elements().iter().map(|e| offset(e.offset())).sum();
        if t10.is_none() && sum * 10 >= total {
            t10 = Some(spawned.elapsed());
        }
        if t90.is_none() && sum * 10 >= total * 9 {
            t90 = Some(spawned.elapsed());
        }
        let done = end.elements().iter().all(|e| {
            e.offset() == Offset::Offset(0)
                || committed.find_partition(e.topic(), e.partition()).map(|c| c.offset()) == Some(e.offset())
        });
        if done {
            let t90 = t90.unwrap_or_else(|| spawned.elapsed());
            // At least one polling period, for a run that jumped from below
            // 10% to above 90% between two polls.
            return (t90 - t10.unwrap_or(t90)).as_secs_f64().max(0.05);
        }
    }
}

/// What a stopped run left on the broker: its output topic and its
/// internal topics (`<group>-*-changelog`, `<group>-*-repartition`).
fn written(w: Workload, output: &str, group: &str) -> Written {
    let probe: BaseConsumer = harness::client_config().create().unwrap();
    let md = probe.fetch_metadata(None, Duration::from_secs(30)).unwrap();
    let prefix = format!("{group}-");
    let internal: Vec<(String, i32)> = md
        .topics()
        .iter()
        .filter(|t| {
            t.name().starts_with(&prefix) && (t.name().ends_with("-changelog") || t.name().ends_with("-repartition"))
        })
        .map(|t| (t.name().to_string(), t.partitions().len() as i32))
        .collect();
    eprintln!("  internal topics of {}: {:?}", w.label(), internal.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>());
    let mut written = Written::default();
    for (topic, partitions) in &internal {
        let (n, _, truncated) = count_committed_matching(topic, *partitions, b"");
        written.internal += n;
        written.truncated |= truncated;
    }
    if w.engine != Engine::Raw {
        let (n, unjoined, truncated) = count_committed_matching(output, PARTITIONS, UNJOINED);
        written.outputs = Some(n);
        if w.name == "W4" {
            written.unjoined = Some(unjoined);
        }
        written.truncated |= truncated;
    }
    written.bytes = broker_data_dir().map(|dir| {
        let mut topics = internal.clone();
        topics.push((output.to_string(), PARTITIONS));
        topics.iter().map(|(t, partitions)| log_bytes(&dir, t, *partitions)).sum()
    });
    written
}

/// Committed records of `topic`, how many of their values contain `needle`
/// (a non-empty one), and whether retention deleted some (a log start
/// offset above 0).
fn count_committed_matching(topic: &str, partitions: i32, needle: &[u8]) -> (u64, u64, bool) {
    let consumer: BaseConsumer = harness::client_config()
        .set("group.id", harness::unique("bench-count"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    let mut ends = Vec::new();
    let mut truncated = false;
    for p in 0..partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10)).unwrap();
        truncated |= low > 0;
        if high > low {
            tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
            ends.push((p, high));
        }
    }
    if ends.is_empty() {
        return (0, 0, truncated);
    }
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut n = 0u64;
    let mut matching = 0u64;
    loop {
        let idle = match consumer.poll(Duration::from_millis(100)) {
            Some(m) => {
                let m = m.unwrap();
                n += 1;
                if !needle.is_empty() && m.payload().is_some_and(|v| v.windows(needle.len()).any(|x| x == needle)) {
                    matching += 1;
                }
                false
            }
            None => true,
        };
        if idle || n.is_multiple_of(10_000) {
            // Positions pass transaction markers and aborted records too.
            let positions = consumer.position().unwrap();
            let done = ends.iter().all(|(p, high)| {
                matches!(positions.find_partition(topic, *p).map(|e| e.offset()), Some(Offset::Offset(o)) if o >= *high)
            });
            if done {
                return (n, matching, truncated);
            }
        }
        assert!(Instant::now() < deadline, "counting {topic} took over 5 minutes");
    }
}

/// The test broker's log dir, when it runs on this machine.
fn broker_data_dir() -> Option<PathBuf> {
    let port = harness::bootstrap().rsplit(':').next()?;
    let cache = match std::env::var("RIVULET_CACHE_DIR") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => PathBuf::from(std::env::var("HOME").ok()?).join(".cache/rivulet"),
    };
    let dir = cache.join(format!("broker-{port}")).join("data");
    dir.is_dir().then_some(dir)
}

/// Bytes of the `.log` segment files of `topic`'s partitions in `dir`.
fn log_bytes(dir: &Path, topic: &str, partitions: i32) -> u64 {
    (0..partitions)
        .filter_map(|p| std::fs::read_dir(dir.join(format!("{topic}-{p}"))).ok())
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// The W3 windows the input closes: per partition (one task each), the
/// (key, window) pairs whose end + grace is at or below the partition's
/// last timestamp.
fn closable_windows(records: &[TestRecord]) -> usize {
    const SIZE: i64 = 60_000;
    const GRACE: i64 = 5_000;
    let mut last = [i64::MIN; PARTITIONS as usize];
    for r in records {
        let p = r.partition as usize;
        last[p] = last[p].max(r.timestamp.unwrap());
    }
    let mut windows = HashSet::new();
    for r in records {
        let ts = r.timestamp.unwrap();
        let start = ts - ts.rem_euclid(SIZE);
        if start + SIZE + GRACE <= last[r.partition as usize] {
            windows.insert((r.key.as_deref().unwrap(), start));
        }
    }
    windows.len()
}

/// The latency phase for one workload: a fixed input rate, latency from
/// each input record's create time to its output's receipt.
async fn latency(w: Workload, guarantee: &str, keys: u64, rate: u64, secs: u64) -> Latency {
    let input = harness::new_topic("lat-in", PARTITIONS).await;
    let output = harness::new_topic("lat-out", PARTITIONS).await;
    let group = harness::unique("lat");
    let state = tempfile::tempdir().unwrap();
    let child = spawn(w, guarantee, &input, &output, &group, state.path());
    let mut broker_before = None;

    let first_output = Arc::new(AtomicI64::new(0));
    let stop_reading = Arc::new(AtomicBool::new(false));
    let reader = {
        let (output, first_output, stop_reading) = (output.clone(), first_output.clone(), stop_reading.clone());
        std::thread::spawn(move || {
            let consumer: BaseConsumer = harness::client_config()
                .set("group.id", harness::unique("lat-reader"))
                .set(
                    "isolation.level",
                    std::env::var("RIVULET_BENCH_READER_ISOLATION").unwrap_or_else(|_| "read_committed".into()),
                )
                .set("fetch.wait.max.ms", "5")
                .create()
                .unwrap();
            let mut tpl = TopicPartitionList::new();
            for p in 0..PARTITIONS {
                tpl.add_partition_offset(&output, p, Offset::Beginning).unwrap();
            }
            consumer.assign(&tpl).unwrap();
            let mut seen = Vec::new();
            while !stop_reading.load(Ordering::Relaxed) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(20)) {
                    let received = now_ms();
                    let _ = first_output.compare_exchange(0, received, Ordering::SeqCst, Ordering::SeqCst);
                    if let Timestamp::CreateTime(t) = m.timestamp() {
                        seen.push((t, received - t));
                    }
                }
            }
            seen
        })
    };

    let producer: BaseProducer = harness::client_config().set("linger.ms", "1").create().unwrap();
    let mut gen = Gen(0x5DEE_CE66_D1CE_4E5B);
    let started = Instant::now();
    let mut sent = 0u64;
    let mut window: Option<(i64, i64)> = None;
    loop {
        let first = first_output.load(Ordering::SeqCst);
        if window.is_none() && first > 0 {
            // Three seconds to settle after the first output, then measure.
            window = Some((first + 3_000, first + 3_000 + secs as i64 * 1000));
            // The broker's figures from here (in the settling time, so that
            // the snapshot's JVM is gone before the measured window) to
            // the window's end.
            let jar = KSTREAMS_JAR;
            broker_before = Some((std::thread::spawn(move || broker::snapshot(jar)), Instant::now()));
        }
        if let Some((_, to)) = window {
            if now_ms() >= to {
                break;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(120 + secs), "{} gave no output", w.label());
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < due {
            let r = gen.record(keys, now_ms());
            let mut br = BaseRecord::<[u8], [u8]>::to(&input)
                .partition(r.partition)
                .key(r.key.as_deref().unwrap())
                .payload(r.value.as_deref().unwrap())
                .timestamp(r.timestamp.unwrap());
            while let Err((_, back)) = producer.send(br) {
                producer.poll(Duration::from_millis(1));
                br = back;
            }
            sent += 1;
        }
        producer.poll(Duration::ZERO);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let broker = match broker_before {
        Some((before, since)) => {
            let after = broker::snapshot(KSTREAMS_JAR);
            before.join().unwrap().zip(after).map(|(b, a)| (broker::delta(&b, &a), since.elapsed().as_secs_f64()))
        }
        None => None,
    };
    producer.flush(Duration::from_secs(30)).unwrap();
    // Outputs of the last measured inputs arrive within a commit or two.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop_reading.store(true, Ordering::Relaxed);
    let seen = reader.join().unwrap();
    stop(child, w.engine);
    let (from, to) = window.unwrap();
    let mut lat: Vec<i64> = seen.iter().filter(|(t, _)| *t >= from && *t < to).map(|(_, l)| *l).collect();
    lat.sort_unstable();
    assert!(!lat.is_empty(), "{}: no output in the measured window", w.label());
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize] as f64;
    Latency { p50: pct(0.5), p99: pct(0.99), outputs: lat.len(), broker }
}

/// The latency phase's figures for one workload.
#[derive(Clone, Debug)]
struct Latency {
    p50: f64,
    p99: f64,
    outputs: usize,
    /// What the broker served in the measured window, and its seconds.
    broker: Option<(broker::Snapshot, f64)>,
}

/// Builds the Kafka Streams bench (and `BrokerMetrics`) with Maven, unless
/// the jar is newer than every source file.
fn build_kstreams() {
    fn newest(dir: &Path) -> Option<SystemTime> {
        std::fs::read_dir(dir)
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                if meta.is_dir() {
                    newest(&e.path())
                } else {
                    meta.modified().ok()
                }
            })
            .max()
    }
    let jar = std::fs::metadata(KSTREAMS_JAR).and_then(|m| m.modified()).ok();
    let pom = Path::new(KSTREAMS_DIR).join("pom.xml");
    let sources =
        [newest(&Path::new(KSTREAMS_DIR).join("src")), std::fs::metadata(pom).and_then(|m| m.modified()).ok()];
    if jar.is_some_and(|jar| sources.iter().flatten().all(|s| *s <= jar)) {
        return;
    }
    eprintln!("building the Kafka Streams bench with Maven ({KSTREAMS_DIR})");
    let status = Command::new("mvn")
        .args(["-q", "-f", &format!("{KSTREAMS_DIR}/pom.xml"), "package", "-DskipTests"])
        .status()
        .expect("run mvn (Maven) to build the Kafka Streams bench; or set RIVULET_BENCH_KSTREAMS=0");
    assert!(status.success(), "the Maven build of {KSTREAMS_DIR} failed; see above");
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `median (min-max)` of per-round values.
fn spread(mut v: Vec<f64>, digits: usize) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let m = median(&mut v);
    if v.len() == 1 {
        return format!("{m:.digits$}");
    }
    format!("{m:.digits$} ({:.digits$}-{:.digits$})", v[0], v[v.len() - 1])
}

fn main() {
    match harness::child::spec() {
        Some(spec) => child(&spec),
        None => tokio::runtime::Runtime::new().unwrap().block_on(driver()),
    }
}

async fn driver() {
    let n: usize = env_or("RIVULET_BENCH_RECORDS", 2_000_000);
    let keys: u64 = env_or("RIVULET_BENCH_KEYS", 100_000);
    let seed: u64 = env_or("RIVULET_BENCH_SEED", 0x9E37_79B9_7F4A_7C15);
    let rounds: usize = env_or("RIVULET_BENCH_RUNS", 3);
    let rate: u64 = env_or("RIVULET_BENCH_RATE", 5_000);
    let latency_secs: u64 = env_or("RIVULET_BENCH_LATENCY_SECS", 20);
    let kstreams = env_or::<String>("RIVULET_BENCH_KSTREAMS", "1".into()) != "0";
    let only: Option<Vec<String>> =
        std::env::var("RIVULET_BENCH_WORKLOADS").ok().map(|v| v.split(',').map(|s| s.trim().to_uppercase()).collect());
    // The jar holds the broker-metrics reader too: without Maven, and with
    // Kafka Streams left out, the broker figures are left out instead.
    if kstreams || Command::new("mvn").arg("-v").output().is_ok_and(|o| o.status.success()) {
        build_kstreams();
    }
    let mut workloads = vec![Workload { name: "W0", engine: Engine::Raw }];
    for name in ["W1", "W2", "W3", "W4"] {
        workloads.push(Workload { name, engine: Engine::Rivulet });
        if !b_settings().is_empty() {
            workloads.push(Workload { name, engine: Engine::RivuletB });
        }
        if kstreams {
            workloads.push(Workload { name, engine: Engine::KStreams });
        }
    }
    workloads.retain(|w| only.as_ref().is_none_or(|o| o.iter().any(|x| x == w.name)));
    let queries = nexmark::selected(only.as_deref());
    if workloads.is_empty() {
        nexmark::run(&queries, kstreams).await;
        return;
    }

    // The event times are from 2023: without retention.ms=-1 the broker's
    // time-based retention deletes the input under the running workloads.
    let input = harness::unique("bench-in");
    harness::create_topic(&input, PARTITIONS, &[("retention.ms", "-1")]).await;
    let mut gen = Gen(seed);
    let records: Vec<TestRecord> = (0..n).map(|i| gen.record(keys, EVENT_TIME_START + i as i64)).collect();
    let t = Instant::now();
    harness::produce_many(&input, &records).await;
    let w3_windows = closable_windows(&records);
    drop(records);
    let probe: BaseConsumer = harness::client_config().create().unwrap();
    let mut end = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        let (_, high) = probe.fetch_watermarks(&input, p, Duration::from_secs(10)).unwrap();
        end.add_partition_offset(&input, p, Offset::Offset(high)).unwrap();
    }
    eprintln!(
        "loaded {n} records (~100-byte JSON, {keys} keys, {PARTITIONS} partitions) in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let join = if workloads.iter().any(|w| w.name == "W4") {
        assert_eq!(keys % PARTITIONS as u64, 0, "W4 needs RIVULET_BENCH_KEYS to be a multiple of {PARTITIONS}");
        let table = harness::unique("bench-w4-table");
        harness::create_topic(&table, PARTITIONS, &[("retention.ms", "-1")]).await;
        harness::produce_many(&table, &table_records(keys)).await;
        let mut table_end = TopicPartitionList::new();
        for (p, (_, high)) in harness::watermarks(&table).into_iter().enumerate() {
            table_end.add_partition_offset(&table, p as i32, Offset::Offset(high)).unwrap();
        }
        eprintln!("loaded W4's table: {keys} profiles");
        Some(JoinInput { table, table_end, n, keys, seed })
    } else {
        None
    };

    let guarantees = ["at_least_once", "exactly_once"];
    let mut results: BTreeMap<(&str, Workload), Vec<Measured>> = BTreeMap::new();
    for round in 0..rounds {
        for guarantee in guarantees {
            let mut order = workloads.clone();
            if round % 2 == 1 {
                // Kafka Streams before rivulet in odd rounds.
                order.sort_by_key(|w| (w.name, std::cmp::Reverse(w.engine)));
            }
            for w in order {
                let join = join.as_ref().filter(|_| w.name == "W4");
                let m = run_once(w, guarantee, &input, &end, join).await;
                eprintln!(
                    "round {} {guarantee} {}: {:.1}s, {:.0} records/s, {:.1} CPU s, peak RSS {:.0} MiB, {:?}, table load {:?}",
                    round + 1,
                    w.label(),
                    m.seconds,
                    n as f64 / m.seconds,
                    m.cpu,
                    m.rss_mib,
                    m.written,
                    m.table_load
                );
                results.entry((guarantee, w)).or_default().push(m);
            }
        }
    }

    let mut latencies: BTreeMap<(&str, Workload), Latency> = BTreeMap::new();
    if latency_secs > 0 {
        for guarantee in guarantees {
            for &w in workloads.iter().filter(|w| w.name != "W3" && w.name != "W4") {
                let l = latency(w, guarantee, keys, rate, latency_secs).await;
                eprintln!(
                    "latency {guarantee} {} at {rate}/s: p50 {} ms, p99 {} ms ({} outputs)",
                    w.label(),
                    l.p50,
                    l.p99,
                    l.outputs
                );
                latencies.insert((guarantee, w), l);
            }
        }
    }

    // Per-round ratios: to W0 of the same round and guarantee, and to Kafka
    // Streams' same workload.
    let per_round = |guarantee: &str, w: Workload, f: &dyn Fn(&Measured, &Measured) -> f64, base: Workload| {
        let (Some(a), Some(b)) = (results.get(&(guarantee, w)), results.get(&(guarantee, base))) else {
            return Vec::new();
        };
        a.iter().zip(b).map(|(x, y)| f(x, y)).collect::<Vec<f64>>()
    };
    let rate_of = |m: &Measured| n as f64 / m.seconds;
    let cpu_per_m = |m: &Measured| m.cpu / n as f64 * 1e6;
    let w0 = Workload { name: "W0", engine: Engine::Raw };
    // Per-round ratios of rivulet to Kafka Streams, "-" for other engines.
    let vs_ks = |guarantee: &str, w: Workload, f: &dyn Fn(&Measured, &Measured) -> f64| {
        let ks = Workload { name: w.name, engine: Engine::KStreams };
        if matches!(w.engine, Engine::Rivulet | Engine::RivuletB) && results.contains_key(&(guarantee, ks)) {
            spread(per_round(guarantee, w, f, ks), 2)
        } else {
            "-".into()
        }
    };
    println!("\n{n} records, {keys} keys, {PARTITIONS} partitions, {rounds} rounds, commit interval {COMMIT_INTERVAL_MS} ms; median (min-max)\n");
    let caching = if caching() { " (rivulet W2 with_caching)" } else { "" };
    println!("| workload{caching} | guarantee | records/s | vs W0 | CPU s per 1M records | CPU/record vs W0 | peak RSS MiB | records per CPU-s vs KS | peak RSS vs KS | p50 / p99 ms at {rate}/s | outputs per input | changelog + repartition records per input | broker bytes per input |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for guarantee in guarantees {
        for &w in &workloads {
            let Some(ms) = results.get(&(guarantee, w)) else { continue };
            let lat = latencies
                .get(&(guarantee, w))
                .map(|l| format!("{:.0} / {:.0}", l.p50, l.p99))
                .unwrap_or_else(|| "-".into());
            // Lower bounds when retention deleted records in a round.
            let at_least = if ms.iter().any(|m| m.written.truncated) { ">= " } else { "" };
            let per_input = |f: &dyn Fn(&Written) -> Option<u64>, digits: usize| {
                let v: Option<Vec<f64>> = ms.iter().map(|m| f(&m.written).map(|x| x as f64 / n as f64)).collect();
                v.map_or_else(|| "-".into(), |v| format!("{at_least}{}", spread(v, digits)))
            };
            println!(
                "| {} | {guarantee} | {} | {} | {} | {} | {} | {} | {} | {lat} | {} | {} | {} |",
                w.label(),
                spread(ms.iter().map(rate_of).collect(), 0),
                spread(per_round(guarantee, w, &|a, b| b.seconds / a.seconds, w0), 2),
                spread(ms.iter().map(cpu_per_m).collect(), 2),
                spread(per_round(guarantee, w, &|a, b| a.cpu / b.cpu, w0), 2),
                spread(ms.iter().map(|m| m.rss_mib).collect(), 0),
                vs_ks(guarantee, w, &|a, b| b.cpu / a.cpu),
                vs_ks(guarantee, w, &|a, b| a.rss_mib / b.rss_mib),
                per_input(&|w| w.outputs, 3),
                per_input(&|w| Some(w.internal), 3),
                per_input(&|w| w.bytes, 0),
            );
        }
    }
    if workloads.iter().any(|w| w.name == "W3") {
        println!("\nW3: the input closes {w3_windows} windows; windows written (median over rounds):\n");
        println!("| workload | guarantee | windows written | of those the input closes |");
        println!("|---|---|---:|---:|");
        for guarantee in guarantees {
            for w in workloads.iter().filter(|w| w.name == "W3") {
                let Some(ms) = results.get(&(guarantee, *w)) else { continue };
                let mut v: Vec<f64> = ms.iter().filter_map(|m| m.written.outputs).map(|o| o as f64).collect();
                if v.is_empty() {
                    continue;
                }
                let m = median(&mut v);
                println!("| {} | {guarantee} | {m:.0} | {:.4} |", w.label(), m / w3_windows as f64);
            }
        }
    }
    if workloads.iter().any(|w| w.name == "W4") {
        println!("\nW4: the table ({keys} keys) loaded before the stream; records/s and CPU above count from the start of the stream's production (median (min-max) over rounds):\n");
        println!("| workload | guarantee | records/s | records/s vs KS | records per CPU-s | records per CPU-s vs KS | table loaded after s (from spawn) | CPU s until then | driver produced the stream in s | outputs | outputs with a null profile |");
        println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for guarantee in guarantees {
            for w in workloads.iter().filter(|w| w.name == "W4") {
                let Some(ms) = results.get(&(guarantee, *w)) else { continue };
                let loads: Vec<(f64, f64, f64)> = ms.iter().filter_map(|m| m.table_load).collect();
                let outputs: Vec<f64> = ms.iter().filter_map(|m| m.written.outputs).map(|o| o as f64).collect();
                let unjoined: Vec<f64> = ms.iter().filter_map(|m| m.written.unjoined).map(|o| o as f64).collect();
                println!(
                    "| {} | {guarantee} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    w.label(),
                    spread(ms.iter().map(rate_of).collect(), 0),
                    vs_ks(guarantee, *w, &|a, b| b.seconds / a.seconds),
                    spread(ms.iter().map(|m| n as f64 / m.cpu).collect(), 0),
                    vs_ks(guarantee, *w, &|a, b| b.cpu / a.cpu),
                    spread(loads.iter().map(|l| l.0).collect(), 1),
                    spread(loads.iter().map(|l| l.1).collect(), 1),
                    spread(loads.iter().map(|l| l.2).collect(), 1),
                    spread(outputs, 0),
                    spread(unjoined, 0),
                );
            }
        }
    }
    print_steady_and_broker(n, &workloads, &results, &latencies);
    println!("\nexactly-once throughput against at-least-once (per round):\n");
    println!("| workload | EOS / ALOS |");
    println!("|---|---:|");
    for &w in &workloads {
        let (Some(e), Some(a)) = (results.get(&("exactly_once", w)), results.get(&("at_least_once", w))) else {
            continue;
        };
        println!("| {} | {} |", w.label(), spread(e.iter().zip(a).map(|(e, a)| a.seconds / e.seconds).collect(), 2));
    }
    nexmark::run(&queries, kstreams).await;
}

/// The steady-state rate and what each workload asked of the broker
/// (issue 15, items 1 and 3), per 1,000 input records; and, from the
/// latency phase, the broker's time per transaction request.
fn print_steady_and_broker(
    n: usize,
    workloads: &[Workload],
    results: &BTreeMap<(&str, Workload), Vec<Measured>>,
    latencies: &BTreeMap<(&str, Workload), Latency>,
) {
    let guarantees = ["at_least_once", "exactly_once"];
    let steady = |m: &Measured| 0.8 * n as f64 / m.steady;
    let ratio = |guarantee: &str, w: Workload, base: Workload| {
        let (Some(a), Some(b)) = (results.get(&(guarantee, w)), results.get(&(guarantee, base))) else {
            return "-".to_string();
        };
        if w == base {
            return "-".into();
        }
        spread(a.iter().zip(b).map(|(x, y)| steady(x) / steady(y)).collect(), 2)
    };
    println!("\nSteady state (10% to 90% of the input committed) and what the broker served during each run, per 1,000 input records (median over rounds):\n");
    print!("| workload | guarantee | steady records/s | vs W0 | vs KS | all requests |");
    for r in broker::SHOWN {
        print!(" {r} |");
    }
    println!(" produce KiB per request | broker CPU s per 1M records |");
    println!("|---|---|---:|---:|---:|---:|{}---:|---:|", "---:|".repeat(broker::SHOWN.len()));
    for guarantee in guarantees {
        for &w in workloads {
            let Some(ms) = results.get(&(guarantee, w)) else { continue };
            let per_k = |f: &dyn Fn(&broker::Snapshot) -> f64| {
                let v: Vec<f64> =
                    ms.iter().filter_map(|m| m.broker.as_ref()).map(|b| f(b) * 1000.0 / n as f64).collect();
                spread(v, 2)
            };
            let ks = Workload { name: w.name, engine: Engine::KStreams };
            print!(
                "| {} | {guarantee} | {} | {} | {} | {} |",
                w.label(),
                spread(ms.iter().map(steady).collect(), 0),
                ratio(guarantee, w, Workload { name: "W0", engine: Engine::Raw }),
                if matches!(w.engine, Engine::Rivulet | Engine::RivuletB) {
                    ratio(guarantee, w, ks)
                } else {
                    "-".into()
                },
                per_k(&|b| b.total()),
            );
            for r in broker::SHOWN {
                print!(" {} |", per_k(&|b| b.get(r).count));
            }
            let kib: Vec<f64> = ms
                .iter()
                .filter_map(|m| m.broker.as_ref())
                .map(|b| b.get("Produce"))
                .filter(|p| p.count > 0.0)
                .map(|p| p.bytes / p.count / 1024.0)
                .collect();
            println!(" {} | {} |", spread(kib, 1), per_k(&|b| b.cpu_s * 1000.0));
        }
    }
    if latencies.values().all(|l| l.broker.is_none()) {
        return;
    }
    const TXN: &[&str] = &["Produce", "AddPartitionsToTxn", "AddOffsetsToTxn", "TxnOffsetCommit", "EndTxn", "Fetch"];
    println!("\nLatency phase: requests per second and the broker's mean time per request in ms (total, of which remote: waiting on the log or a delayed operation), over the measured window; the driver's input production is included in Produce:\n");
    print!("| workload | guarantee | p50 / p99 ms |");
    for r in TXN {
        print!(" {r} /s, ms (remote) |");
    }
    println!();
    println!("|---|---|---:|{}", "---:|".repeat(TXN.len()));
    for guarantee in guarantees {
        for &w in workloads {
            let Some(l) = latencies.get(&(guarantee, w)) else { continue };
            let Some((b, secs)) = &l.broker else { continue };
            print!("| {} | {guarantee} | {:.0} / {:.0} |", w.label(), l.p50, l.p99);
            for r in TXN {
                let q = b.get(r);
                if q.count > 0.0 {
                    print!(" {:.1}, {:.1} ({:.1}) |", q.count / secs, q.total_ms / q.count, q.remote_ms / q.count);
                } else {
                    print!(" - |");
                }
            }
            println!();
        }
    }
}
