//! Asynchronous I/O in the stream (Flink's `AsyncDataStream`): the
//! operator behind [`KStream::map_async`](crate::topology::KStream::map_async)
//! and its `try_` and `_with` forms.
//!
//! The task's processing is synchronous; the calls are not. Each record's
//! call is a future spawned on a small multi-thread tokio runtime shared by
//! every task of the process ([`runtime`]); the node keeps the calls in
//! flight in a bounded buffer (at most `concurrency`), keyed by arrival
//! number. Results come back over a channel and are forwarded on the
//! processing thread:
//!
//! - at each new record, without waiting (those already done);
//! - at each turn of the thread's loop (a wall-clock callback every
//!   millisecond), without waiting;
//! - when the buffer is full, waiting for one (backpressure: the thread
//!   takes no more records until a call finishes, as Flink's
//!   `AsyncWaitOperator` waits for a free slot before `processElement`
//!   returns);
//! - at every commit (`on_commit`), waiting for all: their results go into
//!   the transaction that commits their input offsets.
//!
//! Ordered mode forwards in arrival order (a finished call waits for the
//! ones before it, and counts against `concurrency` until forwarded, as in
//! Flink's `orderedWait`); unordered forwards as calls finish
//! (`unorderedWait`). After an abort the task's nodes are initialised
//! again: `init` drops the calls in flight (their results never reach a
//! transaction) and the records are processed again from the committed
//! offsets. A call that fails after its retries goes to the
//! processing-error policy through [`FailedCall`].

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::processor::api::{Processor, ProcessorContext};
use crate::processor::{FailedCall, ProcessError, TimeKind, UserError};
use crate::record::{Headers, Record, SourceOffset};
use crate::serde::{Encoded, Serde};

/// The boxed future of one call.
pub(crate) type CallFuture<V2> = Pin<Box<dyn Future<Output = Result<V2, UserError>> + Send>>;
/// The user's function, boxed.
pub(crate) type CallFn<V, V2> = Arc<dyn Fn(V) -> CallFuture<V2> + Send + Sync>;

/// How [`KStream::map_async_with`](crate::topology::KStream::map_async_with)
/// calls out: how many calls in flight per task, how long one attempt may
/// take, the order of results, and retries.
///
/// ```
/// use std::time::Duration;
/// use rivulet::topology::{AsyncOptions, AsyncRetry};
/// let options = AsyncOptions::unordered(64, Duration::from_millis(500))
///     .retry(AsyncRetry::exponential(3, Duration::from_millis(10), Duration::from_secs(1)));
/// assert_eq!(options.concurrency(), 64);
/// ```
#[derive(Debug, Clone)]
pub struct AsyncOptions {
    concurrency: usize,
    timeout: Duration,
    ordered: bool,
    retry: AsyncRetry,
}

impl AsyncOptions {
    /// Results in the order of their input records (Flink's `orderedWait`).
    /// `concurrency` (at least 1) bounds the calls in flight per task,
    /// `timeout` each attempt.
    pub fn ordered(concurrency: usize, timeout: Duration) -> Self {
        AsyncOptions { concurrency: concurrency.max(1), timeout, ordered: true, retry: AsyncRetry::None }
    }

    /// Results as their calls finish (Flink's `unorderedWait`).
    pub fn unordered(concurrency: usize, timeout: Duration) -> Self {
        AsyncOptions { ordered: false, ..Self::ordered(concurrency, timeout) }
    }

    /// Retries a call that failed or timed out (default: none).
    pub fn retry(self, retry: AsyncRetry) -> Self {
        AsyncOptions { retry, ..self }
    }

    /// The calls in flight per task, at most.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// The longest one call can take, all attempts and delays included.
    fn worst_case(&self) -> Duration {
        let retries = self.retry.retries();
        let delays: Duration = (0..retries).map(|n| self.retry.delay(n)).sum();
        self.timeout.saturating_mul(retries.saturating_add(1)).saturating_add(delays)
    }
}

