//! Unit tests of topologies: validation, sub-topology splitting, serde
//! carry-over, and the record path of an instantiated sub-topology (no Kafka).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientConfig;

use super::graph::{Instance, Instantiator};
use super::*;
use crate::record::{Headers, Record};
use crate::runtime::collector::{DeliveryTracker, RecordCollector, ThreadProducer};
use crate::runtime::{StoreSlot, TaskContext, TaskId};
use crate::serde::Serdes;
use crate::state::{InMemoryStore, WriteBuffer};

const APP: &str = "app";

/// A record as it reached the producer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Sent {
    topic: String,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

/// One sub-topology instantiated for partition 0, with in-memory stores
/// and a producer that has no broker: what the sinks send is queued, and
/// comes back as delivery failures once `message.timeout.ms` passes.
pub(super) struct Harness {
    pub(super) ctx: TaskContext,
    pub(super) instance: Instance,
}

impl Harness {
    pub(super) fn new(topology: &Topology, subtopology: usize) -> Harness {
        let sub = &topology.subtopologies[subtopology];
        let stores = sub
            .stores
            .iter()
            .map(|name| {
                let spec = topology.stores.iter().find(|s| &s.name == name).unwrap();
                StoreSlot {
                    name: name.clone(),
                    store: Box::new(InMemoryStore::new(name.clone())),
                    serdes: spec.serdes.clone(),
                    type_names: spec.type_names.clone(),
                    changelog: changelog_topic(name).resolve(APP),
                }
            })
            .collect();
        let source_ids: Vec<usize> = sub.sources.iter().map(|(n, _)| *n).collect();
        let instance = Instantiator::instantiate(&topology.nodes, APP, &source_ids).unwrap();
        let producer: ThreadProducer = ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("message.timeout.ms", "10")
            .set("linger.ms", "0")
            .create_with_context(DeliveryTracker::default())
            .unwrap();
        let ctx = TaskContext {
            task_id: TaskId { subtopology, partition: 0 },
            source: None,
            stream_time: i64::MIN,
            time: Default::default(),
            stores,
            buffer: WriteBuffer::new(),
            collector: RecordCollector::new(Arc::new(producer), false),
            schedules: Vec::new(),
            late_records: 0,
            key_buf: Vec::new(),
            value_buf: Vec::new(),
            shuffle: Default::default(),
        };
        Harness { ctx, instance }
    }

    /// Runs every processor's `init`, as a task does before processing.
    pub(super) fn init(&mut self) -> Result<(), ProcessError> {
        for (_, node) in &self.instance.lifecycles {
            node.borrow_mut().init(&mut self.ctx)?;
        }
        Ok(())
    }

    pub(super) fn push_raw(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
        headers: Headers,
    ) -> Result<(), ProcessError> {
        let source = self
            .instance
            .sources
            .get(topic)
            .unwrap_or_else(|| panic!("no source reads {topic}; sources: {:?}", self.instance.sources.keys()))
            .clone();
        let result = source.borrow_mut().process_raw(key, value, timestamp, headers, None, &mut self.ctx);
        result
    }

    fn push(&mut self, topic: &str, key: &str, value: &str) -> Result<(), ProcessError> {
        self.push_raw(topic, Some(key.as_bytes()), Some(value.as_bytes()), 1_000, Headers::new())
    }

    /// What the sinks sent, sorted.
    fn sent(&self) -> Vec<Sent> {
        let _ = self.ctx.collector.flush(Duration::from_secs(30));
        let mut sent: Vec<Sent> = self
            .ctx
            .collector
            .take_failures()
            .into_iter()
            .map(|f| Sent { topic: f.topic, key: f.key, value: f.value })
            .collect();
        sent.sort();
        sent
    }

    /// The value of `key` in `store` as processors read it (write buffer first).
    fn get<K: 'static, V: 'static>(&mut self, store: &str, key: &K) -> Option<V> {
        KeyValueView::<K, V>::new(&mut self.ctx, store, "test").unwrap().get(key).unwrap()
    }
}

