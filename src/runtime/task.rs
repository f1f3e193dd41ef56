//! A task: one sub-topology instantiated for one partition, with its stores.
//!
//! Lifecycle (driven by the task manager):
//!
//! ```text
//! created --restore_plan(), apply_restored()...--> restored --init()--> running --close()--> closed
//!                                               |  ^
//!                     prepare_commit() -------- |  | ------ complete_commit() / abort()
//! ```
//!
//! The stores keep their files when the task closes, so when the task comes
//! back to this instance it replays only the changelog tail.

use std::sync::Arc;

use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Timestamp};

use crate::error::{Error, Result};
use crate::processor::collector::{Collector, Outgoing};
use crate::processor::graph::{Instance, Instantiator};
use crate::processor::time::{encode_mark, Mark};
use crate::processor::{StoreSlot, TaskContext, TaskId};
use crate::record::{Headers, SourceOffset};
use crate::runtime::AppContext;
use crate::state::{
    self, CachedStore, InMemoryStore, KeyRange, KeyValueStore, QueryableStores, Registration, RocksDbStore,
    StateResources, WriteBuffer,
};
use crate::topology::{changelog_topic, ProcessError, StoreKind, TimeKind};

// Reading a polled record's headers and markers.
#[path = "task/message.rs"]
mod message;
pub(crate) use message::{headers_of, is_watermark_marker};
use message::{repartition_targets, split_headers};
// Restoring and standby: a task's changelog partitions and applying them.
#[path = "task/changelog.rs"]
mod changelog;
pub(crate) use changelog::RestorePartition;
// Failed asynchronous calls to the processing-error policy.
#[path = "task/async_calls.rs"]
mod async_calls;

/// How often a task repeats an unchanged watermark to its repartition
/// topics, so a downstream task that restarted, or went back after an
/// abort, hears of it again without waiting for new data.
const MARK_REPEAT_MS: i64 = 10_000;

/// A source record taken apart, without its key and value.
pub(crate) struct Input<'a> {
    pub(crate) topic: &'a Arc<str>,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) timestamp: i64,
    pub(crate) headers: Headers,
    /// The `rivulet.upstream` watermark mark (repartition topics).
    pub(crate) mark: Option<&'a [u8]>,
}

pub(crate) struct Task {
    pub(crate) id: TaskId,
    app: Arc<AppContext>,
    /// The stores as interactive queries read them: registered while the
    /// task runs (from `init`), removed when it closes or is dropped.
    registration: Option<Registration>,
    queryable: Arc<QueryableStores>,
    ctx: TaskContext,
    instance: Instance,
    /// Source topic -> the offset to commit (last processed + 1). A task
    /// has one or a few source topics: a list beats hashing per record.
    consumed: Vec<(Arc<str>, i64)>,
    /// Repartition topics this task writes and their partition counts:
    /// each gets the task's watermark as a marker in every partition.
    repartition_targets: Vec<(String, i32)>,
    /// The watermark last sent as markers, and when (wall clock).
    marked: i64,
    marked_at: i64,
    /// When the task last told its repartition topics that it is idle
    /// (`None`: it is not idle).
    idle_told: Option<i64>,
    /// Aborted: the nodes must be initialised again before going on.
    stale: bool,
    /// A bounded run read all its input ([`end_input`](Self::end_input)).
    ended: bool,
    /// Batches drained from the write buffer in step 1 of a commit, applied
    /// in step 4: (store index, ranges dropped locally, entries).
    #[allow(clippy::type_complexity)]
    pending: Vec<(usize, Vec<KeyRange>, Vec<(Vec<u8>, Option<Vec<u8>>)>)>,
}

