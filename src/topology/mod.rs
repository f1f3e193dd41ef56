//! Topologies: what a rivulet application computes.
//!
//! A [`TopologyBuilder`] records operators as nodes of a graph. `build()`
//! validates the graph and splits it into **sub-topologies**: the pieces
//! connected by edges, cut wherever records go through a repartition topic
//! (written by one sub-topology, read by another). A **task** is one
//! sub-topology instantiated for one partition number; it owns the stores
//! of its sub-topology for that partition.
//!
//! Stores and internal topics are named from what the user wrote (a
//! store's name, `<name>-repartition`), never from graph positions, so a
//! topology can change without orphaning its state. Node names
//! (`MAP-0003`) are for `describe()` and errors only.

mod async_io;
mod builder;
mod cache;
mod change;
mod joins;
pub mod keyed;
mod ops;
mod two_phase;
mod windows;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

pub use crate::processor::{
    KeyValueView, ProcessError, Processor, ProcessorContext, StoreKind, StoreSpec, TimeKind, Timestamps, TopologyError,
    UserError,
};
pub use crate::record::Windowed;
pub use async_io::{AsyncOptions, AsyncRetry};
pub use builder::{
    Branches, Data, GlobalKTable, KGroupedStream, KGroupedTable, KStream, KTable, Split, TopologyBuilder,
    TwoPhaseGroupedStream, ValueTransformerContext, ValueTransformerWithKey,
};
pub use joins::JoinWindows;
#[cfg(test)]
pub(crate) use joins::StreamJoinKind;
pub(crate) use windows::query as window_query;
pub use windows::{Aggregator, EmitMode, Updates, WindowOutput, WindowResult, WindowedStream, Windows, WithTombstones};

use crate::processor::graph::{NodeKind, NodeSpec, TopicName};
use crate::processor::store::GlobalSpec;
use builder::Graph;

/// One connected piece of the graph between source topics and sinks.
#[derive(Debug, Clone)]
pub(crate) struct Subtopology {
    pub(crate) id: usize,
    pub(crate) nodes: Vec<usize>,
    /// Source node ids and their topics.
    pub(crate) sources: Vec<(usize, TopicName)>,
    /// Topics written by sinks with a fixed topic.
    pub(crate) sinks: Vec<TopicName>,
    /// Store names used by the nodes.
    pub(crate) stores: Vec<String>,
}

/// A validated topology, shared by every task of every processing thread.
///
/// Made by [`TopologyBuilder::build`]; run by [`App::run`](crate::App::run),
/// or without a broker by
/// [`TopologyTestDriver`](crate::testing::TopologyTestDriver). Its `Debug`
/// is [`describe`](Self::describe).
///
/// ```
/// use rivulet::prelude::*;
/// use rivulet::testing::TopologyTestDriver;
///
/// let mut b = Topology::builder();
/// b.stream("orders", Serdes::string(), Serdes::i64())
///     .filter(|_customer, amount: &i64| *amount >= 100)
///     .to("big-orders", Serdes::string(), Serdes::i64());
/// let topology: Topology = b.build()?;
///
/// let mut driver = TopologyTestDriver::new(topology)?;
/// let orders = driver.input_topic("orders", Serdes::string(), Serdes::i64());
/// let big = driver.output_topic("big-orders", Serdes::string(), Serdes::i64());
/// driver.pipe(&orders, "alice".to_string(), 250, 1_000)?;
/// driver.pipe(&orders, "bob".to_string(), 20, 2_000)?;
/// assert_eq!(driver.read_key_values(&big)?, vec![("alice".to_string(), 250)]);
/// # Ok::<(), rivulet::Error>(())
/// ```
pub struct Topology {
    pub(crate) nodes: Vec<NodeSpec>,
    pub(crate) stores: Vec<StoreSpec>,
    pub(crate) subtopologies: Vec<Subtopology>,
    /// Global tables: read whole by every instance, outside the tasks.
    pub(crate) globals: Vec<GlobalSpec>,
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Topology {
    /// A new, empty [`TopologyBuilder`] (Kafka Streams' `new
    /// StreamsBuilder()`).
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// let mut b = Topology::builder();
    /// b.stream("in", Serdes::string(), Serdes::string()).to("out", Serdes::string(), Serdes::string());
    /// let topology = b.build()?;
    /// assert_eq!(topology.source_topics(), ["in"]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn builder() -> TopologyBuilder {
        TopologyBuilder::default()
    }

