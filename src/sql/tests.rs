#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use serde_json::{json, Value};

use super::expr::parse_timestamp;
use crate::prelude::*;
use crate::testing::TopologyTestDriver;
use crate::topology::{Timestamps, Windows};

const EVENTS: &str = "CREATE TABLE events (
        user_id STRING, page STRING, amount DOUBLE, ts BIGINT,
        event_time AS TO_TIMESTAMP_LTZ(ts, 3),
        WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
    ) WITH ('connector' = 'kafka', 'topic' = 'events', 'format' = 'json');";

/// Runs `sql` (after the `events` table) on `(user, page, amount, ts)`
/// views and returns the records written to topic `out`.
fn run(sql: &str, views: &[(&str, &str, f64, i64)]) -> Vec<(Option<String>, Value)> {
    let topology = super::topology(&format!("{EVENTS}\n{sql}")).unwrap();
    let mut driver = TopologyTestDriver::new(topology).unwrap();
    let input = driver.input_topic("events", Serdes::unit(), Serdes::json::<Value>());
    let output = driver.output_topic("out", Serdes::optional(Serdes::string()), Serdes::string());
    for (user, page, amount, ts) in views {
        let v = json!({"user_id": user, "page": page, "amount": amount, "ts": ts});
        driver.pipe(&input, (), v, *ts).unwrap();
    }
    driver.read_key_values(&output).unwrap().into_iter().map(|(k, v)| (k, serde_json::from_str(&v).unwrap())).collect()
}

fn error(sql: &str) -> String {
    match super::topology(&format!("{EVENTS}\n{sql}")) {
        Ok(_) => panic!("{sql} compiled"),
        Err(e) => e.to_string(),
    }
}

const MIN: i64 = 60_000;

#[test]
fn the_seed_query_counts_each_minute_as_the_hand_written_topology() {
    let views: Vec<(&str, &str, f64, i64)> = [1_000, 2_000, 59_999, 30_000, 61_000, 125_000, 70_000, 4_000, 200_000]
        .iter()
        .map(|t| ("u", "/", 1.0, *t))
        .collect();
    let sql = run(
        "CREATE TABLE out (window_start TIMESTAMP(3), window_end TIMESTAMP(3), `count` BIGINT)
             WITH ('topic' = 'out', 'format' = 'json');
         INSERT INTO out SELECT TUMBLE_START(event_time, INTERVAL '1' MINUTE), TUMBLE_END(event_time, INTERVAL '1' MINUTE), COUNT(*)
         FROM events GROUP BY TUMBLE(event_time, INTERVAL '1' MINUTE)",
        &views,
    );
    // The same with the DSL, as examples/page_views_per_minute.rs does it.
    let mut b = Topology::builder();
    let time = Timestamps::from_value(|v: &Value| v["ts"].as_i64()).out_of_orderness(Duration::from_secs(5));
    b.stream_with_time("events", Serdes::unit(), Serdes::json::<Value>(), time)
        .group_by(|_, _| "all".to_string(), Serdes::string())
        .windowed_by(Windows::tumbling(Duration::from_secs(60)))
        .emit_final()
        .count("views-per-minute")
        .map(|w, n| (w.key, json!({"window_start": w.start, "window_end": w.end, "count": n})))
        .to("out", Serdes::string(), Serdes::json::<Value>());
    let mut driver = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let input = driver.input_topic("events", Serdes::unit(), Serdes::json::<Value>());
    let output = driver.output_topic("out", Serdes::string(), Serdes::json::<Value>());
    for (_, _, _, ts) in &views {
        driver.pipe(&input, (), json!({"ts": ts}), *ts).unwrap();
    }
    let dsl: Vec<Value> = driver.read_key_values(&output).unwrap().into_iter().map(|(_, v)| v).collect();
    assert_eq!(sql.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(), dsl);
    // 30 s arrives after 59.999 s, within the 5 s delay; 70 s and 4 s
    // arrive after 125 s, when their minutes have closed: late.
    let window = |start: i64, count: i64| json!({"window_start": start, "window_end": start + MIN, "count": count});
    assert_eq!(dsl, [window(0, 4), window(MIN, 1), window(2 * MIN, 1)]);
    // The key is null (no 'key.fields'), as Flink's kafka sink writes it.
    assert!(sql.iter().all(|(k, _)| k.is_none()));
}