fn sent(topic: &str, key: Option<&str>, value: Option<&str>) -> Sent {
    Sent {
        topic: topic.to_string(),
        key: key.map(|k| k.as_bytes().to_vec()),
        value: value.map(|v| v.as_bytes().to_vec()),
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The records a [`Capture`] node saw.
pub(super) type Seen<K, V> = Arc<Mutex<Vec<Record<K, V>>>>;

/// Records every record it sees and passes it on.
struct Capture<K, V>(Seen<K, V>);

impl<K: Data, V: Data> Processor<K, V, K, V> for Capture<K, V> {
    fn process(&mut self, r: Record<K, V>, ctx: &mut ProcessorContext<'_, K, V>) -> Result<(), ProcessError> {
        self.0.lock().unwrap().push(r.clone());
        ctx.forward(r)
    }
}

/// Hangs a [`Capture`] node below `s`.
pub(super) fn capture<K: Data + Send, V: Data + Send>(s: &KStream<K, V>) -> Seen<K, V> {
    let seen: Seen<K, V> = Arc::new(Mutex::new(Vec::new()));
    let c = seen.clone();
    let _: KStream<K, V> = s.process(&[], move || Capture(c.clone()));
    seen
}

fn pairs<K: Clone, V: Clone>(seen: &Seen<K, V>) -> Vec<(K, V)> {
    seen.lock().unwrap().iter().map(|r| (r.key.clone(), r.value.clone())).collect()
}

fn strings(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Passes records on unchanged.
struct PassOn;

impl<K: Data, V: Data> Processor<K, V, K, V> for PassOn {
    fn process(&mut self, r: Record<K, V>, ctx: &mut ProcessorContext<'_, K, V>) -> Result<(), ProcessError> {
        ctx.forward(r)
    }
}

/// Writes each record's value under its key into the store `store`.
struct PutInto {
    store: &'static str,
}

impl Processor<String, String, String, String> for PutInto {
    fn process(
        &mut self,
        r: Record<String, String>,
        ctx: &mut ProcessorContext<'_, String, String>,
    ) -> Result<(), ProcessError> {
        ctx.store::<String, String>(self.store)?.put(&r.key, &r.value)?;
        ctx.forward(r)
    }
}

/// Reads the store `store` as `String -> i64`.
struct ReadAsI64 {
    store: &'static str,
}

impl Processor<String, String, String, String> for ReadAsI64 {
    fn process(
        &mut self,
        r: Record<String, String>,
        ctx: &mut ProcessorContext<'_, String, String>,
    ) -> Result<(), ProcessError> {
        ctx.store::<String, i64>(self.store)?.get(&r.key)?;
        ctx.forward(r)
    }
}

/// Writes `("init", "done")` into its store from `init`.
struct MarksInit {
    store: &'static str,
}

impl Processor<String, String, String, String> for MarksInit {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<(), ProcessError> {
        ctx.store::<String, String>(self.store)?.put(&"init".to_string(), &"done".to_string())
    }

    fn process(
        &mut self,
        r: Record<String, String>,
        ctx: &mut ProcessorContext<'_, String, String>,
    ) -> Result<(), ProcessError> {
        ctx.forward(r)
    }
}

/// A serde that cannot encode anything.
struct Unencodable;

impl crate::serde::Serde<String> for Unencodable {
    fn serialize(&self, _: &String, _: &mut Vec<u8>) -> Result<crate::serde::Encoded, crate::serde::SerdeError> {
        Err(crate::serde::SerdeError::new("unencodable", "refuses every value"))
    }
    fn deserialize(&self, _: Option<&[u8]>) -> Result<String, crate::serde::SerdeError> {
        Err(crate::serde::SerdeError::new("unencodable", "refuses every value"))
    }
    fn name(&self) -> String {
        "unencodable".into()
    }
}

fn string_store(name: &str) -> StoreSpec {
    StoreSpec::key_value(name, Serdes::string(), Serdes::string())
}

/// The message of the `TopologyError::Invalid` that `build()` must return.
fn invalid(b: TopologyBuilder) -> String {
    match b.build() {
        Err(TopologyError::Invalid(m)) => m,
        Err(e) => panic!("expected an invalid-topology error, got {e:?}"),
        Ok(t) => panic!("expected an invalid-topology error, but it built:\n{}", t.describe()),
    }
}

fn internal(suffix: &str) -> TopicName {
    TopicName::Internal(suffix.to_string())
}

fn external(topic: &str) -> TopicName {
    TopicName::External(topic.to_string())
}

fn source_topics_of(t: &Topology, subtopology: usize) -> Vec<TopicName> {
    t.subtopologies[subtopology].sources.iter().map(|(_, topic)| topic.clone()).collect()
}

// ---------------------------------------------------------------------------
// 1. Validation errors
// ---------------------------------------------------------------------------

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

#[test]
fn build_rejects_a_store_used_in_two_subtopologies() {
    let mut b = Topology::builder();
    b.add_store(string_store("s"));
    let x = b.stream("x", Serdes::string(), Serdes::string());
    let y = b.stream("y", Serdes::string(), Serdes::string());
    let _: KStream<String, String> = x.process(&["s"], || PassOn);
    let _: KStream<String, String> = y.process(&["s"], || PassOn);
    let m = invalid(b);
    assert_eq!(
        m,
        "store `s` is used in sub-topologies 0 and 1; a store belongs to one sub-topology: merge() the \
         streams that use it, or use it only downstream of one repartition"
    );
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

// ---------------------------------------------------------------------------
// 2. Sub-topology splitting, source and internal topics, describe()
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// 3. Serde carry-over
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// 4. The record path, without Kafka
// ---------------------------------------------------------------------------

#[test]
fn sinks_write_keys_and_values_with_their_serdes_and_unit_as_null() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::unit(), Serdes::string());
    s.to("out", Serdes::unit(), Serdes::string());
    s.map_values(|v: String| v.len() as i64).to("lengths", Serdes::unit(), Serdes::i64());
    let t = b.build().unwrap();
    let mut h = Harness::new(&t, 0);
    h.push_raw("in", None, Some(b"abc"), 1, Headers::new()).unwrap();
    let expected = vec![
        Sent { topic: "lengths".into(), key: None, value: Some(3i64.to_be_bytes().to_vec()) },
        sent("out", None, Some("abc")),
    ];
    assert_eq!(h.sent(), expected);
}

#[test]
fn to_dynamic_writes_each_record_to_the_topic_it_names() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    s.to_dynamic(|k: &String, _| format!("out-{k}"), Serdes::string(), Serdes::string());
    let t = b.build().unwrap();
    let mut h = Harness::new(&t, 0);
    h.push("in", "a", "1").unwrap();
    h.push("in", "b", "2").unwrap();
    assert_eq!(h.sent(), vec![sent("out-a", Some("a"), Some("1")), sent("out-b", Some("b"), Some("2"))]);
}

#[test]
fn a_value_the_sink_cannot_serialize_is_a_serde_error_naming_the_topic() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    s.to("out", Serdes::string(), Unencodable);
    let t = b.build().unwrap();
    let mut h = Harness::new(&t, 0);
    let e = h.push("in", "a", "1").unwrap_err();
    assert!(matches!(&e, ProcessError::Serde { what, .. } if what == "value for topic out"), "{e:?}");
    assert!(e.is_record_error());
    assert_eq!(e.to_string(), "value for topic out: unencodable: refuses every value");
}

