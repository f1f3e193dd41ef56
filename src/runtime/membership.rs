//! Group membership under the streams rebalance protocol (KIP-1071,
//! `group_protocol = "streams"`).
//!
//! One member per instance: a heartbeat thread (`rivulet-membership`)
//! joins the application's streams group with a description of the
//! topology, and the broker's task assignor answers with the active and
//! standby tasks of this member. The assignor is sticky: a task stays
//! where it ran, and when its instance is gone it goes to an instance that
//! held its standby (`StickyTaskAssignor` in Kafka's group coordinator,
//! `assignActive`, steps 1 and 2). Each task belongs to one processing
//! thread of the instance ([`Membership::thread_of`], a fixed function of
//! the task id, so a standby promoted to active is on the thread that
//! already holds its stores). The processing threads reconcile at each turn
//! of their loop (`task_manager/reconcile.rs`): they commit and close the
//! tasks taken away, assign the source partitions of the new ones to their
//! consumer by hand, open or close standbys, and report what they own; the
//! next heartbeat tells the broker, which only then hands revoked tasks to
//! their new owners.
//!
//! Kafka Streams runs one member per stream thread; rivulet runs one per
//! instance, so its threads share the member epoch that fences its commits
//! (`TxnOffsetCommit` and `OffsetCommit` carry the member id and epoch).
//!
//! A member the coordinator fenced (its session timed out, or its epoch is
//! stale) has lost its tasks: [`State::lost`] counts it, every thread drops
//! its tasks without committing (`TaskMigrated`), and the member joins again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::kafka::streams_group::{
    codes, error_name, status, CopartitionGroup, Endpoint, HeartbeatRequest, HeartbeatResponse, SecurityConfig,
    StreamsGroupClient, Subtopology, TaskIds, TopicInfo, TopologyDesc,
};
use crate::processor::TaskId;
use crate::topology::{changelog_topic, Topology};

/// The most the broker waits for this member to give up revoked tasks
/// (Kafka Streams sends `max.poll.interval.ms`, 5 minutes by default).
const REBALANCE_TIMEOUT_MS: i32 = 300_000;
/// Wait before connecting again after a failed call.
const RETRY: Duration = Duration::from_secs(1);
/// Timeout of one connection attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Error codes of the StreamsGroupHeartbeat response that rivulet acts on
/// (with those of `kafka::streams_group::codes`).
mod code {
    pub(super) const NONE: i16 = 0;
    pub(super) const REQUEST_TIMED_OUT: i16 = 7;
    pub(super) const UNRELEASED_INSTANCE_ID: i16 = 111;
}

/// Active and standby tasks: an assignment, or what a thread owns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Assigned {
    pub(crate) active: BTreeSet<TaskId>,
    pub(crate) standby: BTreeSet<TaskId>,
}

/// What one processing thread reads from the membership at a loop turn.
pub(crate) struct View {
    /// Bumped with every new assignment.
    pub(crate) version: u64,
    /// Bumped every time the member lost its tasks.
    pub(crate) lost: u64,
    /// This thread's part of the assignment; `None` before the first.
    pub(crate) assigned: Option<Assigned>,
}

#[derive(Default)]
struct State {
    member_epoch: i32,
    endpoint_epoch: i32,
    target: Option<Assigned>,
    version: u64,
    lost: u64,
    /// What each thread reported it owns, with the `lost` count it saw.
    owned: BTreeMap<usize, (u64, Assigned)>,
    /// A thread's report changed since the last heartbeat.
    owned_changed: bool,
    /// The membership failed for good; the threads stop with this.
    fatal: Option<String>,
    /// Statuses the broker reported last (logged when they change).
    statuses: Vec<(i8, String)>,
}

