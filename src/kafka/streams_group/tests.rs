//! The StreamsGroupHeartbeat codec against bytes written by hand from
//! Kafka's JSON specs, and against a test-only decoder of requests and
//! encoder of responses (the broker's side).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::codec::{DecodeResult, Reader, Writer};
use super::messages::{read_endpoint, read_task_ids, write_endpoint, write_task_ids, EndpointToPartitions, TaskOffset};
use super::*;

fn read_key_value(r: &mut Reader<'_>) -> DecodeResult<(String, String)> {
    let kv = (r.string("Key")?, r.string("Value")?);
    r.tagged_fields("KeyValue")?;
    Ok(kv)
}

fn read_topic_info(r: &mut Reader<'_>) -> DecodeResult<TopicInfo> {
    let t = TopicInfo {
        name: r.string("Name")?,
        partitions: r.i32("Partitions")?,
        replication_factor: r.i16("ReplicationFactor")?,
        topic_configs: r.array("TopicConfigs", read_key_value)?,
    };
    r.tagged_fields("TopicInfo")?;
    Ok(t)
}

fn read_strings(r: &mut Reader<'_>, what: &str) -> DecodeResult<Vec<String>> {
    r.array(what, |r| r.string(what))
}

fn read_i16s(r: &mut Reader<'_>, what: &str) -> DecodeResult<Vec<i16>> {
    r.array(what, |r| r.i16(what))
}

fn read_task_offset(r: &mut Reader<'_>) -> DecodeResult<TaskOffset> {
    let t = TaskOffset {
        subtopology_id: r.string("SubtopologyId")?,
        partition: r.i32("Partition")?,
        offset: r.i64("Offset")?,
    };
    r.tagged_fields("TaskOffset")?;
    Ok(t)
}

/// What the broker reads (field order of StreamsGroupHeartbeatRequest.json).
pub(super) fn decode_request(body: &[u8]) -> DecodeResult<HeartbeatRequest> {
    let r = &mut Reader::new(body);
    let mut q = HeartbeatRequest {
        group_id: r.string("GroupId")?,
        member_id: r.string("MemberId")?,
        member_epoch: r.i32("MemberEpoch")?,
        endpoint_information_epoch: r.i32("EndpointInformationEpoch")?,
        instance_id: r.nullable_string("InstanceId")?,
        rack_id: r.nullable_string("RackId")?,
        rebalance_timeout_ms: r.i32("RebalanceTimeoutMs")?,
        ..Default::default()
    };
    q.topology = r.nullable_struct("Topology", |r| {
        let epoch = r.i32("Epoch")?;
        let subtopologies = r.array("Subtopologies", |r| {
            let s = Subtopology {
                subtopology_id: r.string("SubtopologyId")?,
                source_topics: read_strings(r, "SourceTopics")?,
                source_topic_regex: read_strings(r, "SourceTopicRegex")?,
                state_changelog_topics: r.array("StateChangelogTopics", read_topic_info)?,
                repartition_sink_topics: read_strings(r, "RepartitionSinkTopics")?,
                repartition_source_topics: r.array("RepartitionSourceTopics", read_topic_info)?,
                copartition_groups: r.array("CopartitionGroups", |r| {
                    let g = CopartitionGroup {
                        source_topics: read_i16s(r, "SourceTopics")?,
                        source_topic_regex: read_i16s(r, "SourceTopicRegex")?,
                        repartition_source_topics: read_i16s(r, "RepartitionSourceTopics")?,
                    };
                    r.tagged_fields("CopartitionGroup")?;
                    Ok(g)
                })?,
            };
            r.tagged_fields("Subtopology")?;
            Ok(s)
        })?;
        r.tagged_fields("Topology")?;
        Ok(TopologyDesc { epoch, subtopologies })
    })?;
    q.active_tasks = r.nullable_array("ActiveTasks", read_task_ids)?;
    q.standby_tasks = r.nullable_array("StandbyTasks", read_task_ids)?;
    q.warmup_tasks = r.nullable_array("WarmupTasks", read_task_ids)?;
    q.process_id = r.nullable_string("ProcessId")?;
    q.user_endpoint = r.nullable_struct("UserEndpoint", read_endpoint)?;
    q.client_tags = r.nullable_array("ClientTags", read_key_value)?;
    q.task_offsets = r.nullable_array("TaskOffsets", read_task_offset)?;
    q.task_end_offsets = r.nullable_array("TaskEndOffsets", read_task_offset)?;
    q.shutdown_application = r.bool("ShutdownApplication")?;
    r.tagged_fields("request")?;
    assert_eq!(r.remaining(), 0, "bytes after the request");
    Ok(q)
}

