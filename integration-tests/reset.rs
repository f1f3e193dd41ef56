//! The `reset` subcommand of `rivulet::Main` on a real broker: after a run,
//! a reset and a second run give the first run's output again; a reset is
//! refused while an instance runs; `--dry-run` changes nothing.
//!
//! The application counts words after regrouping them by word, so it has a
//! repartition topic, a changelog and local state: a reset that left the
//! changelog or the state behind would have the second run count on from
//! the first run's counts. Every run and reset is a child process (this test
//! binary started again, `harness::child`) going through `Main`, as a
//! user's binary would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use harness::child::{self, ChildApp};
use harness::TestRecord;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rivulet::prelude::*;

const STORE: &str = "word-counts";
const RECORDS: usize = 300;
const WORDS: [&str; 7] = ["ant", "bee", "cat", "dog", "eel", "fox", "gnu"];
const TIMEOUT: Duration = Duration::from_secs(90);

/// The count of each word (the input values), regrouped by word.
fn word_counts(input: &str, output: &str) -> Topology {
    let mut b = Topology::builder();
    b.stream(input, Serdes::string(), Serdes::string())
        .group_by(|_, word: &String| word.clone(), Serdes::string())
        .count(STORE)
        .to_stream()
        .to(output, Serdes::string(), Serdes::i64());
    b.build().unwrap()
}

/// A child's body: spec `application_id|input|output|state_dir|group_protocol|arg|arg..`,
/// run through `rivulet::Main` with those arguments; exits with its code.
#[test]
fn child_entry() {
    let Some(spec) = child::spec() else { return };
    let parts: Vec<&str> = spec.split('|').collect();
    let [app_id, input, output, state_dir, protocol, args @ ..] = &parts[..] else { panic!("bad child spec: {spec}") };
    let env = [
        ("HOSTNAME", "reset-test"),
        ("RIVULET__APPLICATION_ID", *app_id),
        ("RIVULET__KAFKA__BOOTSTRAP_SERVERS", harness::bootstrap()),
        ("RIVULET__STATE_DIR", *state_dir),
        ("RIVULET__GROUP_PROTOCOL", *protocol),
        ("RIVULET__COMMIT_INTERVAL_MS", "200"),
        ("RIVULET__HTTP__LISTEN", "127.0.0.1:0"),
        // Every input record gives one output record: the runs compare
        // record by record.
        ("RIVULET__STATE__CACHE_BYTES", "0"),
        // The session timeout (6 s) is the test broker's (KIP-848).
    ];
    let code = rivulet::Main::new(Config::loader().env(env))
        .args(args.iter().copied())
        .main(|_| Ok(word_counts(input, output)));
    std::process::exit(if code == ExitCode::SUCCESS { 0 } else { 1 });
}

struct Fixture {
    app_id: String,
    input: String,
    output: String,
    state: tempfile::TempDir,
    /// `group_protocol`: `consumer` (the default) or `streams`.
    protocol: &'static str,
}

impl Fixture {
    /// Topics with a backlog of [`RECORDS`] words in the input.
    async fn new() -> Fixture {
        let input = harness::new_topic("reset-words", 2).await;
        let output = harness::new_topic("reset-counts", 2).await;
        let records: Vec<TestRecord> = (0..RECORDS)
            .map(|i| TestRecord { partition: (i % 2) as i32, ..TestRecord::kv(&format!("k{i}"), WORDS[i * 3 % 7]) })
            .collect();
        harness::produce_many(&input, &records).await;
        Fixture {
            app_id: harness::unique("reset"),
            input,
            output,
            state: tempfile::tempdir().unwrap(),
            protocol: "consumer",
        }
    }

    /// Starts `args` (`run`, `reset`, `reset|--dry-run`) as a child.
    fn spawn(&self, args: &str) -> ChildApp {
        let (app, input, output, state) = (&self.app_id, &self.input, &self.output, self.state.path().display());
        let spec = format!("{app}|{input}|{output}|{state}|{}|{args}", self.protocol);
        ChildApp::spawn_test("child_entry", &spec)
    }

    /// Runs `args` to its end; returns whether it succeeded, and its output.
    fn run_to_end(&self, args: &str) -> (bool, String) {
        let mut child = self.spawn(args);
        let status = child.wait(TIMEOUT);
        (status.success(), child.log())
    }

    /// The application's topics on the broker (internal ones: `<application_id>-...`).
    fn internal_topics(&self) -> BTreeSet<String> {
        let consumer: BaseConsumer = harness::client_config().create().unwrap();
        let metadata = consumer.fetch_metadata(None, Duration::from_secs(10)).unwrap();
        let prefix = format!("{}-", self.app_id);
        metadata.topics().iter().map(|t| t.name().to_string()).filter(|t| t.starts_with(&prefix)).collect()
    }

