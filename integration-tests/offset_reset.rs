//! No silent skipping, on a real broker: an application commits offset 10
//! of its source, stops; 20 more records are written and the first 25
//! offsets deleted (`DeleteRecords`), so the committed offset is out of
//! range. Restarted, each `errors.offset_out_of_range` policy does what it
//! says: `earliest` goes on from offset 25 and counts 15 skipped offsets,
//! `latest` goes on from the end and counts 20, `fail` stops naming the
//! partition and the offsets still there, and commits nothing. The skips
//! are logged as ERRORs naming the range, and the new position is
//! committed even before a record comes (also under exactly-once).
//!
//! The same while the application runs (a slow application): it holds
//! offsets 1..9 fetched while its function is stuck on offset 0
//! (`queued.min.messages = 1` keeps librdkafka from fetching further), the
//! offsets below 25 are deleted meanwhile, and its next fetch, at 10, is
//! out of range.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use harness::TestRecord;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::{Offset, TopicPartitionList};
use rivulet::prelude::*;
use rivulet::RunningApp;

const WAIT: Duration = Duration::from_secs(90);

/// The ERROR lines of every application of this test binary.
static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing log subscriber (errors only: librdkafka's log
/// level then follows it down to errors, which rivulet must raise to
/// warnings to see the reset) and returns what it holds.
fn logs() -> String {
    let buf = LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::ERROR)
            .with_writer(move || Capture(sink.clone()))
            .init();
        buf
    });
    String::from_utf8_lossy(&buf.lock().unwrap()).into_owned()
}

fn passthrough(input: &str, output: &str) -> Topology {
    let mut b = Topology::builder();
    b.stream(input, Serdes::string(), Serdes::string()).to(output, Serdes::string(), Serdes::string());
    b.build().unwrap()
}

fn records(range: std::ops::Range<usize>) -> Vec<TestRecord> {
    range.map(|i| TestRecord::kv(&format!("k{i}"), &i.to_string())).collect()
}

fn output_keys(output: &str) -> Vec<String> {
    harness::read_committed(output).iter().map(|r| r.key_str().to_string()).collect()
}

fn keys(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("k{i}")).collect()
}

/// The processing guarantee of an application.
const EXACTLY_ONCE: (&str, &str) = ("RIVULET__PROCESSING_GUARANTEE", "exactly_once");
const AT_LEAST_ONCE: (&str, &str) = ("RIVULET__PROCESSING_GUARANTEE", "at_least_once");

fn start(
    app_id: &str,
    state: &Path,
    policy: Option<&str>,
    guarantee: (&str, &str),
    input: &str,
    output: &str,
) -> RunningApp {
    let mut extra = vec![guarantee];
    extra.extend(policy.map(|p| ("RIVULET__ERRORS__OFFSET_OUT_OF_RANGE", p)));
    let config = harness::app_config(app_id, state, &extra);
    App::new(config).unwrap().start(passthrough(input, output)).unwrap()
}

