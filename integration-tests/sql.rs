//! The SQL front end on the broker: `examples/sql_page_views.rs` (the
//! seed's `SELECT TUMBLE_START(..), COUNT(*) .. GROUP BY TUMBLE(..)`)
//! and the hand-written `examples/page_views_per_minute.rs`, both under
//! exactly-once with the default commit interval, on the same backlog
//! (already in the topic when they start, with records out of order and
//! late), write the same count for each minute, which is the plain
//! arithmetic's. A query over `avro-confluent` tables reads and writes
//! Avro through the Schema Registry, with Flink's derived schemas.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

#[allow(dead_code)]
#[path = "../examples/page_views_per_minute.rs"]
mod page_views_per_minute;
#[allow(dead_code)]
#[path = "../examples/sql_page_views.rs"]
mod sql_page_views;

use std::collections::BTreeMap;
use std::time::Duration;

use apache_avro::types::Value as Avro;
use harness::TestRecord;
use rivulet::prelude::*;
use rivulet::serde::registry::SchemaRegistry;
use rivulet::serde::Serde;

const TIMEOUT: Duration = Duration::from_secs(90);
const MIN: i64 = 60_000;

/// The views' times: each minute's, one on time but out of order after
/// it, and (from the third minute) one late view of the minute before;
/// then a view 20 minutes on that closes every minute.
fn times(t0: i64) -> Vec<i64> {
    let mut ts = Vec::new();
    for m in 0..6 {
        let views = m + 3;
        for j in 0..views {
            ts.push(t0 + m * MIN + j * 7_000);
        }
        let max = t0 + m * MIN + (views - 1) * 7_000;
        ts.push(max - 3_000);
        if m >= 2 {
            ts.push(t0 + (m - 1) * MIN + 30_000);
        }
    }
    ts.push(t0 + 20 * MIN);
    ts
}

/// Each closed minute's count (start -> count): a view is late when its
/// minute ended 15 s (5 s out of order + 10 s grace) or more before the
/// largest time seen.
fn oracle(ts: &[i64]) -> BTreeMap<i64, i64> {
    let mut max = i64::MIN;
    let mut counts = BTreeMap::new();
    for t in ts {
        max = max.max(*t);
        let start = t - t.rem_euclid(MIN);
        if start + MIN + 15_000 > max {
            *counts.entry(start).or_insert(0) += 1;
        }
    }
    counts.retain(|start, _| start + MIN + 15_000 <= max);
    counts
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_page_views_equals_page_views_per_minute_under_exactly_once() {
    // One input partition: which records are late depends on the order
    // the task reads them in, which two partitions would leave to the
    // fetches, and the two applications must see the same order.
    let input = harness::new_history_topic("sql-page-views", 1).await;
    let hand = page_views_per_minute::Settings {
        input_topic: input.clone(),
        output_topic: harness::new_history_topic("sql-pv-hand", 1).await,
        per_page_topic: harness::new_history_topic("sql-pv-per-page", 1).await,
        late_topic: harness::new_history_topic("sql-pv-late", 1).await,
        out_of_orderness_ms: 5_000,
        grace_ms: 10_000,
    };
    let sql = sql_page_views::Settings {
        input_topic: input.clone(),
        output_topic: harness::new_history_topic("sql-pv-sql", 1).await,
        watermark_delay_s: 15,
    };
    let t0 = 1_700_000_040_000i64 - 1_700_000_040_000i64.rem_euclid(MIN);
    let ts = times(t0);
    let records: Vec<TestRecord> = ts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let v = page_views_per_minute::PageView { user: format!("u{}", i % 3), page: "/".into(), ts: *t };
            TestRecord {
                partition: 0,
                key: None,
                value: Some(serde_json::to_vec(&v).unwrap()),
                headers: vec![],
                timestamp: None,
            }
        })
        .collect();
    harness::produce(&input, &records).await;
    let want = oracle(&ts);
    assert_eq!(want.len(), 6);
    assert!(want.values().sum::<i64>() < ts.len() as i64 - 1, "some views are late");

    let eos = [("RIVULET__PROCESSING_GUARANTEE", "exactly_once"), ("RIVULET__COMMIT_INTERVAL_MS", "")];
    let (dir_hand, dir_sql) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = harness::app_config(&harness::unique("pv-hand"), dir_hand.path(), &eos);
    let hand_app = App::new(config).unwrap().start(page_views_per_minute::topology(&hand).unwrap()).unwrap();
    let config = harness::app_config(&harness::unique("pv-sql"), dir_sql.path(), &eos);
    let sql_app = App::new(config).unwrap().start(sql_page_views::topology(&sql).unwrap()).unwrap();

    harness::eventually("the hand-written counts", TIMEOUT, || {
        let got: BTreeMap<i64, i64> = harness::read_committed(&hand.output_topic)
            .iter()
            .map(|r| {
                let c: page_views_per_minute::MinuteCount =
                    serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
                assert_eq!(c.window_end, c.window_start + MIN);
                (c.window_start, c.count)
            })
            .collect();
        if got == want {
            Ok(())
        } else {
            Err(format!("got {got:?}, want {want:?}"))
        }
    });
    harness::eventually("the SQL counts", TIMEOUT, || {
        let out = harness::read_committed(&sql.output_topic);
        assert!(out.iter().all(|r| r.key.is_none()), "the SQL sink writes null keys");
        let got: Vec<(i64, i64)> = out
            .iter()
            .map(|r| {
                let v: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
                assert_eq!(v.as_object().unwrap().len(), 2, "{v}");
                (v["window_start"].as_i64().unwrap(), v["count"].as_i64().unwrap())
            })
            .collect();
        // Each minute once: as many records as minutes.
        if got.len() == want.len() && got.iter().copied().collect::<BTreeMap<_, _>>() == want {
            Ok(())
        } else {
            Err(format!("got {got:?}, want {want:?}"))
        }
    });
    // And the hand-written one wrote each minute once too.
    assert_eq!(harness::read_committed(&hand.output_topic).len(), want.len());
    sql_app.shutdown().unwrap();
    hand_app.shutdown().unwrap();
}

