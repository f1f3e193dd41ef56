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

mod builder;
mod cache;
mod joins;
pub mod keyed;
mod ops;
mod windows;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

pub use crate::processor::{
    KeyValueView, ProcessError, Processor, ProcessorContext, StoreKind, StoreSpec, TimeKind, Timestamps, TopologyError,
    UserError,
};
pub use crate::record::Windowed;
pub use builder::{Branches, Data, KGroupedStream, KStream, KTable, Split, TopologyBuilder};
pub use joins::{JoinWindows, StreamJoinKind};
pub use windows::{Aggregator, EmitMode, Updates, WindowOutput, WindowResult, WindowedStream, Windows, WithTombstones};

use crate::processor::graph::{NodeKind, NodeSpec, TopicName};
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
pub struct Topology {
    pub(crate) nodes: Vec<NodeSpec>,
    pub(crate) stores: Vec<StoreSpec>,
    pub(crate) subtopologies: Vec<Subtopology>,
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Topology {
    /// A new builder.
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
        let mut owner: BTreeMap<&str, usize> = BTreeMap::new();
        for st in &subtopologies {
            for s in &st.stores {
                if let Some(other) = owner.insert(s, st.id) {
                    if other != st.id {
                        return Err(TopologyError::Invalid(format!(
                            "store `{s}` is used in sub-topologies {other} and {}; a store belongs to one \
                             sub-topology: merge() the streams that use it, or use it only downstream of one \
                             repartition",
                            st.id
                        )));
                    }
                }
            }
        }
        Ok(Topology { nodes, stores: graph.stores, subtopologies })
    }

    /// The user topics the topology reads.
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
    /// topics, as text.
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

/// Connected components of the graph, numbered in the order of their first node.
fn split_subtopologies(nodes: &[NodeSpec]) -> Result<Vec<Subtopology>, TopologyError> {
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
