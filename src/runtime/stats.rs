//! Counters of one running application, shared by its threads, and what
//! each processing thread is doing (for `/health/ready`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// What a processing thread is doing, for readiness.
///
/// ```text
/// Joining --partitions assigned--> Restoring --every task restored--> Running
///    ^                                 |                                 |
///    +----- partitions revoked or lost, or tasks migrated ---------------+
/// any --the thread ends--> Stopped
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ThreadPhase {
    /// Waiting for a partition assignment (at start, or in a rebalance).
    Joining,
    /// Some assigned tasks are not created or not restored yet.
    Restoring,
    /// Every assigned task processes records (possibly none are assigned).
    Running,
    /// The thread has ended.
    Stopped,
}

/// What an application has done so far; read with `RuntimeStats::snapshot`.
#[derive(Debug, Default)]
pub(crate) struct RuntimeStats {
    pub(crate) records_processed: AtomicU64,
    pub(crate) records_skipped: AtomicU64,
    pub(crate) records_dead_lettered: AtomicU64,
    pub(crate) records_restored: AtomicU64,
    pub(crate) commits: AtomicU64,
    pub(crate) tasks_running: AtomicU64,
    pub(crate) tasks_restoring: AtomicU64,
    /// Source partitions assigned to this instance's threads, by thread
    /// index (each thread's consumer is a group member of its own).
    assignment: Mutex<BTreeMap<usize, BTreeSet<(String, i32)>>>,
    /// Each processing thread's phase, by thread index.
    threads: Mutex<Vec<ThreadPhase>>,
    /// Set when a shutdown begins: the instance is no longer ready.
    shutting_down: AtomicBool,
    /// Set while the global tables are loading: processing waits for them.
    globals_loading: AtomicBool,
}

/// The application's counters at one moment, from [`RunningApp::stats`](crate::RunningApp::stats)
/// (the same counters are on `/metrics`). Two snapshots compare, so a test
/// or a supervisor can tell whether the application moved on.
///
/// ```
/// use rivulet::StatsSnapshot;
/// fn progress(before: &StatsSnapshot, now: &StatsSnapshot) -> String {
///     let bad = now.records_skipped + now.records_dead_lettered - before.records_skipped - before.records_dead_lettered;
///     format!("{} records, {bad} bad, {} commits", now.records_processed - before.records_processed, now.commits - before.commits)
/// }
/// let start = StatsSnapshot::default(); // every counter 0
/// assert_eq!(progress(&start, &start), "0 records, 0 bad, 0 commits");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// Source records processed (including those that went to a policy).
    pub records_processed: u64,
    /// Bad records skipped by a `skip` policy.
    pub records_skipped: u64,
    /// Bad records written to the dead-letter topic.
    pub records_dead_lettered: u64,
    /// Changelog records applied to local stores while restoring.
    pub records_restored: u64,
    /// Completed commit cycles.
    pub commits: u64,
    /// Tasks processing now.
    pub tasks_running: u64,
    /// Tasks restoring now.
    pub tasks_restoring: u64,
}

impl RuntimeStats {
    /// Stats of an instance with `threads` processing threads, all joining.
    pub(crate) fn new(threads: usize) -> Self {
        RuntimeStats { threads: Mutex::new(vec![ThreadPhase::Joining; threads]), ..Default::default() }
    }

    pub(crate) fn set_phase(&self, thread: usize, phase: ThreadPhase) {
        let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = threads.get_mut(thread) {
            // A stopped thread stays stopped.
            if *slot != ThreadPhase::Stopped {
                *slot = phase;
            }
        }
    }

    /// The instance has global tables to load before it processes.
    pub(crate) fn globals_loading(&self) {
        self.globals_loading.store(true, Ordering::Release);
    }

    pub(crate) fn globals_loaded(&self) {
        self.globals_loading.store(false, Ordering::Release);
    }

    /// Whether processing may start: the global tables are loaded.
    pub(crate) fn globals_ready(&self) -> bool {
        !self.globals_loading.load(Ordering::Acquire)
    }