/// The instance's member of the streams group; shared by the heartbeat
/// thread and the processing threads.
pub(crate) struct Membership {
    group: String,
    bootstrap: String,
    /// TLS and SASL of the connection to the coordinator.
    security: SecurityConfig,
    client_id: String,
    member_id: String,
    process_id: String,
    instance_id: Option<String>,
    endpoint: Option<Endpoint>,
    topology: TopologyDesc,
    threads: usize,
    state: Mutex<State>,
    wake: Condvar,
    /// Processing threads still running: the member leaves the group after
    /// the last one has committed and closed its tasks.
    running_threads: AtomicUsize,
}

impl Membership {
    /// Under `group_protocol = "streams"`: sets the group's standby
    /// replicas and makes the instance's member; `None` under the other
    /// protocols. A bad security setting (a CA file missing) fails here.
    pub(crate) fn for_config(config: &Config, topology: &Topology, partitions: &[i32]) -> Result<Option<Arc<Self>>> {
        if config.group_protocol != crate::config::GroupProtocol::Streams {
            return Ok(None);
        }
        let replicas = config.num_standby_replicas.to_string();
        let client_id = format!("{}-{}-admin", config.application_id, config.instance_id);
        let bootstrap = &config.kafka.bootstrap_servers;
        let security = SecurityConfig::from_config(config)?;
        StreamsGroupClient::connect(&security, bootstrap, &config.application_id, &client_id, Duration::from_secs(30))
            .and_then(|mut c| c.set_group_config("streams.num.standby.replicas", &replicas))?;
        Ok(Some(Membership::new(config, security, topology, partitions)))
    }

