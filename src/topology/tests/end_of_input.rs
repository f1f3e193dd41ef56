//! The end of a bounded run's input (`TopologyTestDriver::end_input`, the
//! same `Task::end_input` as `App::run_to_end`): windows, sessions and
//! join windows close as if the watermark reached infinity, after the
//! repartition topics' last records; with `close_windows_at_end = false`
//! nothing closes early.

use super::*;
use crate::topology::{JoinWindows, Windows};

/// Counts per key (regrouped by value: a repartition) per `windows`, with
/// `emit_final`, as `<key>@<start>-<end>` -> count.
fn counts(windows: Windows) -> Topology {
    let mut b = Topology::builder();
    b.stream("in", Serdes::string(), Serdes::string())
        .group_by(|_, v: &String| v.clone(), Serdes::string())
        .windowed_by(windows)
        .emit_final()
        .count("counts")
        .map(|w, n| (format!("{}@{}-{}", w.key, w.start, w.end), n))
        .to("out", Serdes::string(), Serdes::i64());
    b.build().unwrap()
}

/// The windows emitted before and at the end of input.
type Emitted = (Vec<(String, i64)>, Vec<(String, i64)>);

fn run(topology: Topology, close_windows: bool, records: &[(&str, i64)]) -> Emitted {
    let config = Config::loader()
        .env([("RIVULET__BOUNDED__CLOSE_WINDOWS_AT_END", close_windows.to_string())])
        .default_value("application_id", APP)
        .load()
        .unwrap();
    let mut driver = TopologyTestDriver::with_config(topology, config).unwrap();
    let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    let output = driver.output_topic("out", Serdes::string(), Serdes::i64());
    for (i, (value, t)) in records.iter().enumerate() {
        driver.pipe(&input, format!("k{i}"), value.to_string(), *t).unwrap();
    }
    let before = driver.read_key_values(&output).unwrap();
    driver.end_input().unwrap();
    (before, driver.read_key_values(&output).unwrap())
}

#[test]
fn tumbling_windows_behind_a_repartition_close_at_the_end() {
    let records = [("a", 1_000), ("b", 2_000), ("a", 11_000), ("a", 12_000)];
    let (before, after) = run(counts(Windows::tumbling(Duration::from_secs(10))), true, &records);
    assert_eq!(before, [("a@0-10000".to_string(), 1), ("b@0-10000".to_string(), 1)]);
    assert_eq!(after, [("a@10000-20000".to_string(), 2)]);
}

#[test]
fn sessions_close_at_the_end() {
    let records = [("a", 1_000), ("a", 2_000), ("b", 3_000)];
    let (before, after) = run(counts(Windows::session(Duration::from_secs(5))), true, &records);
    assert_eq!(before, []);
    assert_eq!(after, [("a@1000-2000".to_string(), 2), ("b@3000-3000".to_string(), 1)]);
}

#[test]
fn without_close_windows_at_end_the_open_windows_stay_open() {
    let records = [("a", 1_000), ("a", 11_000)];
    let (before, after) = run(counts(Windows::tumbling(Duration::from_secs(10))), false, &records);
    assert_eq!(before, [("a@0-10000".to_string(), 1)]);
    assert_eq!(after, []);
}

#[test]
fn an_unmatched_left_join_record_is_emitted_at_the_end() {
    let mut b = Topology::builder();
    let clicks = b.stream("clicks", Serdes::string(), Serdes::string());
    let views = b.stream("views", Serdes::string(), Serdes::string());
    let ten_minutes = JoinWindows::of(Duration::from_secs(600), Duration::ZERO);
    clicks
        .left_join_stream(&views, "attribution", ten_minutes, |_, click, view| {
            format!("{click} <- {}", view.map_or("nothing", String::as_str))
        })
        .to("attributed", Serdes::string(), Serdes::string());
    let mut driver = driver(b.build().unwrap());
    let clicks = driver.input_topic("clicks", Serdes::string(), Serdes::string());
    let views = driver.input_topic("views", Serdes::string(), Serdes::string());
    let out = driver.output_topic("attributed", Serdes::string(), Serdes::string());
    driver.pipe(&views, "u1".into(), "home".into(), 1_000).unwrap();
    driver.pipe(&clicks, "u1".into(), "buy".into(), 2_000).unwrap();
    driver.pipe(&clicks, "u2".into(), "buy".into(), 3_000).unwrap();
    assert_eq!(driver.read_key_values(&out).unwrap(), [("u1".to_string(), "buy <- home".to_string())]);
    driver.end_input().unwrap();
    assert_eq!(driver.read_key_values(&out).unwrap(), [("u2".to_string(), "buy <- nothing".to_string())]);
}

#[test]
fn after_the_end_the_watermark_told_downstream_is_the_datas() {
    let mut t = crate::processor::time::TaskTime::default();
    t.restore(5_000);
    assert!(t.end_of_input());
    assert_eq!((t.watermark(), t.reported()), (i64::MAX, 5_000));
    assert!(!t.end_of_input());
    // Restored at the end (a later run): nothing to tell.
    let mut later = crate::processor::time::TaskTime::default();
    later.restore(i64::MAX);
    assert_eq!(later.reported(), i64::MIN);
    t.reset(0);
    assert_eq!((t.watermark(), t.reported()), (i64::MIN, i64::MIN));
}

#[test]
fn a_foreign_key_join_has_no_end_of_input() {
    let mut b = Topology::builder();
    let orders = b.table("orders", "orders", Serdes::string(), Serdes::string());
    let customers = b.table("customers", "customers", Serdes::string(), Serdes::string());
    orders
        .join_foreign_key(
            &customers,
            "orders-customers",
            |o: &String| o.clone(),
            |_, o, c| format!("{o}{c}"),
            Serdes::string(),
        )
        .to_stream()
        .to("out", Serdes::string(), Serdes::string());
    let topology = b.build().unwrap();
    assert!(crate::runtime::task_manager::bounded::in_cycle(&topology, APP).is_some());
    let err = driver(topology).end_input().unwrap_err().to_string();
    assert!(err.contains("reads what it writes"), "{err}");
    assert_eq!(
        crate::runtime::task_manager::bounded::in_cycle(&counts(Windows::session(Duration::from_secs(1))), APP),
        None
    );
}
