//! Typed configuration.
//!
//! Layers, each overriding the one before:
//!
//! 1. `config/default.toml`, compiled into the library;
//! 2. defaults an application sets in code ([`ConfigLoader::default_value`]);
//! 3. an optional TOML file named by `--config <path>` or `RIVULET_CONFIG`;
//! 4. environment variables `RIVULET__SECTION__KEY`, for example
//!    `RIVULET__KAFKA__BOOTSTRAP_SERVERS` or `RIVULET__APP__INPUT_TOPIC`.
//!
//! Every key rivulet knows is described once, in `keys.rs`, with its default,
//! what it accepts and what it means. A key that is not known, or a value
//! outside what is accepted, fails the load with an error naming the key,
//! the bad value, where it came from and what is accepted. librdkafka
//! properties under `[kafka.common]`, `[kafka.consumer]` and
//! `[kafka.producer]` are checked by librdkafka itself at load time.
//! Secrets in those maps (and in `[app]`) are redacted whenever the config is
//! printed, with `{}` or `{:?}`.
//!
//! ```
//! # fn main() -> Result<(), rivulet::ConfigError> {
//! let config = rivulet::Config::loader()
//!     .env([("RIVULET__APPLICATION_ID", "orders"), ("RIVULET__NUM_THREADS", "4")])
//!     .load()?;
//! assert_eq!(config.num_threads, 4);
//! # Ok(()) }
//! ```

mod choices;
mod display;
mod error;
mod keys;
mod loader;
pub(crate) mod reference;
mod spec;
#[cfg(test)]
mod tests;
mod tree;

use display::redact;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Environment, File, FileFormat, Map, Value, ValueKind};
use serde::de::DeserializeOwned;

pub use choices::{ErrorPolicy, GroupProtocol, OffsetResetPolicy, ProcessingGuarantee};
pub use error::ConfigError;
use keys::KeySpec;
pub use loader::ConfigLoader;
use tree::Tree;

/// The built-in defaults: `config/default.toml`.
const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Environment variable naming a config file, when `--config` is not given.
pub(crate) const CONFIG_FILE_ENV: &str = "RIVULET_CONFIG";

/// The bad-record policies: the `[errors]` table.
///
/// ```
/// # fn main() -> Result<(), rivulet::ConfigError> {
/// use rivulet::{Config, ErrorPolicy};
/// let config = Config::loader()
///     .env([
///         ("RIVULET__APPLICATION_ID", "orders"),
///         ("RIVULET__ERRORS__PROCESSING", "skip"),
///         ("RIVULET__ERRORS__DEAD_LETTER_TOPIC", "orders-bad"),
///     ])
///     .load()?;
/// assert_eq!(config.errors.processing, ErrorPolicy::Skip);
/// assert_eq!(config.errors.dead_letter_topic, "orders-bad");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErrorsConfig {
    /// Source records that cannot be deserialized.
    pub deserialization: ErrorPolicy,
    /// Records a user function rejects.
    pub processing: ErrorPolicy,
    /// Output records the producer rejects.
    pub production: ErrorPolicy,
    /// The dead-letter topic; empty means `<application_id>-dlq`.
    pub dead_letter_topic: String,
    /// A committed offset whose records were deleted.
    pub offset_out_of_range: OffsetResetPolicy,
}

impl ErrorsConfig {
    /// Whether any policy writes to the dead-letter topic.
    pub(crate) fn uses_dead_letter(&self) -> bool {
        [self.deserialization, self.processing, self.production].contains(&ErrorPolicy::DeadLetter)
    }
}

/// Local state sizing: the `[state]` table.
///
/// ```
/// # fn main() -> Result<(), rivulet::ConfigError> {
/// let config = rivulet::Config::loader()
///     .env([("RIVULET__APPLICATION_ID", "orders"), ("RIVULET__STATE__CACHE_BYTES", "0")])
///     .load()?;
/// assert_eq!(config.state.cache_bytes, 0); // no read cache
/// assert_eq!(config.state.block_cache_bytes, 64 << 20); // the default
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StateConfig {
    /// The shared RocksDB block cache, bytes.
    pub block_cache_bytes: usize,
    /// The shared RocksDB memtable budget, bytes.
    pub write_buffer_bytes: usize,
    /// The read cache in front of each RocksDB store of each task, bytes
    /// (0: none).
    pub cache_bytes: usize,
    /// Added to size + grace for the `retention.ms` of window-store
    /// changelogs, ms.
    pub window_changelog_additional_retention_ms: i64,
}

