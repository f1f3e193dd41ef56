//! Standby replicas on a real broker (`group_protocol = "streams"`, the
//! streams rebalance protocol of KIP-1071, `num_standby_replicas`).
//!
//! Two instances count per key under exactly-once, one of them in a child
//! process. With a standby, the in-process instance keeps the child's
//! stores warm from their changelogs; when the child is killed (SIGKILL),
//! the broker hands its tasks to the instance that holds their standbys,
//! which replays only the tail. Without a standby the same instance
//! replays the whole changelog of the tasks it takes over. Either way every
//! key's running count is exact under read_committed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use harness::child::{self, ChildApp};
use harness::http::{sample, scrape};
use harness::TestRecord;
use rivulet::RunningApp;

const PARTITIONS: i32 = 4;
/// Keys per partition.
const KEYS: usize = 1500;

fn config(app_id: &str, dir: &Path, instance: &str, standbys: &str, guarantee: &str) -> rivulet::Config {
    harness::eos_config(
        app_id,
        dir,
        instance,
        &[
            ("RIVULET__GROUP_PROTOCOL", "streams"),
            ("RIVULET__NUM_STANDBY_REPLICAS", standbys),
            ("RIVULET__PROCESSING_GUARANTEE", guarantee),
            // Two processing threads in the at-least-once run: the
            // instance's one member spreads its tasks over them.
            ("RIVULET__NUM_THREADS", if guarantee == "at_least_once" { "2" } else { "1" }),
        ],
    )
}

/// The child: `input|output|app_id|state_dir|instance|standbys|guarantee`.
#[test]
fn child_process_entry_point_for_the_standby_test() {
    let Some(spec) = child::spec() else { return };
    let _ = tracing_subscriber::fmt().with_env_filter("warn,rivulet=info").with_writer(std::io::stderr).try_init();
    let parts: Vec<&str> = spec.split('|').collect();
    let [input, output, app_id, dir, instance, standbys, guarantee] = parts[..] else {
        panic!("bad child spec: {spec}")
    };
    let app = rivulet::App::new(config(app_id, Path::new(dir), instance, standbys, guarantee))
        .unwrap()
        .start(harness::count_per_key(input, output, "counts"))
        .unwrap();
    child::run_until_stopped(app)
}

/// One round: every key once, to its partition (keys are `p<partition>-k<n>`).
fn round() -> Vec<TestRecord> {
    (0..PARTITIONS)
        .flat_map(|p| (0..KEYS).map(move |k| TestRecord { partition: p, ..TestRecord::kv(&format!("p{p}-k{k}"), "x") }))
        .collect()
}

fn metric(app: &RunningApp, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(&scrape(app), name, labels).unwrap_or(0.0)
}

/// The input partitions `app` runs active tasks for.
fn active(app: &RunningApp, input: &str) -> BTreeSet<i32> {
    app.assignment().into_iter().filter(|(t, _)| t == input).map(|(_, p)| p).collect()
}

