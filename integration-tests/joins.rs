//! Stream-stream joins on a real broker: the `click_attribution` example
//! under `exactly_once`, started on a backlog of impressions and clicks
//! already in their topics, emits every click exactly once, attributed to
//! its impression when that was shown at most 10 minutes before the click
//! and unattributed otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

#[allow(dead_code)]
#[path = "../examples/click_attribution.rs"]
mod click_attribution;

use std::collections::BTreeMap;
use std::time::Duration;

use click_attribution::{Attribution, Click, Impression, Settings};
use harness::{xorshift, TestRecord};
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

#[tokio::test(flavor = "multi_thread")]
async fn click_attribution_emits_every_click_once_with_the_right_impression() {
    let settings = Settings {
        clicks_topic: harness::new_history_topic("clicks", PARTITIONS).await,
        impressions_topic: harness::new_history_topic("impressions", PARTITIONS).await,
        output_topic: harness::new_history_topic("attributed-clicks", PARTITIONS).await,
        grace_ms: 60_000,
    };
    let t0 = 1_700_000_000_000i64;
    let (impressions, clicks) = history(t0, 3_000);
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
    assert!(attributed > 1_000 && want.len() - attributed > 300, "{attributed} of {} attributed", want.len());

    // The backlog: every impression and click, then one record far ahead in
    // each partition of both topics, which closes every click's window.
    let end = clicks.last().unwrap().ts.max(impressions.last().unwrap().ts) + 3_600_000;
    let mut imp_records: Vec<TestRecord> = impressions.iter().map(|i| record(&i.impression_id, i)).collect();
    let mut click_records: Vec<TestRecord> = clicks.iter().map(|c| record(&c.impression_id, c)).collect();
    for p in 0..PARTITIONS {
        let key = (0..).map(|j| format!("flush-{j}")).find(|k| partition_of(k) == p).unwrap();
        let imp =
            Impression { impression_id: format!("{key}-imp"), user: "flush".into(), campaign: "-".into(), ts: end };
        imp_records.push(TestRecord { partition: p, ..record(&key, &imp) });
        let click =
            Click { click_id: format!("{key}-click"), impression_id: key.clone(), user: "flush".into(), ts: end };
        click_records.push(record(&format!("{key}x"), &click));
        click_records.last_mut().unwrap().partition = p;
    }
    harness::produce_many(&settings.impressions_topic, &imp_records).await;
    harness::produce_many(&settings.clicks_topic, &click_records).await;

    let state = tempfile::tempdir().unwrap();
    let app_id = harness::unique("click-attribution");
    let config = harness::eos_config(&app_id, state.path(), &harness::unique("instance"), &[]);
    let app = App::new(config).unwrap().start(click_attribution::topology(&settings).unwrap()).unwrap();
    let read = || -> Vec<Attribution> {
        harness::read_committed(&settings.output_topic)
            .iter()
            .map(|r| serde_json::from_slice(r.value.as_deref().unwrap()).unwrap())
            .collect()
    };
    harness::eventually("every click emitted", TIMEOUT, || {
        let n = read().len();
        if n >= want.len() {
            Ok(())
        } else {
            Err(format!("{n} of {} clicks emitted", want.len()))
        }
    });
    // A few more commits: nothing more may come.
    std::thread::sleep(Duration::from_secs(2));
    app.shutdown().unwrap();
    let got = read();
    let mut seen: BTreeMap<String, Attribution> = BTreeMap::new();
    for a in got {
        let id = a.click.click_id.clone();
        assert!(!id.starts_with("flush"), "the flush click's window is still open: {a:?}");
        if let Some(first) = seen.insert(id.clone(), a.clone()) {
            panic!("click {id} emitted twice: {first:?} and {a:?}");
        }
    }
    let wrong: Vec<_> = want.iter().filter(|(id, a)| seen.get(*id) != Some(*a)).take(5).collect();
    assert!(wrong.is_empty(), "wrong or missing attributions: {wrong:?}");
    assert_eq!(seen.len(), want.len());
}
