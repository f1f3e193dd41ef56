//! StreamsGroupHeartbeat (api key 88) version 0, the KIP-1071 streams
//! group's one membership request: the types rivulet fills and reads, and
//! their wire format, field for field as in Kafka's
//! `StreamsGroupHeartbeatRequest.json` / `StreamsGroupHeartbeatResponse.json`
//! (version 0 is flexible: compact strings and arrays, and a tagged-field
//! section after every struct).

use super::codec::{DecodeResult, Reader, Writer};

/// The api key of StreamsGroupHeartbeat.
pub(crate) const STREAMS_GROUP_HEARTBEAT_KEY: i16 = 88;
/// The version rivulet speaks (the only one Kafka 4.1-4.3 define).
pub(crate) const STREAMS_GROUP_HEARTBEAT_VERSION: i16 = 0;

/// The status codes of [`HeartbeatResponse::status`]
/// (`StreamsGroupHeartbeatResponse.Status` in Kafka).
pub(crate) mod status {
    /// The member's topology epoch is behind the group's.
    pub(crate) const STALE_TOPOLOGY: i8 = 0;
    /// A source topic is missing (the detail names it).
    pub(crate) const MISSING_SOURCE_TOPICS: i8 = 1;
    /// Co-partitioned topics differ in partition count (the detail names them).
    pub(crate) const INCORRECTLY_PARTITIONED_TOPICS: i8 = 2;
    /// Internal topics are missing; the broker creates them.
    pub(crate) const MISSING_INTERNAL_TOPICS: i8 = 3;
    /// A member asked the whole application to shut down.
    pub(crate) const SHUTDOWN_APPLICATION: i8 = 4;
    /// The assignment waits for the group's initial rebalance delay.
    pub(crate) const ASSIGNMENT_DELAYED: i8 = 5;

    /// Kafka's name of status `code`.
    pub(crate) fn name(code: i8) -> &'static str {
        match code {
            STALE_TOPOLOGY => "STALE_TOPOLOGY",
            MISSING_SOURCE_TOPICS => "MISSING_SOURCE_TOPICS",
            INCORRECTLY_PARTITIONED_TOPICS => "INCORRECTLY_PARTITIONED_TOPICS",
            MISSING_INTERNAL_TOPICS => "MISSING_INTERNAL_TOPICS",
            SHUTDOWN_APPLICATION => "SHUTDOWN_APPLICATION",
            ASSIGNMENT_DELAYED => "ASSIGNMENT_DELAYED",
            _ => "UNKNOWN_STATUS",
        }
    }
}

/// The tasks of one sub-topology: the partitions of its input topics.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct TaskIds {
    pub(crate) subtopology_id: String,
    pub(crate) partitions: Vec<i32>,
}

/// An internal topic the broker creates for the group (changelog,
/// repartition). `partitions` is 0 for changelogs (the broker gives them
/// as many as the sub-topology's largest source) and where any count fits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct TopicInfo {
    pub(crate) name: String,
    pub(crate) partitions: i32,
    /// 0: the broker's default.
    pub(crate) replication_factor: i16,
    pub(crate) topic_configs: Vec<(String, String)>,
}

/// Source topics that must be co-partitioned; indexes into the
/// sub-topology's `source_topics`, `source_topic_regex` and
/// `repartition_source_topics`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct CopartitionGroup {
    pub(crate) source_topics: Vec<i16>,
    pub(crate) source_topic_regex: Vec<i16>,
    pub(crate) repartition_source_topics: Vec<i16>,
}

/// One sub-topology as the broker sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Subtopology {
    pub(crate) subtopology_id: String,
    pub(crate) source_topics: Vec<String>,
    /// Kafka 4.3 refuses non-empty ones ("not supported yet").
    pub(crate) source_topic_regex: Vec<String>,
    pub(crate) state_changelog_topics: Vec<TopicInfo>,
    pub(crate) repartition_sink_topics: Vec<String>,
    pub(crate) repartition_source_topics: Vec<TopicInfo>,
    pub(crate) copartition_groups: Vec<CopartitionGroup>,
}

/// The topology sent when joining (member epoch 0).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct TopologyDesc {
    pub(crate) epoch: i32,
    pub(crate) subtopologies: Vec<Subtopology>,
}

/// A host and port (for interactive queries).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Endpoint {
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// A task's changelog offset (sum over its changelogs).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct TaskOffset {
    pub(crate) subtopology_id: String,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
}

