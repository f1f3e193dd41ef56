//! The live members of a consumer group, through librdkafka's
//! `DescribeConsumerGroups` admin call, which rdkafka 0.39 does not wrap.
//!
//! The classic `DescribeGroups` call (`fetch_group_list`) sees no members
//! in a KIP-848 group (`group.protocol=consumer`, rivulet's default): it
//! reports such a group as `Dead`. `DescribeConsumerGroups` speaks
//! `ConsumerGroupDescribe` to those and `DescribeGroups` to classic ones.
//!
//! The one place rivulet calls librdkafka's C API itself: the crate's lint
//! is `deny(unsafe_code)` rather than `forbid`, allowed in this module only.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::types::RDKafkaErrorCode;

/// One live member: its client id, host and member id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) client_id: String,
    pub(crate) host: String,
    pub(crate) member_id: String,
    /// Partitions it holds, plus those the broker means to give it
    /// (KIP-848's target assignment).
    pub(crate) partitions: usize,
}

/// # Safety
/// `assignment` is null or a member assignment of a live description.
unsafe fn partition_count(assignment: *const rd::rd_kafka_MemberAssignment_t) -> usize {
    if assignment.is_null() {
        return 0;
    }
    // SAFETY: as the caller promises; the list belongs to the assignment.
    let list = unsafe { rd::rd_kafka_MemberAssignment_partitions(assignment) };
    // SAFETY: a non-null list librdkafka made, read only.
    if list.is_null() {
        0
    } else {
        usize::try_from(unsafe { (*list).cnt }).unwrap_or(0)
    }
}

/// Owns a librdkafka handle and destroys it when dropped.
struct Owned<T>(*mut T, unsafe extern "C" fn(*mut T));

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the pointer came from the matching librdkafka
            // constructor and is destroyed once, here.
            unsafe { (self.1)(self.0) }
        }
    }
}

/// # Safety
/// `p` is null or a NUL-terminated string librdkafka keeps alive for the call.
unsafe fn text(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: as the caller promises.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// The members of `group` now, or why they cannot be read.
pub(crate) fn group_members<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    group: &str,
    timeout: Duration,
) -> Result<Vec<Member>, String> {
    let name = CString::new(group).map_err(|_| format!("the group id {group:?} holds a NUL byte"))?;
    let rk = consumer.client().native_ptr();
    let millis = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: `rk` is the live client of `consumer`, which outlives this
    // call; every handle made here is destroyed by its `Owned` guard, the
    // event before the queue; the strings read from the result are copied
    // before the event is destroyed.
    unsafe {
        let queue = Owned(rd::rd_kafka_queue_new(rk), rd::rd_kafka_queue_destroy);
        let options = Owned(
            rd::rd_kafka_AdminOptions_new(rk, rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS),
            rd::rd_kafka_AdminOptions_destroy,
        );
        let mut errstr = [0 as c_char; 256];
        rd::rd_kafka_AdminOptions_set_request_timeout(options.0, millis, errstr.as_mut_ptr(), errstr.len());
        let mut groups = [name.as_ptr()];
        rd::rd_kafka_DescribeConsumerGroups(rk, groups.as_mut_ptr(), 1, options.0, queue.0);
        let event = Owned(rd::rd_kafka_queue_poll(queue.0, millis.saturating_add(1_000)), rd::rd_kafka_event_destroy);
        if event.0.is_null() {
            return Err(format!("no answer within {}s", timeout.as_secs()));
        }
        let code = rd::rd_kafka_event_error(event.0);
        if code != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Err(format!(
                "{} ({})",
                text(rd::rd_kafka_event_error_string(event.0)),
                RDKafkaErrorCode::from(code)
            ));
        }
        let result = rd::rd_kafka_event_DescribeConsumerGroups_result(event.0);
        if result.is_null() {
            return Err("an unexpected answer from librdkafka".into());
        }
        let mut count = 0usize;
        let descriptions = rd::rd_kafka_DescribeConsumerGroups_result_groups(result, &mut count);
        let mut members = Vec::new();
        for i in 0..count {
            let description = *descriptions.add(i);
            let error = rd::rd_kafka_ConsumerGroupDescription_error(description);
            if !error.is_null() {
                return Err(text(rd::rd_kafka_error_string(error)));
            }
            for m in 0..rd::rd_kafka_ConsumerGroupDescription_member_count(description) {
                let member = rd::rd_kafka_ConsumerGroupDescription_member(description, m);
                members.push(Member {
                    client_id: text(rd::rd_kafka_MemberDescription_client_id(member)),
                    host: text(rd::rd_kafka_MemberDescription_host(member)),
                    member_id: text(rd::rd_kafka_MemberDescription_consumer_id(member)),
                    partitions: partition_count(rd::rd_kafka_MemberDescription_assignment(member))
                        + partition_count(rd::rd_kafka_MemberDescription_target_assignment(member)),
                });
            }
        }
        Ok(members)
    }
}

/// Whether `consumer` is a member of `group` now, as the broker sees it,
/// with no partition held or coming. Under KIP-848 a member the broker
/// assigns nothing gets no rebalance callback; this is how its thread
/// learns it has joined (and is ready).
pub(crate) fn is_idle_member<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    group: &str,
    timeout: Duration,
) -> Result<bool, String> {
    let rk = consumer.client().native_ptr();
    // SAFETY: `rk` is the live client of `consumer`; librdkafka returns a
    // copy of the member id (or null), freed here with its allocator after
    // it was copied.
    let me = unsafe {
        let p = rd::rd_kafka_memberid(rk);
        let id = text(p);
        if !p.is_null() {
            rd::rd_kafka_mem_free(rk, p.cast());
        }
        id
    };
    if me.is_empty() {
        return Ok(false);
    }
    Ok(group_members(consumer, group, timeout)?.iter().any(|m| m.member_id == me && m.partitions == 0))
}
