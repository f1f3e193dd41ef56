//! The runtime on a real broker: word count, repartitioning, restore from
//! changelogs, task movement between instances.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::collections::BTreeMap;
use std::time::Duration;

use harness::TestRecord;
use rivulet::prelude::*;

const WORDS: &[&str] = &["apple", "Banana", "cherry", "date", "elder", "fig", "grape", "HONEYDEW", "kiwi", "lemon"];

/// `n` lines of words picked deterministically from `seed`.
fn lines(n: usize, seed: u64) -> Vec<String> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            let mut words = Vec::new();
            for _ in 0..1 + (x % 4) {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                words.push(WORDS[(x >> 33) as usize % WORDS.len()]);
            }
            words.join(" ")
        })
        .collect()
}

fn count_words(lines: &[String], into: &mut BTreeMap<String, i64>) {
    for l in lines {
        for w in l.split_whitespace() {
            *into.entry(w.to_lowercase()).or_default() += 1;
        }
    }
}

fn wordcount(input: &str, output: &str) -> Topology {
    wordcount_with(input, output, false)
}

/// Word count, its table's updates held until each commit if `caching`.
fn wordcount_with(input: &str, output: &str, caching: bool) -> Topology {
    let mut b = Topology::builder();
    let counts = b
        .stream(input, Serdes::unit(), Serdes::string())
        .flat_map_values(|line: String| line.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>())
        .group_by(|_, word: &String| word.clone(), Serdes::string())
        .count("counts");
    let counts = if caching { counts.with_caching() } else { counts };
    counts.to_stream().map_values(|n: i64| n.to_string()).to(output, Serdes::string(), Serdes::string());
    b.build().unwrap()
}

async fn write_lines(topic: &str, lines: &[String]) {
    let records: Vec<TestRecord> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| TestRecord {
            partition: (i % 4) as i32,
            key: None,
            value: Some(l.as_bytes().to_vec()),
            headers: vec![],
            timestamp: None,
        })
        .collect();
    harness::produce_many(topic, &records).await;
}