/// Bounded runs: the `[bounded]` table (see [`App::run_to_end`](crate::App::run_to_end)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BoundedConfig {
    /// Run to the end offsets seen at start, then stop (`bounded.enabled`).
    pub enabled: bool,
    /// Close every window at the end of input (`bounded.close_windows_at_end`).
    pub close_windows_at_end: bool,
}

/// The HTTP server's settings: the `[http]` table.
///
/// ```
/// # fn main() -> Result<(), rivulet::ConfigError> {
/// let config = rivulet::Config::loader()
///     .env([("RIVULET__APPLICATION_ID", "orders"), ("RIVULET__HTTP__LISTEN", "127.0.0.1:9000")])
///     .load()?;
/// assert_eq!(config.http.listen.port(), 9000);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Address the server binds.
    pub listen: SocketAddr,
    /// `host:port` other instances reach this one at (`http.advertised_address`);
    /// empty: derived at start (see `RunningApp::advertised_address`).
    pub advertised_address: String,
}

/// How log lines are written: the key `log.format`, `text` (the default)
/// or `json`.
///
/// ```
/// # fn main() -> Result<(), rivulet::ConfigError> {
/// use rivulet::{Config, LogFormat};
/// let config = Config::loader()
///     .env([("RIVULET__APPLICATION_ID", "orders"), ("RIVULET__LOG__FORMAT", "json")])
///     .load()?;
/// assert_eq!(config.log.format, LogFormat::Json);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The logging settings, used by [`crate::init_logging`]: the `[log]` table.
///
/// ```
/// # fn main() -> Result<(), rivulet::ConfigError> {
/// use rivulet::{Config, LogFormat};
/// let config = Config::loader()
///     .env([("RIVULET__APPLICATION_ID", "orders"), ("RIVULET__LOG__LEVEL", "warn,rivulet=debug")])
///     .load()?;
/// assert_eq!(config.log.level, "warn,rivulet=debug");
/// assert_eq!(config.log.format, LogFormat::Text);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogConfig {
    /// Text or JSON lines.
    pub format: LogFormat,
    /// A tracing filter (`info`, `warn,rivulet=debug`); `RUST_LOG` overrides it.
    pub level: String,
}

/// A map of librdkafka properties, from `[kafka.common]`,
/// `[kafka.consumer]` or `[kafka.producer]`. Its `Debug` output redacts
/// secrets.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let path = std::env::temp_dir().join(format!("rivulet-doc-kafka-{}.toml", std::process::id()));
/// std::fs::write(&path, "application_id = \"orders\"\n[kafka.common]\n\"sasl.password\" = \"hunter2\"\n")?;
/// let config = rivulet::Config::loader().env([("RIVULET_CONFIG", path.to_str().unwrap())]).load()?;
/// # std::fs::remove_file(&path)?;
/// assert_eq!(config.kafka.common.get("sasl.password"), Some("hunter2"));
/// assert_eq!(format!("{:?}", config.kafka.common), r#"{"sasl.password": "[redacted]"}"#);
/// # Ok(()) }
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KafkaProperties(BTreeMap<String, String>);

impl KafkaProperties {
    /// The properties, in name order.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let path = std::env::temp_dir().join(format!("rivulet-doc-iter-{}.toml", std::process::id()));
    /// std::fs::write(&path, "application_id = \"orders\"\n[kafka.consumer]\n\"fetch.min.bytes\" = 1024\n\"client.rack\" = \"eu-1a\"\n")?;
    /// let config = rivulet::Config::loader().file(&path).load()?;
    /// # std::fs::remove_file(&path)?;
    /// let props: Vec<(&str, &str)> = config.kafka.consumer.iter().collect();
    /// assert_eq!(props, [("client.rack", "eu-1a"), ("fetch.min.bytes", "1024")]);
    /// # Ok(()) }
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// One property's value.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let path = std::env::temp_dir().join(format!("rivulet-doc-get-{}.toml", std::process::id()));
    /// std::fs::write(&path, "application_id = \"orders\"\n[kafka.producer]\n\"compression.type\" = \"zstd\"\n")?;
    /// let config = rivulet::Config::loader().file(&path).load()?;
    /// # std::fs::remove_file(&path)?;
    /// assert_eq!(config.kafka.producer.get("compression.type"), Some("zstd"));
    /// assert_eq!(config.kafka.producer.get("linger.ms"), None);
    /// # Ok(()) }
    /// ```
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Whether no property is set.
    ///
    /// ```
    /// # fn main() -> Result<(), rivulet::ConfigError> {
    /// let config = rivulet::Config::loader().env([("RIVULET__APPLICATION_ID", "orders")]).load()?;
    /// assert!(config.kafka.common.is_empty());
    /// # Ok(()) }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for KafkaProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter().map(|(k, v)| (k, redact(k, v)))).finish()
    }
}