#[test]
fn filter_keeps_only_the_records_its_predicate_holds_for() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let seen = capture(&s.filter(|_, v: &String| v.starts_with("keep")));
    let t = b.build().unwrap();
    let mut h = Harness::new(&t, 0);
    for (k, v) in [("a", "keep1"), ("b", "drop"), ("c", "keep2")] {
        h.push("in", k, v).unwrap();
    }
    assert_eq!(pairs(&seen), strings(&[("a", "keep1"), ("c", "keep2")]));
}

#[test]
fn map_replaces_key_and_value_and_keeps_timestamp_and_headers() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let seen = capture(&s.map(|k: String, v: String| (v.len() as u64, format!("{k}:{v}"))));
    let t = b.build().unwrap();
    let mut h = Harness::new(&t, 0);
    let headers: Headers = vec![("h".into(), Some(b"v".to_vec()))];
    h.push_raw("in", Some(b"k"), Some(b"abc"), 42, headers.clone()).unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(*seen, vec![Record { key: 3u64, value: "k:abc".to_string(), timestamp: 42, headers }]);
}

#[test]
fn map_values_changes_only_the_value() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let seen = capture(&s.map_values(|v: String| v.len()));
    let t = b.build().unwrap();
    let mut h = Harness::new(&t, 0);
    h.push("in", "k", "four").unwrap();
    assert_eq!(pairs(&seen), vec![("k".to_string(), 4usize)]);
}

#[test]
fn flat_map_emits_zero_or_more_records_per_input() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let seen = capture(&s.flat_map(|k: String, v: String| {
        v.split(',').filter(|p| !p.is_empty()).map(|p| (format!("{k}{p}"), p.to_string())).collect::<Vec<_>>()
    }));
    let t = b.build().unwrap();
    let mut h = Harness::new(&t, 0);
    h.push_raw("in", Some(b"k"), Some(b"x,y"), 7, vec![("h".into(), None)]).unwrap();
    h.push("in", "e", "").unwrap();
    h.push("in", "z", "w").unwrap();
    assert_eq!(pairs(&seen), strings(&[("kx", "x"), ("ky", "y"), ("zw", "w")]));
    let seen = seen.lock().unwrap();
    assert!(
        seen[..2].iter().all(|r| r.timestamp == 7 && r.headers == vec![("h".to_string(), None)]),
        "each output keeps the input's timestamp and headers: {seen:?}"
    );
}