/// When a failed or timed-out call is tried again (Flink's
/// `AsyncRetryStrategies`: fixed delay, exponential backoff). A call that
/// still fails after its retries goes to the processing-error policy
/// (`errors.processing`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AsyncRetry {
    /// No retry.
    None,
    /// Up to `retries` more attempts, `delay` apart.
    Fixed {
        /// Attempts after the first.
        retries: u32,
        /// The wait before each retry.
        delay: Duration,
    },
    /// Up to `retries` more attempts, the wait doubling from `initial` to
    /// at most `max`.
    Exponential {
        /// Attempts after the first.
        retries: u32,
        /// The wait before the first retry.
        initial: Duration,
        /// The longest wait.
        max: Duration,
    },
}

impl AsyncRetry {
    /// `retries` more attempts, `delay` apart.
    pub fn fixed(retries: u32, delay: Duration) -> Self {
        AsyncRetry::Fixed { retries, delay }
    }

    /// `retries` more attempts, waiting `initial`, then twice as long each
    /// time, up to `max`.
    pub fn exponential(retries: u32, initial: Duration, max: Duration) -> Self {
        AsyncRetry::Exponential { retries, initial, max }
    }

    fn retries(&self) -> u32 {
        match self {
            AsyncRetry::None => 0,
            AsyncRetry::Fixed { retries, .. } | AsyncRetry::Exponential { retries, .. } => *retries,
        }
    }

    /// The wait before retry `n` (0: the first retry).
    fn delay(&self, n: u32) -> Duration {
        match self {
            AsyncRetry::None => Duration::ZERO,
            AsyncRetry::Fixed { delay, .. } => *delay,
            AsyncRetry::Exponential { initial, max, .. } => {
                initial.saturating_mul(2u32.saturating_pow(n.min(30))).min(*max)
            }
        }
    }
}

/// The runtime the calls run on: two worker threads (the calls wait on I/O;
/// CPU-bound work such as model inference goes to its blocking pool with
/// `tokio::task::spawn_blocking`), created at the first async operator's
/// first task, shared by every task and application of the process.
fn runtime() -> Result<&'static tokio::runtime::Runtime, ProcessError> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    let built = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("rivulet-async-io")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    });
    built.as_ref().map_err(|e| ProcessError::Topology {
        node: "async I/O".into(),
        reason: format!("could not start the runtime of asynchronous calls: {e}"),
    })
}

/// One call's attempts, under the timeout and retry policy: its result, or
/// the last error with the input value back (for the dead-letter topic).
async fn attempts<V: Clone, V2>(f: CallFn<V, V2>, value: V, options: AsyncOptions) -> Result<V2, (UserError, V)> {
    let retries = options.retry.retries();
    let mut attempt = 0;
    loop {
        let error: UserError = match tokio::time::timeout(options.timeout, f(value.clone())).await {
            Ok(Ok(out)) => return Ok(out),
            Ok(Err(e)) => e,
            Err(_) => format!("the call timed out after {:?}", options.timeout).into(),
        };
        if attempt >= retries {
            let error: UserError = match retries {
                0 => error,
                n => format!("{error} (after {n} retries)").into(),
            };
            return Err((error, value));
        }
        tokio::time::sleep(options.retry.delay(attempt)).await;
        attempt += 1;
    }
}

/// A call's result, or its last error with its input value (`None` when
/// the call panicked).
type Outcome<V, V2> = Result<V2, (UserError, Option<V>)>;
type Done<V, V2> = (u64, Outcome<V, V2>);

/// Sends a call's outcome to the processing thread exactly once: a call
/// that panics (or is dropped) without an outcome reports that, so the
/// thread never waits for it.
struct Deliver<V, V2> {
    seq: u64,
    to: Option<Sender<Done<V, V2>>>,
}

impl<V, V2> Deliver<V, V2> {
    fn send(mut self, outcome: Outcome<V, V2>) {
        if let Some(to) = self.to.take() {
            // The receiver is gone when the task was reset: nothing to do.
            let _ = to.send((self.seq, outcome));
        }
    }
}

