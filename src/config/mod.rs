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

mod keys;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Environment, File, FileFormat, Map, Value, ValueKind};
use serde::de::DeserializeOwned;

use keys::KeySpec;

/// The built-in defaults: `config/default.toml`.
const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Environment variable naming a config file, when `--config` is not given.
pub const CONFIG_FILE_ENV: &str = "RIVULET_CONFIG";

/// An error in the configuration. Each names the key, the bad value and
/// where it came from, and says what is accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A key rivulet does not know, most often a typo.
    #[error("unknown config key `{key}` (from {origin}){hint}")]
    UnknownKey {
        /// The dotted key path.
        key: String,
        /// Where it was set.
        origin: String,
        /// A suggestion: the closest known key, or where to find the keys.
        hint: String,
    },
    /// A known key with a value outside what it accepts.
    #[error("config key `{key}` has the bad value {value} (from {origin}); it accepts {accepted}")]
    InvalidValue {
        /// The dotted key path.
        key: String,
        /// The value as given (secrets redacted).
        value: String,
        /// Where it was set.
        origin: String,
        /// What the key accepts.
        accepted: String,
    },
    /// A required key that has no value.
    #[error("config key `{key}` must be set: {hint}")]
    Missing {
        /// The dotted key path.
        key: String,
        /// How to set it.
        hint: String,
    },
    /// The config file is missing or not valid TOML.
    #[error("config file {path} cannot be used: {reason}")]
    File {
        /// The path as given.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// The command line is not understood.
    #[error("bad command line: {0}; use --config <path to a TOML file>")]
    Args(String),
    /// librdkafka refused a passthrough property.
    #[error("librdkafka refused `{key}` = {value} in [kafka.{section}] (from {origin}): {reason}")]
    KafkaProperty {
        /// `common`, `consumer` or `producer`.
        section: String,
        /// The librdkafka property name.
        key: String,
        /// The value as given (secrets redacted).
        value: String,
        /// Where it was set.
        origin: String,
        /// librdkafka's reason, or why rivulet reserves the property.
        reason: String,
    },
    /// The `[app]` table does not fit the application's settings type.
    #[error("the [app] settings do not fit the application's settings type: {0}")]
    App(String),
    /// Any other failure of the config loader.
    #[error("loading config failed: {0}")]
    Load(String),
}

/// What a commit promises about outputs after a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessingGuarantee {
    /// Offsets are committed only after outputs are delivered; a crash can
    /// repeat outputs but never lose them.
    AtLeastOnce,
    /// Outputs, changelogs and offsets are committed in one Kafka transaction.
    ExactlyOnce,
}

impl fmt::Display for ProcessingGuarantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AtLeastOnce => "at_least_once",
            Self::ExactlyOnce => "exactly_once",
        })
    }
}

/// What happens to a bad record: see `errors.*` in docs/configuration.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorPolicy {
    /// Stop with an error naming the record's topic, partition and offset.
    Fail,
    /// Log, count, and go on.
    Skip,
    /// Write the record and a description of the error to the dead-letter topic, and go on.
    DeadLetter,
}

/// The bad-record policies.
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
}

impl ErrorsConfig {
    /// Whether any policy writes to the dead-letter topic.
    pub fn uses_dead_letter(&self) -> bool {
        [self.deserialization, self.processing, self.production].contains(&ErrorPolicy::DeadLetter)
    }
}

/// Local state sizing.
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

/// The HTTP server's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Address the server binds.
    pub listen: SocketAddr,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The logging settings, used by [`crate::init_logging`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogConfig {
    /// Text or JSON lines.
    pub format: LogFormat,
    /// A tracing filter (`info`, `warn,rivulet=debug`); `RUST_LOG` overrides it.
    pub level: String,
}

/// A map of librdkafka properties. Its `Debug` output redacts secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KafkaProperties(BTreeMap<String, String>);

impl KafkaProperties {
    /// The properties, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// One property's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Whether no property is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for KafkaProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter().map(|(k, v)| (k, redact(k, v)))).finish()
    }
}

/// The Kafka connection settings.
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

/// The loaded, validated configuration of one instance.
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
    /// How long a graceful shutdown may take before the process exits.
    pub shutdown_timeout: Duration,
    /// Root folder of local state.
    pub state_dir: PathBuf,
    /// Local state sizing.
    pub state: StateConfig,
    /// Bad-record policies.
    pub errors: ErrorsConfig,
    /// HTTP server settings.
    pub http: HttpConfig,
    /// Logging settings.
    pub log: LogConfig,
    /// Kafka settings.
    pub kafka: KafkaConfig,
    app: Map<String, Value>,
}

