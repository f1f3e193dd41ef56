//! The streams group (KIP-1071) wire client on a real broker: two members
//! of a new group join with a one-sub-topology topology, split its four
//! tasks, get standby tasks once `streams.num.standby.replicas` is set on
//! the group, commit offsets with their member epoch (and are refused
//! with a wrong one), and leave.
//!
//! The client is `pub(crate)`; its files use nothing of rivulet but
//! `crate::error`, so this test compiles them into itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

/// Where the included client finds rivulet's error types.
mod error {
    pub(crate) use rivulet::{Error, Result};
}

// The test uses part of the client; the rest is the library's.
#[allow(dead_code, unused_imports)]
#[path = "../src/kafka/streams_group/mod.rs"]
mod streams_group;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use streams_group::{
    codes, error_code, Endpoint, HeartbeatRequest, HeartbeatResponse, SecurityConfig, StreamsGroupClient, Subtopology,
    TaskIds, TopicInfo, TopologyDesc,
};

const PARTITIONS: i32 = 4;
/// Bound of every wait on the group (its first assignment waits for the
/// broker's initial rebalance delay, 3 s by default).
const WAIT: Duration = Duration::from_secs(30);

/// A member as the membership loop keeps it: it owns what the broker
/// assigned last (it revokes and starts tasks at once).
struct Member {
    client: StreamsGroupClient,
    group: String,
    member_id: String,
    process_id: String,
    epoch: i32,
    topology: TopologyDesc,
    active: Vec<TaskIds>,
    standby: Vec<TaskIds>,
    joined: bool,
}

impl Member {
    fn new(group: &str, process: &str, topology: &TopologyDesc) -> Member {
        let client = StreamsGroupClient::connect(
            &SecurityConfig::default(),
            harness::bootstrap(),
            group,
            &format!("{group}-{process}"),
            WAIT,
        )
        .unwrap();
        Member {
            client,
            group: group.to_string(),
            member_id: harness::unique("member"),
            process_id: harness::unique(process),
            epoch: 0,
            topology: topology.clone(),
            active: vec![],
            standby: vec![],
            joined: false,
        }
    }

    /// One heartbeat: the join with the topology, then the owned tasks.
    fn beat(&mut self) -> HeartbeatResponse {
        let joining = !self.joined;
        let request = HeartbeatRequest {
            group_id: self.group.clone(),
            member_id: self.member_id.clone(),
            member_epoch: self.epoch,
            endpoint_information_epoch: 0,
            rebalance_timeout_ms: if joining { 30_000 } else { -1 },
            topology: joining.then(|| self.topology.clone()),
            active_tasks: Some(self.active.clone()),
            standby_tasks: Some(self.standby.clone()),
            warmup_tasks: Some(vec![]),
            process_id: joining.then(|| self.process_id.clone()),
            user_endpoint: joining.then(|| Endpoint { host: "localhost".into(), port: 7000 }),
            ..Default::default()
        };
        let response = self.client.heartbeat(&request).unwrap();
        assert_eq!(response.error_code, 0, "heartbeat of {}: {response:?}", self.process_id);
        self.joined = true;
        self.epoch = response.member_epoch;
        if let Some(active) = &response.active_tasks {
            self.active = active.clone();
        }
        if let Some(standby) = &response.standby_tasks {
            self.standby = standby.clone();
        }
        response
    }

    fn leave(&mut self) -> HeartbeatResponse {
        let request = HeartbeatRequest {
            group_id: self.group.clone(),
            member_id: self.member_id.clone(),
            member_epoch: -1,
            rebalance_timeout_ms: -1,
            ..Default::default()
        };
        self.client.heartbeat(&request).unwrap()
    }
}

fn partitions(tasks: &[TaskIds]) -> BTreeSet<i32> {
    tasks.iter().filter(|t| t.subtopology_id == "0").flat_map(|t| t.partitions.iter().copied()).collect()
}

