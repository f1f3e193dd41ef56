//! Proof that the test broker is a real Kafka: records round-trip with keys,
//! headers and timestamps; aborted transactions are invisible to
//! `read_committed`; a consumer group splits partitions between members.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use harness::{Isolation, TestRecord};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::Message;

#[tokio::test]
async fn records_round_trip_with_keys_headers_and_timestamps() {
    let topic = harness::new_history_topic("round-trip", 1).await;
    let sent = vec![
        TestRecord {
            partition: 0,
            key: Some(b"user-1".to_vec()),
            value: Some(b"{\"clicks\":3}".to_vec()),
            headers: vec![("trace-id".into(), Some(b"abc".to_vec())), ("empty".into(), None)],
            timestamp: Some(1_700_000_000_123),
        },
        TestRecord { partition: 0, key: None, value: Some(b"no key".to_vec()), headers: vec![], timestamp: Some(42) },
        TestRecord { partition: 0, key: Some(b"tombstone".to_vec()), value: None, headers: vec![], timestamp: Some(7) },
    ];
    harness::produce(&topic, &sent).await;
    assert_eq!(harness::read_committed(&topic), sent);
}

#[tokio::test]
async fn aborted_transaction_is_invisible_to_read_committed_readers() {
    let topic = harness::new_topic("txn", 1).await;
    let producer: FutureProducer =
        harness::client_config().set("transactional.id", harness::unique("txn-id")).create().unwrap();
    producer.init_transactions(Duration::from_secs(30)).unwrap();

    producer.begin_transaction().unwrap();
    for i in 0..3 {
        let r = TestRecord::kv(&format!("k{i}"), &format!("aborted-{i}"));
        producer.send(r.to_future_record(&topic), Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
    }
    producer.abort_transaction(Duration::from_secs(30)).unwrap();

    producer.begin_transaction().unwrap();
    for i in 0..3 {
        let r = TestRecord::kv(&format!("k{i}"), &format!("committed-{i}"));
        producer.send(r.to_future_record(&topic), Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
    }
    producer.commit_transaction(Duration::from_secs(30)).unwrap();

    let committed: Vec<String> = harness::read_committed(&topic).iter().map(|r| r.value_str().to_string()).collect();
    assert_eq!(committed, ["committed-0", "committed-1", "committed-2"]);

    // The aborted records did reach the log: a read_uncommitted reader sees them.
    let everything: Vec<String> =
        harness::read_to_end(&topic, Isolation::ReadUncommitted).iter().map(|r| r.value_str().to_string()).collect();
    assert_eq!(everything, ["aborted-0", "aborted-1", "aborted-2", "committed-0", "committed-1", "committed-2"]);
}

#[tokio::test]
async fn two_consumers_in_one_group_split_a_four_partition_topic() {
    let topic = harness::new_topic("split", 4).await;
    let group = harness::unique("group");
    let member = || -> BaseConsumer {
        let c: BaseConsumer = harness::client_config()
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .create()
            .unwrap();
        c.subscribe(&[&topic]).unwrap();
        c
    };
    let members = [member(), member()];

    // Poll both (the topic is still empty) until the group has settled with
    // every partition owned.
    let owned = |m: &BaseConsumer| -> BTreeSet<i32> {
        m.assignment().unwrap().elements().iter().map(|e| e.partition()).collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for m in &members {
            assert!(m.poll(Duration::from_millis(100)).is_none(), "the topic is still empty");
        }
        let (a, b) = (owned(&members[0]), owned(&members[1]));
        if !a.is_empty() && !b.is_empty() && a.len() + b.len() == 4 {
            break;
        }
        assert!(Instant::now() < deadline, "the group did not settle within 60s: {a:?} {b:?}");
    }

    let records: Vec<TestRecord> = (0..40)
        .map(|i| TestRecord { partition: i % 4, ..TestRecord::kv(&format!("k{i}"), &format!("v{i}")) })
        .collect();
    harness::produce(&topic, &records).await;

    // Poll both until every record has been read by one of them.
    let mut seen: [BTreeMap<i32, usize>; 2] = [BTreeMap::new(), BTreeMap::new()];
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.iter().map(|s| s.values().sum::<usize>()).sum::<usize>() < records.len() {
        assert!(Instant::now() < deadline, "the group did not read all records within 60s: {seen:?}");
        for (i, m) in members.iter().enumerate() {
            if let Some(msg) = m.poll(Duration::from_millis(100)) {
                let msg = msg.unwrap();
                *seen[i].entry(msg.partition()).or_default() += 1;
            }
        }
    }

    let assigned: Vec<BTreeSet<i32>> = members.iter().map(owned).collect();
    assert!(assigned.iter().all(|a| !a.is_empty()), "each member owns partitions: {assigned:?}");
    assert!(assigned[0].is_disjoint(&assigned[1]), "no partition is owned twice: {assigned:?}");
    let union: BTreeSet<i32> = assigned[0].union(&assigned[1]).copied().collect();
    assert_eq!(union, (0..4).collect(), "all four partitions are owned");
    for i in 0..2 {
        let read_from: BTreeSet<i32> = seen[i].keys().copied().collect();
        assert!(
            read_from.is_subset(&assigned[i]),
            "member {i} read only its own partitions: {read_from:?} vs {assigned:?}"
        );
    }
    assert_eq!(seen.iter().flat_map(|s| s.values()).sum::<usize>(), 40, "each record was read once");
}