impl Task {
    /// Opens the task's stores (wiping any that are corrupt) and
    /// instantiates its sub-topology.
    pub(crate) fn new(id: TaskId, app: &Arc<AppContext>, collector: Box<dyn Collector>) -> Result<Task> {
        let (topology, config, resources) = (&*app.topology, &app.config, &app.resources);
        let sub = &topology.subtopologies[id.subtopology];
        let mut stores = Vec::new();
        for name in &sub.stores {
            let Some(spec) = topology.stores.iter().find(|s| &s.name == name) else {
                return Err(Error::Internal(format!("store {name} of task {id} is not declared")));
            };
            let store: Box<dyn KeyValueStore> = match spec.kind {
                StoreKind::InMemory => Box::new(InMemoryStore::new(name.clone())),
                StoreKind::RocksDb => {
                    let dir = state::store_dir(&config.instance_state_dir(), &id.to_string(), name);
                    let store = open_or_wipe(&dir, name, resources)?;
                    match resources.cache_bytes() {
                        0 => Box::new(store),
                        bytes => Box::new(CachedStore::new(store, bytes)),
                    }
                }
            };
            stores.push(StoreSlot {
                name: name.clone(),
                store,
                serdes: spec.serdes.clone(),
                type_names: spec.type_names.clone(),
                changelog: changelog_topic(name).resolve(&config.application_id),
            });
        }
        let source_ids: Vec<usize> = sub.sources.iter().map(|(n, _)| *n).collect();
        let instance = Instantiator::instantiate(&topology.nodes, &config.application_id, &source_ids)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let mut ctx = TaskContext {
            task_id: id,
            source: None,
            stream_time: i64::MIN,
            time: Default::default(),
            stores,
            buffer: WriteBuffer::new(),
            collector,
            schedules: Vec::new(),
            late_records: 0,
            key_buf: Vec::new(),
            value_buf: Vec::new(),
            shuffle: Default::default(),
            clock: app.clock.clone(),
            globals: app.globals.clone(),
            failed_calls: Vec::new(),
        };
        let (repartition_targets, upstream_tasks) =
            repartition_targets(sub, topology, &config.application_id, &app.partitions)?;
        ctx.shuffle.tasks = upstream_tasks;
        Ok(Task {
            id,
            app: app.clone(),
            registration: None,
            queryable: app.queryable.clone(),
            ctx,
            instance,
            consumed: Vec::new(),
            pending: Vec::new(),
            repartition_targets,
            marked: i64::MIN,
            marked_at: i64::MIN,
            idle_told: None,
            stale: false,
            ended: false,
        })
    }

    /// The task's context, for the test driver's store reads.
    pub(crate) fn context_mut(&mut self) -> &mut TaskContext {
        &mut self.ctx
    }

    /// Runs the processors' `init`.
    pub(crate) fn init(&mut self) -> Result<(), ProcessError> {
        let now = self.ctx.clock.now_ms();
        for source in self.instance.sources.values() {
            source.borrow_mut().register_time(&mut self.ctx, now);
        }
        for (_, node) in &self.instance.lifecycles {
            node.borrow_mut().init(&mut self.ctx)?;
        }
        if self.registration.is_none() {
            let readers = self.ctx.stores.iter().filter_map(|s| Some((s.name.clone(), s.store.reader()?))).collect();
            self.registration = Some(Registration::new(&self.queryable, self.id.partition, readers));
        }
        Ok(())
    }

    /// Runs one source record through the task. The offset is counted as
    /// consumed whatever the outcome: a failed record is handled by a
    /// policy before the next commit, or the application stops.
    pub(crate) fn process(&mut self, msg: &BorrowedMessage<'_>, topic: &Arc<str>) -> Result<(), ProcessError> {
        let timestamp = match msg.timestamp() {
            Timestamp::CreateTime(t) | Timestamp::LogAppendTime(t) => t,
            Timestamp::NotAvailable => self.ctx.clock.now_ms(),
        };
        let (headers, mark) = split_headers(msg);
        let input = Input { topic, partition: msg.partition(), offset: msg.offset(), timestamp, headers, mark };
        self.process_input(input, msg.key(), msg.payload())
    }

