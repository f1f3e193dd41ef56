//! Every config key rivulet knows: its name, default, what it accepts and
//! what it means, in one table. Loading, validation, error messages and the
//! test that keeps `docs/configuration.md` honest all read this table.

use config::Value;

use super::spec::{names, Accepts, DefaultValue, PerGuarantee, Unit};
use super::{ErrorPolicy, GroupProtocol, LogFormat, OffsetResetPolicy, ProcessingGuarantee, SubjectNameStrategy};

// The value parsers, one per kind of `Accepts`.
#[path = "keys/parse.rs"]
mod parse;
pub(crate) use parse::*;

/// One documented config key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeySpec {
    /// Dotted path, as in TOML (`kafka.bootstrap_servers`).
    pub(crate) name: &'static str,
    /// The default; `config/default.toml` states the same (a unit test
    /// checks it).
    pub(crate) default: DefaultValue,
    /// What values are accepted; validation takes its bounds from here, and
    /// error messages quote it.
    pub(crate) accepts: Accepts,
    /// What the key means.
    pub(crate) doc: &'static str,
}

impl KeySpec {
    /// What the key accepts, as the reference table and error messages say
    /// it: empty text too, when its default is found at load.
    pub(crate) fn accepted(&self) -> String {
        match self.default {
            DefaultValue::Derived(_) | DefaultValue::PerGuarantee(_) => format!("empty, or {}", self.accepts),
            _ => self.accepts.to_string(),
        }
    }
}

/// Longest name (application, instance, topic) accepted.
const MAX_NAME_CHARS: usize = 200;
const ONE_HOUR_MS: u64 = 3_600_000;
const ONE_YEAR_MS: u64 = 365 * 86_400_000;
const MIB: u64 = 1 << 20;
const TIB: u64 = 1 << 40;

/// The processing guarantees by name.
pub(crate) const GUARANTEES: [(&str, ProcessingGuarantee); 2] =
    [("at_least_once", ProcessingGuarantee::AtLeastOnce), ("exactly_once", ProcessingGuarantee::ExactlyOnce)];
/// The bad-record policies by name.
pub(crate) const POLICIES: [(&str, ErrorPolicy); 3] =
    [("fail", ErrorPolicy::Fail), ("skip", ErrorPolicy::Skip), ("dead_letter", ErrorPolicy::DeadLetter)];
/// The group protocols by name.
pub(crate) const GROUP_PROTOCOLS: [(&str, GroupProtocol); 3] =
    [("consumer", GroupProtocol::Consumer), ("classic", GroupProtocol::Classic), ("streams", GroupProtocol::Streams)];
const GROUP_PROTOCOL_NAMES: [&str; 3] = names(&GROUP_PROTOCOLS);
/// The log formats by name.
pub(crate) const LOG_FORMATS: [(&str, LogFormat); 2] = [("text", LogFormat::Text), ("json", LogFormat::Json)];
/// The `errors.offset_out_of_range` choices by name.
pub(crate) const OFFSET_RESET_POLICIES: [(&str, OffsetResetPolicy); 3] = [
    ("fail", OffsetResetPolicy::Fail),
    ("earliest", OffsetResetPolicy::Earliest),
    ("latest", OffsetResetPolicy::Latest),
];
const OFFSET_RESET_POLICY_NAMES: [&str; 3] = names(&OFFSET_RESET_POLICIES);
const GUARANTEE_NAMES: [&str; 2] = names(&GUARANTEES);
const POLICY_NAMES: [&str; 3] = names(&POLICIES);
const LOG_FORMAT_NAMES: [&str; 2] = names(&LOG_FORMATS);
/// The subject name strategies by name.
pub(crate) const SUBJECT_NAME_STRATEGIES: [(&str, SubjectNameStrategy); 3] = [
    ("topic", SubjectNameStrategy::Topic),
    ("record", SubjectNameStrategy::Record),
    ("topic_record", SubjectNameStrategy::TopicRecord),
];
const SUBJECT_NAME_STRATEGY_NAMES: [&str; 3] = names(&SUBJECT_NAME_STRATEGIES);

/// `commit_interval_ms` when it is not set: Kafka Streams' defaults.
pub(crate) const COMMIT_INTERVAL_MS_DEFAULT: PerGuarantee = PerGuarantee { at_least_once: 30_000, exactly_once: 100 };

