//! The oracle: every window kind written out with plain arithmetic, the
//! semantics the operator must agree with (Kafka Streams' sliding windows,
//! Flink's lateness on the merged session).

use super::*;

/// A window the oracle tracks: key, start, end, count.
pub(super) type Win = (String, i64, i64);

/// Plain-arithmetic windows from the arrival order: the watermark is the
/// largest timestamp so far minus the out-of-orderness; a window closes
/// when the watermark reaches its close time.
pub(super) struct Oracle {
    pub(super) open: BTreeMap<Win, (i64, i64)>, // -> (count, close_at)
    pub(super) closed: BTreeMap<Win, i64>,
    pub(super) late: usize,
    pub(super) wm: i64,
    /// On-time records (sliding windows aggregate over them).
    pub(super) accepted: Vec<(String, i64)>,
    /// Records late for some window of theirs that an open one took.
    pub(super) rescued: usize,
}

impl Oracle {
    pub(super) fn new() -> Self {
        Oracle {
            open: BTreeMap::new(),
            closed: BTreeMap::new(),
            late: 0,
            wm: i64::MIN,
            accepted: Vec::new(),
            rescued: 0,
        }
    }

    pub(super) fn advance(&mut self, ts: i64) {
        self.wm = self.wm.max(ts - OOO);
        let wm = self.wm;
        let due: Vec<Win> = self.open.iter().filter(|(_, (_, c))| *c <= wm).map(|(w, _)| w.clone()).collect();
        for w in due {
            let (n, _) = self.open.remove(&w).unwrap();
            self.closed.insert(w, n);
        }
    }

    pub(super) fn time(&mut self, input: &[(String, i64)], size: i64, advance: i64) {
        for (k, ts) in input {
            // The watermark moves with the record, before it is placed.
            self.wm = self.wm.max(ts - OOO);
            let (mut added, mut missed) = (false, false);
            let mut start = ts.div_euclid(advance) * advance;
            while start + size > *ts {
                let close = start + size + GRACE;
                if close > self.wm {
                    self.open.entry((k.clone(), start, start + size)).or_insert((0, close)).0 += 1;
                    added = true;
                } else {
                    missed = true;
                }
                start -= advance;
            }
            if !added {
                self.late += 1;
            } else if missed {
                self.rescued += 1;
            }
            self.advance(*ts);
        }
    }

    /// Sessions as Kafka Streams and Flink judge them: a record merges
    /// with the open sessions of its key within the gap and is late only
    /// when the merged session is closed. Closed sessions merge with
    /// nothing.
    pub(super) fn sessions(&mut self, input: &[(String, i64)], gap: i64) {
        for (k, ts) in input {
            self.wm = self.wm.max(ts - OOO);
            let wm = self.wm;
            let touching: Vec<Win> = self
                .open
                .iter()
                .filter(|((key, s, e), (_, close))| key == k && *e >= ts - gap && *s <= ts + gap && *close > wm)
                .map(|(w, _)| w.clone())
                .collect();
            let end = touching.iter().map(|w| w.2).fold(*ts, i64::max);
            if end + gap + 1 + GRACE <= wm {
                self.late += 1;
            } else {
                if ts + gap + 1 + GRACE <= wm {
                    self.rescued += 1;
                }
                let (mut start, mut n) = (*ts, 1);
                for w in touching {
                    let (c, _) = self.open.remove(&w).unwrap();
                    start = start.min(w.1);
                    n += c;
                }
                self.open.insert((k.clone(), start, end), (n, end + gap + 1 + GRACE));
            }
            self.advance(*ts);
        }
    }

    /// Kafka Streams' sliding windows, written out from their definition
    /// (`SlidingWindows`): a key's windows are `[t - size, t]` for each of
    /// its accepted records and `[t + 1, t + 1 + size]` for each one with a
    /// later record in that range; each counts every accepted record of the
    /// key between its bounds while it is open. A record is late when the
    /// last window it could be in (`[t, t + size]`) is closed; a window
    /// closed when a record would create it is never created.
    pub(super) fn sliding(&mut self, input: &[(String, i64)], size: i64) {
        for (k, ts) in input {
            self.sliding_step(k, *ts, size);
            self.advance(*ts);
        }
    }

    pub(super) fn sliding_step(&mut self, k: &str, ts: i64, size: i64) {
        self.wm = self.wm.max(ts - OOO);
        let wm = self.wm;
        if ts + size + 1 + GRACE <= wm {
            self.late += 1;
            return;
        }
        if ts + 1 + GRACE <= wm {
            self.rescued += 1;
        }
        self.accepted.push((k.to_string(), ts));
        let of_key: Vec<i64> = self.accepted.iter().filter(|(key, _)| key == k).map(|(_, t)| *t).collect();
        let mut candidates: Vec<(i64, i64)> = of_key.iter().map(|t| (t - size, *t)).collect();
        for &t in &of_key {
            if of_key.iter().any(|&later| later > t && later <= t + 1 + size) {
                candidates.push((t + 1, t + 1 + size));
            }
        }
        for (s, e) in candidates {
            let w = (k.to_string(), s, e);
            if e + 1 + GRACE > wm && !self.closed.contains_key(&w) {
                self.open.entry(w).or_insert((0, e + 1 + GRACE));
            }
        }
        for ((key, s, e), (n, close)) in self.open.iter_mut() {
            if key == k && *close > wm {
                *n = of_key.iter().filter(|&&t| *s <= t && t <= *e).count() as i64;
            }
        }
    }
}
