//! Bad records on a real broker: each policy (fail, skip, dead_letter) for
//! records that cannot be deserialized, that a user function rejects, and
//! that the producer refuses. The good records around them are all processed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::path::Path;
use std::time::Duration;

use harness::TestRecord;
use rivulet::prelude::*;
use rivulet::RunningApp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u32,
    amount: i64,
}

/// Orders pass through; a negative amount is rejected by the user function;
/// an amount of 999 is blown up into a value the producer refuses.
fn topology(input: &str, output: &str) -> Topology {
    let mut b = Topology::builder();
    b.stream(input, Serdes::string(), Serdes::json::<Order>())
        .try_map_values(
            |o: Order| if o.amount < 0 { Err(format!("order {} has a negative amount", o.id)) } else { Ok(o) },
        )
        .map_values(|o: Order| if o.amount == 999 { "x".repeat(20_000) } else { serde_json::to_string(&o).unwrap() })
        .to(output, Serdes::string(), Serdes::string());
    b.build().unwrap()
}

fn order(key: &str, value: &str) -> TestRecord {
    TestRecord { headers: vec![("origin".into(), Some(b"test".to_vec()))], ..TestRecord::kv(key, value) }
}

/// good, malformed JSON, good, negative amount, good, too large, good.
fn inputs() -> Vec<TestRecord> {
    vec![
        order("a", r#"{"id":1,"amount":10}"#),
        order("b", "{not json"),
        order("c", r#"{"id":3,"amount":30}"#),
        order("d", r#"{"id":4,"amount":-5}"#),
        order("e", r#"{"id":5,"amount":50}"#),
        order("f", r#"{"id":6,"amount":999}"#),
        order("g", r#"{"id":7,"amount":70}"#),
    ]
}

const GOOD: [&str; 4] = ["a", "c", "e", "g"];

/// Producer limit so that the 20 kB value of order 6 is refused.
const SMALL_MESSAGES: (&str, &str) = ("RIVULET__KAFKA__PRODUCER__MESSAGE_MAX_BYTES", "10000");

async fn setup(prefix: &str) -> (String, String, String) {
    let input = harness::new_topic(&format!("{prefix}-in"), 1).await;
    let output = harness::new_topic(&format!("{prefix}-out"), 1).await;
    harness::produce(&input, &inputs()).await;
    (input, output, harness::unique(prefix))
}

fn keys_of(topic: &str) -> Vec<String> {
    harness::read_committed(topic).iter().map(|r| r.key_str().to_string()).collect()
}

/// Runs the topology with `policy` for every kind of bad record until the
/// good records are written.
fn start_with_policy(policy: &str, input: &str, output: &str, app_id: &str, state: &Path) -> RunningApp {
    let config = harness::app_config(
        app_id,
        state,
        &[
            ("RIVULET__ERRORS__DESERIALIZATION", policy),
            ("RIVULET__ERRORS__PROCESSING", policy),
            ("RIVULET__ERRORS__PRODUCTION", policy),
            SMALL_MESSAGES,
        ],
    );
    let app = App::new(config).unwrap().start(topology(input, output)).unwrap();
    harness::eventually("the good records are written", Duration::from_secs(60), || {
        let keys = keys_of(output);
        if keys == GOOD {
            Ok(())
        } else {
            Err(format!("{keys:?}"))
        }
    });
    app
}

#[tokio::test(flavor = "multi_thread")]
async fn fail_policy_stops_at_the_malformed_record_naming_its_offset_and_commits_nothing_past_it() {
    let (input, output, app_id) = setup("fail").await;
    let state = tempfile::tempdir().unwrap();
    let config = harness::app_config(&app_id, state.path(), &[SMALL_MESSAGES]);
    let app = App::new(config).unwrap().start(topology(&input, &output)).unwrap();
    harness::eventually("the application stops", Duration::from_secs(60), || {
        if app.has_stopped() {
            Ok(())
        } else {
            Err("still running".into())
        }
    });
    let err = app.shutdown().unwrap_err().to_string();
    assert!(err.contains(&format!("topic {input} partition 0 offset 1")), "the error names the record: {err}");
    assert!(err.contains("value of topic") && err.contains("json<"), "the error says what failed: {err}");

    // Nothing was committed past the bad record: a consumer of the group starts at or before it.
    let consumer: rdkafka::consumer::BaseConsumer = harness::client_config().set("group.id", &app_id).create().unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition(&input, 0);
    let committed = rdkafka::consumer::Consumer::committed_offsets(&consumer, tpl, Duration::from_secs(10)).unwrap();
    let offset = committed.elements()[0].offset();
    assert!(
        matches!(offset, rdkafka::Offset::Invalid) || matches!(offset, rdkafka::Offset::Offset(o) if o <= 1),
        "committed {offset:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn skip_policy_counts_bad_records_and_processes_every_good_one() {
    let (input, output, app_id) = setup("skip").await;
    let state = tempfile::tempdir().unwrap();
    let app = start_with_policy("skip", &input, &output, &app_id, state.path());
    harness::eventually("all three bad records are counted", Duration::from_secs(10), || {
        let s = app.stats();
        if s.records_skipped == 3 {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    });
    app.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letter_policy_writes_the_original_record_with_error_headers() {
    let (input, output, app_id) = setup("dlq").await;
    let state = tempfile::tempdir().unwrap();
    let app = start_with_policy("dead_letter", &input, &output, &app_id, state.path());
    let dlq = format!("{app_id}-dlq");
    harness::eventually("three records are dead-lettered", Duration::from_secs(30), || {
        let n = harness::read_committed(&dlq).len();
        if n == 3 {
            Ok(())
        } else {
            Err(format!("{n} in {dlq}"))
        }
    });
    let originals = inputs();
    let header = |r: &TestRecord, name: &str| -> String {
        let v = r.headers.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.clone()).unwrap_or_default();
        String::from_utf8(v).unwrap()
    };
    let dead = harness::read_committed(&dlq);
    for (r, (offset, kind)) in dead.iter().zip([(1, "deserialization"), (3, "processing"), (5, "production")]) {
        let original = &originals[offset];
        assert_eq!(r.key, original.key, "original key");
        assert_eq!(r.value, original.value, "original value bytes");
        assert_eq!(header(r, "origin"), "test", "original headers are kept");
        assert_eq!(header(r, "rivulet.error.kind"), kind);
        assert_eq!(header(r, "rivulet.source.topic"), input);
        assert_eq!(header(r, "rivulet.source.partition"), "0");
        assert_eq!(header(r, "rivulet.source.offset"), offset.to_string());
        assert!(!header(r, "rivulet.error.message").is_empty());
    }
    assert_eq!(app.stats().records_dead_lettered, 3);
    app.shutdown().unwrap();
}