fn eventually_committed(app_id: &str, input: &str, offset: i64) {
    harness::eventually(&format!("offset {offset} is committed"), WAIT, || {
        match harness::committed_offsets(app_id, input, 1)[0] {
            Some(o) if o == offset => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
}

fn eventually_output(output: &str, want: Vec<String>) {
    harness::eventually("the output", WAIT, || {
        let got = output_keys(output);
        if got == want {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    });
}

/// New input and output topics, an application id and a state dir, with
/// k0..k9 written to the input.
async fn setup(prefix: &str) -> (String, String, String, tempfile::TempDir) {
    logs();
    let input = harness::new_topic(&format!("{prefix}-in"), 1).await;
    let output = harness::new_topic(&format!("{prefix}-out"), 1).await;
    let app_id = harness::unique(prefix);
    let state = tempfile::tempdir().unwrap();
    harness::produce(&input, &records(0..10)).await;
    (input, output, app_id, state)
}

/// Input and output topics and a group that committed offset 10 of the
/// input (records k0..k9 processed), then stopped; then k10..k29 are
/// written and offsets below 25 deleted.
async fn committed_then_deleted(prefix: &str, guarantee: (&str, &str)) -> (String, String, String, tempfile::TempDir) {
    let (input, output, app_id, state) = setup(prefix).await;
    let app = start(&app_id, state.path(), None, guarantee, &input, &output);
    eventually_output(&output, keys(0..10));
    eventually_committed(&app_id, &input, 10);
    app.shutdown().unwrap();

    harness::produce(&input, &records(10..30)).await;
    delete_below(&input, 25).await;
    assert_eq!(harness::committed_offsets(&app_id, &input, 1), vec![Some(10)]);
    (input, output, app_id, state)
}

/// Deletes the records of partition 0 below `offset` (DeleteRecords).
async fn delete_below(input: &str, offset: i64) {
    let admin: AdminClient<DefaultClientContext> = harness::client_config().create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(input, 0, Offset::Offset(offset)).unwrap();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let deleted = admin.delete_records(&tpl, &opts).await.unwrap();
    assert!(deleted.elements().iter().all(|e| e.error().is_ok()), "{deleted:?}");
    assert_eq!(harness::watermarks(input)[0].0, offset);
}

fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// `rivulet_offset_resets_total` of the input's partition 0, from /metrics.
fn resets_metric(app: &RunningApp, input: &str) -> Option<f64> {
    let body = get(app.http_addr().unwrap(), "/metrics");
    body.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let labels = series.strip_prefix("rivulet_offset_resets_total{")?;
        (labels.contains(&format!("topic=\"{input}\"")) && labels.contains("partition=\"0\""))
            .then(|| value.parse().ok())
            .flatten()
    })
}

fn eventually_metric(app: &RunningApp, input: &str, want: f64) {
    harness::eventually("rivulet_offset_resets_total", WAIT, || match resets_metric(app, input) {
        Some(v) if v == want => Ok(()),
        other => Err(format!("{other:?}")),
    });
}

/// Under `earliest` after offsets 10..24 were deleted: k25..k29 follow
/// k0..k9, 15 offsets are counted and an ERROR names them.
fn went_on_from_25(app: &RunningApp, app_id: &str, input: &str, output: &str) {
    let mut want = keys(0..10);
    want.extend(keys(25..30));
    eventually_output(output, want);
    eventually_committed(app_id, input, 30);
    eventually_metric(app, input, 15.0);
    let log = logs();
    assert!(log.contains(&format!("offset 10 of source topic {input} partition 0 was out of range")), "{log}");
    assert!(log.contains("offsets [10, 25) were deleted before they were processed"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn earliest_goes_on_from_the_first_offset_left_and_counts_and_logs_the_deleted_ones() {
    let (input, output, app_id, state) = committed_then_deleted("oor-earliest", AT_LEAST_ONCE).await;
    // The default policy.
    let app = start(&app_id, state.path(), None, AT_LEAST_ONCE, &input, &output);
    went_on_from_25(&app, &app_id, &input, &output);
    let log = logs();
    assert!(log.contains("going on from offset 25 (errors.offset_out_of_range = \"earliest\")"), "{log}");
    assert_eq!(app.stats().records_processed, 5);
    app.shutdown().unwrap();
}

/// Under `latest` after offsets 10..24 were deleted: 20 offsets counted
/// and logged, offset 30 committed before any record comes (under
/// exactly-once in a transaction of offsets only), and a record written
/// afterwards is the only one processed.
async fn went_on_from_the_end(prefix: &str, guarantee: (&str, &str)) {
    let (input, output, app_id, state) = committed_then_deleted(prefix, guarantee).await;
    let app = start(&app_id, state.path(), Some("latest"), guarantee, &input, &output);
    eventually_metric(&app, &input, 20.0);
    let log = logs();
    assert!(log.contains(&format!("offset 10 of source topic {input} partition 0 was out of range")), "{log}");
    assert!(log.contains("skipping offsets [10, 30) (20 offsets"), "{log}");
    // The new position is committed though no record came after it.
    eventually_committed(&app_id, &input, 30);
    // Records written from now on are processed; the skipped ones never are.
    harness::produce(&input, &records(30..31)).await;
    let mut want = keys(0..10);
    want.push("k30".into());
    eventually_output(&output, want);
    eventually_committed(&app_id, &input, 31);
    assert_eq!(app.stats().records_processed, 1);
    app.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn latest_goes_on_from_the_end_and_counts_everything_skipped() {
    went_on_from_the_end("oor-latest", AT_LEAST_ONCE).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn latest_under_exactly_once_commits_the_new_position_in_a_transaction() {
    went_on_from_the_end("oor-latest-eos", EXACTLY_ONCE).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fail_stops_naming_the_partition_and_the_offsets_left_and_commits_nothing() {
    let (input, output, app_id, state) = committed_then_deleted("oor-fail", AT_LEAST_ONCE).await;
    let app = start(&app_id, state.path(), Some("fail"), AT_LEAST_ONCE, &input, &output);
    harness::eventually("the application stops", WAIT, || {
        if app.has_stopped() {
            Ok(())
        } else {
            Err("still running".into())
        }
    });
    assert_eq!(app.stats().records_processed, 0);
    let err = app.shutdown().unwrap_err().to_string();
    for part in [
        format!("offset 10 of source topic {input} partition 0"),
        "offsets [10, 25) were deleted".into(),
        "the partition now holds offsets [25, 30)".into(),
        "errors.offset_out_of_range = \"earliest\"".into(),
        "reset --to-earliest".into(),
    ] {
        assert!(err.contains(&part), "the error says {part:?}: {err}");
    }
    assert_eq!(harness::committed_offsets(&app_id, &input, 1), vec![Some(10)], "nothing committed past the gap");
    assert_eq!(output_keys(&output), keys(0..10));
}

/// Holds the processing thread inside the function on record "0" until
/// opened (or for a minute at most, so a failed test cannot hang).
#[derive(Default)]
struct Gate {
    entered: AtomicBool,
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn pass(&self) {
        self.entered.store(true, Ordering::SeqCst);
        let open = self.open.lock().unwrap();
        let _ = self.opened.wait_timeout_while(open, Duration::from_secs(60), |open| !*open).unwrap();
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

fn gated(input: &str, output: &str, gate: Arc<Gate>) -> Topology {
    let mut b = Topology::builder();
    b.stream(input, Serdes::string(), Serdes::string())
        .map_values(move |v: String| {
            if v == "0" {
                gate.pass();
            }
            v
        })
        .to(output, Serdes::string(), Serdes::string());
    b.build().unwrap()
}

/// Starts an application on k0..k9 that gets stuck on k0, writes
/// k10..k29, deletes the offsets below 25 under it, and lets it go on.
async fn deleted_while_running(prefix: &str, policy: &str) -> (String, String, String, tempfile::TempDir, RunningApp) {
    let (input, output, app_id, state) = setup(prefix).await;
    let config = harness::app_config(
        &app_id,
        state.path(),
        &[("RIVULET__ERRORS__OFFSET_OUT_OF_RANGE", policy), ("RIVULET__KAFKA__CONSUMER__QUEUED_MIN_MESSAGES", "1")],
    );
    let gate = Arc::new(Gate::default());
    let app = App::new(config).unwrap().start(gated(&input, &output, gate.clone())).unwrap();
    harness::eventually("the function is stuck on k0", WAIT, || {
        if gate.entered.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err("not yet".into())
        }
    });
    harness::produce(&input, &records(10..30)).await;
    delete_below(&input, 25).await;
    gate.open();
    (input, output, app_id, state, app)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_application_whose_next_offsets_are_deleted_goes_on_from_the_first_left_and_counts_them() {
    let (input, output, app_id, _state, app) = deleted_while_running("oor-slow", "earliest").await;
    went_on_from_25(&app, &app_id, &input, &output);
    app.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_application_under_fail_stops_before_the_gap_and_commits_nothing_past_it() {
    let (input, _output, app_id, _state, app) = deleted_while_running("oor-slow-fail", "fail").await;
    harness::eventually("the application stops", WAIT, || {
        if app.has_stopped() {
            Ok(())
        } else {
            Err("still running".into())
        }
    });
    assert_eq!(app.stats().records_processed, 10, "k0..k9, nothing after the gap");
    let err = app.shutdown().unwrap_err().to_string();
    assert!(err.contains(&format!("offset 10 of source topic {input} partition 0")), "{err}");
    assert!(err.contains("offsets [10, 25) were deleted") && err.contains("holds offsets [25, 30)"), "{err}");
    let committed = harness::committed_offsets(&app_id, &input, 1)[0];
    assert!(committed.is_none_or(|o| o <= 10), "nothing committed past the gap: {committed:?}");
}
