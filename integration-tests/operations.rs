//! The operating surface on a real broker: `/metrics` counts what went
//! through, `/health/ready` follows restores, SIGTERM shuts down cleanly
//! (exit 0, nothing reprocessed after the restart), a second signal exits
//! at once, and static members restart without a rebalance.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use harness::child::{self, ChildApp};
use harness::http::{get, sample, scrape};
use harness::TestRecord;
use rivulet::prelude::*;
use rivulet::RunningApp;

fn passthrough(input: &str, output: &str) -> Topology {
    let mut b = Topology::builder();
    b.stream(input, Serdes::string(), Serdes::string()).map_values(|v: String| v.to_uppercase()).to(
        output,
        Serdes::string(),
        Serdes::string(),
    );
    b.build().unwrap()
}

fn records(n: usize, partitions: usize, start: usize) -> Vec<TestRecord> {
    (start..start + n)
        .map(|i| TestRecord { partition: (i % partitions) as i32, ..TestRecord::kv(&format!("k{i}"), &i.to_string()) })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_the_records_consumed_and_produced_and_the_endpoints_answer() {
    let input = harness::new_topic("ops-in", 2).await;
    let output = harness::new_topic("ops-out", 2).await;
    harness::produce_many(&input, &records(2_000, 2, 0)).await;
    let state = tempfile::tempdir().unwrap();
    let config = harness::app_config(&harness::unique("ops-metrics"), state.path(), &[]);
    let app = App::new(config).unwrap().start(passthrough(&input, &output)).unwrap();
    let addr = app.http_addr().unwrap();
    assert_ne!(addr.port(), 0, "http_addr has the port the server got");
    assert_eq!(get(addr, "/health/live").0, 200);

    harness::eventually("the counters reach the records sent", Duration::from_secs(60), || {
        let m = scrape(&app);
        let consumed = sample(&m, "rivulet_records_consumed_total", &[("topic", &input)]);
        let produced = sample(&m, "rivulet_records_produced_total", &[("topic", &output)]);
        let processed = sample(&m, "rivulet_records_processed_total", &[("subtopology", "0")]);
        if (consumed, produced, processed) == (Some(2_000.0), Some(2_000.0), Some(2_000.0)) {
            Ok(())
        } else {
            Err(format!("consumed {consumed:?}, produced {produced:?}, processed {processed:?}"))
        }
    });
    assert_eq!(harness::read_committed(&output).len(), 2_000);
    harness::eventually("ready, committed, and the lag reported", Duration::from_secs(30), || {
        let (status, body) = get(addr, "/health/ready");
        let m = scrape(&app);
        let committed = sample(&m, "rivulet_commits_total", &[("result", "committed")]).unwrap_or(0.0);
        let lag = sample(&m, "rivulet_consumer_lag", &[("topic", &input), ("partition", "1")]);
        let running = sample(&m, "rivulet_assigned_tasks", &[("state", "running")]);
        let ready = sample(&m, "rivulet_ready", &[]);
        if status == 200 && committed > 0.0 && lag == Some(0.0) && running == Some(2.0) && ready == Some(1.0) {
            Ok(())
        } else {
            Err(format!("ready {status} {body:?}, {committed} commits, lag {lag:?}, running {running:?}"))
        }
    });
    let m = scrape(&app);
    let latencies = sample(&m, "rivulet_end_to_end_latency_seconds_count", &[]).unwrap();
    assert_eq!(latencies, 2_000.0, "one end-to-end latency per output record");
    // One thread; one record in 16 is timed.
    assert!(sample(&m, "rivulet_processing_latency_seconds_count", &[]) == Some(125.0), "{m}");
    let (status, topology) = get(addr, "/topology");
    assert_eq!(status, 200);
    assert!(topology.contains(&input) && topology.contains(&output), "{topology}");
    app.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http_address_already_in_use_is_an_error_naming_http_listen() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let state = tempfile::tempdir().unwrap();
    let config = harness::app_config(&harness::unique("ops-port"), state.path(), &[("RIVULET__HTTP__LISTEN", &addr)]);
    let input = harness::new_topic("ops-in", 1).await;
    let err = App::new(config).unwrap().start(passthrough(&input, "unused")).err().unwrap().to_string();
    assert!(err.contains("http.listen") && err.contains(&addr), "{err}");
}

/// Two processes with one state dir and instance id would open the same
/// stores: the second fails at start, naming the directory and the holder;
/// another instance id on the same state dir runs beside the first.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_instance_on_the_same_state_dir_and_instance_id_fails_at_start() {
    let input = harness::new_topic("ops-lock-in", 2).await;
    let output = harness::new_topic("ops-lock-out", 2).await;
    let app_id = harness::unique("ops-lock");
    let state = tempfile::tempdir().unwrap();
    let config = |instance: &str| harness::app_config(&app_id, state.path(), &[("RIVULET__INSTANCE_ID", instance)]);
    let first = App::new(config("pod-0")).unwrap().start(passthrough(&input, &output)).unwrap();

    let err = App::new(config("pod-0")).unwrap().start(passthrough(&input, &output)).err().unwrap();
    let dir = state.path().join(&app_id).join("pod-0");
    assert!(matches!(err, rivulet::Error::State(_)), "{err}");
    let text = err.to_string();
    assert!(text.contains(&dir.display().to_string()), "the error names the directory: {text}");
    assert!(text.contains(&format!("pid {}", std::process::id())), "the error names the holder: {text}");
    assert!(text.contains("RIVULET__INSTANCE_ID"), "the error says what to set: {text}");

    let other = App::new(config("pod-1")).unwrap().start(passthrough(&input, &output)).unwrap();
    harness::produce_many(&input, &records(20, 2, 0)).await;
    harness::wait_for_output(&output, 20);
    other.shutdown().unwrap();
    first.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_the_broker_assigns_nothing_is_ready() {
    // One partition, two instances: under KIP-848 the idle one gets no
    // rebalance callback at all, and must still report ready.
    let input = harness::new_topic("ops-idle-in", 1).await;
    let output = harness::new_topic("ops-idle-out", 1).await;
    let app_id = harness::unique("ops-idle");
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let apps: Vec<RunningApp> = dirs
        .iter()
        .map(|d| App::new(harness::app_config(&app_id, d.path(), &[])).unwrap().start(passthrough(&input, &output)))
        .map(Result::unwrap)
        .collect();
    harness::eventually("both instances ready, one of them with no partition", Duration::from_secs(60), || {
        let ready: Vec<u16> = apps.iter().map(|a| get(a.http_addr().unwrap(), "/health/ready").0).collect();
        let owned: Vec<usize> = apps.iter().map(|a| a.assignment().len()).collect();
        if ready == [200, 200] && owned.iter().sum::<usize>() == 1 {
            Ok(())
        } else {
            Err(format!("ready {ready:?}, partitions {owned:?}"))
        }
    });
    for app in apps {
        app.shutdown().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_is_503_while_a_large_store_restores_and_200_after() {
    const KEYS: usize = 300_000;
    let input = harness::new_topic("ops-keys", 2).await;
    let output = harness::new_topic("ops-counts", 2).await;
    let app_id = harness::unique("ops-restore");
    let topology = || harness::count_per_key(&input, &output, "per-key");
    harness::produce_many(&input, &records(KEYS, 2, 0)).await;
    let state = tempfile::tempdir().unwrap();
    let app = App::new(harness::app_config(&app_id, state.path(), &[])).unwrap().start(topology()).unwrap();
    harness::eventually_processed("every key counted", &app, KEYS as u64, Duration::from_secs(240));
    app.shutdown().unwrap();

    // Without its state dir, the restart replays the whole changelog.
    let empty = tempfile::tempdir().unwrap();
    let app = App::new(harness::app_config(&app_id, empty.path(), &[])).unwrap().start(topology()).unwrap();
    let addr = app.http_addr().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut not_ready_while_restoring = 0;
    let mut remaining_seen = false;
    loop {
        assert!(Instant::now() < deadline, "not ready within 120 s: {:?}", app.stats());
        let restoring = app.stats().tasks_restoring;
        let (status, body) = get(addr, "/health/ready");
        if restoring > 0 && app.stats().tasks_restoring > 0 {
            assert_eq!(status, 503, "ready while {restoring} tasks restore: {body}");
            assert!(body.contains("restoring"), "{body}");
            not_ready_while_restoring += 1;
            let m = scrape(&app);
            remaining_seen |= sample(&m, "rivulet_restore_remaining_records", &[("store", "per-key")])
                .is_some_and(|remaining| remaining > 0.0);
        }
        if status == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(not_ready_while_restoring > 0, "the restore was seen in progress");
    assert!(remaining_seen, "rivulet_restore_remaining_records showed the work left");
    let s = app.stats();
    assert_eq!((s.tasks_restoring, s.tasks_running), (0, 2));
    assert!(s.records_restored >= KEYS as u64, "{s:?}");
    let m = scrape(&app);
    assert_eq!(sample(&m, "rivulet_ready", &[]), Some(1.0));
    for p in ["0", "1"] {
        assert_eq!(
            sample(&m, "rivulet_restore_remaining_records", &[("store", "per-key"), ("partition", p)]),
            Some(0.0)
        );
    }
    app.shutdown().unwrap();
}

fn eos_config(app_id: &str, state_dir: &std::path::Path, instance: &str, extra: &[(&str, &str)]) -> Config {
    let mut env = vec![("RIVULET__SHUTDOWN_TIMEOUT_MS", "20000")];
    env.extend_from_slice(extra);
    harness::eos_config(app_id, state_dir, instance, &env)
}

/// A secret the child is configured with, which its log must not show.
const SECRET: &str = "hunter2-never-logged";

/// Not a test of its own: the body of the child processes the signal
/// tests start. It runs `App::run`, which handles SIGTERM and SIGINT, and
/// returns (exit 0) after a graceful shutdown. In a normal test run it
/// returns at once.
const SIGNAL_ENTRY: &str = "child_process_entry_point_for_signal_tests";

#[test]
fn child_process_entry_point_for_signal_tests() {
    let Some(spec) = child::spec() else { return };
    let parts: Vec<&str> = spec.split('|').collect();
    let [input, output, app_id, state_dir, instance] = parts[..] else { panic!("bad child spec: {spec}") };
    let logging = [
        ("RIVULET__LOG__FORMAT", "json"),
        ("RIVULET__LOG__LEVEL", "warn,rivulet=info"),
        ("RIVULET__KAFKA__COMMON__SASL_PASSWORD", SECRET),
    ];
    let config = eos_config(app_id, std::path::Path::new(state_dir), instance, &logging);
    rivulet::init_logging(&config).unwrap();
    App::new(config).unwrap().run(harness::count_per_key(input, output, "running")).unwrap();
}

/// The offsets the group has committed on `topic`, summed over partitions.
fn committed_total(group: &str, topic: &str, partitions: i32) -> i64 {
    harness::committed_offsets(group, topic, partitions).into_iter().map(|o| o.unwrap_or(0)).sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_stream_exits_0_within_the_timeout_and_the_restart_reprocesses_nothing() {
    use nix::sys::signal::Signal;
    let input = harness::new_topic("ops-eos-in", 4).await;
    let output = harness::new_topic("ops-eos-out", 4).await;
    let app_id = harness::unique("ops-sigterm");
    let state = tempfile::tempdir().unwrap();
    let instance = harness::unique("pod");
    let all: Vec<TestRecord> = (0..12_000usize)
        .map(|i| {
            let k = i % 40;
            TestRecord { partition: (k % 4) as i32, ..TestRecord::kv(&format!("key-{k}"), &i.to_string()) }
        })
        .collect();
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for r in &all {
        *expected.entry(r.key_str().to_string()).or_default() += 1;
    }

    let mut child =
        ChildApp::spawn_test(SIGNAL_ENTRY, &format!("{input}|{output}|{app_id}|{}|{instance}", state.path().display()));
    let (first, rest) = all.split_at(8_000);
    let topic = input.clone();
    let streamed = first.to_vec();
    let writer = tokio::spawn(async move {
        for chunk in streamed.chunks(250) {
            harness::produce_many(&topic, chunk).await;
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    });
    harness::eventually("the child commits output", Duration::from_secs(90), || {
        let n = harness::read_committed(&output).len();
        if n > 1_500 {
            Ok(())
        } else {
            Err(format!("{n} outputs"))
        }
    });
    assert!(!writer.is_finished(), "input was still streaming in at the signal");
    let signalled = Instant::now();
    child.signal(Signal::SIGTERM);
    let status = child.wait(Duration::from_secs(25));
    let took = signalled.elapsed();
    assert!(status.success(), "exit status {status:?}; log:\n{}", child.log());
    assert!(took < Duration::from_secs(20), "the shutdown took {took:?}, over shutdown_timeout_ms");
    let log = child.log();
    assert!(log.contains(r#""message":"shutting down"#) && log.contains(r#""message":"stopped""#), "{log}");
    assert!(!log.contains(SECRET), "the secret is in the log:\n{log}");
    writer.await.unwrap();

    // What the child committed is exactly what the restart must not read again.
    let committed = committed_total(&app_id, &input, 4);
    assert!(committed > 0 && committed < all.len() as i64, "{committed} committed");
    harness::produce_many(&input, rest).await;
    let app = App::new(eos_config(&app_id, state.path(), &instance, &[]))
        .unwrap()
        .start(harness::count_per_key(&input, &output, "running"))
        .unwrap();
    harness::eventually("every input counted exactly once", Duration::from_secs(120), || {
        harness::check_running_counts(&output, &expected)
    });
    let m = scrape(&app);
    let consumed = sample(&m, "rivulet_records_consumed_total", &[("topic", &input)]).unwrap();
    assert_eq!(consumed as i64, all.len() as i64 - committed, "the restart read only what the child had not committed");
    assert_eq!(app.stats().records_restored, 0, "closed cleanly, the stores needed no replay");
    app.shutdown().unwrap();
    eprintln!("SIGTERM to exit: {took:?}; committed by the child before it: {committed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_signal_during_the_shutdown_exits_at_once_with_a_non_zero_code() {
    use nix::sys::signal::Signal;
    let input = harness::new_topic("ops-twice-in", 2).await;
    let output = harness::new_topic("ops-twice-out", 2).await;
    harness::produce_many(&input, &records(500, 2, 0)).await;
    let state = tempfile::tempdir().unwrap();
    let app_id = harness::unique("ops-twice");
    let mut child = ChildApp::spawn_test(
        SIGNAL_ENTRY,
        &format!("{input}|{output}|{app_id}|{}|{}", state.path().display(), harness::unique("pod")),
    );
    harness::eventually("the child processes", Duration::from_secs(60), || {
        let n = harness::read_committed(&output).len();
        if n == 500 {
            Ok(())
        } else {
            Err(format!("{n} outputs"))
        }
    });
    child.signal(Signal::SIGTERM);
    std::thread::sleep(Duration::from_millis(5));
    child.signal(Signal::SIGINT);
    let status = child.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(128 + 2), "exit 128 + SIGINT; log:\n{}", child.log());
    assert!(child.log().contains("second signal"), "{}", child.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn static_members_restart_one_at_a_time_without_a_rebalance() {
    let input = harness::new_topic("ops-static-in", 4).await;
    let output = harness::new_topic("ops-static-out", 4).await;
    let app_id = harness::unique("ops-static");
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (pod_a, pod_b) = (harness::unique("pod-a"), harness::unique("pod-b"));
    // KIP-848: the session timeout is the group's, set on the broker.
    harness::set_group_config(&app_id, "consumer.session.timeout.ms", "30000").await;
    let config =
        |dir: &tempfile::TempDir, pod: &str| harness::app_config(&app_id, dir.path(), &[("RIVULET__INSTANCE_ID", pod)]);
    let start = |dir: &tempfile::TempDir, pod: &str| {
        App::new(config(dir, pod)).unwrap().start(passthrough(&input, &output)).unwrap()
    };
    let rebalances = |app: &RunningApp| sample(&scrape(app), "rivulet_rebalances_total", &[]).unwrap();
    let both_ready = |a: &RunningApp, b: &RunningApp| {
        harness::eventually("both instances ready with two tasks each", Duration::from_secs(90), || {
            let ready = [a, b].map(|app| get(app.http_addr().unwrap(), "/health/ready").0);
            let owned = [a.assignment().len(), b.assignment().len()];
            if ready == [200, 200] && owned == [2, 2] {
                Ok(())
            } else {
                Err(format!("ready {ready:?}, partitions {owned:?}"))
            }
        })
    };

    let mut a = Some(start(&dir_a, &pod_a));
    let mut b = Some(start(&dir_b, &pod_b));
    both_ready(a.as_ref().unwrap(), b.as_ref().unwrap());
    // Restart a, then b; the other one must see no rebalance.
    for restart_a in [true, false] {
        let (moving, staying, dir, pod) =
            if restart_a { (&mut a, &b, &dir_a, &pod_a) } else { (&mut b, &a, &dir_b, &pod_b) };
        let staying = staying.as_ref().unwrap();
        let before = rebalances(staying);
        let owned = moving.as_ref().unwrap().assignment();
        let restarted_at = Instant::now();
        moving.take().unwrap().shutdown().unwrap();
        let restarted = start(dir, pod);
        harness::eventually("the restarted instance is ready with its old partitions", Duration::from_secs(60), || {
            let ready = get(restarted.http_addr().unwrap(), "/health/ready");
            if ready.0 == 200 && restarted.assignment() == owned {
                Ok(())
            } else {
                Err(format!("ready {ready:?}, partitions {:?}, want {owned:?}", restarted.assignment()))
            }
        });
        assert!(
            restarted_at.elapsed() < Duration::from_secs(20),
            "the restart fits well inside the group's session timeout"
        );
        // A rebalance would reach the other member within a heartbeat (500 ms).
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(rebalances(staying), before, "the other instance saw a rebalance");
        assert_eq!(get(staying.http_addr().unwrap(), "/health/ready").0, 200);
        *moving = Some(restarted);
    }
    harness::produce_many(&input, &records(400, 4, 0)).await;
    harness::eventually("both instances process", Duration::from_secs(60), || {
        let n = harness::read_committed(&output).len();
        if n == 400 {
            Ok(())
        } else {
            Err(format!("{n} outputs"))
        }
    });
    a.take().unwrap().shutdown().unwrap();
    b.take().unwrap().shutdown().unwrap();
}
