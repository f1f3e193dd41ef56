//! Two-phase aggregation (Flink SQL's local-global aggregation,
//! `table.optimizer.agg-phase-strategy: TWO_PHASE` with MiniBatch): a
//! `PRE_AGGREGATE` node before the repartition topic folds each task's
//! records per key (and per window) into a partial aggregate, held until
//! the commit; the aggregation after the repartition merges the partials.
//! A hot key then costs one repartition record per task and commit instead
//! of one per input record.
//!
//! ```text
//! record(k, v, t) --> held: {k: add(None, v)}          (nothing written)
//! record(k, w, t') -> held: {k: add(Some(p), w)}
//! commit step 1 (on_commit) --> forward (k, p', t') to the repartition sink
//! held keys reach PRE_AGGREGATE_MAX_KEYS --> forward them all at once
//! abort --> the task runs init again: the held partials are dropped with
//!           the transaction, and the records are processed again
//! ```
//!
//! The partials leave in commit step 1, before the repartition records
//! are delivered and the offsets committed, so they are part of the same
//! transaction as the input offsets that made them (as a cached table's
//! updates, `topology/cache.rs`).
//!
//! Windowed (tumbling windows only): a partial is per key and window, and
//! where lateness is decided does not move. As in Flink
//! (`LocalSlicingWindowAggOperator` hands every record, late or not, to
//! its buffer and leaves dropping late data to the global window
//! aggregate operator, whose watermark decides), the window node after
//! the repartition judges lateness against its own watermark, which its
//! upstream tasks' marks make. The pre-aggregate node keeps that judgement
//! unchanged:
//! - a record on time in its own task's view (its window closes after the
//!   task's watermark) is never late downstream in the one-phase topology,
//!   whose watermark is the minimum of its upstream tasks' marks, at most
//!   this task's. Its partial is flushed when the task's watermark reaches
//!   the window's close, and it carries the mark this task had told before
//!   (`TaskContext::hold_marks_below`), not the one that closes the window,
//!   so the window node downstream takes every such partial before a mark
//!   from this task closes the window;
//! - a record already late in its task's view is forwarded at once, alone,
//!   with the mark it would carry in the one-phase topology, and judged
//!   downstream as it would be there.
//!
//! Flink's local operators flush the same way: `AbstractMapBundleOperator`
//! (the MiniBatch local aggregate) runs `finishBundle()` in
//! `processWatermark` before forwarding the watermark and in
//! `prepareSnapshotPreBarrier` before a checkpoint (here: `on_commit`);
//! `LocalSlicingWindowAggOperator` adds every element to its buffer in
//! `processElement` (no lateness check) and calls
//! `windowBuffer.advanceProgress(watermark)` before forwarding a watermark.
//! Here the markers a task sends follow its records in each partition, so
//! flushing the closing partials in `on_watermark` (which runs before the
//! task's next markers) and capping their marks does the same.

use std::collections::HashMap;
use std::sync::Arc;

use crate::processor::api::{Processor, ProcessorContext};
use crate::processor::{ProcessError, UserError};
use crate::record::{Headers, Record};
use crate::serde::Serde;
use crate::topology::cache::held_key;

/// Keys (or key-windows) held per pre-aggregate node and task before they
/// are forwarded early, as a cache's (`CACHE_MAX_KEYS`).
pub(crate) const PRE_AGGREGATE_MAX_KEYS: usize = 10_000;

/// Folds a value into a key's partial (`None` before the first).
pub(crate) type PartialFn<K, V, A> = Arc<dyn Fn(&K, V, Option<A>) -> Result<A, UserError> + Send + Sync>;

/// Tumbling windows of `size` whose results close `grace` after their end.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tumbling {
    pub(crate) size: i64,
    pub(crate) grace: i64,
}

impl Tumbling {
    fn start(&self, ts: i64) -> i64 {
        ts.div_euclid(self.size).saturating_mul(self.size)
    }

    /// The watermark at which the window of `ts` closes.
    fn close(&self, ts: i64) -> i64 {
        self.start(ts).saturating_add(self.size).saturating_add(self.grace)
    }
}

struct Held<K, A> {
    key: K,
    partial: A,
    timestamp: i64,
    headers: Headers,
    /// When the window closes (`i64::MAX` without windows).
    close: i64,
}

/// The local phase: holds a partial aggregate per key (and window) until
/// the commit, the watermark closing its window, or the node being full.
pub(crate) struct PreAggregateProcessor<K, V, A> {
    name: String,
    key_serde: Arc<dyn Serde<K>>,
    add: PartialFn<K, V, A>,
    window: Option<Tumbling>,
    max_keys: usize,
    /// Serialized key (and window start) -> position in `held`.
    index: HashMap<Vec<u8>, usize>,
    held: Vec<Held<K, A>>,
    /// The earliest close among the held partials.
    min_close: i64,
    /// The task's watermark as this node last saw it: what its records
    /// told downstream at most.
    told: i64,
    key_buf: Vec<u8>,
}

