//! Bounded runs ([`App::run_to_end`](crate::App::run_to_end),
//! `bounded.enabled`): every input is read up to the end offsets seen at
//! start, processed, committed, and the instance stops, the topology run
//! as a batch job.
//!
//! - **Input topics** end at their end offsets when the instance started:
//!   the high watermark, under exactly-once the last stable offset (what a
//!   `read_committed` consumer can see; the offsets are listed by a consumer
//!   with the application's isolation level). A partition empty at start is
//!   done at once.
//! - **Repartition topics** end once every task writing them has finished:
//!   a sub-topology that writes one is done when every one of its tasks, on
//!   whichever instance, committed its offsets at its ends with the metadata
//!   [`DONE`] (a task commits it only in the commit that follows its end of
//!   input, so its last outputs are in that commit or an earlier one). Then
//!   the repartition topic's high watermarks, taken after those commits, are
//!   its readers' ends (see [`BoundedRun::look`]). Any instance learns this from the group's committed
//!   offsets, so no instance has to tell another.
//! - **A task is done** when the consumer's position in each of its source
//!   partitions is at or past the partition's end (the position passes
//!   transaction markers, which no record reaches). Then
//!   [`Task::end_input`](crate::runtime::task::Task::end_input) runs: with `bounded.close_windows_at_end` its time
//!   becomes infinite and every window closes (see
//!   `TaskTime::end_of_input`), and its offsets become the ends, committed
//!   with [`DONE`] at once. Records past an end are not processed.
//! - **A thread is done** when it has its assignment and every task of it
//!   is done and committed. When every thread of the instance is, and the
//!   group's committed offsets show every partition of every sub-topology
//!   done (at this instance's ends), the instance stops as after SIGTERM and
//!   `run_to_end` returns `Ok`. Until then it stays in the group, idle, so
//!   the partitions of a member that crashed come to it (after the
//!   member's session timeout) and are finished.
//!
//! A topology whose sub-topologies feed each other in a cycle (the
//! foreign-key join) is refused: the end of such a loop is not defined by
//! offsets alone.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};

use super::TaskManager;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::kafka::{client_config, ClientRole};
use crate::processor::graph::TopicName;
use crate::processor::{ProcessError, TaskId};
use crate::topology::Topology;

/// The metadata of an offset a task committed after its end of input.
pub(crate) const DONE: &str = "rivulet.bounded.done";

/// How often a thread asks the group whether upstream sub-topologies are done.
const LOOK_EVERY: Duration = Duration::from_millis(500);
/// How often a thread reads committed offsets it lacks a position for.
const COMMITTED_EVERY: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(30);

type Ends = HashMap<String, BTreeMap<i32, (i64, i64)>>;

/// What every thread of a bounded run shares.
pub(crate) struct BoundedRun {
    close_windows: bool,
    /// Each sub-topology's source topics (resolved), internal or not.
    sources: Vec<Vec<(String, bool)>>,
    /// Repartition topic -> the sub-topologies writing it.
    writers: HashMap<String, BTreeSet<usize>>,
    /// Lists repartition topics' ends: their high watermarks, whatever the
    /// isolation level (see [`look`](Self::look)).
    lister: BaseConsumer,
    partitions: Vec<i32>,
    /// Topic -> partition -> (low, end): input topics from the start,
    /// repartition topics once their writer is done.
    ends: Mutex<Ends>,
    /// Bumped whenever `ends` grows, so threads refresh their copies.
    version: AtomicU64,
    /// Sub-topologies the group's committed offsets show done.
    done: Mutex<BTreeSet<usize>>,
    /// When a thread last asked the group (one thread at a time).
    looked: Mutex<Option<Instant>>,
    /// Whether each processing thread is done.
    threads: Mutex<Vec<bool>>,
    /// The application's stop flag, set when every thread is done.
    finished: Arc<AtomicBool>,
}

