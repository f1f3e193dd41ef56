//! The topology graph: nodes, their edges, and their instantiation per task.
//!
//! The builder records each operator as a [`NodeSpec`] with a `build`
//! function. A task instantiates its sub-topology by asking for the entry
//! of each source; building a node first builds its children, so the
//! instance is wired leaves-first and each node holds typed handles to its
//! children. Type erasure (`Box<dyn Any>`) happens only here, once per task,
//! never per record.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use crate::processor::api::{Children, Entry, Lifecycle, NodeInfo};
use crate::processor::ProcessError;
use crate::processor::TaskContext;
use crate::processor::TopologyError;
use crate::record::Headers;

/// A topic as the topology names it: a user topic, or an internal topic
/// whose full name is `<application_id>-<suffix>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum TopicName {
    External(String),
    Internal(String),
}

/// The name ending of every repartition topic (`KStream::repartition`, and
/// the re-keying before grouping and joins); a foreign-key join's
/// subscription and response topics are the only other internal sources.
pub(crate) const REPARTITION_SUFFIX: &str = "-repartition";

impl TopicName {
    /// Whether this is an internal repartition topic.
    pub(crate) fn is_repartition(&self) -> bool {
        matches!(self, TopicName::Internal(n) if n.ends_with(REPARTITION_SUFFIX))
    }

    pub(crate) fn resolve(&self, application_id: &str) -> String {
        match self {
            TopicName::External(t) => t.clone(),
            TopicName::Internal(suffix) => format!("{application_id}-{suffix}"),
        }
    }
}

impl std::fmt::Display for TopicName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TopicName::External(t) => f.write_str(t),
            TopicName::Internal(suffix) => write!(f, "<application_id>-{suffix}"),
        }
    }
}

pub(crate) enum NodeKind {
    Source { topic: TopicName, serdes: String },
    Processor,
    Sink { topic: Option<TopicName>, serdes: String },
}

pub(crate) type BuildFn =
    Arc<dyn Fn(&mut Instantiator<'_>, usize) -> Result<Box<dyn Any>, TopologyError> + Send + Sync>;

pub(crate) struct NodeSpec {
    pub(crate) name: String,
    pub(crate) kind: NodeKind,
    pub(crate) parents: Vec<usize>,
    pub(crate) children: Vec<usize>,
    pub(crate) stores: Vec<String>,
    pub(crate) build: BuildFn,
}

/// A source as the task feeds it: raw Kafka bytes in, typed records out.
pub(crate) trait RawSource {
    fn process_raw(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
        headers: Headers,
        mark: Option<&[u8]>,
        task: &mut TaskContext,
    ) -> Result<(), ProcessError>;

    /// Registers the source's partition in the task's time when the task
    /// starts (wall clock `now`), so a partition that never has data can
    /// still become idle.
    fn register_time(&mut self, task: &mut TaskContext, now: i64);
}

pub(crate) type SourceEntry = Rc<RefCell<dyn RawSource>>;

/// One task's instance of a sub-topology.
pub(crate) struct Instance {
    /// Resolved topic name -> source.
    pub(crate) sources: HashMap<String, SourceEntry>,
    /// Node id -> lifecycle, for init, timers and close; upstream nodes
    /// before downstream ones.
    pub(crate) lifecycles: Vec<(usize, Rc<RefCell<dyn Lifecycle>>)>,
}

pub(crate) struct Instantiator<'t> {
    nodes: &'t [NodeSpec],
    application_id: &'t str,
    built: HashMap<usize, Box<dyn Any>>,
    lifecycles: Vec<(usize, Rc<RefCell<dyn Lifecycle>>)>,
}

impl<'t> Instantiator<'t> {
    /// Builds the nodes reachable from `source_ids`.
    pub(crate) fn instantiate(
        nodes: &'t [NodeSpec],
        application_id: &'t str,
        source_ids: &[usize],
    ) -> Result<Instance, TopologyError> {
        let mut inst = Instantiator { nodes, application_id, built: HashMap::new(), lifecycles: Vec::new() };
        let mut sources = HashMap::new();
        for &id in source_ids {
            let NodeKind::Source { topic, .. } = &nodes[id].kind else {
                return Err(TopologyError::Internal(format!("node {} is not a source", nodes[id].name)));
            };
            let entry: SourceEntry = inst.entry_as::<SourceEntry>(id)?;
            sources.insert(topic.resolve(application_id), entry);
        }
        // Nodes are built leaves-first, but hooks that forward (a cache or
        // a window flushing at commit, windows closing on a watermark) must
        // run upstream first, so that what they forward reaches downstream
        // nodes before those run their own hook. A node's parents exist
        // before it, so ascending ids are a topological order.
        let mut lifecycles = inst.lifecycles;
        lifecycles.sort_by_key(|(id, _)| *id);
        Ok(Instance { sources, lifecycles })
    }

    pub(crate) fn application_id(&self) -> &str {
        self.application_id
    }

    pub(crate) fn info(&self, id: usize) -> NodeInfo {
        NodeInfo { id, name: self.nodes[id].name.clone(), stores: self.nodes[id].stores.clone() }
    }

    pub(crate) fn register_lifecycle(&mut self, id: usize, lifecycle: Rc<RefCell<dyn Lifecycle>>) {
        self.lifecycles.push((id, lifecycle));
    }

    /// The typed entries of `id`'s children.
    pub(crate) fn children<K: 'static, V: 'static>(&mut self, id: usize) -> Result<Children<K, V>, TopologyError> {
        let child_ids = self.nodes[id].children.clone();
        let entries = child_ids.into_iter().map(|c| self.entry_as::<Entry<K, V>>(c)).collect::<Result<_, _>>()?;
        Ok(Children { entries })
    }

    fn entry_as<T: Clone + 'static>(&mut self, id: usize) -> Result<T, TopologyError> {
        if !self.built.contains_key(&id) {
            let build = self.nodes[id].build.clone();
            let built = build(self, id)?;
            self.built.insert(id, built);
        }
        self.built.get(&id).and_then(|b| b.downcast_ref::<T>()).cloned().ok_or_else(|| {
            TopologyError::Internal(format!(
                "node {} does not take {}; the graph's edge types disagree",
                self.nodes[id].name,
                std::any::type_name::<T>()
            ))
        })
    }
}