impl<V, V2> Drop for Deliver<V, V2> {
    fn drop(&mut self) {
        if let Some(to) = self.to.take() {
            let _ = to.send((self.seq, Err(("the call panicked".into(), None))));
        }
    }
}

/// A call in flight: what its result needs from its input record.
struct Slot<K, V, V2> {
    key: K,
    timestamp: i64,
    headers: Headers,
    source: Option<SourceOffset>,
    handle: tokio::task::JoinHandle<()>,
    /// Set when the call finished (ordered mode: waiting for the ones before).
    done: Option<Outcome<V, V2>>,
}

/// The async operator of one task.
pub(crate) struct AsyncProcessor<K, V, V2> {
    pub(crate) name: String,
    pub(crate) options: AsyncOptions,
    pub(crate) f: CallFn<V, V2>,
    /// For the dead-letter topic: the input's serdes when the stream knows them.
    pub(crate) key_serde: Option<Arc<dyn Serde<K>>>,
    pub(crate) value_serde: Option<Arc<dyn Serde<V>>>,
    next: u64,
    /// The loop-turn callback is registered (once: `init` runs again after an abort).
    scheduled: bool,
    slots: BTreeMap<u64, Slot<K, V, V2>>,
    /// Finished calls; a new channel after each reset, so that a call of a
    /// dropped generation can never deliver.
    done_tx: Sender<Done<V, V2>>,
    done_rx: Receiver<Done<V, V2>>,
}

impl<K, V, V2> AsyncProcessor<K, V, V2> {
    pub(crate) fn new(name: &str, options: AsyncOptions, f: CallFn<V, V2>) -> Self {
        let (done_tx, done_rx) = channel();
        AsyncProcessor {
            name: name.to_string(),
            options,
            f,
            key_serde: None,
            value_serde: None,
            next: 0,
            scheduled: false,
            slots: BTreeMap::new(),
            done_tx,
            done_rx,
        }
    }

    /// Drops the calls in flight: their results must not be forwarded.
    fn reset(&mut self) {
        for slot in std::mem::take(&mut self.slots).into_values() {
            slot.handle.abort();
        }
        (self.done_tx, self.done_rx) = channel();
    }
}

impl<K, V, V2> AsyncProcessor<K, V, V2>
where
    K: Clone + 'static,
    V: Clone + Send + 'static,
    V2: Clone + Send + 'static,
{
    /// Takes finished calls off the channel, waiting up to `wait` for the
    /// first, and forwards what can go: in ordered mode the finished calls
    /// at the head of the buffer.
    fn collect(&mut self, wait: Option<Duration>, ctx: &mut ProcessorContext<'_, K, V2>) -> Result<(), ProcessError> {
        let mut first = match wait {
            None => None,
            Some(bound) => match self.done_rx.recv_timeout(bound) {
                Ok(done) => Some(done),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(self.stuck(format!("no call finished within {bound:?}, past its timeout")))
                }
                Err(RecvTimeoutError::Disconnected) => return Err(self.stuck("the result channel closed".into())),
            },
        };
        let before = self.slots.len();
        while let Some((seq, outcome)) = first.take().or_else(|| self.done_rx.try_recv().ok()) {
            if let Some(slot) = self.slots.get_mut(&seq) {
                slot.done = Some(outcome);
            }
            if !self.options.ordered {
                if let Some(slot) = self.slots.remove(&seq) {
                    self.emit(slot, ctx)?;
                }
            }
        }
        while let Some(entry) = self.slots.first_entry() {
            if entry.get().done.is_none() {
                break;
            }
            let slot = entry.remove();
            self.emit(slot, ctx)?;
        }
        if self.slots.len() != before {
            self.hold_watermark(ctx);
        }
        Ok(())
    }

    /// Keeps the task's watermark below the oldest input in flight, so an
    /// event-time operator downstream does not close a window before the
    /// results that belong in it arrive.
    fn hold_watermark(&self, ctx: &mut ProcessorContext<'_, K, V2>) {
        let oldest = self.slots.values().map(|s| s.timestamp).min();
        let now = ctx.task.clock.now_ms();
        ctx.task.time.hold(ctx.node.id, oldest, now);
    }

    /// Waits for every call in flight and forwards their results.
    fn drain(&mut self, ctx: &mut ProcessorContext<'_, K, V2>) -> Result<(), ProcessError> {
        self.collect(None, ctx)?;
        while !self.slots.is_empty() {
            self.collect(Some(self.wait_bound()), ctx)?;
        }
        Ok(())
    }

    fn wait_bound(&self) -> Duration {
        self.options.worst_case().saturating_add(Duration::from_secs(30))
    }

    fn stuck(&self, why: String) -> ProcessError {
        ProcessError::Topology { node: self.name.clone(), reason: format!("asynchronous calls stuck: {why}") }
    }

    /// Forwards a finished call's result with its input's key, timestamp,
    /// headers and source offset; a failed call goes to the task's policy.
    fn emit(&mut self, slot: Slot<K, V, V2>, ctx: &mut ProcessorContext<'_, K, V2>) -> Result<(), ProcessError> {
        let Slot { key, timestamp, headers, source, done, .. } = slot;
        match done {
            Some(Ok(value)) => {
                let before = std::mem::replace(&mut ctx.task.source, source);
                let result = ctx.forward(Record { key, value, timestamp, headers });
                ctx.task.source = before;
                result
            }
            Some(Err((error, value))) => {
                let key = self.key_serde.as_ref().and_then(|s| encode(s.as_ref(), &key));
                let value = value.and_then(|v| self.value_serde.as_ref().and_then(|s| encode(s.as_ref(), &v)));
                ctx.task.failed_calls.push(FailedCall { node: self.name.clone(), error, source, key, value, headers });
                Ok(())
            }
            None => Err(self.stuck("a call was forwarded before it finished".into())),
        }
    }
}

