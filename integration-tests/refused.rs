//! A record the broker refuses, on a real broker: event times taken from
//! the value, one of them years ahead. Kafka 4 brokers refuse a timestamp
//! more than `message.timestamp.after.max.ms` (1 hour by default) ahead of
//! their clock with INVALID_TIMESTAMP, so the record's write to the
//! repartition topic fails. Under both guarantees the record goes to
//! `errors.production` (dead letter, skip or fail) and the application does
//! not stop in a loop; every good record's output is written once
//! (`read_committed`). Default commit intervals. A refused output that no
//! input record produced (forwarded at a commit) stops an exactly-once
//! application with the reason, instead of looping.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use harness::TestRecord;
use rivulet::prelude::*;
use rivulet::processor::{ProcessError, Processor, ProcessorContext};
use rivulet::RunningApp;
use serde::{Deserialize, Serialize};

const TIMEOUT: Duration = Duration::from_secs(120);
/// Input records, enough for several produce batches in flight; the one at
/// [`BAD`] carries a time years ahead.
const RECORDS: usize = 5_000;
const BAD: usize = 2_500;
/// May 2033.
const YEARS_AHEAD: i64 = 2_000_000_000_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Reading {
    id: usize,
    at: i64,
}

/// Event time from the value, through a repartition topic, to the output
/// (each reading's id as text).
fn topology(input: &str, output: &str) -> Topology {
    let mut b = Topology::builder();
    b.stream_with_time(
        input,
        Serdes::string(),
        Serdes::json::<Reading>(),
        Timestamps::from_value(|r: &Reading| Some(r.at)),
    )
    .repartition("readings")
    .map_values(|r: Reading| r.id.to_string())
    .to(output, Serdes::string(), Serdes::string());
    b.build().unwrap()
}

fn inputs() -> Vec<TestRecord> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    (0..RECORDS)
        .map(|id| {
            let at = if id == BAD { YEARS_AHEAD } else { now - 60_000 + id as i64 };
            let value = serde_json::to_string(&Reading { id, at }).unwrap();
            TestRecord::kv(&format!("k{}", id % 5), &value)
        })
        .collect()
}

struct Setup {
    input: String,
    output: String,
    app_id: String,
    state: tempfile::TempDir,
}

async fn setup(prefix: &str) -> Setup {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("warn").try_init();
    let input = harness::new_topic(&format!("{prefix}-in"), 1).await;
    let output = harness::new_topic(&format!("{prefix}-out"), 1).await;
    harness::produce_many(&input, &inputs()).await;
    Setup { input, output, app_id: harness::unique(prefix), state: tempfile::tempdir().unwrap() }
}

fn start(s: &Setup, guarantee: &str, policy: &str) -> RunningApp {
    let config = config(&s.app_id, s.state.path(), guarantee, policy);
    App::new(config).unwrap().start(topology(&s.input, &s.output)).unwrap()
}

fn config(app_id: &str, state: &Path, guarantee: &str, policy: &str) -> rivulet::Config {
    harness::app_config(
        app_id,
        state,
        &[
            ("RIVULET__PROCESSING_GUARANTEE", guarantee),
            // The guarantee's default.
            ("RIVULET__COMMIT_INTERVAL_MS", ""),
            ("RIVULET__ERRORS__PRODUCTION", policy),
        ],
    )
}

/// Every good reading's id, once each (at-least-once sends the records
/// refused with the bad one's batch again, after later ones).
fn expect_good_outputs_once(output: &str) {
    let want: Vec<usize> = (0..RECORDS).filter(|&i| i != BAD).collect();
    harness::eventually("every good record's output, once", TIMEOUT, || {
        let mut got: Vec<usize> =
            harness::read_committed(output).iter().map(|r| r.value_str().parse().unwrap()).collect();
        got.sort_unstable();
        if got == want {
            return Ok(());
        }
        let mut seen = std::collections::BTreeMap::<usize, usize>::new();
        for id in &got {
            *seen.entry(*id).or_default() += 1;
        }
        let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).map(|(id, _)| id).take(10).collect();
        let missing: Vec<_> = want.iter().filter(|id| !seen.contains_key(id)).take(10).collect();
        Err(format!("{} outputs; more than once: {twice:?}; missing: {missing:?}", got.len()))
    });
}

/// The `rivulet_bad_records_total` samples of `app`'s `/metrics`.
fn bad_records_counted(app: &RunningApp) -> Vec<String> {
    let addr = app.http_addr().unwrap();
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.lines().filter(|l| l.starts_with("rivulet_bad_records_total")).map(str::to_string).collect()
}

fn header(r: &TestRecord, name: &str) -> String {
    let v = r.headers.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.clone()).unwrap_or_default();
    String::from_utf8(v).unwrap()
}