    /// The changelog, the repartition topic and the instances directory
    /// of interactive queries.
    fn expected_internal_topics(&self) -> BTreeSet<String> {
        let app = &self.app_id;
        [format!("{app}-{STORE}-changelog"), format!("{app}-{STORE}-repartition"), format!("{app}-instances")].into()
    }

    fn committed(&self, topic: &str) -> Vec<Option<i64>> {
        harness::committed_offsets(&self.app_id, topic, 2)
    }

    fn state_dir(&self) -> std::path::PathBuf {
        self.state.path().join(&self.app_id)
    }
}

/// SIGTERM, and a clean exit (the member leaves the group).
fn stop(mut app: ChildApp) {
    app.signal(nix::sys::signal::Signal::SIGTERM);
    let status = app.wait(TIMEOUT);
    assert!(status.success(), "the application did not stop cleanly: {status}; log:\n{}", app.log());
}

/// Every count written to `output`, per word, in order.
fn counts_written(output: &str) -> BTreeMap<String, Vec<i64>> {
    let mut all: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in harness::read_committed(output) {
        let count = i64::from_be_bytes(r.value.as_deref().unwrap().try_into().unwrap());
        all.entry(r.key_str().to_string()).or_default().push(count);
    }
    all
}

/// Every file under `dir`, with its size.
fn files(dir: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.display().to_string(), entry.metadata().map(|m| m.len()).unwrap_or(0));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_and_a_rerun_give_the_first_runs_output_again() {
    let f = Fixture::new().await;

    let app = f.spawn("run");
    harness::wait_for_output(&f.output, RECORDS);
    stop(app);
    let first = counts_written(&f.output);
    assert_eq!(first.values().map(Vec::len).sum::<usize>(), RECORDS, "one count per word: {first:?}");
    for (word, counts) in &first {
        assert_eq!(*counts, (1..=counts.len() as i64).collect::<Vec<_>>(), "the counts of {word}");
    }
    assert_eq!(f.internal_topics(), f.expected_internal_topics());
    assert!(f.state_dir().exists());
    assert_eq!(f.committed(&f.input), [Some(RECORDS as i64 / 2); 2]);

    let (ok, log) = f.run_to_end("reset");
    assert!(ok, "the reset failed:\n{log}");
    assert!(log.contains("Done:"), "{log}");
    assert_eq!(f.committed(&f.input), [Some(0), Some(0)], "the input offsets are at the start; log:\n{log}");
    assert_eq!(f.internal_topics(), BTreeSet::new(), "the internal topics are deleted; log:\n{log}");
    let repartition = format!("{}-{STORE}-repartition", f.app_id);
    assert_eq!(f.committed(&repartition), [None, None], "no offsets of the deleted repartition topic remain");
    assert!(!f.state_dir().exists(), "the local state is deleted; log:\n{log}");

    let app = f.spawn("run");
    harness::wait_for_output(&f.output, 2 * RECORDS);
    stop(app);
    let both = counts_written(&f.output);
    for (word, counts) in &first {
        let again: Vec<i64> = counts.iter().chain(counts).copied().collect();
        assert_eq!(both[word], again, "the second run counted {word} as the first did");
    }
    assert_eq!(both.values().map(Vec::len).sum::<usize>(), 2 * RECORDS, "{both:?}");
}

/// Copies the directory tree `from` to `to`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A reset wipes only the state of the machine it runs on. An instance
/// elsewhere that starts with the old state finds its stores ahead of the
/// recreated (empty) changelogs, wipes them and restores, as Kafka Streams
/// re-bootstraps a store whose checkpoint is past the changelog's end; it
/// does not count on from the old counts.
#[tokio::test(flavor = "multi_thread")]
async fn state_left_on_another_machine_after_a_reset_is_wiped_not_counted_on() {
    let f = Fixture::new().await;
    let app = f.spawn("run");
    harness::wait_for_output(&f.output, RECORDS);
    stop(app);
    let first = counts_written(&f.output);
    let other_machine = tempfile::tempdir().unwrap();
    copy_tree(&f.state_dir(), other_machine.path());

    let (ok, log) = f.run_to_end("reset");
    assert!(ok, "the reset failed:\n{log}");
    assert!(!f.state_dir().exists());
    // The other machine's instance starts with its old state.
    copy_tree(other_machine.path(), &f.state_dir());

    let app = f.spawn("run");
    harness::wait_for_output(&f.output, 2 * RECORDS);
    let log = app.log();
    stop(app);
    assert!(log.contains("the local state is ahead of its changelog"), "no wipe was logged:\n{log}");
    let both = counts_written(&f.output);
    for (word, counts) in &first {
        let again: Vec<i64> = counts.iter().chain(counts).copied().collect();
        assert_eq!(both[word], again, "the second run counted {word} from scratch; log:\n{log}");
    }
}

