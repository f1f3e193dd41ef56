//! The one classifier of Kafka errors: what an error from librdkafka tells
//! the runtime to do. Every caller asks here (the retries of the commit
//! cycle, the transaction's owner, the polling loop, `Error::is_retriable`),
//! so they cannot disagree about an error.
//!
//! | kind | meaning | what the runtime does |
//! |---|---|---|
//! | `Retriable` | passes on its own: a request timed out, a leader or coordinator moved, a broker restarts | call again with backoff (`runtime::retry`); the consumer keeps polling |
//! | `Abortable` | the open transaction cannot commit, the producer is fine | abort, rewind the tasks to the committed offsets, go on |
//! | `TaskMigrated` | another member owns the partitions now (fenced producer, stale generation, unknown member), or the transactional producer is unusable | drop the tasks without committing, rejoin the group with new clients |
//! | `Fatal` | none of the above | stop (inside a transaction: abort it first) |

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode as C;

/// What a Kafka error tells the runtime to do; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KafkaErrorKind {
    /// Call again (with backoff).
    Retriable,
    /// Abort the transaction and go on.
    Abortable,
    /// The tasks belong to someone else now: drop them and rejoin.
    TaskMigrated,
    /// Stop.
    Fatal,
}

/// Classifies `e`. A transaction error says itself whether it is fatal,
/// needs an abort or may be retried (librdkafka's `rd_kafka_error_is_fatal`,
/// `txn_requires_abort`, `is_retriable`); any other error goes by its code.
pub(crate) fn classify(e: &KafkaError) -> KafkaErrorKind {
    if let KafkaError::Transaction(t) = e {
        if t.is_fatal() {
            // The transactional producer cannot be used again (fenced, or
            // its epoch bumped): a new one comes with rejoining.
            return KafkaErrorKind::TaskMigrated;
        }
        if t.txn_requires_abort() {
            return KafkaErrorKind::Abortable;
        }
        if t.is_retriable() {
            return KafkaErrorKind::Retriable;
        }
    }
    match e.rdkafka_error_code() {
        Some(
            C::ProducerFenced
            | C::InvalidProducerEpoch
            | C::FencedInstanceId
            | C::IllegalGeneration
            | C::UnknownMemberId
            | C::RebalanceInProgress,
        ) => KafkaErrorKind::TaskMigrated,
        Some(
            C::RequestTimedOut
            | C::OperationTimedOut
            | C::CoordinatorNotAvailable
            | C::NotCoordinator
            | C::CoordinatorLoadInProgress
            | C::NetworkException
            | C::BrokerTransportFailure
            | C::AllBrokersDown
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
            | C::KafkaStorageError
            | C::ConcurrentTransactions,
        ) => KafkaErrorKind::Retriable,
        _ => KafkaErrorKind::Fatal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_by_what_the_runtime_must_do() {
        assert_eq!(classify(&KafkaError::ConsumerCommit(C::RequestTimedOut)), KafkaErrorKind::Retriable);
        assert_eq!(classify(&KafkaError::ConsumerCommit(C::NotCoordinator)), KafkaErrorKind::Retriable);
        assert_eq!(classify(&KafkaError::ConsumerCommit(C::CoordinatorLoadInProgress)), KafkaErrorKind::Retriable);
        assert_eq!(classify(&KafkaError::MessageConsumption(C::AllBrokersDown)), KafkaErrorKind::Retriable);
        assert_eq!(classify(&KafkaError::ConsumerCommit(C::IllegalGeneration)), KafkaErrorKind::TaskMigrated);
        assert_eq!(classify(&KafkaError::ConsumerCommit(C::RebalanceInProgress)), KafkaErrorKind::TaskMigrated);
        assert_eq!(classify(&KafkaError::MessageProduction(C::ProducerFenced)), KafkaErrorKind::TaskMigrated);
        assert_eq!(classify(&KafkaError::MessageProduction(C::MessageSizeTooLarge)), KafkaErrorKind::Fatal);
        assert_eq!(classify(&KafkaError::ConsumerCommit(C::TopicAuthorizationFailed)), KafkaErrorKind::Fatal);
    }
}