pub(crate) const APPLICATION_ID: KeySpec = KeySpec {
    name: "application_id",
    default: DefaultValue::Required,
    accepts: Accepts::Name { max_chars: MAX_NAME_CHARS },
    doc: "Names the application: it is the consumer group id, the prefix of internal \
          topics (`<application_id>-<name>-changelog`) and of transactional ids, and the \
          folder under `state_dir`. Every instance of one application uses the same value.",
};
pub(crate) const INSTANCE_ID: KeySpec = KeySpec {
    name: "instance_id",
    default: DefaultValue::Derived("the HOSTNAME environment variable"),
    accepts: Accepts::Name { max_chars: MAX_NAME_CHARS },
    doc: "This instance's stable identity, part of its transactional ids and client ids. \
          Set explicitly (in a file or as `RIVULET__INSTANCE_ID`; the Helm chart sets the pod \
          name), it also turns on static group membership: thread `i`'s consumer joins with \
          `group.instance.id = <instance_id>-<i>`, so a restart within \
          the group's session timeout gets its partitions back without a rebalance. Taken from HOSTNAME \
          (or /etc/hostname), it does not. Two running instances must never share one.",
};
pub(crate) const PROCESSING_GUARANTEE: KeySpec = KeySpec {
    name: "processing_guarantee",
    default: DefaultValue::Text("at_least_once"),
    accepts: Accepts::OneOf(&GUARANTEE_NAMES),
    doc: "`at_least_once`: offsets are committed after outputs are delivered; a crash may \
          repeat output. `exactly_once`: outputs, changelog writes and consumed offsets are \
          committed in one Kafka transaction.",
};
pub(crate) const COMMIT_INTERVAL_MS: KeySpec = KeySpec {
    name: "commit_interval_ms",
    default: DefaultValue::PerGuarantee(COMMIT_INTERVAL_MS_DEFAULT),
    accepts: Accepts::Integer { min: 1, max: ONE_HOUR_MS, unit: Unit::Milliseconds },
    doc: "How often a processing thread runs its commit cycle: changelogs, outputs, \
          offsets, then local state.",
};
pub(crate) const REPARTITION_PURGE_INTERVAL_MS: KeySpec = KeySpec {
    name: "repartition_purge_interval_ms",
    default: DefaultValue::Integer(30_000),
    accepts: Accepts::Integer { min: 0, max: ONE_HOUR_MS, unit: Unit::Milliseconds },
    doc: "How often, at most, the records of repartition topics below the offsets the reading \
          tasks committed are deleted (one DeleteRecords request, sent off the processing threads \
          after a commit; Kafka Streams' `repartition.purge.interval.ms`). Repartition topics have \
          no retention by time or size, so this is what frees their disk space.",
};
pub(crate) const NUM_THREADS: KeySpec = KeySpec {
    name: "num_threads",
    default: DefaultValue::Integer(1),
    accepts: Accepts::Integer { min: 1, max: 256, unit: Unit::Count },
    doc: "Processing threads per instance. Each has its own consumer, producer and tasks.",
};
pub(crate) const GROUP_PROTOCOL: KeySpec = KeySpec {
    name: "group_protocol",
    default: DefaultValue::Text("consumer"),
    accepts: Accepts::OneOf(&GROUP_PROTOCOL_NAMES),
    doc: "How the instances share the partitions. `consumer`: the broker's group protocol of \
          KIP-848 (Kafka 4.0+) with its range assignor: a member joining or leaving moves only \
          the tasks that change owner; the others keep running. `classic`: the old protocol, for \
          brokers before 4.0; every rebalance stops and restarts every task of the group. `streams`: \
          the streams rebalance protocol of KIP-1071 (Kafka 4.1+): the broker assigns tasks, not \
          partitions, keeps them where they ran, and places standby replicas \
          (`num_standby_replicas`); over PLAINTEXT, SSL or SASL with PLAIN or SCRAM (not \
          OAUTHBEARER or GSSAPI).",
};
pub(crate) const NUM_STANDBY_REPLICAS: KeySpec = KeySpec {
    name: "num_standby_replicas",
    default: DefaultValue::Integer(0),
    accepts: Accepts::Integer { min: 0, max: 16, unit: Unit::Count },
    doc: "Standby replicas per task (Kafka Streams' `num.standby.replicas`): other instances keep a \
          copy of each task's stores warm by reading its changelogs, and the broker moves a task \
          whose instance died to one of them, which replays only the tail. Needs \
          `group_protocol = \"streams\"`; rivulet sets it as the group's \
          `streams.num.standby.replicas` at start (the broker caps it with \
          `group.streams.max.standby.replicas`, 2 by default).",
};
pub(crate) const STATE_DIR: KeySpec = KeySpec {
    name: "state_dir",
    default: DefaultValue::Text("/var/lib/rivulet"),
    accepts: Accepts::Path,
    doc: "Where local state lives: `<state_dir>/<application_id>/<instance_id>/<task>/<store>`; \
          the running instance locks its directory, so two processes with the same `state_dir` and \
          `instance_id` cannot both run (the second fails at start, naming the directory). Mount a \
          persistent volume here so a restart replays only the changelog tail.",
};
pub(crate) const SHUTDOWN_TIMEOUT_MS: KeySpec = KeySpec {
    name: "shutdown_timeout_ms",
    default: DefaultValue::Integer(30_000),
    accepts: Accepts::Integer { min: 1, max: ONE_HOUR_MS, unit: Unit::Milliseconds },
    doc: "How long a graceful shutdown (after SIGTERM or SIGINT) may take: stop polling, finish \
          the record in flight, commit, close the stores, leave the group. Past it, or at a \
          second signal, the process exits at once with a non-zero code and commits nothing \
          more. Keep it below the pod's `terminationGracePeriodSeconds`.",
};
pub(crate) const BOUNDED_ENABLED: KeySpec = KeySpec {
    name: "bounded.enabled",
    default: DefaultValue::Bool(false),
    accepts: Accepts::Bool,
    doc: "Run to the end (as `App::run_to_end` or `run --to-end`): read every input up to its end \
          offsets at start (under exactly-once, its last stable offsets), and the records the run \
          writes to repartition topics, process, commit, and exit 0. See README.md, \"Bounded runs\".",
};
pub(crate) const BOUNDED_CLOSE_WINDOWS_AT_END: KeySpec = KeySpec {
    name: "bounded.close_windows_at_end",
    default: DefaultValue::Bool(true),
    accepts: Accepts::Bool,
    doc: "In a bounded run, whether a task whose input has ended closes every window, session \
          and join window and fires every event-time timer, as if its watermark reached infinity \
          (Flink's `MAX_WATERMARK` at the end of a bounded source). The infinite watermark is \
          kept in the stores: later records for those operators are late. Off: windows close as \
          the data's time moves, as in a continuous run.",
};
pub(crate) const HTTP_LISTEN: KeySpec = KeySpec {
    name: "http.listen",
    default: DefaultValue::Text("0.0.0.0:8080"),
    accepts: Accepts::SocketAddr,
    doc: "Address of the HTTP server for `/metrics` (Prometheus), `/health/live`, \
          `/health/ready`, `/topology` and the store queries (`/stores/...`); see docs/metrics.md.",
};
pub(crate) const HTTP_ADVERTISED_ADDRESS: KeySpec = KeySpec {
    name: "http.advertised_address",
    default: DefaultValue::Derived(
        "`http.listen` with its bound port; on all interfaces (0.0.0.0), `<instance_id>:<port>`",
    ),
    accepts: Accepts::HostPort,
    doc: "The `host:port` other instances and clients reach this instance's HTTP server at, \
          published in the `<application_id>-instances` topic so that a store query for a key \
          this instance does not own can name the owner (see \"Interactive queries\" in the README). \
          In Kubernetes, the pod IP and port (the Helm chart sets it).",
};
pub(crate) const LOG_FORMAT: KeySpec = KeySpec {
    name: "log.format",
    default: DefaultValue::Text("text"),
    accepts: Accepts::OneOf(&LOG_FORMAT_NAMES),
    doc: "How `rivulet::init_logging` writes log lines to standard output: `text` for people, \
          `json` (one object per line) for log collectors.",
};
pub(crate) const LOG_LEVEL: KeySpec = KeySpec {
    name: "log.level",
    default: DefaultValue::Text("info"),
    accepts: Accepts::LogFilter,
    doc: "Which log lines `rivulet::init_logging` keeps. The `RUST_LOG` environment variable, \
          when set, takes precedence.",
};
pub(crate) const BOOTSTRAP_SERVERS: KeySpec = KeySpec {
    name: "kafka.bootstrap_servers",
    default: DefaultValue::Text(""),
    accepts: Accepts::Servers,
    doc: "The Kafka cluster. Required to run an application against a broker.",
};
pub(crate) const KAFKA_COMMON: KeySpec = KeySpec {
    name: "kafka.common",
    default: DefaultValue::EmptyTable,
    accepts: Accepts::KafkaProperties,
    doc: "librdkafka properties for every client (consumer, producer, admin), for example \
          `security.protocol` and `sasl.*`/`ssl.*`.",
};
pub(crate) const KAFKA_CONSUMER: KeySpec = KeySpec {
    name: "kafka.consumer",
    default: DefaultValue::EmptyTable,
    accepts: Accepts::KafkaProperties,
    doc: "librdkafka properties for consumers only; they override `kafka.common`.",
};
pub(crate) const KAFKA_PRODUCER: KeySpec = KeySpec {
    name: "kafka.producer",
    default: DefaultValue::EmptyTable,
    accepts: Accepts::KafkaProperties,
    doc: "librdkafka properties for producers only; they override `kafka.common`.",
};
pub(crate) const APP: KeySpec = KeySpec {
    name: "app",
    default: DefaultValue::EmptyTable,
    accepts: Accepts::AnyTable,
    doc: "The application's own settings (topic names, thresholds), read into the \
          application's type with `Config::app()`. Keys here are not checked by rivulet.",
};

