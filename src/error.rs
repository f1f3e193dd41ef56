//! The crate's top-level error and `Result` alias.
//!
//! Each layer has its own error enum ([`ConfigError`], [`TopologyError`],
//! [`StateError`], [`ProcessError`]); [`Error`] wraps them, and its helpers
//! tell the caller what to do next.

use rdkafka::error::KafkaError;

use crate::config::ConfigError;
use crate::record::SourceOffset;

pub(crate) mod kafka;
pub(crate) mod query;
use crate::processor::{ProcessError, TopologyError};
use crate::state::StateError;

/// Anything that can stop rivulet.
///
/// `Debug` prints the message and its causes, so `fn main() -> rivulet::Result<()>`
/// shows an operator the readable error (as do [`ConfigError`],
/// [`TopologyError`], [`StateError`], [`ProcessError`] and
/// [`SerdeError`](crate::serde::SerdeError), and [`crate::main`], which
/// prints it after `error: `).
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
    /// A source partition's committed offset (or the next one to read) was
    /// deleted under the application, and `errors.offset_out_of_range` is
    /// `fail`: the message names the partition, the offsets still there
    /// and what to do. Nothing was committed past the gap.
    #[error("{0}")]
    OffsetOutOfRange(String),
    /// A store query has no answer (see `rivulet::query`).
    #[error(transparent)]
    Query(Box<query::QueryError>),
    /// The `reset` subcommand cannot go on (members of the group are
    /// alive, a source topic is missing, a step failed); see
    /// [`crate::reset`].
    #[error("{0}")]
    Reset(String),
    /// The Schema Registry cannot be used: unreachable, credentials
    /// refused, or a writer schema not registered (see
    /// [`crate::serde::registry`]).
    #[error(transparent)]
    SchemaRegistry(#[from] crate::serde::registry::RegistryError),
    /// Logging could not be set up (see [`crate::init_logging`]).
    #[error("setting up logging: {0}")]
    Logging(String),
    /// The test driver was used wrongly (an unknown store, a value its
    /// topic's serde cannot encode).
    #[error("test driver: {0}")]
    TestDriver(String),
    /// A bounded run ([`App::run_to_end`](crate::App::run_to_end)) was
    /// stopped by SIGTERM or SIGINT before the end of its input: what it
    /// committed stays committed, and the next run goes on from there.
    #[error("{0}")]
    Interrupted(String),
    /// A request of the streams group protocol client (KIP-1071: the
    /// member's heartbeats and offset commits, spoken directly) failed:
    /// no answer came (the connection broke or timed out; `code` is
    /// `None`), or Kafka answered with error `code`, named in `message`.
    #[error("{doing}: {message}")]
    Protocol {
        /// What rivulet was doing.
        doing: String,
        /// Kafka's error code, when Kafka answered with one.
        code: Option<i16>,
        /// What went wrong, and what to do.
        message: String,
    },
    /// A bug in rivulet.
    #[error("internal error (a rivulet bug): {0}")]
    Internal(String),
}

/// Writes `error`'s message, then each cause that the message does not
/// already contain, one per line (`caused by: ...`): the `Debug` of every
/// rivulet error, because `fn main() -> Result<..>` prints an error with
/// `Debug`, and a person should read a sentence there, not a struct.
pub(crate) fn write_readable(error: &dyn std::error::Error, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    let message = error.to_string();
    f.write_str(&message)?;
    let mut cause = error.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !message.contains(&text) {
            write!(f, "\n  caused by: {text}")?;
        }
        cause = c.source();
    }
    Ok(())
}

/// `Debug` as [`write_readable`]: the message and its causes.
macro_rules! readable_debug {
    ($($t:ty),+ $(,)?) => {$(
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write_readable(self, f)
            }
        }
    )+};
}

// The errors a user can meet at start (and the ones they wrap): whichever
// of them `main` returns, `Error: <message>` is what the process prints.
readable_debug!(Error, ConfigError, TopologyError, StateError, ProcessError, crate::serde::SerdeError);

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
            // No answer (a broken or timed-out connection), or an error
            // Kafka itself calls retriable.
            Error::Protocol { code, .. } => code.is_none_or(|c| {
                kafka_protocol::error::ResponseError::try_from_code(c).is_some_and(|e| e.is_retriable())
            }),
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

impl From<query::QueryError> for Error {
    fn from(e: query::QueryError) -> Self {
        Error::Query(Box::new(e))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use rdkafka::types::RDKafkaErrorCode;

    use super::*;
    use crate::serde::SerdeError;

    /// What `fn main() -> Result<(), E>` prints for `e` (`Error: {e:?}`).
    fn printed_by_main(e: impl std::fmt::Debug) -> String {
        format!("Error: {e:?}")
    }

    #[test]
    fn a_config_error_returned_from_main_prints_as_its_sentence() {
        let err = crate::Config::loader()
            .env([("RIVULET__APPLICATION_ID", "orders"), ("RIVULET__KAFKA__LINGER_MS", "5")])
            .load()
            .unwrap_err();
        let expected = "Error: unknown config key `kafka.linger_ms` (from environment variable \
                        RIVULET__KAFKA__LINGER_MS); librdkafka properties go under [kafka.common], [kafka.consumer] \
                        or [kafka.producer], for example \"linger.ms\" in [kafka.producer] or \
                        RIVULET__KAFKA__PRODUCER__LINGER_MS";
        assert_eq!(printed_by_main(&err), expected);
        let boxed: Box<dyn std::error::Error> = Box::new(err);
        assert_eq!(printed_by_main(&boxed), expected, "the same through Box<dyn Error>");
        let wrapped = Error::from(*boxed.downcast::<ConfigError>().unwrap());
        assert_eq!(printed_by_main(&wrapped), expected, "the same through rivulet::Error");
    }

    #[test]
    fn every_start_error_debugs_as_its_message() {
        let topology = TopologyError::Invalid("store `s` is declared twice".into());
        assert_eq!(format!("{topology:?}"), "invalid topology: store `s` is declared twice");
        let serde = SerdeError::new("json<Order>", "expected a JSON object");
        assert_eq!(format!("{serde:?}"), "json<Order>: expected a JSON object");
        let state = StateError::Corrupt { store: "s".into(), path: "/d/s".into(), reason: "bad offset file".into() };
        assert_eq!(format!("{state:?}"), state.to_string());
        assert!(format!("{state:?}").ends_with("wipe it and restore it from the changelog"));
        let process = ProcessError::Serde { what: "the value of topic t".into(), source: serde.clone() };
        assert_eq!(format!("{process:?}"), "the value of topic t: json<Order>: expected a JSON object");
        for e in [Error::from(topology), Error::from(state), Error::from(process)] {
            assert_eq!(format!("{e:?}"), e.to_string());
        }
    }

    #[test]
    fn a_cause_not_in_the_message_follows_it() {
        let e = Error::kafka("committing", KafkaError::ConsumerCommit(RDKafkaErrorCode::RequestTimedOut));
        let printed = format!("{e:?}");
        assert!(printed.starts_with("committing: "), "{printed}");
        assert!(!printed.contains("ConsumerCommit("), "{printed}");
        let rejected = ProcessError::Rejected { node: "MAP-0002".into(), source: "not a number".into() };
        assert_eq!(format!("{rejected:?}"), "MAP-0002 rejected the record: not a number");
    }
}
