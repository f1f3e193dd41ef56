//! Which instance owns which task, and where it answers: the instances
//! directory.
//!
//! The consumer group protocol tells a member only its own assignment, so
//! each instance publishes its own to the compacted topic
//! `<application_id>-instances` (one partition), key = instance id, value =
//! an [`InstanceRecord`] (JSON): its advertised HTTP address and the
//! source partitions its processing threads own, the whole current set
//! (not a change), written at start, after every change of the instance's
//! assignment (looked at every 100 ms) and at shutdown (empty). A plain
//! producer writes it, outside any transaction. Every instance reads the
//! topic from the beginning (`assign`; the group id is the restore
//! consumers', never joined) into an in-memory [`Directory`].
//!
//! The owner of a source partition is the instance whose latest record
//! claims it; when two claim it (mid-rebalance, or one crashed without
//! saying so), the newer record by `updated_ms` (then `sequence`). An
//! instance that died without a last record keeps its claim until the new
//! owner publishes, a rebalance later.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::kafka::{client_config, ClientRole};
use crate::runtime::stats::RuntimeStats;

/// How often the instance's assignment is compared with what it published.
const CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// How long the last record (an empty assignment) may take at shutdown.
const LAST_RECORD_TIMEOUT: Duration = Duration::from_secs(5);

/// What one instance published about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct InstanceRecord {
    pub(crate) instance_id: String,
    /// `host:port` of its HTTP server (`http.advertised_address`).
    pub(crate) address: String,
    /// The source partitions (topic, partition) its threads own.
    pub(crate) partitions: BTreeSet<(String, i32)>,
    /// Wall-clock time of the record, ms.
    pub(crate) updated_ms: i64,
    /// Counts the records of one run of the instance.
    pub(crate) sequence: u64,
}

impl InstanceRecord {
    fn newer_than(&self, other: &InstanceRecord) -> bool {
        (self.updated_ms, self.sequence) > (other.updated_ms, other.sequence)
    }
}

/// The latest record of every instance.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    instances: RwLock<BTreeMap<String, InstanceRecord>>,
}

impl Directory {
    /// Keeps `record` unless the directory has a newer one of its instance.
    pub(crate) fn update(&self, record: InstanceRecord) {
        let mut instances = self.instances.write().unwrap_or_else(|e| e.into_inner());
        match instances.get(&record.instance_id) {
            Some(known) if known.newer_than(&record) => {}
            _ => {
                instances.insert(record.instance_id.clone(), record);
            }
        }
    }

    fn remove(&self, instance_id: &str) {
        self.instances.write().unwrap_or_else(|e| e.into_inner()).remove(instance_id);
    }

    /// The instance that owns `topic`'s `partition`: the newest claim.
    pub(crate) fn owner(&self, topic: &str, partition: i32) -> Option<InstanceRecord> {
        let instances = self.instances.read().unwrap_or_else(|e| e.into_inner());
        let key = (topic.to_string(), partition);
        instances
            .values()
            .filter(|r| r.partitions.contains(&key))
            .fold(None::<&InstanceRecord>, |best, r| match best {
                Some(b) if !r.newer_than(b) => Some(b),
                _ => Some(r),
            })
            .cloned()
    }

    /// Every instance's latest record.
    pub(crate) fn instances(&self) -> Vec<InstanceRecord> {
        self.instances.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }
}

/// The instances topic of an application.
pub(crate) fn instances_topic(application_id: &str) -> String {
    format!("{application_id}-instances")
}

/// The thread that publishes this instance's assignment and reads the
/// others'.
pub(crate) struct DirectoryThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DirectoryThread {
    /// Creates the clients (failing at start rather than later) and starts
    /// the thread.
    pub(crate) fn start(
        config: &Config,
        address: String,
        stats: Arc<RuntimeStats>,
        directory: Arc<Directory>,
    ) -> Result<DirectoryThread> {
        let topic = instances_topic(&config.application_id);
        let name = |role: &str| format!("{}-{}-directory-{role}", config.application_id, config.instance_id);
        let mut producer_config = client_config(config, ClientRole::Producer)?;
        producer_config.set("client.id", name("producer"));
        let producer: BaseProducer =
            producer_config.create().map_err(|e| Error::kafka("creating the instances directory's producer", e))?;
        let mut consumer_config = client_config(config, ClientRole::Consumer)?;
        // It only assigns, but librdkafka's assign needs a group id: the
        // restore consumers' (never joined, no new ACL).
        consumer_config.set("group.id", config.restore_group_id()).set("client.id", name("consumer"));
        let consumer: BaseConsumer =
            consumer_config.create().map_err(|e| Error::kafka("creating the instances directory's consumer", e))?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Beginning)
            .map_err(|e| Error::kafka(format!("assigning {topic}"), e))?;
        consumer.assign(&tpl).map_err(|e| Error::kafka(format!("assigning {topic}"), e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let publisher = Publisher {
            topic,
            instance_id: config.instance_id.clone(),
            address,
            producer,
            consumer,
            stats,
            directory,
            sequence: 0,
            published: None,
            last_error: None,
        };
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("rivulet-directory".into())
            .spawn(move || publisher.run(&stopping))
            .map_err(|e| Error::Internal(format!("spawning the instances directory thread: {e}")))?;
        Ok(DirectoryThread { stop, thread: Some(thread) })
    }

    /// Publishes an empty assignment and stops (call after the processing
    /// threads have stopped).
    pub(crate) fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the instances directory thread panicked");
            }
        }
    }
}