    fn from_graph(graph: Graph) -> Result<Topology, TopologyError> {
        if let Some(e) = graph.errors.into_iter().next() {
            return Err(e);
        }
        let nodes = graph.nodes;
        if !nodes.iter().any(|n| matches!(n.kind, NodeKind::Source { .. })) {
            return Err(TopologyError::Invalid(
                "the topology reads no topic; start it with builder.stream(..) or builder.table(..)".into(),
            ));
        }
        for store in &graph.stores {
            check_name("store", &store.name)?;
            if !nodes.iter().any(|n| n.stores.contains(&store.name)) {
                return Err(TopologyError::Invalid(format!(
                    "store `{}` is declared but no processor uses it; list it in KStream::process(&[\"{}\"], ..) \
                     or remove it",
                    store.name, store.name
                )));
            }
        }
        let mut topics_read = BTreeMap::new();
        for n in &nodes {
            if let NodeKind::Source { topic, .. } = &n.kind {
                if let TopicName::Internal(suffix) = topic {
                    check_name("repartition", suffix.trim_end_matches("-repartition"))?;
                }
                if let Some(other) = topics_read.insert(topic.clone(), n.name.clone()) {
                    return Err(TopologyError::Invalid(match topic {
                        TopicName::Internal(_) => format!(
                            "repartition topic {topic} is made twice; each repartition() and each \
                             aggregation that regroups by a new key needs its own name"
                        ),
                        TopicName::External(_) => format!(
                            "topic {topic} is read by two sources ({other} and {}); read it once and reuse \
                             the stream",
                            n.name
                        ),
                    }));
                }
            }
        }
        for n in &nodes {
            for s in &n.stores {
                if !graph.stores.iter().any(|d| &d.name == s) {
                    return Err(TopologyError::Invalid(format!(
                        "{} uses store `{s}`, which is never declared; declare it with \
                         builder.add_store(StoreSpec::key_value(\"{s}\", key_serde, value_serde))",
                        n.name
                    )));
                }
            }
        }
        let subtopologies = split_subtopologies(&nodes)?;
        for g in &graph.globals {
            check_name("global table", &g.name)?;
            if graph.stores.iter().any(|s| s.name == g.name)
                || graph.globals.iter().filter(|o| o.name == g.name).count() > 1
            {
                return Err(TopologyError::Invalid(format!(
                    "store `{}` is declared twice; store names, global tables' included, must be unique in a topology",
                    g.name
                )));
            }
            if topics_read.contains_key(&TopicName::External(g.topic.clone()))
                || graph.globals.iter().filter(|o| o.topic == g.topic).count() > 1
            {
                return Err(TopologyError::Invalid(format!(
                    "topic {} is read by the global table `{}` and by another source; read it once and reuse it",
                    g.topic, g.name
                )));
            }
        }
        Ok(Topology { nodes, stores: graph.stores, subtopologies, globals: graph.globals })
    }

    /// The user topics the topology reads, sorted; internal (repartition)
    /// topics are left out.
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// let mut b = Topology::builder();
    /// let clicks = b.stream("clicks", Serdes::string(), Serdes::string());
    /// let views = b.stream("views", Serdes::string(), Serdes::string());
    /// clicks.merge(&views).repartition("by-user").to("activity", Serdes::string(), Serdes::string());
    /// assert_eq!(b.build()?.source_topics(), ["clicks", "views"]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn source_topics(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .subtopologies
            .iter()
            .flat_map(|s| s.sources.iter())
            .filter_map(|(_, t)| match t {
                TopicName::External(t) => Some(t.clone()),
                TopicName::Internal(_) => None,
            })
            .collect();
        out.sort();
        out
    }

    pub(crate) fn internal_topics(&self) -> BTreeSet<TopicName> {
        let mut out = BTreeSet::new();
        for st in &self.subtopologies {
            for (_, t) in &st.sources {
                if matches!(t, TopicName::Internal(_)) {
                    out.insert(t.clone());
                }
            }
        }
        for s in &self.stores {
            out.insert(changelog_topic(&s.name));
        }
        out
    }

    /// Sub-topologies, sources, processors, sinks, stores and internal
    /// topics, as text (Kafka Streams' `Topology.describe()`). Internal
    /// topics are shown as `<application_id>-<name>-...`; node names
    /// (`FILTER-0002`) number the operators in the order they were added.
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// let mut b = Topology::builder();
    /// b.stream("orders", Serdes::string(), Serdes::i64())
    ///     .filter(|_, amount: &i64| *amount >= 100)
    ///     .to("big-orders", Serdes::string(), Serdes::i64());
    /// assert_eq!(
    ///     b.build()?.describe(),
    ///     "Topology
    ///   Sub-topology 0
    ///     Source SOURCE-0001 (topic orders; string / i64)
    ///       --> FILTER-0002
    ///     Processor FILTER-0002
    ///       --> SINK-0003
    ///     Sink SINK-0003 (topic big-orders; string / i64)
    /// "
    /// );
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn describe(&self) -> String {
        let mut out = String::from("Topology\n");
        for st in &self.subtopologies {
            let _ = writeln!(out, "  Sub-topology {}", st.id);
            for &id in &st.nodes {
                let n = &self.nodes[id];
                let children: Vec<&str> = n.children.iter().map(|c| self.nodes[*c].name.as_str()).collect();
                let _ = match &n.kind {
                    NodeKind::Source { topic, serdes } => {
                        writeln!(out, "    Source {} (topic {topic}; {serdes})", n.name)
                    }
                    NodeKind::Processor if n.stores.is_empty() => writeln!(out, "    Processor {}", n.name),
                    NodeKind::Processor => writeln!(out, "    Processor {} (stores: {})", n.name, n.stores.join(", ")),
                    NodeKind::Sink { topic: Some(t), serdes } => {
                        writeln!(out, "    Sink {} (topic {t}; {serdes})", n.name)
                    }
                    NodeKind::Sink { topic: None, serdes } => {
                        writeln!(out, "    Sink {} (topic chosen per record; {serdes})", n.name)
                    }
                };
                if !children.is_empty() {
                    let _ = writeln!(out, "      --> {}", children.join(", "));
                }
            }
        }
        if !self.stores.is_empty() {
            out.push_str("  Stores\n");
            for s in &self.stores {
                let kind = match s.kind {
                    StoreKind::RocksDb => "rocksdb",
                    StoreKind::InMemory => "in-memory",
                };
                let _ = writeln!(out, "    {} ({kind}, changelog {})", s.name, changelog_topic(&s.name));
            }
        }
        if !self.globals.is_empty() {
            out.push_str("  Global tables\n");
            for g in &self.globals {
                let _ = writeln!(out, "    {} (topic {}; read whole by every instance)", g.name, g.topic);
            }
        }
        let internal = self.internal_topics();
        if !internal.is_empty() {
            out.push_str("  Internal topics\n");
            for t in internal {
                let _ = writeln!(out, "    {t}");
            }
        }
        out
    }
}