impl BoundedRun {
    /// Takes the end offsets of every input partition; fails on a topology
    /// with a cycle between sub-topologies.
    pub(crate) fn start(
        config: &Config,
        topology: &Topology,
        partitions: &[i32],
        finished: Arc<AtomicBool>,
    ) -> Result<BoundedRun> {
        let app = &config.application_id;
        let sources: Vec<Vec<(String, bool)>> = topology
            .subtopologies
            .iter()
            .map(|st| st.sources.iter().map(|(_, t)| (t.resolve(app), matches!(t, TopicName::Internal(_)))).collect())
            .collect();
        let writers = writers(topology, app);
        if let Some(st) = in_cycle(topology, app) {
            return Err(Error::Topology(crate::processor::TopologyError::Invalid(format!(
                "a bounded run cannot end this topology: sub-topology {st} reads, through internal topics, what it \
                 writes (a foreign-key join does), so no end offset marks the end of its input; run it continuously"
            ))));
        }
        let consumer: BaseConsumer = client_config(config, ClientRole::Consumer)?
            .create()
            .map_err(|e| Error::kafka("creating the consumer that reads the end offsets", e))?;
        let lister: BaseConsumer = client_config(config, ClientRole::Consumer)?
            .set("isolation.level", "read_uncommitted")
            .create()
            .map_err(|e| Error::kafka("creating the consumer that reads the end offsets", e))?;
        let mut ends = Ends::new();
        for (st, topics) in sources.iter().enumerate() {
            for (topic, _) in topics.iter().filter(|(_, internal)| !internal) {
                let n = partitions.get(st).copied().unwrap_or(0);
                let found = partition_ends(&consumer, topic, n)?;
                tracing::info!(topic = %topic, ends = ?found.values().map(|e| e.1).collect::<Vec<_>>(), "bounded run: input ends");
                ends.insert(topic.clone(), found);
            }
        }
        Ok(BoundedRun {
            close_windows: config.bounded.close_windows_at_end,
            sources,
            writers,
            lister,
            partitions: partitions.to_vec(),
            ends: Mutex::new(ends),
            version: AtomicU64::new(1),
            done: Mutex::default(),
            looked: Mutex::new(None),
            threads: Mutex::new(vec![false; config.num_threads]),
            finished,
        })
    }

