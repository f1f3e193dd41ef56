//! StreamsGroupDescribe (api key 89) version 0: a streams group's state
//! and live members, as the `reset` subcommand checks them before it
//! resets an application. Field for field as Kafka's
//! `StreamsGroupDescribeRequest.json` / `StreamsGroupDescribeResponse.json`
//! (version 0 is flexible); what rivulet does not use (the topology's
//! sub-topologies, client tags, task offsets) is read past.
//!
//! A group that does not exist and a group of another type (a consumer or
//! classic group of that id) both come back as GROUP_ID_NOT_FOUND (Kafka
//! 4.3's `GroupMetadataManager.streamsGroup`: "Group g is not a streams
//! group."): no streams group has members then.

use std::time::{Duration, Instant};

use super::codec::{DecodeResult, Reader, Writer};
use super::messages::{read_endpoint, read_task_ids};
use super::{codes, error_code, Endpoint, StreamsGroupClient, TaskIds};
use crate::error::Result;

/// The api key of StreamsGroupDescribe.
pub(crate) const STREAMS_GROUP_DESCRIBE_KEY: i16 = 89;
/// The version rivulet speaks (the only one Kafka 4.1-4.3 define).
pub(crate) const STREAMS_GROUP_DESCRIBE_VERSION: i16 = 0;

/// A member's tasks: its current assignment or its target.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct StreamsAssignment {
    pub(crate) active: Vec<TaskIds>,
    pub(crate) standby: Vec<TaskIds>,
    pub(crate) warmup: Vec<TaskIds>,
}

fn task_count(tasks: &[TaskIds]) -> usize {
    tasks.iter().map(|t| t.partitions.len()).sum()
}

impl StreamsAssignment {
    /// How many active tasks (a sub-topology's partition each).
    pub(crate) fn active_count(&self) -> usize {
        task_count(&self.active)
    }

    /// How many standby tasks.
    pub(crate) fn standby_count(&self) -> usize {
        task_count(&self.standby)
    }
}

/// One live member of a streams group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct StreamsMember {
    pub(crate) member_id: String,
    pub(crate) member_epoch: i32,
    /// Static membership (Kafka 4.3 refuses it in heartbeats so far).
    pub(crate) instance_id: Option<String>,
    pub(crate) rack_id: Option<String>,
    pub(crate) client_id: String,
    /// As the broker saw the connection: `/127.0.0.1`.
    pub(crate) client_host: String,
    pub(crate) topology_epoch: i32,
    /// The instance (rivulet: one per process) the member belongs to.
    pub(crate) process_id: String,
    pub(crate) user_endpoint: Option<Endpoint>,
    pub(crate) assignment: StreamsAssignment,
    pub(crate) target_assignment: StreamsAssignment,
    /// A classic-protocol member not upgraded yet.
    pub(crate) is_classic: bool,
}

/// One group of a StreamsGroupDescribe response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct DescribedGroup {
    pub(crate) error_code: i16,
    pub(crate) error_message: Option<String>,
    pub(crate) group_id: String,
    /// `Empty`, `NotReady`, `Assigning`, `Reconciling`, `Stable`, `Dead`;
    /// empty on an error.
    pub(crate) group_state: String,
    pub(crate) group_epoch: i32,
    pub(crate) assignment_epoch: i32,
    /// The epoch of the group's topology; `None` on an error.
    pub(crate) topology_epoch: Option<i32>,
    pub(crate) members: Vec<StreamsMember>,
}

/// A StreamsGroupDescribe response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct DescribeResponse {
    pub(crate) throttle_time_ms: i32,
    pub(crate) groups: Vec<DescribedGroup>,
}

/// The request body (without the request header), version 0.
pub(crate) fn encode_request(group_ids: &[&str]) -> Vec<u8> {
    let mut w = Writer::default();
    w.array(group_ids, |w, g| w.string(g));
    w.bool(false); // IncludeAuthorizedOperations
    w.no_tagged_fields();
    w.buf
}

fn skip_strings(r: &mut Reader<'_>, what: &str) -> DecodeResult<()> {
    r.array(what, |r| r.string(what)).map(drop)
}

fn skip_key_values(r: &mut Reader<'_>, what: &str) -> DecodeResult<()> {
    r.array(what, |r| {
        r.string("KeyValue.Key")?;
        r.string("KeyValue.Value")?;
        r.tagged_fields("KeyValue tagged fields")
    })
    .map(drop)
}

fn skip_topic_infos(r: &mut Reader<'_>, what: &str) -> DecodeResult<()> {
    r.array(what, |r| {
        r.string("TopicInfo.Name")?;
        r.i32("TopicInfo.Partitions")?;
        r.i16("TopicInfo.ReplicationFactor")?;
        skip_key_values(r, "TopicInfo.TopicConfigs")?;
        r.tagged_fields("TopicInfo tagged fields")
    })
    .map(drop)
}

