//! Stream-stream joins on a real broker: the `click_attribution` example
//! under `exactly_once` emits every click exactly once, attributed to its
//! impression when that was shown at most 10 minutes before the click and
//! unattributed otherwise: started on a backlog of impressions and clicks
//! already in their topics, and on three instances killed with SIGKILL and
//! restarted while 200,000 records stream in.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

#[allow(dead_code)]
#[path = "../examples/click_attribution.rs"]
mod click_attribution;

use std::collections::BTreeMap;
use std::time::Duration;

use click_attribution::{Attribution, Click, Impression, Settings};
use harness::child::{self, ChildApp};
use harness::oracle::xorshift;
use harness::TestRecord;
use rivulet::prelude::*;

const TIMEOUT: Duration = Duration::from_secs(120);
const PARTITIONS: i32 = 3;

/// The partition of an impression id, the same in both input topics (so
/// they are co-partitioned as two topics written by one partitioner are).
fn partition_of(id: &str) -> i32 {
    (id.bytes().map(u32::from).sum::<u32>() % PARTITIONS as u32) as i32
}

fn record<T: serde::Serialize>(key: &str, value: &T) -> TestRecord {
    TestRecord {
        partition: partition_of(key),
        key: Some(key.as_bytes().to_vec()),
        value: Some(serde_json::to_vec(value).unwrap()),
        headers: vec![],
        timestamp: None,
    }
}

/// Impressions a second or two apart; most get a click within the 10
/// minutes (some exactly at 10 minutes), some a click too late, before the
/// impression, or for an impression never shown. Clicks are written in
/// time order, as a click tracker writes them.
fn history(t0: i64, n: usize) -> (Vec<Impression>, Vec<Click>) {
    let mut next = xorshift(17);
    let window = click_attribution::ATTRIBUTION_WINDOW.as_millis() as i64;
    let mut t = t0;
    let mut impressions = Vec::new();
    let mut clicks = Vec::new();
    for i in 0..n {
        t += 200 + (next() % 2_000) as i64;
        let id = format!("imp-{i}");
        impressions.push(Impression {
            impression_id: id.clone(),
            user: format!("u{}", i % 97),
            campaign: format!("c{}", i % 7),
            ts: t,
        });
        let delay = match next() % 100 {
            0..=54 => (next() % window as u64) as i64,
            55..=59 => window,
            60..=67 => window + 1 + (next() % 300_000) as i64,
            68..=71 => -1 - (next() % 60_000) as i64,
            _ => continue,
        };
        let click_id = format!("click-{i}");
        clicks.push(Click { click_id, impression_id: id, user: format!("u{}", i % 97), ts: t + delay });
        if i % 25 == 0 {
            let never = format!("imp-never-{i}");
            clicks.push(Click { click_id: format!("click-never-{i}"), impression_id: never, user: "u0".into(), ts: t });
        }
    }
    clicks.sort_by_key(|c| c.ts);
    (impressions, clicks)
}

/// Each click's expected attribution, by click id.
fn attributions(impressions: &[Impression], clicks: &[Click]) -> BTreeMap<String, Attribution> {
    let window = click_attribution::ATTRIBUTION_WINDOW.as_millis() as i64;
    let by_id: BTreeMap<&str, &Impression> = impressions.iter().map(|i| (i.impression_id.as_str(), i)).collect();
    let want: BTreeMap<String, Attribution> = clicks
        .iter()
        .map(|c| {
            let impression = by_id
                .get(c.impression_id.as_str())
                .filter(|i| c.ts - window <= i.ts && i.ts <= c.ts)
                .map(|i| (*i).clone());
            (c.click_id.clone(), Attribution { click: c.clone(), impression })
        })
        .collect();
    let attributed = want.values().filter(|a| a.impression.is_some()).count();
    assert!(
        attributed > want.len() / 2 && want.len() - attributed > want.len() / 10,
        "{attributed} of {} attributed",
        want.len()
    );
    want
}

