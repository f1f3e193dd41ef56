//! An embedded Kafka cluster for the zero-setup demo and fast tests:
//! librdkafka's mock cluster, running inside this process.
//!
//! It speaks the Kafka protocol on a local port, but it is not Kafka: it
//! keeps everything in memory, answers no CreateTopics request (topics are
//! created through its own API, [`EmbeddedKafka::create_topics_for`]) and
//! does not check topic configs. rivulet's own tests run on a real broker;
//! use this only to try things out.

use std::collections::BTreeSet;
use std::sync::Mutex;

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use crate::error::{Error, Result};
use crate::processor::graph::TopicName;
use crate::topology::Topology;
use crate::Config;

/// Bootstrap addresses of the embedded clusters alive in this process: the
/// admin step skips the topic-config checks the mock cluster cannot answer.
static EMBEDDED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

pub(crate) fn is_embedded(bootstrap_servers: &str) -> bool {
    EMBEDDED.lock().unwrap_or_else(|e| e.into_inner()).contains(bootstrap_servers)
}

/// A mock Kafka cluster of one broker, alive until dropped.
pub struct EmbeddedKafka {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl EmbeddedKafka {
    /// Starts the cluster.
    pub fn start() -> Result<EmbeddedKafka> {
        let cluster = MockCluster::new(1).map_err(|e| Error::kafka("starting the embedded Kafka cluster", e))?;
        EMBEDDED.lock().unwrap_or_else(|e| e.into_inner()).insert(cluster.bootstrap_servers());
        Ok(EmbeddedKafka { cluster })
    }

    /// Its `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Creates a topic.
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<()> {
        self.cluster
            .create_topic(name, partitions, 1)
            .map_err(|e| Error::kafka(format!("creating topic {name} in the embedded cluster"), e))
    }

    /// Makes the broker answer the next `count` requests of kind `api` with
    /// `error`, as a struggling broker would: for testing how an
    /// application rides out a coordinator moving or a request timing out.
    pub fn fail_requests(
        &self,
        api: rdkafka::types::RDKafkaApiKey,
        error: rdkafka::types::RDKafkaRespErr,
        count: usize,
    ) {
        self.cluster.request_errors(api, &vec![error; count]);
    }

    /// Creates every topic `topology` reads or writes, internal topics and
    /// the dead-letter topic included, with `partitions` partitions each.
    pub fn create_topics_for(&self, topology: &Topology, config: &Config, partitions: i32) -> Result<()> {
        let mut topics: Vec<String> = topology.source_topics();
        for st in &topology.subtopologies {
            for t in &st.sinks {
                topics.push(t.resolve(&config.application_id));
            }
        }
        topics.extend(topology.internal_topics().iter().map(|t: &TopicName| t.resolve(&config.application_id)));
        topics.push(config.dead_letter_topic());
        topics.sort();
        topics.dedup();
        for t in topics {
            self.create_topic(&t, partitions)?;
        }
        Ok(())
    }
}

impl Drop for EmbeddedKafka {
    fn drop(&mut self) {
        EMBEDDED.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.cluster.bootstrap_servers());
    }
}