fn expect_counts(output: &str, expected: &BTreeMap<String, i64>, timeout: Duration) {
    let expected: BTreeMap<String, String> = expected.iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
    harness::eventually(&format!("latest counts in {output}"), timeout, || {
        let got = harness::latest_by_key(output);
        if got == expected {
            Ok(())
        } else {
            Err(format!("got {got:?}, want {expected:?}"))
        }
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn word_count_over_100k_lines_matches_a_count_made_in_the_test() {
    let input = harness::new_topic("lines", 4).await;
    let output = harness::new_topic("counts", 4).await;
    let text = lines(100_000, 1);
    write_lines(&input, &text).await;
    let mut expected = BTreeMap::new();
    count_words(&text, &mut expected);

    let state = tempfile::tempdir().unwrap();
    let config = harness::app_config(&harness::unique("wc"), state.path(), &[]);
    let app = App::new(config).unwrap().start(wordcount(&input, &output)).unwrap();
    expect_counts(&output, &expected, Duration::from_secs(120));
    let stats = app.stats();
    assert_eq!(
        stats.records_processed,
        100_000 + text.iter().map(|l| l.split_whitespace().count() as u64).sum::<u64>(),
        "every line and every repartitioned word was processed once"
    );
    app.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn with_caching_a_count_writes_at_most_one_update_per_key_per_commit_and_the_same_final_counts() {
    let input = harness::new_topic("lines", 4).await;
    let text = lines(20_000, 5);
    write_lines(&input, &text).await;
    let mut expected = BTreeMap::new();
    count_words(&text, &mut expected);
    let words: usize = text.iter().map(|l| l.split_whitespace().count()).sum();

    // The same backlog, exactly-once with the default commit interval.
    let mut written = Vec::new();
    for caching in [false, true] {
        let output = harness::new_topic("counts", 4).await;
        let state = tempfile::tempdir().unwrap();
        let settings = [("RIVULET__PROCESSING_GUARANTEE", "exactly_once"), ("RIVULET__COMMIT_INTERVAL_MS", "")];
        let config = harness::app_config(&harness::unique("wc-cache"), state.path(), &settings);
        let app = App::new(config).unwrap().start(wordcount_with(&input, &output, caching)).unwrap();
        expect_counts(&output, &expected, Duration::from_secs(120));
        // The shutdown's commit is one more.
        let commits = app.stats().commits as usize + 1;
        app.shutdown().unwrap();
        written.push((harness::read_committed(&output).len(), commits));
    }
    let ((uncached, _), (cached, commits)) = (written[0], written[1]);
    assert_eq!(uncached, words, "without caching every update of every word is written");
    assert!(
        cached <= expected.len() * commits,
        "with caching {cached} updates were written for {} words in {commits} commits",
        expected.len()
    );
    assert!(cached < uncached / 10, "with caching {cached} of {uncached} updates were written");
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_with_state_dir_replays_only_the_changelog_tail_and_empty_state_restores_in_full() {
    let input = harness::new_topic("lines", 4).await;
    let output = harness::new_topic("counts", 4).await;
    let app_id = harness::unique("wc-restart");
    let state = tempfile::tempdir().unwrap();
    let mut expected = BTreeMap::new();

    let first = lines(2_000, 2);
    write_lines(&input, &first).await;
    count_words(&first, &mut expected);
    let app =
        App::new(harness::app_config(&app_id, state.path(), &[])).unwrap().start(wordcount(&input, &output)).unwrap();
    expect_counts(&output, &expected, Duration::from_secs(60));
    assert_eq!(app.stats().records_restored, 0, "a fresh application has nothing to restore");
    app.shutdown().unwrap();

    // Same state dir: the local stores are at the changelog's end.
    let second = lines(1_000, 3);
    write_lines(&input, &second).await;
    count_words(&second, &mut expected);
    let app =
        App::new(harness::app_config(&app_id, state.path(), &[])).unwrap().start(wordcount(&input, &output)).unwrap();
    expect_counts(&output, &expected, Duration::from_secs(60));
    assert_eq!(app.stats().records_restored, 0, "a clean restart with its state dir replays no changelog record");
    app.shutdown().unwrap();

    // Empty state dir: every store is rebuilt from its changelog.
    let changelog = format!("{app_id}-counts-changelog");
    let changelog_records = harness::read_committed(&changelog).len() as u64;
    let third = lines(500, 4);
    write_lines(&input, &third).await;
    count_words(&third, &mut expected);
    let empty = tempfile::tempdir().unwrap();
    let app =
        App::new(harness::app_config(&app_id, empty.path(), &[])).unwrap().start(wordcount(&input, &output)).unwrap();
    expect_counts(&output, &expected, Duration::from_secs(60));
    let restored = app.stats().records_restored;
    assert!(
        restored > 0 && restored <= changelog_records,
        "restored {restored} of {changelog_records} changelog records"
    );
    app.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_one_with_two_threads_split_tasks_and_one_takes_over_when_the_other_stops() {
    let input = harness::new_topic("lines", 4).await;
    let output = harness::new_topic("counts", 4).await;
    let app_id = harness::unique("wc-two");
    let (state_a, state_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Instance a runs two processing threads: three group members in all.
    let a = App::new(harness::app_config(&app_id, state_a.path(), &[("RIVULET__NUM_THREADS", "2")]))
        .unwrap()
        .start(wordcount(&input, &output))
        .unwrap();
    let b =
        App::new(harness::app_config(&app_id, state_b.path(), &[])).unwrap().start(wordcount(&input, &output)).unwrap();
    harness::eventually("both instances own tasks", Duration::from_secs(60), || {
        let (ta, tb) = (a.stats().tasks_running, b.stats().tasks_running);
        if ta > 0 && tb > 0 && ta + tb == 8 {
            Ok(())
        } else {
            Err(format!("tasks: {ta} + {tb}"))
        }
    });

    let mut expected = BTreeMap::new();
    let first = lines(3_000, 5);
    write_lines(&input, &first).await;
    count_words(&first, &mut expected);
    expect_counts(&output, &expected, Duration::from_secs(60));
    assert!(a.stats().records_processed > 0 && b.stats().records_processed > 0, "both instances processed records");

    b.shutdown().unwrap();
    harness::eventually("the remaining instance owns every task", Duration::from_secs(60), || {
        let t = a.stats().tasks_running;
        if t == 8 {
            Ok(())
        } else {
            Err(format!("tasks: {t}"))
        }
    });
    let second = lines(3_000, 6);
    write_lines(&input, &second).await;
    count_words(&second, &mut expected);
    expect_counts(&output, &expected, Duration::from_secs(60));
    assert!(a.stats().records_restored > 0, "the takeover restored the other instance's stores from their changelogs");
    a.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_restore_runs_in_batches_and_processing_resumes_after_it() {
    let input = harness::new_topic("keys", 2).await;
    let output = harness::new_topic("key-counts", 2).await;
    let app_id = harness::unique("big-restore");
    let topology = || harness::count_per_key(&input, &output, "per-key");
    let keys = 25_000;
    let records: Vec<TestRecord> =
        (0..keys).map(|i| TestRecord { partition: (i % 2) as i32, ..TestRecord::kv(&format!("k{i}"), "v") }).collect();
    harness::produce_many(&input, &records).await;
    let state = tempfile::tempdir().unwrap();
    let app = App::new(harness::app_config(&app_id, state.path(), &[])).unwrap().start(topology()).unwrap();
    harness::eventually_processed("every key counted", &app, keys as u64, Duration::from_secs(90));
    app.shutdown().unwrap();
    let changelog = harness::read_committed(&format!("{app_id}-per-key-changelog")).len() as u64;
    assert!(changelog >= keys as u64, "one changelog record per key at least: {changelog}");

    // A second visit per key, processed after restoring every store in full.
    harness::produce_many(&input, &records).await;
    let empty = tempfile::tempdir().unwrap();
    let app = App::new(harness::app_config(&app_id, empty.path(), &[])).unwrap().start(topology()).unwrap();
    harness::eventually("every key counted twice", Duration::from_secs(120), || {
        let latest = harness::read_committed(&output);
        let twos = latest.iter().filter(|r| r.value.as_deref() == Some(&2i64.to_be_bytes()[..])).count();
        if twos == keys {
            Ok(())
        } else {
            Err(format!("{twos} keys at 2"))
        }
    });
    assert_eq!(app.stats().records_restored, changelog, "the whole changelog was replayed");
    app.shutdown().unwrap();
}
