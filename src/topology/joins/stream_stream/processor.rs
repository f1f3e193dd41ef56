//! The join node: buffers both sides in their stores, joins each record
//! with the other side's records in its window, and emits the unmatched
//! ones when their windows close.

use super::*;

/// The join's clocks (see the module docs): per side, the largest
/// timestamp it has delivered (`seen`) and its time (`time`: `seen` held
/// back by the task's watermark, never decreasing); and the next sequence
/// number of a buffered record. Index 0 is this stream, 1 the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Times {
    pub(super) seen: [i64; 2],
    pub(super) time: [i64; 2],
    pub(super) seq: u64,
}

impl Default for Times {
    fn default() -> Self {
        Times { seen: [i64::MIN; 2], time: [i64::MIN; 2], seq: 0 }
    }
}

impl Times {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(40);
        for t in [self.seen[0], self.seen[1], self.time[0], self.time[1]] {
            out.extend_from_slice(&enc(t));
        }
        out.extend_from_slice(&self.seq.to_be_bytes());
        out
    }

    pub(super) fn decode(b: &[u8]) -> Option<Times> {
        if b.len() != 40 {
            return None;
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&b[32..]);
        Some(Times {
            seen: [dec(&b[..8]), dec(&b[8..16])],
            time: [dec(&b[16..24]), dec(&b[24..32])],
            seq: u64::from_be_bytes(seq),
        })
    }
}

pub(super) type Ctx<'a, K, V, V2, VR> = ProcessorContext<'a, K, JoinOut<V, V2, VR>>;

/// A buffered record whose window closed, for the unmatched results.
pub(super) struct Closed {
    pub(super) ts: i64,
    pub(super) side: usize,
    pub(super) seq: Vec<u8>,
    pub(super) kb: Vec<u8>,
    pub(super) value: Option<Vec<u8>>,
}

pub(super) struct JoinProcessor<K, V, V2, VR> {
    pub(super) node: String,
    /// This stream's store and the other's; 0 and 1 below.
    pub(super) stores: [String; 2],
    pub(super) store_index: [usize; 2],
    pub(super) before: i64,
    pub(super) after: i64,
    pub(super) grace: i64,
    pub(super) kind: StreamJoinKind,
    pub(super) joiner: JoinFn<K, V, V2, VR>,
    pub(super) key_serde: Arc<dyn Serde<K>>,
    pub(super) this_serde: Arc<dyn Serde<V>>,
    pub(super) other_serde: Arc<dyn Serde<V2>>,
    pub(super) time: Times,
    pub(super) persisted: Times,
    /// Per side: the index holds no record before this time (all closed
    /// and purged); `i64::MIN` after `init`.
    pub(super) scanned_below: [i64; 2],
}

impl<K: Data, V: Data, V2: Data, VR: Data> JoinProcessor<K, V, V2, VR> {
    pub(super) fn serde_error(&self, what: &str, e: crate::serde::SerdeError) -> ProcessError {
        ProcessError::Serde { what: format!("{what} in stream join store `{}`", self.stores[0]), source: e }
    }

    pub(super) fn corrupt(&self, what: &str) -> ProcessError {
        ProcessError::Topology {
            node: self.node.clone(),
            reason: format!(
                "stream join store `{}` or `{}` is damaged: {what}; stop the instance and delete this task's \
                 directories of the stores under state_dir, and they are restored from their changelogs",
                self.stores[0], self.stores[1]
            ),
        }
    }

    /// Whether records of `side` that find no partner are emitted.
    pub(super) fn unmatched(&self, side: usize) -> bool {
        match self.kind {
            StreamJoinKind::Inner => false,
            StreamJoinKind::Left => side == 0,
            StreamJoinKind::Outer => true,
        }
    }

    /// How far after a record of `side` its partners may be: `after` for
    /// this stream's records, `before` for the other's.
    pub(super) fn ahead(&self, side: usize) -> i64 {
        if side == 0 {
            self.after
        } else {
            self.before
        }
    }

    pub(super) fn behind(&self, side: usize) -> i64 {
        if side == 0 {
            self.before
        } else {
            self.after
        }
    }