/// The Kafka connection settings: the `[kafka]` table.
///
/// ```
/// # fn main() -> Result<(), rivulet::ConfigError> {
/// let config = rivulet::Config::loader()
///     .env([("RIVULET__APPLICATION_ID", "orders"), ("RIVULET__KAFKA__BOOTSTRAP_SERVERS", "kafka-0:9092,kafka-1:9092")])
///     .load()?;
/// assert_eq!(config.kafka.bootstrap_servers, "kafka-0:9092,kafka-1:9092");
/// assert!(config.kafka.consumer.is_empty());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KafkaConfig {
    /// `host:port,...`; empty means none configured.
    pub bootstrap_servers: String,
    /// librdkafka properties for every client.
    pub common: KafkaProperties,
    /// librdkafka properties for consumers (over `common`).
    pub consumer: KafkaProperties,
    /// librdkafka properties for producers (over `common`).
    pub producer: KafkaProperties,
}

/// Which subject a Schema Registry serde registers or looks its writer
/// schema up under (Confluent's subject name strategies): the key
/// `schema_registry.subject_name_strategy`, `topic` (the default), `record`
/// or `topic_record`.
///
/// ```
/// # fn main() -> Result<(), rivulet::ConfigError> {
/// use rivulet::config::SubjectNameStrategy;
/// let config = rivulet::Config::loader()
///     .env([("RIVULET__APPLICATION_ID", "orders"), ("RIVULET__SCHEMA_REGISTRY__SUBJECT_NAME_STRATEGY", "record")])
///     .load()?;
/// assert_eq!(config.schema_registry.subject_name_strategy, SubjectNameStrategy::Record);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectNameStrategy {
    /// `<topic>-key` or `<topic>-value` (TopicNameStrategy).
    Topic,
    /// The record's full name, `namespace.Name` (RecordNameStrategy).
    Record,
    /// `<topic>-<record full name>` (TopicRecordNameStrategy).
    TopicRecord,
}

impl fmt::Display for SubjectNameStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Topic => "topic",
            Self::Record => "record",
            Self::TopicRecord => "topic_record",
        })
    }
}

/// The Schema Registry settings: the `[schema_registry]` table, read by
/// `rivulet::serde::registry::SchemaRegistry::connect`. Its `Debug` output
/// redacts the basic-auth user info.
///
/// ```
/// # fn main() -> Result<(), rivulet::ConfigError> {
/// let config = rivulet::Config::loader()
///     .env([
///         ("RIVULET__APPLICATION_ID", "orders"),
///         ("RIVULET__SCHEMA_REGISTRY__URL", "https://registry:8081/"),
///         ("RIVULET__SCHEMA_REGISTRY__BASIC_AUTH_USER_INFO", "svc:hunter2"),
///     ])
///     .load()?;
/// assert_eq!(config.schema_registry.url, "https://registry:8081");
/// assert!(!config.schema_registry.auto_register_schemas);
/// assert!(!format!("{:?}", config.schema_registry).contains("hunter2"));
/// assert!(!config.to_string().contains("hunter2"));
/// # Ok(()) }
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SchemaRegistryConfig {
    /// The registry's base URL, without a trailing `/`; empty: none.
    pub url: String,
    /// `user:password` for HTTP basic authentication; empty: none. Secret.
    pub basic_auth_user_info: String,
    /// A PEM file of CA certificates for an `https://` registry.
    pub ssl_ca_location: Option<PathBuf>,
    /// Whether serdes register their writer schemas.
    pub auto_register_schemas: bool,
    /// The default subject name strategy of serdes.
    pub subject_name_strategy: SubjectNameStrategy,
    /// How long one request may take.
    pub request_timeout: Duration,
}