fn write_topic_partitions(w: &mut Writer, items: &[(String, Vec<i32>)]) {
    w.array(items, |w, (t, ps)| {
        w.string(t);
        w.array(ps, |w, p| w.i32(*p));
        w.no_tagged_fields();
    });
}

/// What the broker writes (field order of StreamsGroupHeartbeatResponse.json).
pub(super) fn encode_response(a: &HeartbeatResponse) -> Vec<u8> {
    let mut w = Writer::default();
    w.i32(a.throttle_time_ms);
    w.i16(a.error_code);
    w.nullable_string(a.error_message.as_deref());
    w.string(&a.member_id);
    w.i32(a.member_epoch);
    w.i32(a.heartbeat_interval_ms);
    w.i32(a.acceptable_recovery_lag);
    w.i32(a.task_offset_interval_ms);
    w.nullable_array(a.status.as_deref(), |w, (code, detail)| {
        w.i8(*code);
        w.string(detail);
        w.no_tagged_fields();
    });
    for tasks in [&a.active_tasks, &a.standby_tasks, &a.warmup_tasks] {
        w.nullable_array(tasks.as_deref(), write_task_ids);
    }
    w.i32(a.endpoint_information_epoch);
    w.nullable_array(a.partitions_by_user_endpoint.as_deref(), |w, e| {
        write_endpoint(w, &e.user_endpoint);
        write_topic_partitions(w, &e.active_partitions);
        write_topic_partitions(w, &e.standby_partitions);
        w.no_tagged_fields();
    });
    w.no_tagged_fields();
    w.buf
}

fn tasks(id: &str, partitions: &[i32]) -> TaskIds {
    TaskIds { subtopology_id: id.into(), partitions: partitions.to_vec() }
}

fn kv(k: &str, v: &str) -> (String, String) {
    (k.into(), v.into())
}

#[test]
fn a_request_with_every_field_set_decodes_to_itself() {
    let topic = |name: &str, partitions| TopicInfo {
        name: name.into(),
        partitions,
        replication_factor: 3,
        topic_configs: vec![kv("cleanup.policy", "compact"), kv("min.insync.replicas", "2")],
    };
    let request = HeartbeatRequest {
        group_id: "shop".into(),
        member_id: "m-1".into(),
        member_epoch: 7,
        endpoint_information_epoch: 3,
        instance_id: Some("pod-0".into()),
        rack_id: Some("rack-a".into()),
        rebalance_timeout_ms: 300_000,
        topology: Some(TopologyDesc {
            epoch: 2,
            subtopologies: vec![
                Subtopology {
                    subtopology_id: "0".into(),
                    source_topics: vec!["orders".into(), "customers".into()],
                    source_topic_regex: vec!["audit-.*".into()],
                    state_changelog_topics: vec![topic("shop-counts-changelog", 0)],
                    repartition_sink_topics: vec!["shop-by-customer-repartition".into()],
                    repartition_source_topics: vec![],
                    copartition_groups: vec![CopartitionGroup {
                        source_topics: vec![0, 1],
                        source_topic_regex: vec![0],
                        repartition_source_topics: vec![],
                    }],
                },
                Subtopology {
                    subtopology_id: "1".into(),
                    repartition_source_topics: vec![topic("shop-by-customer-repartition", 8)],
                    ..Default::default()
                },
            ],
        }),
        active_tasks: Some(vec![tasks("0", &[0, 1, 2]), tasks("1", &[5])]),
        standby_tasks: Some(vec![tasks("0", &[3])]),
        warmup_tasks: Some(vec![]),
        process_id: Some("5c6b0a53-0000-4000-8000-000000000001".into()),
        user_endpoint: Some(Endpoint { host: "pod-0.shop".into(), port: 8080 }),
        client_tags: Some(vec![kv("zone", "eu-1a")]),
        task_offsets: Some(vec![TaskOffset { subtopology_id: "0".into(), partition: 3, offset: 1 << 40 }]),
        task_end_offsets: Some(vec![TaskOffset { subtopology_id: "0".into(), partition: 3, offset: -1 }]),
        shutdown_application: true,
    };
    assert_eq!(decode_request(&request.encode()).unwrap(), request);
    let nothing = HeartbeatRequest { group_id: "g".into(), member_id: "m".into(), ..Default::default() };
    assert_eq!(decode_request(&nothing.encode()).unwrap(), nothing);
}