impl Config {
    /// Loads from the built-in defaults, `--config`/`RIVULET_CONFIG`, and
    /// the process environment.
    pub fn load() -> Result<Config, ConfigError> {
        Config::loader().args(std::env::args().skip(1))?.load()
    }

    /// A loader reading the process environment, to which files, args and
    /// defaults can be added.
    pub fn loader() -> ConfigLoader {
        ConfigLoader::default()
    }

    /// The reference of every config key rivulet knows, as Markdown table
    /// rows (key, default, accepted values, meaning); `docs/configuration.md`
    /// holds the same rows.
    pub fn reference() -> String {
        let mut out = String::from("| key | default | accepts | meaning |\n|---|---|---|---|\n");
        for k in keys::KEYS {
            out.push_str(&format!("| `{}` | {} | {} | {} |\n", k.name, k.default, k.accepted, k.doc));
        }
        out
    }

    /// The `group.instance.id` of processing thread `thread`'s consumer:
    /// `<instance_id>-<thread>` when `instance_id` was set explicitly (static
    /// group membership), `None` when it was taken from the host name.
    pub fn group_instance_id(&self, thread: usize) -> Option<String> {
        self.instance_id_explicit.then(|| format!("{}-{thread}", self.instance_id))
    }

    /// The dead-letter topic: `errors.dead_letter_topic`, or `<application_id>-dlq`.
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
        Value::new(None, ValueKind::Table(self.app.clone()))
            .try_deserialize()
            .map_err(|e| ConfigError::App(e.to_string()))
    }
}

fn redact<'a>(key: &str, value: &'a str) -> &'a str {
    if keys::is_secret(key) {
        "[redacted]"
    } else {
        value
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Prints the effective config as TOML, secrets redacted.
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "application_id = {:?}", self.application_id)?;
        writeln!(f, "instance_id = {:?}", self.instance_id)?;
        writeln!(f, "processing_guarantee = \"{}\"", self.processing_guarantee)?;
        writeln!(f, "commit_interval_ms = {}", self.commit_interval.as_millis())?;
        writeln!(f, "repartition_purge_interval_ms = {}", self.repartition_purge_interval.as_millis())?;
        writeln!(f, "num_threads = {}", self.num_threads)?;
        writeln!(f, "shutdown_timeout_ms = {}", self.shutdown_timeout.as_millis())?;
        writeln!(f, "state_dir = {:?}", self.state_dir.display().to_string())?;
        writeln!(f, "\n[state]")?;
        writeln!(f, "block_cache_bytes = {}", self.state.block_cache_bytes)?;
        writeln!(f, "write_buffer_bytes = {}", self.state.write_buffer_bytes)?;
        writeln!(f, "cache_bytes = {}", self.state.cache_bytes)?;
        writeln!(
            f,
            "window_changelog_additional_retention_ms = {}",
            self.state.window_changelog_additional_retention_ms
        )?;
        writeln!(f, "\n[errors]")?;
        for (k, p) in [
            ("deserialization", self.errors.deserialization),
            ("processing", self.errors.processing),
            ("production", self.errors.production),
        ] {
            writeln!(f, "{k} = \"{}\"", policy_name(p))?;
        }
        writeln!(f, "dead_letter_topic = {:?}", self.errors.dead_letter_topic)?;
        writeln!(f, "\n[http]\nlisten = \"{}\"", self.http.listen)?;
        let format = match self.log.format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        writeln!(f, "\n[log]\nformat = \"{format}\"\nlevel = {:?}", self.log.level)?;
        writeln!(f, "\n[kafka]\nbootstrap_servers = {:?}", self.kafka.bootstrap_servers)?;
        for (section, props) in
            [("common", &self.kafka.common), ("consumer", &self.kafka.consumer), ("producer", &self.kafka.producer)]
        {
            writeln!(f, "\n[kafka.{section}]")?;
            for (k, v) in props.iter() {
                writeln!(f, "{k:?} = {:?}", redact(k, v))?;
            }
        }
        writeln!(f, "\n[app]")?;
        write_app_table(f, "", &self.app)
    }
}

fn policy_name(p: ErrorPolicy) -> &'static str {
    match p {
        ErrorPolicy::Fail => "fail",
        ErrorPolicy::Skip => "skip",
        ErrorPolicy::DeadLetter => "dead_letter",
    }
}

