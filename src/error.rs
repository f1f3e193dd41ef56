//! The crate's top-level error and `Result` alias.
//!
//! Each layer has its own error enum ([`ConfigError`] for configuration);
//! [`Error`] wraps them, and its helpers tell the caller what to do next.

use rdkafka::error::KafkaError;

use crate::config::ConfigError;

/// Anything that can stop rivulet.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid; fix it and restart.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A Kafka client operation failed.
    #[error("{context}: {source}")]
    Kafka {
        /// What rivulet was doing.
        context: String,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
}

impl Error {
    /// Wraps a Kafka error with what rivulet was doing when it happened.
    pub fn kafka(context: impl Into<String>, source: KafkaError) -> Self {
        Error::Kafka { context: context.into(), source }
    }

    /// Whether retrying the same operation may succeed (a broker that is
    /// briefly unreachable, a timed-out request).
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Config(_) => false,
            Error::Kafka { source, .. } => source.rdkafka_error_code().is_some_and(|code| {
                use rdkafka::types::RDKafkaErrorCode as C;
                matches!(
                    code,
                    C::BrokerTransportFailure
                        | C::AllBrokersDown
                        | C::OperationTimedOut
                        | C::RequestTimedOut
                        | C::NetworkException
                        | C::LeaderNotAvailable
                        | C::NotLeaderForPartition
                        | C::CoordinatorLoadInProgress
                        | C::CoordinatorNotAvailable
                )
            }),
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