/// Store and repartition names become topic names and directory names.
fn check_name(what: &str, name: &str) -> Result<(), TopologyError> {
    let ok = !name.is_empty()
        && name.len() <= 150
        && name != "."
        && name != ".."
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(TopologyError::Invalid(format!(
            "{what} name {name:?} cannot name a Kafka topic and a directory; use 1 to 150 characters from \
             [A-Za-z0-9._-] (not \".\" or \"..\")"
        )))
    }
}

pub(crate) fn changelog_topic(store: &str) -> TopicName {
    TopicName::Internal(format!("{store}-changelog"))
}

/// Connected components of the graph, numbered in the order of their first
/// node. Nodes that use the same store are connected too (a join looks up
/// the store another node writes), as in Kafka Streams'
/// `InternalTopologyBuilder#makeNodeGroups`.
fn split_subtopologies(nodes: &[NodeSpec]) -> Result<Vec<Subtopology>, TopologyError> {
    let mut users: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (id, n) in nodes.iter().enumerate() {
        for s in &n.stores {
            users.entry(s.as_str()).or_default().push(id);
        }
    }
    let mut component = vec![usize::MAX; nodes.len()];
    let mut subtopologies = Vec::new();
    for start in 0..nodes.len() {
        if component[start] != usize::MAX {
            continue;
        }
        let id = subtopologies.len();
        let mut stack = vec![start];
        let mut members = Vec::new();
        while let Some(n) = stack.pop() {
            if component[n] != usize::MAX {
                continue;
            }
            component[n] = id;
            members.push(n);
            stack.extend(nodes[n].children.iter().chain(nodes[n].parents.iter()).copied());
            for s in &nodes[n].stores {
                stack.extend(users.get(s.as_str()).into_iter().flatten().copied());
            }
        }
        members.sort_unstable();
        let mut st = Subtopology { id, nodes: members, sources: Vec::new(), sinks: Vec::new(), stores: Vec::new() };
        for &n in &st.nodes {
            match &nodes[n].kind {
                NodeKind::Source { topic, .. } => st.sources.push((n, topic.clone())),
                NodeKind::Sink { topic: Some(t), .. } => st.sinks.push(t.clone()),
                _ => {}
            }
            for s in &nodes[n].stores {
                if !st.stores.contains(s) {
                    st.stores.push(s.clone());
                }
            }
        }
        if st.sources.is_empty() {
            return Err(TopologyError::Invalid(format!(
                "{} has no source: every sink and processor must be fed by builder.stream(..) or builder.table(..)",
                nodes[st.nodes[0]].name
            )));
        }
        subtopologies.push(st);
    }
    Ok(subtopologies)
}

#[cfg(test)]
mod cache_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod two_phase_tests;
