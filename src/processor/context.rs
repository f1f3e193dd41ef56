//! What the nodes of one task share while they process: its id, stores,
//! write buffer, time and the collector its records go to
//! ([`TaskContext`]), and the wall clock.

use std::any::Any;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::processor::collector::Collector;
use crate::processor::UserError;
use crate::processor::{ProcessError, TimeKind};
use crate::record::{Headers, SourceOffset};
use crate::state::{GlobalStores, KeyValueStore, WriteBuffer};

/// A task: one sub-topology for one partition number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TaskId {
    /// The sub-topology.
    pub(crate) subtopology: usize,
    /// The partition number of its source topics.
    pub(crate) partition: i32,
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.subtopology, self.partition)
    }
}

/// One local store of a task, with what the typed layer and the changelog need.
pub(crate) struct StoreSlot {
    pub(crate) name: String,
    pub(crate) store: Box<dyn KeyValueStore>,
    pub(crate) serdes: Arc<dyn Any + Send + Sync>,
    pub(crate) type_names: (String, String),
    pub(crate) changelog: String,
}

/// A callback a processor scheduled.
pub(crate) struct Schedule {
    pub(crate) node: usize,
    pub(crate) kind: TimeKind,
    pub(crate) interval_ms: i64,
    pub(crate) next_ms: i64,
}

/// What the nodes of one task share: its stores and write buffer, its
/// stream time, the collector for outputs, the coordinates of the record
/// being processed.
pub(crate) struct TaskContext {
    pub(crate) task_id: TaskId,
    pub(crate) source: Option<SourceOffset>,
    pub(crate) stream_time: i64,
    /// Partition times and the watermark.
    pub(crate) time: crate::processor::time::TaskTime,
    pub(crate) stores: Vec<StoreSlot>,
    pub(crate) buffer: WriteBuffer,
    pub(crate) collector: Box<dyn Collector>,
    pub(crate) schedules: Vec<Schedule>,
    /// Records that arrived for a window or timer already closed, since the
    /// last [`Task::take_late_records`](task::Task::take_late_records).
    pub(crate) late_records: u64,
    /// Reused serialization buffers of sinks.
    pub(crate) key_buf: Vec<u8>,
    pub(crate) value_buf: Vec<u8>,
    /// The watermark mark the task's records to repartition topics carry.
    pub(crate) shuffle: ShuffleMark,
    /// The wall clock of processing time, idleness and wall-clock callbacks.
    pub(crate) clock: Clock,
    /// The instance's global tables, read by stream-global joins.
    pub(crate) globals: GlobalStores,
    /// Asynchronous calls that failed after their retries, for the task to
    /// hand to the processing-error policy (`topology::async_io`).
    pub(crate) failed_calls: Vec<FailedCall>,
}

/// An asynchronous call ([`KStream::map_async`](crate::topology::KStream::map_async))
/// that failed after its retries: the error, and the input record as the
/// dead-letter topic takes it (key and value in the stream's serdes, when
/// it knows them).
pub(crate) struct FailedCall {
    pub(crate) node: String,
    pub(crate) error: UserError,
    pub(crate) source: Option<SourceOffset>,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) headers: Headers,
}

/// The wall clock a task reads: the system's, or one a test sets
/// ([`TopologyTestDriver::advance_wall_clock`](crate::testing::TopologyTestDriver::advance_wall_clock)).
#[derive(Debug, Clone, Default)]
pub(crate) enum Clock {
    #[default]
    System,
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// Now, in ms since the epoch.
    pub(crate) fn now_ms(&self) -> i64 {
        match self {
            Clock::System => wall_clock_ms(),
            Clock::Manual(now) => now.load(Ordering::Relaxed),
        }
    }
}

