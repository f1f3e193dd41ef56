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
    // A missing ACL does not pass by itself, nor by aborting: retrying or
    // rewinding would only repeat the refusal forever.
    if is_authorization(e) {
        return KafkaErrorKind::Fatal;
    }
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
            | C::WaitingForCoordinator
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

/// Whether the broker refused for lack of a permission (an ACL).
pub(crate) fn is_authorization(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::TopicAuthorizationFailed
                | C::GroupAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::TransactionalIdAuthorizationFailed
        )
    )
}

/// What rivulet was doing when the broker refused, to name the permission
/// it needs in the error.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Access<'a> {
    /// The application id: the group, and the prefix of internal topics and
    /// transactional ids.
    pub(crate) application_id: &'a str,
    /// The operation on topics: `READ` when consuming, `WRITE` when
    /// producing or committing a transaction.
    pub(crate) topic_operation: &'a str,
    /// The topics involved, as a list for the message.
    pub(crate) topics: &'a str,
    /// The producer's transactional id, under exactly-once.
    pub(crate) transactional_id: Option<&'a str>,
}

impl Access<'_> {
    /// For an authorization error, the error naming the missing permission
    /// and what to grant; `None` for any other error.
    pub(crate) fn denied(&self, e: &KafkaError, doing: &str) -> Option<crate::error::Error> {
        let app = self.application_id;
        let (what, grant) = match e.rdkafka_error_code()? {
            C::TopicAuthorizationFailed => (
                format!("{} a topic it uses ({})", self.topic_operation, self.topics),
                format!(
                    "{op} on each of these topics (its own internal topics are covered by {op} on topics prefixed \
                     '{app}-')",
                    op = self.topic_operation
                ),
            ),
            C::GroupAuthorizationFailed => {
                (format!("READ group '{app}'"), format!("READ on the group '{app}' (resource type GROUP, LITERAL)"))
            }
            C::TransactionalIdAuthorizationFailed => (
                format!("WRITE transactional id '{}'", self.transactional_id.unwrap_or(app)),
                format!("WRITE on transactional ids prefixed '{app}-' (resource type TRANSACTIONAL_ID, PREFIXED)"),
            ),
            C::ClusterAuthorizationFailed => (
                "use the cluster as it needs (an idempotent producer, or creating topics)".to_string(),
                format!(
                    "WRITE on its output topics (an idempotent producer needs WRITE on some topic, or \
                     IDEMPOTENT_WRITE on the cluster) and CREATE on topics prefixed '{app}-'"
                ),
            ),
            _ => return None,
        };
        Some(crate::error::Error::not_authorized(&what, &grant, &format!("{doing}: {e}")))
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
        // librdkafka's own: the coordinator is being looked up again (a busy
        // or restarting broker).
        assert_eq!(classify(&KafkaError::ConsumerCommit(C::WaitingForCoordinator)), KafkaErrorKind::Retriable);
        assert_eq!(classify(&KafkaError::MessageConsumption(C::AllBrokersDown)), KafkaErrorKind::Retriable);
        assert_eq!(classify(&KafkaError::ConsumerCommit(C::IllegalGeneration)), KafkaErrorKind::TaskMigrated);
        assert_eq!(classify(&KafkaError::ConsumerCommit(C::RebalanceInProgress)), KafkaErrorKind::TaskMigrated);
        assert_eq!(classify(&KafkaError::MessageProduction(C::ProducerFenced)), KafkaErrorKind::TaskMigrated);
        assert_eq!(classify(&KafkaError::MessageProduction(C::MessageSizeTooLarge)), KafkaErrorKind::Fatal);
        assert_eq!(classify(&KafkaError::ConsumerCommit(C::TopicAuthorizationFailed)), KafkaErrorKind::Fatal);
        assert_eq!(classify(&KafkaError::MessageConsumption(C::GroupAuthorizationFailed)), KafkaErrorKind::Fatal);
    }

    #[test]
    fn authorization_errors_name_the_missing_permission() {
        let access = Access {
            application_id: "shop",
            topic_operation: "READ",
            topics: "orders, shop-counts-changelog",
            transactional_id: Some("shop-pod-0-0"),
        };
        let denied = |code| access.denied(&KafkaError::MessageConsumption(code), "consuming").map(|e| e.to_string());
        let group = denied(C::GroupAuthorizationFailed).unwrap();
        assert!(group.starts_with("the principal is not authorized to READ group 'shop'"), "{group}");
        assert!(group.contains("docs/configuration.md"), "{group}");
        let txn = denied(C::TransactionalIdAuthorizationFailed).unwrap();
        assert!(txn.contains("WRITE transactional id 'shop-pod-0-0'") && txn.contains("prefixed 'shop-'"), "{txn}");
        let topic = denied(C::TopicAuthorizationFailed).unwrap();
        assert!(topic.contains("READ a topic it uses (orders, shop-counts-changelog)"), "{topic}");
        assert!(denied(C::RequestTimedOut).is_none());
    }
}
