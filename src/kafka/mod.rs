//! Kafka clients built from a [`Config`].
//!
//! Every client gets `bootstrap.servers`, a `client.id` naming the
//! application, instance and role, and `[kafka.common]`; consumers and
//! producers then get the properties rivulet's guarantees depend on, and
//! last the user's `[kafka.consumer]` / `[kafka.producer]`. Properties that
//! would break a guarantee (`enable.auto.commit`, `transactional.id`, ...)
//! are refused when the config is loaded, so they cannot be overridden here.

pub(crate) mod admin;
pub mod embedded;
pub(crate) mod group_members;
pub(crate) mod member_offsets;
pub(crate) mod streams_group;
mod streams_security;

use rdkafka::ClientConfig;

use crate::config::{reference, Config, ConfigError, KafkaProperties, ProcessingGuarantee};

/// What a client is for; part of its `client.id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientRole {
    /// Reads source, repartition and changelog topics.
    Consumer,
    /// Writes outputs, repartition and changelog records.
    Producer,
    /// Creates and checks internal topics.
    Admin,
    /// The `reset` subcommand's consumer: reads and commits the group's
    /// offsets (configured as [`ClientRole::Consumer`]).
    Reset,
}

impl ClientRole {
    fn as_str(self) -> &'static str {
        match self {
            ClientRole::Consumer => "consumer",
            ClientRole::Producer => "producer",
            ClientRole::Admin => "admin",
            ClientRole::Reset => "reset",
        }
    }
}

/// Sets `props` (the `[kafka.<section>]` table) on `client`, with their
/// `${directory:...}`/`${file:...}` references read now: a rotated secret
/// is picked up by the next client made.
fn apply(client: &mut ClientConfig, section: &str, props: &KafkaProperties) -> Result<(), ConfigError> {
    for (key, value) in props.iter() {
        if reference::has_reference(value) {
            client.set(key, reference::resolve(&format!("kafka.{section}.{key}"), "the loaded config", value)?);
        } else {
            client.set(key, value);
        }
    }
    Ok(())
}

/// How long librdkafka waits before fetching a partition again once its
/// fetch queue is over its thresholds. librdkafka's default, 1000 ms, left
/// the queue empty most of the time in a consume-process-produce loop: the
/// bare loop (W0) moved 132,000 records/s with its consumer's `poll` empty
/// 600 times in 15 s, and 560,000-920,000 with 0-100 ms (issue 15,
/// `docs/benchmarks.md`). The Java consumer has no such pause.
pub(crate) const FETCH_QUEUE_BACKOFF_MS: &str = "10";

/// The librdkafka configuration for one client of this instance.
///
/// Fails when `kafka.bootstrap_servers` is not set.
pub(crate) fn client_config(config: &Config, role: ClientRole) -> Result<ClientConfig, ConfigError> {
    if config.kafka.bootstrap_servers.is_empty() {
        return Err(ConfigError::Missing {
            key: "kafka.bootstrap_servers".into(),
            hint: "name the Kafka cluster, for example RIVULET__KAFKA__BOOTSTRAP_SERVERS=broker:9092".into(),
        });
    }
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.kafka.bootstrap_servers)
        .set("client.id", format!("{}-{}-{}", config.application_id, config.instance_id, role.as_str()));
    apply(&mut client, "common", &config.kafka.common)?;
    match role {
        ClientRole::Consumer | ClientRole::Reset => {
            client
                .set("group.id", &config.application_id)
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false")
                .set("auto.offset.reset", "earliest")
                .set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS);
            if config.processing_guarantee == ProcessingGuarantee::ExactlyOnce {
                client.set("isolation.level", "read_committed");
            }
            apply(&mut client, "consumer", &config.kafka.consumer)?;
        }
        ClientRole::Producer => {
            client.set("enable.idempotence", "true").set("acks", "all");
            if config.processing_guarantee == ProcessingGuarantee::ExactlyOnce {
                // As Kafka Streams: a crashed instance's open transaction
                // blocks read_committed readers for at most this long.
                client.set("transaction.timeout.ms", "10000");
            }
            apply(&mut client, "producer", &config.kafka.producer)?;
        }
        ClientRole::Admin => {}
    }
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Config {
        let mut env = vec![("HOSTNAME", "pod-1"), ("RIVULET__APPLICATION_ID", "shop")];
        env.extend_from_slice(vars);
        Config::loader().env(env).load().unwrap()
    }

    #[test]
    fn consumer_uses_the_application_id_as_group_and_never_auto_commits() {
        let c = config(&[
            ("RIVULET__KAFKA__BOOTSTRAP_SERVERS", "k:9092"),
            ("RIVULET__KAFKA__CONSUMER__FETCH_MAX_BYTES", "1000000"),
        ]);
        let client = client_config(&c, ClientRole::Consumer).unwrap();
        assert_eq!(client.get("group.id"), Some("shop"));
        assert_eq!(client.get("enable.auto.commit"), Some("false"));
        assert_eq!(client.get("client.id"), Some("shop-pod-1-consumer"));
        assert_eq!(client.get("fetch.max.bytes"), Some("1000000"));
        assert_eq!(client.get("isolation.level"), None);
        assert_eq!(client.get("fetch.queue.backoff.ms"), Some(FETCH_QUEUE_BACKOFF_MS));
        let c = config(&[
            ("RIVULET__KAFKA__BOOTSTRAP_SERVERS", "k:9092"),
            ("RIVULET__KAFKA__CONSUMER__FETCH_QUEUE_BACKOFF_MS", "1000"),
        ]);
        let client = client_config(&c, ClientRole::Consumer).unwrap();
        assert_eq!(client.get("fetch.queue.backoff.ms"), Some("1000"), "a user's value wins");
    }

    #[test]
    fn exactly_once_consumers_read_committed() {
        let c = config(&[
            ("RIVULET__KAFKA__BOOTSTRAP_SERVERS", "k:9092"),
            ("RIVULET__PROCESSING_GUARANTEE", "exactly_once"),
        ]);
        let client = client_config(&c, ClientRole::Consumer).unwrap();
        assert_eq!(client.get("isolation.level"), Some("read_committed"));
    }

    #[test]
    fn section_properties_override_common_ones() {
        let c = config(&[
            ("RIVULET__KAFKA__BOOTSTRAP_SERVERS", "k:9092"),
            ("RIVULET__KAFKA__COMMON__SOCKET_TIMEOUT_MS", "10000"),
            ("RIVULET__KAFKA__PRODUCER__SOCKET_TIMEOUT_MS", "20000"),
        ]);
        assert_eq!(client_config(&c, ClientRole::Producer).unwrap().get("socket.timeout.ms"), Some("20000"));
        assert_eq!(client_config(&c, ClientRole::Consumer).unwrap().get("socket.timeout.ms"), Some("10000"));
    }

    #[test]
    fn missing_bootstrap_servers_says_how_to_set_them() {
        let err = client_config(&config(&[]), ClientRole::Admin).unwrap_err();
        assert!(err.to_string().contains("RIVULET__KAFKA__BOOTSTRAP_SERVERS"), "{err}");
    }
}