#[test]
fn flat_map_values_keeps_the_key_for_every_value() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let seen = capture(&s.flat_map_values(|v: String| v.split_whitespace().map(str::to_string).collect::<Vec<_>>()));
    let t = b.build().unwrap();
    let mut h = Harness::new(&t, 0);
    h.push("in", "k", "a b c").unwrap();
    h.push("in", "e", "   ").unwrap();
    assert_eq!(pairs(&seen), strings(&[("k", "a"), ("k", "b"), ("k", "c")]));
}

#[test]
fn peek_sees_each_record_and_passes_it_on_unchanged() {
    let peeked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let p = peeked.clone();
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let seen = capture(&s.peek(move |k: &String, v: &String| p.lock().unwrap().push((k.clone(), v.clone()))));
    let t = b.build().unwrap();
    let mut h = Harness::new(&t, 0);
    h.push("in", "a", "1").unwrap();
    h.push("in", "b", "2").unwrap();
    let expected = strings(&[("a", "1"), ("b", "2")]);
    assert_eq!(*peeked.lock().unwrap(), expected);
    assert_eq!(pairs(&seen), expected);
}

#[test]
fn select_key_changes_only_the_key() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let seen = capture(&s.select_key(|k: &String, v: &String| format!("{v}/{k}")));
    let t = b.build().unwrap();
    let mut h = Harness::new(&t, 0);
    h.push("in", "k", "v").unwrap();
    assert_eq!(pairs(&seen), strings(&[("v/k", "v")]));
}

#[test]
fn a_stream_feeding_several_operators_gives_each_every_record() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let first = capture(&s);
    let second = capture(&s.map_values(|v: String| v + "!"));
    s.to("out", Serdes::string(), Serdes::string());
    let t = b.build().unwrap();
    let mut h = Harness::new(&t, 0);
    h.push("in", "a", "1").unwrap();
    assert_eq!(pairs(&first), strings(&[("a", "1")]));
    assert_eq!(pairs(&second), strings(&[("a", "1!")]));
    assert_eq!(h.sent(), vec![sent("out", Some("a"), Some("1"))]);
}

#[test]
fn split_sends_each_record_to_the_first_matching_branch_only() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let branches = s
        .split()
        .branch("small", |_, v: &String| v.len() < 3)
        .branch("medium", |_, v: &String| v.len() < 6)
        .default_branch("large");
    let small = capture(&branches.get("small"));
    let medium = capture(&branches.get("medium"));
    let large = capture(&branches.get("large"));
    branches.get("medium").to("medium-out", Serdes::string(), Serdes::string());
    let t = b.build().unwrap();
    let mut h = Harness::new(&t, 0);
    for (k, v) in [("1", "ab"), ("2", "abcd"), ("3", "abcdefgh"), ("4", "")] {
        h.push("in", k, v).unwrap();
    }
    assert_eq!(pairs(&small), strings(&[("1", "ab"), ("4", "")]), "small matches medium's predicate too");
    assert_eq!(pairs(&medium), strings(&[("2", "abcd")]));
    assert_eq!(pairs(&large), strings(&[("3", "abcdefgh")]));
    assert_eq!(h.sent(), vec![sent("medium-out", Some("2"), Some("abcd"))]);
}

#[test]
fn split_without_a_default_branch_drops_records_no_branch_takes() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let input = capture(&s);
    let branches = s.split().branch("a", |_, v: &String| v.starts_with('a')).finish();
    let a = capture(&branches.get("a"));
    let t = b.build().unwrap();
    let mut h = Harness::new(&t, 0);
    h.push("in", "1", "apple").unwrap();
    h.push("in", "2", "banana").unwrap();
    assert_eq!(input.lock().unwrap().len(), 2);
    assert_eq!(pairs(&a), strings(&[("1", "apple")]));
}

