//! What a workload asks of the broker (issue 15, item 1): the test broker's
//! own request metrics, read over JMX by `rivulet.bench.BrokerMetrics`
//! (`benches/kstreams`, attaching to the broker's JVM by pid), and the
//! broker process's CPU time from `/proc`. A snapshot before and after a run
//! gives the requests of each type the broker served during it, their bytes
//! and the time it spent on them, whoever sent them: the workload's clients,
//! and the driver's committed-offset checks (`OffsetFetch`, left out of the
//! figures) and nothing else, since runs do not overlap.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

/// Cumulative figures of one request type (see `BrokerMetrics.java`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Requests {
    pub(crate) count: f64,
    pub(crate) bytes: f64,
    pub(crate) total_ms: f64,
    pub(crate) remote_ms: f64,
}

/// The broker's cumulative request figures and CPU seconds at one moment.
#[derive(Clone, Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) requests: BTreeMap<String, Requests>,
    pub(crate) cpu_s: f64,
}

/// Request types shown per run, in this order.
pub(crate) const SHOWN: &[&str] = &[
    "Produce",
    "Fetch",
    "AddPartitionsToTxn",
    "AddOffsetsToTxn",
    "TxnOffsetCommit",
    "EndTxn",
    "OffsetCommit",
    "Heartbeat",
    "ConsumerGroupHeartbeat",
];

/// The broker's pid file, written by `integration-tests/kafka/broker.sh`.
fn pid_file() -> Option<PathBuf> {
    let port = crate::harness::bootstrap().rsplit(':').next()?.to_string();
    let cache = match std::env::var("RIVULET_CACHE_DIR") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => PathBuf::from(std::env::var("HOME").ok()?).join(".cache/rivulet"),
    };
    Some(cache.join(format!("broker-{port}")).join("broker.pid"))
}

/// A snapshot, or `None` (said once on stderr by the caller) when the
/// broker was not started by `broker.sh` on this machine or the jar is
/// missing.
pub(crate) fn snapshot(jar: &str) -> Option<Snapshot> {
    let pid = std::fs::read_to_string(pid_file()?).ok()?.trim().to_string();
    let out = Command::new("java")
        .args(["-cp", jar, "rivulet.bench.BrokerMetrics", &pid])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let mut requests = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        requests
            .insert(f[0].to_string(), Requests { count: num(1), bytes: num(2), total_ms: num(3), remote_ms: num(5) });
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(Snapshot { requests, cpu_s: ticks / 100.0 })
}

/// What the broker served between two snapshots.
pub(crate) fn delta(before: &Snapshot, after: &Snapshot) -> Snapshot {
    let requests = after
        .requests
        .iter()
        .map(|(k, a)| {
            let b = before.requests.get(k).copied().unwrap_or_default();
            let d = Requests {
                count: a.count - b.count,
                bytes: a.bytes - b.bytes,
                total_ms: a.total_ms - b.total_ms,
                remote_ms: a.remote_ms - b.remote_ms,
            };
            (k.clone(), d)
        })
        .collect();
    Snapshot { requests, cpu_s: after.cpu_s - before.cpu_s }
}

impl Snapshot {
    pub(crate) fn get(&self, request: &str) -> Requests {
        self.requests.get(request).copied().unwrap_or_default()
    }

    /// All requests but the driver's `OffsetFetch` checks.
    pub(crate) fn total(&self) -> f64 {
        self.requests.iter().filter(|(k, _)| k.as_str() != "OffsetFetch").map(|(_, r)| r.count).sum()
    }
}