    pub(super) fn encode<T: 'static>(
        &self,
        serde: &dyn Serde<T>,
        value: &T,
        what: &str,
    ) -> Result<Vec<u8>, ProcessError> {
        let mut out = Vec::new();
        match serde.serialize(value, &mut out) {
            Ok(Encoded::Bytes) => Ok(out),
            Ok(Encoded::Null) if what == "key" => Err(ProcessError::Rejected {
                node: self.node.clone(),
                source: "a stream join needs a key; this record's key is null".into(),
            }),
            Ok(Encoded::Null) => Ok(Vec::new()),
            Err(e) => Err(self.serde_error(what, e)),
        }
    }

    pub(super) fn range(
        &self,
        ctx: &mut Ctx<'_, K, V, V2, VR>,
        side: usize,
        from: Vec<u8>,
        to: Vec<u8>,
    ) -> Result<Entries, ProcessError> {
        ctx.store::<Vec<u8>, Vec<u8>>(&self.stores[side])?.range(Some(&from), Some(&to))
    }

    /// The sides' times as what they delivered and the task's watermark
    /// now allow; closes the windows they pass.
    pub(super) fn advance(&mut self, ctx: &mut Ctx<'_, K, V, V2, VR>) -> Result<(), ProcessError> {
        let wm = ctx.watermark();
        let before = self.time.time;
        for side in 0..2 {
            if wm == i64::MAX {
                // The end of a bounded run's input: every window closes.
                self.time.time[side] = i64::MAX;
            } else if self.time.seen[side] != i64::MIN {
                self.time.time[side] = self.time.time[side].max(self.time.seen[side].min(wm));
            }
        }
        if self.time.time == before {
            return Ok(());
        }
        let mut closed = Vec::new();
        for side in 0..2 {
            // Closed: ts + ahead + grace < the other side's time.
            let bound = self.time.time[1 - side].saturating_sub(self.ahead(side)).saturating_sub(self.grace);
            if bound <= self.scanned_below[side] {
                continue;
            }
            // From where the last scan stopped: a record buffered since is
            // not late, so its ts is at or past that bound, and the purged
            // keys before it (tombstones in RocksDB until compaction) are
            // not walked again.
            let from = key_of(INDEX, &[&enc(self.scanned_below[side])]);
            self.scanned_below[side] = bound;
            let due = self.range(ctx, side, from, key_of(INDEX, &[&enc(bound)]))?;
            for (index_key, kb) in due {
                if index_key.len() != 17 {
                    return Err(self.corrupt("an index key is not 17 bytes"));
                }
                let (ts, seq) = (&index_key[1..9], &index_key[9..]);
                let data_key = key_of(DATA, &[&kb, ts, seq]);
                let value =
                    if self.unmatched(side) { ctx.task.raw_get(self.store_index[side], &data_key)? } else { None };
                ctx.task.raw_delete(self.store_index[side], data_key)?;
                ctx.task.raw_delete(self.store_index[side], index_key.clone())?;
                closed.push(Closed { ts: dec(ts), side, seq: seq.to_vec(), kb, value });
            }
        }
        closed.sort_by(|a, b| (a.ts, a.side, &a.seq).cmp(&(b.ts, b.side, &b.seq)));
        for c in closed {
            let Some(value) = c.value else { continue };
            let Some((&matched, vb)) = value.split_first() else {
                return Err(self.corrupt("a buffered record has no matched flag"));
            };
            if matched != 0 {
                continue;
            }
            let key = self.key_serde.deserialize(Some(&c.kb)).map_err(|e| self.serde_error("key", e))?;
            let out = if c.side == 0 {
                let v = self.this_serde.deserialize(Some(vb)).map_err(|e| self.serde_error("value", e))?;
                (self.joiner)(&key, Some(&v), None)
            } else {
                let v = self.other_serde.deserialize(Some(vb)).map_err(|e| self.serde_error("value", e))?;
                (self.joiner)(&key, None, Some(&v))
            };
            if let Some(out) = out {
                ctx.forward(Record::new(key, JoinOut::Joined(out), c.ts))?;
            }
        }
        Ok(())
    }
}