const POLICIES: &[(&str, ErrorPolicy)] =
    &[("fail", ErrorPolicy::Fail), ("skip", ErrorPolicy::Skip), ("dead_letter", ErrorPolicy::DeadLetter)];

fn write_app_table(f: &mut fmt::Formatter<'_>, prefix: &str, table: &Map<String, Value>) -> fmt::Result {
    for (k, v) in table {
        let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match &v.kind {
            ValueKind::Table(inner) => write_app_table(f, &path, inner)?,
            _ if keys::is_secret(k) => writeln!(f, "{path} = \"[redacted]\"")?,
            _ => writeln!(f, "{path} = {}", keys::shown(v))?,
        }
    }
    Ok(())
}

/// Builds a [`Config`] from its layers. [`Config::load`] is the usual entry;
/// the loader lets an application set its own defaults and lets tests
/// supply the environment instead of reading the process's.
#[derive(Debug, Default)]
pub struct ConfigLoader {
    defaults: Vec<(String, String)>,
    file: Option<PathBuf>,
    env: Option<BTreeMap<String, String>>,
}

impl ConfigLoader {
    /// Sets a default for `key` (a dotted path such as `app.input_topic`),
    /// over the built-in defaults and under the file and environment.
    pub fn default_value(mut self, key: &str, value: &str) -> Self {
        self.defaults.push((key.to_string(), value.to_string()));
        self
    }

    /// Reads the config file from this path.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(path.into());
        self
    }

    /// Takes `--config <path>` (or `--config=<path>`) from command-line
    /// arguments; other arguments are left to the application.
    pub fn args<I, S>(mut self, args: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut args = args.into_iter().map(Into::into);
        while let Some(arg) = args.next() {
            if arg == "--config" {
                let path = args.next().ok_or_else(|| ConfigError::Args("--config needs a path after it".into()))?;
                self.file = Some(path.into());
            } else if let Some(path) = arg.strip_prefix("--config=") {
                if path.is_empty() {
                    return Err(ConfigError::Args("--config= needs a path".into()));
                }
                self.file = Some(path.into());
            }
        }
        Ok(self)
    }

    /// Uses these variables instead of the process environment (for tests
    /// and embedding). Only `RIVULET_CONFIG`, `HOSTNAME` and `RIVULET__*`
    /// are read.
    pub fn env<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env = Some(vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect());
        self
    }

    /// Loads and validates.
    pub fn load(self) -> Result<Config, ConfigError> {
        let env: BTreeMap<String, String> = match self.env {
            Some(env) => env,
            None => std::env::vars().collect(),
        };
        let file = self.file.clone().or_else(|| env.get(CONFIG_FILE_ENV).filter(|p| !p.is_empty()).map(PathBuf::from));

        let mut builder = config::Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        if !self.defaults.is_empty() {
            let mut code_defaults = config::Config::builder();
            for (key, value) in &self.defaults {
                code_defaults = code_defaults
                    .set_override(key.as_str(), value.as_str())
                    .map_err(|e| ConfigError::Load(format!("default for `{key}`: {e}")))?;
            }
            let code_defaults = code_defaults.build().map_err(|e| ConfigError::Load(e.to_string()))?;
            builder = builder.add_source(code_defaults);
        }
        if let Some(path) = &file {
            check_file(path)?;
            let contents = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::File { path: path.clone(), reason: e.to_string() })?;
            builder = builder.add_source(FileLayer { path: path.clone(), contents });
        }
        let rivulet_env: Map<String, String> =
            env.iter().filter(|(k, _)| k.starts_with("RIVULET__")).map(|(k, v)| (k.clone(), v.clone())).collect();
        builder = builder.add_source(
            Environment::with_prefix("RIVULET")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(rivulet_env)),
        );
        let built = builder.build().map_err(|e| match &file {
            Some(path) => ConfigError::File { path: path.clone(), reason: e.to_string() },
            None => ConfigError::Load(e.to_string()),
        })?;
        let root = config::Source::collect(&built).map_err(|e| ConfigError::Load(e.to_string()))?;
        Tree { root }.into_config(&env)
    }
}

/// The config file as a layer whose values name the file as given (the
/// `config` crate's own file source names it relative to the working
/// directory, which reads badly in errors).
#[derive(Debug, Clone)]
struct FileLayer {
    path: PathBuf,
    contents: String,
}

