//! The segmented window store on the broker: a tumbling-window count over a
//! backlog writes about one changelog record per window (closing a window
//! costs none), its changelog is created `compact,delete` with a retention
//! of size + grace + the additional retention, and a restart from the
//! changelog alone (state dir wiped, closed windows' records still in the
//! changelog) emits every window exactly once with the right count.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::collections::BTreeMap;
use std::time::Duration;

use harness::{Isolation, TestRecord};
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rivulet::prelude::*;
use rivulet::topology::{Timestamps, Windows};

const TIMEOUT: Duration = Duration::from_secs(120);
const WINDOW: i64 = 10_000;
const KEYS: i64 = 1_000;
const WINDOWS_PER_KEY: i64 = 5;
const RECORDS_PER_WINDOW: i64 = 4;
const T0: i64 = 1_700_000_000_000;

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Ev {
    ts: i64,
}

fn topology(input: &str, output: &str) -> Topology {
    let mut b = Topology::builder();
    b.stream_with_time(input, Serdes::string(), Serdes::json::<Ev>(), Timestamps::from_value(|v: &Ev| Some(v.ts)))
        .group_by_key()
        .windowed_by(Windows::tumbling(Duration::from_millis(WINDOW as u64)))
        .emit_final()
        .count("counts")
        .to(output, Serdes::windowed(Serdes::string()), Serdes::i64());
    b.build().unwrap()
}

fn record(key: &str, partition: i32, ts: i64) -> TestRecord {
    TestRecord { partition, timestamp: Some(ts), ..TestRecord::kv(key, &format!("{{\"ts\":{ts}}}")) }
}

/// In time order: for each window, `RECORDS_PER_WINDOW` rounds over all
/// keys (key `k` on partition `k % 2`), so each partition's timestamps rise.
fn backlog() -> Vec<TestRecord> {
    let mut records = Vec::new();
    for w in 0..WINDOWS_PER_KEY {
        for i in 0..RECORDS_PER_WINDOW {
            for k in 0..KEYS {
                records.push(record(&format!("k{k}"), (k % 2) as i32, T0 + w * WINDOW + i * 2_000 + k));
            }
        }
    }
    records
}

/// The windows emitted to `topic`; fails on a window emitted twice.
fn emitted(topic: &str) -> Result<BTreeMap<(String, i64), i64>, String> {
    let mut windows = BTreeMap::new();
    for r in harness::read_committed(topic) {
        let key = r.key.unwrap();
        let (k, bounds) = key.split_at(key.len() - 16);
        let start = i64::from_be_bytes(bounds[..8].try_into().unwrap());
        let count = i64::from_be_bytes(r.value.unwrap().as_slice().try_into().unwrap());
        let window = (String::from_utf8(k.to_vec()).unwrap(), start);
        if windows.insert(window.clone(), count).is_some() {
            return Err(format!("window {window:?} emitted twice"));
        }
    }
    Ok(windows)
}

async fn topic_config(topic: &str, names: &[&str]) -> Vec<Option<String>> {
    let admin: AdminClient<DefaultClientContext> = harness::client_config().create().unwrap();
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(30)));
    let result = admin.describe_configs(&[ResourceSpecifier::Topic(topic)], &opts).await.unwrap();
    let resource = result.into_iter().next().unwrap().unwrap();
    names.iter().map(|n| resource.get(n).and_then(|e| e.value.clone())).collect()
}

/// Runs the application until it has processed `n` records, then shuts it
/// down (which commits).
fn run_until_processed(config: &rivulet::Config, input: &str, output: &str, n: u64) {
    let app = App::new(config.clone()).unwrap().start(topology(input, output)).unwrap();
    harness::eventually("the backlog is processed", TIMEOUT, || {
        let s = app.stats();
        if s.records_processed >= n {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    });
    app.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tumbling_count_writes_one_changelog_record_per_window_and_restores_from_the_changelog_alone() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let input = harness::new_history_topic("segstore-in", 2).await;
    let output = harness::new_history_topic("segstore-out", 1).await;
    let app_id = harness::unique("segstore");
    let state = tempfile::tempdir().unwrap();
    // The default commit interval of at_least_once (the harness shortens it).
    let config = harness::app_config(&app_id, state.path(), &[("RIVULET__COMMIT_INTERVAL_MS", "30000")]);
    let records = backlog();
    let (first, second) = records.split_at(records.len() / 2);

    // Two runs over the same state: the first ends with half of window 2
    // open (so its windows reach the changelog), the second closes them
    // and ends with window 4 open.
    harness::produce_many(&input, first).await;
    run_until_processed(&config, &input, &output, first.len() as u64);
    harness::produce_many(&input, second).await;
    run_until_processed(&config, &input, &output, second.len() as u64);

    let changelog = format!("{app_id}-counts-changelog");
    let written = harness::read_to_end(&changelog, Isolation::ReadUncommitted).len();
    let windows = (KEYS * WINDOWS_PER_KEY) as usize;
    eprintln!("{written} changelog records for {} input records and {windows} windows", records.len());
    // The old layout wrote a close-index key per window and two tombstones
    // when it closed: over 2 records per window.
    assert!(
        written <= windows + 8,
        "{written} changelog records for {windows} windows: closing a window must not write to the changelog"
    );
    let config_values = topic_config(&changelog, &["cleanup.policy", "retention.ms"]).await;
    let retention = (WINDOW + 86_400_000).to_string();
    assert_eq!(config_values, [Some("compact,delete".to_string()), Some(retention)]);

    // Lose the local state, then close the last windows: the restore brings
    // back window 2 (closed, dropped in the store only) and window 4 (open).
    std::fs::remove_dir_all(state.path()).unwrap();
    let closers: Vec<TestRecord> = (0..2).map(|p| record(&format!("closer{p}"), p, T0 + 100 * WINDOW)).collect();
    harness::produce(&input, &closers).await;
    let app = App::new(config).unwrap().start(topology(&input, &output)).unwrap();
    let want: BTreeMap<(String, i64), i64> = (0..KEYS)
        .flat_map(|k| (0..WINDOWS_PER_KEY).map(move |w| ((format!("k{k}"), T0 + w * WINDOW), RECORDS_PER_WINDOW)))
        .collect();
    harness::eventually("every window once, with its count", TIMEOUT, || {
        let got = emitted(&output)?;
        if got == want {
            return Ok(());
        }
        let wrong: Vec<_> = want.iter().filter(|(w, n)| got.get(*w) != Some(*n)).take(3).collect();
        Err(format!("{} windows, want {}; wrong or missing {wrong:?}", got.len(), want.len()))
    });
    app.shutdown().unwrap();
}