    /// [`process`](Self::process) for a record already taken apart (the
    /// test driver's records come this way).
    pub(crate) fn process_input(
        &mut self,
        input: Input<'_>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<(), ProcessError> {
        self.refresh()?;
        let Input { topic, partition, offset, timestamp, headers, mark } = input;
        self.consumed_up_to(topic, offset + 1);
        self.ctx.source = Some(SourceOffset { topic: topic.clone(), partition, offset });
        let watermark = self.ctx.time.watermark();
        let Some(source) = self.instance.sources.get(topic.as_ref()) else {
            return Err(ProcessError::Topology {
                node: format!("task {}", self.id),
                reason: format!("no source reads topic {topic}"),
            });
        };
        // The source extracts the record's timestamp and advances stream
        // time and the watermark.
        source.borrow_mut().process_raw(key, value, timestamp, headers, mark, &mut self.ctx)?;
        self.fire_timers(TimeKind::StreamTime, self.ctx.stream_time)?;
        self.watermark_advanced(watermark)?;
        self.settle_failed_calls()
    }

    /// Tells every node when the watermark has moved past `before`.
    fn watermark_advanced(&mut self, before: i64) -> Result<(), ProcessError> {
        let now = self.ctx.time.watermark();
        if now <= before {
            return Ok(());
        }
        self.ctx.source = None;
        for (_, node) in &self.instance.lifecycles {
            node.borrow_mut().on_watermark(now, &mut self.ctx)?;
        }
        Ok(())
    }

    /// Fires the callbacks of `kind` that are due at `now`.
    pub(crate) fn fire_timers(&mut self, kind: TimeKind, now: i64) -> Result<(), ProcessError> {
        if self.ended {
            return Ok(());
        }
        self.refresh()?;
        if kind == TimeKind::WallClock {
            // Idle partitions may stop holding the watermark back.
            let before = self.ctx.time.watermark();
            if self.ctx.time.tick(now) {
                self.watermark_advanced(before)?;
            }
        }
        let before = self.ctx.time.watermark();
        for i in 0..self.ctx.schedules.len() {
            let s = &mut self.ctx.schedules[i];
            if s.kind != kind || s.next_ms > now {
                continue;
            }
            let node = s.node;
            s.next_ms = now.saturating_add(s.interval_ms);
            let hooks: Vec<_> =
                self.instance.lifecycles.iter().filter(|(id, _)| *id == node).map(|(_, l)| l.clone()).collect();
            for hook in hooks {
                self.ctx.source = None;
                hook.borrow_mut().on_timer(kind, now, &mut self.ctx)?;
            }
        }
        if kind == TimeKind::WallClock {
            // Async results forwarded release the watermark they held.
            self.watermark_advanced(before)?;
        }
        self.settle_failed_calls()
    }

    /// Late records counted since the last call (for the metrics).
    pub(crate) fn take_late_records(&mut self) -> u64 {
        std::mem::take(&mut self.ctx.late_records)
    }

