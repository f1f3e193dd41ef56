//! The DSL's operators, each a small [`Processor`].

use std::sync::Arc;

use crate::processor::api::{Processor, ProcessorContext};
use crate::processor::{ProcessError, UserError};
use crate::record::Record;
use crate::topology::change::Change;

pub(crate) type Fallible<T> = Result<T, UserError>;

/// The fold of an aggregation: key, value, current aggregate (`None`
/// before the first record of the key) -> new aggregate.
pub(crate) type FoldFn<K, V, A> = Arc<dyn Fn(&K, V, Option<A>) -> Fallible<A> + Send + Sync>;

fn rejected(ctx_node: &str, source: UserError) -> ProcessError {
    ProcessError::Rejected { node: ctx_node.to_string(), source }
}

/// `map`, `map_values`, `select_key`, `filter`, `flat_map`, ... all reduce to
/// "a function from one record to zero or more records".
pub(crate) struct FlatMapProcessor<K, V, K2, V2> {
    pub(crate) name: String,
    #[allow(clippy::type_complexity)]
    pub(crate) f: Arc<dyn Fn(Record<K, V>) -> Fallible<Emit<K2, V2>> + Send + Sync>,
}

/// What a function gives back for one record.
pub(crate) enum Emit<K, V> {
    None,
    One(Record<K, V>),
    Many(Vec<Record<K, V>>),
}

impl<K, V, K2, V2> Processor<K, V, K2, V2> for FlatMapProcessor<K, V, K2, V2>
where
    K: 'static,
    V: 'static,
    K2: Clone + 'static,
    V2: Clone + 'static,
{
    fn process(&mut self, record: Record<K, V>, ctx: &mut ProcessorContext<'_, K2, V2>) -> Result<(), ProcessError> {
        match (self.f)(record).map_err(|e| rejected(&self.name, e))? {
            Emit::None => Ok(()),
            Emit::One(r) => ctx.forward(r),
            Emit::Many(rs) => rs.into_iter().try_for_each(|r| ctx.forward(r)),
        }
    }
}

/// `split`: the first branch whose predicate holds gets the record.
pub(crate) struct SplitProcessor<K, V> {
    pub(crate) name: String,
    #[allow(clippy::type_complexity)]
    pub(crate) predicates: Vec<Arc<dyn Fn(&K, &V) -> bool + Send + Sync>>,
}

impl<K: Clone + 'static, V: Clone + 'static> Processor<K, V, K, V> for SplitProcessor<K, V> {
    fn process(&mut self, record: Record<K, V>, ctx: &mut ProcessorContext<'_, K, V>) -> Result<(), ProcessError> {
        let Some(i) = self.predicates.iter().position(|p| p(&record.key, &record.value)) else {
            return Ok(());
        };
        match ctx.children.entries.get(i) {
            Some(child) => child.borrow_mut().process(record, ctx.task),
            None => Err(ProcessError::Topology { node: self.name.clone(), reason: format!("branch {i} has no node") }),
        }
    }
}

/// `aggregate`, `reduce`, `count`: fold each record into the value stored
/// for its key (`None` before the first) and emit the new value as a table
/// update, with the value it replaces.
pub(crate) struct AggregateProcessor<K, V, A> {
    pub(crate) name: String,
    pub(crate) store: String,
    pub(crate) fold: FoldFn<K, V, A>,
}

impl<K, V, A> Processor<K, V, K, Change<A>> for AggregateProcessor<K, V, A>
where
    K: Clone + 'static,
    V: 'static,
    A: Clone + 'static,
{
    fn process(
        &mut self,
        record: Record<K, V>,
        ctx: &mut ProcessorContext<'_, K, Change<A>>,
    ) -> Result<(), ProcessError> {
        let mut store = ctx.store::<K, A>(&self.store)?;
        let current = store.get(&record.key)?;
        let Record { key, value, timestamp, headers } = record;
        let updated = (self.fold)(&key, value, current.clone()).map_err(|e| rejected(&self.name, e))?;
        store.put(&key, &updated)?;
        ctx.forward(Record { key, value: Change::new(Some(updated), current), timestamp, headers })
    }
}

/// `table` and `materialize`: keep the latest value per key in a store
/// (`None` deletes) and forward the update with the value it replaces.
/// As Kafka Streams' `KTableSource`, a delete of an absent key is
/// forwarded too (as a change with neither value).
pub(crate) struct TableProcessor {
    pub(crate) store: String,
}

impl<K: Clone + 'static, V: Clone + 'static> Processor<K, Option<V>, K, Change<V>> for TableProcessor {
    fn process(
        &mut self,
        record: Record<K, Option<V>>,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
    ) -> Result<(), ProcessError> {
        let mut store = ctx.store::<K, V>(&self.store)?;
        let old = store.get(&record.key)?;
        match &record.value {
            Some(v) => store.put(&record.key, v)?,
            None => store.delete(&record.key)?,
        }
        let Record { key, value, timestamp, headers } = record;
        ctx.forward(Record { key, value: Change::new(value, old), timestamp, headers })
    }
}

/// `materialize` of a table whose updates already carry their old values:
/// only writes the store.
pub(crate) struct MaterializeProcessor {
    pub(crate) store: String,
}

impl<K: Clone + 'static, V: Clone + 'static> Processor<K, Change<V>, K, Change<V>> for MaterializeProcessor {
    fn process(
        &mut self,
        record: Record<K, Change<V>>,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
    ) -> Result<(), ProcessError> {
        let mut store = ctx.store::<K, V>(&self.store)?;
        match &record.value.new {
            Some(v) => store.put(&record.key, v)?,
            None => store.delete(&record.key)?,
        }
        ctx.forward(record)
    }
}
