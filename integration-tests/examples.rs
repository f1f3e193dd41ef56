//! The example programs on a real broker: `csv_to_json` (malformed lines go
//! to the dead-letter topic) and `user_visits` (a Processor API counter
//! whose store survives a restart). The examples' topologies are compiled
//! into this test from their source files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

// The examples' `main` and settings are not used here.
#[allow(dead_code)]
#[path = "../examples/csv_to_json.rs"]
mod csv_to_json;
#[allow(dead_code)]
#[path = "../examples/user_visits.rs"]
mod user_visits;

use std::collections::BTreeMap;
use std::time::Duration;

use harness::TestRecord;
use rivulet::prelude::*;
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(60);

/// A record with no key and a text value, to partition 0.
fn line(text: &str) -> TestRecord {
    TestRecord { partition: 0, key: None, value: Some(text.as_bytes().to_vec()), headers: vec![], timestamp: None }
}

/// The value of header `name`, as text.
fn header<'a>(r: &'a TestRecord, name: &str) -> Option<&'a str> {
    r.headers.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.as_deref()).map(|v| std::str::from_utf8(v).unwrap())
}

#[test]
fn csv_to_json_parses_user_amount_lines_and_rejects_malformed_ones() {
    let payment = |user: &str, amount: f64| (user.to_string(), csv_to_json::Payment { user: user.into(), amount });
    assert_eq!(csv_to_json::parse("alice,12.50"), Ok(payment("alice", 12.5)));
    assert_eq!(csv_to_json::parse(" bob , -3 "), Ok(payment("bob", -3.0)));
    assert_eq!(csv_to_json::parse("carol,1e3"), Ok(payment("carol", 1000.0)));
    for bad in
        ["", "alice", "alice;12", "alice,1,2", ",12", "  ,12", "alice,", "alice,twelve", "alice,NaN", "alice,inf"]
    {
        assert!(csv_to_json::parse(bad).is_err(), "{bad:?} was accepted: {:?}", csv_to_json::parse(bad));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn csv_to_json_writes_good_lines_as_json_and_malformed_lines_to_the_dead_letter_topic() {
    let input = harness::new_topic("payments-csv", 1).await;
    let output = harness::new_topic("payments-json", 1).await;
    let lines = ["alice,12.50", "bob,3", "carol;7", "dave,0.25", "erin,lots", "frank,-4.75", "alice,100"];
    // A fresh one-partition topic: line i is at offset i.
    let malformed_offsets = [2, 4];
    harness::produce(&input, &lines.map(line)).await;

    let app_id = harness::unique("csv-to-json");
    let state = tempfile::tempdir().unwrap();
    let config = harness::app_config(&app_id, state.path(), &[("RIVULET__ERRORS__PROCESSING", "dead_letter")]);
    let app = App::new(config).unwrap().start(csv_to_json::topology(&input, &output).unwrap()).unwrap();

    let expected: Vec<(String, Value)> =
        [("alice", 12.5), ("bob", 3.0), ("dave", 0.25), ("frank", -4.75), ("alice", 100.0)]
            .into_iter()
            .map(|(user, amount)| (user.to_string(), json!({ "user": user, "amount": amount })))
            .collect();
    let read_output = || -> Vec<(String, Value)> {
        harness::read_committed(&output)
            .iter()
            .map(|r| (r.key_str().to_string(), serde_json::from_slice(r.value.as_deref().unwrap()).unwrap()))
            .collect()
    };
    harness::eventually("the good lines are in the output as JSON", TIMEOUT, || {
        let got = read_output();
        if got == expected {
            Ok(())
        } else {
            Err(format!("got {got:?}, want {expected:?}"))
        }
    });
    let dlq = format!("{app_id}-dlq");
    harness::eventually("the malformed lines are in the dead-letter topic", TIMEOUT, || {
        let n = harness::read_committed(&dlq).len();
        let dead_lettered = app.stats().records_dead_lettered;
        if n == 2 && dead_lettered == 2 {
            Ok(())
        } else {
            Err(format!("{n} records in {dlq}, {dead_lettered} dead-lettered"))
        }
    });
    app.shutdown().unwrap();

    assert_eq!(read_output(), expected, "the output holds exactly the good lines, each once");
    let dead = harness::read_committed(&dlq);
    assert_eq!(dead.len(), 2, "the dead-letter topic holds exactly the malformed lines: {dead:?}");
    for (r, offset) in dead.iter().zip(malformed_offsets) {
        assert_eq!(r.value.as_deref(), Some(lines[offset].as_bytes()), "the original bytes of line {offset}");
        assert_eq!(r.key, None, "the original (absent) key");
        assert_eq!(header(r, "rivulet.error.kind"), Some("processing"), "{r:?}");
        assert_eq!(header(r, "rivulet.source.topic"), Some(input.as_str()), "{r:?}");
        assert_eq!(header(r, "rivulet.source.partition"), Some("0"), "{r:?}");
        assert_eq!(header(r, "rivulet.source.offset"), Some(offset.to_string().as_str()), "{r:?}");
        let message = header(r, "rivulet.error.message").unwrap_or_default();
        assert!(message.contains(lines[offset]), "the error message names the line: {message:?}");
    }
}

/// The input partition of a user's visits: the same for every visit of a
/// user, as Kafka's default partitioner would keep it.
fn partition_of(user: &str) -> i32 {
    (user.bytes().map(u32::from).sum::<u32>() % 2) as i32
}

/// Writes the visits `(user, page)` keyed by user, and counts them into `counts`.
async fn write_visits(topic: &str, visits: &[(&str, &str)], counts: &mut BTreeMap<String, i64>) {
    let records: Vec<TestRecord> = visits
        .iter()
        .map(|(user, page)| TestRecord { partition: partition_of(user), ..TestRecord::kv(user, page) })
        .collect();
    harness::produce_many(topic, &records).await;
    for (user, _) in visits {
        *counts.entry(user.to_string()).or_default() += 1;
    }
}

/// Every count written to `output` per user, in order.
fn counts_written(output: &str) -> BTreeMap<String, Vec<i64>> {
    let mut all: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in harness::read_committed(output) {
        let bytes: [u8; 8] = r.value.as_deref().unwrap().try_into().expect("an i64 count is 8 bytes");
        all.entry(r.key_str().to_string()).or_default().push(i64::from_be_bytes(bytes));
    }
    all
}

/// Waits until the latest count of each user in `output` is `expected`.
fn expect_counts(output: &str, expected: &BTreeMap<String, i64>) {
    harness::eventually(&format!("the latest count per user in {output}"), TIMEOUT, || {
        let latest: BTreeMap<String, i64> =
            counts_written(output).into_iter().map(|(user, counts)| (user, *counts.last().unwrap())).collect();
        if &latest == expected {
            Ok(())
        } else {
            Err(format!("got {latest:?}, want {expected:?}"))
        }
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn user_visits_counts_per_user_and_continues_from_its_store_after_a_restart() {
    let input = harness::new_topic("visits", 2).await;
    let output = harness::new_topic("visits-per-user", 2).await;
    let app_id = harness::unique("user-visits");
    let state = tempfile::tempdir().unwrap();
    let users = ["alice", "bob", "carol"];
    assert_ne!(partition_of("alice"), partition_of("bob"), "the visits cover both input partitions");
    let pages = ["/", "/cart", "/checkout", "/help"];
    let visits = |n: usize, seed: usize| -> Vec<(&str, &str)> {
        (0..n).map(|i| (users[(i * 7 + seed) % 5 % 3], pages[(i + seed) % pages.len()])).collect()
    };
    let mut expected = BTreeMap::new();

    write_visits(&input, &visits(40, 1), &mut expected).await;
    assert_eq!(expected.len(), 3, "every user visited: {expected:?}");
    let app = App::new(harness::app_config(&app_id, state.path(), &[]))
        .unwrap()
        .start(user_visits::topology(&input, &output).unwrap())
        .unwrap();
    expect_counts(&output, &expected);
    app.shutdown().unwrap();

    // Same state dir: the counts continue from the local store.
    write_visits(&input, &visits(25, 2), &mut expected).await;
    let app = App::new(harness::app_config(&app_id, state.path(), &[]))
        .unwrap()
        .start(user_visits::topology(&input, &output).unwrap())
        .unwrap();
    expect_counts(&output, &expected);
    assert_eq!(app.stats().records_restored, 0, "the store came from the state dir, not the changelog");
    app.shutdown().unwrap();

    // Each visit was counted once, across the restart: user u's counts
    // are 1, 2, .., n.
    let written = counts_written(&output);
    for (user, n) in &expected {
        assert_eq!(written[user], (1..=*n).collect::<Vec<_>>(), "the counts written for {user}");
    }
}