#[test]
fn a_join_request_is_the_bytes_of_the_spec() {
    let request = HeartbeatRequest {
        group_id: "g".into(),
        member_id: "m".into(),
        member_epoch: 0,
        endpoint_information_epoch: -1,
        rebalance_timeout_ms: 1000,
        topology: Some(TopologyDesc {
            epoch: 1,
            subtopologies: vec![Subtopology {
                subtopology_id: "0".into(),
                source_topics: vec!["t".into()],
                ..Default::default()
            }],
        }),
        process_id: Some("p".into()),
        ..Default::default()
    };
    #[rustfmt::skip]
    let expected: &[u8] = &[
        2, b'g', 2, b'm',                 // GroupId, MemberId: compact strings (length + 1)
        0, 0, 0, 0,                       // MemberEpoch
        0xff, 0xff, 0xff, 0xff,           // EndpointInformationEpoch -1
        0, 0,                             // InstanceId, RackId: null
        0, 0, 0x03, 0xe8,                 // RebalanceTimeoutMs 1000
        1,                                // Topology present
        0, 0, 0, 1,                       // Epoch
        2,                                // one Subtopology
        2, b'0',                          // SubtopologyId
        2, 2, b't',                       // SourceTopics ["t"]
        1, 1, 1, 1, 1,                    // five empty arrays
        0,                                // Subtopology: no tagged fields
        0,                                // Topology: no tagged fields
        0, 0, 0,                          // Active, Standby, Warmup tasks: null
        2, b'p',                          // ProcessId
        0xff,                             // UserEndpoint: null struct
        0, 0, 0,                          // ClientTags, TaskOffsets, TaskEndOffsets: null
        0,                                // ShutdownApplication false
        0,                                // no tagged fields
    ];
    assert_eq!(request.encode(), expected);
}

#[test]
fn long_strings_take_multi_byte_lengths() {
    let request = HeartbeatRequest { group_id: "x".repeat(200), member_id: "m".into(), ..Default::default() };
    let bytes = request.encode();
    assert_eq!(&bytes[..3], &[0xc9, 0x01, b'x'], "201 as an unsigned varint");
    assert_eq!(decode_request(&bytes).unwrap(), request);
}

#[test]
fn a_response_by_hand_keeps_null_apart_from_empty_and_skips_tagged_fields() {
    #[rustfmt::skip]
    let bytes: &[u8] = &[
        0, 0, 0, 5,                       // ThrottleTimeMs
        0, 0,                             // ErrorCode
        0,                                // ErrorMessage: null
        3, b'm', b'1',                    // MemberId
        0, 0, 0, 4,                       // MemberEpoch
        0, 0, 0x13, 0x88,                 // HeartbeatIntervalMs 5000
        0, 0, 0x27, 0x10,                 // AcceptableRecoveryLag 10000
        0, 0, 0xea, 0x60,                 // TaskOffsetIntervalMs 60000
        2, 5, 2, b'd', 0,                 // Status: [(5, "d")]
        2, 2, b'0', 3, 0, 0, 0, 1, 0, 0, 0, 3,
        1, 7, 2, 0x61, 0x62,              // ActiveTasks: [("0", [1, 3])], its tagged fields: tag 7 = "ab"
        1,                                // StandbyTasks: empty
        0,                                // WarmupTasks: null
        0, 0, 0, 2,                       // EndpointInformationEpoch
        0,                                // PartitionsByUserEndpoint: null
        2, 0, 0, 3, 3, 0x80, 0x01, 0,     // tagged fields: tag 0 = [], tag 3 = [0x80, 0x01, 0]
    ];
    let response = HeartbeatResponse::decode(bytes).unwrap();
    assert_eq!(
        response,
        HeartbeatResponse {
            throttle_time_ms: 5,
            member_id: "m1".into(),
            member_epoch: 4,
            heartbeat_interval_ms: 5000,
            acceptable_recovery_lag: 10_000,
            task_offset_interval_ms: 60_000,
            status: Some(vec![(5, "d".into())]),
            active_tasks: Some(vec![tasks("0", &[1, 3])]),
            standby_tasks: Some(vec![]),
            warmup_tasks: None,
            endpoint_information_epoch: 2,
            ..Default::default()
        }
    );
}

