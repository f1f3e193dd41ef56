//! Topic checks and internal-topic creation at start.
//!
//! Before any thread starts: every source topic must exist; the source
//! topics of one sub-topology must have the same partition count; internal
//! topics (changelogs, compacted; repartition topics) are created with the
//! partition count of the sub-topology that owns them, and existing ones
//! are checked for partition count and cleanup policy.
//!
//! Repartition topics keep their records until rivulet deletes them: they
//! are created with `retention.ms=-1` and `retention.bytes=-1`, as Kafka
//! Streams' `RepartitionTopicConfig` does (with `cleanup.policy=delete` and
//! 50 MB segments), and the records below the downstream tasks' committed
//! offsets are deleted after commits (`crate::runtime::purge`). A time
//! retention would be judged on the records' timestamps: replaying history
//! older than the retention would let the broker delete records before the
//! downstream task read them, silently. So an existing repartition topic
//! with a finite retention, or compacted, is refused.
//!
//! The changelog of a tumbling or hopping window store is *windowed*, as
//! Kafka Streams' (`WindowedChangelogTopicConfig`): `cleanup.policy =
//! compact,delete` and `retention.ms` = window size + grace +
//! `state.window_changelog_additional_retention_ms`, because the store drops
//! closed windows without tombstones (`topology/windows/segmented.rs`). An
//! existing one that is compacted only is accepted with a warning (nothing
//! is lost, but closed windows stay in it forever and every full restore
//! reads them); one whose `retention.ms` is shorter than size + grace is an
//! error, since the broker would delete windows still open.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::{Client, DefaultClientContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use crate::error::{Error, Result};
use crate::kafka::{client_config, ClientRole};
use crate::processor::graph::TopicName;
use crate::topology::{changelog_topic, Topology};
use crate::Config;

const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// What the runtime needs to know about topics.
pub(crate) struct TopicPlan {
    /// Resolved source topic -> sub-topology.
    pub(crate) topic_to_subtopology: HashMap<String, usize>,
    /// Resolved names of the repartition topics.
    pub(crate) repartition_topics: BTreeSet<String>,
    /// The partition count of each sub-topology (its number of tasks), by id.
    pub(crate) partitions: Vec<i32>,
}

struct Wanted {
    name: String,
    partitions: i32,
    compacted: bool,
    /// A windowed changelog: (the least `retention.ms` that keeps every
    /// open window, the `retention.ms` to create it with).
    windowed: Option<(i64, i64)>,
    /// A repartition topic: see [`REPARTITION_TOPIC_CONFIG`].
    repartition: bool,
}

/// The configs repartition topics are created with, as Kafka Streams'
/// `RepartitionTopicConfig`: no retention by time or size (rivulet deletes
/// consumed records itself), and 50 MB segments so that the broker frees
/// the space of deleted records soon (it removes whole segments only).
const REPARTITION_TOPIC_CONFIG: &[(&str, &str)] =
    &[("cleanup.policy", "delete"), ("retention.ms", "-1"), ("retention.bytes", "-1"), ("segment.bytes", "52428800")];

/// The admin client of `config`'s cluster.
pub(crate) fn admin_client(config: &Config) -> Result<AdminClient<DefaultClientContext>> {
    // No statistics (a user's [kafka.common] interval would have the
    // default context log them).
    client_config(config, ClientRole::Admin)?
        .set("statistics.interval.ms", "0")
        .create()
        .map_err(|e| Error::kafka("creating the admin client", e))
}

/// Every topic of the cluster, with its partition count.
pub(crate) fn existing_topics(config: &Config, client: &Client<impl ClientContext>) -> Result<BTreeMap<String, i32>> {
    let metadata = client.fetch_metadata(None, ADMIN_TIMEOUT).map_err(|e| {
        Error::kafka(
            format!(
                "reading cluster metadata from {} (is the broker up and kafka.bootstrap_servers right?)",
                config.kafka.bootstrap_servers
            ),
            e,
        )
    })?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| (t.name().to_string(), t.partitions().len() as i32))
        .collect())
}

