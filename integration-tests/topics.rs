//! Topics on a real broker: co-partitioned sources move together through
//! rebalances; missing or mismatched topics are clear errors; `table()`
//! keeps the latest value per key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use harness::TestRecord;
use rivulet::prelude::*;
use rivulet::RunningApp;

/// Two co-partitioned topics merged and counted per key in one sub-topology.
fn merged_count(a: &str, b: &str, output: &str) -> Topology {
    let mut builder = Topology::builder();
    let left = builder.stream(a, Serdes::string(), Serdes::string());
    let right = builder.stream(b, Serdes::string(), Serdes::string());
    left.merge(&right).group_by_key().count("per-key").to_stream().map_values(|n: i64| n.to_string()).to(
        output,
        Serdes::string(),
        Serdes::string(),
    );
    builder.build().unwrap()
}

fn keyed(n: usize, offset: usize) -> Vec<TestRecord> {
    (0..n)
        .map(|i| {
            let k = (i + offset) % 40;
            TestRecord { partition: (k % 4) as i32, ..TestRecord::kv(&format!("key-{k}"), "x") }
        })
        .collect()
}

fn assert_co_partitioned(apps: &[&RunningApp], a: &str, b: &str) {
    for app in apps {
        let assigned = app.assignment();
        for p in 0..4 {
            let has_a = assigned.contains(&(a.to_string(), p));
            let has_b = assigned.contains(&(b.to_string(), p));
            assert_eq!(has_a, has_b, "partition {p} of {a} and {b} are owned together: {assigned:?}");
        }
    }
}