pub(crate) const ERRORS_DESERIALIZATION: KeySpec = KeySpec {
    name: "errors.deserialization",
    default: DefaultValue::Text("fail"),
    accepts: Accepts::OneOf(&POLICY_NAMES),
    doc: "What happens to a source record whose key or value cannot be deserialized. `fail` \
          stops the application with an error naming topic, partition and offset (nothing is \
          committed past it); `skip` logs it, counts it and goes on; `dead_letter` writes the \
          original key, value and headers, plus headers describing the error and its source, to \
          the dead-letter topic and goes on.",
};
pub(crate) const ERRORS_PROCESSING: KeySpec = KeySpec {
    name: "errors.processing",
    default: DefaultValue::Text("fail"),
    accepts: Accepts::OneOf(&POLICY_NAMES),
    doc: "The same choice for a record a user function rejects (a `try_*` operator returning an error).",
};
pub(crate) const ERRORS_PRODUCTION: KeySpec = KeySpec {
    name: "errors.production",
    default: DefaultValue::Text("fail"),
    accepts: Accepts::OneOf(&POLICY_NAMES),
    doc: "The same choice for an output record the producer or the broker refuses for a reason of the record \
          itself (too large, a timestamp out of the topic's range, an invalid record), under both guarantees; see \
          [Records the broker refuses](#records-the-broker-refuses).",
};
pub(crate) const ERRORS_DEAD_LETTER_TOPIC: KeySpec = KeySpec {
    name: "errors.dead_letter_topic",
    default: DefaultValue::Derived("`<application_id>-dlq`, created by rivulet"),
    accepts: Accepts::Name { max_chars: MAX_NAME_CHARS },
    doc: "Where `dead_letter` writes. The default topic is created when needed; a topic named \
          here must already exist.",
};
pub(crate) const ERRORS_OFFSET_OUT_OF_RANGE: KeySpec = KeySpec {
    name: "errors.offset_out_of_range",
    default: DefaultValue::Text("earliest"),
    accepts: Accepts::OneOf(&OFFSET_RESET_POLICY_NAMES),
    doc: "What happens when a source partition's committed offset (or the offset being fetched) \
          is no longer in the topic, its records deleted by retention or `DeleteRecords` under a \
          stopped or slow application. `earliest` goes on from the first offset still there, \
          `latest` from the partition's end; both log an ERROR naming the partition and the \
          offsets skipped, and count them in `rivulet_offset_resets_total`. `fail` stops the \
          application with an error naming the partition, the committed offset and the offsets \
          still there, and commits nothing past the gap. The default is `earliest`: what rivulet \
          did before this key existed, and Kafka Streams' default `auto.offset.reset`.",
};
pub(crate) const STATE_BLOCK_CACHE_BYTES: KeySpec = KeySpec {
    name: "state.block_cache_bytes",
    default: DefaultValue::Integer(64 * MIB),
    accepts: Accepts::Integer { min: MIB, max: TIB, unit: Unit::Bytes },
    doc: "The RocksDB memory budget of the instance: one block cache shared by all stores, \
          which also holds their memtables (see `state.write_buffer_bytes`) and their index and \
          filter blocks.",
};
pub(crate) const STATE_WRITE_BUFFER_BYTES: KeySpec = KeySpec {
    name: "state.write_buffer_bytes",
    default: DefaultValue::Integer(32 * MIB),
    accepts: Accepts::Integer { min: MIB, max: TIB, unit: Unit::Bytes },
    doc: "The part of `state.block_cache_bytes` that memtables of all stores may take (one \
          shared write-buffer manager); when it is full, the largest memtables are flushed.",
};