#[test]
fn merge_passes_the_records_of_both_inputs() {
    let mut b = Topology::builder();
    let x = b.stream("x", Serdes::string(), Serdes::string());
    let y = b.stream("y", Serdes::string(), Serdes::string());
    let seen = capture(&x.merge(&y));
    let t = b.build().unwrap();
    assert_eq!(t.subtopologies.len(), 1);
    let mut h = Harness::new(&t, 0);
    h.push("x", "a", "from-x").unwrap();
    h.push("y", "b", "from-y").unwrap();
    h.push("x", "c", "from-x").unwrap();
    assert_eq!(pairs(&seen), strings(&[("a", "from-x"), ("b", "from-y"), ("c", "from-x")]));
}

#[test]
fn merge_of_two_filters_of_one_stream_passes_each_record_once() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::i64());
    let even = s.filter(|_, v: &i64| v % 2 == 0);
    let odd = s.filter(|_, v: &i64| v % 2 != 0);
    let seen = capture(&even.merge(&odd));
    let t = b.build().unwrap();
    let mut h = Harness::new(&t, 0);
    for n in 0..4i64 {
        h.push_raw("in", Some(b"k"), Some(&n.to_be_bytes()), 1, Headers::new()).unwrap();
    }
    let values: Vec<i64> = pairs(&seen).into_iter().map(|(_, v)| v).collect();
    assert_eq!(values, vec![0, 1, 2, 3]);
}

#[test]
fn count_updates_the_store_per_key_and_emits_each_new_count() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let updates = capture(&s.group_by_key().count("counts").to_stream());
    let t = b.build().unwrap();
    let mut h = Harness::new(&t, 0);
    for k in ["a", "b", "a", "a"] {
        h.push("in", k, "whatever").unwrap();
    }
    assert_eq!(h.get::<String, i64>("counts", &"a".to_string()), Some(3));
    assert_eq!(h.get::<String, i64>("counts", &"b".to_string()), Some(1));
    assert_eq!(h.get::<String, i64>("counts", &"c".to_string()), None);
    // Writes stay in the write buffer until commit, serialized with the store's serdes.
    assert_eq!(h.ctx.buffer.get("counts", b"a"), Some(Some(&3i64.to_be_bytes()[..])));
    assert!(h.ctx.stores[0].store.get(b"a").unwrap().is_none(), "nothing reaches the store before commit");
    let expected: Vec<(String, i64)> = vec![("a".into(), 1), ("b".into(), 1), ("a".into(), 2), ("a".into(), 3)];
    assert_eq!(pairs(&updates), expected);
}

#[test]
fn aggregate_continues_from_the_committed_store_value() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _ = s.group_by_key().count("counts");
    let t = b.build().unwrap();
    let mut h = Harness::new(&t, 0);
    h.ctx.stores[0].store.apply(&[(b"a".to_vec(), Some(5i64.to_be_bytes().to_vec()))], None).unwrap();
    h.push("in", "a", "x").unwrap();
    assert_eq!(h.get::<String, i64>("counts", &"a".to_string()), Some(6));
}

#[test]
fn aggregate_folds_values_per_key_starting_from_the_initial_value() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _ = s.group_by_key().aggregate("lengths", || 100u64, |_, v: String, a: u64| a + v.len() as u64, Serdes::u64());
    let t = b.build().unwrap();
    let mut h = Harness::new(&t, 0);
    h.push("in", "a", "xy").unwrap();
    h.push("in", "b", "x").unwrap();
    h.push("in", "a", "xyz").unwrap();
    assert_eq!(h.get::<String, u64>("lengths", &"a".to_string()), Some(105));
    assert_eq!(h.get::<String, u64>("lengths", &"b".to_string()), Some(101));
}

#[test]
fn reduce_combines_values_per_key_starting_with_the_first() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let updates = capture(&s.group_by_key().reduce("joined", |a, v| format!("{a},{v}")).to_stream());
    let t = b.build().unwrap();
    let mut h = Harness::new(&t, 0);
    h.push("in", "a", "1").unwrap();
    h.push("in", "b", "2").unwrap();
    h.push("in", "a", "3").unwrap();
    assert_eq!(h.get::<String, String>("joined", &"a".to_string()), Some("1,3".to_string()));
    assert_eq!(h.get::<String, String>("joined", &"b".to_string()), Some("2".to_string()));
    assert_eq!(pairs(&updates), strings(&[("a", "1"), ("b", "2"), ("a", "1,3")]));
}