/// The schemas Flink derives for `(page STRING, event_time TIMESTAMP(3))`
/// and `(page STRING, window_start TIMESTAMP(3), views BIGINT)`.
const VIEW_SCHEMA: &str = r#"{"type":"record","name":"record","namespace":"org.apache.flink.avro.generated","fields":[
  {"name":"page","type":["null","string"],"default":null},
  {"name":"event_time","type":["null",{"type":"long","logicalType":"timestamp-millis"}],"default":null}]}"#;
const COUNT_SCHEMA: &str = r#"{"type":"record","name":"record","namespace":"org.apache.flink.avro.generated","fields":[
  {"name":"page","type":["null","string"],"default":null},
  {"name":"window_start","type":["null",{"type":"long","logicalType":"timestamp-millis"}],"default":null},
  {"name":"views","type":["null","long"],"default":null}]}"#;

fn some(v: Avro) -> Avro {
    Avro::Union(1, Box::new(v))
}

#[tokio::test(flavor = "multi_thread")]
async fn avro_confluent_tables_go_through_the_schema_registry_under_exactly_once() {
    let input = harness::new_history_topic("sql-avro-in", 1).await;
    let output = harness::new_history_topic("sql-avro-out", 1).await;
    let state = tempfile::tempdir().unwrap();
    let env = [
        ("RIVULET__SCHEMA_REGISTRY__URL", harness::registry::url()),
        ("RIVULET__SCHEMA_REGISTRY__AUTO_REGISTER_SCHEMAS", "true"),
        ("RIVULET__PROCESSING_GUARANTEE", "exactly_once"),
        ("RIVULET__COMMIT_INTERVAL_MS", ""),
    ];
    let config = harness::app_config(&harness::unique("sql-avro"), state.path(), &env);
    let registry = SchemaRegistry::connect(&config.schema_registry).unwrap();
    let writer = registry.avro_value(VIEW_SCHEMA).unwrap().value_of(&input);
    let t0 = 1_700_000_040_000i64 - 1_700_000_040_000i64.rem_euclid(MIN);
    let views = [("/a", t0 + 1_000), ("/b", t0 + 3_000), ("/a", t0 + 2_000), ("/a", t0 + 2 * MIN)];
    let records: Vec<TestRecord> = views
        .iter()
        .map(|(page, t)| {
            let v = Avro::Record(vec![
                ("page".into(), some(Avro::String(page.to_string()))),
                ("event_time".into(), some(Avro::TimestampMillis(*t))),
            ]);
            let mut bytes = Vec::new();
            writer.serialize(&v, &mut bytes).unwrap();
            TestRecord { partition: 0, key: None, value: Some(bytes), headers: vec![], timestamp: None }
        })
        .collect();
    harness::produce(&input, &records).await;

    let sql = format!(
        "CREATE TABLE views (page STRING, event_time TIMESTAMP(3),
             WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND)
         WITH ('connector' = 'kafka', 'topic' = '{input}', 'format' = 'avro-confluent');
         CREATE TABLE counts (page STRING, window_start TIMESTAMP(3), views BIGINT)
         WITH ('connector' = 'kafka', 'topic' = '{output}', 'format' = 'avro-confluent',
               'key.format' = 'json', 'key.fields' = 'page');
         INSERT INTO counts SELECT page, TUMBLE_START(event_time, INTERVAL '1' MINUTE), COUNT(*)
         FROM views GROUP BY page, TUMBLE(event_time, INTERVAL '1' MINUTE);"
    );
    let app = App::new(config).unwrap().start(rivulet::sql::topology_with_registry(&sql, &registry).unwrap()).unwrap();
    let reader = registry.avro_value(COUNT_SCHEMA).unwrap();
    let count = |page: &str, n: i64| {
        let value = Avro::Record(vec![
            ("page".into(), some(Avro::String(page.into()))),
            ("window_start".into(), some(Avro::TimestampMillis(t0))),
            ("views".into(), some(Avro::Long(n))),
        ]);
        (format!(r#"{{"page":"{page}"}}"#), value)
    };
    let want = [count("/a", 2), count("/b", 1)];
    harness::eventually("the per-page counts in Avro", TIMEOUT, || {
        let mut got: Vec<(String, Avro)> = harness::read_committed(&output)
            .iter()
            .map(|r| (r.key_str().to_string(), reader.deserialize(r.value.as_deref()).unwrap()))
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        if got == want {
            Ok(())
        } else {
            Err(format!("got {got:?}"))
        }
    });
    // The sink registered Flink's schema under <output>-value.
    let (_, text) = registry.latest(&format!("{output}-value")).unwrap();
    let parse = |s: &str| apache_avro::Schema::parse_str(s).unwrap();
    assert_eq!(parse(&text), parse(COUNT_SCHEMA));
    app.shutdown().unwrap();
}