pub(crate) const STATE_CACHE_BYTES: KeySpec = KeySpec {
    name: "state.cache_bytes",
    default: DefaultValue::Integer(4 * MIB),
    accepts: Accepts::Integer { min: 0, max: TIB, unit: Unit::Bytes },
    doc: "A read cache of committed values in front of each RocksDB store of each task (as \
          Kafka Streams' record cache): a key read or written recently is found without a \
          RocksDB lookup. Bytes per store and task; 4 MiB holds about 50,000 small entries; 0 turns \
          the cache off.",
};
pub(crate) const STATE_WINDOW_CHANGELOG_ADDITIONAL_RETENTION_MS: KeySpec = KeySpec {
    name: "state.window_changelog_additional_retention_ms",
    default: DefaultValue::Integer(86_400_000),
    accepts: Accepts::Integer { min: 0, max: ONE_YEAR_MS, unit: Unit::Milliseconds },
    doc: "How long the changelog of a tumbling or hopping window store keeps a record beyond \
          the window's size plus grace (Kafka Streams' \
          `windowstore.changelog.additional.retention.ms`). Such changelogs are created with \
          `cleanup.policy=compact,delete` and `retention.ms` = size + grace + this; their \
          records carry the wall-clock time of the commit that wrote them, so this must cover \
          the out-of-orderness and the longest the watermark may stall while windows are open.",
};