/// One StreamsGroupHeartbeat request. `None` fields are sent as null
/// ("unchanged since the last heartbeat"); see the field docs of Kafka's
/// `StreamsGroupHeartbeatRequest.json`. The broker's rules (Kafka 4.3,
/// `GroupCoordinatorService.throwIfStreamsGroupHeartbeatRequestIsInvalid`):
/// `member_id` not empty; joining (epoch 0) needs `rebalance_timeout_ms`,
/// the topology and no owned tasks; the three task lists are all null or
/// all set; `instance_id`, `task_offsets`, `task_end_offsets` and
/// non-empty `warmup_tasks` are refused as not supported yet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct HeartbeatRequest {
    pub(crate) group_id: String,
    pub(crate) member_id: String,
    /// 0 to join, -1 to leave, -2 for a static member leaving for now.
    pub(crate) member_epoch: i32,
    pub(crate) endpoint_information_epoch: i32,
    pub(crate) instance_id: Option<String>,
    pub(crate) rack_id: Option<String>,
    /// -1: unchanged.
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) topology: Option<TopologyDesc>,
    pub(crate) active_tasks: Option<Vec<TaskIds>>,
    pub(crate) standby_tasks: Option<Vec<TaskIds>>,
    pub(crate) warmup_tasks: Option<Vec<TaskIds>>,
    pub(crate) process_id: Option<String>,
    pub(crate) user_endpoint: Option<Endpoint>,
    pub(crate) client_tags: Option<Vec<(String, String)>>,
    pub(crate) task_offsets: Option<Vec<TaskOffset>>,
    pub(crate) task_end_offsets: Option<Vec<TaskOffset>>,
    pub(crate) shutdown_application: bool,
}

/// The partitions whose state an instance (its query endpoint) holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct EndpointToPartitions {
    pub(crate) user_endpoint: Endpoint,
    /// (topic, partitions) materialized by its active tasks.
    pub(crate) active_partitions: Vec<(String, Vec<i32>)>,
    /// (topic, partitions) materialized by its standby tasks.
    pub(crate) standby_partitions: Vec<(String, Vec<i32>)>,
}

/// One StreamsGroupHeartbeat response. Errors are in `error_code` (0:
/// none); `None` task lists mean "unchanged since the last heartbeat".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct HeartbeatResponse {
    pub(crate) throttle_time_ms: i32,
    pub(crate) error_code: i16,
    pub(crate) error_message: Option<String>,
    pub(crate) member_id: String,
    pub(crate) member_epoch: i32,
    pub(crate) heartbeat_interval_ms: i32,
    pub(crate) acceptable_recovery_lag: i32,
    pub(crate) task_offset_interval_ms: i32,
    /// (status code, detail): 0 STALE_TOPOLOGY, 1 MISSING_SOURCE_TOPICS,
    /// 2 INCORRECTLY_PARTITIONED_TOPICS, 3 MISSING_INTERNAL_TOPICS,
    /// 4 SHUTDOWN_APPLICATION, 5 ASSIGNMENT_DELAYED.
    pub(crate) status: Option<Vec<(i8, String)>>,
    pub(crate) active_tasks: Option<Vec<TaskIds>>,
    pub(crate) standby_tasks: Option<Vec<TaskIds>>,
    pub(crate) warmup_tasks: Option<Vec<TaskIds>>,
    pub(crate) endpoint_information_epoch: i32,
    pub(crate) partitions_by_user_endpoint: Option<Vec<EndpointToPartitions>>,
}

fn write_key_value(w: &mut Writer, (k, v): &(String, String)) {
    w.string(k);
    w.string(v);
    w.no_tagged_fields();
}

fn write_topic_info(w: &mut Writer, t: &TopicInfo) {
    w.string(&t.name);
    w.i32(t.partitions);
    w.i16(t.replication_factor);
    w.array(&t.topic_configs, write_key_value);
    w.no_tagged_fields();
}

fn write_strings(w: &mut Writer, items: &[String]) {
    w.array(items, |w, s| w.string(s));
}

fn write_i16s(w: &mut Writer, items: &[i16]) {
    w.array(items, |w, i| w.i16(*i));
}

fn write_subtopology(w: &mut Writer, s: &Subtopology) {
    w.string(&s.subtopology_id);
    write_strings(w, &s.source_topics);
    write_strings(w, &s.source_topic_regex);
    w.array(&s.state_changelog_topics, write_topic_info);
    write_strings(w, &s.repartition_sink_topics);
    w.array(&s.repartition_source_topics, write_topic_info);
    w.array(&s.copartition_groups, |w, g| {
        write_i16s(w, &g.source_topics);
        write_i16s(w, &g.source_topic_regex);
        write_i16s(w, &g.repartition_source_topics);
        w.no_tagged_fields();
    });
    w.no_tagged_fields();
}

pub(super) fn write_task_ids(w: &mut Writer, t: &TaskIds) {
    w.string(&t.subtopology_id);
    w.array(&t.partitions, |w, p| w.i32(*p));
    w.no_tagged_fields();
}

fn write_task_offset(w: &mut Writer, t: &TaskOffset) {
    w.string(&t.subtopology_id);
    w.i32(t.partition);
    w.i64(t.offset);
    w.no_tagged_fields();
}

pub(super) fn write_endpoint(w: &mut Writer, e: &Endpoint) {
    w.string(&e.host);
    w.u16(e.port);
    w.no_tagged_fields();
}

