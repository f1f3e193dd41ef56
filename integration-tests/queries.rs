//! Interactive queries on a real broker: three instances of a word count,
//! each key's count read from its owner over HTTP and in Rust, the owner
//! endpoint of every instance agreeing with where the value is; then one
//! instance stops, and during the rebalance every answer is the right
//! value, a redirect (421) or a retry (503), never a wrong value; after it,
//! the moved keys are read from their new owners.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use harness::TestRecord;
use rivulet::prelude::*;
use rivulet::query::QueryError;
use rivulet::topology::Windows;
use rivulet::RunningApp;

const PARTITIONS: i32 = 6;
const KEYS: usize = 40;

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: serde_json::Value,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// `GET http://{address}{path}`.
fn get(address: &str, path: &str) -> Response {
    let addr = address.to_socket_addrs().unwrap().next().unwrap();
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_string(), v.trim().to_string())).collect();
    let body = serde_json::from_str(body.trim()).unwrap_or(serde_json::Value::String(body.to_string()));
    Response { status, headers, body }
}

fn key(i: usize) -> String {
    format!("key-{i}")
}

/// Each key `key-i` appears `i % 7 + 1` times, at the partition the Java
/// producer gives it.
fn input() -> (Vec<TestRecord>, BTreeMap<String, i64>) {
    let mut records = Vec::new();
    let mut counts = BTreeMap::new();
    for i in 0..KEYS {
        for n in 0..(i % 7 + 1) {
            let k = key(i);
            records.push(TestRecord {
                partition: harness::partition_of(&k, PARTITIONS),
                ..TestRecord::kv(&k, &n.to_string())
            });
            *counts.entry(k).or_insert(0) += 1;
        }
    }
    (records, counts)
}

