//! Validation errors.

use super::*;

#[test]
fn build_rejects_a_topology_that_reads_no_topic() {
    let m = invalid(Topology::builder());
    assert_eq!(m, "the topology reads no topic; start it with builder.stream(..) or builder.table(..)");

    let mut b = Topology::builder();
    b.add_store(string_store("s"));
    let m = invalid(b);
    assert!(m.contains("reads no topic"), "{m}");
}

#[test]
fn build_error_display_says_the_topology_is_invalid() {
    let e = Topology::builder().build().unwrap_err();
    assert!(e.to_string().starts_with("invalid topology: the topology reads no topic"), "{e}");
}

#[test]
fn build_rejects_a_topic_read_by_two_streams() {
    let mut b = Topology::builder();
    b.stream("in", Serdes::string(), Serdes::string()).to("out", Serdes::string(), Serdes::string());
    b.stream("in", Serdes::string(), Serdes::i64()).to("out2", Serdes::string(), Serdes::i64());
    let m = invalid(b);
    assert!(m.contains("topic in is read by two sources"), "{m}");
    assert!(m.contains("SOURCE-0001") && m.contains("SOURCE-0003"), "names both sources: {m}");
    assert!(m.contains("read it once and reuse the stream"), "{m}");
}

#[test]
fn build_rejects_a_topic_read_by_a_stream_and_a_table() {
    let mut b = Topology::builder();
    let _ = b.stream("in", Serdes::string(), Serdes::string());
    let _ = b.table("in", "t", Serdes::string(), Serdes::string());
    let m = invalid(b);
    assert!(m.contains("topic in is read by two sources"), "{m}");
}

#[test]
fn build_rejects_a_processor_using_an_undeclared_store_and_says_how_to_declare_it() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _: KStream<String, String> = s.process(&["missing"], || PassOn);
    let m = invalid(b);
    assert_eq!(
        m,
        "PROCESS-0002 uses store `missing`, which is never declared; declare it with \
         builder.add_store(StoreSpec::key_value(\"missing\", key_serde, value_serde))"
    );
}

#[test]
fn build_accepts_a_processor_whose_store_is_declared() {
    let mut b = Topology::builder();
    b.add_store(string_store("s"));
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _: KStream<String, String> = s.process(&["s"], || PassOn);
    let t = b.build().unwrap();
    assert_eq!(t.subtopologies[0].stores, vec!["s".to_string()]);
}

#[test]
fn build_rejects_a_store_declared_twice() {
    let mut b = Topology::builder();
    b.add_store(string_store("s")).add_store(StoreSpec::key_value("s", Serdes::string(), Serdes::i64()));
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _: KStream<String, String> = s.process(&["s"], || PassOn);
    let m = invalid(b);
    assert_eq!(m, "store `s` is declared twice; store names must be unique in a topology");
}

#[test]
fn build_rejects_two_aggregations_with_one_store_name() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _ = s.group_by_key().count("c");
    let _ = s.group_by_key().reduce("c", |a, v| a + &v);
    let m = invalid(b);
    assert!(m.contains("store `c` is declared twice"), "{m}");
}

#[test]
fn build_rejects_a_store_declared_with_the_name_of_a_table() {
    let mut b = Topology::builder();
    let _ = b.table("t-topic", "t", Serdes::string(), Serdes::string());
    b.add_store(string_store("t"));
    let m = invalid(b);
    assert!(m.contains("store `t` is declared twice"), "{m}");
}

/// Kafka Streams puts processors that share a store in one sub-topology
/// (`InternalTopologyBuilder#makeNodeGroups`), so their topics must be
/// co-partitioned; joins rely on it.
#[test]
fn processors_of_two_streams_that_share_a_store_are_one_subtopology() {
    let mut b = Topology::builder();
    b.add_store(string_store("s"));
    let x = b.stream("x", Serdes::string(), Serdes::string());
    let y = b.stream("y", Serdes::string(), Serdes::string());
    let _: KStream<String, String> = x.process(&["s"], || PassOn);
    let _: KStream<String, String> = y.process(&["s"], || PassOn);
    let t = b.build().unwrap();
    assert_eq!(t.subtopologies.len(), 1, "{}", t.describe());
    let topics: Vec<String> = t.subtopologies[0].sources.iter().map(|(_, t)| t.to_string()).collect();
    assert_eq!(topics, ["x", "y"]);
}

#[test]
fn build_accepts_a_store_shared_by_two_processors_of_one_subtopology() {
    let mut b = Topology::builder();
    b.add_store(string_store("s"));
    let x = b.stream("x", Serdes::string(), Serdes::string());
    let y = b.stream("y", Serdes::string(), Serdes::string());
    let _: KStream<String, String> = x.process(&["s"], || PassOn);
    let _: KStream<String, String> = x.merge(&y).process(&["s"], || PassOn);
    let t = b.build().unwrap();
    assert_eq!(t.subtopologies.len(), 1, "merge joins both sources: {}", t.describe());
    assert_eq!(t.subtopologies[0].stores, vec!["s".to_string()], "listed once");
}

