//! Unit tests of topologies: validation, sub-topology splitting, serde
//! carry-over, and the record path through the test driver (no Kafka).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::config::Config;
use crate::error::Error;
use crate::processor::time::is_marker;
use crate::processor::TaskContext;
use crate::record::{Headers, Record};
use crate::serde::Serdes;
use crate::testing::{RawRecord, TopologyTestDriver};

const APP: &str = "app";

/// A record as it reached the producer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Sent {
    topic: String,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

/// A test driver for `topology` with `application_id = "app"` (internal
/// topics are `app-<name>-...`).
pub(super) fn driver(topology: Topology) -> TopologyTestDriver {
    let config = Config::loader()
        .env(std::iter::empty::<(String, String)>())
        .default_value("application_id", APP)
        .load()
        .unwrap();
    TopologyTestDriver::with_config(topology, config).unwrap()
}

/// The context of the task running sub-topology `subtopology`: its write
/// buffer, stores and schedules.
fn task_context(driver: &mut TopologyTestDriver, subtopology: usize) -> &mut TaskContext {
    driver.tasks[subtopology].context_mut()
}

/// The processing error that stopped the driver (a bad record under the
/// `fail` policy, or a topology error).
fn process_error(result: crate::error::Result<()>) -> ProcessError {
    match result {
        Err(Error::Record { error, .. }) => *error,
        Err(e) => panic!("expected a record error, got {e:?}"),
        Ok(()) => panic!("expected a record error, but the record went through"),
    }
}

/// Pipes a record's bytes into `topic`; the error of the record, if any.
fn push_raw(
    driver: &mut TopologyTestDriver,
    topic: &str,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    timestamp: i64,
    headers: Headers,
) -> Result<(), ProcessError> {
    let mut record = RawRecord::new(key, value, timestamp);
    record.headers = headers;
    match driver.pipe_raw(topic, record) {
        Ok(()) => Ok(()),
        result => Err(process_error(result)),
    }
}

fn push(driver: &mut TopologyTestDriver, topic: &str, key: &str, value: &str) -> Result<(), ProcessError> {
    push_raw(driver, topic, Some(key.as_bytes()), Some(value.as_bytes()), 1_000, Headers::new())
}

/// What the sinks sent, sorted: every record of every topic but the ones
/// the test pipes into, watermark markers left out.
fn all_sent(driver: &TopologyTestDriver) -> Vec<Sent> {
    let log = driver.collector.log.borrow();
    let mut sent: Vec<Sent> = log
        .all()
        .filter(|(t, r)| !driver.names.contains_key(*t) && !is_sent_marker(r))
        .map(|(t, r)| Sent { topic: t.to_string(), key: r.key.clone(), value: r.value.clone() })
        .collect();
    sent.sort();
    sent
}

/// The records sent to `topic` since the last read, in order, watermark
/// markers left out.
fn sent_to(driver: &mut TopologyTestDriver, topic: &str) -> Vec<Sent> {
    let records = driver.read_raw(topic).into_iter().filter(|r| !is_sent_marker(r));
    records.map(|r| Sent { topic: topic.to_string(), key: r.key, value: r.value }).collect()
}

fn is_sent_marker(r: &RawRecord) -> bool {
    is_marker(r.value.as_deref(), r.headers.iter().map(|(k, _)| k.as_str()))
}

/// The value of `key` in `store` as processors read it (write buffer first).
fn get<K: 'static, V: 'static>(driver: &mut TopologyTestDriver, store: &str, key: &K) -> Option<V> {
    driver.store_get(store, key).unwrap()
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

/// The context of a test processor of `String` records.
type Ctx<'a> = ProcessorContext<'a, String, String>;

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
    fn process(&mut self, r: Record<String, String>, ctx: &mut Ctx<'_>) -> Result<(), ProcessError> {
        ctx.store::<String, String>(self.store)?.put(&r.key, &r.value)?;
        ctx.forward(r)
    }
}

/// Reads the store `store` as `String -> i64`.
struct ReadAsI64 {
    store: &'static str,
}

impl Processor<String, String, String, String> for ReadAsI64 {
    fn process(&mut self, r: Record<String, String>, ctx: &mut Ctx<'_>) -> Result<(), ProcessError> {
        ctx.store::<String, i64>(self.store)?.get(&r.key)?;
        ctx.forward(r)
    }
}

/// Writes `("init", "done")` into its store from `init`.
struct MarksInit {
    store: &'static str,
}

impl Processor<String, String, String, String> for MarksInit {
    fn init(&mut self, ctx: &mut Ctx<'_>) -> Result<(), ProcessError> {
        ctx.store::<String, String>(self.store)?.put(&"init".to_string(), &"done".to_string())
    }

    fn process(&mut self, r: Record<String, String>, ctx: &mut Ctx<'_>) -> Result<(), ProcessError> {
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

mod async_io;
mod end_of_input;
mod record_path;
mod serdes;
mod stateful;
mod subtopologies;
mod validation;