/// One impression and one click an hour after `last` in each partition:
/// they close every earlier click's window (their own stay open).
fn flush(last: i64) -> (Vec<TestRecord>, Vec<TestRecord>) {
    let end = last + 3_600_000;
    let (mut imps, mut clicks) = (Vec::new(), Vec::new());
    for p in 0..PARTITIONS {
        let key = format!("flush-{p}");
        let imp = Impression { impression_id: key.clone(), user: "flush".into(), campaign: "-".into(), ts: end };
        imps.push(TestRecord { partition: p, ..record(&key, &imp) });
        let click = Click {
            click_id: format!("{key}-click"),
            impression_id: format!("{key}-c"),
            user: "flush".into(),
            ts: end,
        };
        clicks.push(TestRecord { partition: p, ..record(&click.impression_id, &click) });
    }
    (imps, clicks)
}

/// The attributions in `output` (read_committed), by click id, failing on
/// a click emitted twice or a flush click emitted at all.
fn emitted(output: &str) -> Result<BTreeMap<String, Attribution>, String> {
    let mut seen = BTreeMap::new();
    for r in harness::read_committed(output) {
        let a: Attribution = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        let id = a.click.click_id.clone();
        if id.starts_with("flush") {
            return Err(format!("the flush click's window is still open, yet it was emitted: {a:?}"));
        }
        if let Some(first) = seen.insert(id.clone(), a.clone()) {
            return Err(format!("click {id} emitted twice: {first:?} and {a:?}"));
        }
    }
    Ok(seen)
}

