//! Serde carry-over.

use super::*;

#[test]
fn map_values_to_the_same_type_keeps_the_value_serde_for_a_regrouping_aggregate() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _ = s.map_values(|v: String| v.to_uppercase()).group_by(|_, v: &String| v.clone(), Serdes::string()).aggregate(
        "agg",
        String::new,
        |_, v, a| a + &v,
        Serdes::string(),
    );
    let t = b.build().unwrap();
    assert_eq!(t.subtopologies.len(), 2);
    assert!(t.describe().contains("(topic <application_id>-agg-repartition; string / string)"), "{}", t.describe());
}

#[test]
fn map_values_to_a_new_type_without_with_serdes_fails_a_regrouping_aggregate() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _ = s.map_values(|v: String| v.len()).group_by(|k: &String, _| k.clone(), Serdes::string()).aggregate(
        "agg",
        || 0u64,
        |_, v: usize, a: u64| a + v as u64,
        Serdes::u64(),
    );
    let m = invalid(b);
    assert!(m.contains("aggregation `agg`") && m.contains("needs a value serde"), "{m}");
    assert!(m.contains(".with_serdes(key_serde, value_serde)"), "{m}");
}

#[test]
fn with_serdes_after_a_type_change_lets_a_regrouping_aggregate_build() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _ = s
        .map_values(|v: String| v.len())
        .with_serdes(Serdes::string(), Serdes::json::<usize>())
        .group_by(|k: &String, _| k.clone(), Serdes::string())
        .aggregate("agg", || 0u64, |_, v: usize, a: u64| a + v as u64, Serdes::u64());
    let t = b.build().unwrap();
    assert!(t.describe().contains("agg-repartition; string / json<usize>)"), "{}", t.describe());
}

#[test]
fn map_to_the_same_types_keeps_both_serdes() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _ = s.map(|k: String, v: String| (v, k)).repartition("swapped");
    let t = b.build().unwrap();
    assert!(t.describe().contains("swapped-repartition; string / string)"), "{}", t.describe());
}

#[test]
fn select_key_to_a_new_type_loses_only_the_key_serde() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _ = s.select_key(|_, v: &String| v.len() as u64).group_by_key().count("c");
    let m = invalid(b);
    assert!(m.contains("aggregation `c` needs a key serde"), "{m}");

    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _ = s
        .select_key(|_, v: &String| v.len() as u64)
        .group_by(|k: &u64, _| *k, Serdes::u64())
        .reduce("r", |a, v| a + &v);
    let t = b.build().unwrap();
    assert!(t.describe().contains("r-repartition; u64 / string)"), "the value serde carried: {}", t.describe());
}

#[test]
fn table_to_stream_keeps_the_table_serdes() {
    let mut b = Topology::builder();
    let t = b.table("tbl", "t", Serdes::string(), Serdes::string());
    let _ = t.to_stream().repartition("again");
    let t = b.build().unwrap();
    assert!(t.describe().contains("again-repartition; string / string)"), "{}", t.describe());
}

#[test]
fn table_to_change_stream_keeps_the_table_serdes() {
    let mut b = Topology::builder();
    let t = b.table("tbl", "t", Serdes::string(), Serdes::string());
    let _ = t.to_change_stream().group_by_key().count("changes");
    let result = b.build();
    assert!(result.is_ok(), "{:?}", result.err());
}

#[test]
fn process_keeping_the_types_keeps_the_serdes() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _ = s.process(&[], || PassOn).group_by_key().count("c");
    let result = b.build();
    assert!(result.is_ok(), "{:?}", result.err());
}
