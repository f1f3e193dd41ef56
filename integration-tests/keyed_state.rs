//! Keyed state and timers on a real broker: an event-time timer's output
//! appears exactly once under `read_committed` although the instance is
//! killed with SIGKILL mid-stream and restarted on its state dir;
//! processing-time timers fire while no input arrives; state with a
//! time-to-live expires; and the `fraud_alerts` example raises the alerts
//! it should (its topology is compiled into this test from its source).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

// The example's `main` is not used here.
#[allow(dead_code)]
#[path = "../examples/fraud_alerts.rs"]
mod fraud_alerts;

use std::collections::BTreeMap;
use std::time::Duration;

use harness::child::{self, ChildApp};
use harness::TestRecord;
use rivulet::prelude::*;
use rivulet::topology::keyed::{KeyedContext, KeyedProcess, KeyedProcessor, MapState, Timer, ValueState};
use rivulet::topology::ProcessError;
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(90);
const STORE: &str = "timers";
/// An event-time timer fires this long after its record's timestamp.
const DELAY_MS: i64 = 1_000;

/// For each record (value `v`, timestamp `ts`) registers an event-time
/// timer at `ts + DELAY_MS` and remembers `v` for it; the timer emits
/// `<time>:<v>`. With the value `remind`, a processing-time timer 300 ms
/// from now emits `reminder`. With `count`, counts the key's records in a
/// state with a 1.5 s time-to-live and emits the count.
struct Timers {
    pending: MapState<i64, String>,
    count: ValueState<i64>,
}

type Ctx<'c, 'a> = KeyedContext<'c, 'a, String, String, String>;

impl KeyedProcessor<String, String, String, String> for Timers {
    fn process_element(&mut self, r: Record<String, String>, ctx: &mut Ctx<'_, '_>) -> Result<(), ProcessError> {
        match r.value.as_str() {
            "remind" => {
                let at = ctx.current_processing_time() + 300;
                ctx.register_processing_time_timer(at)
            }
            "count" => {
                let n = self.count.get(ctx)?.unwrap_or(0) + 1;
                self.count.set(ctx, &n)?;
                ctx.forward(r.with_value(n.to_string()))
            }
            _ => {
                let at = r.timestamp + DELAY_MS;
                self.pending.put(ctx, &at, &r.value)?;
                ctx.register_event_time_timer(at)
            }
        }
    }

    fn on_timer(&mut self, timer: Timer, ctx: &mut Ctx<'_, '_>) -> Result<(), ProcessError> {
        let key = ctx.key().clone();
        let value = match self.pending.get(ctx, &timer.time)? {
            Some(v) => {
                self.pending.remove(ctx, &timer.time)?;
                format!("{}:{v}", timer.time)
            }
            None => "reminder".to_string(),
        };
        ctx.forward(Record::new(key, value, timer.time))
    }
}

fn timers_topology(input: &str, output: &str) -> Topology {
    let mut b = Topology::builder();
    b.add_store(StoreSpec::keyed(STORE));
    b.stream(input, Serdes::string(), Serdes::string())
        .process(&[STORE], || {
            let timers = Timers {
                pending: MapState::new("pending", Serdes::i64(), Serdes::string()),
                count: ValueState::new("count", Serdes::i64()).with_ttl(Duration::from_millis(1_500)),
            };
            KeyedProcess::new(STORE, Serdes::string(), timers)
        })
        .to(output, Serdes::string(), Serdes::string());
    b.build().unwrap()
}

/// Not a test of its own: the body of the child process the restart test
/// starts and kills. In a normal test run it returns at once.
#[test]
fn child_process_entry_point_for_the_restart_test() {
    let Some(spec) = child::spec() else { return };
    child::run_exactly_once(&spec, timers_topology)
}

fn spawn_child(spec: &str) -> ChildApp {
    ChildApp::spawn_test("child_process_entry_point_for_the_restart_test", spec)
}

const BASE_TS: i64 = 1_700_000_000_000;
const KEYS: usize = 10;