impl config::Source for FileLayer {
    fn clone_into_box(&self) -> Box<dyn config::Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<Map<String, Value>, config::ConfigError> {
        let origin = self.path.display().to_string();
        let map = config::Source::collect(&File::from_str(&self.contents, FileFormat::Toml))?;
        Ok(map.into_iter().map(|(k, v)| (k, with_origin(v, &origin))).collect())
    }
}

fn with_origin(value: Value, origin: &String) -> Value {
    let kind = match value.kind {
        ValueKind::Table(t) => ValueKind::Table(t.into_iter().map(|(k, v)| (k, with_origin(v, origin))).collect()),
        ValueKind::Array(a) => ValueKind::Array(a.into_iter().map(|v| with_origin(v, origin)).collect()),
        other => other,
    };
    Value::new(Some(origin), kind)
}

fn check_file(path: &Path) -> Result<(), ConfigError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(ConfigError::File { path: path.to_path_buf(), reason: "it is not a regular file".into() }),
        Err(e) => Err(ConfigError::File {
            path: path.to_path_buf(),
            reason: format!("{e}; pass an existing TOML file with --config or {CONFIG_FILE_ENV}"),
        }),
    }
}

/// The merged layers, from which keys are taken one by one; whatever is
/// left over at the end is unknown.
struct Tree {
    root: Map<String, Value>,
}

impl Tree {
    fn take(&mut self, spec: &KeySpec) -> Option<Value> {
        let mut parts: Vec<&str> = spec.name.split('.').collect();
        let last = parts.pop()?;
        let mut table = &mut self.root;
        for part in parts {
            table = match table.get_mut(part).map(|v| &mut v.kind) {
                Some(ValueKind::Table(inner)) => inner,
                _ => return None,
            };
        }
        table.remove(last)
    }

    fn take_table(&mut self, spec: &KeySpec) -> Result<Map<String, Value>, ConfigError> {
        match self.take(spec) {
            None => Ok(Map::new()),
            Some(Value { kind: ValueKind::Table(t), .. }) => Ok(t),
            Some(other) => Err(ConfigError::InvalidValue {
                key: spec.name.to_string(),
                value: keys::shown(&other),
                origin: keys::origin_of(spec.name, &other),
                accepted: spec.accepted.to_string(),
            }),
        }
    }

