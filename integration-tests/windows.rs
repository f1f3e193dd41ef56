//! Windows on the real broker: every window kind with `emit_final`, on
//! input that arrives out of order and includes late records, equals the
//! plain-arithmetic oracle of the window unit tests (included from
//! `src/topology/window_tests/oracle.rs`); late records land in the
//! late topic and nowhere else; a restart mid-stream (state wiped, so it is
//! restored from the changelog) emits each window exactly once; a late
//! record inside an open session joins it; a session merged after it was
//! emitted gets a tombstone; the `page_views_per_minute` and `sessions`
//! examples.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

#[allow(dead_code)]
#[path = "../examples/page_views_per_minute.rs"]
mod page_views_per_minute;
#[allow(dead_code)]
#[path = "../examples/sessions.rs"]
mod sessions;

use std::collections::BTreeMap;
use std::time::Duration;

use harness::oracle::{xorshift, Oracle, Win};
use harness::TestRecord;
use rivulet::prelude::*;
use rivulet::topology::{Timestamps, Windows};

const TIMEOUT: Duration = Duration::from_secs(90);
const OOO: i64 = 1_000;
const GRACE: i64 = 2_000;

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Ev {
    ts: i64,
}

/// The window kinds under test, with their output topic suffix.
fn kinds() -> Vec<(&'static str, Windows)> {
    vec![
        ("tumbling", Windows::tumbling(Duration::from_secs(10))),
        ("hopping", Windows::hopping(Duration::from_secs(10), Duration::from_secs(3))),
        ("sliding", Windows::sliding(Duration::from_secs(5))),
        ("session", Windows::session(Duration::from_millis(1_500))),
        ("count", Windows::count(4)),
    ]
}

/// One topology counting the same input in every window kind that has
/// (output, late) topics in `topics`.
fn topology(input: &str, topics: &BTreeMap<&str, (String, String)>) -> Topology {
    let mut b = Topology::builder();
    let grouped = b
        .stream_with_time(
            input,
            Serdes::string(),
            Serdes::json::<Ev>(),
            Timestamps::from_value(|v: &Ev| Some(v.ts)).out_of_orderness(Duration::from_millis(OOO as u64)),
        )
        .group_by_key();
    for (kind, windows) in kinds() {
        let Some((out, late)) = topics.get(kind) else { continue };
        grouped
            .windowed_by(windows.grace(Duration::from_millis(GRACE as u64)))
            .emit_final()
            .late_records_to(late)
            .count(&format!("{kind}-counts"))
            .to(out, Serdes::windowed(Serdes::string()), Serdes::i64());
    }
    b.build().unwrap()
}

/// Records with timestamps mostly rising in 100 ms steps, some out of
/// order within out-of-orderness plus grace, some far behind (late).
fn input(seed: u64, n: usize) -> Vec<(String, i64)> {
    let mut next = xorshift(seed);
    let mut t = 1_700_000_000_000i64;
    (0..n)
        .map(|_| {
            t += (next() % 7) as i64 * 100;
            let r = next() % 100;
            let ts = if r < 70 {
                t
            } else if r < 92 {
                t - (next() % 30) as i64 * 100
            } else {
                t - 5_000 - (next() % 200) as i64 * 100
            };
            (format!("k{}", next() % 8), ts)
        })
        .collect()
}

/// The oracle of `kind` over `input`: the time windows as the unit tests
/// judge them, count windows closing every 4 records of a key.
fn oracle_for(kind: &str, input: &[(String, i64)]) -> Oracle {
    let mut o = Oracle::new(OOO, GRACE);
    match kind {
        "tumbling" => o.time(input, 10_000, 10_000),
        "hopping" => o.time(input, 10_000, 3_000),
        "session" => o.sessions(input, 1_500),
        "sliding" => o.sliding(input, 5_000),
        "count" => {
            let mut counts: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
            for (k, ts) in input {
                let c = counts.entry(k).or_default();
                c.push(*ts);
                if c.len() == 4 {
                    o.closed.insert((k.clone(), c[0], c[3]), 4);
                    c.clear();
                }
            }
        }
        _ => unreachable!(),
    }
    o
}

fn as_records(input: &[(String, i64)]) -> Vec<TestRecord> {
    input
        .iter()
        .map(|(k, ts)| TestRecord { timestamp: Some(*ts), ..TestRecord::kv(k, &format!("{{\"ts\":{ts}}}")) })
        .collect()
}