#[test]
fn try_aggregate_error_is_rejected_naming_the_node_and_leaves_the_aggregate_unchanged() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _ = s.group_by_key().try_aggregate(
        "sum",
        || 0i64,
        |_, v: String, a: i64| v.parse::<i64>().map(|n| a + n),
        Serdes::i64(),
    );
    let t = b.build().unwrap();
    let mut h = Harness::new(&t, 0);
    h.push("in", "k", "1").unwrap();
    let e = h.push("in", "k", "x").unwrap_err();
    assert!(matches!(&e, ProcessError::Rejected { node, .. } if node == "AGGREGATE-0002"), "{e:?}");
    h.push("in", "k", "2").unwrap();
    assert_eq!(h.get::<String, i64>("sum", &"k".to_string()), Some(3));
}

#[test]
fn group_by_count_runs_across_the_repartition_topic() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _ = s.group_by(|_, v: &String| v.clone(), Serdes::string()).count("c");
    let t = b.build().unwrap();

    let mut upstream = Harness::new(&t, 0);
    for (k, v) in [("1", "x"), ("2", "x"), ("3", "y")] {
        upstream.push("in", k, v).unwrap();
    }
    let repartitioned = upstream.sent();
    assert_eq!(
        repartitioned,
        vec![
            sent("app-c-repartition", Some("x"), Some("x")),
            sent("app-c-repartition", Some("x"), Some("x")),
            sent("app-c-repartition", Some("y"), Some("y")),
        ]
    );

    let mut downstream = Harness::new(&t, 1);
    for r in &repartitioned {
        downstream.push_raw(&r.topic, r.key.as_deref(), r.value.as_deref(), 1, Headers::new()).unwrap();
    }
    assert_eq!(downstream.get::<String, i64>("c", &"x".to_string()), Some(2));
    assert_eq!(downstream.get::<String, i64>("c", &"y".to_string()), Some(1));
}

#[test]
fn count_without_value_serde_sends_keys_with_null_values_through_the_repartition_topic() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _ = s.map_values(|v: String| v.len()).group_by(|_, n: &usize| format!("len{n}"), Serdes::string()).count("c");
    let t = b.build().unwrap();

    let mut upstream = Harness::new(&t, 0);
    upstream.push("in", "a", "xy").unwrap();
    upstream.push("in", "b", "zw").unwrap();
    let repartitioned = upstream.sent();
    assert_eq!(
        repartitioned,
        vec![sent("app-c-repartition", Some("len2"), None), sent("app-c-repartition", Some("len2"), None)]
    );

    let mut downstream = Harness::new(&t, 1);
    for r in &repartitioned {
        downstream.push_raw(&r.topic, r.key.as_deref(), r.value.as_deref(), 1, Headers::new()).unwrap();
    }
    assert_eq!(downstream.get::<String, i64>("c", &"len2".to_string()), Some(2));
}

#[test]
fn table_keeps_the_latest_value_per_key_and_a_null_value_deletes_it() {
    let mut b = Topology::builder();
    let table = b.table("tbl", "t", Serdes::string(), Serdes::string());
    let changes = capture(&table.to_change_stream());
    let updates = capture(&table.to_stream());
    let t = b.build().unwrap();
    let mut h = Harness::new(&t, 0);
    h.push("tbl", "a", "1").unwrap();
    h.push("tbl", "a", "2").unwrap();
    assert_eq!(h.get::<String, String>("t", &"a".to_string()), Some("2".to_string()));
    h.push_raw("tbl", Some(b"a"), None, 1, Headers::new()).unwrap();
    assert_eq!(h.get::<String, String>("t", &"a".to_string()), None);
    assert_eq!(h.ctx.buffer.get("t", b"a"), Some(None), "the delete is buffered");
    let expected: Vec<(String, Option<String>)> =
        vec![("a".into(), Some("1".into())), ("a".into(), Some("2".into())), ("a".into(), None)];
    assert_eq!(pairs(&changes), expected);
    assert_eq!(pairs(&updates), strings(&[("a", "1"), ("a", "2")]), "to_stream leaves deletes out");
}

#[test]
fn try_map_error_is_rejected_naming_the_node() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let seen = capture(&s.try_map(|k: String, v: String| if v == "bad" { Err("no bad values") } else { Ok((k, v)) }));
    let t = b.build().unwrap();
    let mut h = Harness::new(&t, 0);
    let e = h.push("in", "a", "bad").unwrap_err();
    assert!(matches!(&e, ProcessError::Rejected { node, .. } if node == "MAP-0002"), "{e:?}");
    assert_eq!(e.to_string(), "MAP-0002 rejected the record: no bad values");
    assert!(e.is_record_error());
    h.push("in", "b", "good").unwrap();
    assert_eq!(pairs(&seen), strings(&[("b", "good")]), "the rejected record went no further");
}