pub(crate) const SCHEMA_REGISTRY_URL: KeySpec = KeySpec {
    name: "schema_registry.url",
    default: DefaultValue::Text(""),
    accepts: Accepts::Url,
    doc: "The Schema Registry (Confluent's REST API) that the Avro, Protobuf and JSON Schema \
          serdes of `rivulet::serde::registry` use, for example `http://registry:8081` (Apicurio: \
          `http://registry:8080/apis/ccompat/v7`). Empty: none; `SchemaRegistry::connect` then \
          fails naming this key.",
};
pub(crate) const SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO: KeySpec = KeySpec {
    name: "schema_registry.basic_auth_user_info",
    default: DefaultValue::Text(""),
    accepts: Accepts::UserInfo,
    doc: "HTTP basic authentication to the registry, as `user:password` (Confluent's \
          `basic.auth.user.info`). A secret: never logged nor printed with the config.",
};
pub(crate) const SCHEMA_REGISTRY_SSL_CA_LOCATION: KeySpec = KeySpec {
    name: "schema_registry.ssl_ca_location",
    default: DefaultValue::Text(""),
    accepts: Accepts::OptionalPath,
    doc: "A PEM file of the CA certificates that an `https://` registry's certificate must \
          chain to. Empty: the Mozilla root certificates built into rivulet.",
};
pub(crate) const SCHEMA_REGISTRY_AUTO_REGISTER_SCHEMAS: KeySpec = KeySpec {
    name: "schema_registry.auto_register_schemas",
    default: DefaultValue::Bool(false),
    accepts: Accepts::Bool,
    doc: "Whether a serde registers its writer schema under its subject when the registry \
          lacks it (Confluent's `auto.register.schemas`). Off: the schema must already be \
          registered, and the first record written (or `writer_id()` at start) fails naming the \
          subject when it is not.",
};
pub(crate) const SCHEMA_REGISTRY_SUBJECT_NAME_STRATEGY: KeySpec = KeySpec {
    name: "schema_registry.subject_name_strategy",
    default: DefaultValue::Text("topic"),
    accepts: Accepts::OneOf(&SUBJECT_NAME_STRATEGY_NAMES),
    doc: "The subject a serde registers or looks its writer schema up under, unless the serde \
          names its own: `topic` is `<topic>-key` or `<topic>-value`, `record` the record's full \
          name, `topic_record` `<topic>-<record full name>` (Confluent's TopicNameStrategy, \
          RecordNameStrategy and TopicRecordNameStrategy).",
};
pub(crate) const SCHEMA_REGISTRY_REQUEST_TIMEOUT_MS: KeySpec = KeySpec {
    name: "schema_registry.request_timeout_ms",
    default: DefaultValue::Integer(10_000),
    accepts: Accepts::Integer { min: 1, max: ONE_HOUR_MS, unit: Unit::Milliseconds },
    doc: "How long one request to the registry may take. Requests happen only at start and the \
          first time a serde meets a schema: ids and schemas are cached for the process's life.",
};

