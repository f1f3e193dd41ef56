//! The async I/O operator (`KStream::map_async`) on a real broker under
//! exactly-once: HTTP enrichment against a local server with injected
//! latency, model inference on a blocking pool, a SIGKILL mid-stream (the
//! calls in flight are dropped and their records processed again, no
//! duplicate under `read_committed`), and calls that fail after their
//! retries going to the dead-letter topic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

// The examples' `main` and settings are not used here.
#[allow(dead_code)]
#[path = "../examples/async_enrichment.rs"]
mod async_enrichment;
#[allow(dead_code)]
#[path = "../examples/async_scoring.rs"]
mod async_scoring;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use harness::child::{self, ChildApp};
use harness::TestRecord;
use rivulet::prelude::*;

const TIMEOUT: Duration = Duration::from_secs(120);

/// `n` records with values `{prefix}{i}`, keyed `k{i % 8}`, over 2
/// partitions (a key's records all in one).
fn ids(n: usize, prefix: &str) -> Vec<TestRecord> {
    (0..n)
        .map(|i| TestRecord {
            partition: (i % 2) as i32,
            ..TestRecord::kv(&format!("k{}", i % 8), &format!("{prefix}{i}"))
        })
        .collect()
}

/// The values of `topic` (read_committed) per key, in offset order. A key's
/// records are in one input partition and one output partition, so this is
/// the order that ordered mode keeps.
fn values_per_key(topic: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in harness::read_committed(topic) {
        out.entry(r.key_str().to_string()).or_default().push(r.value_str().to_string());
    }
    out
}