/// The refusal `args` printed, from the child's log.
fn refusal(args: &str, ok: bool, log: &str) -> String {
    assert!(!ok, "{args} ran while an instance runs:\n{log}");
    // (After libtest's "test child_entry ... ", which has no newline.)
    log.lines()
        .find_map(|l| l.split_once("error: ").map(|(_, e)| e.to_string()))
        .unwrap_or_else(|| panic!("no error in:\n{log}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_is_refused_while_an_instance_runs_and_a_dry_run_changes_nothing() {
    let f = Fixture::new().await;
    let app = f.spawn("run");
    harness::wait_for_output(&f.output, RECORDS);

    for args in ["reset", "reset|--dry-run"] {
        let (ok, log) = f.run_to_end(args);
        let refusal = refusal(args, ok, &log);
        assert!(refusal.contains(&format!("cannot reset application `{}`", f.app_id)), "{refusal}");
        // The member is named by its client id, `<application_id>-<instance_id>-<thread>-consumer`.
        assert!(refusal.contains(&format!("{}-reset-test-0-consumer on ", f.app_id)), "{refusal}");
        assert!(refusal.contains("stop every instance of the application"), "{refusal}");
    }
    assert_eq!(f.internal_topics(), f.expected_internal_topics(), "the refused reset deleted nothing");
    stop(app);

    let committed = f.committed(&f.input);
    assert_eq!(committed, [Some(RECORDS as i64 / 2); 2]);
    let state = files(&f.state_dir());
    assert!(!state.is_empty());
    let (ok, log) = f.run_to_end("reset|--to-latest|--dry-run");
    assert!(ok, "{log}");
    assert!(log.contains("Dry run: nothing was changed."), "{log}");
    for planned in [
        format!("{} partition 0: {} -> {}", f.input, RECORDS / 2, RECORDS / 2),
        format!("internal topics to delete: {0}-instances, {0}-{STORE}-changelog, {0}-{STORE}-repartition", f.app_id),
        format!("local state to delete: {}", f.state_dir().display()),
    ] {
        assert!(log.contains(&planned), "{planned:?} in:\n{log}");
    }
    let (ok, log) = f.run_to_end("reset|--dry-run");
    assert!(ok && log.contains(&format!("{} partition 1: {} -> 0", f.input, RECORDS / 2)), "{log}");
    assert_eq!(f.committed(&f.input), committed, "the offsets are unchanged");
    assert_eq!(f.internal_topics(), f.expected_internal_topics(), "the topics are unchanged");
    assert_eq!(files(&f.state_dir()), state, "the local state is unchanged");
}

/// Under `group_protocol = "streams"` the application's group is a streams
/// group (KIP-1071), which DescribeConsumerGroups does not see: the reset
/// reads its members with StreamsGroupDescribe, refuses while the instance
/// runs, and resets once it has stopped (its member left the group).
#[tokio::test(flavor = "multi_thread")]
async fn a_reset_is_refused_while_a_streams_group_member_runs() {
    let f = Fixture { protocol: "streams", ..Fixture::new().await };
    let app = f.spawn("run");
    harness::wait_for_output(&f.output, RECORDS);
    let topics = f.internal_topics();

    for args in ["reset|--dry-run", "reset"] {
        let (ok, log) = f.run_to_end(args);
        let refusal = refusal(args, ok, &log);
        assert!(refusal.contains(&format!("cannot reset application `{}`", f.app_id)), "{refusal}");
        assert!(refusal.contains("its streams group still has 1 live member(s)"), "{refusal}");
        // The member is named by its client id, `<application_id>-<instance_id>-membership`,
        // with its process and tasks (2 partitions, 2 sub-topologies).
        assert!(refusal.contains(&format!("{}-reset-test-membership on 127.0.0.1 (process ", f.app_id)), "{refusal}");
        assert!(refusal.contains(": 4 active, 0 standby tasks)"), "{refusal}");
        assert!(refusal.contains("stop every instance of the application"), "{refusal}");
    }
    assert_eq!(f.internal_topics(), topics, "the refused reset deleted nothing");
    assert_eq!(f.committed(&f.input), [Some(RECORDS as i64 / 2); 2], "the refused reset committed nothing");
    stop(app);

    let (ok, log) = f.run_to_end("reset|--dry-run");
    assert!(ok && log.contains("Dry run: nothing was changed."), "{log}");
    let (ok, log) = f.run_to_end("reset");
    assert!(ok && log.contains("Done:"), "the reset failed:\n{log}");
    assert_eq!(f.committed(&f.input), [Some(0), Some(0)], "the input offsets are at the start; log:\n{log}");
    assert_eq!(f.internal_topics(), BTreeSet::new(), "the internal topics are deleted; log:\n{log}");
    assert!(!f.state_dir().exists(), "the local state is deleted; log:\n{log}");
}
