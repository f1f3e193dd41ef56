//! `KTable::with_caching` through the test driver with manual commits (no
//! Kafka): one update per key per commit with it, every update without it,
//! nothing held across an abort.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::serde::Serdes;
use crate::testing::{RawRecord, TopologyTestDriver};
use crate::topology::cache::CACHE_MAX_KEYS;
use crate::topology::tests::{capture, driver, Seen};
use crate::topology::Topology;

/// Takes what was seen so far as (key, value, timestamp).
fn take<K: Clone, V: Clone>(seen: &Seen<K, V>) -> Vec<(K, V, i64)> {
    seen.lock().unwrap().drain(..).map(|r| (r.key, r.value, r.timestamp)).collect()
}

/// The topology under a driver that commits when the test says so.
struct Task(TopologyTestDriver);

impl Task {
    fn start(topology: Topology) -> Task {
        Task(driver(topology).manual_commits())
    }

    /// Pipes a record into the topology's (one) source topic, with its
    /// timestamp in a `ts` header.
    fn push(&mut self, key: &str, value: Option<&str>, ts: i64) {
        let topic = self.0.names.keys().next().unwrap().clone();
        let mut record = RawRecord::new(Some(key.as_bytes()), value.map(str::as_bytes), ts);
        record.headers = vec![("ts".to_string(), Some(ts.to_string().into_bytes()))];
        self.0.pipe_raw(&topic, record).unwrap();
    }

    /// The commit: the hooks, then the write buffer reaches the stores.
    fn commit(&mut self) {
        self.0.commit().unwrap();
    }

    /// A crash: the uncommitted work is dropped, the nodes run `init`
    /// again, and the records since the last commit are processed again.
    fn abort(&mut self) {
        self.0.restart().unwrap();
    }
}

fn counts(caching: bool) -> (Topology, Seen<String, i64>) {
    let mut b = Topology::builder();
    let table = b.stream("in", Serdes::string(), Serdes::string()).group_by_key().count("counts");
    let table = if caching { table.with_caching() } else { table };
    let seen = capture(&table.to_stream());
    (b.build().unwrap(), seen)
}

fn owned(items: &[(&str, i64, i64)]) -> Vec<(String, i64, i64)> {
    items.iter().map(|(k, v, t)| (k.to_string(), *v, *t)).collect()
}

#[test]
fn a_count_without_caching_forwards_every_update_at_once() {
    let (t, seen) = counts(false);
    let mut task = Task::start(t);
    for (k, ts) in [("a", 1), ("a", 2), ("b", 3), ("a", 4)] {
        task.push(k, Some("x"), ts);
    }
    assert_eq!(take(&seen), owned(&[("a", 1, 1), ("a", 2, 2), ("b", 1, 3), ("a", 3, 4)]));
    task.commit();
    assert_eq!(take(&seen), owned(&[]), "nothing is held for the commit");
}

#[test]
fn a_cached_count_forwards_the_latest_update_per_key_once_per_commit() {
    let (t, seen) = counts(true);
    let mut task = Task::start(t);
    for (k, ts) in [("a", 1), ("a", 2), ("b", 3), ("a", 4)] {
        task.push(k, Some("x"), ts);
    }
    assert_eq!(take(&seen), owned(&[]), "updates are held until the commit");
    task.commit();
    // Each key once, with the latest value and the timestamp of the record
    // that wrote it, in the order the keys were first updated.
    assert_eq!(take(&seen), owned(&[("a", 3, 4), ("b", 1, 3)]));
    task.commit();
    assert_eq!(take(&seen), owned(&[]), "a commit with no update forwards nothing");

    task.push("b", Some("x"), 5);
    task.push("b", Some("x"), 6);
    task.commit();
    assert_eq!(take(&seen), owned(&[("b", 3, 6)]), "the count continues from the committed store");
}

#[test]
fn a_cached_update_keeps_the_headers_of_the_record_that_wrote_it() {
    let mut b = Topology::builder();
    let table = b.stream("in", Serdes::string(), Serdes::string()).group_by_key().count("counts").with_caching();
    let seen = capture(&table.to_stream());
    let t = b.build().unwrap();
    let mut task = Task::start(t);
    task.push("a", Some("x"), 7);
    task.push("a", Some("x"), 9);
    task.commit();
    let records = seen.lock().unwrap().clone();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].headers, vec![("ts".to_string(), Some(b"9".to_vec()))]);
}

#[test]
fn an_abort_drops_held_updates_and_the_reprocessed_records_are_forwarded_once() {
    let (t, seen) = counts(true);
    let mut task = Task::start(t);
    task.push("a", Some("x"), 1);
    task.commit();
    assert_eq!(take(&seen), owned(&[("a", 1, 1)]));

    task.push("a", Some("x"), 2);
    task.push("b", Some("x"), 3);
    // The restarted task reads the two records again.
    task.abort();
    task.commit();
    assert_eq!(take(&seen), owned(&[("a", 2, 2), ("b", 1, 3)]), "no update of the aborted work is forwarded");
}

#[test]
fn a_full_cache_forwards_what_it_holds_before_the_commit() {
    let (t, seen) = counts(true);
    let mut task = Task::start(t);
    for i in 0..CACHE_MAX_KEYS {
        task.push(&format!("k{i}"), Some("x"), i as i64);
    }
    let early = take(&seen);
    assert_eq!(early.len(), CACHE_MAX_KEYS, "the cache forwards all it holds when full");
    assert!(early.iter().all(|(_, v, _)| *v == 1));
    task.push("k0", Some("x"), 100_000);
    assert_eq!(take(&seen), owned(&[]));
    task.commit();
    assert_eq!(take(&seen), owned(&[("k0", 2, 100_000)]));
}

#[test]
fn a_cached_table_forwards_its_latest_update_or_delete_per_key() {
    let mut b = Topology::builder();
    let table = b.table("t", "tab", Serdes::string(), Serdes::string()).with_caching();
    let seen = capture(&table.to_change_stream());
    let t = b.build().unwrap();
    let mut task = Task::start(t);
    task.push("a", Some("1"), 1);
    task.push("b", Some("1"), 2);
    task.push("a", None, 3);
    task.push("b", Some("2"), 4);
    task.commit();
    let got = take(&seen);
    assert_eq!(got, vec![("a".to_string(), None, 3), ("b".to_string(), Some("2".to_string()), 4)]);
}

#[test]
fn cached_tables_in_a_chain_forward_in_the_same_commit() {
    // The second count counts the first's forwarded updates: upstream hooks
    // must run before downstream ones, or the second cache would hold the
    // first one's output until the next commit (or lose it at shutdown).
    let mut b = Topology::builder();
    let first = b.stream("in", Serdes::string(), Serdes::string()).group_by_key().count("first").with_caching();
    let second = first.to_stream().group_by_key().count("second").with_caching();
    let seen = capture(&second.to_stream());
    let t = b.build().unwrap();
    assert_eq!(t.subtopologies.len(), 1);
    let mut task = Task::start(t);
    task.push("a", Some("x"), 1);
    task.push("a", Some("x"), 2);
    task.push("b", Some("x"), 3);
    task.commit();
    assert_eq!(take(&seen), owned(&[("a", 1, 2), ("b", 1, 3)]));
}