/// Every key, in the order `docs/configuration.md` lists them.
pub(crate) const KEYS: &[KeySpec] = &[
    APPLICATION_ID,
    INSTANCE_ID,
    PROCESSING_GUARANTEE,
    COMMIT_INTERVAL_MS,
    REPARTITION_PURGE_INTERVAL_MS,
    NUM_THREADS,
    GROUP_PROTOCOL,
    NUM_STANDBY_REPLICAS,
    SHUTDOWN_TIMEOUT_MS,
    STATE_DIR,
    STATE_BLOCK_CACHE_BYTES,
    STATE_WRITE_BUFFER_BYTES,
    STATE_CACHE_BYTES,
    STATE_WINDOW_CHANGELOG_ADDITIONAL_RETENTION_MS,
    ERRORS_DESERIALIZATION,
    ERRORS_PROCESSING,
    ERRORS_PRODUCTION,
    ERRORS_DEAD_LETTER_TOPIC,
    ERRORS_OFFSET_OUT_OF_RANGE,
    BOUNDED_ENABLED,
    BOUNDED_CLOSE_WINDOWS_AT_END,
    HTTP_LISTEN,
    HTTP_ADVERTISED_ADDRESS,
    LOG_FORMAT,
    LOG_LEVEL,
    BOOTSTRAP_SERVERS,
    KAFKA_COMMON,
    KAFKA_CONSUMER,
    KAFKA_PRODUCER,
    SCHEMA_REGISTRY_URL,
    SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO,
    SCHEMA_REGISTRY_SSL_CA_LOCATION,
    SCHEMA_REGISTRY_AUTO_REGISTER_SCHEMAS,
    SCHEMA_REGISTRY_SUBJECT_NAME_STRATEGY,
    SCHEMA_REGISTRY_REQUEST_TIMEOUT_MS,
    APP,
];

/// librdkafka properties rivulet sets itself; a passthrough value would
/// break its guarantees, so they are refused with the key to use instead.
pub(crate) const RESERVED_KAFKA_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "set kafka.bootstrap_servers instead"),
    ("group.id", "rivulet uses application_id as the group id"),
    ("group.instance.id", "rivulet derives it from instance_id"),
    ("client.id", "rivulet derives it from application_id and instance_id"),
    ("enable.auto.commit", "rivulet commits offsets itself in its commit cycle"),
    ("enable.auto.offset.store", "rivulet commits offsets itself in its commit cycle"),
    ("isolation.level", "rivulet reads read_committed under exactly_once"),
    ("transactional.id", "rivulet derives it from application_id, instance_id and thread"),
    ("enable.idempotence", "rivulet sets it from processing_guarantee"),
    ("group.protocol", "set group_protocol instead"),
    ("group.remote.assignor", "rivulet uses range assignment, which keeps co-partitioned topics together"),
    ("partition.assignment.strategy", "rivulet uses range assignment, which keeps co-partitioned topics together"),
];

/// Where a value came from, for error messages: the file name, or the
/// environment variable that set it.
pub(crate) fn origin_of(key: &str, value: &Value) -> String {
    match value.origin() {
        Some("the environment") => format!("environment variable {}", env_var_name(key)),
        Some(file) => format!("file {file}"),
        None => "built-in defaults".to_string(),
    }
}

/// The environment variable that sets `key` (`kafka.bootstrap_servers` ->
/// `RIVULET__KAFKA__BOOTSTRAP_SERVERS`).
pub(crate) fn env_var_name(key: &str) -> String {
    format!("RIVULET__{}", key.replace('.', "__").to_uppercase())
}

/// Whether a property's value is a secret that must never be printed.
pub(crate) fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "credential",
        "sasl.oauthbearer.config",
        "ssl.key.pem",
        "ssl_key",
        "jaas",
        "user_info",
        "user.info",
    ]
    .iter()
    .any(|marker| key.contains(marker))
}

/// The known key closest to a misspelled one, when it is close enough to
/// be a likely typo.
pub(crate) fn closest<'a>(unknown: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (edit_distance(unknown, k), k))
        .filter(|(d, k)| *d <= 3.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