impl Drop for DirectoryThread {
    fn drop(&mut self) {
        self.stop_now();
    }
}

struct Publisher {
    topic: String,
    instance_id: String,
    address: String,
    producer: BaseProducer,
    consumer: BaseConsumer,
    stats: Arc<RuntimeStats>,
    directory: Arc<Directory>,
    sequence: u64,
    /// The assignment last published.
    published: Option<BTreeSet<(String, i32)>>,
    /// The last error reading or publishing, logged once until it changes.
    last_error: Option<String>,
}

impl Publisher {
    fn run(mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            let now = self.stats.assignment();
            if self.published.as_ref() != Some(&now) {
                self.publish(now);
            }
            self.producer.poll(Duration::ZERO);
            self.read(CHECK_INTERVAL);
        }
        // Leaving: nothing is owned here any more.
        self.publish(BTreeSet::new());
        if let Err(e) = self.producer.flush(LAST_RECORD_TIMEOUT) {
            tracing::warn!(topic = %self.topic, error = %e, "the instance's last directory record was not delivered");
        }
    }

    fn publish(&mut self, partitions: BTreeSet<(String, i32)>) {
        self.sequence += 1;
        let record = InstanceRecord {
            instance_id: self.instance_id.clone(),
            address: self.address.clone(),
            partitions: partitions.clone(),
            updated_ms: crate::processor::wall_clock_ms(),
            sequence: self.sequence,
        };
        let value = match serde_json::to_vec(&record) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "encoding the instance's directory record");
                return;
            }
        };
        self.directory.update(record);
        let sent = self.producer.send(BaseRecord::to(&self.topic).key(self.instance_id.as_bytes()).payload(&value));
        match sent {
            Ok(()) => self.published = Some(partitions),
            // Tried again at the next check.
            Err((e, _)) => self.warn_once("publishing the instance's assignment", e.to_string()),
        }
    }

    /// Logs a failure, unless it is the same as the last one (the thread
    /// tries again every 100 ms).
    fn warn_once(&mut self, doing: &str, error: String) {
        if self.last_error.as_ref() != Some(&error) {
            tracing::warn!(topic = %self.topic, error = %error, "{doing} failed; trying again (repeats are not logged)");
            self.last_error = Some(error);
        }
    }

    /// Reads the other instances' records for up to `wait`.
    fn read(&mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.consumer.poll(left) {
                Some(Ok(msg)) => {
                    let Some(key) = msg.key().and_then(|k| std::str::from_utf8(k).ok()) else { continue };
                    match msg.payload() {
                        None => self.directory.remove(key),
                        Some(value) => match serde_json::from_slice::<InstanceRecord>(value) {
                            Ok(record) => self.directory.update(record),
                            Err(e) => {
                                tracing::warn!(topic = %self.topic, instance = key, error = %e, "an unreadable directory record; ignored")
                            }
                        },
                    }
                }
                Some(Err(e)) => {
                    self.warn_once("reading the instances directory", e.to_string());
                    return;
                }
                None => return,
            }
            if left.is_zero() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn record(id: &str, partitions: &[i32], updated_ms: i64) -> InstanceRecord {
        InstanceRecord {
            instance_id: id.into(),
            address: format!("{id}:8080"),
            partitions: partitions.iter().map(|&p| ("in".to_string(), p)).collect(),
            updated_ms,
            sequence: 1,
        }
    }

    #[test]
    fn the_newest_claim_owns_a_partition_and_an_older_record_of_an_instance_is_ignored() {
        let d = Directory::default();
        d.update(record("a", &[0, 1], 100));
        d.update(record("b", &[2], 100));
        assert_eq!(d.owner("in", 1).unwrap().instance_id, "a");
        assert!(d.owner("in", 3).is_none());
        // b takes partition 1 in a rebalance; a has not said it let it go.
        d.update(record("b", &[1, 2], 200));
        assert_eq!(d.owner("in", 1).unwrap().address, "b:8080");
        // A late copy of an older record of b changes nothing.
        d.update(record("b", &[2], 150));
        assert_eq!(d.owner("in", 1).unwrap().instance_id, "b");
        d.remove("b");
        assert_eq!(d.owner("in", 1).unwrap().instance_id, "a");
        assert_eq!(d.instances().len(), 1);
    }
}
