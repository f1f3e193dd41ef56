//! Repartition topics on a real broker: records with timestamps from years
//! ago survive in them until the downstream task has read them, even across
//! a restart with the broker's retention checks in between; the records
//! below the downstream tasks' committed offsets are deleted after commits,
//! under both guarantees; an existing repartition topic that would let the
//! broker delete unread records is refused at start.
//!
//! The test broker checks retention every 5 s (`broker.sh` sets
//! `log.retention.check.interval.ms=5000`; Kafka's default is 5 minutes).
//! On a broker started with the default, a repartition topic with a time
//! retention loses the old records only when a check happens to fall
//! inside the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use harness::TestRecord;
use rivulet::prelude::*;

const TIMEOUT: Duration = Duration::from_secs(90);
/// September 2020: far older than any time retention.
const YEARS_AGO: i64 = 1_600_000_000_000;
/// Two retention checks of the test broker, and a margin.
const RETENTION_CHECKS: Duration = Duration::from_secs(12);
const PARTITIONS: i32 = 2;
const STORE: &str = "per-value";

/// Counts input records per value (a `group_by`, so through the repartition
/// topic `<app>-per-value-repartition`), sleeping `delay_ms` per record in
/// the downstream sub-topology; writes each new count as text.
fn count_by_value(input: &str, output: &str, delay_ms: Arc<AtomicU64>) -> Topology {
    let mut b = Topology::builder();
    b.stream(input, Serdes::string(), Serdes::string())
        .group_by(|_, v: &String| v.clone(), Serdes::string())
        .aggregate(
            STORE,
            || 0i64,
            move |_, _, n| {
                std::thread::sleep(Duration::from_millis(delay_ms.load(Ordering::Relaxed)));
                n + 1
            },
            Serdes::i64(),
        )
        .to_stream()
        .map_values(|n: i64| n.to_string())
        .to(output, Serdes::string(), Serdes::string());
    b.build().unwrap()
}

/// `n` records over `values` values and both partitions, timestamped years
/// ago; returns them with the count expected per value.
fn history(n: usize, values: usize) -> (Vec<TestRecord>, BTreeMap<String, String>) {
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    let records = (0..n)
        .map(|i| {
            let value = format!("v{}", i % values);
            *counts.entry(value.clone()).or_default() += 1;
            TestRecord {
                partition: (i % PARTITIONS as usize) as i32,
                timestamp: Some(YEARS_AGO + i as i64),
                ..TestRecord::kv(&format!("k{i}"), &value)
            }
        })
        .collect();
    (records, counts.into_iter().map(|(v, n)| (v, n.to_string())).collect())
}

fn expect_counts(output: &str, expected: &BTreeMap<String, String>) {
    harness::eventually("every record counted", TIMEOUT, || {
        let got = harness::latest_by_key(output);
        if &got == expected {
            Ok(())
        } else {
            let counted: i64 = got.values().map(|n| n.parse::<i64>().unwrap()).sum();
            Err(format!("{counted} records counted: {got:?}"))
        }
    });
}

