//! Bounded runs on a real broker (`App::run_to_end`): a backlog produced
//! before the run is regrouped by a new key (through a repartition topic),
//! counted per tumbling window with `emit_final`, and the run exits with
//! `Ok` with every window in the output, the last ones closed at the end of
//! input; a second run adds nothing. Under both guarantees, with the default
//! commit interval. An empty input ends at once, also on a thread given no
//! partition; two instances share the work through a rebalance; a chain of
//! two repartitions ends sub-topology after sub-topology; `run --to-end` on
//! the command line of `rivulet::main` exits 0; under exactly-once a run
//! ends at the last stable offset (a transaction open at start is the next
//! run's); a SIGTERM stops a run with an error, and the next run finishes
//! it; an instance that finished waits for the partitions of one killed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use harness::TestRecord;
use rivulet::prelude::*;

const PARTITIONS: i32 = 2;
const WINDOW_MS: i64 = 10_000;
/// A bound on one run, so a test never hangs; not a measure.
const RUN_BOUND: Duration = Duration::from_secs(180);
/// September 2020.
const START: i64 = 1_600_000_000_000;

/// Counts the input's values per value (a new key: a repartition) per
/// 10 s tumbling window, emitted once when the window closes, as
/// `<value>@<window start>` -> count.
fn windowed_counts(input: &str, output: &str) -> Topology {
    let mut b = Topology::builder();
    count_windows(&mut b, input).map(|w, n| (format!("{}@{}", w.key, w.start), n.to_string())).to(
        output,
        Serdes::string(),
        Serdes::string(),
    );
    b.build().unwrap()
}

/// The input's values counted per value per 10 s tumbling window (`emit_final`).
fn count_windows(b: &mut rivulet::topology::TopologyBuilder, input: &str) -> KStream<Windowed<String>, i64> {
    b.stream(input, Serdes::string(), Serdes::string())
        .group_by(|_, v: &String| v.clone(), Serdes::string())
        .windowed_by(Windows::tumbling(Duration::from_millis(WINDOW_MS as u64)))
        .emit_final()
        .count("per-value")
}

/// `n` records, one per second of event time in each partition, over 3
/// values; and the count expected per `<value>@<window start>`.
fn backlog(n: usize) -> (Vec<TestRecord>, BTreeMap<String, String>) {
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    let records = (0..n)
        .map(|i| {
            let value = format!("v{}", i % 3);
            let ts = START + (i as i64 / PARTITIONS as i64) * 1_000;
            *expected.entry(format!("{value}@{}", ts - ts.rem_euclid(WINDOW_MS))).or_default() += 1;
            TestRecord {
                partition: (i % PARTITIONS as usize) as i32,
                timestamp: Some(ts),
                ..TestRecord::kv(&format!("k{i}"), &value)
            }
        })
        .collect();
    (records, expected.into_iter().map(|(k, n)| (k, n.to_string())).collect())
}

/// Runs `run_to_end` on its own thread.
fn spawn_run(config: rivulet::Config, topology: Topology) -> mpsc::Receiver<rivulet::Result<()>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let result = App::new(config).and_then(|app| app.run_to_end(topology));
        let _ = tx.send(result);
    });
    rx
}

/// The result of a run, failing the test past [`RUN_BOUND`].
fn ended(run: &mpsc::Receiver<rivulet::Result<()>>) -> rivulet::Result<()> {
    run.recv_timeout(RUN_BOUND).unwrap_or_else(|_| panic!("run_to_end did not end within {RUN_BOUND:?}"))
}

/// Runs `run_to_end` and returns its result and how long it took.
fn run_to_end(config: rivulet::Config, topology: Topology) -> (rivulet::Result<()>, Duration) {
    let started = Instant::now();
    let result = ended(&spawn_run(config, topology));
    (result, started.elapsed())
}

/// The output records per key, in order.
fn by_key(output: &str) -> BTreeMap<String, Vec<String>> {
    let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in harness::read_committed(output) {
        got.entry(r.key_str().to_string()).or_default().push(r.value_str().to_string());
    }
    got
}

/// What [`by_key`] must find: each window once, with its count.
fn once_each(expected: &BTreeMap<String, String>) -> BTreeMap<String, Vec<String>> {
    expected.iter().map(|(k, n)| (k.clone(), vec![n.clone()])).collect()
}

/// Input and output topics, an application id, and the input's backlog
/// of `n` records already produced; the counts [`backlog`] expects.
struct Backlog {
    input: String,
    output: String,
    app_id: String,
    expected: BTreeMap<String, String>,
}