#[test]
fn try_filter_error_is_rejected_naming_the_node() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _ = s.try_filter(|_, v: &String| v.parse::<i64>().map(|n| n > 0));
    let t = b.build().unwrap();
    let mut h = Harness::new(&t, 0);
    let e = h.push("in", "a", "NaN").unwrap_err();
    assert!(matches!(&e, ProcessError::Rejected { node, .. } if node == "FILTER-0002"), "{e:?}");
}

#[test]
fn an_undecodable_value_is_a_deserialize_error_naming_the_topic() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::i64());
    let seen = capture(&s);
    let t = b.build().unwrap();
    let mut h = Harness::new(&t, 0);
    let e = h.push_raw("in", Some(b"k"), Some(b"abc"), 1, Headers::new()).unwrap_err();
    assert!(matches!(&e, ProcessError::Deserialize { what, .. } if what == "value of topic in"), "{e:?}");
    assert_eq!(e.to_string(), "value of topic in: i64: expected 8 bytes (big-endian), got 3");
    assert!(e.is_record_error());
    assert!(seen.lock().unwrap().is_empty());
}

#[test]
fn an_undecodable_key_is_a_deserialize_error_naming_the_topic() {
    let mut b = Topology::builder();
    let _ = b.stream("in", Serdes::string(), Serdes::string());
    let t = b.build().unwrap();
    let mut h = Harness::new(&t, 0);
    let e = h.push_raw("in", Some(b"\xff"), Some(b"v"), 1, Headers::new()).unwrap_err();
    assert!(matches!(&e, ProcessError::Deserialize { what, .. } if what == "key of topic in"), "{e:?}");
    let e = h.push_raw("in", Some(b"k"), None, 1, Headers::new()).unwrap_err();
    assert!(matches!(&e, ProcessError::Deserialize { what, .. } if what == "value of topic in"), "{e:?}");
    assert!(e.to_string().contains("Serdes::optional"), "a null value suggests optional: {e}");
}

#[test]
fn an_undecodable_repartition_record_names_the_resolved_internal_topic() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::i64());
    let _ = s.select_key(|_, v: &i64| v.to_string()).group_by_key().count("c");
    let t = b.build().unwrap();
    let mut h = Harness::new(&t, 1);
    let e = h.push_raw("app-c-repartition", Some(b"k"), Some(b"1"), 1, Headers::new()).unwrap_err();
    assert!(
        matches!(&e, ProcessError::Deserialize { what, .. } if what == "value of topic app-c-repartition"),
        "{e:?}"
    );
}

#[test]
fn counting_a_keyless_stream_fails_per_record_because_a_store_key_cannot_be_null() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::unit(), Serdes::string());
    let _ = s.group_by_key().count("c");
    let t = b.build().unwrap();
    let mut h = Harness::new(&t, 0);
    let e = h.push_raw("in", None, Some(b"v"), 1, Headers::new()).unwrap_err();
    assert!(matches!(&e, ProcessError::Serde { what, .. } if what == "key of store `c`"), "{e:?}");
    assert!(e.to_string().contains("a store key cannot be null"), "{e}");
}

#[test]
fn a_processor_writes_and_reads_its_declared_store() {
    let mut b = Topology::builder();
    b.add_store(string_store("s").in_memory());
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let out = capture(&s.process(&["s"], || PutInto { store: "s" }));
    let t = b.build().unwrap();
    let mut h = Harness::new(&t, 0);
    h.push("in", "a", "1").unwrap();
    h.push("in", "a", "2").unwrap();
    assert_eq!(h.get::<String, String>("s", &"a".to_string()), Some("2".to_string()));
    assert_eq!(pairs(&out), strings(&[("a", "1"), ("a", "2")]));
}

#[test]
fn a_processor_using_a_store_it_did_not_declare_gets_a_topology_error() {
    let mut b = Topology::builder();
    b.add_store(string_store("s"));
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _: KStream<String, String> = s.process(&["s"], || PassOn);
    let _: KStream<String, String> = s.process(&[], || PutInto { store: "s" });
    let _: KStream<String, String> = s.process(&[], || PutInto { store: "never-declared" });
    let t = b.build().unwrap();

    let mut h = Harness::new(&t, 0);
    let e = h.push("in", "a", "1").unwrap_err();
    let ProcessError::Topology { node, reason } = &e else { panic!("expected a topology error, got {e:?}") };
    assert_eq!(node, "PROCESS-0003");
    assert_eq!(reason, "it uses store `s` but did not declare it; list it in the stores of KStream::process");
    assert!(!e.is_record_error(), "a topology error stops the application");
    assert!(h.ctx.buffer.is_empty(), "nothing was written");
}

