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

/// A mock Kafka cluster of one broker, alive until dropped. The quickstart
/// (`examples/wordcount.rs`) runs on it when no cluster is configured.
///
/// ```
/// use rivulet::kafka::embedded::EmbeddedKafka;
/// use rivulet::prelude::*;
/// # fn main() -> rivulet::Result<()> {
/// let kafka = EmbeddedKafka::start()?;
/// let mut config = Config::loader().env([("RIVULET__APPLICATION_ID", "demo")]).load()?;
/// config.kafka.bootstrap_servers = kafka.bootstrap_servers();
/// let mut b = Topology::builder();
/// b.stream("in", Serdes::string(), Serdes::string()).to("out", Serdes::string(), Serdes::string());
/// let topology = b.build()?;
/// kafka.create_topics_for(&topology, &config, 2)?;
/// let app = App::new(config)?; // start or run it as against any cluster
/// # drop(app);
/// # Ok(()) }
/// ```
pub struct EmbeddedKafka {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl EmbeddedKafka {
    /// Starts the cluster, on a free local port.
    ///
    /// ```
    /// # fn main() -> rivulet::Result<()> {
    /// let kafka = rivulet::kafka::embedded::EmbeddedKafka::start()?;
    /// assert!(!kafka.bootstrap_servers().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn start() -> Result<EmbeddedKafka> {
        let cluster = MockCluster::new(1).map_err(|e| Error::kafka("starting the embedded Kafka cluster", e))?;
        EMBEDDED.lock().unwrap_or_else(|e| e.into_inner()).insert(cluster.bootstrap_servers());
        Ok(EmbeddedKafka { cluster })
    }

    /// Its `bootstrap.servers`, for `kafka.bootstrap_servers` and for any
    /// other Kafka client.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rdkafka::consumer::{BaseConsumer, Consumer};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let kafka = rivulet::kafka::embedded::EmbeddedKafka::start()?;
    /// let client: BaseConsumer = rdkafka::ClientConfig::new().set("bootstrap.servers", kafka.bootstrap_servers()).create()?;
    /// let metadata = client.fetch_metadata(None, Duration::from_secs(10))?;
    /// assert_eq!(metadata.brokers().len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Creates a topic.
    fn create_topic(&self, name: &str, partitions: i32) -> Result<()> {
        self.cluster
            .create_topic(name, partitions, 1)
            .map_err(|e| Error::kafka(format!("creating topic {name} in the embedded cluster"), e))
    }

    /// Makes the broker answer the next `count` requests of kind `api` with
    /// `error`, as a struggling broker would: for testing how an
    /// application rides out a coordinator moving or a request timing out.
    #[cfg(test)]
    pub(crate) fn fail_requests(
        &self,
        api: rdkafka::types::RDKafkaApiKey,
        error: rdkafka::types::RDKafkaRespErr,
        count: usize,
    ) {
        self.cluster.request_errors(api, &vec![error; count]);
    }

    /// Creates every topic `topology` reads or writes, internal topics and
    /// the dead-letter topic included, with `partitions` partitions each
    /// (the instances directory of interactive queries, when the topology
    /// has stores, with one). The mock cluster answers no CreateTopics
    /// request, so the application cannot create its internal topics
    /// itself.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rdkafka::consumer::{BaseConsumer, Consumer};
    /// use rivulet::kafka::embedded::EmbeddedKafka;
    /// use rivulet::prelude::*;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let kafka = EmbeddedKafka::start()?;
    /// let config = Config::loader().env([("RIVULET__APPLICATION_ID", "demo")]).load()?;
    /// let mut b = Topology::builder();
    /// b.stream("words", Serdes::string(), Serdes::string()).group_by_key().count("counts").to_stream().to("counts", Serdes::string(), Serdes::i64());
    /// kafka.create_topics_for(&b.build()?, &config, 2)?;
    /// let client: BaseConsumer = rdkafka::ClientConfig::new().set("bootstrap.servers", kafka.bootstrap_servers()).create()?;
    /// let metadata = client.fetch_metadata(None, Duration::from_secs(10))?;
    /// let mut topics: Vec<&str> = metadata.topics().iter().map(|t| t.name()).collect();
    /// topics.sort();
    /// assert_eq!(topics, ["counts", "demo-counts-changelog", "demo-dlq", "demo-instances", "words"]);
    /// # Ok(()) }
    /// ```
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
        if !topology.stores.is_empty() {
            // The instances directory of interactive queries: one partition.
            self.create_topic(&format!("{}-instances", config.application_id), 1)?;
        }
        Ok(())
    }
}

impl Drop for EmbeddedKafka {
    fn drop(&mut self) {
        EMBEDDED.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.cluster.bootstrap_servers());
    }
}