impl fmt::Debug for SchemaRegistryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchemaRegistryConfig")
            .field("url", &self.url)
            .field("basic_auth_user_info", &if self.basic_auth_user_info.is_empty() { "" } else { "[redacted]" })
            .field("ssl_ca_location", &self.ssl_ca_location)
            .field("auto_register_schemas", &self.auto_register_schemas)
            .field("subject_name_strategy", &self.subject_name_strategy)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// The loaded, validated configuration of one instance. Load it with
/// [`Config::load`] (or [`Config::loader`]); its fields can be changed
/// before it is given to [`App::new`](crate::App::new). `Display` prints
/// it as TOML, secrets redacted.
///
/// ```
/// # fn main() -> Result<(), rivulet::ConfigError> {
/// use std::time::Duration;
/// let mut config = rivulet::Config::loader()
///     .env([("RIVULET__APPLICATION_ID", "orders"), ("RIVULET__NUM_THREADS", "2")])
///     .load()?;
/// config.commit_interval = Duration::from_secs(1);
/// let toml = config.to_string();
/// assert!(toml.contains("application_id = \"orders\""), "{toml}");
/// assert!(toml.contains("num_threads = 2") && toml.contains("commit_interval_ms = 1000"), "{toml}");
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// Names the application (group id, internal topic prefix).
    pub application_id: String,
    /// This instance's stable identity.
    pub instance_id: String,
    /// Whether `instance_id` was set explicitly (not taken from the host
    /// name): then consumers use static group membership.
    instance_id_explicit: bool,
    /// At-least-once or exactly-once.
    pub processing_guarantee: ProcessingGuarantee,
    /// Time between commit cycles.
    pub commit_interval: Duration,
    /// Least time between two deletions of consumed repartition records.
    pub repartition_purge_interval: Duration,
    /// Processing threads in this instance.
    pub num_threads: usize,
    /// `group_protocol`: how the instances share the partitions.
    pub group_protocol: GroupProtocol,
    /// Standby replicas per task (`group_protocol = "streams"` only).
    pub num_standby_replicas: u32,
    /// How long a graceful shutdown may take before the process exits.
    pub shutdown_timeout: Duration,
    /// Root folder of local state.
    pub state_dir: PathBuf,
    /// Local state sizing.
    pub state: StateConfig,
    /// Bad-record policies.
    pub errors: ErrorsConfig,
    /// Bounded runs (`[bounded]`).
    pub bounded: BoundedConfig,
    /// HTTP server settings.
    pub http: HttpConfig,
    /// Logging settings.
    pub log: LogConfig,
    /// Kafka settings.
    pub kafka: KafkaConfig,
    /// Schema Registry settings.
    pub schema_registry: SchemaRegistryConfig,
    app: Map<String, Value>,
}

impl Config {
    /// Loads from the built-in defaults, `--config`/`RIVULET_CONFIG`, and
    /// the process environment: what `main` usually calls.
    ///
    /// ```
    /// # fn main() -> Result<(), rivulet::ConfigError> {
    /// # std::env::set_var("RIVULET__APPLICATION_ID", "orders");
    /// // With RIVULET__APPLICATION_ID=orders in the environment:
    /// let config = rivulet::Config::load()?;
    /// assert_eq!(config.application_id, "orders");
    /// # Ok(()) }
    /// ```
    pub fn load() -> Result<Config, ConfigError> {
        Config::loader().args(std::env::args().skip(1))?.load()
    }

    /// A loader reading the process environment, to which files, args and
    /// defaults can be added; see [`ConfigLoader`].
    ///
    /// ```
    /// # fn main() -> Result<(), rivulet::ConfigError> {
    /// let config = rivulet::Config::loader()
    ///     .default_value("application_id", "wordcount")
    ///     .env([("RIVULET__NUM_THREADS", "3")])
    ///     .load()?;
    /// assert_eq!((config.application_id.as_str(), config.num_threads), ("wordcount", 3));
    /// # Ok(()) }
    /// ```
    pub fn loader() -> ConfigLoader {
        ConfigLoader::default()
    }

    /// The reference of every config key rivulet knows, as Markdown table
    /// rows (key, default, accepted values, meaning); `docs/configuration.md`
    /// holds the same rows. An application can print it for its operators.
    ///
    /// ```
    /// let reference = rivulet::Config::reference();
    /// assert!(reference.starts_with("| key | default | accepts | meaning |"));
    /// assert!(reference.lines().any(|row| row.starts_with("| `num_threads` | 1 |")));
    /// ```
    pub fn reference() -> String {
        let mut out = String::from("| key | default | accepts | meaning |\n|---|---|---|---|\n");
        for k in keys::KEYS {
            out.push_str(&format!("| `{}` | {} | {} | {} |\n", k.name, k.default, k.accepted(), k.doc));
        }
        out
    }