    /// Each store's name and estimated size in bytes (for the metrics).
    pub(crate) fn store_sizes(&self) -> impl Iterator<Item = (&str, Result<u64>)> + '_ {
        self.ctx.stores.iter().map(|s| (s.name.as_str(), s.store.approximate_size_bytes().map_err(Error::from)))
    }

    pub(crate) fn source(&self) -> Option<&SourceOffset> {
        self.ctx.source.as_ref()
    }

    /// The offsets to commit for this task.
    /// Sets the offset the next commit records for `topic`: the record
    /// after the last one processed, or where an out-of-range partition
    /// went on (`runtime::offset_reset`).
    pub(crate) fn consumed_up_to(&mut self, topic: &Arc<str>, next: i64) {
        match self.consumed.iter_mut().find(|(t, _)| Arc::ptr_eq(t, topic) || t == topic) {
            Some((_, o)) => *o = next,
            None => self.consumed.push((topic.clone(), next)),
        }
    }

    pub(crate) fn consumed_offsets(&self) -> impl Iterator<Item = (&str, i32, i64)> + '_ {
        self.consumed.iter().map(|(t, o)| (t.as_ref(), self.id.partition, *o))
    }

    /// Commit step 1 for this task: the latest value per key in the write
    /// buffer goes to the store's changelog (this task's partition).
    pub(crate) fn prepare_commit(&mut self) -> Result<(), ProcessError> {
        self.refresh()?;
        self.ctx.source = None;
        self.commit_nodes()?;
        self.settle_failed_calls()?;
        self.send_watermark_markers(self.ctx.clock.now_ms())?;
        for (i, slot) in self.ctx.stores.iter().enumerate() {
            let batch = self.ctx.buffer.drain(&slot.name);
            // Local drops have no changelog records (the segmented window store).
            let dropped = self.ctx.buffer.take_dropped(&slot.name);
            if batch.is_empty() && dropped.is_empty() {
                continue;
            }
            for (k, v) in &batch {
                self.ctx.collector.send(Outgoing {
                    topic: &slot.changelog,
                    partition: Some(self.id.partition),
                    key: Some(k),
                    value: v.as_deref(),
                    timestamp: self.ctx.clock.now_ms(),
                    headers: &Headers::new(),
                    mark: None,
                    source: None,
                })?;
            }
            self.pending.push((i, dropped, batch));
        }
        Ok(())
    }

    /// Tells every partition of every repartition topic the task writes
    /// how far its time has come, behind the records it wrote there: its
    /// watermark when it moved, or that it is idle. Runs after every round
    /// of polled records and at the commit. The records themselves carry
    /// the watermark too (`rivulet.upstream`); markers reach the partitions
    /// the task had no record for. The downstream tasks take the minimum
    /// over their upstream tasks that are not idle
    /// (`TaskTime::observe_mark`).
    pub(crate) fn send_watermark_markers(&mut self, now: i64) -> Result<(), ProcessError> {
        if self.repartition_targets.is_empty() || self.ended {
            return Ok(());
        }
        self.refresh()?;
        let time = &self.ctx.time;
        let mark = if time.is_idle(now) {
            if self.idle_told.is_some_and(|told| now.saturating_sub(told) < time.idle_repeat_ms()) {
                return Ok(());
            }
            // Said again now and then: a downstream task that restarted
            // or went back after an abort must learn it again.
            self.idle_told = Some(now);
            Mark::Idle
        } else {
            if self.idle_told.take().is_some() {
                // Back from idle: every partition must hear of it, moved
                // or not.
                self.marked = i64::MIN;
            }
            let wm = time.reported();
            // An unchanged watermark is said again now and then too, for
            // the same reason as idleness.
            let repeat = now.saturating_sub(self.marked_at) >= MARK_REPEAT_MS;
            if wm == i64::MIN || (wm <= self.marked && !repeat) {
                return Ok(());
            }
            self.marked = wm;
            self.marked_at = now;
            Mark::At(wm)
        };
        let mut value = std::mem::take(&mut self.ctx.key_buf);
        encode_mark(self.id.partition, self.ctx.shuffle.tasks, mark, &mut value);
        // A marker's timestamp is for the broker only (the mark is in the
        // header): a watermark ahead of the clock, from a record's time
        // years ahead, must not have the broker refuse the marker
        // (`message.timestamp.after.max.ms`, `runtime::refused`).
        let timestamp = match mark {
            Mark::At(wm) => wm.clamp(0, now.max(0)),
            Mark::Idle => now,
        };
        let mut result = Ok(());
        'topics: for (topic, partitions) in &self.repartition_targets {
            for p in 0..*partitions {
                result = self.ctx.collector.send_marker(topic, p, timestamp, &value);
                if result.is_err() {
                    break 'topics;
                }
            }
        }
        self.ctx.key_buf = value;
        result
    }

    /// Commit step 4 for this task: after the offsets are committed, write
    /// each drained batch to its store in one batch, with the changelog
    /// offset it corresponds to.
    pub(crate) fn complete_commit(&mut self) -> Result<(), Error> {
        for (i, dropped, batch) in self.pending.drain(..) {
            let slot = &mut self.ctx.stores[i];
            let offset = self.ctx.collector.take_changelog_offset(&slot.changelog, self.id.partition).map(|o| o + 1);
            slot.store.apply_dropping(&dropped, &batch, offset)?;
        }
        self.ctx.buffer.clear();
        self.consumed.clear();
        Ok(())
    }

    /// Flushes the local stores (see `KeyValueStore::flush`).
    pub(crate) fn flush_stores(&self) -> Result<()> {
        for slot in &self.ctx.stores {
            slot.store.flush()?;
        }
        Ok(())
    }

    /// Drops uncommitted state (the local stores keep their last committed
    /// snapshot).
    pub(crate) fn abort(&mut self) {
        self.ended = false;
        self.pending.clear();
        self.ctx.buffer.clear();
        self.ctx.failed_calls.clear();
        self.consumed.clear();
        // The nodes' in-memory state (open windows, timers) and the task's
        // time ran ahead with the dropped work: rebuild them from the
        // stores before the next record.
        self.stale = true;
    }

    /// After an abort: the task's time and its nodes' in-memory state go
    /// back to what the stores hold (`init` reads them again).
    fn refresh(&mut self) -> Result<(), ProcessError> {
        if !std::mem::take(&mut self.stale) {
            return Ok(());
        }
        self.ctx.time.reset(self.ctx.clock.now_ms());
        self.ctx.stream_time = i64::MIN;
        self.marked = i64::MIN;
        self.marked_at = i64::MIN;
        self.idle_told = None;
        self.init()
    }

    /// A bounded run's end of input for this task, which has read each of
    /// its source topics up to `ends` (`runtime::task_manager::bounded`):
    /// its last watermark goes to its repartition topics, then (with
    /// `close_windows`) its time becomes infinite, and the offsets to commit
    /// become the ends, past any transaction markers. From then on it fires
    /// no timer and sends no marker; an abort undoes it all.
    pub(crate) fn end_input(&mut self, close_windows: bool, ends: &[(&str, i64)]) -> Result<(), ProcessError> {
        self.refresh()?;
        self.drain_async_calls()?;
        self.send_watermark_markers(self.ctx.clock.now_ms())?;
        let before = self.ctx.time.watermark();
        if close_windows && self.ctx.time.end_of_input() {
            self.watermark_advanced(before)?;
        }
        for &(topic, end) in ends {
            match self.consumed.iter_mut().find(|(t, _)| t.as_ref() == topic) {
                Some((_, o)) => *o = (*o).max(end),
                None => self.consumed.push((Arc::from(topic), end)),
            }
        }
        self.ended = true;
        Ok(())
    }

    /// Whether [`end_input`](Self::end_input) ran since the last abort.
    pub(crate) fn ended(&self) -> bool {
        self.ended
    }

    /// The task's source partitions that it consumed from since the last commit.
    pub(crate) fn consumed_partitions(&self) -> impl Iterator<Item = (&str, i32)> + '_ {
        self.consumed.iter().map(|(t, _)| (t.as_ref(), self.id.partition))
    }

    /// Closes processors; the stores are flushed and closed when dropped.
    pub(crate) fn close(mut self) {
        // No query reads the stores past this point.
        self.registration = None;
        for (_, node) in &self.instance.lifecycles {
            node.borrow_mut().close();
        }
        self.ctx.stores.clear();
    }
}

fn open_or_wipe(dir: &std::path::Path, name: &str, resources: &StateResources) -> Result<RocksDbStore> {
    match RocksDbStore::open(dir, name, resources) {
        Ok(s) => Ok(s),
        Err(e) if e.is_corrupt() => {
            tracing::warn!(store = name, path = %dir.display(), error = %e, "local store is corrupt; wiping it and restoring it in full from its changelog");
            state::wipe(dir)?;
            Ok(RocksDbStore::open(dir, name, resources)?)
        }
        Err(e) => Err(e.into()),
    }
}