#[test]
fn a_full_response_decodes_to_what_the_broker_wrote() {
    let endpoint = |host: &str| Endpoint { host: host.into(), port: 7070 };
    let response = HeartbeatResponse {
        throttle_time_ms: 0,
        error_code: 113,
        error_message: Some("stale".into()),
        member_id: "m".into(),
        member_epoch: -1,
        heartbeat_interval_ms: 5000,
        acceptable_recovery_lag: 10_000,
        task_offset_interval_ms: 60_000,
        status: Some(vec![]),
        active_tasks: Some(vec![tasks("0", &[0]), tasks("1", &[])]),
        standby_tasks: None,
        warmup_tasks: Some(vec![tasks("1", &[2])]),
        endpoint_information_epoch: 9,
        partitions_by_user_endpoint: Some(vec![
            EndpointToPartitions {
                user_endpoint: endpoint("a"),
                active_partitions: vec![("orders".into(), vec![0, 1])],
                standby_partitions: vec![],
            },
            EndpointToPartitions {
                user_endpoint: endpoint("b"),
                active_partitions: vec![],
                standby_partitions: vec![("orders".into(), vec![0]), ("shop-counts-changelog".into(), vec![0])],
            },
        ]),
    };
    assert_eq!(HeartbeatResponse::decode(&encode_response(&response)).unwrap(), response);
}

#[test]
fn a_short_or_long_response_is_an_error_naming_the_field() {
    let response = HeartbeatResponse { member_id: "member".into(), ..Default::default() };
    let bytes = encode_response(&response);
    let err = HeartbeatResponse::decode(&bytes[..9]).unwrap_err();
    assert!(err.contains("MemberId"), "{err}");
    let mut longer = bytes.clone();
    longer.push(0);
    let err = HeartbeatResponse::decode(&longer).unwrap_err();
    assert!(err.contains("1 bytes follow"), "{err}");
    let mut huge_array = bytes[..30].to_vec();
    huge_array.extend_from_slice(&[0xff, 0xff, 0xff, 0x0f]);
    let err = HeartbeatResponse::decode(&huge_array).unwrap_err();
    assert!(err.contains("Status") && err.contains("elements announced"), "{err}");
}

#[test]
fn kafka_errors_are_named_and_sorted() {
    assert_eq!(error_name(113), "STALE_MEMBER_EPOCH (113)");
    assert_eq!(error_name(16), "NOT_COORDINATOR (16)");
    assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR (-1)");
    assert_eq!(error_name(9999), "error code 9999");
    for code in [codes::STALE_MEMBER_EPOCH, codes::FENCED_MEMBER_EPOCH, codes::UNKNOWN_MEMBER_ID] {
        assert!(codes::member_fenced(code));
        let e = protocol_error("committing", Some(code), error_name(code));
        assert!(!e.is_retriable(), "{e}");
        assert_eq!(error_code(&e), Some(code));
    }
    assert!(protocol_error("committing", Some(codes::NOT_COORDINATOR), String::new()).is_retriable());
    assert!(protocol_error("heartbeat", None, "connection reset".into()).is_retriable());
    let unsupported = protocol_error("connecting", Some(codes::UNSUPPORTED_VERSION), String::new());
    assert!(!unsupported.is_retriable());
}
