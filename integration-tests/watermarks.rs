//! Watermarks across a repartition, on the real broker, with the input
//! already in the topic (a backlog) and the default at-least-once commit
//! interval of 30 s: a window's result must not depend on either.
//!
//! - Each record written to a repartition topic carries its task's
//!   watermark, so the downstream task judges it by the upstream time as of
//!   that record, not as of the last commit: views that are late at the
//!   source are late downstream too, and windows close as soon as the data
//!   says so.
//! - An upstream task whose input partitions are quiet for `idle_after`
//!   says it is idle, and the downstream tasks leave it out of their
//!   minimum: windows close with data on one input partition of four.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

#[allow(dead_code)]
#[path = "../examples/page_views_per_minute.rs"]
mod page_views_per_minute;

use std::time::Duration;

use harness::TestRecord;
use page_views_per_minute::{MinuteCount, PageView, Settings};
use rivulet::prelude::*;
use rivulet::topology::{Timestamps, Windows};

const TIMEOUT: Duration = Duration::from_secs(90);
const MINUTE: i64 = 60_000;
/// The default commit interval under at-least-once (docs/configuration.md).
const DEFAULT_ALOS_COMMIT_MS: &str = "30000";

fn view_record(partition: i32, page: &str, ts: i64) -> TestRecord {
    let v = PageView { user: "u".into(), page: page.into(), ts };
    TestRecord {
        partition,
        key: None,
        value: Some(serde_json::to_vec(&v).unwrap()),
        headers: vec![],
        timestamp: Some(ts),
    }
}

/// A minute three hours ago: event times near now, so no broker retention
/// ever judges these records old.
fn recent_minute() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let t = now - 3 * 60 * MINUTE;
    t - t.rem_euclid(MINUTE)
}

fn minute_counts(topic: &str) -> Vec<MinuteCount> {
    harness::read_committed(topic)
        .iter()
        .map(|r| serde_json::from_slice(r.value.as_deref().unwrap()).unwrap())
        .collect()
}

/// The example as a new user runs it: default settings but for the topics.
/// The input has one partition, so one upstream task writes the repartition
/// topic and every record's fate is fixed by the input alone (with several
/// upstream tasks the downstream minimum depends on how far each has got,
/// in rivulet as in Flink).
#[tokio::test(flavor = "multi_thread")]
async fn late_views_stay_late_across_the_repartition_with_a_backlog_and_the_default_commit_interval() {
    let settings = Settings {
        input_topic: harness::new_topic("page-views", 1).await,
        output_topic: harness::new_topic("page-views-per-minute", 1).await,
        per_page_topic: harness::new_topic("page-views-per-page", 1).await,
        late_topic: harness::new_topic("page-views-late", 1).await,
        out_of_orderness_ms: 5_000,
        grace_ms: 10_000,
    };
    let t0 = recent_minute();
    // 20 minutes of in-order views, 50 a minute; then 200 views 10 to 15
    // minutes old (their minutes closed long ago); then one far ahead that
    // closes every minute with views.
    let mut records: Vec<TestRecord> = (0..20 * 50).map(|i| view_record(0, "/a", t0 + i * 1_200)).collect();
    let late_from = t0 + 20 * MINUTE - 15 * MINUTE;
    records.extend((0..200).map(|i| view_record(0, "/b", late_from + i * 1_500)));
    records.push(view_record(0, "/c", t0 + 60 * MINUTE));
    harness::produce_many(&settings.input_topic, &records).await;

    let state = tempfile::tempdir().unwrap();
    let config = harness::app_config(
        &harness::unique("page-views"),
        state.path(),
        &[("RIVULET__COMMIT_INTERVAL_MS", DEFAULT_ALOS_COMMIT_MS)],
    );
    let app = App::new(config).unwrap().start(page_views_per_minute::topology(&settings).unwrap()).unwrap();
    let want: Vec<MinuteCount> = (0..20)
        .map(|m| MinuteCount { window_start: t0 + m * MINUTE, window_end: t0 + (m + 1) * MINUTE, count: 50 })
        .collect();
    // Long before the first commit (30 s), once the far view is through.
    harness::eventually("every minute counted once, without the late views", TIMEOUT, || {
        let got = minute_counts(&settings.output_topic);
        if got.len() >= want.len() {
            assert_eq!(got, want, "late views must not be counted into closed minutes");
            Ok(())
        } else {
            Err(format!("{} of {} minutes so far", got.len(), want.len()))
        }
    });
    harness::eventually("the 200 late views in the late topic", TIMEOUT, || {
        let late = harness::read_committed(&settings.late_topic).len();
        if late == 200 {
            Ok(())
        } else {
            Err(format!("{late} late views"))
        }
    });
    // Each view is processed by the source's sub-topology and by each of
    // the two counts behind their repartition topics; the watermark
    // markers those topics also carry are consumed, not processed.
    let views = records.len() as u64;
    harness::eventually("every view processed three times, no marker counted", TIMEOUT, || {
        let processed = app.stats().records_processed;
        if processed == 3 * views {
            Ok(())
        } else {
            Err(format!("{processed} processed, {:?}", app.stats()))
        }
    });
    app.shutdown().unwrap();
    // Nothing more came with the shutdown's commit.
    assert_eq!(minute_counts(&settings.output_topic), want);
    assert_eq!(harness::read_committed(&settings.late_topic).len(), 200);
}

/// Four input partitions, data on one: the three quiet upstream tasks say
/// they are idle after `idle_after`, and the windows downstream close.
#[tokio::test(flavor = "multi_thread")]
async fn windows_after_a_repartition_close_when_three_of_four_input_partitions_are_idle() {
    let input = harness::new_topic("views-4p", 4).await;
    let output = harness::new_topic("views-per-minute", 1).await;
    let t0 = recent_minute();
    let mut records: Vec<TestRecord> = (0..5 * 20).map(|i| view_record(2, "/a", t0 + i * 3_000)).collect();
    records.push(view_record(2, "/a", t0 + 30 * MINUTE));
    harness::produce_many(&input, &records).await;

    let mut b = Topology::builder();
    let time = Timestamps::from_value(|v: &PageView| Some(v.ts)).idle_after(Duration::from_secs(2));
    b.stream_with_time(&input, Serdes::unit(), Serdes::json::<PageView>(), time)
        .group_by(|_, v: &PageView| v.page.clone(), Serdes::string())
        .windowed_by(Windows::tumbling(Duration::from_secs(60)))
        .emit_final()
        .count("idle-views-per-minute")
        .map(|w, count| (w.key, MinuteCount { window_start: w.start, window_end: w.end, count }))
        .to(&output, Serdes::string(), Serdes::json::<MinuteCount>());
    let state = tempfile::tempdir().unwrap();
    let config = harness::app_config(
        &harness::unique("idle-views"),
        state.path(),
        &[("RIVULET__COMMIT_INTERVAL_MS", DEFAULT_ALOS_COMMIT_MS)],
    );
    let app = App::new(config).unwrap().start(b.build().unwrap()).unwrap();
    let want: Vec<MinuteCount> = (0..5)
        .map(|m| MinuteCount { window_start: t0 + m * MINUTE, window_end: t0 + (m + 1) * MINUTE, count: 20 })
        .collect();
    harness::eventually("the five minutes with views closed", TIMEOUT, || {
        let got = minute_counts(&output);
        if got.len() >= want.len() {
            assert_eq!(got, want);
            Ok(())
        } else {
            Err(format!("{} of {} minutes so far; {:?}", got.len(), want.len(), app.stats()))
        }
    });
    app.shutdown().unwrap();
}