fn skip_task_offsets(r: &mut Reader<'_>, what: &str) -> DecodeResult<()> {
    r.array(what, |r| {
        r.string("TaskOffset.SubtopologyId")?;
        r.i32("TaskOffset.Partition")?;
        r.i64("TaskOffset.Offset")?;
        r.tagged_fields("TaskOffset tagged fields")
    })
    .map(drop)
}

/// The topology's epoch; its sub-topologies are read past.
fn read_topology_epoch(r: &mut Reader<'_>) -> DecodeResult<i32> {
    let epoch = r.i32("Topology.Epoch")?;
    r.nullable_array("Topology.Subtopologies", |r| {
        r.string("Subtopology.SubtopologyId")?;
        skip_strings(r, "Subtopology.SourceTopics")?;
        skip_strings(r, "Subtopology.RepartitionSinkTopics")?;
        skip_topic_infos(r, "Subtopology.StateChangelogTopics")?;
        skip_topic_infos(r, "Subtopology.RepartitionSourceTopics")?;
        r.tagged_fields("Subtopology tagged fields")
    })?;
    r.tagged_fields("Topology tagged fields")?;
    Ok(epoch)
}

fn read_assignment(r: &mut Reader<'_>, what: &str) -> DecodeResult<StreamsAssignment> {
    let a = StreamsAssignment {
        active: r.array(&format!("{what}.ActiveTasks"), read_task_ids)?,
        standby: r.array(&format!("{what}.StandbyTasks"), read_task_ids)?,
        warmup: r.array(&format!("{what}.WarmupTasks"), read_task_ids)?,
    };
    r.tagged_fields(&format!("{what} tagged fields"))?;
    Ok(a)
}

fn read_member(r: &mut Reader<'_>) -> DecodeResult<StreamsMember> {
    let member_id = r.string("Member.MemberId")?;
    let member_epoch = r.i32("Member.MemberEpoch")?;
    let instance_id = r.nullable_string("Member.InstanceId")?;
    let rack_id = r.nullable_string("Member.RackId")?;
    let client_id = r.string("Member.ClientId")?;
    let client_host = r.string("Member.ClientHost")?;
    let topology_epoch = r.i32("Member.TopologyEpoch")?;
    let process_id = r.string("Member.ProcessId")?;
    let user_endpoint = r.nullable_struct("Member.UserEndpoint", read_endpoint)?;
    skip_key_values(r, "Member.ClientTags")?;
    skip_task_offsets(r, "Member.TaskOffsets")?;
    skip_task_offsets(r, "Member.TaskEndOffsets")?;
    let assignment = read_assignment(r, "Member.Assignment")?;
    let target_assignment = read_assignment(r, "Member.TargetAssignment")?;
    let is_classic = r.bool("Member.IsClassic")?;
    r.tagged_fields("Member tagged fields")?;
    Ok(StreamsMember {
        member_id,
        member_epoch,
        instance_id,
        rack_id,
        client_id,
        client_host,
        topology_epoch,
        process_id,
        user_endpoint,
        assignment,
        target_assignment,
        is_classic,
    })
}

fn read_group(r: &mut Reader<'_>) -> DecodeResult<DescribedGroup> {
    let error_code = r.i16("DescribedGroup.ErrorCode")?;
    let error_message = r.nullable_string("DescribedGroup.ErrorMessage")?;
    let group_id = r.string("DescribedGroup.GroupId")?;
    let group_state = r.string("DescribedGroup.GroupState")?;
    let group_epoch = r.i32("DescribedGroup.GroupEpoch")?;
    let assignment_epoch = r.i32("DescribedGroup.AssignmentEpoch")?;
    let topology_epoch = r.nullable_struct("DescribedGroup.Topology", read_topology_epoch)?;
    let members = r.array("DescribedGroup.Members", read_member)?;
    r.i32("DescribedGroup.AuthorizedOperations")?;
    r.tagged_fields("DescribedGroup tagged fields")?;
    Ok(DescribedGroup {
        error_code,
        error_message,
        group_id,
        group_state,
        group_epoch,
        assignment_epoch,
        topology_epoch,
        members,
    })
}

/// Decodes the response body (after the response header), version 0.
pub(crate) fn decode_response(body: &[u8]) -> DecodeResult<DescribeResponse> {
    let r = &mut Reader::new(body);
    let throttle_time_ms = r.i32("ThrottleTimeMs")?;
    let groups = r.array("Groups", read_group)?;
    r.tagged_fields("the response's tagged fields")?;
    if r.remaining() != 0 {
        return Err(format!("{} bytes follow the end of the response", r.remaining()));
    }
    Ok(DescribeResponse { throttle_time_ms, groups })
}