    fn into_config(mut self, env: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        use keys::*;
        let application_id = match self.take(&APPLICATION_ID) {
            Some(v) => identifier(&APPLICATION_ID, &v, true)?,
            None => String::new(),
        };
        if application_id.is_empty() {
            return Err(ConfigError::Missing {
                key: APPLICATION_ID.name.into(),
                hint: format!(
                    "give every application a name, in the config file (application_id = \"my-app\") \
                     or as {}",
                    env_var_name(APPLICATION_ID.name)
                ),
            });
        }
        let mut instance_id = match self.take(&INSTANCE_ID) {
            Some(v) => identifier(&INSTANCE_ID, &v, true)?,
            None => String::new(),
        };
        let instance_id_explicit = !instance_id.is_empty();
        if instance_id.is_empty() {
            instance_id = host_name(env).ok_or_else(|| ConfigError::Missing {
                key: INSTANCE_ID.name.into(),
                hint: format!(
                    "no HOSTNAME to take it from; set a stable name per instance as {}",
                    env_var_name(INSTANCE_ID.name)
                ),
            })?;
        }
        let processing_guarantee = match self.take(&PROCESSING_GUARANTEE) {
            Some(v) => one_of(
                &PROCESSING_GUARANTEE,
                &v,
                &[
                    ("at_least_once", ProcessingGuarantee::AtLeastOnce),
                    ("exactly_once", ProcessingGuarantee::ExactlyOnce),
                ],
            )?,
            None => ProcessingGuarantee::AtLeastOnce,
        };
        let commit_interval_ms = match self.take(&COMMIT_INTERVAL_MS) {
            Some(v) if !matches!(&v.kind, ValueKind::String(s) if s.is_empty()) => {
                integer(&COMMIT_INTERVAL_MS, &v, 1, MAX_COMMIT_INTERVAL_MS)?
            }
            _ => match processing_guarantee {
                ProcessingGuarantee::AtLeastOnce => 30_000,
                ProcessingGuarantee::ExactlyOnce => 100,
            },
        };
        let repartition_purge_interval_ms = match self.take(&REPARTITION_PURGE_INTERVAL_MS) {
            Some(v) => integer(&REPARTITION_PURGE_INTERVAL_MS, &v, 0, MAX_PURGE_INTERVAL_MS)?,
            None => 30_000,
        };
        let num_threads = match self.take(&NUM_THREADS) {
            Some(v) => integer(&NUM_THREADS, &v, 1, MAX_THREADS)? as usize,
            None => 1,
        };
        let shutdown_timeout_ms = match self.take(&SHUTDOWN_TIMEOUT_MS) {
            Some(v) => integer(&SHUTDOWN_TIMEOUT_MS, &v, 1, MAX_SHUTDOWN_TIMEOUT_MS)?,
            None => 30_000,
        };
        let state_dir = match self.take(&STATE_DIR) {
            Some(v) => {
                let s = text(&STATE_DIR, &v)?;
                if s.trim().is_empty() {
                    return Err(ConfigError::InvalidValue {
                        key: STATE_DIR.name.into(),
                        value: format!("{s:?}"),
                        origin: origin_of(STATE_DIR.name, &v),
                        accepted: STATE_DIR.accepted.into(),
                    });
                }
                PathBuf::from(s)
            }
            None => PathBuf::from("/var/lib/rivulet"),
        };
        let block_cache_bytes = match self.take(&STATE_BLOCK_CACHE_BYTES) {
            Some(v) => integer(&STATE_BLOCK_CACHE_BYTES, &v, 1 << 20, 1 << 40)? as usize,
            None => 64 << 20,
        };
        let write_buffer_bytes = match self.take(&STATE_WRITE_BUFFER_BYTES) {
            Some(v) => integer(&STATE_WRITE_BUFFER_BYTES, &v, 1 << 20, 1 << 40)? as usize,
            None => 32 << 20,
        };
        let cache_bytes = match self.take(&STATE_CACHE_BYTES) {
            Some(v) => integer(&STATE_CACHE_BYTES, &v, 0, 1 << 40)? as usize,
            None => 4 << 20,
        };
        let window_changelog_additional_retention_ms = match self.take(&STATE_WINDOW_CHANGELOG_ADDITIONAL_RETENTION_MS)
        {
            Some(v) => integer(&STATE_WINDOW_CHANGELOG_ADDITIONAL_RETENTION_MS, &v, 0, 365 * 86_400_000)? as i64,
            None => 86_400_000,
        };
        let mut policy = |spec: &KeySpec| -> Result<ErrorPolicy, ConfigError> {
            match self.take(spec) {
                Some(v) => one_of(spec, &v, POLICIES),
                None => Ok(ErrorPolicy::Fail),
            }
        };
        let deserialization = policy(&ERRORS_DESERIALIZATION)?;
        let processing = policy(&ERRORS_PROCESSING)?;
        let production = policy(&ERRORS_PRODUCTION)?;
        let dead_letter_topic = match self.take(&ERRORS_DEAD_LETTER_TOPIC) {
            Some(v) => identifier(&ERRORS_DEAD_LETTER_TOPIC, &v, true)?,
            None => String::new(),
        };
        let listen = match self.take(&HTTP_LISTEN) {
            Some(v) => {
                let s = text(&HTTP_LISTEN, &v)?;
                s.parse::<SocketAddr>().map_err(|_| ConfigError::InvalidValue {
                    key: HTTP_LISTEN.name.into(),
                    value: format!("{s:?}"),
                    origin: origin_of(HTTP_LISTEN.name, &v),
                    accepted: HTTP_LISTEN.accepted.into(),
                })?
            }
            None => SocketAddr::from(([0, 0, 0, 0], 8080)),
        };
        let format = match self.take(&LOG_FORMAT) {
            Some(v) => one_of(&LOG_FORMAT, &v, &[("text", LogFormat::Text), ("json", LogFormat::Json)])?,
            None => LogFormat::Text,
        };
        let level = match self.take(&LOG_LEVEL) {
            Some(v) => {
                let s = text(&LOG_LEVEL, &v)?.trim().to_string();
                if s.is_empty() || tracing_subscriber::EnvFilter::try_new(&s).is_err() {
                    return Err(ConfigError::InvalidValue {
                        key: LOG_LEVEL.name.into(),
                        value: format!("{s:?}"),
                        origin: origin_of(LOG_LEVEL.name, &v),
                        accepted: LOG_LEVEL.accepted.into(),
                    });
                }
                s
            }
            None => "info".to_string(),
        };
        let bootstrap_servers = match self.take(&BOOTSTRAP_SERVERS) {
            Some(v) => text(&BOOTSTRAP_SERVERS, &v)?.trim().to_string(),
            None => String::new(),
        };
        let common = passthrough(&KAFKA_COMMON, self.take_table(&KAFKA_COMMON)?)?;
        let consumer = passthrough(&KAFKA_CONSUMER, self.take_table(&KAFKA_CONSUMER)?)?;
        let producer = passthrough(&KAFKA_PRODUCER, self.take_table(&KAFKA_PRODUCER)?)?;
        let app = self.take_table(&APP)?;

        self.reject_leftovers()?;
        Ok(Config {
            application_id,
            instance_id,
            instance_id_explicit,
            processing_guarantee,
            commit_interval: Duration::from_millis(commit_interval_ms),
            repartition_purge_interval: Duration::from_millis(repartition_purge_interval_ms),
            num_threads,
            shutdown_timeout: Duration::from_millis(shutdown_timeout_ms),
            state_dir,
            state: StateConfig {
                block_cache_bytes,
                write_buffer_bytes,
                cache_bytes,
                window_changelog_additional_retention_ms,
            },
            errors: ErrorsConfig { deserialization, processing, production, dead_letter_topic },
            http: HttpConfig { listen },
            log: LogConfig { format, level },
            kafka: KafkaConfig { bootstrap_servers, common, consumer, producer },
            app,
        })
    }