impl HeartbeatRequest {
    /// The request body (without the request header), version 0.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.string(&self.group_id);
        w.string(&self.member_id);
        w.i32(self.member_epoch);
        w.i32(self.endpoint_information_epoch);
        w.nullable_string(self.instance_id.as_deref());
        w.nullable_string(self.rack_id.as_deref());
        w.i32(self.rebalance_timeout_ms);
        w.nullable_struct(self.topology.as_ref(), |w, t| {
            w.i32(t.epoch);
            w.array(&t.subtopologies, write_subtopology);
            w.no_tagged_fields();
        });
        for tasks in [&self.active_tasks, &self.standby_tasks, &self.warmup_tasks] {
            w.nullable_array(tasks.as_deref(), write_task_ids);
        }
        w.nullable_string(self.process_id.as_deref());
        w.nullable_struct(self.user_endpoint.as_ref(), write_endpoint);
        w.nullable_array(self.client_tags.as_deref(), write_key_value);
        w.nullable_array(self.task_offsets.as_deref(), write_task_offset);
        w.nullable_array(self.task_end_offsets.as_deref(), write_task_offset);
        w.bool(self.shutdown_application);
        w.no_tagged_fields();
        w.buf
    }
}

pub(super) fn read_task_ids(r: &mut Reader<'_>) -> DecodeResult<TaskIds> {
    let subtopology_id = r.string("TaskIds.SubtopologyId")?;
    let partitions = r.array("TaskIds.Partitions", |r| r.i32("TaskIds.Partitions"))?;
    r.tagged_fields("TaskIds tagged fields")?;
    Ok(TaskIds { subtopology_id, partitions })
}

pub(super) fn read_endpoint(r: &mut Reader<'_>) -> DecodeResult<Endpoint> {
    let host = r.string("Endpoint.Host")?;
    let port = r.u16("Endpoint.Port")?;
    r.tagged_fields("Endpoint tagged fields")?;
    Ok(Endpoint { host, port })
}

fn read_topic_partitions(r: &mut Reader<'_>, what: &str) -> DecodeResult<Vec<(String, Vec<i32>)>> {
    r.array(what, |r| {
        let topic = r.string("TopicPartition.Topic")?;
        let partitions = r.array("TopicPartition.Partitions", |r| r.i32("TopicPartition.Partitions"))?;
        r.tagged_fields("TopicPartition tagged fields")?;
        Ok((topic, partitions))
    })
}

impl HeartbeatResponse {
    /// Decodes the response body (after the response header), version 0.
    pub(crate) fn decode(body: &[u8]) -> DecodeResult<Self> {
        let r = &mut Reader::new(body);
        let throttle_time_ms = r.i32("ThrottleTimeMs")?;
        let error_code = r.i16("ErrorCode")?;
        let error_message = r.nullable_string("ErrorMessage")?;
        let member_id = r.string("MemberId")?;
        let member_epoch = r.i32("MemberEpoch")?;
        let heartbeat_interval_ms = r.i32("HeartbeatIntervalMs")?;
        let acceptable_recovery_lag = r.i32("AcceptableRecoveryLag")?;
        let task_offset_interval_ms = r.i32("TaskOffsetIntervalMs")?;
        let status = r.nullable_array("Status", |r| {
            let code = r.i8("Status.StatusCode")?;
            let detail = r.string("Status.StatusDetail")?;
            r.tagged_fields("Status tagged fields")?;
            Ok((code, detail))
        })?;
        let active_tasks = r.nullable_array("ActiveTasks", read_task_ids)?;
        let standby_tasks = r.nullable_array("StandbyTasks", read_task_ids)?;
        let warmup_tasks = r.nullable_array("WarmupTasks", read_task_ids)?;
        let endpoint_information_epoch = r.i32("EndpointInformationEpoch")?;
        let partitions_by_user_endpoint = r.nullable_array("PartitionsByUserEndpoint", |r| {
            let user_endpoint = read_endpoint(r)?;
            let active_partitions = read_topic_partitions(r, "EndpointToPartitions.ActivePartitions")?;
            let standby_partitions = read_topic_partitions(r, "EndpointToPartitions.StandbyPartitions")?;
            r.tagged_fields("EndpointToPartitions tagged fields")?;
            Ok(EndpointToPartitions { user_endpoint, active_partitions, standby_partitions })
        })?;
        r.tagged_fields("the response's tagged fields")?;
        if r.remaining() != 0 {
            return Err(format!("{} bytes follow the end of the response", r.remaining()));
        }
        Ok(HeartbeatResponse {
            throttle_time_ms,
            error_code,
            error_message,
            member_id,
            member_epoch,
            heartbeat_interval_ms,
            acceptable_recovery_lag,
            task_offset_interval_ms,
            status,
            active_tasks,
            standby_tasks,
            warmup_tasks,
            endpoint_information_epoch,
            partitions_by_user_endpoint,
        })
    }
}
