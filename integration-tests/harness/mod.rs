//! Shared harness for tests on a real Kafka broker.
//!
//! [`bootstrap`] makes sure a broker answers, starting one with
//! `integration-tests/kafka/broker.sh start` when nothing does. Every test
//! takes its own random topic names, group id and transactional id from
//! [`unique`], so tests run in parallel and re-run without cleanup.
//!
//! Environment: `RIVULET_TEST_BOOTSTRAP` points the tests at another
//! cluster; otherwise they use `127.0.0.1:$RIVULET_KAFKA_PORT` (default 9092).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod child;
pub mod http;
/// The window oracle of the unit tests, and its pseudo-random input.
#[path = "../../src/topology/window_tests/oracle.rs"]
pub mod oracle;
/// The test Schema Registry and Confluent's Python serializers.
pub mod registry;
pub mod secure;

use std::collections::{BTreeMap, HashSet};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rand::Rng;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Message, Offset, Timestamp, TopicPartitionList};

/// The bootstrap servers of a broker that answers, started if need be.
pub fn bootstrap() -> &'static str {
    static BOOTSTRAP: OnceLock<String> = OnceLock::new();
    BOOTSTRAP.get_or_init(|| {
        let servers = std::env::var("RIVULET_TEST_BOOTSTRAP").unwrap_or_else(|_| {
            format!("127.0.0.1:{}", std::env::var("RIVULET_KAFKA_PORT").unwrap_or_else(|_| "9092".into()))
        });
        if answers(&servers, Duration::from_secs(3)) {
            return servers;
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/integration-tests/kafka/broker.sh");
        eprintln!("no Kafka broker answers on {servers}; starting one with {script}");
        let status = Command::new("bash").arg(script).arg("start").status().expect("run broker.sh");
        assert!(status.success(), "{script} start failed; see its output above");
        assert!(
            answers(&servers, Duration::from_secs(30)),
            "the broker started by {script} does not answer on {servers}"
        );
        servers
    })
}

fn answers(servers: &str, timeout: Duration) -> bool {
    let consumer: BaseConsumer =
        match ClientConfig::new().set("bootstrap.servers", servers).set("log_level", "0").create() {
            Ok(c) => c,
            Err(_) => return false,
        };
    consumer.fetch_metadata(None, timeout).map(|m| !m.brokers().is_empty()).unwrap_or(false)
}

/// A name no other test (or earlier run) uses: `<prefix>-<12 random hex>`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:012x}", rand::rng().random::<u64>() & 0xffff_ffff_ffff)
}

/// A client config for the test broker.
pub fn client_config() -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap());
    c
}