impl<K: Clone + 'static, V: 'static, A: Clone + 'static> PreAggregateProcessor<K, V, A> {
    pub(crate) fn new(
        name: &str,
        key_serde: Arc<dyn Serde<K>>,
        add: PartialFn<K, V, A>,
        window: Option<Tumbling>,
        max_keys: usize,
    ) -> Self {
        PreAggregateProcessor {
            name: name.to_string(),
            key_serde,
            add,
            window,
            max_keys: max_keys.max(1),
            index: HashMap::new(),
            held: Vec::new(),
            min_close: i64::MAX,
            told: i64::MIN,
            key_buf: Vec::new(),
        }
    }

    /// Writes the key's bytes (and window start) to `key_buf`.
    fn key_bytes(&mut self, key: &K, start: Option<i64>) -> Result<(), ProcessError> {
        held_key(&*self.key_serde, key, &self.name, &mut self.key_buf)?;
        if let Some(start) = start {
            self.key_buf.extend_from_slice(&start.to_be_bytes());
        }
        Ok(())
    }

    fn rejected(&self, e: UserError) -> ProcessError {
        ProcessError::Rejected { node: self.name.clone(), source: e }
    }

    /// Forwards the held partials whose window closes at or before
    /// `closing` (all of them with `i64::MAX`), in order of first record,
    /// with marks no later than `told`. A child's failure keeps the rest.
    fn flush(&mut self, closing: i64, ctx: &mut ProcessorContext<'_, K, A>) -> Result<(), ProcessError> {
        if self.held.is_empty() || self.min_close > closing {
            return Ok(());
        }
        self.index.clear();
        self.min_close = i64::MAX;
        let mut rest = Vec::new();
        let mut failed = None;
        ctx.task.hold_marks_below(Some(self.told));
        for h in std::mem::take(&mut self.held) {
            if failed.is_some() || h.close > closing {
                rest.push(h);
                continue;
            }
            let record = Record { key: h.key, value: h.partial, timestamp: h.timestamp, headers: h.headers };
            if let Err(e) = ctx.forward(record) {
                failed = Some(e);
            }
        }
        ctx.task.hold_marks_below(None);
        for h in rest {
            self.key_bytes(&h.key, self.window.map(|w| w.start(h.timestamp)))?;
            self.index.insert(self.key_buf.clone(), self.held.len());
            self.min_close = self.min_close.min(h.close);
            self.held.push(h);
        }
        failed.map_or(Ok(()), Err)
    }

    /// Flushes the partials that the task's watermark has closed since this
    /// node last looked, then remembers the watermark as told.
    fn catch_up(&mut self, ctx: &mut ProcessorContext<'_, K, A>) -> Result<(), ProcessError> {
        let wm = ctx.watermark();
        if wm > self.told {
            if self.window.is_some() {
                self.flush(wm, ctx)?;
            }
            self.told = wm;
        }
        Ok(())
    }
}

impl<K: Clone + 'static, V: 'static, A: Clone + 'static> Processor<K, V, K, A> for PreAggregateProcessor<K, V, A> {
    /// Runs when the task starts and again after an aborted transaction:
    /// what was held belongs to the aborted work, which is reprocessed.
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, A>) -> Result<(), ProcessError> {
        self.index.clear();
        self.held.clear();
        self.min_close = i64::MAX;
        self.told = ctx.watermark();
        Ok(())
    }

    fn process(&mut self, record: Record<K, V>, ctx: &mut ProcessorContext<'_, K, A>) -> Result<(), ProcessError> {
        self.catch_up(ctx)?;
        let Record { key, value, timestamp, headers } = record;
        let close = match self.window {
            Some(w) => {
                let close = w.close(timestamp);
                if close <= ctx.watermark() {
                    // Late in this task's view: judged downstream alone, as
                    // in the one-phase topology.
                    let partial = (self.add)(&key, value, None).map_err(|e| self.rejected(e))?;
                    return ctx.forward(Record { key, value: partial, timestamp, headers });
                }
                close
            }
            None => i64::MAX,
        };
        self.key_bytes(&key, self.window.map(|w| w.start(timestamp)))?;
        match self.index.get(self.key_buf.as_slice()) {
            Some(&i) => {
                let before = self.held[i].partial.clone();
                let partial = (self.add)(&key, value, Some(before)).map_err(|e| self.rejected(e))?;
                let h = &mut self.held[i];
                h.partial = partial;
                h.timestamp = timestamp;
                h.headers = headers;
            }
            None => {
                let partial = (self.add)(&key, value, None).map_err(|e| self.rejected(e))?;
                self.index.insert(self.key_buf.clone(), self.held.len());
                self.min_close = self.min_close.min(close);
                self.held.push(Held { key, partial, timestamp, headers, close });
            }
        }
        if self.held.len() >= self.max_keys {
            self.flush(i64::MAX, ctx)?;
        }
        Ok(())
    }

    fn on_watermark(&mut self, _watermark: i64, ctx: &mut ProcessorContext<'_, K, A>) -> Result<(), ProcessError> {
        self.catch_up(ctx)
    }

    fn on_commit(&mut self, ctx: &mut ProcessorContext<'_, K, A>) -> Result<(), ProcessError> {
        self.catch_up(ctx)?;
        self.flush(i64::MAX, ctx)
    }
}
