//! What can be wrong with a configuration; each error names the key, the
//! value and where it came from, and says what is accepted.

use super::*;

/// An error in the configuration. Each names the key, the bad value and
/// where it came from, and says what is accepted.
///
/// ```
/// use rivulet::{Config, ConfigError};
/// let err = Config::loader()
///     .env([("RIVULET__APPLICATION_ID", "orders"), ("RIVULET__NUM_THREADS", "lots")])
///     .load()
///     .unwrap_err();
/// assert!(matches!(&err, ConfigError::InvalidValue { key, .. } if key == "num_threads"));
/// let message = err.to_string();
/// assert!(message.starts_with("config key `num_threads` has the bad value \"lots\""), "{message}");
/// ```
#[derive(thiserror::Error)]
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
    /// A `${directory:...}` or `${file:...}` reference that cannot be read.
    #[error(
        "config key `{key}` refers to {reference} (from {origin}), which cannot be read: {reason}; mount the \
         secret there or fix the reference (see Secrets in docs/configuration.md)"
    )]
    Reference {
        /// The dotted key path (or librdkafka property).
        key: String,
        /// The reference, as written.
        reference: String,
        /// Where it was set.
        origin: String,
        /// Why it cannot be read.
        reason: String,
    },
    /// The `[app]` table does not fit the application's settings type.
    #[error("the [app] settings do not fit the application's settings type: {0}")]
    App(String),
    /// Any other failure of the config loader.
    #[error("loading config failed: {0}")]
    Load(String),
}