/// Creates a topic and waits until the broker reports it.
pub async fn create_topic(name: &str, partitions: i32, config: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = client_config().create().unwrap();
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in config {
        topic = topic.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in admin.create_topics([&topic], &opts).await.unwrap() {
        if let Err((t, code)) = result {
            assert_eq!(code, RDKafkaErrorCode::TopicAlreadyExists, "creating topic {t} failed: {code}");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let md = admin.inner().fetch_metadata(Some(name), Duration::from_secs(5)).unwrap();
        let ready = md.topics().first().is_some_and(|t| {
            t.error().is_none()
                && t.partitions().len() == partitions as usize
                && t.partitions().iter().all(|p| p.leader() >= 0)
        });
        if ready {
            return;
        }
        assert!(Instant::now() < deadline, "topic {name} did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A random topic name, created with `partitions` partitions.
pub async fn new_topic(prefix: &str, partitions: i32) -> String {
    let name = unique(prefix);
    create_topic(&name, partitions, &[]).await;
    name
}

/// Sets a group config on the broker (KIP-848 groups take their session
/// timeout and heartbeat interval from it: `consumer.session.timeout.ms`).
pub async fn set_group_config(group: &str, key: &str, value: &str) {
    use rdkafka::admin::{AlterConfig, ResourceSpecifier};
    let admin: AdminClient<DefaultClientContext> = client_config().create().unwrap();
    let config = AlterConfig::new(ResourceSpecifier::Group(group)).set(key, value);
    let results = admin.alter_configs([&config], &AdminOptions::new()).await.unwrap();
    for result in results {
        result.unwrap_or_else(|e| panic!("setting {key} = {value} on group {group}: {e:?}"));
    }
}

/// A random topic name, created with `partitions` partitions and no
/// retention by time: for records with timestamps from the past (a
/// replayed history), which a time retention (the broker's default: 7
/// days) deletes at the broker's next retention check, before the test
/// reads them. Output topics of such records carry the old timestamps too.
pub async fn new_history_topic(prefix: &str, partitions: i32) -> String {
    let name = unique(prefix);
    create_topic(&name, partitions, &[("retention.ms", "-1")]).await;
    name
}

/// The low and high watermarks of every partition of `topic`.
pub fn watermarks(topic: &str) -> Vec<(i64, i64)> {
    let consumer: BaseConsumer = client_config().create().unwrap();
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
    let partitions = md.topics()[0].partitions().len() as i32;
    (0..partitions).map(|p| consumer.fetch_watermarks(topic, p, Duration::from_secs(10)).unwrap()).collect()
}

/// The offsets consumer group `group` committed for each partition of
/// `topic` (`None` where it committed none).
pub fn committed_offsets(group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
    let consumer: BaseConsumer = client_config().set("group.id", group).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    (0..partitions)
        .map(|p| match committed.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => Some(o),
            _ => None,
        })
        .collect()
}

/// An idempotent producer for the test broker.
pub fn producer() -> FutureProducer {
    client_config().set("enable.idempotence", "true").set("linger.ms", "5").create().unwrap()
}

/// A record as a test writes it or reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRecord {
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: Option<i64>,
}

impl TestRecord {
    /// A record with a text key and value, to partition 0.
    pub fn kv(key: &str, value: &str) -> Self {
        TestRecord {
            partition: 0,
            key: Some(key.as_bytes().to_vec()),
            value: Some(value.as_bytes().to_vec()),
            headers: Vec::new(),
            timestamp: None,
        }
    }

    pub fn key_str(&self) -> &str {
        std::str::from_utf8(self.key.as_deref().unwrap_or_default()).unwrap()
    }

    pub fn value_str(&self) -> &str {
        std::str::from_utf8(self.value.as_deref().unwrap_or_default()).unwrap()
    }

    fn from_message(m: &BorrowedMessage<'_>) -> Self {
        let headers = m
            .headers()
            .map(|hs| hs.iter().map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec))).collect())
            .unwrap_or_default();
        let timestamp = match m.timestamp() {
            Timestamp::NotAvailable => None,
            Timestamp::CreateTime(t) | Timestamp::LogAppendTime(t) => Some(t),
        };
        TestRecord {
            partition: m.partition(),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers,
            timestamp,
        }
    }

    /// The record for `FutureProducer::send`.
    pub fn to_future_record<'a>(&'a self, topic: &'a str) -> FutureRecord<'a, [u8], [u8]> {
        let mut r = FutureRecord::to(topic).partition(self.partition);
        if let Some(k) = &self.key {
            r = r.key(k.as_slice());
        }
        if let Some(v) = &self.value {
            r = r.payload(v.as_slice());
        }
        if let Some(t) = self.timestamp {
            r = r.timestamp(t);
        }
        if !self.headers.is_empty() {
            let mut hs = OwnedHeaders::new();
            for (k, v) in &self.headers {
                hs = hs.insert(Header { key: k, value: v.as_deref() });
            }
            r = r.headers(hs);
        }
        r
    }
}

/// Writes records and waits until each is acknowledged.
pub async fn produce(topic: &str, records: &[TestRecord]) {
    let producer = producer();
    for r in records {
        producer.send(r.to_future_record(topic), Duration::from_secs(30)).await.map_err(|(e, _)| e).unwrap();
    }
}

/// Which records a reader sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Only committed transactional records (and non-transactional ones).
    ReadCommitted,
    /// Everything written, aborted transactions included.
    ReadUncommitted,
}

/// Reads every partition of `topic` from the beginning to its end offsets,
/// `read_committed`, and returns the records in partition, offset order.
pub fn read_committed(topic: &str) -> Vec<TestRecord> {
    read_to_end(topic, Isolation::ReadCommitted)
}

/// Reads every partition of `topic` from the beginning to its end offsets
/// (the last stable offset under read_committed).
pub fn read_to_end(topic: &str, isolation: Isolation) -> Vec<TestRecord> {
    let consumer: BaseConsumer = client_config()
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set(
            "isolation.level",
            match isolation {
                Isolation::ReadCommitted => "read_committed",
                Isolation::ReadUncommitted => "read_uncommitted",
            },
        )
        .create()
        .unwrap();
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
    let partitions: Vec<i32> = md.topics()[0].partitions().iter().map(|p| p.id()).collect();
    assert!(!partitions.is_empty(), "topic {topic} does not exist");
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut at_end: HashSet<i32> = HashSet::new();
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while at_end.len() < partitions.len() {
        assert!(
            Instant::now() < deadline,
            "reading {topic} to its end took over 60s; {} records so far",
            records.len()
        );
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                records.push(TestRecord::from_message(&m));
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
        }
    }
    records.sort_by_key(|r| r.partition);
    records
}

/// The partition of `partitions` that Kafka's default partitioner (murmur2,
/// as the Java client and rivulet's own sinks) gives `key`: test data of
/// joined topics goes where rivulet's sinks would put records of the same
/// key.
pub fn partition_of(key: &str, partitions: i32) -> i32 {
    rivulet::query::partition_for_key(key.as_bytes(), partitions)
}