    pub(crate) fn new(
        config: &Config,
        security: SecurityConfig,
        topology: &Topology,
        partitions: &[i32],
    ) -> Arc<Membership> {
        let endpoint = config.http.advertised_address.rsplit_once(':').and_then(|(host, port)| {
            Some(Endpoint { host: host.trim_matches(['[', ']']).to_string(), port: port.parse().ok()? })
        });
        Arc::new(Membership {
            group: config.application_id.clone(),
            bootstrap: config.kafka.bootstrap_servers.clone(),
            security,
            client_id: format!("{}-{}-membership", config.application_id, config.instance_id),
            member_id: uuid::Uuid::new_v4().to_string(),
            process_id: uuid::Uuid::new_v4().to_string(),
            // Kafka 4.3 refuses static members in streams groups ("Static
            // membership is not yet supported"): every process joins as a
            // new member.
            instance_id: None,
            endpoint,
            topology: describe(topology, &config.application_id, partitions),
            threads: config.num_threads.max(1),
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            running_threads: AtomicUsize::new(config.num_threads),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The processing thread that runs task `id` (active or standby).
    pub(crate) fn thread_of(&self, id: TaskId) -> usize {
        (id.partition.unsigned_abs() as usize).wrapping_add(id.subtopology.wrapping_mul(31)) % self.threads
    }

    /// This thread's part of the current assignment.
    pub(crate) fn view(&self, thread: usize) -> View {
        let st = self.lock();
        let mine = |ids: &BTreeSet<TaskId>| ids.iter().copied().filter(|&id| self.thread_of(id) == thread).collect();
        View {
            version: st.version,
            lost: st.lost,
            assigned: st.target.as_ref().map(|t| Assigned { active: mine(&t.active), standby: mine(&t.standby) }),
        }
    }

    /// A thread tells what it owns now (after reconciling with `lost` as
    /// it read it); the next heartbeat reports it.
    pub(crate) fn report(&self, thread: usize, lost: u64, owned: Assigned) {
        let mut st = self.lock();
        if lost != st.lost {
            return;
        }
        if st.owned.get(&thread) != Some(&(lost, owned.clone())) {
            st.owned.insert(thread, (lost, owned));
            st.owned_changed = true;
            self.wake.notify_all();
        }
    }

    /// The member id and epoch that fence this instance's offset commits.
    pub(crate) fn member(&self) -> (String, i32) {
        (self.member_id.clone(), self.lock().member_epoch)
    }

    pub(crate) fn group(&self) -> &str {
        &self.group
    }

    /// Whether the assignment or the loss count moved past what a thread
    /// applied; the membership's fatal error, if it failed.
    pub(crate) fn changed_since(&self, version: u64, lost: u64) -> Result<bool> {
        let st = self.lock();
        match &st.fatal {
            Some(why) => Err(Error::Internal(why.clone())),
            None => Ok(st.version != version || st.lost != lost),
        }
    }

    /// A processing thread has stopped (its tasks committed and closed, or
    /// dropped after a failure).
    pub(crate) fn thread_stopped(&self) {
        self.running_threads.fetch_sub(1, Ordering::SeqCst);
        self.wake.notify_all();
    }

    /// Shutting down, and every processing thread has closed its tasks.
    fn may_leave(&self, shutdown: &AtomicBool) -> bool {
        shutdown.load(Ordering::SeqCst) && self.running_threads.load(Ordering::SeqCst) == 0
    }

    /// The heartbeat thread: joins, heartbeats, and leaves once `shutdown`
    /// is set and every processing thread has stopped.
    pub(crate) fn run(self: Arc<Self>, shutdown: Arc<AtomicBool>) -> Result<()> {
        let mut client: Option<StreamsGroupClient> = None;
        let mut failing_since: Option<Instant> = None;
        loop {
            if self.may_leave(&shutdown) {
                self.leave(client.as_mut());
                return Ok(());
            }
            let wait = match self.heartbeat(&mut client) {
                Ok(Some(next)) => {
                    failing_since = None;
                    next
                }
                Ok(None) => {
                    failing_since = None;
                    Duration::ZERO
                }
                Err(Beat::Retry(why)) => {
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    tracing::warn!(group = %self.group, reason = %why, failing_for_s = since.elapsed().as_secs(),
                        "streams group heartbeat failed; retrying");
                    client = None;
                    RETRY
                }
                Err(Beat::Fatal(why)) => {
                    tracing::error!(group = %self.group, reason = %why, "the streams group membership failed; stopping");
                    self.lock().fatal = Some(why.clone());
                    shutdown.store(true, Ordering::SeqCst);
                    self.wake.notify_all();
                    return Err(Error::Internal(why));
                }
            };
            let st = self.lock();
            let (mut st, _) = self
                .wake
                .wait_timeout_while(st, wait, |st| !(st.owned_changed || self.may_leave(&shutdown)))
                .unwrap_or_else(|e| e.into_inner());
            st.owned_changed = false;
        }
    }

    /// One heartbeat. `Ok(Some(interval))` after a normal answer,
    /// `Ok(None)` to send the next one at once (rejoining).
    fn heartbeat(&self, client: &mut Option<StreamsGroupClient>) -> std::result::Result<Option<Duration>, Beat> {
        if client.is_none() {
            let c = StreamsGroupClient::connect(
                &self.security,
                &self.bootstrap,
                &self.group,
                &self.client_id,
                CONNECT_TIMEOUT,
            )
            .map_err(|e| {
                if e.is_retriable() {
                    Beat::Retry(e.to_string())
                } else {
                    Beat::Fatal(e.to_string())
                }
            })?;
            *client = Some(c);
        }
        let Some(c) = client.as_mut() else { return Ok(None) };
        let request = self.request();
        let response = c.heartbeat(&request).map_err(|e| Beat::Retry(e.to_string()))?;
        self.apply(response)
    }

    fn request(&self) -> HeartbeatRequest {
        let st = self.lock();
        let joining = st.member_epoch == 0;
        let owned = |f: fn(&Assigned) -> &BTreeSet<TaskId>| {
            task_ids(st.owned.values().filter(|(lost, _)| *lost == st.lost).flat_map(|(_, a)| f(a).iter().copied()))
        };
        HeartbeatRequest {
            group_id: self.group.clone(),
            member_id: self.member_id.clone(),
            member_epoch: st.member_epoch,
            endpoint_information_epoch: st.endpoint_epoch,
            instance_id: self.instance_id.clone(),
            rack_id: None,
            rebalance_timeout_ms: REBALANCE_TIMEOUT_MS,
            topology: joining.then(|| self.topology.clone()),
            active_tasks: Some(owned(|a| &a.active)),
            standby_tasks: Some(owned(|a| &a.standby)),
            warmup_tasks: Some(Vec::new()),
            process_id: Some(self.process_id.clone()),
            user_endpoint: self.endpoint.clone(),
            client_tags: joining.then(Vec::new),
            task_offsets: None,
            task_end_offsets: None,
            shutdown_application: false,
        }
    }

    fn apply(&self, r: HeartbeatResponse) -> std::result::Result<Option<Duration>, Beat> {
        let mut st = self.lock();
        let why = || format!("{} {}", error_name(r.error_code), r.error_message.clone().unwrap_or_default());
        match r.error_code {
            code::NONE => {}
            c if codes::member_fenced(c) => {
                tracing::warn!(group = %self.group, reason = %why(), "the group coordinator fenced this instance's \
                    member (its session timed out or its epoch is stale): its tasks move on, joining again");
                st.lost += 1;
                st.member_epoch = 0;
                st.target = None;
                st.version += 1;
                st.owned.clear();
                self.wake.notify_all();
                return Ok(None);
            }
            code::UNRELEASED_INSTANCE_ID => {
                tracing::warn!(group = %self.group, instance = ?self.instance_id, "the broker still holds this static \
                    member's place for its previous process (a crash or kill -9) until its session times out; \
                    joining again in a second");
                return Ok(Some(RETRY));
            }
            c if c == code::REQUEST_TIMED_OUT || codes::coordinator_moved(c) => return Err(Beat::Retry(why())),
            _ => {
                return Err(Beat::Fatal(format!(
                    "the broker refused the streams group heartbeat of group '{}': {}",
                    self.group,
                    why()
                )))
            }
        }
        st.member_epoch = r.member_epoch;
        st.endpoint_epoch = r.endpoint_information_epoch;
        let statuses = r.status.clone().unwrap_or_default();
        if statuses != st.statuses {
            for (code, detail) in &statuses {
                let name = status::name(*code);
                if *code == status::ASSIGNMENT_DELAYED {
                    tracing::debug!(group = %self.group, status = name, detail = %detail, "streams group status");
                } else {
                    tracing::warn!(group = %self.group, status = name, detail = %detail, "streams group status");
                }
            }
            st.statuses = statuses;
        }
        if r.active_tasks.is_some() || r.standby_tasks.is_some() || r.warmup_tasks.is_some() {
            let mut target = st.target.clone().unwrap_or_default();
            if let Some(active) = &r.active_tasks {
                target.active = task_set(active);
            }
            // Kafka 4.3's assignor places no warm-up tasks; one would be
            // kept like a standby.
            if r.standby_tasks.is_some() || r.warmup_tasks.is_some() {
                let standby = r.standby_tasks.as_deref().unwrap_or_default();
                let warmup = r.warmup_tasks.as_deref().unwrap_or_default();
                target.standby = task_set(standby).into_iter().chain(task_set(warmup)).collect();
            }
            if st.target.as_ref() != Some(&target) {
                tracing::info!(group = %self.group, epoch = r.member_epoch,
                    active = ?target.active.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    standby = ?target.standby.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "streams group assignment");
                st.target = Some(target);
                st.version += 1;
                self.wake.notify_all();
            }
        }
        Ok(Some(Duration::from_millis(r.heartbeat_interval_ms.clamp(100, 30_000) as u64)))
    }

    /// Leaves the group (a static member only says it will be back:
    /// epoch -2 keeps its tasks until its session times out).
    fn leave(&self, client: Option<&mut StreamsGroupClient>) {
        let Some(c) = client else { return };
        let mut request = self.request();
        request.member_epoch = if self.instance_id.is_some() { -2 } else { -1 };
        request.topology = None;
        match c.heartbeat(&request) {
            Ok(r) if r.error_code == code::NONE => tracing::info!(group = %self.group, "left the streams group"),
            Ok(r) => tracing::warn!(group = %self.group, error = error_name(r.error_code), "leaving the streams group"),
            Err(e) => tracing::warn!(group = %self.group, error = %e, "leaving the streams group"),
        }
    }
}

/// Why a heartbeat did not go through.
enum Beat {
    /// Try again after [`RETRY`] with a new connection.
    Retry(String),
    /// Stop the application.
    Fatal(String),
}

fn task_set(ids: &[TaskIds]) -> BTreeSet<TaskId> {
    ids.iter()
        .filter_map(|t| Some((t.subtopology_id.parse::<usize>().ok()?, &t.partitions)))
        .flat_map(|(subtopology, ps)| ps.iter().map(move |&partition| TaskId { subtopology, partition }))
        .collect()
}

fn task_ids(ids: impl Iterator<Item = TaskId>) -> Vec<TaskIds> {
    let mut by_sub: BTreeMap<usize, Vec<i32>> = BTreeMap::new();
    for id in ids {
        by_sub.entry(id.subtopology).or_default().push(id.partition);
    }
    by_sub
        .into_iter()
        .map(|(sub, mut partitions)| {
            partitions.sort_unstable();
            partitions.dedup();
            TaskIds { subtopology_id: sub.to_string(), partitions }
        })
        .collect()
}

/// The topology as the broker needs it: per sub-topology (id = its index)
/// its user source topics, the repartition topics it reads (with their
/// partition counts) and writes, and its stores' changelogs (partitions 0:
/// as many as the sources, the broker derives it). All sources of a
/// sub-topology are co-partitioned: a rivulet task reads partition p of each.
fn describe(topology: &Topology, application_id: &str, partitions: &[i32]) -> TopologyDesc {
    let subtopologies = topology
        .subtopologies
        .iter()
        .map(|st| {
            let count = partitions.get(st.id).copied().unwrap_or(0);
            let (mut sources, mut internal) = (Vec::new(), Vec::new());
            for (_, topic) in &st.sources {
                let name = topic.resolve(application_id);
                if matches!(topic, crate::processor::graph::TopicName::Internal(_)) {
                    internal.push(TopicInfo { name, partitions: count, replication_factor: 0, topic_configs: vec![] });
                } else {
                    sources.push(name);
                }
            }
            sources.sort();
            sources.dedup();
            internal.sort_by(|a, b| a.name.cmp(&b.name));
            internal.dedup_by(|a, b| a.name == b.name);
            let copartition_groups = if sources.len() + internal.len() > 1 {
                vec![CopartitionGroup {
                    source_topics: (0..sources.len() as i16).collect(),
                    source_topic_regex: vec![],
                    repartition_source_topics: (0..internal.len() as i16).collect(),
                }]
            } else {
                vec![]
            };
            let changelogs = st.stores.iter().map(|s| TopicInfo {
                name: changelog_topic(s).resolve(application_id),
                partitions: 0,
                replication_factor: 0,
                topic_configs: vec![],
            });
            let repartition_sinks =
                st.sinks.iter().filter(|t| matches!(t, crate::processor::graph::TopicName::Internal(_)));
            Subtopology {
                subtopology_id: st.id.to_string(),
                source_topics: sources,
                source_topic_regex: vec![],
                state_changelog_topics: changelogs.collect(),
                repartition_sink_topics: repartition_sinks.map(|t| t.resolve(application_id)).collect(),
                repartition_source_topics: internal,
                copartition_groups,
            }
        })
        .collect();
    TopologyDesc { epoch: 0, subtopologies }
}