#[test]
fn select_where_case_and_arithmetic_write_one_object_per_row() {
    let out = run(
        "-- a sink declared without columns takes the aliases
         CREATE TABLE out WITH ('topic' = 'out', 'format' = 'json');
         INSERT INTO out
         SELECT user_id, UPPER(page) AS page, amount * 2 + 1 AS doubled, ts / 1000 AS secs,
                CASE WHEN amount >= 10 THEN 'big' WHEN amount IS NULL THEN 'none' ELSE 'small' END AS size,
                'v' || page AS tagged, event_time
         FROM events WHERE page <> '/skip' AND (amount > 1 OR user_id LIKE 'a%') AND amount BETWEEN 0 AND 100",
        &[
            ("alice", "/a", 0.5, 1_000),
            ("bob", "/b", 20.0, 2_000),
            ("bob", "/skip", 20.0, 3_000),
            ("bob", "/c", 0.5, 4_000),
        ],
    );
    let values: Vec<String> = out.iter().map(|(_, v)| v.to_string()).collect();
    assert_eq!(
        values,
        [
            r#"{"doubled":2.0,"event_time":1000,"page":"/A","secs":1,"size":"small","tagged":"v/a","user_id":"alice"}"#,
            r#"{"doubled":41.0,"event_time":2000,"page":"/B","secs":2,"size":"big","tagged":"v/b","user_id":"bob"}"#,
        ]
    );
}