/// Writes many records, waiting for all acknowledgements at the end.
pub async fn produce_many(topic: &str, records: &[TestRecord]) {
    let producer = producer();
    let mut pending = Vec::with_capacity(records.len());
    for r in records {
        loop {
            match producer.send_result(r.to_future_record(topic)) {
                Ok(f) => {
                    pending.push(f);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((e, _)) => panic!("producing to {topic}: {e}"),
            }
        }
    }
    for f in pending {
        f.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
}

/// The latest value per key of a topic (read_committed), as text.
pub fn latest_by_key(topic: &str) -> std::collections::BTreeMap<String, String> {
    read_committed(topic).iter().map(|r| (r.key_str().to_string(), r.value_str().to_string())).collect()
}

/// A rivulet config for the test broker: its own application id, state
/// dir and a short commit interval; `extra` are more `RIVULET__*` variables.
/// The instance id follows from the state dir, as a pod's name goes with
/// its volume: a restart on the same state dir is the same instance (and
/// finds its stores under `<state_dir>/<application_id>/<instance_id>`),
/// another state dir another instance.
pub fn app_config(application_id: &str, state_dir: &std::path::Path, extra: &[(&str, &str)]) -> rivulet::Config {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    state_dir.hash(&mut hasher);
    let mut env = vec![
        ("RIVULET__APPLICATION_ID".to_string(), application_id.to_string()),
        ("RIVULET__INSTANCE_ID".to_string(), format!("instance-{:016x}", hasher.finish())),
        ("RIVULET__KAFKA__BOOTSTRAP_SERVERS".to_string(), bootstrap().to_string()),
        ("RIVULET__STATE_DIR".to_string(), state_dir.display().to_string()),
        ("RIVULET__COMMIT_INTERVAL_MS".to_string(), "200".to_string()),
        // Any free port: tests run many applications at once.
        ("RIVULET__HTTP__LISTEN".to_string(), "127.0.0.1:0".to_string()),
        // Session timeout (6 s) and heartbeat interval (500 ms) are the test
        // broker's group.consumer.* settings (KIP-848: the broker owns them).
    ];
    for (k, v) in extra {
        env.retain(|(ek, _)| ek != k);
        env.push((k.to_string(), v.to_string()));
    }
    rivulet::Config::loader().env(env).load().unwrap()
}

/// [`app_config`] under exactly-once with a 100 ms commit interval and the
/// given instance id (so the instance is a static member and a restart of
/// it fences its predecessor), plus `extra` settings.
pub fn eos_config(
    application_id: &str,
    state_dir: &std::path::Path,
    instance: &str,
    extra: &[(&str, &str)],
) -> rivulet::Config {
    let mut env = vec![
        ("RIVULET__PROCESSING_GUARANTEE", "exactly_once"),
        ("RIVULET__INSTANCE_ID", instance),
        ("RIVULET__COMMIT_INTERVAL_MS", "100"),
    ];
    env.extend_from_slice(extra);
    app_config(application_id, state_dir, &env)
}

/// Polls `check` every 200 ms until it holds, failing after `timeout`.
pub fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(()) => return,
            Err(why) if Instant::now() > deadline => panic!("{what}: not true within {timeout:?}: {why}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Counts the records of each key of `input` in the store `store` and
/// writes every new count to `output` (string keys, i64 counts).
pub fn count_per_key(input: &str, output: &str, store: &str) -> rivulet::topology::Topology {
    use rivulet::prelude::*;
    let mut b = Topology::builder();
    let counts = b.stream(input, Serdes::string(), Serdes::string()).group_by_key().count(store);
    counts.to_stream().to(output, Serdes::string(), Serdes::i64());
    b.build().unwrap()
}

/// Waits until `app` has processed exactly `records` records and
/// committed more than once.
pub fn eventually_processed(what: &str, app: &rivulet::RunningApp, records: u64, timeout: Duration) {
    eventually(what, timeout, || {
        let s = app.stats();
        if s.records_processed == records && s.commits > 1 {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    });
}

/// For every key, the running counts emitted to `output` (i64, big-endian,
/// read `read_committed`) must be exactly 1, 2, ..., n: no duplicate, no gap.
pub fn check_running_counts(output: &str, expected: &BTreeMap<String, i64>) -> Result<(), String> {
    let mut seen: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in read_committed(output) {
        let v = i64::from_be_bytes(r.value.as_deref().unwrap().try_into().unwrap());
        seen.entry(r.key_str().to_string()).or_default().push(v);
    }
    let mut problems = Vec::new();
    for (key, n) in expected {
        let got = seen.get(key).cloned().unwrap_or_default();
        let want: Vec<i64> = (1..=*n).collect();
        if got != want {
            let first_bad = got.iter().zip(&want).position(|(g, w)| g != w).unwrap_or(got.len().min(want.len()));
            problems.push(format!(
                "{key}: {} counts, want {n}; first difference at #{first_bad}: got {:?}",
                got.len(),
                got.get(first_bad.saturating_sub(2)..(first_bad + 3).min(got.len()))
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.into_iter().take(5).collect::<Vec<_>>().join("; "))
    }
}

/// Waits until `output` holds at least `min` records (read_committed).
pub fn wait_for_output(output: &str, min: usize) {
    eventually("output grows", Duration::from_secs(180), || {
        let n = read_committed(output).len();
        if n >= min {
            Ok(())
        } else {
            Err(format!("{n} outputs"))
        }
    })
}
