//! The Processor API: the one way records move through a topology.
//!
//! A [`Processor`] receives records one at a time and emits records to its
//! children through its [`ProcessorContext`]. Every DSL operator is a
//! processor; user code can add its own with
//! [`KStream::process`](crate::topology::KStream::process).
//!
//! A topology is instantiated once per task. Each node of the instance is
//! an `Rc<RefCell<..>>` shared by its parents (so a node can have several,
//! as after `merge`), and a record moves by plain dynamic calls from node to
//! node: no queues, no locks, no allocation per hop. Records are cloned only
//! when a node has more than one child.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use crate::processor::error::ProcessError;
use crate::processor::store::KeyValueView;
use crate::processor::TaskContext;
use crate::record::{Record, SourceOffset};

/// Which clock a scheduled callback follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeKind {
    /// The task's stream time: the largest record timestamp seen. Fires
    /// only as records arrive.
    StreamTime,
    /// The wall clock. Fires while the task is idle too.
    WallClock,
}

/// Receives records and emits records to its children.
///
/// `process` is required; `init`, `on_timer` and `close` are optional.
/// ```
/// use rivulet::topology::{Processor, ProcessorContext, ProcessError};
/// use rivulet::Record;
///
/// /// Emits each value's length.
/// struct Lengths;
/// impl Processor<String, String, String, usize> for Lengths {
///     fn process(&mut self, r: Record<String, String>, ctx: &mut ProcessorContext<'_, String, usize>) -> Result<(), ProcessError> {
///         let n = r.value.len();
///         ctx.forward(r.with_value(n))
///     }
/// }
/// ```
pub trait Processor<KIn, VIn, KOut, VOut>: 'static {
    /// Called once when the task starts, after its stores are restored:
    /// fetch stores, schedule callbacks.
    fn init(&mut self, ctx: &mut ProcessorContext<'_, KOut, VOut>) -> Result<(), ProcessError> {
        let _ = ctx;
        Ok(())
    }

    /// Handles one record.
    fn process(
        &mut self,
        record: Record<KIn, VIn>,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
    ) -> Result<(), ProcessError>;

    /// A callback scheduled with [`ProcessorContext::schedule`] is due;
    /// `timestamp` is the stream time or wall-clock time (ms) it fired at.
    fn on_timer(
        &mut self,
        kind: TimeKind,
        timestamp: i64,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
    ) -> Result<(), ProcessError> {
        let _ = (kind, timestamp, ctx);
        Ok(())
    }

    /// The task's watermark advanced to `watermark` (ms): no record older
    /// than it is expected any more. Windows close and event-time timers
    /// fire here.
    fn on_watermark(&mut self, watermark: i64, ctx: &mut ProcessorContext<'_, KOut, VOut>) -> Result<(), ProcessError> {
        let _ = (watermark, ctx);
        Ok(())
    }

    /// Called at the start of every commit, before the task's state is
    /// written: emit what the processor holds back until a commit (at most
    /// one update per key per commit interval).
    fn on_commit(&mut self, ctx: &mut ProcessorContext<'_, KOut, VOut>) -> Result<(), ProcessError> {
        let _ = ctx;
        Ok(())
    }

    /// Called when the task closes (revoked partitions, shutdown).
    fn close(&mut self) {}
}

/// A node's view of its task while it handles a record or a callback.
pub struct ProcessorContext<'a, K, V> {
    pub(crate) task: &'a mut TaskContext,
    pub(crate) children: &'a Children<K, V>,
    pub(crate) node: &'a NodeInfo,
}

impl<K: Clone + 'static, V: Clone + 'static> ProcessorContext<'_, K, V> {
    /// Sends a record to every child of this node.
    pub fn forward(&mut self, record: Record<K, V>) -> Result<(), ProcessError> {
        self.children.forward(record, self.task)
    }

    /// A typed view of a key-value store this processor declared.
    pub fn store<SK: 'static, SV: 'static>(&mut self, name: &str) -> Result<KeyValueView<'_, SK, SV>, ProcessError> {
        if !self.node.stores.iter().any(|s| s == name) {
            return Err(ProcessError::Topology {
                node: self.node.name.clone(),
                reason: format!(
                    "it uses store `{name}` but did not declare it; list it in the stores of KStream::process"
                ),
            });
        }
        KeyValueView::new(self.task, name, &self.node.name)
    }

    /// Calls [`Processor::on_timer`] every `interval` of `kind` time.
    pub fn schedule(&mut self, interval: Duration, kind: TimeKind) {
        self.task.schedule(self.node.id, interval, kind);
    }

    /// The Kafka coordinates of the record being processed (none inside a
    /// wall-clock callback).
    pub fn source(&self) -> Option<&SourceOffset> {
        self.task.source.as_ref()
    }

    /// The task's stream time: the largest timestamp seen, ms.
    pub fn stream_time(&self) -> i64 {
        self.task.stream_time
    }

    /// The task's watermark (ms; `i64::MIN` before the first record): the
    /// partition times minus the source's out-of-orderness, minimum over
    /// the task's partitions, never decreasing.
    pub fn watermark(&self) -> i64 {
        self.task.time.watermark()
    }

    /// The wall clock, in ms since the epoch: processing time (Kafka
    /// Streams' `currentSystemTimeMs`). Under the
    /// [`TopologyTestDriver`](crate::testing::TopologyTestDriver) it is the
    /// driver's clock, which the test advances.
    pub fn current_system_time_ms(&self) -> i64 {
        self.task.clock.now_ms()
    }

    /// The task this node runs in, as `<sub-topology>_<partition>`.
    pub fn task_id(&self) -> String {
        self.task.task_id.to_string()
    }
}