async fn with_backlog(prefix: &str, n: usize) -> Backlog {
    let input = harness::new_history_topic(&format!("{prefix}-in"), PARTITIONS).await;
    let output = harness::new_history_topic(&format!("{prefix}-out"), PARTITIONS).await;
    let (records, expected) = backlog(n);
    harness::produce_many(&input, &records).await;
    Backlog { input, output, app_id: harness::unique(prefix), expected }
}

fn config(app_id: &str, state: &std::path::Path, guarantee: &str) -> rivulet::Config {
    // The default commit interval of the guarantee: a bounded run commits
    // at the end of its input without waiting for it.
    harness::app_config(
        app_id,
        state,
        &[("RIVULET__PROCESSING_GUARANTEE", guarantee), ("RIVULET__COMMIT_INTERVAL_MS", "")],
    )
}

async fn a_backlog_is_read_to_its_end(guarantee: &str) {
    let Backlog { input, output, app_id, expected } = with_backlog("bounded", 600).await;
    let state = tempfile::tempdir().unwrap();

    let (result, took) = run_to_end(config(&app_id, state.path(), guarantee), windowed_counts(&input, &output));
    result.unwrap();
    eprintln!("the first run took {took:?}");
    let first = harness::read_committed(&output);
    // Every window, the last ones (closed only by the end of input)
    // included, once each, with its count.
    assert_eq!(by_key(&output), once_each(&expected));
    let ends: Vec<Option<i64>> = harness::watermarks(&input).iter().map(|(_, high)| Some(*high)).collect();
    assert_eq!(harness::committed_offsets(&app_id, &input, PARTITIONS), ends, "the input is committed to its end");

    // Again: nothing new to read, nothing written.
    let (result, took) = run_to_end(config(&app_id, state.path(), guarantee), windowed_counts(&input, &output));
    result.unwrap();
    eprintln!("the second run took {took:?}");
    assert_eq!(harness::read_committed(&output), first, "a second run writes nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backlog_is_read_to_its_end_and_every_window_closes_under_at_least_once() {
    a_backlog_is_read_to_its_end("at_least_once").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backlog_is_read_to_its_end_and_every_window_closes_under_exactly_once() {
    a_backlog_is_read_to_its_end("exactly_once").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_input_ends_at_once() {
    let input = harness::new_topic("bounded-empty-in", PARTITIONS).await;
    let output = harness::new_topic("bounded-empty-out", PARTITIONS).await;
    let app_id = harness::unique("bounded-empty");
    let state = tempfile::tempdir().unwrap();
    // Three threads for four partitions (two of the input, two of the
    // repartition topic): with the range assignor one thread gets none.
    let mut config = config(&app_id, state.path(), "exactly_once");
    config.num_threads = 3;
    let (result, took) = run_to_end(config, windowed_counts(&input, &output));
    result.unwrap();
    assert!(harness::read_committed(&output).is_empty());
    eprintln!("an empty input ended in {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_each_end_the_partitions_they_own() {
    let Backlog { input, output, app_id, expected } = with_backlog("bounded-two", 2_000).await;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let runs: Vec<_> = [&a, &b]
        .iter()
        .map(|state| spawn_run(config(&app_id, state.path(), "exactly_once"), windowed_counts(&input, &output)))
        .collect();
    for run in &runs {
        ended(run).unwrap();
    }
    assert_eq!(by_key(&output), once_each(&expected));
}

/// The windowed counts of [`windowed_counts`], regrouped once more (a
/// second repartition) and summed per value: the sums hold every window,
/// the ones the end of input closes included, only when the last
/// sub-topology waits for the middle one to end.
fn summed_window_counts(input: &str, output: &str) -> Topology {
    let mut b = Topology::builder();
    count_windows(&mut b, input)
        .map(|w, n| (w.key, n))
        .group_by(|value: &String, _| value.clone(), Serdes::string())
        .aggregate("sums", || 0i64, |_, n: i64, sum| sum + n, Serdes::i64())
        .to_stream()
        .map_values(|sum: i64| sum.to_string())
        .to(output, Serdes::string(), Serdes::string());
    b.build().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chain_of_two_repartitions_ends_in_turn() {
    let Backlog { input, output, app_id, .. } = with_backlog("bounded-chain", 900).await;
    let state = tempfile::tempdir().unwrap();
    let (result, _) = run_to_end(config(&app_id, state.path(), "exactly_once"), summed_window_counts(&input, &output));
    result.unwrap();
    let totals: BTreeMap<String, String> =
        ["v0", "v1", "v2"].iter().map(|v| (v.to_string(), "300".to_string())).collect();
    assert_eq!(harness::latest_by_key(&output), totals);
}

#[tokio::test(flavor = "multi_thread")]
async fn run_to_end_on_the_command_line_exits_0() {
    let Backlog { input, output, app_id, expected } = with_backlog("bounded-cli", 200).await;
    let state = tempfile::tempdir().unwrap();
    let loader = rivulet::Config::loader().env([
        ("RIVULET__APPLICATION_ID", app_id.as_str()),
        ("RIVULET__INSTANCE_ID", "cli"),
        ("RIVULET__KAFKA__BOOTSTRAP_SERVERS", harness::bootstrap()),
        ("RIVULET__STATE_DIR", state.path().to_str().unwrap()),
        ("RIVULET__HTTP__LISTEN", "127.0.0.1:0"),
        // rivulet::main sets up logging for the whole test process.
        ("RIVULET__LOG__LEVEL", "off"),
    ]);
    let (tx, rx) = mpsc::channel();
    let (i, o) = (input.clone(), output.clone());
    std::thread::spawn(move || {
        let code = rivulet::Main::new(loader).args(["run", "--to-end"]).main(|_| Ok(windowed_counts(&i, &o)));
        let _ = tx.send(code);
    });
    let code = rx.recv_timeout(RUN_BOUND).unwrap_or_else(|_| panic!("run --to-end did not end within {RUN_BOUND:?}"));
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    assert_eq!(by_key(&output), once_each(&expected));
}

/// Sends `values` to partition 0 of `topic` in the producer's open transaction.
async fn send_in_transaction(producer: &rdkafka::producer::FutureProducer, topic: &str, values: &[&str]) {
    use rdkafka::producer::Producer;
    producer.begin_transaction().unwrap();
    for v in values {
        let r = TestRecord::kv(v, v);
        producer.send(r.to_future_record(topic), Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn under_exactly_once_the_run_ends_at_the_last_stable_offset() {
    use rdkafka::producer::Producer;
    let input = harness::new_topic("bounded-lso-in", 1).await;
    let output = harness::new_topic("bounded-lso-out", 1).await;
    let app_id = harness::unique("bounded-lso");
    let state = tempfile::tempdir().unwrap();
    let producer: rdkafka::producer::FutureProducer =
        harness::client_config().set("transactional.id", harness::unique("bounded-lso-txn")).create().unwrap();
    producer.init_transactions(Duration::from_secs(30)).unwrap();
    send_in_transaction(&producer, &input, &["a1", "a2"]).await;
    producer.commit_transaction(Duration::from_secs(30)).unwrap();
    send_in_transaction(&producer, &input, &["aborted"]).await;
    producer.abort_transaction(Duration::from_secs(30)).unwrap();
    send_in_transaction(&producer, &input, &["c1"]).await;
    producer.commit_transaction(Duration::from_secs(30)).unwrap();
    // Open while the run starts and ends: past the last stable offset.
    send_in_transaction(&producer, &input, &["open"]).await;

    let copy = || {
        let mut b = Topology::builder();
        b.stream(&input, Serdes::string(), Serdes::string()).map_values(|v: String| v.to_uppercase()).to(
            &output,
            Serdes::string(),
            Serdes::string(),
        );
        b.build().unwrap()
    };
    let values = || harness::read_committed(&output).iter().map(|r| r.value_str().to_string()).collect::<Vec<_>>();
    let (result, _) = run_to_end(config(&app_id, state.path(), "exactly_once"), copy());
    result.unwrap();
    assert_eq!(values(), ["A1", "A2", "C1"]);

    // Committed since, it is the next run's.
    producer.commit_transaction(Duration::from_secs(30)).unwrap();
    let (result, _) = run_to_end(config(&app_id, state.path(), "exactly_once"), copy());
    result.unwrap();
    assert_eq!(values(), ["A1", "A2", "C1", "OPEN"]);
}

/// Not a test of its own: the body of the child process of
/// [`a_sigterm_stops_a_bounded_run_with_an_error`]. It runs `run_to_end` on a
/// slow copy of its input and exits 3 with the error's message on stderr
/// when the run returns an error. In a normal test run it returns at once.
#[test]
fn child_process_entry_point_for_bounded_runs() {
    let Some(spec) = harness::child::spec() else { return };
    let _ = tracing_subscriber::fmt().with_env_filter("warn,rivulet=info").with_writer(std::io::stderr).try_init();
    let parts: Vec<&str> = spec.split('|').collect();
    let [input, output, app_id, state_dir] = parts[..] else { panic!("bad child spec: {spec}") };
    let config = config(app_id, std::path::Path::new(state_dir), "exactly_once");
    if let Err(e) = App::new(config).unwrap().run_to_end(copy(input, output, Duration::from_millis(5))) {
        eprintln!("run_to_end failed: {e}");
        std::process::exit(3);
    }
}

/// Copies `input` to `output`, `delay` per record.
fn copy(input: &str, output: &str, delay: Duration) -> Topology {
    let mut b = Topology::builder();
    b.stream(input, Serdes::string(), Serdes::string())
        .map_values(move |v: String| {
            std::thread::sleep(delay);
            v
        })
        .to(output, Serdes::string(), Serdes::string());
    b.build().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigterm_stops_a_bounded_run_with_an_error() {
    let Backlog { input, output, app_id, .. } = with_backlog("bounded-term", 3_000).await;
    let state = tempfile::tempdir().unwrap();
    let spec = format!("{input}|{output}|{app_id}|{}", state.path().display());
    let mut child = harness::child::ChildApp::spawn_test("child_process_entry_point_for_bounded_runs", &spec);
    harness::eventually("the child commits output", RUN_BOUND, || match harness::read_committed(&output).len() {
        n if n >= 100 => Ok(()),
        n => Err(format!("{n} outputs")),
    });
    child.signal(nix::sys::signal::Signal::SIGTERM);
    let status = child.wait(Duration::from_secs(60));
    let log = child.log();
    assert_eq!(status.code(), Some(3), "a bounded run stopped half-way fails; log:\n{log}");
    assert!(log.contains("stopped by SIGTERM before the end of its input"), "{log}");
    let copied = harness::read_committed(&output).len();
    assert!(copied < 3_000, "the run was stopped before the end: {copied} copied");

    // The next run goes on from what was committed: each record once.
    let (result, _) = run_to_end(config(&app_id, state.path(), "exactly_once"), copy(&input, &output, Duration::ZERO));
    result.unwrap();
    let mut values: Vec<String> = harness::read_committed(&output).iter().map(|r| r.key_str().to_string()).collect();
    values.sort();
    values.dedup();
    assert_eq!((values.len(), harness::read_committed(&output).len()), (3_000, 3_000));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_that_finished_waits_for_the_partitions_of_one_that_crashed() {
    let Backlog { input, output, app_id, .. } = with_backlog("bounded-crash", 3_000).await;
    let (a, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // The slow instance, killed half-way.
    let spec = format!("{input}|{output}|{app_id}|{}", c.path().display());
    let mut crashing = harness::child::ChildApp::spawn_test("child_process_entry_point_for_bounded_runs", &spec);
    harness::eventually("the slow instance commits output", RUN_BOUND, || {
        match harness::read_committed(&output).len() {
            n if n >= 100 => Ok(()),
            n => Err(format!("{n} outputs")),
        }
    });
    // A fast one joins, takes a partition and finishes it.
    let run = spawn_run(config(&app_id, a.path(), "exactly_once"), copy(&input, &output, Duration::ZERO));
    harness::eventually("a partition read to its end", RUN_BOUND, || {
        let committed = harness::committed_offsets(&app_id, &input, PARTITIONS);
        match committed.iter().filter(|o| **o == Some(3_000 / PARTITIONS as i64)).count() {
            0 => Err(format!("committed {committed:?}")),
            _ => Ok(()),
        }
    });
    crashing.kill();
    // The group gives the crashed instance's partition to the one left,
    // which stays until every partition is done.
    ended(&run).unwrap();
    // Each record once, once the crashed instance's open transaction is
    // aborted (transaction.timeout.ms, 10 s): until then read_committed
    // readers of the output stop where it began.
    harness::eventually("every record copied once", RUN_BOUND, || {
        let mut keys: Vec<String> = harness::read_committed(&output).iter().map(|r| r.key_str().to_string()).collect();
        let total = keys.len();
        keys.sort();
        keys.dedup();
        match (keys.len(), total) {
            (3_000, 3_000) => Ok(()),
            got => Err(format!("(distinct, total) = {got:?}")),
        }
    });
}