/// Waits until `topic` holds `n` committed records.
fn wait_for(topic: &str, n: usize) {
    harness::eventually(&format!("{n} records in {topic}"), TIMEOUT, || {
        let got = harness::read_committed(topic).len();
        if got >= n {
            Ok(())
        } else {
            Err(format!("{got} records"))
        }
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn http_enrichment_with_1_and_64_calls_in_flight_enriches_every_record_once_in_order() {
    let directory = async_enrichment::start_user_directory(Duration::from_millis(20)).unwrap();
    let input = harness::new_topic("async-ids", 2).await;
    let records = ids(200, "user-");
    harness::produce_many(&input, &records).await;
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &records {
        expected.entry(r.key_str().to_string()).or_default().push(format!(
            "{} -> name-of-{}",
            r.value_str(),
            r.value_str()
        ));
    }
    for concurrency in [1, 64] {
        let output = harness::new_topic("async-names", 2).await;
        let app_id = harness::unique("async-http");
        let state = tempfile::tempdir().unwrap();
        let config = harness::eos_config(&app_id, state.path(), &harness::unique("pod"), &[]);
        let topology = async_enrichment::topology(&input, &output, directory, concurrency).unwrap();
        let started = Instant::now();
        let app = App::new(config).unwrap().start(topology).unwrap();
        wait_for(&output, records.len());
        eprintln!("{concurrency} calls in flight: 200 records enriched in {:?} (start included)", started.elapsed());
        // Every input enriched once, in input order per key.
        assert_eq!(values_per_key(&output), expected, "concurrency {concurrency}");
        app.shutdown().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn model_inference_scores_every_payment_once_off_the_processing_thread() {
    let model = async_scoring::train();
    let data = async_scoring::training_data();
    let right = data.iter().filter(|(p, fraud)| (model.score(p) > 0.5) == *fraud).count();
    assert!(right * 100 >= data.len() * 85, "the trained model is right on {right} of {}", data.len());

    let input = harness::new_topic("async-payments", 2).await;
    let output = harness::new_topic("async-scored", 2).await;
    let payments: Vec<async_scoring::Payment> = data.iter().take(100).map(|(p, _)| p.clone()).collect();
    let records: Vec<TestRecord> = payments
        .iter()
        .enumerate()
        .map(|(i, p)| TestRecord {
            partition: (i % 2) as i32,
            ..TestRecord::kv(&format!("card-{i}"), &serde_json::to_string(p).unwrap())
        })
        .collect();
    harness::produce_many(&input, &records).await;
    let app_id = harness::unique("async-score");
    let state = tempfile::tempdir().unwrap();
    let config = harness::eos_config(&app_id, state.path(), &harness::unique("pod"), &[]);
    let app =
        App::new(config).unwrap().start(async_scoring::topology(&input, &output, model.clone()).unwrap()).unwrap();
    wait_for(&output, records.len());
    let scored = harness::read_committed(&output);
    assert_eq!(scored.len(), payments.len());
    for r in &scored {
        let i: usize = r.key_str().trim_start_matches("card-").parse().unwrap();
        let s: async_scoring::Scored = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        // JSON carries the floats to within a rounding step.
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
        assert!(close(s.amount, payments[i].amount) && close(s.velocity, payments[i].velocity), "card-{i}");
        assert!(close(s.fraud, model.score(&payments[i])), "card-{i}: {} != {}", s.fraud, model.score(&payments[i]));
    }
    app.shutdown().unwrap();
}

/// The crash test's topology: up to 64 calls of ~3 ms in flight per task.
fn slow_echo(input: &str, output: &str) -> Topology {
    let mut b = Topology::builder();
    b.stream(input, Serdes::string(), Serdes::string())
        .map_async(64, Duration::from_secs(5), |v: String| async move {
            tokio::time::sleep(Duration::from_millis(3)).await;
            format!("{v}!")
        })
        .to(output, Serdes::string(), Serdes::string());
    b.build().unwrap()
}

/// Not a test of its own: the body of the child process the crash test
/// starts and kills. In a normal test run it returns at once.
#[test]
fn child_process_entry_point_for_async_crash_test() {
    let Some(spec) = child::spec() else { return };
    child::run_exactly_once(&spec, slow_echo)
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_with_calls_in_flight_reprocesses_them_without_duplicates_under_read_committed() {
    let input = harness::new_topic("async-crash-in", 2).await;
    let output = harness::new_topic("async-crash-out", 2).await;
    let app_id = harness::unique("async-crash");
    let state = tempfile::tempdir().unwrap();
    let instance = harness::unique("pod");
    let spec = format!("{input}|{output}|{app_id}|{}|{instance}", state.path().display());
    let records = ids(3_000, "v");

    let child = ChildApp::spawn_test("child_process_entry_point_for_async_crash_test", &spec);
    let topic = input.clone();
    let first = records[..2_000].to_vec();
    let writer = tokio::spawn(async move {
        for chunk in first.chunks(100) {
            harness::produce_many(&topic, chunk).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    harness::eventually("the child commits output", TIMEOUT, || {
        let now = harness::read_committed(&output).len();
        if now >= 300 {
            Ok(())
        } else {
            Err(format!("{now} outputs"))
        }
    });
    drop(child); // SIGKILL, with calls in flight and a transaction open
    writer.await.unwrap();
    harness::produce_many(&input, &records[2_000..]).await;

    // The same instance again finishes the work.
    let config = harness::eos_config(&app_id, state.path(), &instance, &[]);
    let app = App::new(config).unwrap().start(slow_echo(&input, &output)).unwrap();
    wait_for(&output, records.len());
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &records {
        expected.entry(r.key_str().to_string()).or_default().push(format!("{}!", r.value_str()));
    }
    // No duplicate, no gap, in input order per key.
    assert_eq!(values_per_key(&output), expected);
    app.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_failing_after_their_retries_go_to_the_dead_letter_topic() {
    let directory = async_enrichment::start_user_directory(Duration::from_millis(5)).unwrap();
    let input = harness::new_topic("async-dlq-in", 1).await;
    let output = harness::new_topic("async-dlq-out", 1).await;
    let values = ["u1", "missing-1", "u2", "u3", "missing-2", "u4"];
    let records: Vec<TestRecord> = values.iter().map(|v| TestRecord::kv("k", v)).collect();
    harness::produce(&input, &records).await;
    let app_id = harness::unique("async-dlq");
    let state = tempfile::tempdir().unwrap();
    let extra = [("RIVULET__ERRORS__PROCESSING", "dead_letter")];
    let config = harness::eos_config(&app_id, state.path(), &harness::unique("pod"), &extra);
    let app =
        App::new(config).unwrap().start(async_enrichment::topology(&input, &output, directory, 8).unwrap()).unwrap();
    let dlq = format!("{app_id}-dlq");
    wait_for(&output, 4);
    wait_for(&dlq, 2);
    let enriched: Vec<String> = harness::read_committed(&output).iter().map(|r| r.value_str().to_string()).collect();
    assert_eq!(enriched, ["u1 -> name-of-u1", "u2 -> name-of-u2", "u3 -> name-of-u3", "u4 -> name-of-u4"]);
    let dead = harness::read_committed(&dlq);
    let header = |r: &TestRecord, name: &str| -> String {
        let v = r.headers.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.clone()).unwrap_or_default();
        String::from_utf8(v).unwrap()
    };
    assert_eq!(dead.len(), 2);
    for (r, (value, offset)) in dead.iter().zip([("missing-1", "1"), ("missing-2", "4")]) {
        assert_eq!(r.value_str(), value);
        assert_eq!(r.key_str(), "k");
        assert_eq!(header(r, "rivulet.error.kind"), "processing");
        assert_eq!(header(r, "rivulet.source.offset"), offset);
        let message = header(r, "rivulet.error.message");
        assert!(message.contains("status 404") && message.contains("after 2 retries"), "{message}");
    }
    assert_eq!(app.stats().records_dead_lettered, 2);
    app.shutdown().unwrap();
}