#[test]
fn repartition_of_a_stream_with_unknown_serdes_asks_for_with_serdes() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _ = s.map(|k: String, v: String| (k.len() as u64, v)).repartition("x");
    let m = invalid(b);
    assert_eq!(
        m,
        "repartition `x` needs the serdes of the stream's keys and values; \
         call .with_serdes(key_serde, value_serde) before it"
    );
}

#[test]
fn repartition_after_with_serdes_builds_through_the_internal_topic() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    s.map(|k: String, v: String| (k.len() as u64, v)).with_serdes(Serdes::u64(), Serdes::string()).repartition("x").to(
        "out",
        Serdes::u64(),
        Serdes::string(),
    );
    let t = b.build().unwrap();
    assert_eq!(t.subtopologies.len(), 2);
    assert_eq!(t.subtopologies[0].sinks, vec![internal("x-repartition")]);
    assert_eq!(source_topics_of(&t, 1), vec![internal("x-repartition")]);
    assert!(t.describe().contains("(topic <application_id>-x-repartition; u64 / string)"), "{}", t.describe());
}

#[test]
fn two_repartitions_with_one_name_are_rejected() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _ = s.repartition("x");
    let _ = s.filter(|_, _| true).repartition("x");
    let m = invalid(b);
    assert_eq!(
        m,
        "repartition topic <application_id>-x-repartition is made twice; each repartition() and each \
         aggregation that regroups by a new key needs its own name"
    );
}

#[test]
fn aggregate_after_a_key_change_without_value_serde_asks_for_with_serdes() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _ = s.map(|k: String, v: String| (k, v.len() as u64)).group_by_key().aggregate(
        "agg",
        || 0u64,
        |_, v, a| a + v,
        Serdes::u64(),
    );
    let m = invalid(b);
    assert_eq!(
        m,
        "aggregation `agg` regroups records by a new key, so they are written to a repartition topic, \
         which needs a value serde; call .with_serdes(key_serde, value_serde) before grouping"
    );
}

#[test]
fn aggregate_after_a_key_type_change_without_key_serde_asks_for_one() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _ = s.map(|k: String, v: String| (k.len() as u64, v)).group_by_key().count("c");
    let m = invalid(b);
    assert_eq!(
        m,
        "aggregation `c` needs a key serde; pass one to group_by or call .with_serdes(..) before group_by_key"
    );
}

#[test]
fn reduce_of_values_of_unknown_serde_asks_for_with_serdes() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _ = s.map_values(|v: String| v.len() as u64).group_by_key().reduce("r", |a, v| a + v);
    let m = invalid(b);
    assert_eq!(m, "reduce `r` needs the value serde; call .with_serdes(..) before grouping");
}

#[test]
fn split_rejects_two_branches_with_one_name() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _ = s.split().branch("a", |_, _| true).branch("b", |_, _| true).default_branch("a");
    let m = invalid(b);
    assert_eq!(m, r#"split has more than one branch named ["a"]; give each branch its own name"#);
}

#[test]
fn branches_get_of_an_undeclared_branch_fails_build_naming_the_branches() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let branches = s.split().branch("a", |_, _| true).default_branch("b");
    branches.get("c").to("out", Serdes::string(), Serdes::string());
    let m = invalid(b);
    assert_eq!(m, r#"split has no branch `c`; its branches are ["a", "b"]"#);
}

#[test]
fn branches_get_on_a_split_without_branches_is_a_build_error() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let branches = s.split().finish();
    let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = branches.get("a");
    }));
    assert!(got.is_ok(), "Branches::get panicked on a split with no branches");
    let m = invalid(b);
    assert!(m.starts_with("split has no branch"), "{m}");
}

#[test]
fn build_reports_the_first_recorded_error() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _ = s.map(|k: String, v: String| (k.len() as u64, v)).repartition("first");
    b.add_store(string_store("s")).add_store(string_store("s"));
    let m = invalid(b);
    assert!(m.starts_with("repartition `first`"), "{m}");
}

#[test]
fn build_rejects_store_and_repartition_names_that_cannot_name_topics() {
    for name in ["my store", "", "../escape", "a/b"] {
        let mut b = Topology::builder();
        let s = b.stream("in", Serdes::string(), Serdes::string());
        let _ = s.group_by_key().count(name);
        assert!(b.build().is_err(), "store name {name:?} was accepted");

        let mut b = Topology::builder();
        let s = b.stream("in", Serdes::string(), Serdes::string());
        s.repartition(name).to("out", Serdes::string(), Serdes::string());
        assert!(b.build().is_err(), "repartition name {name:?} was accepted");
    }
}

#[test]
fn topology_is_send_and_sync_so_processing_threads_can_share_it() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Topology>();
    shareable::<StoreSpec>();
}