/// The windows in an output topic; fails on a window emitted twice.
fn emitted(topic: &str) -> Result<BTreeMap<Win, i64>, String> {
    let mut m = BTreeMap::new();
    for r in harness::read_committed(topic) {
        let key = r.key.unwrap();
        let (k, w) = key.split_at(key.len() - 16);
        let start = i64::from_be_bytes(w[..8].try_into().unwrap());
        let end = i64::from_be_bytes(w[8..].try_into().unwrap());
        let count = i64::from_be_bytes(r.value.unwrap().as_slice().try_into().unwrap());
        let win = (String::from_utf8(k.to_vec()).unwrap(), start, end);
        if m.insert(win.clone(), count).is_some() {
            return Err(format!("window {win:?} emitted twice in {topic}"));
        }
    }
    Ok(m)
}

fn diff(got: &BTreeMap<Win, i64>, want: &BTreeMap<Win, i64>) -> String {
    let missing: Vec<_> = want.iter().filter(|(w, n)| got.get(*w) != Some(*n)).take(3).collect();
    let extra: Vec<_> = got.iter().filter(|(w, _)| !want.contains_key(*w)).take(3).collect();
    format!("{} windows, want {}; wrong or missing {missing:?}; extra {extra:?}", got.len(), want.len())
}

async fn topics(prefix: &str, kinds: &[&'static str]) -> BTreeMap<&'static str, (String, String)> {
    let mut m = BTreeMap::new();
    for kind in kinds {
        let out = harness::new_history_topic(&format!("{prefix}-{kind}"), 1).await;
        let late = harness::new_history_topic(&format!("{prefix}-{kind}-late"), 1).await;
        m.insert(*kind, (out, late));
    }
    m
}

#[tokio::test(flavor = "multi_thread")]
async fn every_window_kind_equals_the_oracle_and_late_records_go_only_to_the_late_topic() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let records = input(11, 3_000);
    let input_topic = harness::new_history_topic("win-in", 1).await;
    let all: Vec<&str> = kinds().iter().map(|(k, _)| *k).collect();
    let topics = topics("win-out", &all).await;
    harness::produce_many(&input_topic, &as_records(&records)).await;

    let state = tempfile::tempdir().unwrap();
    let config = harness::app_config(
        &harness::unique("windows"),
        state.path(),
        &[("RIVULET__PROCESSING_GUARANTEE", "exactly_once")],
    );
    let app = App::new(config).unwrap().start(topology(&input_topic, &topics)).unwrap();
    for kind in &all {
        let oracle = oracle_for(kind, &records);
        assert!(!oracle.closed.is_empty(), "{kind}: the oracle closed no window");
        if *kind != "count" {
            assert!(!oracle.late.is_empty(), "{kind}: the input has no late record");
        }
        if *kind == "hopping" || *kind == "sliding" {
            assert!(oracle.rescued > 0, "{kind}: no record lands in an open window after one of its windows closed");
        }
        let (out, late) = &topics[kind];
        harness::eventually(&format!("{kind} windows equal the oracle"), TIMEOUT, || {
            let got = emitted(out)?;
            if got == oracle.closed {
                Ok(())
            } else {
                Err(diff(&got, &oracle.closed))
            }
        });
        // Late records, unchanged, in arrival order, and only there.
        let want = as_records(&oracle.late);
        harness::eventually(&format!("{kind} late records in the late topic"), TIMEOUT, || {
            let got: Vec<TestRecord> = harness::read_committed(late)
                .into_iter()
                .map(|r| TestRecord { headers: Vec::new(), partition: 0, ..r })
                .collect();
            if got == want {
                Ok(())
            } else {
                Err(format!("{} late records, want {}", got.len(), want.len()))
            }
        });
    }
    app.shutdown().unwrap();
}

/// Per-user events a few seconds apart, so sessions (20 s gap) run for tens
/// of minutes, with a pause of two minutes now and then, and 2% of the
/// records 10 to 30 minutes behind; a last record an hour on closes every
/// session. The shape of the report in issue 12.
fn long_sessions_input(seed: u64, n: usize) -> Vec<(String, i64)> {
    let mut next = xorshift(seed);
    let mut t = 1_700_000_000_000i64;
    let mut paused_until = [i64::MIN; 6];
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        t += (next() % 1_000) as i64;
        let user = (next() % 6) as usize;
        if t < paused_until[user] {
            continue;
        }
        if next() % 1_000 < 2 {
            paused_until[user] = t + 120_000;
        }
        let ts = if next() % 100 < 2 { t - 600_000 - (next() % 1_200_000) as i64 } else { t };
        out.push((format!("user{user}"), ts));
    }
    out.push(("closer".to_string(), t + 3_600_000));
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_late_record_inside_an_open_session_is_merged_into_it_not_dropped() {
    let (gap, grace) = (20_000i64, 5_000i64);
    let records = long_sessions_input(5, 8_000);
    let mut oracle = Oracle::new(OOO, grace);
    oracle.sessions(&records, gap);
    assert!(oracle.rescued > 0, "no late record lands in an open session");
    assert!(oracle.late.len() > oracle.rescued / 4, "too few records late for good");
    assert!(oracle.closed.len() > 10, "too few sessions closed: {}", oracle.closed.len());
    let input_topic = harness::new_history_topic("long-sessions-in", 1).await;
    let out = harness::new_history_topic("long-sessions-out", 1).await;
    let late = harness::new_history_topic("long-sessions-late", 1).await;
    harness::produce_many(&input_topic, &as_records(&records)).await;

    let mut b = Topology::builder();
    b.stream_with_time(
        &input_topic,
        Serdes::string(),
        Serdes::json::<Ev>(),
        Timestamps::from_value(|v: &Ev| Some(v.ts)).out_of_orderness(Duration::from_millis(OOO as u64)),
    )
    .group_by_key()
    .windowed_by(Windows::session(Duration::from_millis(gap as u64)).grace(Duration::from_millis(grace as u64)))
    .emit_final()
    .late_records_to(&late)
    .count("long-sessions")
    .to(&out, Serdes::windowed(Serdes::string()), Serdes::i64());
    let state = tempfile::tempdir().unwrap();
    let config = harness::app_config(&harness::unique("long-sessions"), state.path(), &[]);
    let app = App::new(config).unwrap().start(b.build().unwrap()).unwrap();
    harness::eventually("every closed session with all its records", TIMEOUT, || {
        let got = emitted(&out)?;
        if got == oracle.closed {
            Ok(())
        } else {
            Err(diff(&got, &oracle.closed))
        }
    });
    harness::eventually("only records late for every session in the late topic", TIMEOUT, || {
        let got = harness::read_committed(&late).len();
        if got == oracle.late.len() {
            Ok(())
        } else {
            Err(format!("{got} late records, want {}", oracle.late.len()))
        }
    });
    app.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_merged_after_it_was_emitted_gets_a_tombstone_and_the_table_of_sessions_is_right() {
    let input_topic = harness::new_history_topic("merge-tombstone-in", 1).await;
    let out = harness::new_history_topic("merge-tombstone-out", 1).await;
    let mut b = Topology::builder();
    b.stream_with_time(
        &input_topic,
        Serdes::string(),
        Serdes::json::<Ev>(),
        // Nothing closes during the test: the bridging record is on time.
        Timestamps::from_value(|v: &Ev| Some(v.ts)).out_of_orderness(Duration::from_secs(600)),
    )
    .group_by_key()
    .windowed_by(Windows::session(Duration::from_secs(20)))
    .with_tombstones()
    .count("merge-tombstone")
    .to(&out, Serdes::windowed(Serdes::string()), Serdes::optional(Serdes::i64()));
    let state = tempfile::tempdir().unwrap();
    let config = harness::app_config(&harness::unique("merge-tombstone"), state.path(), &[]);
    let app = App::new(config).unwrap().start(b.build().unwrap()).unwrap();

    let t0 = 1_700_000_000_000i64;
    let s = 1_000i64;
    let at = |k: &str, secs: i64| (k.to_string(), t0 + secs * s);
    // alice: sessions 0..5 and 40..45 (35 s apart), bob: 0..0.
    harness::produce(
        &input_topic,
        &as_records(&[at("alice", 0), at("alice", 5), at("alice", 40), at("alice", 45), at("bob", 0)]),
    )
    .await;
    let table = |topic: &str| -> BTreeMap<Win, i64> {
        let mut m = BTreeMap::new();
        for r in harness::read_committed(topic) {
            let key = r.key.unwrap();
            let (k, w) = key.split_at(key.len() - 16);
            let win = (
                String::from_utf8(k.to_vec()).unwrap(),
                i64::from_be_bytes(w[..8].try_into().unwrap()),
                i64::from_be_bytes(w[8..].try_into().unwrap()),
            );
            match r.value {
                Some(v) => m.insert(win, i64::from_be_bytes(v.as_slice().try_into().unwrap())),
                None => m.remove(&win),
            };
        }
        m
    };
    let want = |sessions: &[(&str, i64, i64, i64)]| -> BTreeMap<Win, i64> {
        sessions.iter().map(|(k, a, e, n)| ((k.to_string(), t0 + a * s, t0 + e * s), *n)).collect()
    };
    let first = want(&[("alice", 0, 5, 2), ("alice", 40, 45, 2), ("bob", 0, 0, 1)]);
    harness::eventually("the first sessions are emitted", TIMEOUT, || {
        let got = table(&out);
        if got == first {
            Ok(())
        } else {
            Err(format!("got {got:?}"))
        }
    });
    // alice's 22 s is within 20 s of both her sessions: they merge, with
    // her 2 s (inside) into one session 0..45 of 6 events.
    harness::produce(&input_topic, &as_records(&[at("alice", 22), at("alice", 2)])).await;
    let second = want(&[("alice", 0, 45, 6), ("bob", 0, 0, 1)]);
    harness::eventually("the table of sessions holds only the merged session", TIMEOUT, || {
        let got = table(&out);
        if got == second {
            Ok(())
        } else {
            Err(format!("got {got:?}"))
        }
    });
    // One tombstone per absorbed session, none for the session that grew.
    let tombstones = harness::read_committed(&out).iter().filter(|r| r.value.is_none()).count();
    assert_eq!(tombstones, 2);
    app.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn emit_final_emits_each_window_once_across_a_restart_that_restores_from_the_changelog() {
    let records = input(23, 2_000);
    let input_topic = harness::new_history_topic("win-restart-in", 1).await;
    let topics = topics("win-restart-out", &["tumbling", "session"]).await;
    let (first, second) = records.split_at(records.len() / 2);
    harness::produce_many(&input_topic, &as_records(first)).await;

    let app_id = harness::unique("win-restart");
    let state = tempfile::tempdir().unwrap();
    let config = harness::app_config(&app_id, state.path(), &[("RIVULET__PROCESSING_GUARANTEE", "exactly_once")]);
    let app = App::new(config.clone()).unwrap().start(topology(&input_topic, &topics)).unwrap();
    harness::eventually("the first half is processed and committed", TIMEOUT, || {
        let s = app.stats();
        if s.records_processed >= first.len() as u64 {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    });
    app.shutdown().unwrap();
    // Lose the local state: the restart restores windows and watermark
    // from the changelog.
    std::fs::remove_dir_all(state.path()).unwrap();
    harness::produce_many(&input_topic, &as_records(second)).await;
    let app = App::new(config).unwrap().start(topology(&input_topic, &topics)).unwrap();
    for kind in ["tumbling", "session"] {
        let oracle = oracle_for(kind, &records);
        harness::eventually(&format!("{kind} windows after the restart"), TIMEOUT, || {
            let got = emitted(&topics[kind].0)?;
            if got == oracle.closed {
                Ok(())
            } else {
                Err(diff(&got, &oracle.closed))
            }
        });
        assert_eq!(harness::read_committed(&topics[kind].1).len(), oracle.late.len(), "{kind} late records");
    }
    app.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn page_views_per_minute_counts_each_minute_once_overall_and_per_page() {
    use page_views_per_minute::{MinuteCount, PageView, Settings};
    let settings = Settings {
        input_topic: harness::new_history_topic("page-views", 2).await,
        output_topic: harness::new_history_topic("page-views-per-minute", 1).await,
        per_page_topic: harness::new_history_topic("page-views-per-page", 1).await,
        late_topic: harness::new_history_topic("page-views-late", 1).await,
        out_of_orderness_ms: 5_000,
        grace_ms: 10_000,
    };
    let minute = 60_000i64;
    let t0 = 1_700_000_040_000i64 - 1_700_000_040_000i64.rem_euclid(minute);
    // Minute 0: 3 views of /a, 2 of /b; minute 1: 1 of /a; one view 3 s out
    // of order; then views 3 minutes on close both minutes. Each page's
    // counts are in the repartition partition of that page, whose
    // watermark moves only with that page's views: the closing views are
    // one per page.
    let views = [
        ("u1", "/a", t0 + 1_000),
        ("u2", "/b", t0 + 2_000),
        ("u1", "/a", t0 + 30_000),
        ("u3", "/a", t0 + 61_000),
        ("u2", "/a", t0 + 58_000),
        ("u3", "/b", t0 + 59_999),
        ("u1", "/a", t0 + 3 * minute + 20_000),
        ("u1", "/b", t0 + 3 * minute + 20_000),
    ];
    let records: Vec<TestRecord> = views
        .iter()
        .enumerate()
        .map(|(i, (user, page, ts))| {
            let v = PageView { user: user.to_string(), page: page.to_string(), ts: *ts };
            TestRecord {
                partition: (i % 2) as i32,
                key: None,
                value: Some(serde_json::to_vec(&v).unwrap()),
                headers: vec![],
                timestamp: None,
            }
        })
        .collect();
    harness::produce(&settings.input_topic, &records).await;
    let state = tempfile::tempdir().unwrap();
    let config = harness::app_config(&harness::unique("page-views"), state.path(), &[]);
    let app = App::new(config).unwrap().start(page_views_per_minute::topology(&settings).unwrap()).unwrap();
    let want = vec![
        MinuteCount { window_start: t0, window_end: t0 + minute, count: 5 },
        MinuteCount { window_start: t0 + minute, window_end: t0 + 2 * minute, count: 1 },
    ];
    harness::eventually("one count per closed minute", TIMEOUT, || {
        let got: Vec<MinuteCount> = harness::read_committed(&settings.output_topic)
            .iter()
            .map(|r| serde_json::from_slice(r.value.as_deref().unwrap()).unwrap())
            .collect();
        if got == want {
            Ok(())
        } else {
            Err(format!("got {got:?}"))
        }
    });
    let mut want_pages = BTreeMap::new();
    want_pages.insert(("/a".to_string(), t0), 3);
    want_pages.insert(("/b".to_string(), t0), 2);
    want_pages.insert(("/a".to_string(), t0 + minute), 1);
    // The closing views' minute is still open.
    harness::eventually("per-page counts per closed minute", TIMEOUT, || {
        let got: BTreeMap<(String, i64), i64> = harness::read_committed(&settings.per_page_topic)
            .iter()
            .map(|r| {
                let v: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
                assert_eq!(v["key"].as_str(), Some(r.key_str()));
                assert_eq!(v["window_end"].as_i64().unwrap() - v["window_start"].as_i64().unwrap(), minute);
                ((r.key_str().to_string(), v["window_start"].as_i64().unwrap()), v["value"].as_i64().unwrap())
            })
            .collect();
        if got == want_pages {
            Ok(())
        } else {
            Err(format!("got {got:?}"))
        }
    });
    app.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_emit_each_closed_session_with_merges() {
    use sessions::{Event, Session, Settings};
    let settings = Settings {
        input_topic: harness::new_history_topic("user-events", 1).await,
        output_topic: harness::new_history_topic("user-sessions", 1).await,
        gap_ms: 30 * 60_000,
        // alice's 30 arrives after her 50: on time only if the watermark
        // trails by more than 20 minutes (the session 0..10 closes when
        // the watermark reaches 40).
        out_of_orderness_ms: 25 * 60_000,
        grace_ms: 0,
    };
    let min = 60_000i64;
    let t0 = 1_700_000_000_000i64;
    // alice: 0, 10, 50 (a second session), then 30 bridges the two (gaps
    // of 20 min): one session 0..50 of 4 events. bob: 5, then 100: two
    // sessions. carol at 200 moves the watermark to 175, closing all.
    let events = [
        ("alice", t0),
        ("alice", t0 + 10 * min),
        ("bob", t0 + 5 * min),
        ("alice", t0 + 50 * min),
        ("alice", t0 + 30 * min),
        ("bob", t0 + 100 * min),
        ("carol", t0 + 200 * min),
    ];
    let records: Vec<TestRecord> = events
        .iter()
        .map(|(user, ts)| {
            let e = Event { user: user.to_string(), ts: *ts };
            TestRecord::kv(user, std::str::from_utf8(&serde_json::to_vec(&e).unwrap()).unwrap())
        })
        .collect();
    harness::produce(&settings.input_topic, &records).await;
    let state = tempfile::tempdir().unwrap();
    let config = harness::app_config(&harness::unique("sessions"), state.path(), &[]);
    let app = App::new(config).unwrap().start(sessions::topology(&settings).unwrap()).unwrap();
    let want = vec![
        Session { user: "bob".into(), start: t0 + 5 * min, end: t0 + 5 * min, events: 1 },
        Session { user: "alice".into(), start: t0, end: t0 + 50 * min, events: 4 },
        Session { user: "bob".into(), start: t0 + 100 * min, end: t0 + 100 * min, events: 1 },
    ];
    harness::eventually("the closed sessions", TIMEOUT, || {
        let mut got: Vec<Session> = harness::read_committed(&settings.output_topic)
            .iter()
            .map(|r| serde_json::from_slice(r.value.as_deref().unwrap()).unwrap())
            .collect();
        got.sort_by_key(|s| (s.start, s.user.clone()));
        let mut want = want.clone();
        want.sort_by_key(|s| (s.start, s.user.clone()));
        if got == want {
            Ok(())
        } else {
            Err(format!("got {got:?}, {:?}", app.stats()))
        }
    });
    app.shutdown().unwrap();
}