/// Record `i`: key `key-<i % KEYS>` (partition by key, of 2), value `i`,
/// timestamp `BASE_TS + 10 i`, so every (key, timer time) is distinct.
fn timed_record(i: usize) -> TestRecord {
    let k = i % KEYS;
    TestRecord {
        partition: (k % 2) as i32,
        timestamp: Some(BASE_TS + 10 * i as i64),
        ..TestRecord::kv(&format!("key-{k}"), &i.to_string())
    }
}

/// Each committed timer output `(key, value)` with how often it appears.
fn timer_outputs(output: &str) -> BTreeMap<(String, String), usize> {
    let mut seen = BTreeMap::new();
    for r in harness::read_committed(output) {
        *seen.entry((r.key_str().to_string(), r.value_str().to_string())).or_insert(0) += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn event_time_timers_fire_exactly_once_across_a_sigkill_and_restart() {
    const RECORDS: usize = 3_000;
    let input = harness::new_history_topic("keyed-in", 2).await;
    let output = harness::new_history_topic("keyed-out", 2).await;
    let app_id = harness::unique("keyed-timers");
    let state = tempfile::tempdir().unwrap();
    let instance = harness::unique("pod");
    let spec = format!("{input}|{output}|{app_id}|{}|{instance}", state.path().display());
    let records: Vec<TestRecord> = (0..RECORDS).map(timed_record).collect();

    // The first instance runs while the input streams in and is killed -9
    // once some timers' outputs are committed.
    let child = spawn_child(&spec);
    let (first, rest) = records.split_at(RECORDS / 2);
    let topic = input.clone();
    let first = first.to_vec();
    let writer = tokio::spawn(async move {
        // About 5 s of input, so that the kill comes while it streams in.
        for chunk in first.chunks(30) {
            harness::produce_many(&topic, chunk).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    harness::eventually("the first instance commits timer outputs", TIMEOUT, || {
        let n = harness::read_committed(&output).len();
        if n >= 200 {
            Ok(())
        } else {
            Err(format!("{n} outputs"))
        }
    });
    drop(child); // SIGKILL, mid-stream
    let fired_before_kill = harness::read_committed(&output).len();
    writer.await.unwrap();

    // The rest of the input, then a record far in the future per partition
    // so that the watermark passes every timer.
    harness::produce_many(&input, rest).await;
    let flush: Vec<TestRecord> = (0..2)
        .map(|p| TestRecord {
            partition: p,
            timestamp: Some(BASE_TS + 1_000_000_000),
            ..TestRecord::kv("flush", "end")
        })
        .collect();
    harness::produce_many(&input, &flush).await;

    // A second instance with the same identity and state dir finishes.
    let child = spawn_child(&spec);
    let expected: BTreeMap<(String, String), usize> = (0..RECORDS)
        .map(|i| {
            let time = BASE_TS + 10 * i as i64 + DELAY_MS;
            ((format!("key-{}", i % KEYS), format!("{time}:{i}")), 1)
        })
        .collect();
    harness::eventually("every timer's output, exactly once", TIMEOUT, || {
        let seen = timer_outputs(&output);
        if seen == expected {
            return Ok(());
        }
        let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(3).collect();
        let missing = expected.keys().filter(|k| !seen.contains_key(*k)).count();
        let unexpected: Vec<_> = seen.keys().filter(|k| !expected.contains_key(*k)).take(3).collect();
        Err(format!("{missing} missing; duplicates {twice:?}; unexpected {unexpected:?}"))
    });
    // Some more commit cycles: nothing fires again.
    std::thread::sleep(Duration::from_secs(2));
    drop(child);
    assert_eq!(timer_outputs(&output), expected, "each timer's output appears exactly once");
    assert!(fired_before_kill < RECORDS, "the kill happened before every timer had fired ({fired_before_kill})");
}

#[tokio::test(flavor = "multi_thread")]
async fn state_with_a_time_to_live_expires_and_processing_time_timers_fire_without_input() {
    let input = harness::new_topic("ttl-in", 1).await;
    let output = harness::new_topic("ttl-out", 1).await;
    let state = tempfile::tempdir().unwrap();
    let app = App::new(harness::app_config(&harness::unique("keyed-ttl"), state.path(), &[]))
        .unwrap()
        .start(timers_topology(&input, &output))
        .unwrap();
    let outputs = || -> Vec<(String, String)> {
        harness::read_committed(&output).iter().map(|r| (r.key_str().to_string(), r.value_str().to_string())).collect()
    };
    let expect = |what: &str, want: Vec<(&str, &str)>| {
        let want: Vec<(String, String)> = want.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        harness::eventually(what, TIMEOUT, || {
            let got = outputs();
            if got == want {
                Ok(())
            } else {
                Err(format!("got {got:?}, want {want:?}"))
            }
        });
    };

    harness::produce(&input, &[TestRecord::kv("a", "count"), TestRecord::kv("a", "count")]).await;
    expect("the count within its time-to-live", vec![("a", "1"), ("a", "2")]);
    // Past the 1.5 s time-to-live: the count starts over.
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    harness::produce(&input, &[TestRecord::kv("a", "count")]).await;
    expect("the count after it expired", vec![("a", "1"), ("a", "2"), ("a", "1")]);

    // A processing-time timer fires 300 ms later though no record comes.
    harness::produce(&input, &[TestRecord::kv("b", "remind")]).await;
    expect("the reminder", vec![("a", "1"), ("a", "2"), ("a", "1"), ("b", "reminder")]);
    app.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn fraud_alerts_flags_bursts_and_large_payments() {
    let input = harness::new_topic("payments", 1).await;
    let output = harness::new_history_topic("fraud-alerts", 1).await;
    let settings = fraud_alerts::Settings {
        input_topic: input.clone(),
        output_topic: output.clone(),
        burst_count: 3,
        burst_window_secs: 60,
        large_factor: 10.0,
        out_of_orderness_ms: 5_000,
    };
    let t = |secs: i64| BASE_TS + secs * 1_000;
    // (card, amount, seconds after BASE_TS), in event-time order.
    let payments = [
        ("A", 10.0, 0),
        ("B", 20.0, 5),
        ("A", 12.0, 10),
        ("A", 11.0, 20), // A's third payment in 60 s: burst
        ("B", 25.0, 70),
        ("B", 30.0, 125),
        ("B", 100.0, 130), // B@70 is exactly 60 s back, out of the window: no burst; 4x the average
        ("A", 500.0, 200), // over 10x A's average of 11: large
        ("A", 40.0, 205),
        ("A", 41.0, 210), // A@200, A@205, A@210: burst
    ];
    let records: Vec<TestRecord> = payments
        .iter()
        .map(|(card, amount, secs)| {
            let value = json!({ "card": card, "amount": amount, "ts": t(*secs) }).to_string();
            TestRecord::kv(card, &value)
        })
        .collect();
    harness::produce(&input, &records).await;

    let state = tempfile::tempdir().unwrap();
    let app = App::new(harness::app_config(&harness::unique("fraud-alerts"), state.path(), &[]))
        .unwrap()
        .start(fraud_alerts::topology(&settings).unwrap())
        .unwrap();
    let expected: Vec<(String, Value)> = vec![
        ("A".into(), json!({ "card": "A", "kind": "burst", "ts": t(20), "amount": 11.0, "payments": 3 })),
        ("A".into(), json!({ "card": "A", "kind": "large", "ts": t(200), "amount": 500.0, "average": 11.0 })),
        ("A".into(), json!({ "card": "A", "kind": "burst", "ts": t(210), "amount": 41.0, "payments": 3 })),
    ];
    harness::eventually("the alerts", TIMEOUT, || {
        let got: Vec<(String, Value)> = harness::read_committed(&output)
            .iter()
            .map(|r| (r.key_str().to_string(), serde_json::from_slice(r.value.as_deref().unwrap()).unwrap()))
            .collect();
        if got == expected {
            Ok(())
        } else {
            Err(format!("got {got:?}, want {expected:?}"))
        }
    });
    app.shutdown().unwrap();
    let timestamps: Vec<Option<i64>> = harness::read_committed(&output).iter().map(|r| r.timestamp).collect();
    assert_eq!(timestamps, vec![Some(t(20)), Some(t(200)), Some(t(210))], "alerts carry the payment's event time");
}