/// Waits until the repartition topic's log start offset (low watermark)
/// equals the offset the application committed in each partition: the
/// records the downstream tasks read were deleted, no unread one.
fn expect_purged_to_committed(app_id: &str, repartition: &str) {
    harness::eventually("the repartition topic purged up to the committed offsets", TIMEOUT, || {
        let committed = harness::committed_offsets(app_id, repartition, PARTITIONS);
        let low: Vec<i64> = harness::watermarks(repartition).iter().map(|(low, _)| *low).collect();
        let want: Vec<Option<i64>> = low.iter().map(|l| Some(*l).filter(|l| *l > 0)).collect();
        if committed == want {
            Ok(())
        } else {
            Err(format!("log start offsets {low:?}, committed offsets {committed:?}"))
        }
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn years_old_records_survive_in_the_repartition_topic_until_the_downstream_task_reads_them() {
    let input = harness::new_history_topic("backfill-in", PARTITIONS).await;
    let output = harness::new_history_topic("backfill-out", PARTITIONS).await;
    let app_id = harness::unique("backfill");
    let repartition = format!("{app_id}-{STORE}-repartition");
    let state = tempfile::tempdir().unwrap();
    let config = || harness::app_config(&app_id, state.path(), &[]);
    let (records, expected) = history(2_000, 20);
    harness::produce_many(&input, &records).await;

    // A slow downstream: the upstream task repartitions the whole backlog
    // and commits it while the downstream task has read a part.
    let delay_ms = Arc::new(AtomicU64::new(5));
    let app = App::new(config()).unwrap().start(count_by_value(&input, &output, delay_ms.clone())).unwrap();
    harness::eventually("the upstream task commits the whole input", TIMEOUT, || {
        let committed = harness::committed_offsets(&app_id, &input, PARTITIONS);
        let ends: Vec<Option<i64>> = harness::watermarks(&input).iter().map(|(_, high)| Some(*high)).collect();
        if committed == ends {
            Ok(())
        } else {
            Err(format!("{committed:?} of {ends:?}"))
        }
    });
    app.shutdown().unwrap();
    let read: Vec<i64> =
        harness::committed_offsets(&app_id, &repartition, PARTITIONS).iter().map(|o| o.unwrap_or(0)).collect();
    let ends: Vec<i64> = harness::watermarks(&repartition).iter().map(|(_, high)| *high).collect();
    assert!(read.iter().zip(&ends).any(|(r, e)| r < e), "the downstream task is behind: read {read:?} of {ends:?}");

    // The application is down while the broker checks retention: the
    // unread records' timestamps are years past any time retention.
    std::thread::sleep(RETENTION_CHECKS);
    let low: Vec<i64> = harness::watermarks(&repartition).iter().map(|(low, _)| *low).collect();
    assert!(
        low.iter().zip(&read).all(|(l, r)| l <= r),
        "the broker deleted repartition records the downstream task had not read: log start offsets {low:?}, \
         read up to {read:?}"
    );

    delay_ms.store(0, Ordering::Relaxed);
    let app = App::new(config()).unwrap().start(count_by_value(&input, &output, delay_ms)).unwrap();
    expect_counts(&output, &expected);
    app.shutdown().unwrap();
}

/// Runs the count over a backlog under `guarantee` and waits until the
/// repartition topic is purged up to the committed offsets.
async fn purges_up_to_the_committed_offsets(guarantee: &str) {
    let input = harness::new_history_topic("purge-in", PARTITIONS).await;
    let output = harness::new_history_topic("purge-out", PARTITIONS).await;
    let app_id = harness::unique("purge");
    let state = tempfile::tempdir().unwrap();
    let (records, expected) = history(3_000, 30);
    harness::produce_many(&input, &records).await;
    // A short interval only to keep the test short (the default is 30 s).
    let config = harness::app_config(
        &app_id,
        state.path(),
        &[("RIVULET__PROCESSING_GUARANTEE", guarantee), ("RIVULET__REPARTITION_PURGE_INTERVAL_MS", "1000")],
    );
    let app = App::new(config).unwrap().start(count_by_value(&input, &output, Arc::new(AtomicU64::new(0)))).unwrap();
    expect_counts(&output, &expected);
    expect_purged_to_committed(&app_id, &format!("{app_id}-{STORE}-repartition"));
    app.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn records_below_the_committed_offsets_are_deleted_from_the_repartition_topic_under_at_least_once() {
    purges_up_to_the_committed_offsets("at_least_once").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn records_below_the_committed_offsets_are_deleted_from_the_repartition_topic_under_exactly_once() {
    // A committed offset points at the transaction marker after the last
    // record read: the log start moves there.
    purges_up_to_the_committed_offsets("exactly_once").await;
}

#[tokio::test]
async fn an_existing_repartition_topic_with_a_finite_retention_or_compaction_is_refused() {
    let input = harness::new_topic("in", PARTITIONS).await;
    let output = harness::new_topic("out", PARTITIONS).await;
    let state = tempfile::tempdir().unwrap();
    let start = |app_id: &str| {
        App::new(harness::app_config(app_id, state.path(), &[]))
            .unwrap()
            .start(count_by_value(&input, &output, Arc::new(AtomicU64::new(0))))
            .err()
            .expect("start fails")
            .to_string()
    };

    // The broker's default: a time retention of 7 days.
    let app_id = harness::unique("finite-retention");
    let topic = format!("{app_id}-{STORE}-repartition");
    harness::create_topic(&topic, PARTITIONS, &[]).await;
    let err = start(&app_id);
    assert!(err.contains(&format!("repartition topic {topic} has retention.ms=")), "{err}");
    assert!(err.contains(&format!("--entity-name {topic} --add-config retention.ms=-1")), "says what to do: {err}");

    let app_id = harness::unique("size-retention");
    let topic = format!("{app_id}-{STORE}-repartition");
    harness::create_topic(&topic, PARTITIONS, &[("retention.ms", "-1"), ("retention.bytes", "1048576")]).await;
    let err = start(&app_id);
    assert!(err.contains(&format!("repartition topic {topic} has retention.bytes=1048576")), "{err}");

    let app_id = harness::unique("compacted-repartition");
    let topic = format!("{app_id}-{STORE}-repartition");
    harness::create_topic(&topic, PARTITIONS, &[("cleanup.policy", "compact"), ("retention.ms", "-1")]).await;
    let err = start(&app_id);
    assert!(err.contains(&format!("repartition topic {topic} has cleanup.policy=compact")), "{err}");
}
