//! Sub-topology splitting, source and internal topics, describe().

use super::*;

#[test]
fn group_by_then_count_makes_two_subtopologies_joined_by_the_repartition_topic() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _ = s.group_by(|_, v: &String| v.clone(), Serdes::string()).count("counts");
    let t = b.build().unwrap();
    assert_eq!(t.subtopologies.len(), 2, "{}", t.describe());
    assert_eq!(source_topics_of(&t, 0), vec![external("in")]);
    assert_eq!(t.subtopologies[0].sinks, vec![internal("counts-repartition")]);
    assert!(t.subtopologies[0].stores.is_empty());
    assert_eq!(source_topics_of(&t, 1), vec![internal("counts-repartition")]);
    assert_eq!(t.subtopologies[1].stores, vec!["counts".to_string()]);
    assert_eq!(internal("counts-repartition").resolve("app"), "app-counts-repartition");
}

#[test]
fn group_by_key_on_an_unchanged_key_stays_in_one_subtopology() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _ = s
        .filter(|_, _| true)
        .peek(|_, _| {})
        .map_values(|v: String| v.to_uppercase())
        .flat_map_values(|v: String| vec![v])
        .group_by_key()
        .count("c");
    let t = b.build().unwrap();
    assert_eq!(t.subtopologies.len(), 1, "{}", t.describe());
    assert!(t.subtopologies[0].sinks.is_empty());
    assert_eq!(t.internal_topics().into_iter().collect::<Vec<_>>(), vec![internal("c-changelog")]);
    assert!(!t.describe().contains("repartition"), "{}", t.describe());
}

#[test]
fn key_changing_operators_make_group_by_key_repartition() {
    type Make = fn(&KStream<String, String>) -> KStream<String, String>;
    let cases: [(&str, Make); 4] = [
        ("map", |s| s.map(|k, v| (v, k))),
        ("select_key", |s| s.select_key(|_, v| v.clone())),
        ("flat_map", |s| s.flat_map(|k, v| vec![(v, k)])),
        ("merge of a re-keyed stream", |s| s.merge(&s.select_key(|_, v| v.clone()))),
    ];
    for (op, make) in cases {
        let mut b = Topology::builder();
        let s = b.stream("in", Serdes::string(), Serdes::string());
        let _ = make(&s).group_by_key().count("c");
        let t = b.build().unwrap();
        assert_eq!(t.subtopologies.len(), 2, "{op}: {}", t.describe());
        assert_eq!(source_topics_of(&t, 1), vec![internal("c-repartition")], "{op}");
    }
}

#[test]
fn group_by_key_after_an_explicit_repartition_does_not_repartition_again() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _ = s.select_key(|_, v| v.clone()).repartition("by-value").group_by_key().count("c");
    let t = b.build().unwrap();
    assert_eq!(t.subtopologies.len(), 2, "{}", t.describe());
    assert_eq!(source_topics_of(&t, 1), vec![internal("by-value-repartition")]);
    assert!(!t.internal_topics().contains(&internal("c-repartition")));
}

#[test]
fn count_after_group_by_with_unknown_value_serde_repartitions_keys_only() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _ = s.map_values(|v: String| v.len()).group_by(|k: &String, _| k.clone(), Serdes::string()).count("c");
    let t = b.build().unwrap();
    let d = t.describe();
    assert_eq!(t.subtopologies.len(), 2, "{d}");
    assert!(d.contains("Processor DROP_VALUES-"), "{d}");
    assert!(d.contains("(topic <application_id>-c-repartition; string / unit)"), "sink writes keys only: {d}");
    assert!(d.contains("c (rocksdb, changelog <application_id>-c-changelog)"), "{d}");
    assert!(d.contains("    <application_id>-c-changelog\n"), "{d}");
    assert!(d.contains("    <application_id>-c-repartition\n"), "{d}");
}