async fn dead_letters_the_refused_record(guarantee: &str) {
    let s = setup(&format!("refused-dlq-{}", &guarantee[..2])).await;
    let app = start(&s, guarantee, "dead_letter");
    expect_good_outputs_once(&s.output);
    let dlq = format!("{}-dlq", s.app_id);
    harness::eventually("the refused record is dead-lettered", TIMEOUT, || match harness::read_committed(&dlq).len() {
        1 => Ok(()),
        n => Err(format!("{n} in {dlq}")),
    });
    let dead = &harness::read_committed(&dlq)[0];
    let message = header(dead, "rivulet.error.message");
    assert!(message.contains("INVALID_TIMESTAMP"), "the broker's reason: {message}");
    assert!(message.contains("message.timestamp.after.max.ms"), "what to change: {message}");
    assert_eq!(header(dead, "rivulet.error.kind"), "production");
    assert_eq!(header(dead, "rivulet.source.topic"), s.input);
    assert_eq!(header(dead, "rivulet.source.partition"), "0");
    assert_eq!(header(dead, "rivulet.source.offset"), BAD.to_string());
    assert_eq!(header(dead, "rivulet.target.topic"), format!("{}-readings-repartition", s.app_id));
    // Still good after the retry's commits.
    expect_good_outputs_once(&s.output);
    // Counted per attempt: under exactly-once, librdkafka's first
    // transaction after the refused batch aborts too (a gap in its sequence
    // numbers bumps the epoch), and the record goes to the policy again in
    // the next one.
    assert!(app.stats().records_dead_lettered >= 1, "{:?}", app.stats());
    assert!(!app.has_stopped());
    app.shutdown().unwrap();
}

async fn skips_the_refused_record(guarantee: &str) {
    let s = setup(&format!("refused-skip-{}", &guarantee[..2])).await;
    let app = start(&s, guarantee, "skip");
    expect_good_outputs_once(&s.output);
    harness::eventually("the refused record is counted", TIMEOUT, || {
        let counted = bad_records_counted(&app);
        // Counted per attempt, as dead letters are (below).
        match (app.stats().records_skipped, counted.as_slice()) {
            (1.., [line]) if line.contains(r#"kind="production""#) && line.contains(r#"policy="skip""#) => Ok(()),
            (n, lines) => Err(format!("{n} skipped; {lines:?}")),
        }
    });
    expect_good_outputs_once(&s.output);
    app.shutdown().unwrap();
}

/// Waits until `app` stops, and returns its error.
fn error_it_stops_with(app: RunningApp) -> String {
    harness::eventually("the application stops", TIMEOUT, || {
        if app.has_stopped() {
            Ok(())
        } else {
            Err("running".into())
        }
    });
    app.shutdown().unwrap_err().to_string()
}

async fn fails_naming_the_reason_and_the_record(guarantee: &str) {
    let s = setup(&format!("refused-fail-{}", &guarantee[..2])).await;
    let app = start(&s, guarantee, "fail");
    let err = error_it_stops_with(app);
    assert!(err.contains("INVALID_TIMESTAMP"), "the broker's reason: {err}");
    assert!(err.contains(&format!("{}-readings-repartition", s.app_id)), "the topic written: {err}");
    assert!(err.contains(&format!("topic {} partition 0 offset {BAD}", s.input)), "the input record: {err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn exactly_once_dead_letters_a_refused_record_and_writes_every_other_once() {
    dead_letters_the_refused_record("exactly_once").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn at_least_once_dead_letters_a_refused_record_and_writes_every_other_once() {
    dead_letters_the_refused_record("at_least_once").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exactly_once_skips_a_refused_record_and_counts_it() {
    skips_the_refused_record("exactly_once").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn at_least_once_skips_a_refused_record_and_counts_it() {
    skips_the_refused_record("at_least_once").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exactly_once_fails_naming_the_broker_reason_and_the_input_record() {
    fails_naming_the_reason_and_the_record("exactly_once").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn at_least_once_fails_naming_the_broker_reason_and_the_input_record() {
    fails_naming_the_reason_and_the_record("at_least_once").await;
}

/// Forwards, at a commit, the last value it saw with a time years ahead:
/// an output no input record produced.
struct AtCommit(Option<String>);

impl Processor<String, String, String, String> for AtCommit {
    fn process(
        &mut self,
        r: Record<String, String>,
        _: &mut ProcessorContext<'_, String, String>,
    ) -> Result<(), ProcessError> {
        self.0 = Some(r.value);
        Ok(())
    }

    fn on_commit(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<(), ProcessError> {
        match self.0.take() {
            Some(v) => ctx.forward(Record::new("at-commit".to_string(), v, YEARS_AHEAD)),
            None => Ok(()),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn exactly_once_stops_naming_the_reason_when_an_output_of_the_commit_is_refused() {
    let s = setup("refused-commit").await;
    let mut b = Topology::builder();
    b.stream(&s.input, Serdes::string(), Serdes::string()).process(&[], || AtCommit(None)).to(
        &s.output,
        Serdes::string(),
        Serdes::string(),
    );
    let config = config(&s.app_id, s.state.path(), "exactly_once", "dead_letter");
    let app = App::new(config).unwrap().start(b.build().unwrap()).unwrap();
    // Processing again cannot route it to the policy: it stops, not loops.
    let err = error_it_stops_with(app);
    assert!(err.contains("INVALID_TIMESTAMP") && err.contains("2033-05-18"), "the broker's reason: {err}");
    assert!(err.contains(&s.output), "the topic written: {err}");
    assert!(err.contains("no input record produced it"), "why it stops: {err}");
}
