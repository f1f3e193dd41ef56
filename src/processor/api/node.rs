//! How nodes are wired in a task: a node as its parents see it (`Node`),
//! as the task sees it (`Lifecycle`), its children, and a user processor
//! wrapped as both.

use std::cell::RefCell;
use std::rc::Rc;

use super::{Processor, ProcessorContext, TimeKind};
use crate::processor::error::ProcessError;
use crate::processor::TaskContext;
use crate::record::Record;

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