/// Every key's count is read from its owner: the owner endpoint of every
/// instance names the same owner, the owner answers the count over HTTP
/// and in Rust, the others redirect to it (421) over HTTP and say
/// `NotHere` with its address in Rust.
fn check_all_readable(apps: &[&RunningApp], expected: &BTreeMap<String, i64>) -> Result<(), String> {
    for (k, &count) in expected {
        let mut owners = Vec::new();
        for app in apps {
            let r = get(app.advertised_address(), &format!("/stores/counts/owner/{k}"));
            if r.status != 200 {
                return Err(format!("owner of {k} on {}: {} {}", app.advertised_address(), r.status, r.body));
            }
            owners.push(r.body["owner"]["address"].as_str().unwrap_or_default().to_string());
        }
        if owners.iter().any(|o| o != &owners[0]) {
            return Err(format!("the instances disagree on the owner of {k}: {owners:?}"));
        }
        let owner = &owners[0];
        let Some(owning) = apps.iter().find(|a| a.advertised_address() == owner) else {
            return Err(format!("{k} is owned by {owner}, which is not running"));
        };
        let r = get(owner, &format!("/stores/counts/keys/{k}"));
        if r.status != 200 || r.body["value"] != count {
            return Err(format!("{k} on its owner {owner}: {} {}, want {count}", r.status, r.body));
        }
        let store = owning.store::<String, i64>("counts").unwrap();
        match store.get(k) {
            Ok(Some(c)) if c == count => {}
            other => return Err(format!("{k} in Rust on its owner: {other:?}, want {count}")),
        }
        for other in apps.iter().filter(|a| a.advertised_address() != owner) {
            let r = get(other.advertised_address(), &format!("/stores/counts/keys/{k}"));
            if r.status != 421 || r.header("rivulet-owner") != Some(owner.as_str()) {
                return Err(format!("{k} on a non-owner: {} {:?} {}", r.status, r.headers, r.body));
            }
            match other.store::<String, i64>("counts").unwrap().get(k) {
                Err(QueryError::NotHere { owner: Some(o), .. }) if &o == owner => {}
                got => return Err(format!("{k} in Rust on a non-owner: {got:?}")),
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn counts_are_read_from_their_owners_before_during_and_after_a_rebalance() {
    // The instances' rebalances and errors, shown when the test fails.
    let _ = tracing_subscriber::fmt().with_env_filter("warn,rivulet=info").with_writer(std::io::stderr).try_init();
    let input_topic = harness::new_topic("iq-in", PARTITIONS).await;
    let output = harness::new_topic("iq-out", PARTITIONS).await;
    let (records, expected) = input();
    harness::produce_many(&input_topic, &records).await;
    let app_id = harness::unique("iq");
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut apps: Vec<RunningApp> = dirs
        .iter()
        .map(|d| {
            let config = harness::app_config(&app_id, d.path(), &[]);
            App::new(config).unwrap().start(harness::count_per_key(&input_topic, &output, "counts")).unwrap()
        })
        .collect();

    // Unknown stores and keys the key serde refuses are the caller's errors.
    let first = apps[0].advertised_address().to_string();
    harness::eventually("an unknown store is a 404", Duration::from_secs(60), || {
        let r = get(&first, "/stores/nope/keys/x");
        (r.status == 404).then_some(()).ok_or(format!("{} {}", r.status, r.body))
    });
    assert!(matches!(apps[0].store::<String, String>("counts"), Err(QueryError::WrongTypes { .. })));

    let all: Vec<&RunningApp> = apps.iter().collect();
    // Under incremental rebalancing the later members get their share a
    // few heartbeats after the first one started on all partitions.
    harness::eventually("every instance owns partitions and every count is readable", Duration::from_secs(120), || {
        if let Some(idle) =
            apps.iter().find(|a| a.store::<String, i64>("counts").unwrap().local_partitions().is_empty())
        {
            return Err(format!("{} owns no partition yet", idle.advertised_address()));
        }
        check_all_readable(&all, &expected)
    });
    for app in &apps {
        let parts = app.store::<String, i64>("counts").unwrap().local_partitions();
        assert!(!parts.is_empty(), "each of 3 instances owns some of 6 partitions");
        let local = app.store::<String, i64>("counts").unwrap().range(None, None).unwrap();
        for (k, v) in &local {
            assert_eq!(Some(v), expected.get(k), "range on {} gives {k}", app.advertised_address());
        }
    }

    // One instance leaves: its tasks move. Meanwhile every answer of the
    // two others is the right count, a redirect or a retry.
    let leaving = apps.pop().unwrap();
    let gone = leaving.advertised_address().to_string();
    let stopping = std::thread::spawn(move || leaving.shutdown());
    let staying: Vec<&RunningApp> = apps.iter().collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = BTreeMap::<u16, usize>::new();
    loop {
        for app in &staying {
            for (k, &count) in &expected {
                let r = get(app.advertised_address(), &format!("/stores/counts/keys/{k}"));
                *seen.entry(r.status).or_default() += 1;
                match r.status {
                    200 => assert_eq!(r.body["value"], count, "{k} during the rebalance"),
                    421 => assert!(r.header("rivulet-owner").is_some(), "a redirect names the owner: {:?}", r.headers),
                    503 => assert_eq!(r.header("retry-after"), Some("1"), "{}", r.body),
                    _ => panic!("{k} during the rebalance: {} {}", r.status, r.body),
                }
            }
        }
        if stopping.is_finished() && check_all_readable(&staying, &expected).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "not readable again within 120 s after one instance left: {seen:?}");
    }
    stopping.join().unwrap().unwrap();
    for k in expected.keys() {
        let r = get(staying[0].advertised_address(), &format!("/stores/counts/owner/{k}"));
        assert_ne!(r.body["owner"]["address"], gone.as_str(), "{k} is not owned by the instance that left");
    }
    eprintln!("answers during the rebalance, by status: {seen:?}");
    for app in apps {
        app.shutdown().unwrap();
    }
}

/// A tumbling-window count on two instances: each key's windows are
/// fetched over a time range from its owner, in Rust and over HTTP
/// (`?from=..&to=..`), and the other instance redirects.
#[tokio::test(flavor = "multi_thread")]
async fn a_keys_windows_are_fetched_over_a_time_range_from_its_owner() {
    // The instances' rebalances and errors, shown when the test fails.
    let _ = tracing_subscriber::fmt().with_env_filter("warn,rivulet=info").with_writer(std::io::stderr).try_init();
    const MINUTE: i64 = 60_000;
    const BASE: i64 = 1_700_000_000_000 / MINUTE * MINUTE;
    // Records from 2023: a topic with time retention would lose them at the
    // broker's next retention check, before they are processed.
    let input_topic = harness::new_history_topic("iqw-in", 4).await;
    let output = harness::new_topic("iqw-out", 4).await;
    // key-i has (i + w) % 3 + 1 records in minute w, for w in 0..4.
    let mut records = Vec::new();
    let mut expected: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
    for i in 0..12 {
        let k = key(i);
        for w in 0..4 {
            let n = ((i + w as usize) % 3 + 1) as i64;
            for j in 0..n {
                records.push(TestRecord {
                    partition: harness::partition_of(&k, 4),
                    timestamp: Some(BASE + w * MINUTE + j * 1_000),
                    ..TestRecord::kv(&k, "click")
                });
            }
            expected.entry(k.clone()).or_default().push((BASE + w * MINUTE, n));
        }
    }
    harness::produce_many(&input_topic, &records).await;
    let topology = || {
        let mut b = Topology::builder();
        b.stream(&input_topic, Serdes::string(), Serdes::string())
            .group_by_key()
            .windowed_by(Windows::tumbling(Duration::from_secs(60)).grace(Duration::from_secs(86_400)))
            .count("clicks")
            .to(&output, Serdes::windowed(Serdes::string()), Serdes::i64());
        b.build().unwrap()
    };
    let app_id = harness::unique("iqw");
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let apps: Vec<RunningApp> = dirs
        .iter()
        .map(|d| App::new(harness::app_config(&app_id, d.path(), &[])).unwrap().start(topology()).unwrap())
        .collect();
    assert!(matches!(apps[0].store::<String, i64>("clicks"), Err(QueryError::NotQueryable { .. })));

    harness::eventually("every key's windows are read from its owner", Duration::from_secs(120), || {
        for (k, windows) in &expected {
            let owner = apps[0].window_store::<String, i64>("clicks").unwrap().owner(k).map_err(|e| e.to_string())?;
            let Some((_, address)) = owner.instance else { return Err(format!("no owner of {k}")) };
            let Some(owning) = apps.iter().find(|a| a.advertised_address() == address) else {
                return Err(format!("{k} owned by {address}"));
            };
            let store = owning.window_store::<String, i64>("clicks").unwrap();
            let got: Vec<(i64, i64)> = match store.fetch(k, i64::MIN, i64::MAX) {
                Ok(ws) => ws.into_iter().map(|(w, n)| (w.start, n)).collect(),
                Err(e) => return Err(format!("{k}: {e}")),
            };
            if &got != windows {
                return Err(format!("{k}: {got:?}, want {windows:?}"));
            }
            // Windows starting in minutes 1 and 2 only, each a minute long.
            let some = store.fetch(k, BASE + MINUTE, BASE + 2 * MINUTE).map_err(|e| e.to_string())?;
            let spans: Vec<(i64, i64)> = some.iter().map(|(w, _)| (w.start, w.end - w.start)).collect();
            if spans != [(BASE + MINUTE, MINUTE), (BASE + 2 * MINUTE, MINUTE)] {
                return Err(format!("{k} in minutes 1 and 2: {spans:?}"));
            }
            let path = format!("/stores/clicks/keys/{k}?from={}&to={}", BASE + MINUTE, BASE + 2 * MINUTE);
            let r = get(&address, &path);
            let values: Vec<i64> =
                r.body["windows"].as_array().into_iter().flatten().filter_map(|w| w["value"].as_i64()).collect();
            if (r.status, &values) != (200, &vec![windows[1].1, windows[2].1]) {
                return Err(format!("{k} over HTTP from its owner: {} {}", r.status, r.body));
            }
            let other = apps.iter().find(|a| a.advertised_address() != address).unwrap();
            let r = get(other.advertised_address(), &path);
            if (r.status, r.header("rivulet-owner")) != (421, Some(address.as_str())) {
                return Err(format!("{k} over HTTP from the other instance: {} {}", r.status, r.body));
            }
        }
        Ok(())
    });
    for app in apps {
        app.shutdown().unwrap();
    }
}
