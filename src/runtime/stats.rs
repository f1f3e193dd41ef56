//! Counters of one running application, shared by its threads.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// What an application has done so far; read with [`RuntimeStats::snapshot`].
#[derive(Debug, Default)]
pub struct RuntimeStats {
    pub(crate) records_processed: AtomicU64,
    pub(crate) records_skipped: AtomicU64,
    pub(crate) records_dead_lettered: AtomicU64,
    pub(crate) records_restored: AtomicU64,
    pub(crate) commits: AtomicU64,
    pub(crate) tasks_running: AtomicU64,
    pub(crate) tasks_restoring: AtomicU64,
    /// Source partitions assigned to this instance's threads.
    pub(crate) assignment: Mutex<BTreeSet<(String, i32)>>,
}

/// A copy of [`RuntimeStats`] at one moment.
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
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn assign(&self, partitions: impl IntoIterator<Item = (String, i32)>) {
        self.assignment.lock().unwrap_or_else(|e| e.into_inner()).extend(partitions);
    }

    pub(crate) fn revoke(&self, partitions: impl IntoIterator<Item = (String, i32)>) {
        let mut a = self.assignment.lock().unwrap_or_else(|e| e.into_inner());
        for p in partitions {
            a.remove(&p);
        }
    }

    /// The source partitions (topic, partition) assigned to this instance now.
    pub fn assignment(&self) -> BTreeSet<(String, i32)> {
        self.assignment.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The current values.
    pub fn snapshot(&self) -> StatsSnapshot {
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