/// Runs the scenario; returns the changelog records the survivor replayed
/// when it took over the killed instance's tasks, and how many records
/// those tasks' changelogs held.
async fn kill_the_active_instance(standbys: &str, guarantee: &str) -> (u64, u64) {
    let _ = tracing_subscriber::fmt().with_env_filter("warn,rivulet=info").with_writer(std::io::stderr).try_init();
    let input = harness::new_topic("standby-in", PARTITIONS).await;
    let output = harness::new_topic("standby-out", PARTITIONS).await;
    let app_id = harness::unique("standby");
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());

    let spec = format!("{input}|{output}|{app_id}|{}|{app_id}-a|{standbys}|{guarantee}", dir_a.path().display());
    let mut a = ChildApp::spawn_test("child_process_entry_point_for_the_standby_test", &spec);
    let b = rivulet::App::new(config(&app_id, dir_b.path(), &format!("{app_id}-b"), standbys, guarantee))
        .unwrap()
        .start(harness::count_per_key(&input, &output, "counts"))
        .unwrap();
    // The input is written once the broker has split the tasks: the tasks
    // the child runs never ran on the survivor, which so has no local state
    // of them.
    harness::eventually("the tasks are split", Duration::from_secs(60), || {
        let held = active(&b, &input).len();
        match held > 0 && held < PARTITIONS as usize {
            true => Ok(()),
            false => Err(format!("b runs {held} tasks; log of a:\n{}", a.log())),
        }
    });
    harness::produce_many(&input, &round()).await;
    let total = PARTITIONS as usize * KEYS;
    harness::wait_for_output(&output, total);
    // The broker splits the tasks between the two; with a standby, the
    // survivor's standbys have read all the child's changelog records (one
    // per key: every key was counted once).
    let mut b_active = BTreeSet::new();
    harness::eventually("the tasks are split and the standbys caught up", Duration::from_secs(60), || {
        b_active = active(&b, &input);
        let standby_tasks = metric(&b, "rivulet_assigned_tasks", &[("state", "standby")]);
        let applied = metric(&b, "rivulet_standby_records_total", &[]);
        let a_keys = (PARTITIONS as usize - b_active.len()) * KEYS;
        let split = !b_active.is_empty() && b_active.len() < PARTITIONS as usize;
        let caught_up = standbys == "0" || (standby_tasks >= 1.0 && applied >= a_keys as f64);
        match split && caught_up {
            true => Ok(()),
            false => Err(format!(
                "b runs {b_active:?}, {standby_tasks} standbys, {applied} records applied; log of a:\n{}",
                a.log()
            )),
        }
    });
    let restored_before = b.stats().records_restored;
    let taken_over = (PARTITIONS as u64 - b_active.len() as u64) * KEYS as u64;

    a.kill();
    harness::produce_many(&input, &round()).await;
    harness::wait_for_output(&output, 2 * total);
    harness::eventually("the survivor runs every task", Duration::from_secs(60), || {
        let s = b.stats();
        match active(&b, &input).len() == PARTITIONS as usize && s.tasks_restoring == 0 {
            true => Ok(()),
            false => Err(format!("{s:?}")),
        }
    });
    let expected: BTreeMap<String, i64> = round().iter().map(|r| (r.key_str().to_string(), 2)).collect();
    if guarantee == "exactly_once" {
        harness::eventually("every count is exact (read_committed)", Duration::from_secs(60), || {
            harness::check_running_counts(&output, &expected)
        });
    } else {
        // At-least-once: counts may run ahead after the kill, never behind;
        // the survivor's commits (OffsetCommit as the streams member) reach
        // the end of the input.
        let latest = || -> BTreeMap<String, i64> {
            let records = harness::read_committed(&output);
            let count = |r: &TestRecord| i64::from_be_bytes(r.value.as_deref().unwrap().try_into().unwrap());
            records.iter().map(|r| (r.key_str().to_string(), count(r))).collect()
        };
        harness::eventually("every key counted twice or more, offsets committed", Duration::from_secs(60), || {
            let latest = latest();
            let low = expected.keys().filter(|k| latest.get(*k).is_none_or(|n| *n < 2)).count();
            let ends: Vec<i64> = harness::watermarks(&input).iter().map(|w| w.1).collect();
            let committed = harness::committed_offsets(&app_id, &input, PARTITIONS);
            let at_end = committed.iter().zip(&ends).all(|(c, end)| *c == Some(*end));
            match low == 0 && at_end {
                true => Ok(()),
                false => Err(format!("{low} keys counted less than twice; committed {committed:?} of {ends:?}")),
            }
        });
    }
    let replayed = b.stats().records_restored - restored_before;
    b.shutdown().unwrap();
    (replayed, taken_over)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_moves_to_its_standby_and_replays_only_the_tail() {
    let (replayed, changelog) = kill_the_active_instance("1", "exactly_once").await;
    eprintln!("with a standby: replayed {replayed} of the {changelog} changelog records of the tasks taken over");
    assert!(replayed < changelog / 10, "replayed {replayed} of {changelog} changelog records");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_standby_the_survivor_replays_the_whole_changelog() {
    let (replayed, changelog) = kill_the_active_instance("0", "exactly_once").await;
    eprintln!("without a standby: replayed {replayed} of the {changelog} changelog records of the tasks taken over");
    assert!(replayed >= changelog, "replayed {replayed} of {changelog} changelog records");
}

#[tokio::test(flavor = "multi_thread")]
async fn at_least_once_commits_as_the_streams_group_member() {
    let (replayed, changelog) = kill_the_active_instance("1", "at_least_once").await;
    eprintln!("at-least-once with a standby: replayed {replayed} of {changelog} changelog records");
    assert!(replayed < changelog / 10, "replayed {replayed} of {changelog} changelog records");
}

/// The broker validates the topology the member describes: a repartition
/// topic between two sub-topologies (its partition count, the sink that
/// writes it), a changelog, co-partitioned sources.
#[tokio::test(flavor = "multi_thread")]
async fn a_topology_with_a_repartition_topic_runs_under_the_streams_protocol() {
    use rivulet::prelude::*;
    let input = harness::new_topic("standby-rp-in", PARTITIONS).await;
    let output = harness::new_topic("standby-rp-out", PARTITIONS).await;
    let app_id = harness::unique("standby-rp");
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<TestRecord> = (0..400)
        .map(|i| TestRecord {
            partition: i % PARTITIONS,
            ..TestRecord::kv(&format!("user-{i}"), &format!("page-{}", i % 10))
        })
        .collect();
    harness::produce_many(&input, &records).await;
    let mut b = Topology::builder();
    b.stream(&input, Serdes::string(), Serdes::string())
        .group_by(|_user, page: &String| page.clone(), Serdes::string())
        .count("views")
        .to_stream()
        .to(&output, Serdes::string(), Serdes::i64());
    let app = rivulet::App::new(config(&app_id, dir.path(), &format!("{app_id}-a"), "1", "exactly_once"))
        .unwrap()
        .start(b.build().unwrap())
        .unwrap();
    let expected: BTreeMap<String, i64> = (0..10).map(|p| (format!("page-{p}"), 40)).collect();
    harness::eventually("every page counted (read_committed)", Duration::from_secs(60), || {
        let latest: BTreeMap<String, i64> = harness::read_committed(&output)
            .iter()
            .map(|r| (r.key_str().to_string(), i64::from_be_bytes(r.value.as_deref().unwrap().try_into().unwrap())))
            .collect();
        match latest == expected {
            true => Ok(()),
            false => Err(format!("{latest:?}; {:?}", app.stats())),
        }
    });
    assert_eq!(app.stats().tasks_running, 2 * PARTITIONS as u64, "both sub-topologies' tasks run here");
    app.shutdown().unwrap();
}