/// Checks source topics and creates or checks internal topics.
pub(crate) fn prepare_topics(config: &Config, topology: &Topology) -> Result<TopicPlan> {
    let admin = admin_client(config)?;
    let existing = existing_topics(config, admin.inner())?;
    let app = &config.application_id;
    if let Some(g) = topology.globals.iter().find(|g| !existing.contains_key(&g.topic)) {
        if let Some(denied) = describe_denied(&admin, &g.topic, "READ") {
            return Err(denied);
        }
        return Err(Error::Topics(format!(
            "topic {} of the global table `{}` does not exist; create it (rivulet creates only its internal \
             topics) or fix the topic name in the topology",
            g.topic, g.name
        )));
    }

    // Partition counts, sub-topology by sub-topology: external sources fix
    // a count, and the internal topics read with them are co-partitioned
    // with them (Kafka Streams' co-partition groups: a foreign-key join's
    // subscription topic takes the right table's count, its response topic
    // the left table's); a repartition topic read alone takes the count of
    // the sub-topology writing it. Without an external source, the
    // repartition topics fix the count and a foreign-key join's topics
    // follow them: when both tables come from repartition topics, the
    // subscription and response topics make a cycle between the two sides,
    // and sizing from them would never end (or pick the writer's count, not
    // the reader's).
    let subs = &topology.subtopologies;
    let mut partitions: Vec<Option<i32>> = vec![None; subs.len()];
    let mut topic_counts: BTreeMap<TopicName, i32> = BTreeMap::new();
    for _ in 0..=subs.len() {
        for st in subs {
            if partitions[st.id].is_some() {
                continue;
            }
            let mut counts = Vec::new();
            let mut unknown = false;
            let has_external = st.sources.iter().any(|(_, t)| matches!(t, TopicName::External(_)));
            let has_repartition = st.sources.iter().any(|(_, t)| t.is_repartition());
            for (_, t) in &st.sources {
                match t {
                    TopicName::External(name) => match existing.get(name) {
                        Some(&n) => counts.push((name.clone(), n)),
                        None => {
                            if let Some(denied) = describe_denied(&admin, name, "READ") {
                                return Err(denied);
                            }
                            return Err(Error::Topics(format!(
                                "source topic {name} does not exist; create it (rivulet creates only its internal \
                                 topics) or fix the topic name in the topology"
                            )));
                        }
                    },
                    TopicName::Internal(_) if has_external => {}
                    TopicName::Internal(_) if has_repartition && !t.is_repartition() => {}
                    TopicName::Internal(_) => match topic_counts.get(t) {
                        Some(&n) => counts.push((t.resolve(app), n)),
                        None => unknown = true,
                    },
                }
            }
            if unknown {
                continue;
            }
            let first = counts.first().map(|(_, n)| *n).unwrap_or(1);
            if counts.iter().any(|(_, n)| *n != first) {
                return Err(Error::Topics(format!(
                    "the source topics of sub-topology {} must have the same number of partitions, so that \
                     partition p of each is processed together; they have {}",
                    st.id,
                    counts.iter().map(|(t, n)| format!("{t}: {n}")).collect::<Vec<_>>().join(", ")
                )));
            }
            partitions[st.id] = Some(first);
            for t in &st.sinks {
                if matches!(t, TopicName::Internal(_)) {
                    topic_counts.insert(t.clone(), first);
                }
            }
        }
    }
    let partitions: Vec<i32> = partitions
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            p.ok_or_else(|| {
                Error::Internal(format!("cannot size sub-topology {i}: its repartition input has no writer"))
            })
        })
        .collect::<Result<_>>()?;

    // Output topics are checked here too, as sources are, rather than when
    // the first output fails after the group was joined. Topics chosen per
    // record (`to_dynamic`) can only be found then.
    for st in &topology.subtopologies {
        for t in &st.sinks {
            if let TopicName::External(name) = t {
                if !existing.contains_key(name) {
                    if let Some(denied) = describe_denied(&admin, name, "WRITE") {
                        return Err(denied);
                    }
                    return Err(Error::Topics(format!(
                        "output topic {name} does not exist; create it (rivulet creates only its internal topics) \
                         or fix the topic name in the topology"
                    )));
                }
            }
        }
    }

    let mut wanted = Vec::new();
    for st in subs {
        for (_, t) in &st.sources {
            if let TopicName::Internal(_) = t {
                wanted.push(Wanted {
                    name: t.resolve(app),
                    partitions: partitions[st.id],
                    compacted: false,
                    windowed: None,
                    repartition: true,
                });
            }
        }
        for s in &st.stores {
            let windowed = topology
                .stores
                .iter()
                .find(|d| &d.name == s)
                .and_then(|d| d.windowed_retention_ms)
                .map(|least| (least, least.saturating_add(config.state.window_changelog_additional_retention_ms)));
            wanted.push(Wanted {
                name: changelog_topic(s).resolve(app),
                partitions: partitions[st.id],
                compacted: true,
                windowed,
                repartition: false,
            });
        }
    }
    if !topology.stores.is_empty() {
        // The instances directory of interactive queries (`crate::query::directory`).
        let name = format!("{app}-instances");
        wanted.push(Wanted { name, partitions: 1, compacted: true, windowed: None, repartition: false });
    }
    if config.errors.uses_dead_letter() {
        let dlq = config.dead_letter_topic();
        if config.errors.dead_letter_topic.is_empty() {
            if !existing.contains_key(&dlq) {
                wanted.push(Wanted { name: dlq, partitions: 1, compacted: false, windowed: None, repartition: false });
            }
        } else if !existing.contains_key(&dlq) {
            if let Some(denied) = describe_denied(&admin, &dlq, "WRITE") {
                return Err(denied);
            }
            return Err(Error::Topics(format!(
                "the dead-letter topic {dlq} (errors.dead_letter_topic) does not exist; create it, or leave the key \
                 empty to have rivulet create {app}-dlq"
            )));
        }
    }

    // The admin API is async; run it on a runtime of its own, on a thread of
    // its own, so that App::start works from sync and async callers alike.
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| Error::Internal(format!("starting the admin runtime: {e}")))?;
                let embedded = crate::kafka::embedded::is_embedded(&config.kafka.bootstrap_servers);
                runtime.block_on(ensure_topics(&admin, embedded, app, &existing, &wanted))
            })
            .join()
            .unwrap_or_else(|_| Err(Error::Internal("the admin thread panicked".into())))
    })?;

    let mut topic_to_subtopology = HashMap::new();
    for st in subs {
        for (_, t) in &st.sources {
            topic_to_subtopology.insert(t.resolve(app), st.id);
        }
    }
    let repartition_topics = wanted.into_iter().filter(|w| w.repartition).map(|w| w.name).collect();
    Ok(TopicPlan { topic_to_subtopology, repartition_topics, partitions })
}

