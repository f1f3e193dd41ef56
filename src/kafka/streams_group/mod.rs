//! The wire client of the KIP-1071 streams group protocol: a member's
//! StreamsGroupHeartbeat (the broker assigns active, standby and warm-up
//! tasks) and its offset commits, which must carry the member's id and
//! epoch (OffsetCommit 9+, `StreamsGroup.validateOffsetCommit` in Kafka
//! 4.3), something librdkafka cannot send.
//!
//! Blocking, over one TCP connection to the group coordinator, plain or
//! TLS (rustls), with SASL PLAIN or SCRAM as librdkafka's
//! `security.protocol` and `sasl.*`/`ssl.*` properties say
//! (`transport.rs`, `sasl.rs`). Only `crate::error` is used
//! from the rest of rivulet, so the broker test compiles these files into
//! itself (`integration-tests/streams_group_wire.rs`).
// Used by the streams group membership loop (issue 17), which lands
// separately; until then only the tests call it.

mod codec;
pub(crate) mod describe;
pub(crate) mod messages;
mod sasl;
#[cfg(test)]
mod sasl_tests;
#[cfg(test)]
mod tests;
pub(crate) mod transport;
pub(crate) mod wire;
#[cfg(test)]
mod wire_tests;

pub(crate) use messages::{
    status, CopartitionGroup, Endpoint, HeartbeatRequest, HeartbeatResponse, Subtopology, TaskIds, TopicInfo,
    TopologyDesc,
};
pub(crate) use transport::SecurityConfig;
pub(crate) use wire::StreamsGroupClient;

use crate::error::Error;

/// Kafka error codes the streams group client and its caller act on.
pub(crate) mod codes {
    /// COORDINATOR_LOAD_IN_PROGRESS.
    pub(crate) const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    /// COORDINATOR_NOT_AVAILABLE.
    pub(crate) const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    /// NOT_COORDINATOR.
    pub(crate) const NOT_COORDINATOR: i16 = 16;
    /// ILLEGAL_GENERATION.
    pub(crate) const ILLEGAL_GENERATION: i16 = 22;
    /// UNKNOWN_MEMBER_ID.
    pub(crate) const UNKNOWN_MEMBER_ID: i16 = 25;
    /// TOPIC_AUTHORIZATION_FAILED.
    pub(crate) const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
    /// GROUP_AUTHORIZATION_FAILED.
    pub(crate) const GROUP_AUTHORIZATION_FAILED: i16 = 30;
    /// UNSUPPORTED_VERSION: also what the client reports for a broker
    /// without the streams group protocol.
    pub(crate) const UNSUPPORTED_VERSION: i16 = 35;
    /// GROUP_ID_NOT_FOUND: no group of that id, or one of another type.
    pub(crate) const GROUP_ID_NOT_FOUND: i16 = 69;
    /// FENCED_MEMBER_EPOCH.
    pub(crate) const FENCED_MEMBER_EPOCH: i16 = 110;
    /// STALE_MEMBER_EPOCH.
    pub(crate) const STALE_MEMBER_EPOCH: i16 = 113;

    /// The coordinator moved or is not ready: find it again and retry.
    pub(crate) fn coordinator_moved(code: i16) -> bool {
        matches!(code, COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR)
    }

    /// The member's epoch or id is no longer the group's: it lost its
    /// tasks and must rejoin (epoch 0) before committing again.
    pub(crate) fn member_fenced(code: i16) -> bool {
        matches!(code, UNKNOWN_MEMBER_ID | FENCED_MEMBER_EPOCH | STALE_MEMBER_EPOCH | ILLEGAL_GENERATION)
    }
}

/// Kafka's name of error `code` and the code: `STALE_MEMBER_EPOCH (113)`.
pub(crate) fn error_name(code: i16) -> String {
    use kafka_protocol::error::ResponseError;
    match ResponseError::try_from_code(code) {
        None => "NONE (0)".to_string(),
        Some(ResponseError::Unknown(_)) => format!("error code {code}"),
        Some(e) => {
            let camel = format!("{e:?}");
            let mut name = String::with_capacity(camel.len() + 8);
            for (i, c) in camel.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    name.push('_');
                }
                name.push(c.to_ascii_uppercase());
            }
            format!("{name} ({code})")
        }
    }
}

/// The Kafka error code in `error`, if it is an answer of Kafka's.
pub(crate) fn error_code(error: &Error) -> Option<i16> {
    match error {
        Error::Protocol { code, .. } => *code,
        _ => None,
    }
}

pub(crate) fn protocol_error(doing: &str, code: Option<i16>, message: String) -> Error {
    Error::Protocol { doing: doing.to_string(), code, message }
}