/// Every click emitted once, with its expected attribution.
fn check(output: &str, want: &BTreeMap<String, Attribution>) -> Result<(), String> {
    let got = emitted(output)?;
    let wrong: Vec<_> = want.iter().filter(|(id, a)| got.get(*id).is_some_and(|g| g != *a)).take(3).collect();
    if !wrong.is_empty() {
        panic!("wrong attributions (want): {wrong:?}");
    }
    if got.len() == want.len() {
        Ok(())
    } else {
        Err(format!("{} of {} clicks emitted", got.len(), want.len()))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn click_attribution_emits_every_click_once_with_the_right_impression() {
    let settings = Settings {
        clicks_topic: harness::new_history_topic("clicks", PARTITIONS).await,
        impressions_topic: harness::new_history_topic("impressions", PARTITIONS).await,
        output_topic: harness::new_history_topic("attributed-clicks", PARTITIONS).await,
        grace_ms: 60_000,
    };
    let (impressions, clicks) = history(1_700_000_000_000, 3_000);
    let want = attributions(&impressions, &clicks);

    // The backlog: every impression and click, then the flush records.
    let last = clicks.last().unwrap().ts.max(impressions.last().unwrap().ts);
    let (flush_imps, flush_clicks) = flush(last);
    let mut imp_records: Vec<TestRecord> = impressions.iter().map(|i| record(&i.impression_id, i)).collect();
    let mut click_records: Vec<TestRecord> = clicks.iter().map(|c| record(&c.impression_id, c)).collect();
    imp_records.extend(flush_imps);
    click_records.extend(flush_clicks);
    harness::produce_many(&settings.impressions_topic, &imp_records).await;
    harness::produce_many(&settings.clicks_topic, &click_records).await;

    let state = tempfile::tempdir().unwrap();
    let app_id = harness::unique("click-attribution");
    let config = harness::eos_config(&app_id, state.path(), &harness::unique("instance"), &[]);
    let app = App::new(config).unwrap().start(click_attribution::topology(&settings).unwrap()).unwrap();
    harness::eventually("every click emitted once, rightly attributed", TIMEOUT, || {
        check(&settings.output_topic, &want)
    });
    // A few more commits: nothing more may come.
    std::thread::sleep(Duration::from_secs(2));
    app.shutdown().unwrap();
    check(&settings.output_topic, &want).unwrap();
}

/// The topology of the chaos test's children: `input` is
/// `<clicks topic>,<impressions topic>`.
fn chaos_topology(input: &str, output: &str) -> Topology {
    let (clicks, impressions) = input.split_once(',').unwrap();
    let settings = Settings {
        clicks_topic: clicks.to_string(),
        impressions_topic: impressions.to_string(),
        output_topic: output.to_string(),
        grace_ms: 60_000,
    };
    click_attribution::topology(&settings).unwrap()
}

/// Not a test of its own: the body of the child processes the chaos test
/// starts and kills. In a normal test run it returns at once.
#[test]
fn child_process_entry_point_for_join_chaos() {
    let Some(spec) = child::spec() else { return };
    child::run_exactly_once(&spec, chaos_topology)
}

#[tokio::test(flavor = "multi_thread")]
async fn click_attribution_on_three_instances_killed_and_restarted_emits_every_click_exactly_once() {
    let clicks_topic = harness::new_history_topic("chaos-clicks", PARTITIONS * 2).await;
    let impressions_topic = harness::new_history_topic("chaos-impressions", PARTITIONS * 2).await;
    let output = harness::new_history_topic("chaos-attributed", PARTITIONS).await;
    let app_id = harness::unique("chaos-join");
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let specs: Vec<String> = (0..3)
        .map(|i| {
            format!(
                "{clicks_topic},{impressions_topic}|{output}|{app_id}|{}|{app_id}-pod-{i}",
                dirs[i].path().display()
            )
        })
        .collect();
    let spawn = |spec: &str| ChildApp::spawn_test("child_process_entry_point_for_join_chaos", spec);
    let mut children: Vec<ChildApp> = specs.iter().map(|s| spawn(s)).collect();

    let (impressions, clicks) = history(1_600_000_000_000, 120_000);
    let want = attributions(&impressions, &clicks);
    let partition = |key: &str| partition_of(key) + PARTITIONS * i32::from(key.len().is_multiple_of(2));
    // Both topics in event-time order, interleaved, as they would arrive.
    let mut all: Vec<(i64, bool, TestRecord)> = impressions
        .iter()
        .map(|i| (i.ts, true, TestRecord { partition: partition(&i.impression_id), ..record(&i.impression_id, i) }))
        .chain(clicks.iter().map(|c| {
            (c.ts, false, TestRecord { partition: partition(&c.impression_id), ..record(&c.impression_id, c) })
        }))
        .collect();
    all.sort_by_key(|(ts, imp, _)| (*ts, !*imp));
    assert!(all.len() >= 200_000, "{} records", all.len());
    let last = all.last().unwrap().0;
    let (ct, it) = (clicks_topic.clone(), impressions_topic.clone());
    // About 40 s of input, so that the kills happen mid-stream; then the
    // flush records, in every partition of both topics.
    let writer = tokio::spawn(async move {
        for chunk in all.chunks(5_000) {
            let imps: Vec<TestRecord> = chunk.iter().filter(|r| r.1).map(|r| r.2.clone()).collect();
            let clicks: Vec<TestRecord> = chunk.iter().filter(|r| !r.1).map(|r| r.2.clone()).collect();
            harness::produce_many(&it, &imps).await;
            harness::produce_many(&ct, &clicks).await;
            tokio::time::sleep(Duration::from_millis(800)).await;
        }
        for p in 0..PARTITIONS * 2 {
            let (imps, clicks) = flush(last);
            let imp = TestRecord { partition: p, ..imps[0].clone() };
            let click = TestRecord { partition: p, ..clicks[0].clone() };
            harness::produce_many(&it, &[imp]).await;
            harness::produce_many(&ct, &[click]).await;
        }
    });

    child::kill_in_turn(&mut children, &[0, 2, 1], 15_000, &output, |i| spawn(&specs[i]));
    assert!(!writer.is_finished(), "the kills ended while input was still streaming in");
    writer.await.unwrap();
    harness::eventually("every click emitted exactly once, rightly attributed", Duration::from_secs(300), || {
        check(&output, &want)
    });
    std::thread::sleep(Duration::from_secs(2));
    check(&output, &want).unwrap();
    drop(children);
}