    /// Asks the group, at most every [`LOOK_EVERY`] and one thread at a
    /// time, which writers of repartition topics are done, and takes the
    /// end offsets of the topics whose writers all are.
    ///
    /// A repartition topic's end is its high watermark, under exactly-once
    /// too: the writers' offsets can be visible (their commit marker is in
    /// `__consumer_offsets`) a moment before the marker that moves the
    /// topic's last stable offset past their records. Every record below
    /// the high watermark was written by a transaction that is decided or
    /// will be (the writers are done; a zombie's open one times out), so a
    /// `read_committed` reader's position gets there.
    fn look<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>) -> Result<()> {
        self.rarely(|| self.find_ends(consumer)).map(|_| ())
    }

    /// Runs `f` at most every [`LOOK_EVERY`], one thread at a time (the
    /// others skip it): `None` when it did not run.
    fn rarely<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<Option<T>> {
        let Ok(mut looked) = self.looked.try_lock() else { return Ok(None) };
        if looked.is_some_and(|at| at.elapsed() < LOOK_EVERY) {
            return Ok(None);
        }
        *looked = Some(Instant::now());
        f().map(Some)
    }

    fn find_ends<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>) -> Result<()> {
        loop {
            let mut progressed = false;
            for (topic, writers) in &self.writers {
                if lock(&self.ends).contains_key(topic) {
                    continue;
                }
                let mut all_done = true;
                for &writer in writers {
                    if lock(&self.done).contains(&writer) {
                        continue;
                    }
                    if self.subtopology_done(consumer, writer)? {
                        lock(&self.done).insert(writer);
                    } else {
                        all_done = false;
                    }
                }
                if !all_done {
                    continue;
                }
                let reader = self.sources.iter().position(|s| s.iter().any(|(t, _)| t == topic));
                let n = reader.and_then(|r| self.partitions.get(r).copied()).unwrap_or(0);
                let found = partition_ends(&self.lister, topic, n)?;
                tracing::info!(topic = %topic, ends = ?found.values().map(|e| e.1).collect::<Vec<_>>(), "bounded run: every task writing this repartition topic is done; its ends");
                lock(&self.ends).insert(topic.clone(), found);
                self.version.fetch_add(1, Ordering::Relaxed);
                progressed = true;
            }
            if !progressed {
                return Ok(());
            }
        }
    }

    /// Whether every task of sub-topology `st` committed [`DONE`] at or past
    /// the ends of its sources (unknown ends: not yet).
    fn subtopology_done<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>, st: usize) -> Result<bool> {
        let n = self.partitions.get(st).copied().unwrap_or(0);
        let mut tpl = TopicPartitionList::new();
        let mut wanted = HashMap::new();
        {
            let ends = lock(&self.ends);
            for (topic, _) in self.sources.get(st).into_iter().flatten() {
                for p in 0..n {
                    let Some(&(_, end)) = ends.get(topic).and_then(|e| e.get(&p)) else { return Ok(false) };
                    tpl.add_partition(topic, p);
                    wanted.insert((topic.clone(), p), end);
                }
            }
        }
        let committed = consumer
            .committed_offsets(tpl, TIMEOUT)
            .map_err(|e| Error::kafka("reading the group's committed offsets (bounded run)", e))?;
        Ok(committed.elements().iter().all(|e| {
            let end = wanted.get(&(e.topic().to_string(), e.partition())).copied().unwrap_or(i64::MAX);
            e.metadata() == DONE && matches!(e.offset(), Offset::Offset(o) if o >= end)
        }))
    }

    /// Thread `index` is done or not. When every thread is, and the
    /// group's committed offsets show every sub-topology done (so no
    /// partition is left to a member that crashed, whose partitions the
    /// group hands to those still running), the instance stops.
    fn report<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>, index: usize, done: bool) -> Result<()> {
        {
            let mut threads = lock(&self.threads);
            if let Some(t) = threads.get_mut(index) {
                *t = done;
            }
            if !done || !threads.iter().all(|&t| t) || self.finished.load(Ordering::Relaxed) {
                return Ok(());
            }
        }
        let group_done = self.rarely(|| {
            self.find_ends(consumer)?;
            for st in 0..self.sources.len() {
                if !lock(&self.done).contains(&st) && !self.subtopology_done(consumer, st)? {
                    return Ok(false);
                }
                lock(&self.done).insert(st);
            }
            Ok(true)
        })?;
        if group_done == Some(true) && !self.finished.swap(true, Ordering::Relaxed) {
            tracing::info!(
                "bounded run: every partition of the application is read to its end and committed; stopping"
            );
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Each internal topic some sub-topology reads -> the sub-topologies writing it.
fn writers(topology: &Topology, app: &str) -> HashMap<String, BTreeSet<usize>> {
    let read: BTreeSet<String> = topology
        .subtopologies
        .iter()
        .flat_map(|st| {
            st.sources.iter().filter(|(_, t)| matches!(t, TopicName::Internal(_))).map(|(_, t)| t.resolve(app))
        })
        .collect();
    let mut writers = HashMap::new();
    for st in &topology.subtopologies {
        for t in st.sinks.iter().map(|t| t.resolve(app)).filter(|t| read.contains(t)) {
            writers.entry(t).or_insert_with(BTreeSet::new).insert(st.id);
        }
    }
    writers
}

/// For each sub-topology, the sub-topologies writing the internal topics
/// it reads: what must end before it can.
pub(crate) fn upstreams(topology: &Topology, app: &str) -> Vec<BTreeSet<usize>> {
    let writers = writers(topology, app);
    let of = |st: &crate::topology::Subtopology| {
        st.sources.iter().filter_map(|(_, t)| writers.get(&t.resolve(app))).flatten().copied().collect()
    };
    topology.subtopologies.iter().map(of).collect()
}

/// A sub-topology that reads, through internal topics, what it writes.
pub(crate) fn in_cycle(topology: &Topology, app: &str) -> Option<usize> {
    let upstreams = upstreams(topology, app);
    (0..upstreams.len()).find(|&start| {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<usize> = upstreams[start].iter().copied().collect();
        while let Some(n) = stack.pop() {
            if n == start {
                return true;
            }
            if seen.insert(n) {
                stack.extend(upstreams.get(n).into_iter().flatten());
            }
        }
        false
    })
}

/// (low, end) of partitions `0..n` of `topic`: the end is the high
/// watermark, or the last stable offset for a `read_committed` consumer.
fn partition_ends<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    n: i32,
) -> Result<BTreeMap<i32, (i64, i64)>> {
    let mut out = BTreeMap::new();
    for p in 0..n {
        let ends = consumer
            .fetch_watermarks(topic, p, TIMEOUT)
            .map_err(|e| Error::kafka(format!("reading the end offsets of {topic}[{p}] (bounded run)"), e))?;
        out.insert(p, ends);
    }
    Ok(out)
}

/// A bounded run's look-up that failed for a reason that passes (a timeout,
/// a coordinator moving, a member's open transaction holding offsets back):
/// logged, and tried again in a later round. `None` when it failed so.
fn passing<T>(result: Result<T>, what: &str) -> Result<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_retriable() => {
            tracing::warn!(error = %e, "bounded run: {what} failed; trying again");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// One thread's part of a bounded run.
#[derive(Default)]
pub(crate) struct Bounded {
    /// A copy of the run's ends, and its version.
    ends: Ends,
    version: u64,
    /// Offsets the group has committed, for partitions with no position.
    committed: HashMap<(String, i32), i64>,
    committed_read: Option<Instant>,
    /// Tasks whose partitions this thread paused at their end.
    paused: BTreeSet<TaskId>,
}

impl TaskManager {
    /// Whether a polled record lies past its partition's end (a bounded
    /// run does not process it).
    pub(crate) fn past_end(&self, topic: &str, partition: i32, offset: i64) -> bool {
        let ends = &self.bounded.ends;
        !ends.is_empty() && ends.get(topic).and_then(|e| e.get(&partition)).is_some_and(|&(_, end)| offset >= end)
    }

    /// A bounded run's round (see the module docs): ends the tasks that have
    /// read their input, commits them at once, and tells the run whether
    /// this thread is done. Nothing without a bounded run.
    pub(crate) fn bounded_step<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) -> Result<()> {
        let Some(run) = self.app.bounded.clone() else { return Ok(()) };
        if self.tasks.values().any(|t| !t.ended()) {
            passing(run.look(consumer), "looking for the ends of repartition topics")?;
        }
        let version = run.version.load(Ordering::Relaxed);
        if version != self.bounded.version {
            self.bounded.ends = lock(&run.ends).clone();
            self.bounded.version = version;
        }
        let positions = consumer.position().map_err(|e| Error::kafka("reading the consumer's positions", e))?;
        let position = |topic: &str, p: i32| match positions.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => Some(o),
            _ => None,
        };
        let mut finished = Vec::new();
        let mut unknown = Vec::new();
        for (id, task) in &self.tasks {
            if task.ended() {
                continue;
            }
            let mut ends = Vec::new();
            for (topic, _) in run.sources.get(id.subtopology).into_iter().flatten() {
                let Some(&(low, end)) = self.bounded.ends.get(topic).and_then(|e| e.get(&id.partition)) else {
                    break;
                };
                let key = (topic.clone(), id.partition);
                // No position (nothing read since the assignment or a
                // rewind): the committed offset, read again while short.
                let at = position(topic, id.partition);
                let committed = || self.bounded.committed.get(&key).map(|&c| c.max(low));
                match at {
                    Some(at) if at >= end => ends.push((topic.as_str(), end)),
                    Some(_) => break,
                    None if committed().is_some_and(|c| c >= end) => ends.push((topic.as_str(), end)),
                    None => {
                        unknown.push(key);
                        break;
                    }
                }
            }
            if ends.len() == run.sources.get(id.subtopology).map_or(0, Vec::len) {
                finished.push((*id, ends.into_iter().map(|(t, e)| (t.to_string(), e)).collect::<Vec<_>>()));
            }
        }
        if !unknown.is_empty() && self.bounded.committed_read.is_none_or(|at| at.elapsed() >= COMMITTED_EVERY) {
            passing(self.read_committed(consumer, unknown), "reading committed offsets")?;
        }
        if !finished.is_empty() {
            // Never commit below what the group has: another instance
            // (started later, with later ends) may have gone further.
            let parts = finished.iter().flat_map(|(id, ends)| ends.iter().map(|(t, _)| (t.clone(), id.partition)));
            if passing(self.read_committed(consumer, parts.collect()), "reading committed offsets")?.is_none() {
                finished.clear();
            }
        }
        for (id, ends) in &finished {
            let Some(task) = self.tasks.get_mut(id) else { continue };
            let committed = &self.bounded.committed;
            let ends: Vec<(&str, i64)> = ends
                .iter()
                .map(|(t, e)| (t.as_str(), committed.get(&(t.clone(), id.partition)).map_or(*e, |&c| c.max(*e))))
                .collect();
            match task.end_input(run.close_windows, &ends) {
                Ok(()) => {}
                Err(e @ ProcessError::TransactionFailed { .. }) => return self.abort_failed_transaction(consumer, e),
                Err(e) => return Err(Error::record(task.source(), e)),
            }
            tracing::info!(task = %id, ends = ?ends, "bounded run: task read its input to the end");
            super::pause(consumer, &self.source_partitions(*id), *id)?;
            self.bounded.paused.insert(*id);
        }
        // After an abort a task is not ended any more: it reads again. A
        // task gone in a rebalance is remembered: if its partitions come
        // back, they may come back paused.
        for id in std::mem::take(&mut self.bounded.paused) {
            match self.tasks.get(&id) {
                Some(task) if !task.ended() => super::resume(consumer, &self.source_partitions(id), id)?,
                _ => {
                    self.bounded.paused.insert(id);
                }
            }
        }
        if !finished.is_empty() {
            self.commit(consumer)?;
        }
        // A thread with nothing assigned is done with its part: under
        // KIP-848 a member the broker gives nothing gets no callback at all.
        // The group's committed offsets below decide for the application.
        let done = self.pending.is_empty()
            && self.restoring.is_empty()
            && self.tasks.values().all(|t| t.ended() && t.consumed_partitions().next().is_none());
        passing(run.report(consumer, self.thread, done), "reading the group's committed offsets").map(|_| ())
    }

    /// Reads the group's committed offsets of partitions with no position.
    fn read_committed<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        parts: Vec<(String, i32)>,
    ) -> Result<()> {
        self.bounded.committed_read = Some(Instant::now());
        let mut tpl = TopicPartitionList::new();
        for (topic, p) in &parts {
            tpl.add_partition(topic, *p);
        }
        let committed = consumer
            .committed_offsets(tpl, TIMEOUT)
            .map_err(|e| Error::kafka("reading committed offsets (bounded run)", e))?;
        for e in committed.elements() {
            // No committed offset: the consumer starts at the beginning
            // (`auto.offset.reset = earliest`), which the low end stands for.
            let offset = match e.offset() {
                Offset::Offset(o) => o,
                _ => i64::MIN,
            };
            self.bounded.committed.insert((e.topic().to_string(), e.partition()), offset);
        }
        Ok(())
    }
}