/// Heartbeats every member until `done` holds, for at most [`WAIT`].
fn beat_until(what: &str, members: &mut [&mut Member], mut done: impl FnMut(&[&mut Member]) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        for m in members.iter_mut() {
            m.beat();
        }
        if done(members) {
            return;
        }
        let state: Vec<String> = members
            .iter()
            .map(|m| format!("{}: epoch {}, active {:?}, standby {:?}", m.process_id, m.epoch, m.active, m.standby))
            .collect();
        assert!(Instant::now() < deadline, "{what} did not happen within {WAIT:?}; members: {state:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_members_share_tasks_get_standbys_commit_and_leave() {
    let source = harness::new_topic("sgw-in", PARTITIONS).await;
    let group = harness::unique("sgw-app");
    let topology = TopologyDesc {
        epoch: 0,
        subtopologies: vec![Subtopology {
            subtopology_id: "0".into(),
            source_topics: vec![source.clone()],
            state_changelog_topics: vec![TopicInfo {
                name: format!("{group}-store-changelog"),
                partitions: 0,
                replication_factor: 0,
                topic_configs: vec![],
            }],
            ..Default::default()
        }],
    };
    let all: BTreeSet<i32> = (0..PARTITIONS).collect();

    let mut a = Member::new(&group, "process-a", &topology);
    let joined = a.beat();
    assert!(joined.member_epoch > 0, "{joined:?}");
    assert!(joined.heartbeat_interval_ms > 0, "{joined:?}");
    beat_until("member A holding all 4 tasks", &mut [&mut a], |m| partitions(&m[0].active) == all);
    let changelog = &topology.subtopologies[0].state_changelog_topics[0].name;
    assert_eq!(harness::watermarks(changelog).len(), 4, "the broker created {changelog} with the source's partitions");

    let mut b = Member::new(&group, "process-b", &topology);
    beat_until("the 4 tasks split 2 and 2", &mut [&mut a, &mut b], |m| {
        let (pa, pb) = (partitions(&m[0].active), partitions(&m[1].active));
        pa.len() == 2 && pb.len() == 2 && pa.union(&pb).count() == 4
    });
    assert!(a.standby.is_empty() && b.standby.is_empty(), "no standbys by default");

    harness::set_group_config(&group, "streams.num.standby.replicas", "1").await;
    beat_until("each task's standby on the other process", &mut [&mut a, &mut b], |m| {
        partitions(&m[0].standby) == partitions(&m[1].active) && partitions(&m[1].standby) == partitions(&m[0].active)
    });
    assert_eq!(partitions(&a.active).len(), 2, "the active tasks stay where they were");

    // StreamsGroupDescribe sees both members, their processes and tasks.
    let described = a.client.describe_group().unwrap().expect("the streams group exists");
    assert_eq!((described.group_id.as_str(), described.group_state.as_str()), (group.as_str(), "Stable"));
    assert_eq!(described.topology_epoch, Some(0), "{described:?}");
    let mut members: Vec<(String, String, String, usize, usize)> = described
        .members
        .iter()
        .map(|m| {
            let tasks = (m.assignment.active_count(), m.assignment.standby_count());
            (m.member_id.clone(), m.process_id.clone(), m.client_id.clone(), tasks.0, tasks.1)
        })
        .collect();
    members.sort();
    let mut expected: Vec<(String, String, String, usize, usize)> = [&a, &b]
        .iter()
        .map(|m| (m.member_id.clone(), m.process_id.clone(), format!("{group}-{}", &m.process_id[..9]), 2, 2))
        .collect();
    expected.sort();
    assert_eq!(members, expected, "{described:?}");
    assert!(described.members.iter().all(|m| !m.client_host.is_empty() && !m.is_classic), "{described:?}");

    // Commits carry the member id and epoch (OffsetCommit 9).
    let offsets: Vec<(String, i32, i64, Option<String>)> =
        partitions(&a.active).iter().map(|p| (source.clone(), *p, 10 + i64::from(*p), Some("m".into()))).collect();
    a.client.commit_offsets(&group, &a.member_id, a.epoch, &offsets).unwrap();
    let committed = harness::committed_offsets(&group, &source, PARTITIONS);
    for (topic, p, offset, _) in &offsets {
        assert_eq!(committed[*p as usize], Some(*offset), "{topic}-{p}: {committed:?}");
    }
    let err = a.client.commit_offsets(&group, &a.member_id, a.epoch + 1, &offsets).unwrap_err();
    assert_eq!(error_code(&err), Some(codes::STALE_MEMBER_EPOCH), "{err}");
    let text = err.to_string();
    let first = format!("{source}-{}", offsets[0].1);
    assert!(text.contains("STALE_MEMBER_EPOCH (113)") && text.contains(&first), "{text}");
    let err = b.client.commit_offsets(&group, "no-such-member", 1, &offsets).unwrap_err();
    assert_eq!(error_code(&err), Some(codes::UNKNOWN_MEMBER_ID), "{err}");
    assert!(codes::member_fenced(codes::UNKNOWN_MEMBER_ID));

    // Leaving: epoch -1 answers -1, and the other member takes every task.
    let left = a.leave();
    assert_eq!((left.error_code, left.member_epoch), (0, -1), "{left:?}");
    beat_until("member B holding all 4 tasks after A left", &mut [&mut b], |m| partitions(&m[0].active) == all);
    let left = b.leave();
    assert_eq!((left.error_code, left.member_epoch), (0, -1), "{left:?}");
    assert_eq!(b.client.describe_members().unwrap(), [], "no member is left");
    let described = b.client.describe_group().unwrap().expect("the empty streams group is kept");
    assert_eq!(described.group_state, "Empty", "{described:?}");
}

/// A group id no streams group has: none at all, or a classic group's
/// (made by a simple consumer's offset commit). Kafka answers both with
/// GROUP_ID_NOT_FOUND, which the client reads as no streams group.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_group_and_a_consumer_group_are_no_streams_group() {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::{Offset, TopicPartitionList};

    let mut missing = StreamsGroupClient::connect(
        &SecurityConfig::default(),
        harness::bootstrap(),
        &harness::unique("sgw-none"),
        "c",
        WAIT,
    )
    .unwrap();
    assert!(missing.describe_group().unwrap().is_none());
    assert_eq!(missing.describe_members().unwrap(), []);

    let topic = harness::new_topic("sgw-classic", 1).await;
    let group = harness::unique("sgw-classic");
    let consumer: BaseConsumer = harness::client_config().set("group.id", &group).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Offset(0)).unwrap();
    consumer.assign(&tpl).unwrap();
    consumer.commit(&tpl, CommitMode::Sync).unwrap();
    assert_eq!(harness::committed_offsets(&group, &topic, 1), [Some(0)], "the classic group exists");
    let mut classic =
        StreamsGroupClient::connect(&SecurityConfig::default(), harness::bootstrap(), &group, "c", WAIT).unwrap();
    assert!(classic.describe_group().unwrap().is_none());
}