    pub(crate) fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    /// `Ok` when the instance is ready: every processing thread has its
    /// assignment and every assigned task is restored and processing.
    /// Otherwise why not, in a few words.
    pub(crate) fn readiness(&self) -> Result<(), String> {
        if self.shutting_down.load(Ordering::Relaxed) {
            return Err("shutting down".into());
        }
        if !self.globals_ready() {
            return Err("the global tables are loading".into());
        }
        let threads = self.threads.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for (i, phase) in threads.iter().enumerate() {
            match phase {
                ThreadPhase::Running => {}
                ThreadPhase::Joining => {
                    return Err(format!("processing thread {i} is waiting for its partition assignment"))
                }
                ThreadPhase::Restoring => {
                    let restoring = self.tasks_restoring.load(Ordering::Relaxed);
                    return Err(format!("processing thread {i} is restoring state ({restoring} tasks restoring)"));
                }
                ThreadPhase::Stopped => return Err(format!("processing thread {i} has stopped")),
            }
        }
        Ok(())
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Partitions were assigned to processing thread `thread` (all of
    /// them under eager rebalancing, some more under incremental).
    pub(crate) fn assign(&self, thread: usize, partitions: impl IntoIterator<Item = (String, i32)>) {
        let mut a = self.assignment.lock().unwrap_or_else(|e| e.into_inner());
        a.entry(thread).or_default().extend(partitions);
    }

    /// Partitions were revoked from (or lost by) processing thread `thread`.
    pub(crate) fn revoke(&self, thread: usize, partitions: impl IntoIterator<Item = (String, i32)>) {
        let mut a = self.assignment.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(owned) = a.get_mut(&thread) {
            for p in partitions {
                owned.remove(&p);
            }
        }
    }

    /// Processing thread `thread` owns nothing any more: its tasks are
    /// closed or dropped (it stopped, failed, or starts over as a new group
    /// member after its tasks migrated), whatever revocations it was told of.
    pub(crate) fn release(&self, thread: usize) {
        self.assignment.lock().unwrap_or_else(|e| e.into_inner()).remove(&thread);
    }

    /// The source partitions (topic, partition) assigned to this instance now.
    pub(crate) fn assignment(&self) -> BTreeSet<(String, i32)> {
        let a = self.assignment.lock().unwrap_or_else(|e| e.into_inner());
        a.values().flatten().cloned().collect()
    }

    /// The current values.
    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            records_processed: get(&self.records_processed),
            records_skipped: get(&self.records_skipped),
            records_dead_lettered: get(&self.records_dead_lettered),
            records_restored: get(&self.records_restored),
            commits: get(&self.commits),
            tasks_running: get(&self.tasks_running),
            tasks_restoring: get(&self.tasks_restoring),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_thread_runs_and_no_shutdown_began() {
        let stats = RuntimeStats::new(2);
        assert!(stats.readiness().is_err_and(|why| why.contains("thread 0 is waiting for its partition assignment")));
        stats.set_phase(0, ThreadPhase::Running);
        stats.set_phase(1, ThreadPhase::Restoring);
        assert!(stats.readiness().is_err_and(|why| why.contains("thread 1 is restoring")));
        stats.set_phase(1, ThreadPhase::Running);
        assert_eq!(stats.readiness(), Ok(()));
        stats.set_phase(1, ThreadPhase::Stopped);
        stats.set_phase(1, ThreadPhase::Running);
        assert!(stats.readiness().is_err_and(|why| why.contains("thread 1 has stopped")));
        let stats = RuntimeStats::new(1);
        stats.set_phase(0, ThreadPhase::Running);
        stats.begin_shutdown();
        assert_eq!(stats.readiness(), Err("shutting down".into()));
    }

    #[test]
    fn a_released_thread_claims_no_partition_whatever_it_was_told() {
        let stats = RuntimeStats::new(2);
        let tp = |p: i32| ("in".to_string(), p);
        stats.assign(0, [tp(0), tp(1)]);
        stats.assign(1, [tp(2)]);
        stats.revoke(0, [tp(1)]);
        assert_eq!(stats.assignment(), [tp(0), tp(2)].into());
        // Thread 0 starts over after its tasks migrated: no revocation came.
        stats.release(0);
        assert_eq!(stats.assignment(), [tp(2)].into());
    }
}