/// The `rivulet.upstream` header value of the records a task writes to
/// repartition topics (`<partition>/<tasks>/<watermark>`), encoded again
/// only when the watermark moved.
#[derive(Debug, Default)]
pub(crate) struct ShuffleMark {
    /// How many tasks the writing sub-topology has.
    pub(crate) tasks: usize,
    encoded: Option<i64>,
    buf: Vec<u8>,
    /// While set, records carry no later mark than this
    /// (`topology::two_phase`: partials of windows the watermark closed).
    cap: Option<i64>,
}

/// Store `store` of a task; an index that is not one is a bug in the
/// operator that resolved it, reported rather than read as empty.
fn store_slot(stores: &[StoreSlot], task: TaskId, store: usize) -> Result<&StoreSlot, ProcessError> {
    stores.get(store).ok_or_else(|| ProcessError::Topology {
        node: format!("task {task}"),
        reason: format!("an operator used store index {store}, but the task has {} stores", stores.len()),
    })
}

impl TaskContext {
    /// The index of the task's store called `name`, for the bytes-level
    /// access below.
    pub(crate) fn store_index(&self, name: &str) -> Option<usize> {
        self.stores.iter().position(|s| s.name == name)
    }

    /// Bytes-level read of store `store` (an index from
    /// [`store_index`](Self::store_index)), seeing the task's uncommitted
    /// writes: for built-in operators whose keys and values are already
    /// bytes, without the typed view's lookups and copies per call.
    pub(crate) fn raw_get(&self, store: usize, key: &[u8]) -> Result<Option<Vec<u8>>, ProcessError> {
        let slot = store_slot(&self.stores, self.task_id, store)?;
        match self.buffer.get(&slot.name, key) {
            Some(value) => Ok(value.map(<[u8]>::to_vec)),
            None => Ok(slot.store.get(key)?),
        }
    }

    /// Bytes-level write into the write buffer (see [`raw_get`](Self::raw_get)).
    pub(crate) fn raw_put(&mut self, store: usize, key: Vec<u8>, value: Vec<u8>) -> Result<(), ProcessError> {
        let name = &store_slot(&self.stores, self.task_id, store)?.name;
        self.buffer.put(name, key, value);
        Ok(())
    }

    /// Bytes-level delete (see [`raw_get`](Self::raw_get)).
    pub(crate) fn raw_delete(&mut self, store: usize, key: Vec<u8>) -> Result<(), ProcessError> {
        let name = &store_slot(&self.stores, self.task_id, store)?.name;
        self.buffer.delete(name, key);
        Ok(())
    }

    /// The mark for a record this task writes to a repartition topic now;
    /// give the buffer back with [`return_mark`](Self::return_mark).
    pub(crate) fn take_mark(&mut self) -> Vec<u8> {
        let wm = self.time.reported().min(self.shuffle.cap.unwrap_or(i64::MAX));
        let mut buf = std::mem::take(&mut self.shuffle.buf);
        if self.shuffle.encoded != Some(wm) || buf.is_empty() {
            let mark = crate::processor::time::Mark::At(wm);
            crate::processor::time::encode_mark(self.task_id.partition, self.shuffle.tasks, mark, &mut buf);
            self.shuffle.encoded = Some(wm);
        }
        buf
    }

    /// Until called with `None`, the records this task writes to
    /// repartition topics carry marks no later than `cap`.
    pub(crate) fn hold_marks_below(&mut self, cap: Option<i64>) {
        self.shuffle.cap = cap;
    }

    pub(crate) fn return_mark(&mut self, buf: Vec<u8>) {
        self.shuffle.buf = buf;
    }

    pub(crate) fn schedule(&mut self, node: usize, interval: Duration, kind: TimeKind) {
        let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX).max(1);
        let now = match kind {
            TimeKind::StreamTime => self.stream_time,
            TimeKind::WallClock => self.clock.now_ms(),
        };
        self.schedules.push(Schedule { node, kind, interval_ms, next_ms: now.saturating_add(interval_ms) });
    }
}

pub(crate) fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