#[test]
fn a_processor_using_a_store_declared_nowhere_gets_a_topology_error() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _: KStream<String, String> = s.process(&[], || PutInto { store: "never-declared" });
    let t = b.build().unwrap();
    let mut h = Harness::new(&t, 0);
    let e = h.push("in", "a", "1").unwrap_err();
    assert!(
        matches!(&e, ProcessError::Topology { node, reason } if node == "PROCESS-0002" && reason.contains("`never-declared`")),
        "{e:?}"
    );
}

#[test]
fn a_processor_reading_a_store_as_other_types_gets_a_topology_error() {
    let mut b = Topology::builder();
    b.add_store(string_store("s"));
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _: KStream<String, String> = s.process(&["s"], || ReadAsI64 { store: "s" });
    let t = b.build().unwrap();
    let mut h = Harness::new(&t, 0);
    let e = h.push("in", "a", "1").unwrap_err();
    assert_eq!(
        e.to_string(),
        "topology error in PROCESS-0002: store `s` holds alloc::string::String -> alloc::string::String, \
         not alloc::string::String -> i64"
    );
}

#[test]
fn processor_init_runs_with_access_to_its_stores() {
    let mut b = Topology::builder();
    b.add_store(string_store("s"));
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let _: KStream<String, String> = s.process(&["s"], || MarksInit { store: "s" });
    let t = b.build().unwrap();
    let mut h = Harness::new(&t, 0);
    h.init().unwrap();
    assert_eq!(h.get::<String, String>("s", &"init".to_string()), Some("done".to_string()));
}

#[test]
fn sinks_write_serialized_records_to_their_topics() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    s.to("out", Serdes::string(), Serdes::string());
    let t = b.build().unwrap();
    let mut h = Harness::new(&t, 0);
    h.push("in", "a", "1").unwrap();
    h.push("in", "b", "2").unwrap();
    assert_eq!(h.sent(), vec![sent("out", Some("a"), Some("1")), sent("out", Some("b"), Some("2"))]);
}

/// Schedules a stream-time callback in `init`; emits `(kind, timestamp)`
/// when it fires; raises a flag on close.
struct Ticker {
    closed: Arc<std::sync::atomic::AtomicBool>,
}

impl Processor<String, String, String, String> for Ticker {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<(), ProcessError> {
        ctx.schedule(Duration::from_millis(10), TimeKind::StreamTime);
        Ok(())
    }

    fn process(
        &mut self,
        r: Record<String, String>,
        ctx: &mut ProcessorContext<'_, String, String>,
    ) -> Result<(), ProcessError> {
        ctx.forward(r)
    }

    fn on_timer(
        &mut self,
        kind: TimeKind,
        timestamp: i64,
        ctx: &mut ProcessorContext<'_, String, String>,
    ) -> Result<(), ProcessError> {
        ctx.forward(Record::new(format!("{kind:?}"), timestamp.to_string(), timestamp))
    }

    fn close(&mut self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn a_processor_schedules_in_init_and_its_timer_callback_can_forward() {
    let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let c = closed.clone();
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let seen = capture(&s.process(&[], move || Ticker { closed: c.clone() }));
    let t = b.build().unwrap();
    let ticker = t.nodes.iter().position(|n| n.name == "PROCESS-0002").unwrap();
    let mut h = Harness::new(&t, 0);
    h.ctx.stream_time = 100;
    h.init().unwrap();
    assert_eq!(h.ctx.schedules.len(), 1);
    let schedule = &h.ctx.schedules[0];
    assert_eq!(
        (schedule.node, schedule.kind, schedule.interval_ms, schedule.next_ms),
        (ticker, TimeKind::StreamTime, 10, 110)
    );

    let hooks: Vec<_> = h.instance.lifecycles.iter().filter(|(id, _)| *id == ticker).map(|(_, l)| l.clone()).collect();
    assert_eq!(hooks.len(), 1, "one lifecycle per processor node");
    hooks[0].borrow_mut().on_timer(TimeKind::StreamTime, 110, &mut h.ctx).unwrap();
    assert_eq!(pairs(&seen), strings(&[("StreamTime", "110")]));

    for (_, l) in &h.instance.lifecycles {
        l.borrow_mut().close();
    }
    assert!(closed.load(std::sync::atomic::Ordering::SeqCst), "close reached the processor");
}