#[test]
fn output_fields_keep_the_sink_column_order_and_key_fields_make_the_key() {
    let topology = super::topology(&format!(
        "{EVENTS}
         CREATE TABLE out (b STRING, a BIGINT) WITH ('topic' = 'out', 'format' = 'json', 'key.format' = 'json', 'key.fields' = 'b');
         INSERT INTO out SELECT user_id, ts FROM events"
    ))
    .unwrap();
    let mut driver = TopologyTestDriver::new(topology).unwrap();
    let input = driver.input_topic("events", Serdes::unit(), Serdes::string());
    let output = driver.output_topic("out", Serdes::optional(Serdes::string()), Serdes::string());
    driver.pipe(&input, (), r#"{"user_id":"u1","ts":7}"#.to_string(), 7).unwrap();
    assert_eq!(
        driver.read_key_values(&output).unwrap(),
        [(Some(r#"{"b":"u1"}"#.to_string()), r#"{"b":"u1","a":7}"#.to_string())]
    );
}

#[test]
fn hop_windows_group_by_keys_with_every_aggregate_and_having() {
    let out = run(
        "CREATE TABLE out WITH ('topic' = 'out', 'format' = 'json', 'key.fields' = 'page');
         INSERT INTO out
         SELECT page, HOP_START(event_time, INTERVAL '30' SECOND, INTERVAL '1' MINUTE) AS ws,
                HOP_END(event_time, INTERVAL '30' SECOND, INTERVAL '1' MINUTE) AS we,
                COUNT(*) AS n, COUNT(user_id) AS users, SUM(amount) AS total, MIN(amount) AS lo, MAX(amount) AS hi,
                AVG(amount) AS mean
         FROM events
         GROUP BY page, HOP(event_time, INTERVAL '30' SECOND, INTERVAL '1' MINUTE)
         HAVING COUNT(*) > 1",
        &[("a", "/x", 1.0, 10_000), ("b", "/x", 3.0, 40_000), ("a", "/y", 5.0, 41_000), ("c", "/x", 2.0, 200_000)],
    );
    let got: Vec<(Option<String>, Value)> = out;
    // /x: [0, 60) has 10 s and 40 s; [-30, 30) and [30, 90) one each (left
    // out by HAVING); /y has one view per window.
    assert_eq!(
        got,
        [(
            Some(r#"{"page":"/x"}"#.to_string()),
            json!({"page": "/x", "ws": 0, "we": MIN, "n": 2, "users": 2, "total": 4.0, "lo": 1.0, "hi": 3.0, "mean": 2.0})
        )]
    );
}

#[test]
fn session_windows_end_a_gap_after_their_last_row_as_flink_does() {
    let out = run(
        "CREATE TABLE out (user_id STRING, s TIMESTAMP(3), e TIMESTAMP(3), n BIGINT) WITH ('topic' = 'out', 'format' = 'json');
         INSERT INTO out SELECT user_id, SESSION_START(event_time, INTERVAL '10' SECOND),
             SESSION_END(event_time, INTERVAL '10' SECOND), COUNT(*)
         FROM events GROUP BY SESSION(event_time, INTERVAL '10' SECOND), user_id",
        &[("a", "/", 1.0, 1_000), ("a", "/", 1.0, 8_000), ("a", "/", 1.0, 30_000), ("a", "/", 1.0, 100_000)],
    );
    let values: Vec<Value> = out.into_iter().map(|(_, v)| v).collect();
    assert_eq!(
        values,
        [
            json!({"user_id": "a", "s": 1_000, "e": 18_000, "n": 2}),
            json!({"user_id": "a", "s": 30_000, "e": 40_000, "n": 1})
        ]
    );
}

#[test]
fn timestamps_read_from_sql_and_iso_strings() {
    assert_eq!(parse_timestamp("1970-01-01 00:01:00"), Some(60_000));
    assert_eq!(parse_timestamp("2024-02-29T12:00:00.5Z"), Some(1_709_208_000_500));
    assert_eq!(parse_timestamp("2024-13-01 00:00:00"), None);
    assert_eq!(parse_timestamp("99999999999999-01-01 00:00:00"), None);
    assert_eq!(parse_timestamp("1970-01-01 -1:00:00"), None);
    let topology = super::topology(
        "CREATE TABLE t (at TIMESTAMP(3), WATERMARK FOR at AS at) WITH ('topic' = 'in', 'format' = 'json');
         CREATE TABLE out (s TIMESTAMP(3), n BIGINT) WITH ('topic' = 'out', 'format' = 'json');
         INSERT INTO out SELECT TUMBLE_START(at, INTERVAL '1' MINUTE), COUNT(*) FROM t GROUP BY TUMBLE(at, INTERVAL '1' MINUTE)",
    )
    .unwrap();
    let mut driver = TopologyTestDriver::new(topology).unwrap();
    let input = driver.input_topic("in", Serdes::unit(), Serdes::string());
    let output = driver.output_topic("out", Serdes::unit(), Serdes::string());
    for at in ["1970-01-01 00:00:01", "1970-01-01T00:00:59.999", "1970-01-01 00:01:00"] {
        driver.pipe(&input, (), format!(r#"{{"at":"{at}"}}"#), 0).unwrap();
    }
    assert_eq!(driver.read_key_values(&output).unwrap(), [((), r#"{"s":0,"n":2}"#.to_string())]);
}

#[test]
fn a_value_of_the_wrong_type_is_a_processing_error() {
    let topology = super::topology(&format!(
        "{EVENTS} CREATE TABLE out WITH ('topic' = 'out', 'format' = 'json'); INSERT INTO out SELECT amount + 1 FROM events"
    ))
    .unwrap();
    let mut driver = TopologyTestDriver::new(topology).unwrap();
    let input = driver.input_topic("events", Serdes::unit(), Serdes::string());
    let err = driver.pipe(&input, (), r#"{"ts":1,"amount":"lots"}"#.to_string(), 0).unwrap_err();
    assert!(err.to_string().contains(r#"column amount of table events: expected Double, got "lots""#), "{err}");
}

#[test]
fn unsupported_sql_names_the_clause_and_the_text() {
    let sink = "CREATE TABLE out WITH ('topic' = 'out', 'format' = 'json');";
    let cases = [
        ("INSERT INTO out SELECT e.page FROM events e JOIN users u ON e.user_id = u.id", "JOIN is not supported (in FROM) at line 7, column 50", "`JOIN users u ON e.user_id = u.id`"),
        ("INSERT INTO out SELECT nope FROM events", "unknown column `nope` of table events", "`nope`"),
        ("INSERT INTO out SELECT page, COUNT(*) FROM events GROUP BY page", "GROUP BY without a TUMBLE/HOP/SESSION window is not supported", "`page`"),
        (
            "INSERT INTO out SELECT page, COUNT(*) FROM events GROUP BY TUMBLE(event_time, INTERVAL '1' MINUTE)",
            "column `page` is neither in GROUP BY nor in an aggregate (in SELECT)",
            "`page`",
        ),
        (
            "INSERT INTO out SELECT TUMBLE_START(event_time, INTERVAL '2' MINUTE) FROM events GROUP BY TUMBLE(event_time, INTERVAL '1' MINUTE)",
            "TUMBLE_START must name the window of GROUP BY: TUMBLE_START(event_time, INTERVAL '1' MINUTE)",
            "line",
        ),
        ("INSERT INTO out SELECT COUNT(*) FROM events", "an aggregate without GROUP BY", "SELECT COUNT(*) FROM events"),
        ("INSERT INTO out SELECT page FROM events ORDER BY page", "ORDER BY is not supported", "page"),
        ("INSERT INTO out SELECT page FROM events WHERE COUNT(*) > 1", "COUNT is not allowed here (in WHERE)", "`COUNT(*)`"),
        ("INSERT INTO out SELECT page FROM events WHERE page IN (SELECT page FROM events)", "a subquery is not supported (in WHERE)", "IN"),
        ("INSERT INTO nowhere SELECT page FROM events", "sink table nowhere is not declared", "declared: events, out"),
        ("SELECT page FROM events", "SELECT statements are not supported (only CREATE TABLE and INSERT INTO .. SELECT)", "line"),
        ("INSERT INTO out SELECT page FROM events WHERE", "syntax error", "Expected"),
        ("INSERT INTO out SELECT SOUNDEX(page) FROM events", "the function SOUNDEX is not supported (in SELECT)", "SOUNDEX(page)"),
    ];
    for (query, want, text) in cases {
        let e = error(&format!("{sink}\n{query}"));
        assert!(e.contains(want) && e.contains(text), "{query}:\n  {e}\n  wants `{want}` and `{text}`");
    }
    let no_time = "CREATE TABLE t (x BIGINT) WITH ('topic' = 't', 'format' = 'json');
        INSERT INTO out SELECT COUNT(*) FROM t GROUP BY TUMBLE(x, INTERVAL '1' MINUTE)";
    assert!(error(&format!("{sink}\n{no_time}")).contains("TUMBLE needs an event-time column: declare WATERMARK FOR"));
    let avro = "CREATE TABLE a (x BIGINT) WITH ('topic' = 'a', 'format' = 'avro'); INSERT INTO a SELECT ts FROM events";
    assert!(error(avro).contains("'format' = 'avro' is not supported"));
    let source_key = "CREATE TABLE k (x BIGINT) WITH ('topic' = 'k', 'format' = 'json', 'key.fields' = 'x');
        INSERT INTO out SELECT x FROM k";
    assert!(error(&format!("{sink}\n{source_key}")).contains("table k: reading columns from the record key"));
    let hop = "INSERT INTO out SELECT COUNT(*) FROM events GROUP BY HOP(event_time, INTERVAL '2' MINUTE, INTERVAL '1' MINUTE)";
    assert!(error(&format!("{sink}\n{hop}"))
        .contains("a HOP window whose slide is longer than its size is not supported (in GROUP BY)"));
    let wrong_count = "CREATE TABLE o2 (a BIGINT, b BIGINT) WITH ('topic' = 'o', 'format' = 'json'); INSERT INTO o2 SELECT ts FROM events";
    assert!(error(wrong_count).contains("the query has 1 columns, the sink 2 (a, b)"));
}

#[test]
fn two_queries_share_one_source_and_cast_truncates() {
    let sql = "CREATE TABLE out WITH ('topic' = 'out', 'format' = 'json');
         CREATE TABLE out2 (w TIMESTAMP(3), total DOUBLE) WITH ('topic' = 'out2', 'format' = 'json');
         INSERT INTO out SELECT CAST(amount AS BIGINT) AS whole, COALESCE(NULL, page) AS p FROM events WHERE page IN ('/a', '/c');
         INSERT INTO out2 SELECT TUMBLE_ROWTIME(event_time, INTERVAL '1' MINUTE), SUM(amount)
         FROM events GROUP BY TUMBLE(event_time, INTERVAL '1' MINUTE)";
    let mut driver = TopologyTestDriver::new(super::topology(&format!("{EVENTS}\n{sql}")).unwrap()).unwrap();
    let input = driver.input_topic("events", Serdes::unit(), Serdes::json::<Value>());
    let all = "CREATE TABLE o3 (a STRING, b STRING, c DOUBLE, d BIGINT, e TIMESTAMP(3)) WITH ('topic' = 'o3', 'format' = 'json');
         INSERT INTO o3 SELECT * FROM events";
    super::topology(&format!("{EVENTS}\n{all}")).unwrap();
    let (out, out2) = (
        driver.output_topic("out", Serdes::unit(), Serdes::string()),
        driver.output_topic("out2", Serdes::unit(), Serdes::string()),
    );
    for (page, amount, ts) in [("/a", 2.75, 1_000), ("/b", 1.5, 2_000), ("/c", -1.5, 90_000)] {
        driver.pipe(&input, (), json!({"page": page, "amount": amount, "ts": ts}), ts).unwrap();
    }
    let values = |r: Vec<((), String)>| r.into_iter().map(|(_, v)| v).collect::<Vec<_>>();
    assert_eq!(values(driver.read_key_values(&out).unwrap()), [r#"{"whole":2,"p":"/a"}"#, r#"{"whole":-1,"p":"/c"}"#]);
    assert_eq!(values(driver.read_key_values(&out2).unwrap()), [r#"{"w":59999,"total":4.25}"#]);
}

#[test]
fn flink_column_types_parse() {
    for ty in [
        "TIMESTAMP(3) WITH LOCAL TIME ZONE",
        "TIMESTAMP_LTZ(3)",
        "TIMESTAMP(3)",
        "TIMESTAMP",
        "VARCHAR(10)",
        "DECIMAL(10, 2)",
        "INT",
        "BOOLEAN",
        "STRING",
    ] {
        let sql = format!(
            "CREATE TABLE t (x {ty}) WITH ('topic' = 't', 'format' = 'json');
             CREATE TABLE o (x {ty}) WITH ('topic' = 'o', 'format' = 'json');
             INSERT INTO o SELECT x FROM t"
        );
        if let Err(e) = super::topology(&sql) {
            panic!("{ty}: {e}");
        }
    }
}

#[test]
fn unnamed_columns_are_expr_n_and_an_insert_column_list_names_them() {
    let out = run(
        "CREATE TABLE out WITH ('topic' = 'out', 'format' = 'json');
         INSERT INTO out SELECT page, ts + 1, LOWER(page) FROM events",
        &[("a", "/A", 1.0, 5)],
    );
    assert_eq!(out[0].1, json!({"page": "/A", "EXPR$1": 6, "EXPR$2": "/a"}));
    let out = run(
        "CREATE TABLE out (x BIGINT, y STRING, z BOOLEAN) WITH ('topic' = 'out', 'format' = 'json');
         INSERT INTO out (y, x) SELECT page, ts FROM events",
        &[("a", "/A", 1.0, 5)],
    );
    assert_eq!(out[0].1, json!({"x": 5, "y": "/A", "z": null}));
}

#[test]
fn a_group_key_expression_is_selected_as_written() {
    let out = run(
        "CREATE TABLE out WITH ('topic' = 'out', 'format' = 'json');
         INSERT INTO out SELECT UPPER(page) AS p, COUNT(*) AS n FROM events
         GROUP BY TUMBLE(event_time, INTERVAL '1' MINUTE), UPPER(page)",
        &[("a", "/a", 1.0, 1_000), ("b", "/A", 1.0, 2_000), ("c", "/b", 1.0, 3_000), ("c", "/b", 1.0, 100_000)],
    );
    let got: Vec<Value> = out.into_iter().map(|(_, v)| v).collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.contains(&json!({"p": "/A", "n": 2})) && got.contains(&json!({"p": "/B", "n": 1})), "{got:?}");
}

#[test]
fn avro_confluent_tables_take_flinks_derived_schema_and_need_a_registry() {
    use apache_avro::types::Value as Avro;
    let columns =
        vec![("page".to_string(), Some(super::expr::Ty::Str)), ("at".to_string(), Some(super::expr::Ty::Timestamp))];
    let schema: Value = serde_json::from_str(&super::avro::schema(&columns).unwrap()).unwrap();
    assert_eq!(schema["name"], "record");
    assert_eq!(schema["namespace"], "org.apache.flink.avro.generated");
    assert_eq!(
        schema["fields"][1],
        json!({"name": "at", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}], "default": null})
    );
    let record = super::avro::record(&columns, &json!({"page": "/a", "at": 5})).unwrap();
    assert_eq!(
        record,
        Avro::Record(vec![
            ("page".into(), Avro::Union(1, Box::new(Avro::String("/a".into())))),
            ("at".into(), Avro::Union(1, Box::new(Avro::TimestampMillis(5)))),
        ])
    );
    assert_eq!(super::avro::to_json(&record).unwrap(), json!({"page": "/a", "at": 5}));
    assert!(super::avro::record(&columns, &json!({"page": 1})).is_err());
    let sql = "CREATE TABLE t (x BIGINT) WITH ('topic' = 't', 'format' = 'avro-confluent', 'avro-confluent.url' = 'http://r');
         CREATE TABLE o WITH ('topic' = 'o', 'format' = 'json');
         INSERT INTO o SELECT x FROM t";
    let e = super::topology(sql).unwrap_err().to_string();
    assert!(e.contains("table t is 'avro-confluent', which needs a Schema Registry"), "{e}");
    let untyped =
        "CREATE TABLE o WITH ('topic' = 'o', 'format' = 'avro-confluent'); INSERT INTO o SELECT ts FROM events";
    assert!(error(untyped).contains("sink table o: column ts has no declared type"));
}

#[test]
fn like_matches_runs_and_single_characters() {
    let topology = |pattern: &str| {
        let sql = format!(
            "{EVENTS} CREATE TABLE out WITH ('topic' = 'out', 'format' = 'json');
             INSERT INTO out SELECT page LIKE '{pattern}' AS m FROM events"
        );
        super::topology(&sql).unwrap()
    };
    for (pattern, page, want) in [
        ("/a%", "/abc", true),
        ("%c", "/abc", true),
        ("/_b_", "/abc", true),
        ("/_b", "/abc", false),
        ("%%%%%%%%%%%%%%%%%%%%%%%%x", "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
        ("", "", true),
    ] {
        let mut driver = TopologyTestDriver::new(topology(pattern)).unwrap();
        let input = driver.input_topic("events", Serdes::unit(), Serdes::json::<Value>());
        let output = driver.output_topic("out", Serdes::unit(), Serdes::json::<Value>());
        driver.pipe(&input, (), json!({"page": page, "ts": 1}), 1).unwrap();
        assert_eq!(driver.read_key_values(&output).unwrap()[0].1, json!({"m": want}), "{page} LIKE {pattern}");
    }
}