    fn reject_leftovers(&self) -> Result<(), ConfigError> {
        let mut leftovers = Vec::new();
        collect_leaves("", &self.root, &mut leftovers);
        let Some((key, value)) = leftovers.into_iter().next() else {
            return Ok(());
        };
        let known = keys::KEYS.iter().map(|k| k.name);
        let hint = match keys::closest(&key, known) {
            Some(near) => format!("; did you mean `{near}`?"),
            None => format!(
                "; rivulet's keys are {} (see docs/configuration.md), and the application's own \
                 settings go under [app]",
                keys::KEYS.iter().map(|k| format!("`{}`", k.name)).collect::<Vec<_>>().join(", ")
            ),
        };
        Err(ConfigError::UnknownKey { origin: keys::origin_of(&key, &value), key, hint })
    }
}

fn collect_leaves(prefix: &str, table: &Map<String, Value>, out: &mut Vec<(String, Value)>) {
    for (k, v) in table {
        let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match &v.kind {
            ValueKind::Table(inner) => collect_leaves(&path, inner, out),
            _ => out.push((path, v.clone())),
        }
    }
}

fn host_name(env: &BTreeMap<String, String>) -> Option<String> {
    let from_env = env.get("HOSTNAME").map(|h| h.trim().to_string()).filter(|h| !h.is_empty());
    let name = from_env.or_else(|| {
        std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_string()).filter(|h| !h.is_empty())
    })?;
    Some(
        name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' }).collect(),
    )
}

/// Turns a `[kafka.*]` table into librdkafka properties and lets librdkafka
/// check every name and value now rather than when the first client starts.
fn passthrough(spec: &KeySpec, table: Map<String, Value>) -> Result<KafkaProperties, ConfigError> {
    let section = spec.name.trim_start_matches("kafka.");
    let mut props = BTreeMap::new();
    for (raw_key, value) in table {
        let from_env = value.origin() == Some("the environment");
        // Environment variable names cannot hold dots: RIVULET__KAFKA__CONSUMER__SESSION_TIMEOUT_MS
        // sets session.timeout.ms.
        let key = if from_env { raw_key.replace('_', ".") } else { raw_key.clone() };
        let origin = keys::origin_of(&format!("{}.{raw_key}", spec.name), &value);
        let text = keys::scalar_text(&value).ok_or_else(|| ConfigError::KafkaProperty {
            section: section.into(),
            key: key.clone(),
            value: keys::shown(&value),
            origin: origin.clone(),
            reason: "librdkafka properties take a string, integer or boolean".into(),
        })?;
        let shown = format!("{:?}", redact(&key, &text));
        if let Some((_, why)) = keys::RESERVED_KAFKA_PROPERTIES.iter().find(|(name, _)| *name == key) {
            return Err(ConfigError::KafkaProperty {
                section: section.into(),
                key,
                value: shown,
                origin,
                reason: format!("rivulet sets this property itself: {why}"),
            });
        }
        let mut check = rdkafka::ClientConfig::new();
        check.set(key.as_str(), text.as_str());
        if let Err(e) = check.create_native_config() {
            return Err(ConfigError::KafkaProperty {
                section: section.into(),
                key,
                value: shown,
                origin,
                reason: e.to_string(),
            });
        }
        props.insert(key, text);
    }
    Ok(KafkaProperties(props))
}
