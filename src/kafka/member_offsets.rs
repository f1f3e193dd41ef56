//! Offsets sent to a transaction on behalf of a streams-group member
//! (`group_protocol = "streams"`).
//!
//! Under KIP-1071 the consumers are assigned by hand and never join the
//! group, so their own group metadata carries no member: a
//! `TxnOffsetCommit` without one is accepted only without fencing. The
//! member id and epoch of the instance's member (`runtime::membership`)
//! let the group coordinator refuse the commit of a member it has fenced,
//! as it does for Kafka Streams (`StreamsGroup#validateOffsetCommit`).
//! rdkafka 0.39 cannot build such metadata, so this calls librdkafka's
//! `rd_kafka_consumer_group_metadata_new_with_genid` itself: with
//! `group_members`, the crate's only unsafe code.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::TopicPartitionList;

/// The member whose epoch fences a transaction's offsets.
#[derive(Debug, Clone)]
pub(crate) struct GroupMember {
    pub(crate) group: String,
    pub(crate) member_id: String,
    pub(crate) epoch: i32,
}

/// `send_offsets_to_transaction` with `member`'s group metadata. A failure
/// comes back as its error code (librdkafka's transactional error says
/// more; it is logged here): fencing codes (`PRODUCER_FENCED`,
/// `UNKNOWN_MEMBER_ID`, ...) classify as migrated tasks, the others abort.
pub(crate) fn send_offsets<C: ProducerContext>(
    producer: &BaseProducer<C>,
    offsets: &TopicPartitionList,
    member: &GroupMember,
    timeout: Duration,
) -> KafkaResult<()> {
    let invalid = |_| KafkaError::MessageProduction(RDKafkaErrorCode::InvalidArgument);
    let group = CString::new(member.group.as_str()).map_err(invalid)?;
    let member_id = CString::new(member.member_id.as_str()).map_err(invalid)?;
    let timeout_ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: the strings outlive the call (librdkafka copies them); the
    // metadata is destroyed once, after its only use.
    let error = unsafe {
        let cgm = rd::rd_kafka_consumer_group_metadata_new_with_genid(
            group.as_ptr(),
            member.epoch,
            member_id.as_ptr(),
            std::ptr::null(),
        );
        if cgm.is_null() {
            return Err(KafkaError::MessageProduction(RDKafkaErrorCode::InvalidArgument));
        }
        let error =
            rd::rd_kafka_send_offsets_to_transaction(producer.client().native_ptr(), offsets.ptr(), cgm, timeout_ms);
        rd::rd_kafka_consumer_group_metadata_destroy(cgm);
        error
    };
    if error.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null error librdkafka returned, destroyed once after
    // it is read.
    let (code, text, fatal) = unsafe {
        let code = RDKafkaErrorCode::from(rd::rd_kafka_error_code(error));
        let text = CStr::from_ptr(rd::rd_kafka_error_string(error)).to_string_lossy().into_owned();
        let fatal = rd::rd_kafka_error_is_fatal(error) != 0;
        rd::rd_kafka_error_destroy(error);
        (code, text, fatal)
    };
    tracing::warn!(group = %member.group, epoch = member.epoch, error = %text, fatal, "sending offsets to the transaction failed");
    Err(KafkaError::MessageProduction(code))
}