/// A node's name, id and declared stores.
#[derive(Debug, Clone)]
pub(crate) struct NodeInfo {
    pub(crate) id: usize,
    pub(crate) name: String,
    pub(crate) stores: Vec<String>,
}

/// A node as its parents see it.
pub(crate) trait Node<K, V> {
    fn process(&mut self, record: Record<K, V>, task: &mut TaskContext) -> Result<(), ProcessError>;
}

/// A node as the task sees it, for its lifecycle.
pub(crate) trait Lifecycle {
    fn init(&mut self, task: &mut TaskContext) -> Result<(), ProcessError>;
    fn on_timer(&mut self, kind: TimeKind, timestamp: i64, task: &mut TaskContext) -> Result<(), ProcessError>;
    fn on_watermark(&mut self, watermark: i64, task: &mut TaskContext) -> Result<(), ProcessError>;
    fn on_commit(&mut self, task: &mut TaskContext) -> Result<(), ProcessError>;
    fn close(&mut self);
}

pub(crate) type Entry<K, V> = Rc<RefCell<dyn Node<K, V>>>;

/// The children of a node, all taking the node's output type.
pub(crate) struct Children<K, V> {
    pub(crate) entries: Vec<Entry<K, V>>,
}

impl<K: Clone, V: Clone> Children<K, V> {
    pub(crate) fn forward(&self, record: Record<K, V>, task: &mut TaskContext) -> Result<(), ProcessError> {
        let Some((last, rest)) = self.entries.split_last() else {
            return Ok(());
        };
        for child in rest {
            child.borrow_mut().process(record.clone(), task)?;
        }
        last.borrow_mut().process(record, task)
    }
}

/// A user processor wired to its children.
pub(crate) struct ProcessorNode<P, KOut, VOut> {
    pub(crate) processor: P,
    pub(crate) children: Children<KOut, VOut>,
    pub(crate) info: NodeInfo,
}

impl<P, KIn, VIn, KOut, VOut> Node<KIn, VIn> for ProcessorNode<P, KOut, VOut>
where
    P: Processor<KIn, VIn, KOut, VOut>,
    KOut: Clone + 'static,
    VOut: Clone + 'static,
{
    fn process(&mut self, record: Record<KIn, VIn>, task: &mut TaskContext) -> Result<(), ProcessError> {
        let mut ctx = ProcessorContext { task, children: &self.children, node: &self.info };
        self.processor.process(record, &mut ctx)
    }
}

/// `Lifecycle` needs the processor's input types to call it, which the
/// node alone does not name; this wrapper carries them.
pub(crate) struct Typed<P, KIn, VIn, KOut, VOut> {
    pub(crate) node: Rc<RefCell<ProcessorNode<P, KOut, VOut>>>,
    pub(crate) _types: std::marker::PhantomData<fn(KIn, VIn)>,
}

impl<P, KIn, VIn, KOut, VOut> Lifecycle for Typed<P, KIn, VIn, KOut, VOut>
where
    P: Processor<KIn, VIn, KOut, VOut>,
    KOut: Clone + 'static,
    VOut: Clone + 'static,
{
    fn init(&mut self, task: &mut TaskContext) -> Result<(), ProcessError> {
        let mut node = self.node.borrow_mut();
        let node = &mut *node;
        let mut ctx = ProcessorContext { task, children: &node.children, node: &node.info };
        node.processor.init(&mut ctx)
    }

    fn on_timer(&mut self, kind: TimeKind, timestamp: i64, task: &mut TaskContext) -> Result<(), ProcessError> {
        let mut node = self.node.borrow_mut();
        let node = &mut *node;
        let mut ctx = ProcessorContext { task, children: &node.children, node: &node.info };
        node.processor.on_timer(kind, timestamp, &mut ctx)
    }

    fn on_watermark(&mut self, watermark: i64, task: &mut TaskContext) -> Result<(), ProcessError> {
        let mut node = self.node.borrow_mut();
        let node = &mut *node;
        let mut ctx = ProcessorContext { task, children: &node.children, node: &node.info };
        node.processor.on_watermark(watermark, &mut ctx)
    }

    fn on_commit(&mut self, task: &mut TaskContext) -> Result<(), ProcessError> {
        let mut node = self.node.borrow_mut();
        let node = &mut *node;
        let mut ctx = ProcessorContext { task, children: &node.children, node: &node.info };
        node.processor.on_commit(&mut ctx)
    }

    fn close(&mut self) {
        self.node.borrow_mut().processor.close();
    }
}