    /// The `group.instance.id` of processing thread `thread`'s consumer:
    /// `<instance_id>-<thread>` when `instance_id` was set explicitly (static
    /// group membership), `None` when it was taken from the host name.
    pub(crate) fn group_instance_id(&self, thread: usize) -> Option<String> {
        self.instance_id_explicit.then(|| format!("{}-{thread}", self.instance_id))
    }

    /// This instance's state directory:
    /// `<state_dir>/<application_id>/<instance_id>`, with characters other
    /// than letters, digits, `.`, `_` and `-` in the instance id replaced by
    /// `_`. Instances that share a `state_dir` (a volume, a host) keep
    /// their stores apart; the running instance locks it.
    ///
    /// ```
    /// # fn main() -> Result<(), rivulet::ConfigError> {
    /// let config = rivulet::Config::loader()
    ///     .env([("RIVULET__APPLICATION_ID", "orders"), ("RIVULET__INSTANCE_ID", "orders-0"), ("RIVULET__STATE_DIR", "/var/lib/rivulet")])
    ///     .load()?;
    /// assert_eq!(config.instance_state_dir(), std::path::Path::new("/var/lib/rivulet/orders/orders-0"));
    /// # Ok(()) }
    /// ```
    pub fn instance_state_dir(&self) -> PathBuf {
        let instance: String = self
            .instance_id
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
            .collect();
        // `.` and `..` would not be directories of their own.
        let instance = if instance.chars().all(|c| c == '.') { instance.replace('.', "_") } else { instance };
        self.state_dir.join(&self.application_id).join(instance)
    }

    /// The `transactional.id` of processing thread `thread`'s producer
    /// under exactly-once, `<application_id>-<instance_id>-<thread>`: stable
    /// across restarts of the instance, so a restarted thread fences its
    /// predecessor. `None` under at-least-once.
    pub(crate) fn transactional_id(&self, thread: usize) -> Option<String> {
        (self.processing_guarantee == ProcessingGuarantee::ExactlyOnce)
            .then(|| format!("{}-{}-{thread}", self.application_id, self.instance_id))
    }

    /// The `group.id` of the restore consumers, `<application_id>-restore`:
    /// librdkafka assigns partitions only to a consumer with a group, and
    /// this one never joins it nor commits to it.
    pub(crate) fn restore_group_id(&self) -> String {
        format!("{}-restore", self.application_id)
    }

    /// The dead-letter topic: `errors.dead_letter_topic`, or `<application_id>-dlq`.
    ///
    /// ```
    /// # fn main() -> Result<(), rivulet::ConfigError> {
    /// let config = rivulet::Config::loader().env([("RIVULET__APPLICATION_ID", "orders")]).load()?;
    /// assert_eq!(config.dead_letter_topic(), "orders-dlq");
    /// # Ok(()) }
    /// ```
    pub fn dead_letter_topic(&self) -> String {
        if self.errors.dead_letter_topic.is_empty() {
            format!("{}-dlq", self.application_id)
        } else {
            self.errors.dead_letter_topic.clone()
        }
    }

    /// Reads the `[app]` table into the application's own settings type.
    ///
    /// ```
    /// #[derive(serde::Deserialize)]
    /// struct Settings { input_topic: String, threshold: u32 }
    /// # fn main() -> Result<(), rivulet::ConfigError> {
    /// let config = rivulet::Config::loader()
    ///     .env([
    ///         ("RIVULET__APPLICATION_ID", "alerts"),
    ///         ("RIVULET__APP__INPUT_TOPIC", "readings"),
    ///         ("RIVULET__APP__THRESHOLD", "90"),
    ///     ])
    ///     .load()?;
    /// let settings: Settings = config.app()?;
    /// assert_eq!(settings.threshold, 90);
    /// # Ok(()) }
    /// ```
    pub fn app<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        Value::new(None, ValueKind::Table(tree::resolve_table(keys::APP.name, &self.app)?))
            .try_deserialize()
            .map_err(|e| ConfigError::App(e.to_string()))
    }
}