#[test]
fn a_broker_address_nobody_listens_on_is_an_error_naming_it() {
    let started = Instant::now();
    let err = StreamsGroupClient::connect(&SecurityConfig::default(), "127.0.0.1:1", "g", "c", Duration::from_secs(2))
        .unwrap_err();
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    assert!(err.is_retriable() && error_code(&err).is_none(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
}

/// The SASL_SSL listener's settings as the librdkafka properties give
/// them, for the super user made at format time with `password`.
fn secured(password: &str) -> SecurityConfig {
    let s = harness::secure::secured();
    let props = [
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanisms", "SCRAM-SHA-512"),
        ("sasl.username", s.admin_user.as_str()),
        ("sasl.password", password),
        ("ssl.ca.location", s.ca_pem.as_str()),
    ];
    SecurityConfig::from_properties(|key| props.iter().find(|(k, _)| *k == key).map(|(_, v)| v.to_string())).unwrap()
}

#[test]
fn over_tls_and_scram_the_client_finds_the_coordinator_and_sets_the_group_config() {
    let s = harness::secure::secured();
    let group = harness::unique("sg-secure");
    let mut client =
        StreamsGroupClient::connect(&secured(&s.admin_password), &s.bootstrap, &group, "sg-secure", WAIT).unwrap();
    client.set_group_config("streams.num.standby.replicas", "1").unwrap();
}

#[test]
fn a_wrong_password_is_an_error_naming_sasl_authentication_and_is_not_retried() {
    let s = harness::secure::secured();
    let started = Instant::now();
    let err = StreamsGroupClient::connect(&secured("not-the-password"), &s.bootstrap, "g", "c", WAIT).unwrap_err();
    let text = err.to_string();
    eprintln!("the error: {text}");
    assert!(text.contains("SASL authentication") && text.contains(&s.admin_user), "{text}");
    assert!(!text.contains("not-the-password"), "{text}");
    assert!(!err.is_retriable(), "{text}");
    assert!(started.elapsed() < Duration::from_secs(10), "not retried until the timeout: {:?}", started.elapsed());
}