fn wait_settled(apps: &[&RunningApp], a: &str) {
    harness::eventually("every partition owned once", Duration::from_secs(60), || {
        let owned: Vec<(String, i32)> = apps.iter().flat_map(|app| app.assignment()).filter(|(t, _)| t == a).collect();
        let distinct: BTreeSet<_> = owned.iter().cloned().collect();
        if owned.len() == 4 && distinct.len() == 4 {
            Ok(())
        } else {
            Err(format!("{owned:?}"))
        }
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn partition_p_of_co_partitioned_sources_stays_together_through_rebalances() {
    let a = harness::new_topic("left", 4).await;
    let b = harness::new_topic("right", 4).await;
    let output = harness::new_topic("per-key", 4).await;
    let app_id = harness::unique("copart");
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let start = |i: usize| {
        App::new(harness::app_config(&app_id, dirs[i].path(), &[]))
            .unwrap()
            .start(merged_count(&a, &b, &output))
            .unwrap()
    };
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    let mut write = |records: Vec<TestRecord>| {
        for r in &records {
            *expected.entry(r.key_str().to_string()).or_default() += 1;
        }
        records
    };

    let first = start(0);
    wait_settled(&[&first], &a);
    assert_co_partitioned(&[&first], &a, &b);
    let batch = write(keyed(200, 0));
    let batch = write(batch); // to both topics
    harness::produce_many(&a, &batch).await;
    harness::produce_many(&b, &batch).await;

    let second = start(1);
    wait_settled(&[&first, &second], &a);
    assert_co_partitioned(&[&first, &second], &a, &b);
    let batch = write(keyed(120, 7));
    harness::produce_many(&a, &batch).await;

    let third = start(2);
    wait_settled(&[&first, &second, &third], &a);
    assert_co_partitioned(&[&first, &second, &third], &a, &b);
    let batch = write(keyed(80, 3));
    harness::produce_many(&b, &batch).await;

    second.shutdown().unwrap();
    wait_settled(&[&first, &third], &a);
    assert_co_partitioned(&[&first, &third], &a, &b);
    let batch = write(keyed(100, 11));
    harness::produce_many(&a, &batch).await;

    // Had partition p of the two topics been counted in two places, the
    // counts per key would be split between two stores.
    let expected: BTreeMap<String, String> = expected.into_iter().map(|(k, v)| (k, v.to_string())).collect();
    harness::eventually("per-key counts over both topics", Duration::from_secs(90), || {
        let got = harness::latest_by_key(&output);
        if got == expected {
            Ok(())
        } else {
            Err(format!("got {got:?}"))
        }
    });
    first.shutdown().unwrap();
    third.shutdown().unwrap();
}

#[tokio::test]
async fn a_missing_source_topic_is_a_clear_error() {
    let missing = harness::unique("no-such-topic");
    let output = harness::new_topic("out", 1).await;
    let state = tempfile::tempdir().unwrap();
    let mut b = Topology::builder();
    b.stream(&missing, Serdes::string(), Serdes::string()).to(&output, Serdes::string(), Serdes::string());
    let config = harness::app_config(&harness::unique("missing"), state.path(), &[]);
    let err = App::new(config).unwrap().start(b.build().unwrap()).err().expect("start fails").to_string();
    assert!(err.contains(&format!("source topic {missing} does not exist")), "{err}");
}

#[tokio::test]
async fn a_missing_output_topic_is_a_clear_error_at_start() {
    let input = harness::new_topic("in", 1).await;
    let missing = harness::unique("no-such-output");
    let state = tempfile::tempdir().unwrap();
    let mut b = Topology::builder();
    b.stream(&input, Serdes::string(), Serdes::string()).to(&missing, Serdes::string(), Serdes::string());
    let config = harness::app_config(&harness::unique("missing-out"), state.path(), &[]);
    let err = App::new(config).unwrap().start(b.build().unwrap()).err().expect("start fails").to_string();
    assert!(err.contains(&format!("output topic {missing} does not exist")), "{err}");
}

#[tokio::test]
async fn source_topics_of_one_subtopology_with_different_partition_counts_are_refused() {
    let a = harness::new_topic("left", 4).await;
    let b = harness::new_topic("right", 2).await;
    let output = harness::new_topic("out", 1).await;
    let state = tempfile::tempdir().unwrap();
    let config = harness::app_config(&harness::unique("copart-bad"), state.path(), &[]);
    let err = App::new(config).unwrap().start(merged_count(&a, &b, &output)).err().expect("start fails").to_string();
    assert!(err.contains(&format!("{a}: 4")) && err.contains(&format!("{b}: 2")), "names topics and counts: {err}");
}

#[tokio::test]
async fn an_existing_changelog_with_the_wrong_partition_count_or_policy_is_refused() {
    let input = harness::new_topic("in", 4).await;
    let output = harness::new_topic("out", 4).await;
    let state = tempfile::tempdir().unwrap();

    let app_id = harness::unique("wrong-parts");
    harness::create_topic(&format!("{app_id}-per-key-changelog"), 2, &[("cleanup.policy", "compact")]).await;
    let config = harness::app_config(&app_id, state.path(), &[]);
    let err = App::new(config)
        .unwrap()
        .start(merged_count(&input, &harness::new_topic("in2", 4).await, &output))
        .err()
        .unwrap();
    let err = err.to_string();
    assert!(err.contains(&format!("{app_id}-per-key-changelog has 2 partitions")) && err.contains("needs 4"), "{err}");

    let app_id = harness::unique("wrong-policy");
    harness::create_topic(&format!("{app_id}-per-key-changelog"), 4, &[("cleanup.policy", "delete")]).await;
    let config = harness::app_config(&app_id, state.path(), &[]);
    let err = App::new(config)
        .unwrap()
        .start(merged_count(&input, &harness::new_topic("in3", 4).await, &output))
        .err()
        .unwrap();
    let err = err.to_string();
    assert!(err.contains("cleanup.policy=delete") && err.contains("must be compacted"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn internal_topics_are_created_with_the_right_partitions_and_policy() {
    let input = harness::new_topic("in", 3).await;
    let output = harness::new_topic("out", 3).await;
    let state = tempfile::tempdir().unwrap();
    let app_id = harness::unique("internal");
    let mut b = Topology::builder();
    b.stream(&input, Serdes::string(), Serdes::string())
        .group_by(|_, v: &String| v.clone(), Serdes::string())
        .count("by-value")
        .to_stream()
        .to(&output, Serdes::string(), Serdes::i64());
    let app = App::new(harness::app_config(&app_id, state.path(), &[])).unwrap().start(b.build().unwrap()).unwrap();
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        harness::client_config().create().unwrap();
    for (topic, policy) in
        [(format!("{app_id}-by-value-changelog"), "compact"), (format!("{app_id}-by-value-repartition"), "delete")]
    {
        let md = admin.inner().fetch_metadata(Some(&topic), Duration::from_secs(10)).unwrap();
        assert_eq!(md.topics()[0].partitions().len(), 3, "{topic} has the input's partition count");
        let opts = rdkafka::admin::AdminOptions::new();
        let configs = admin.describe_configs(&[rdkafka::admin::ResourceSpecifier::Topic(&topic)], &opts).await.unwrap();
        let resource = configs.into_iter().next().unwrap().unwrap();
        assert_eq!(resource.get("cleanup.policy").and_then(|e| e.value.clone()).as_deref(), Some(policy), "{topic}");
        if policy == "delete" {
            // No time retention: the broker must not delete records the
            // downstream task has not read (rivulet purges them itself).
            assert_eq!(resource.get("retention.ms").and_then(|e| e.value.clone()).as_deref(), Some("-1"), "{topic}");
        }
    }
    app.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn table_keeps_the_latest_value_per_key_and_a_null_value_deletes() {
    let input = harness::new_topic("table-in", 1).await;
    harness::create_topic(&input, 1, &[("cleanup.policy", "compact")]).await;
    let output = harness::new_topic("table-out", 1).await;
    let state = tempfile::tempdir().unwrap();
    let mut b = Topology::builder();
    b.table(&input, "prices", Serdes::string(), Serdes::i64())
        .to_change_stream()
        .map_values(|v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_else(|| "deleted".into()))
        .to(&output, Serdes::string(), Serdes::string());
    let app = App::new(harness::app_config(&harness::unique("table"), state.path(), &[]))
        .unwrap()
        .start(b.build().unwrap())
        .unwrap();
    let v = |n: i64| Some(n.to_be_bytes().to_vec());
    let records = vec![
        TestRecord { value: v(1), ..TestRecord::kv("apple", "") },
        TestRecord { value: v(2), ..TestRecord::kv("pear", "") },
        TestRecord { value: v(3), ..TestRecord::kv("apple", "") },
        TestRecord { value: None, ..TestRecord::kv("pear", "") },
    ];
    harness::produce(&input, &records).await;
    harness::eventually("the table's changes are written", Duration::from_secs(60), || {
        let got: Vec<(String, String)> =
            harness::read_committed(&output).iter().map(|r| (r.key_str().into(), r.value_str().into())).collect();
        let want: Vec<(String, String)> = [("apple", "1"), ("pear", "2"), ("apple", "3"), ("pear", "deleted")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if got == want {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    });
    app.shutdown().unwrap();
}
