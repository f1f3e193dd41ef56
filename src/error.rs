//! The crate's top-level error and `Result` alias.
//!
//! Each layer has its own error enum ([`ConfigError`], [`TopologyError`],
//! [`StateError`], [`ProcessError`]); [`Error`] wraps them, and its helpers
//! tell the caller what to do next.

use rdkafka::error::KafkaError;

use crate::config::ConfigError;
use crate::record::SourceOffset;

pub(crate) mod kafka;
use crate::processor::{ProcessError, TopologyError};
use crate::state::StateError;

/// Anything that can stop rivulet.
///
/// `Debug` prints the message and its causes, so `fn main() -> rivulet::Result<()>`
/// shows an operator the readable error.
///
/// ```
/// use rivulet::{App, Config, Error};
/// # fn main() -> rivulet::Result<()> {
/// let config = Config::loader().env([("RIVULET__APPLICATION_ID", "orders")]).load()?;
/// // No Kafka cluster is configured.
/// let err = App::new(config).err().expect("no bootstrap servers");
/// assert!(matches!(err, Error::Config(_)));
/// assert!(err.to_string().starts_with("config key `kafka.bootstrap_servers` must be set"), "{err}");
/// # Ok(()) }
/// ```
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid; fix it and restart.
    #[error(transparent)]
    Config(Box<ConfigError>),
    /// The topology is invalid; fix the code that builds it.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// A Kafka client operation failed.
    #[error("{context}: {source}")]
    Kafka {
        /// What rivulet was doing.
        context: String,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// Kafka topics are missing or do not fit the topology.
    #[error("{0}")]
    Topics(String),
    /// Local state failed.
    #[error(transparent)]
    State(Box<StateError>),
    /// A record failed under the `fail` policy. Nothing past it was
    /// committed; after fixing the cause (or choosing `skip` or
    /// `dead_letter`), a restart processes it again.
    #[error("record at {source_offset} failed: {error}")]
    Record {
        /// Where the record came from.
        source_offset: String,
        /// Why it failed.
        #[source]
        error: Box<ProcessError>,
    },
    /// Processing failed outside a single record.
    #[error(transparent)]
    Process(Box<ProcessError>),
    /// This instance lost its tasks to another (its transactional producer
    /// was fenced, or its group generation is stale): its uncommitted work
    /// is dropped and the processing thread rejoins the group.
    #[error("tasks migrated: {0}")]
    TaskMigrated(String),
    /// The Kafka principal lacks a permission: an ACL is missing. The
    /// message names the operation and resource, and what to grant.
    #[error("{0}")]
    NotAuthorized(String),
    /// The HTTP server (metrics, health) cannot serve on its address.
    #[error(
        "cannot serve HTTP on {listen} (config key http.listen): {reason}; set http.listen (or \
         RIVULET__HTTP__LISTEN) to a free address, or stop what uses this one"
    )]
    Http {
        /// The address from `http.listen`.
        listen: std::net::SocketAddr,
        /// Why (address in use, not available, ...).
        reason: String,
    },
    /// Logging could not be set up (see [`crate::init_logging`]).
    #[error("setting up logging: {0}")]
    Logging(String),
    /// The test driver was used wrongly (an unknown store, a value its
    /// topic's serde cannot encode).
    #[error("test driver: {0}")]
    TestDriver(String),
    /// A bug in rivulet.
    #[error("internal error (a rivulet bug): {0}")]
    Internal(String),
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let message = self.to_string();
        f.write_str(&message)?;
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            let text = c.to_string();
            if !message.contains(&text) {
                write!(f, "\n  caused by: {text}")?;
            }
            cause = c.source();
        }
        Ok(())
    }
}

impl Error {
    /// Wraps a Kafka error with what rivulet was doing when it happened.
    pub(crate) fn kafka(context: impl Into<String>, source: KafkaError) -> Self {
        Error::Kafka { context: context.into(), source }
    }

    /// The principal may not `what` (`WRITE transactional id 'x'`): grant
    /// `grant`. `cause` is what rivulet was doing and what Kafka said.
    pub(crate) fn not_authorized(what: &str, grant: &str, cause: &str) -> Self {
        Error::NotAuthorized(format!(
            "the principal is not authorized to {what}; grant it {grant} (see \"ACLs\" in docs/configuration.md). \
             Kafka refused: {cause}"
        ))
    }

    pub(crate) fn record(source: Option<&SourceOffset>, error: ProcessError) -> Self {
        Error::Record {
            source_offset: source.map(ToString::to_string).unwrap_or_else(|| "(no source record)".into()),
            error: Box::new(error),
        }
    }

    /// Whether retrying the same operation may succeed (a broker that is
    /// briefly unreachable, a timed-out request).
    ///
    /// ```
    /// use rdkafka::error::KafkaError;
    /// use rdkafka::types::RDKafkaErrorCode;
    /// use rivulet::Error;
    /// let timed_out = Error::Kafka {
    ///     context: "committing".into(),
    ///     source: KafkaError::ConsumerCommit(RDKafkaErrorCode::RequestTimedOut),
    /// };
    /// assert!(timed_out.is_retriable());
    /// assert!(!Error::Topics("topic orders is missing".into()).is_retriable());
    /// ```
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Kafka { source, .. } => {
                crate::error::kafka::classify(source) == crate::error::kafka::KafkaErrorKind::Retriable
            }
            _ => false,
        }
    }
}

// The large layer errors are boxed so that `Result<T, Error>` stays small
// on the happy path (and in users' code, where clippy checks it).
impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(Box::new(e))
    }
}

impl From<StateError> for Error {
    fn from(e: StateError) -> Self {
        Error::State(Box::new(e))
    }
}

impl From<ProcessError> for Error {
    fn from(e: ProcessError) -> Self {
        Error::Process(Box::new(e))
    }
}

/// `Result` with [`Error`]: what `main` and the functions that build a
/// topology can return, with `?` on every rivulet call.
///
/// ```
/// use rivulet::prelude::*;
/// fn topology() -> Result<Topology> {
///     let mut b = Topology::builder();
///     b.stream("in", Serdes::string(), Serdes::string()).to("out", Serdes::string(), Serdes::string());
///     Ok(b.build()?) // a TopologyError becomes an Error
/// }
/// assert_eq!(topology().unwrap().source_topics(), ["in"]);
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;