impl<K: Data, V: Data, V2: Data, VR: Data> Processor<K, Side<V, V2>, K, JoinOut<V, V2, VR>>
    for JoinProcessor<K, V, V2, VR>
{
    fn init(&mut self, ctx: &mut Ctx<'_, K, V, V2, VR>) -> Result<(), ProcessError> {
        for side in 0..2 {
            // The typed view checks that the node declared the store.
            ctx.store::<Vec<u8>, Vec<u8>>(&self.stores[side])?;
            self.store_index[side] =
                ctx.task.store_index(&self.stores[side]).ok_or_else(|| ProcessError::Topology {
                    node: self.node.clone(),
                    reason: format!("store `{}` is not part of this task", self.stores[side]),
                })?;
        }
        self.time = match ctx.task.raw_get(self.store_index[0], META)? {
            Some(b) => Times::decode(&b).ok_or_else(|| self.corrupt("the join's clocks are not 40 bytes"))?,
            None => Times::default(),
        };
        self.persisted = self.time;
        self.scanned_below = [i64::MIN; 2];
        let restored = self.time.time[0].max(self.time.time[1]);
        if restored != i64::MIN {
            ctx.task.time.restore(restored);
        }
        Ok(())
    }

    fn process(&mut self, r: Record<K, Side<V, V2>>, ctx: &mut Ctx<'_, K, V, V2, VR>) -> Result<(), ProcessError> {
        let kb = self.encode(self.key_serde.as_ref(), &r.key, "key")?;
        let Record { key, value, timestamp: ts, headers } = r;
        let side = match value {
            Side::This(_) => 0,
            Side::Other(_) => 1,
        };
        self.time.seen[side] = self.time.seen[side].max(ts);
        self.advance(ctx)?;
        if ts.saturating_add(self.grace) < self.time.time[side] {
            ctx.task.late_records += 1;
            let out = match value {
                Side::This(v) => JoinOut::LateThis(v),
                Side::Other(v) => JoinOut::LateOther(v),
            };
            return ctx.forward(Record { key, value: out, timestamp: ts, headers });
        }
        // The other side's records of this key within the window.
        let other = 1 - side;
        let from = key_of(DATA, &[&kb, &enc(ts.saturating_sub(self.behind(side)))]);
        let to = key_of(DATA, &[&kb, &enc(ts.saturating_add(self.ahead(side)).saturating_add(1))]);
        let partners: Vec<(Vec<u8>, Vec<u8>)> =
            self.range(ctx, other, from, to)?.into_iter().filter(|(k, _)| k.len() == kb.len() + 17).collect();
        for (data_key, stored) in &partners {
            let Some((&matched, vb)) = stored.split_first() else {
                return Err(self.corrupt("a buffered record has no matched flag"));
            };
            let other_ts = dec(&data_key[kb.len() + 1..]);
            let out = match &value {
                Side::This(v) => {
                    let w = self.other_serde.deserialize(Some(vb)).map_err(|e| self.serde_error("value", e))?;
                    (self.joiner)(&key, Some(v), Some(&w))
                }
                Side::Other(w) => {
                    let v = self.this_serde.deserialize(Some(vb)).map_err(|e| self.serde_error("value", e))?;
                    (self.joiner)(&key, Some(&v), Some(w))
                }
            };
            if matched == 0 && self.unmatched(other) {
                let mut flagged = stored.clone();
                flagged[0] = 1;
                ctx.task.raw_put(self.store_index[other], data_key.clone(), flagged)?;
            }
            if let Some(out) = out {
                let record = Record {
                    key: key.clone(),
                    value: JoinOut::Joined(out),
                    timestamp: ts.max(other_ts),
                    headers: headers.clone(),
                };
                ctx.forward(record)?;
            }
        }
        // The other side's time may be past this record's window already
        // (that side runs ahead): no partner can come, so it is not
        // buffered, and emitted at once if it has none (Kafka Streams does
        // the same for a record whose window ends before stream time).
        if ts.saturating_add(self.ahead(side)).saturating_add(self.grace) < self.time.time[other] {
            if !partners.is_empty() || !self.unmatched(side) {
                return Ok(());
            }
            let out = match &value {
                Side::This(v) => (self.joiner)(&key, Some(v), None),
                Side::Other(w) => (self.joiner)(&key, None, Some(w)),
            };
            return match out {
                Some(out) => ctx.forward(Record { key, value: JoinOut::Joined(out), timestamp: ts, headers }),
                None => Ok(()),
            };
        }
        // Buffer the record for the other side's records to come.
        let seq = self.time.seq.to_be_bytes();
        self.time.seq += 1;
        let mut stored = vec![u8::from(!partners.is_empty())];
        let vb = match &value {
            Side::This(v) => self.encode(self.this_serde.as_ref(), v, "value")?,
            Side::Other(w) => self.encode(self.other_serde.as_ref(), w, "value")?,
        };
        stored.extend_from_slice(&vb);
        ctx.task.raw_put(self.store_index[side], key_of(DATA, &[&kb, &enc(ts), &seq]), stored)?;
        ctx.task.raw_put(self.store_index[side], key_of(INDEX, &[&enc(ts), &seq]), kb)?;
        Ok(())
    }

    fn on_watermark(&mut self, _watermark: i64, ctx: &mut Ctx<'_, K, V, V2, VR>) -> Result<(), ProcessError> {
        self.advance(ctx)
    }

    fn on_commit(&mut self, ctx: &mut Ctx<'_, K, V, V2, VR>) -> Result<(), ProcessError> {
        if self.time != self.persisted {
            ctx.task.raw_put(self.store_index[0], META.to_vec(), self.time.encode())?;
            self.persisted = self.time;
        }
        Ok(())
    }
}