fn encode<T: 'static>(serde: &dyn Serde<T>, value: &T) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    match serde.serialize(value, &mut out) {
        Ok(Encoded::Bytes) => Some(out),
        _ => None,
    }
}

impl<K, V, V2> Processor<K, V, K, V2> for AsyncProcessor<K, V, V2>
where
    K: Clone + 'static,
    V: Clone + Send + 'static,
    V2: Clone + Send + 'static,
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, V2>) -> Result<(), ProcessError> {
        runtime()?;
        self.reset();
        if !std::mem::replace(&mut self.scheduled, true) {
            // A look at the finished calls at every turn of the thread's loop.
            ctx.schedule(Duration::from_millis(1), TimeKind::WallClock);
        }
        Ok(())
    }

    fn process(&mut self, record: Record<K, V>, ctx: &mut ProcessorContext<'_, K, V2>) -> Result<(), ProcessError> {
        self.collect(None, ctx)?;
        while self.slots.len() >= self.options.concurrency {
            self.collect(Some(self.wait_bound()), ctx)?;
        }
        let Record { key, value, timestamp, headers } = record;
        let seq = self.next;
        self.next += 1;
        let (f, options) = (self.f.clone(), self.options.clone());
        let deliver = Deliver { seq, to: Some(self.done_tx.clone()) };
        let handle = runtime()?.spawn(async move {
            let outcome = attempts(f, value, options).await;
            deliver.send(outcome.map_err(|(e, v)| (e, Some(v))));
        });
        let source = ctx.task.source.clone();
        self.slots.insert(seq, Slot { key, timestamp, headers, source, handle, done: None });
        self.hold_watermark(ctx);
        Ok(())
    }

    fn on_timer(&mut self, kind: TimeKind, _: i64, ctx: &mut ProcessorContext<'_, K, V2>) -> Result<(), ProcessError> {
        match kind {
            TimeKind::WallClock => self.collect(None, ctx),
            TimeKind::StreamTime => Ok(()),
        }
    }

    fn on_commit(&mut self, ctx: &mut ProcessorContext<'_, K, V2>) -> Result<(), ProcessError> {
        self.drain(ctx)
    }

    fn close(&mut self) {
        self.reset();
    }
}