/// How long [`StreamsGroupClient::describe_members`] retries while the
/// coordinator moves or loads.
const DESCRIBE_RETRY: Duration = Duration::from_secs(30);

impl StreamsGroupClient {
    /// The live members of the client's streams group, retrying for up to
    /// 30 s while the coordinator moves or loads. Empty when no streams
    /// group has the id (none exists, or the group is a consumer or
    /// classic group: GROUP_ID_NOT_FOUND either way).
    pub(crate) fn describe_members(&mut self) -> Result<Vec<StreamsMember>> {
        let deadline = Instant::now() + DESCRIBE_RETRY;
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.describe_group() {
                Ok(group) => return Ok(group.map(|g| g.members).unwrap_or_default()),
                Err(e) if e.is_retriable() && Instant::now() + backoff < deadline => {
                    tracing::debug!("describing the streams group again: {e}");
                }
                Err(e) => return Err(e),
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }
}

/// The answer about `group_id` among `groups`: `None` for
/// GROUP_ID_NOT_FOUND, an error (with Kafka's code) for any other error.
pub(crate) fn group_of(groups: Vec<DescribedGroup>, group_id: &str, doing: &str) -> Result<Option<DescribedGroup>> {
    let group = groups.into_iter().find(|g| g.group_id == group_id).ok_or_else(|| {
        super::protocol_error(doing, None, format!("the answer does not describe group '{group_id}'"))
    })?;
    match group.error_code {
        0 => Ok(Some(group)),
        codes::GROUP_ID_NOT_FOUND => Ok(None),
        code => {
            let detail = group.error_message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
            let hint = if code == codes::GROUP_AUTHORIZATION_FAILED || code == codes::TOPIC_AUTHORIZATION_FAILED {
                " (the principal needs DESCRIBE on the group and on its topics)"
            } else {
                ""
            };
            Err(super::protocol_error(doing, Some(code), format!("{}{detail}{hint}", super::error_name(code))))
        }
    }
}

/// Whether `error` says the broker has no streams groups at all (no
/// StreamsGroupHeartbeat or StreamsGroupDescribe): then no streams group
/// can have members.
pub(crate) fn no_streams_groups(error: &crate::error::Error) -> bool {
    error_code(error) == Some(codes::UNSUPPORTED_VERSION)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::super::messages::{write_endpoint, write_task_ids};
    use super::*;

    fn tasks(subtopology: &str, partitions: &[i32]) -> TaskIds {
        TaskIds { subtopology_id: subtopology.into(), partitions: partitions.to_vec() }
    }

    fn write_assignment(w: &mut Writer, a: &StreamsAssignment) {
        for t in [&a.active, &a.standby, &a.warmup] {
            w.array(t, write_task_ids);
        }
        w.no_tagged_fields();
    }

    fn write_member(w: &mut Writer, m: &StreamsMember) {
        w.string(&m.member_id);
        w.i32(m.member_epoch);
        w.nullable_string(m.instance_id.as_deref());
        w.nullable_string(m.rack_id.as_deref());
        w.string(&m.client_id);
        w.string(&m.client_host);
        w.i32(m.topology_epoch);
        w.string(&m.process_id);
        w.nullable_struct(m.user_endpoint.as_ref(), write_endpoint);
        // ClientTags: one tag.
        w.array(&[("zone", "a")], |w, (k, v)| {
            w.string(k);
            w.string(v);
            w.no_tagged_fields();
        });
        // TaskOffsets: one; TaskEndOffsets: none.
        w.array(&[("0", 1, 42i64)], |w, (s, p, o)| {
            w.string(s);
            w.i32(*p);
            w.i64(*o);
            w.no_tagged_fields();
        });
        w.array::<u8>(&[], |_, _| {});
        write_assignment(w, &m.assignment);
        write_assignment(w, &m.target_assignment);
        w.bool(m.is_classic);
        w.no_tagged_fields();
    }

    /// A response as a Kafka 4.3 broker writes it, field by field from
    /// StreamsGroupDescribeResponse.json.
    fn response(groups: &[DescribedGroup]) -> Vec<u8> {
        let mut w = Writer::default();
        w.i32(7); // ThrottleTimeMs
        w.array(groups, |w, g| {
            w.i16(g.error_code);
            w.nullable_string(g.error_message.as_deref());
            w.string(&g.group_id);
            w.string(&g.group_state);
            w.i32(g.group_epoch);
            w.i32(g.assignment_epoch);
            w.nullable_struct(g.topology_epoch.as_ref(), |w, epoch| {
                w.i32(*epoch);
                // One sub-topology: a source, a repartition sink, a
                // changelog with a config, no repartition source.
                w.array(&["0"], |w, id| {
                    w.string(id);
                    w.array(&["in"], |w, t| w.string(t));
                    w.array(&["app-x-repartition"], |w, t| w.string(t));
                    w.array(&["app-s-changelog"], |w, t| {
                        w.string(t);
                        w.i32(0);
                        w.i16(3);
                        w.array(&[("cleanup.policy", "compact")], |w, (k, v)| {
                            w.string(k);
                            w.string(v);
                            w.no_tagged_fields();
                        });
                        w.no_tagged_fields();
                    });
                    w.array::<u8>(&[], |_, _| {});
                    w.no_tagged_fields();
                });
                w.no_tagged_fields();
            });
            w.array(&g.members, write_member);
            w.i32(i32::MIN); // AuthorizedOperations: not asked for
            w.no_tagged_fields();
        });
        w.no_tagged_fields();
        w.buf
    }

    fn stable_group() -> DescribedGroup {
        let member = |n: &str, active: &[i32], standby: &[i32]| StreamsMember {
            member_id: format!("member-{n}"),
            member_epoch: 5,
            instance_id: None,
            rack_id: Some("rack-1".into()),
            client_id: format!("app-{n}-membership"),
            client_host: "/127.0.0.1".into(),
            topology_epoch: 0,
            process_id: format!("process-{n}"),
            user_endpoint: (n == "a").then(|| Endpoint { host: "a.local".into(), port: 8080 }),
            assignment: StreamsAssignment {
                active: vec![tasks("0", active), tasks("1", active)],
                standby: vec![tasks("0", standby)],
                warmup: vec![],
            },
            target_assignment: StreamsAssignment { active: vec![tasks("0", active)], ..Default::default() },
            is_classic: false,
        };
        DescribedGroup {
            error_code: 0,
            error_message: None,
            group_id: "app".into(),
            group_state: "Stable".into(),
            group_epoch: 5,
            assignment_epoch: 5,
            topology_epoch: Some(0),
            members: vec![member("a", &[0, 1], &[2, 3]), member("b", &[2, 3], &[])],
        }
    }

    #[test]
    fn the_request_names_the_groups() {
        let body = encode_request(&["app"]);
        // [GroupIds] (compact: 1 + 1), "app" (compact: 3 + 1), false, no tags.
        assert_eq!(body, [2, 4, b'a', b'p', b'p', 0, 0]);
    }

    #[test]
    fn a_stable_group_decodes_with_its_members_and_their_tasks() {
        let group = stable_group();
        let decoded = decode_response(&response(std::slice::from_ref(&group))).unwrap();
        assert_eq!(decoded.throttle_time_ms, 7);
        assert_eq!(decoded.groups, std::slice::from_ref(&group));
        let a = &decoded.groups[0].members[0];
        assert_eq!((a.assignment.active_count(), a.assignment.standby_count()), (4, 2));
        assert_eq!(a.user_endpoint, Some(Endpoint { host: "a.local".into(), port: 8080 }));
        let b = &decoded.groups[0].members[1];
        assert_eq!((b.assignment.active_count(), b.assignment.standby_count()), (4, 0));
        let members = group_of(decoded.groups, "app", "describing").unwrap().unwrap().members;
        assert_eq!(members.len(), 2);
    }

    #[test]
    fn group_id_not_found_is_no_streams_group() {
        // What Kafka 4.3 answers for a missing group and for a consumer
        // group of that id: GROUP_ID_NOT_FOUND, no topology, no members.
        for message in ["Group app not found.", "Group app is not a streams group."] {
            let g = DescribedGroup {
                error_code: codes::GROUP_ID_NOT_FOUND,
                error_message: Some(message.into()),
                group_id: "app".into(),
                ..Default::default()
            };
            let decoded = decode_response(&response(&[g])).unwrap();
            assert_eq!(decoded.groups[0].error_message.as_deref(), Some(message));
            assert_eq!(group_of(decoded.groups, "app", "describing").unwrap(), None);
        }
    }

    #[test]
    fn other_errors_fail_with_their_code() {
        let g = DescribedGroup {
            error_code: codes::GROUP_AUTHORIZATION_FAILED,
            group_id: "app".into(),
            ..Default::default()
        };
        let err = group_of(vec![g], "app", "describing streams group 'app'").unwrap_err();
        assert_eq!(error_code(&err), Some(codes::GROUP_AUTHORIZATION_FAILED));
        assert!(err.to_string().contains("GROUP_AUTHORIZATION_FAILED (30)"), "{err}");
        assert!(err.to_string().contains("DESCRIBE on the group"), "{err}");
        let err = group_of(vec![], "app", "describing").unwrap_err();
        assert!(err.to_string().contains("does not describe group 'app'"), "{err}");
    }

    #[test]
    fn a_truncated_or_padded_response_is_refused() {
        let bytes = response(&[stable_group()]);
        for cut in [1, 10, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode_response(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(decode_response(&padded).unwrap_err().contains("1 bytes follow"));
    }
}
