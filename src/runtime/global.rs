//! The global thread: reads every partition of each global table's topic
//! into its store (Kafka Streams' `GlobalStreamThread`). It first reads up
//! to the end offsets it finds at start (the bootstrap; the processing
//! threads wait for it and `/health/ready` answers 503 meanwhile), then
//! follows the topics until shutdown. It reads `read_committed` under
//! exactly-once, as the processing threads do, and commits nothing to the
//! group: each store keeps the offset after every record it applied, so a
//! restart reads on from there (and from the beginning when those offsets
//! are outside the topic: it was recreated). Records read during the
//! bootstrap count as restored (`RunningApp::stats().records_restored`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::Config;
use crate::error::kafka::{classify, KafkaErrorKind};
use crate::error::{Error, Result};
use crate::kafka::{client_config, ClientRole};
use crate::runtime::stats::RuntimeStats;
use crate::runtime::AppContext;
use crate::state::{GlobalStore, GlobalStores, RocksGlobalStore};
use crate::topology::Topology;

/// Opens the global stores of `topology` under
/// `<state_dir>/<application_id>/<instance_id>/global/`, as they were left.
pub(crate) fn open_stores(config: &Config, topology: &Topology) -> Result<GlobalStores> {
    let mut stores: BTreeMap<String, Arc<dyn GlobalStore>> = BTreeMap::new();
    for g in &topology.globals {
        let dir = config.instance_state_dir().join("global").join(&g.name);
        stores.insert(g.name.clone(), Arc::new(RocksGlobalStore::open(&dir, &g.name)?));
    }
    Ok(GlobalStores::new(stores))
}

/// Bootstraps the global stores, marks them loaded, then keeps them up to
/// date until `shutdown`.
pub(crate) fn run(app: Arc<AppContext>, shutdown: Arc<AtomicBool>) -> Result<()> {
    let config = &app.config;
    let mut client = client_config(config, ClientRole::Consumer)?;
    client.set("client.id", format!("{}-{}-global-consumer", config.application_id, config.instance_id));
    let consumer: BaseConsumer = client.create().map_err(|e| Error::kafka("creating the global consumer", e))?;
    let mut by_topic: HashMap<String, Arc<dyn GlobalStore>> = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    let mut end: Vec<(String, i32, i64)> = Vec::new();
    for g in &app.topology.globals {
        let Some(store) = app.globals.get(&g.name) else {
            return Err(Error::Internal(format!("the global table `{}` has no store", g.name)));
        };
        by_topic.insert(g.topic.clone(), store.clone());
        let metadata = consumer
            .fetch_metadata(Some(&g.topic), Duration::from_secs(30))
            .map_err(|e| Error::kafka(format!("reading the partitions of global table topic {}", g.topic), e))?;
        let partitions = metadata.topics().first().map(|t| t.partitions().len()).unwrap_or(0) as i32;
        let mut from = Vec::new();
        let mut out_of_range = false;
        for p in 0..partitions {
            let (low, high) = consumer
                .fetch_watermarks(&g.topic, p, Duration::from_secs(30))
                .map_err(|e| Error::kafka(format!("reading the offsets of {}[{p}]", g.topic), e))?;
            let stored = store.offset(&g.topic, p)?;
            // The topic was recreated or its records deleted: what the
            // store holds no longer matches it.
            out_of_range |= stored.is_some_and(|o| o < low || o > high);
            from.push((p, stored));
            end.push((g.topic.clone(), p, high));
        }
        if out_of_range {
            tracing::warn!(table = %g.name, topic = %g.topic, "the global store's offsets are outside its topic; rebuilding it from the beginning");
            store.clear()?;
            from.iter_mut().for_each(|(_, o)| *o = None);
        }
        for (p, stored) in from {
            let offset = stored.map_or(Offset::Beginning, Offset::Offset);
            assignment
                .add_partition_offset(&g.topic, p, offset)
                .map_err(|e| Error::kafka(format!("assigning {}[{p}]", g.topic), e))?;
        }
    }
    consumer.assign(&assignment).map_err(|e| Error::kafka("assigning the global tables' partitions", e))?;
    tracing::info!(topics = ?by_topic.keys().collect::<Vec<_>>(), "loading global tables");
    let mut loaded = false;
    let mut applied = 0u64;
    while !shutdown.load(Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(msg)) => {
                let Some(store) = by_topic.get(msg.topic()) else {
                    return Err(Error::Internal(format!("the global consumer read topic {}", msg.topic())));
                };
                if msg.key().is_none() {
                    // As Kafka Streams' global state update task: a table has no null key.
                    tracing::warn!(
                        topic = msg.topic(),
                        partition = msg.partition(),
                        offset = msg.offset(),
                        "skipping a global table record with a null key"
                    );
                }
                store.apply(msg.key(), msg.payload(), (msg.topic(), msg.partition(), msg.offset() + 1))?;
                if !loaded {
                    applied += 1;
                    RuntimeStats::add(&app.stats.records_restored, 1);
                }
            }
            Some(Err(e)) if classify(&e) == KafkaErrorKind::Retriable => {
                tracing::warn!(error = %e, "the global consumer cannot reach Kafka right now; it keeps retrying");
            }
            Some(Err(e)) => {
                let denied = app.denied(&e, "reading the global tables' topics", "READ", 0);
                return Err(denied.unwrap_or_else(|| Error::kafka("reading the global tables' topics", e)));
            }
        }
        if !loaded && caught_up(&consumer, &end)? {
            loaded = true;
            app.stats.globals_loaded();
            tracing::info!(records = applied, "global tables loaded");
        }
    }
    Ok(())
}

/// Whether the consumer's position reached `end` in every partition.
fn caught_up(consumer: &BaseConsumer, end: &[(String, i32, i64)]) -> Result<bool> {
    let position = consumer.position().map_err(|e| Error::kafka("reading the global consumer's position", e))?;
    Ok(end.iter().all(|(topic, p, high)| {
        *high <= 0
            || matches!(
                position.find_partition(topic, *p).map(|e| e.offset()),
                Some(Offset::Offset(o)) if o >= *high
            )
    }))
}