async fn ensure_topics(
    admin: &AdminClient<DefaultClientContext>,
    embedded: bool,
    app: &str,
    existing: &BTreeMap<String, i32>,
    wanted: &[Wanted],
) -> Result<()> {
    let opts = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT)).request_timeout(Some(ADMIN_TIMEOUT));
    // Check the ones that exist.
    let present: Vec<&Wanted> = wanted.iter().filter(|w| existing.contains_key(&w.name)).collect();
    for w in &present {
        let have = existing[&w.name];
        if have != w.partitions {
            return Err(Error::Topics(format!(
                "internal topic {} has {have} partitions but the topology needs {}; delete it (its data is \
                 rebuilt from the source topics) or restore the source topics' partition count",
                w.name, w.partitions
            )));
        }
    }
    if !present.is_empty() && !embedded {
        let specs: Vec<ResourceSpecifier<'_>> = present.iter().map(|w| ResourceSpecifier::Topic(&w.name)).collect();
        let results =
            admin.describe_configs(&specs, &opts).await.map_err(|e| Error::kafka("describing internal topics", e))?;
        for (w, r) in present.iter().zip(results) {
            let resource = r.map_err(|code| match code {
                RDKafkaErrorCode::TopicAuthorizationFailed | RDKafkaErrorCode::ClusterAuthorizationFailed => {
                    Error::not_authorized(
                        &format!("DESCRIBE_CONFIGS topic '{}'", w.name),
                        &format!("DESCRIBE_CONFIGS on topics prefixed '{app}-' (its internal topics, PREFIXED)"),
                        &format!("checking the settings of the existing internal topic: {code}"),
                    )
                }
                code => Error::Topics(format!("describing topic {}: {code}", w.name)),
            })?;
            let policy = resource.get("cleanup.policy").and_then(|e| e.value.clone()).unwrap_or_default();
            if w.compacted && !policy.contains("compact") {
                return Err(Error::Topics(format!(
                    "changelog topic {} has cleanup.policy={policy}; it must be compacted. Set \
                     cleanup.policy=compact on it (kafka-configs --alter --add-config cleanup.policy=compact)",
                    w.name
                )));
            }
            if let Some((least, retention)) = w.windowed {
                let have = resource.get("retention.ms").and_then(|e| e.value.as_deref());
                check_windowed_changelog(&w.name, &policy, have, least, retention)?;
            }
            if w.repartition {
                check_repartition_topic(&w.name, &resource)?;
            }
        }
    }
    // Create the missing ones.
    let missing: Vec<&Wanted> = wanted.iter().filter(|w| !existing.contains_key(&w.name)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let retentions: Vec<Option<String>> =
        missing.iter().map(|w| w.windowed.map(|(_, retention)| retention.to_string())).collect();
    let new_topics: Vec<NewTopic<'_>> = missing
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let t = NewTopic::new(&w.name, w.partitions, TopicReplication::Fixed(-1));
            match (w.compacted, &retentions[i]) {
                (true, Some(retention)) => t.set("cleanup.policy", "compact,delete").set("retention.ms", retention),
                (true, None) => t.set("cleanup.policy", "compact"),
                (false, _) if w.repartition => REPARTITION_TOPIC_CONFIG.iter().fold(t, |t, (k, v)| t.set(k, v)),
                (false, _) => t,
            }
        })
        .collect();
    let results =
        admin.create_topics(&new_topics, &opts).await.map_err(|e| Error::kafka("creating internal topics", e))?;
    for r in results {
        match r {
            Ok(name) => tracing::info!(topic = %name, "created internal topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((
                name,
                code @ (RDKafkaErrorCode::TopicAuthorizationFailed | RDKafkaErrorCode::ClusterAuthorizationFailed),
            )) => {
                return Err(Error::not_authorized(
                    &format!("CREATE topic '{name}'"),
                    &format!("CREATE on topics prefixed '{app}-' (its internal topics, PREFIXED)"),
                    &format!("creating the internal topic: {code}"),
                ))
            }
            Err((name, code)) => {
                return Err(Error::Topics(format!(
                    "creating internal topic {name} failed: {code}; rivulet needs permission to create topics \
                     prefixed with its application_id"
                )))
            }
        }
    }
    // Wait until the broker serves them.
    let deadline = std::time::Instant::now() + ADMIN_TIMEOUT;
    for w in missing {
        loop {
            let md = admin.inner().fetch_metadata(Some(&w.name), Duration::from_secs(5));
            let ready = md.ok().is_some_and(|m| {
                m.topics().first().is_some_and(|t| {
                    t.error().is_none()
                        && t.partitions().len() == w.partitions as usize
                        && t.partitions().iter().all(|p| p.leader() >= 0)
                })
            });
            if ready {
                break;
            }
            if std::time::Instant::now() > deadline {
                return Err(Error::Topics(format!("internal topic {} was created but is not served yet", w.name)));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// When the principal may not see `topic` (it is missing from the metadata
/// of all topics, and the broker refuses to describe it by name), the
/// error naming the permission it needs: `operation` (`READ` for a topic
/// it reads, `WRITE` for one it writes), which includes DESCRIBE.
fn describe_denied(admin: &AdminClient<DefaultClientContext>, topic: &str, operation: &str) -> Option<Error> {
    let metadata = admin.inner().fetch_metadata(Some(topic), Duration::from_secs(10)).ok()?;
    let code = RDKafkaErrorCode::from(metadata.topics().first()?.error()?);
    (code == RDKafkaErrorCode::TopicAuthorizationFailed).then(|| {
        Error::not_authorized(
            &format!("DESCRIBE topic '{topic}'"),
            &format!("{operation} on topic '{topic}' (it includes DESCRIBE)"),
            &format!("reading the topic's metadata: {code}"),
        )
    })
}

/// An existing repartition topic must keep its records until rivulet
/// deletes them: no compaction, no retention by time or size (the checks
/// of Kafka Streams' `InternalTopicManager` for repartition topics).
fn check_repartition_topic(name: &str, resource: &rdkafka::admin::ConfigResource) -> Result<()> {
    let value = |key: &str| resource.get(key).and_then(|e| e.value.clone()).unwrap_or_default();
    let policy = value("cleanup.policy");
    if policy.contains("compact") {
        return Err(Error::Topics(format!(
            "repartition topic {name} has cleanup.policy={policy}; compaction would drop records the downstream \
             sub-topology has not read. Set cleanup.policy=delete on it (kafka-configs --alter --entity-type topics \
             --entity-name {name} --add-config cleanup.policy=delete)"
        )));
    }
    for key in ["retention.ms", "retention.bytes"] {
        let v = value(key);
        if v != "-1" {
            return Err(Error::Topics(format!(
                "repartition topic {name} has {key}={v}; the broker would delete records the downstream \
                 sub-topology has not read yet (a time retention is judged on the records' timestamps, so \
                 replaying old data loses it at once). rivulet deletes consumed records itself. Set {key}=-1 on \
                 it (kafka-configs --alter --entity-type topics --entity-name {name} --add-config {key}=-1)"
            )));
        }
    }
    Ok(())
}

/// Checks the cleanup settings of an existing windowed changelog (the
/// cleanup policy, already known to include `compact`).
fn check_windowed_changelog(name: &str, policy: &str, have: Option<&str>, least: i64, retention: i64) -> Result<()> {
    if !policy.split(',').any(|p| p.trim() == "delete") {
        tracing::warn!(
            topic = %name,
            policy = %policy,
            "window-store changelog is compacted only: closed windows are never deleted from it, so it grows with every \
             window and a full restore reads them all; set cleanup.policy=compact,delete and retention.ms={retention} \
             on it (kafka-configs --alter --add-config 'cleanup.policy=[compact,delete],retention.ms={retention}')"
        );
        return Ok(());
    }
    match have.and_then(|v| v.trim().parse::<i64>().ok()) {
        // -1: no time limit.
        Some(have) if have >= 0 && have < least => Err(Error::Topics(format!(
            "window-store changelog {name} has cleanup.policy={policy} with retention.ms={have}, shorter than the \
             window size plus grace ({least} ms): the broker would delete windows that are still open. Set \
             retention.ms={retention} on it (kafka-configs --alter --add-config retention.ms={retention})"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn a_windowed_changelog_may_be_compacted_only_but_not_retain_less_than_size_plus_grace() {
        let check =
            |policy: &str, have: Option<&str>| check_windowed_changelog("app-w-changelog", policy, have, 70, 100);
        assert!(check("compact", Some("604800000")).is_ok(), "accepted, with a warning");
        assert!(check("compact,delete", Some("100")).is_ok());
        assert!(check("delete,compact", Some("70")).is_ok());
        assert!(check("compact,delete", Some("-1")).is_ok(), "no time limit keeps everything");
        let err = check("compact,delete", Some("69")).unwrap_err().to_string();
        assert!(err.contains("app-w-changelog") && err.contains("retention.ms=100"), "{err}");
    }
}