#[test]
fn source_topics_lists_user_topics_sorted_without_internal_ones() {
    let mut b = Topology::builder();
    let s = b.stream("b-topic", Serdes::string(), Serdes::string());
    let _ = b.table("a-topic", "t", Serdes::string(), Serdes::string());
    let _ = b.stream("c-topic", Serdes::string(), Serdes::string());
    let _ = s.group_by(|_, v: &String| v.clone(), Serdes::string()).count("c");
    let t = b.build().unwrap();
    assert_eq!(t.source_topics(), vec!["a-topic", "b-topic", "c-topic"]);
}

#[test]
fn internal_topics_hold_changelogs_and_repartition_topics() {
    let mut b = Topology::builder();
    b.add_store(string_store("s"));
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _ = b.table("tbl", "t", Serdes::string(), Serdes::string());
    let _: KStream<String, String> = s.process(&["s"], || PassOn);
    let _ = s.group_by(|_, v: &String| v.clone(), Serdes::string()).count("c");
    let t = b.build().unwrap();
    let topics: Vec<TopicName> = t.internal_topics().into_iter().collect();
    assert_eq!(
        topics,
        vec![internal("c-changelog"), internal("c-repartition"), internal("s-changelog"), internal("t-changelog")]
    );
    let resolved: Vec<String> = topics.iter().map(|t| t.resolve("app")).collect();
    assert_eq!(resolved, vec!["app-c-changelog", "app-c-repartition", "app-s-changelog", "app-t-changelog"]);
}

#[test]
fn describe_lists_subtopologies_sources_processors_sinks_stores_and_internal_topics() {
    let mut b = Topology::builder();
    b.add_store(string_store("s").in_memory());
    let s = b.stream("in", Serdes::string(), Serdes::string()); // SOURCE-0001
    let f = s.filter(|_, _| true); // FILTER-0002
    let p: KStream<String, String> = f.process(&["s"], || PassOn); // PROCESS-0003
    p.to("out", Serdes::string(), Serdes::string()); // SINK-0004
    f.group_by(|_, v: &String| v.clone(), Serdes::string()) // SELECT_KEY-0005
        .count("c") // SINK-0006, SOURCE-0007, AGGREGATE-0008
        .to_stream() // TO_STREAM-0009
        .to_dynamic(|k: &String, _| k.clone(), Serdes::string(), Serdes::i64()); // SINK-0010
    let t = b.build().unwrap();
    let d = t.describe();
    let expected = [
        "Topology\n",
        "  Sub-topology 0\n",
        "    Source SOURCE-0001 (topic in; string / string)\n      --> FILTER-0002\n",
        "    Processor FILTER-0002\n      --> PROCESS-0003, SELECT_KEY-0005\n",
        "    Processor PROCESS-0003 (stores: s)\n      --> SINK-0004\n",
        "    Sink SINK-0004 (topic out; string / string)\n",
        "    Processor SELECT_KEY-0005\n      --> SINK-0006\n",
        "    Sink SINK-0006 (topic <application_id>-c-repartition; string / string)\n",
        "  Sub-topology 1\n",
        "    Source SOURCE-0007 (topic <application_id>-c-repartition; string / string)\n      --> AGGREGATE-0008\n",
        "    Processor AGGREGATE-0008 (stores: c)\n      --> TO_STREAM-0009\n",
        "    Sink SINK-0010 (topic chosen per record; string / i64)\n",
        "  Stores\n",
        "    s (in-memory, changelog <application_id>-s-changelog)\n",
        "    c (rocksdb, changelog <application_id>-c-changelog)\n",
        "  Internal topics\n",
        "    <application_id>-c-changelog\n",
        "    <application_id>-c-repartition\n",
        "    <application_id>-s-changelog\n",
    ];
    let mut from = 0;
    for part in expected {
        let Some(at) = d[from..].find(part) else {
            panic!("describe() lacks {part:?} (in this order) in:\n{d}");
        };
        from += at + part.len();
    }
    assert_eq!(format!("{t:?}"), d, "Debug shows the description");
}
