//! The window operator: a `Processor` that folds records into their
//! windows, closes windows as the watermark passes them, emits results and
//! routes late records.

use super::*;

impl<K: Data, V: Data, S: Data, O: Data> WindowProcessor<K, V, S, O> {
    pub(super) fn serde_error(&self, what: &str, e: SerdeError) -> ProcessError {
        ProcessError::Serde { what: format!("{what} in window store `{}`", self.store), source: e }
    }

    pub(super) fn corrupt(&self, what: &str) -> ProcessError {
        ProcessError::Topology {
            node: self.node.clone(),
            reason: format!(
                "window store `{}` is damaged: {what}; stop the instance and delete this task's directory of the \
                 store under state_dir, and it is restored from its changelog",
                self.store
            ),
        }
    }

    pub(super) fn key_bytes(&self, key: &K) -> Result<Vec<u8>, ProcessError> {
        let mut out = Vec::new();
        match self.key_serde.serialize(key, &mut out) {
            Ok(Encoded::Bytes) => Ok(out),
            Ok(Encoded::Null) => Err(ProcessError::Rejected {
                node: self.node.clone(),
                source: "a windowed aggregation needs a key; this record's key is null".into(),
            }),
            Err(e) => Err(self.serde_error("key", e)),
        }
    }

    pub(super) fn encode_state(&self, s: &S) -> Result<Vec<u8>, ProcessError> {
        let mut out = Vec::new();
        self.agg.codec.serialize(s, &mut out).map_err(|e| self.serde_error("aggregate", e))?;
        Ok(out)
    }

    pub(super) fn decode_state(&self, b: &[u8]) -> Result<S, ProcessError> {
        self.agg.codec.deserialize(Some(b)).map_err(|e| self.serde_error("aggregate", e))
    }

    pub(super) fn get(&self, ctx: &mut Ctx<'_, K, V, O>, k: &[u8]) -> Result<Option<Vec<u8>>, ProcessError> {
        ctx.task.raw_get(self.store_index, k)
    }

    pub(super) fn put(&self, ctx: &mut Ctx<'_, K, V, O>, k: Vec<u8>, v: Vec<u8>) -> Result<(), ProcessError> {
        ctx.task.raw_put(self.store_index, k, v)
    }

    pub(super) fn delete(&self, ctx: &mut Ctx<'_, K, V, O>, k: Vec<u8>) -> Result<(), ProcessError> {
        ctx.task.raw_delete(self.store_index, k)
    }

    pub(super) fn range(
        &self,
        ctx: &mut Ctx<'_, K, V, O>,
        from: Vec<u8>,
        to: Vec<u8>,
    ) -> Result<Entries, ProcessError> {
        ctx.store::<Vec<u8>, Vec<u8>>(&self.store)?.range(Some(&from), Some(&to))
    }

    /// The watermark at which a window with this stored end closes.
    pub(super) fn close_at(&self, end: i64) -> i64 {
        let g = self.windows.grace;
        match self.windows.kind {
            Kind::Time { .. } => end.saturating_add(g),
            Kind::Sliding { .. } => end.saturating_add(1).saturating_add(g),
            Kind::Session { gap } => end.saturating_add(gap).saturating_add(1).saturating_add(g),
            Kind::Count { .. } => i64::MAX,
        }
    }

    /// Writes a window's aggregate and (when new) its close-index entry.
    pub(super) fn put_window(
        &mut self,
        ctx: &mut Ctx<'_, K, V, O>,
        data_key: Vec<u8>,
        end: i64,
        state: &S,
        new: bool,
    ) -> Result<(), ProcessError> {
        let bytes = self.encode_state(state)?;
        if new && !matches!(self.windows.kind, Kind::Count { .. }) {
            let close = self.close_at(end);
            self.put(ctx, key_of(INDEX, &[&enc(close), &data_key]), Vec::new())?;
            *self.closes.entry(close).or_insert(0) += 1;
        }
        if self.emit == EmitMode::OnUpdate {
            self.dirty.insert(data_key.clone());
        }
        self.put(ctx, data_key, bytes)
    }

    pub(super) fn remove_window(
        &mut self,
        ctx: &mut Ctx<'_, K, V, O>,
        data_key: Vec<u8>,
        end: i64,
    ) -> Result<(), ProcessError> {
        let close = self.close_at(end);
        self.delete(ctx, key_of(INDEX, &[&enc(close), &data_key]))?;
        self.forget_close(close);
        self.dirty.remove(&data_key);
        self.delete(ctx, data_key)
    }

    pub(super) fn forget_close(&mut self, close: i64) {
        if let Some(n) = self.closes.get_mut(&close) {
            *n -= 1;
            if *n == 0 {
                self.closes.remove(&close);
            }
        }
    }

    /// The key and window of a data key (count windows read their bounds
    /// from the stored value).
    pub(super) fn window_of(&self, data_key: &[u8], value: &[u8]) -> Result<(K, i64, i64), ProcessError> {
        let n = data_key.len();
        let (kb, start, end) = match self.windows.kind {
            Kind::Time { size, .. } if n >= 9 => {
                let start = dec(&data_key[n - 8..]);
                (&data_key[1..n - 8], start, start.saturating_add(size))
            }
            Kind::Sliding { length } if n >= 9 => {
                let end = dec(&data_key[n - 8..]);
                (&data_key[1..n - 8], end.saturating_sub(length), end)
            }
            Kind::Session { .. } if n >= 17 => {
                (&data_key[1..n - 16], dec(&data_key[n - 8..]), dec(&data_key[n - 16..]))
            }
            Kind::Count { .. } if value.len() >= COUNT_HEADER => (&data_key[1..], dec(&value[8..]), dec(&value[16..])),
            _ => return Err(self.corrupt("a window key is too short")),
        };
        let key = self.key_serde.deserialize(Some(kb)).map_err(|e| self.serde_error("key", e))?;
        Ok((key, start, end))
    }

    pub(super) fn emit_window(
        &self,
        ctx: &mut Ctx<'_, K, V, O>,
        data_key: &[u8],
        value: &[u8],
    ) -> Result<(), ProcessError> {
        if data_key.first() == Some(&segmented::TIME_DATA) {
            return self.emit_time_window(ctx, data_key, value);
        }
        let (key, start, end) = self.window_of(data_key, value)?;
        let state_bytes = match self.windows.kind {
            Kind::Count { .. } => &value[COUNT_HEADER..],
            _ => value,
        };
        let state = self.decode_state(state_bytes)?;
        let timestamp = match self.windows.kind {
            Kind::Time { .. } => end - 1,
            _ => end,
        };
        let Some(result) = (self.agg.result)(&state) else { return Ok(()) };
        let out = WinOut::Result(Windowed { key, start, end }, Some(result));
        ctx.forward(Record::new((), out, timestamp))
    }

    /// A tombstone for a session merged into another after it was emitted,
    /// stamped with the session's end as Kafka Streams does.
    pub(super) fn emit_tombstone(&self, ctx: &mut Ctx<'_, K, V, O>, data_key: &[u8]) -> Result<(), ProcessError> {
        let (key, start, end) = self.window_of(data_key, &[])?;
        ctx.forward(Record::new((), WinOut::Result(Windowed { key, start, end }, None), end))
    }

    pub(super) fn late(&self, ctx: &mut Ctx<'_, K, V, O>, r: Record<K, V>) -> Result<(), ProcessError> {
        ctx.task.late_records += 1;
        let Record { key, value, timestamp, headers } = r;
        ctx.forward(Record { key: (), value: WinOut::Late(key, value), timestamp, headers })
    }

    pub(super) fn process_time(
        &mut self,
        r: Record<K, V>,
        kb: Vec<u8>,
        size: i64,
        advance: i64,
        ctx: &mut Ctx<'_, K, V, O>,
    ) -> Result<(), ProcessError> {
        let wm = ctx.watermark();
        let ts = r.timestamp;
        // Window starts s with s <= ts < s + size, aligned to `advance`.
        let last = ts.div_euclid(advance) * advance;
        let mut start = last;
        let mut added = false;
        while start > ts.saturating_sub(size) {
            let end = start.saturating_add(size);
            if self.close_at(end) > wm {
                let data_key = segmented::time_key(&kb, start);
                let state = match self.get(ctx, &data_key)? {
                    Some(b) => self.decode_state(&b)?,
                    None => (self.agg.init)(),
                };
                let state = (self.agg.add)(state, &r.value);
                self.put_time_window(ctx, data_key, &state)?;
                added = true;
            }
            start -= advance;
        }
        if !added {
            return self.late(ctx, r);
        }
        Ok(())
    }

    /// Sessions, judged as Kafka Streams (`KStreamSessionWindowAggregate`:
    /// a record is dropped only when `mergedWindow.end()` is past the close
    /// time) and Flink (`WindowOperator`: `isWindowLate(actualWindow)`, the
    /// window after `MergingWindowSet.addWindow`) judge them: the record
    /// first merges with the open sessions of its key within the gap, and
    /// only the merged session is judged, so a record inside an open
    /// session joins it however old it is. With nothing to merge with, it
    /// is late when its own session would be closed.
    pub(super) fn process_session(
        &mut self,
        r: Record<K, V>,
        kb: Vec<u8>,
        gap: i64,
        ctx: &mut Ctx<'_, K, V, O>,
    ) -> Result<(), ProcessError> {
        let ts = r.timestamp;
        let wm = ctx.watermark();
        // Sessions of this key ending at or after ts - gap; those starting
        // at or before ts + gap touch the record. A session due to close at
        // this watermark (purged by on_watermark after this record) is
        // closed and merges with nothing.
        let from = key_of(DATA, &[&kb, &enc(ts.saturating_sub(gap))]);
        let to = key_of(DATA, &[&kb, &enc(i64::MAX)]);
        let mut start = ts;
        let mut end = ts;
        let mut merged = Vec::new();
        for (k, v) in self.range(ctx, from, to)? {
            if k.len() != kb.len() + 17 {
                continue; // another key that extends this one
            }
            let (s_end, s_start) = (dec(&k[k.len() - 16..]), dec(&k[k.len() - 8..]));
            if s_start > ts.saturating_add(gap) || self.close_at(s_end) <= wm {
                continue;
            }
            start = start.min(s_start);
            end = end.max(s_end);
            merged.push((k, v, s_end));
        }
        if self.close_at(end) <= wm {
            return self.late(ctx, r);
        }
        let mut state = (self.agg.init)();
        for (_, v, _) in &merged {
            state = (self.agg.merge)(state, self.decode_state(v)?);
        }
        state = (self.agg.add)(state, &r.value);
        let data_key = key_of(DATA, &[&kb, &enc(end), &enc(start)]);
        let mut unchanged = false;
        for (k, _, s_end) in merged {
            if k == data_key {
                unchanged = true;
                continue;
            }
            if self.emit == EmitMode::OnUpdate && !self.unemitted.remove(&k) {
                self.retracted.insert(k.clone());
            }
            self.remove_window(ctx, k, s_end)?;
        }
        if self.emit == EmitMode::OnUpdate && !unchanged {
            self.unemitted.insert(data_key.clone());
        }
        self.put_window(ctx, data_key, end, &state, !unchanged)
    }

    /// Kafka Streams' sliding windows (`SlidingWindows`,
    /// `KStreamSlidingWindowAggregate`): the windows of a key are
    /// `[t - size, t]` for each of its records (the left window) and
    /// `[t + 1, t + 1 + size]` for each record with a later one in that
    /// range (the right window), both inclusive, each over every record of
    /// the key between its bounds. A window is identified by its end. A
    /// record is late only when the last window it can fall in, ending at
    /// `t + size`, is closed (Kafka Streams drops a record when
    /// `timestamp + timeDifferenceMs` is past its close time); otherwise it
    /// joins every open window that contains it, and a window that would be
    /// created closed is not created (`updateWindowAndForward` skips it).
    pub(super) fn process_sliding(
        &mut self,
        r: Record<K, V>,
        kb: Vec<u8>,
        size: i64,
        ctx: &mut Ctx<'_, K, V, O>,
    ) -> Result<(), ProcessError> {
        let ts = r.timestamp;
        let wm = ctx.watermark();
        if self.close_at(ts.saturating_add(size)) <= wm {
            return self.late(ctx, r);
        }
        let Some(value_serde) = self.value_serde.clone() else {
            return Err(self.corrupt("sliding windows need the value serde"));
        };
        let offset = ctx.source().map(|s| s.offset).unwrap_or(0);
        let mut vb = Vec::new();
        value_serde.serialize(&r.value, &mut vb).map_err(|e| self.serde_error("value", e))?;
        self.put(ctx, key_of(RAW, &[&kb, &enc(ts), &offset.to_be_bytes()]), vb)?;
        self.put(ctx, key_of(RAW_INDEX, &[&enc(ts), &kb, &offset.to_be_bytes()]), kb.clone())?;
        // The windows of this key ending in [ts, ts + 1 + size]: the open
        // ones ending by ts + size contain the record and take it.
        let after = ts.saturating_add(1).saturating_add(size);
        let from = key_of(DATA, &[&kb, &enc(ts)]);
        let to = key_of(DATA, &[&kb, &enc(after.saturating_add(1))]);
        let mut exists = BTreeSet::new();
        for (k, v) in self.range(ctx, from, to)? {
            if k.len() != kb.len() + 9 {
                continue; // another key that extends this one
            }
            let end = dec(&k[k.len() - 8..]);
            exists.insert(end);
            if end < after && self.close_at(end) > wm {
                let state = (self.agg.add)(self.decode_state(&v)?, &r.value);
                self.put_window(ctx, k, end, &state, false)?;
            }
        }
        // The key's values from ts - 1 - size to ts + 1 + size (this one
        // included) give the windows the record creates: its left window,
        // its right window when a later value falls in it, and the right
        // window of the value just before it, which this one makes
        // non-empty. (Any earlier value's right window holds that value,
        // so it exists or closed.)
        let from = key_of(RAW, &[&kb, &enc(ts.saturating_sub(1).saturating_sub(size))]);
        let to = key_of(RAW, &[&kb, &enc(after.saturating_add(1))]);
        let raw: Vec<(i64, Vec<u8>)> = self
            .range(ctx, from, to)?
            .into_iter()
            .filter(|(k, _)| k.len() == kb.len() + 17)
            .map(|(k, v)| (dec(&k[kb.len() + 1..]), v))
            .collect();
        let mut ends = vec![ts];
        if raw.iter().any(|(t, _)| *t > ts) {
            ends.push(after);
        }
        if let Some(previous) = raw.iter().map(|(t, _)| *t).filter(|t| *t < ts).max() {
            ends.push(previous.saturating_add(1).saturating_add(size));
        }
        for end in ends {
            if self.close_at(end) <= wm || !exists.insert(end) {
                continue;
            }
            let mut state = (self.agg.init)();
            for (_, v) in raw.iter().filter(|(t, _)| end.saturating_sub(size) <= *t && *t <= end) {
                let value = value_serde.deserialize(Some(v)).map_err(|e| self.serde_error("value", e))?;
                state = (self.agg.add)(state, &value);
            }
            self.put_window(ctx, key_of(DATA, &[&kb, &enc(end)]), end, &state, true)?;
        }
        Ok(())
    }

    pub(super) fn process_count(
        &mut self,
        r: Record<K, V>,
        kb: Vec<u8>,
        n: u64,
        ctx: &mut Ctx<'_, K, V, O>,
    ) -> Result<(), ProcessError> {
        let ts = r.timestamp;
        let data_key = key_of(DATA, &[&kb]);
        let (count, first, state) = match self.get(ctx, &data_key)? {
            Some(b) if b.len() >= COUNT_HEADER => {
                let mut c = [0u8; 8];
                c.copy_from_slice(&b[..8]);
                (u64::from_be_bytes(c), dec(&b[8..]), self.decode_state(&b[COUNT_HEADER..])?)
            }
            Some(_) => return Err(self.corrupt("a count window value is too short")),
            None => (0, ts, (self.agg.init)()),
        };
        let state = (self.agg.add)(state, &r.value);
        let count = count + 1;
        let mut value = Vec::with_capacity(COUNT_HEADER + 16);
        value.extend_from_slice(&count.to_be_bytes());
        value.extend_from_slice(&enc(first));
        value.extend_from_slice(&enc(ts));
        value.extend_from_slice(&self.encode_state(&state)?);
        if count >= n {
            // Complete: emit it (in either mode) and start the next one.
            self.dirty.remove(&data_key);
            self.emit_window(ctx, &data_key, &value)?;
            return self.delete(ctx, data_key);
        }
        if self.emit == EmitMode::OnUpdate {
            self.dirty.insert(data_key.clone());
        }
        self.put(ctx, data_key, value)
    }
}

impl<K: Data, V: Data, S: Data, O: Data> Processor<K, V, (), WinOut<K, V, O>> for WindowProcessor<K, V, S, O> {
    fn init(&mut self, ctx: &mut Ctx<'_, K, V, O>) -> Result<(), ProcessError> {
        // The typed view checks that the node declared the store and that
        // it holds bytes; per record the operator then goes by index.
        ctx.store::<Vec<u8>, Vec<u8>>(&self.store)?;
        self.store_index = ctx.task.store_index(&self.store).ok_or_else(|| ProcessError::Topology {
            node: self.node.clone(),
            reason: format!("store `{}` is not part of this task", self.store),
        })?;
        self.persisted_watermark = i64::MIN;
        self.watermark = i64::MIN;
        if let Some(b) = self.get(ctx, WATERMARK)? {
            if b.len() == 8 {
                let wm = dec(&b);
                self.persisted_watermark = wm;
                ctx.task.time.restore(wm);
            }
        }
        self.dirty.clear();
        self.unemitted.clear();
        self.retracted.clear();
        self.closes.clear();
        self.raw_purged = i64::MIN;
        self.init_time_windows(ctx)?;
        if !matches!(self.windows.kind, Kind::Count { .. }) {
            for (k, _) in self.range(ctx, vec![INDEX], vec![INDEX + 1])? {
                if k.len() < 9 {
                    return Err(self.corrupt("an index key is too short"));
                }
                *self.closes.entry(dec(&k[1..9])).or_insert(0) += 1;
            }
        }
        Ok(())
    }

    fn process(&mut self, r: Record<K, V>, ctx: &mut Ctx<'_, K, V, O>) -> Result<(), ProcessError> {
        let kb = self.key_bytes(&r.key)?;
        match self.windows.kind {
            Kind::Time { size, advance } => self.process_time(r, kb, size, advance, ctx),
            Kind::Session { gap } => self.process_session(r, kb, gap, ctx),
            Kind::Sliding { length } => self.process_sliding(r, kb, length, ctx),
            Kind::Count { n } => self.process_count(r, kb, n, ctx),
        }
    }

    fn on_watermark(&mut self, wm: i64, ctx: &mut Ctx<'_, K, V, O>) -> Result<(), ProcessError> {
        if matches!(self.windows.kind, Kind::Count { .. }) {
            return Ok(());
        }
        // Persisted at the commit, with the state it belongs to: the
        // watermark moves with nearly every record.
        self.watermark = self.watermark.max(wm);
        if let Kind::Time { size, advance } = self.windows.kind {
            return self.close_time_windows(wm, size, advance, ctx);
        }
        if self.closes.first_key_value().is_some_and(|(&c, _)| c <= wm) {
            self.close_windows(wm, ctx)?;
        }
        if let Kind::Sliding { length } = self.windows.kind {
            self.purge_raw(wm, length, ctx)?;
        }
        Ok(())
    }

    fn on_commit(&mut self, ctx: &mut Ctx<'_, K, V, O>) -> Result<(), ProcessError> {
        self.rewrite_watermark_with_windows(ctx)?;
        if self.watermark > self.persisted_watermark && !matches!(self.windows.kind, Kind::Count { .. }) {
            self.put(ctx, WATERMARK.to_vec(), enc(self.watermark).to_vec())?;
            self.persisted_watermark = self.watermark;
        }
        self.unemitted.clear();
        for data_key in std::mem::take(&mut self.retracted) {
            if !self.dirty.contains(&data_key) {
                self.emit_tombstone(ctx, &data_key)?;
            }
        }
        for data_key in std::mem::take(&mut self.dirty) {
            if let Some(value) = self.get(ctx, &data_key)? {
                self.emit_window(ctx, &data_key, &value)?;
            }
        }
        Ok(())
    }
}

impl<K: Data, V: Data, S: Data, O: Data> WindowProcessor<K, V, S, O> {
    /// Closes every window whose close time is at or before `wm`: emits it
    /// (`emit_final`, or a change not yet emitted) and purges it.
    pub(super) fn close_windows(&mut self, wm: i64, ctx: &mut Ctx<'_, K, V, O>) -> Result<(), ProcessError> {
        let due = self.range(ctx, vec![INDEX], key_of(INDEX, &[&enc(wm.saturating_add(1))]))?;
        for (index_key, _) in due {
            if index_key.len() < 9 {
                return Err(self.corrupt("an index key is too short"));
            }
            let close = dec(&index_key[1..9]);
            let data_key = index_key[9..].to_vec();
            self.delete(ctx, index_key)?;
            self.forget_close(close);
            let Some(value) = self.get(ctx, &data_key)? else { continue };
            if self.emit == EmitMode::Final || self.dirty.contains(&data_key) {
                self.emit_window(ctx, &data_key, &value)?;
            }
            self.dirty.remove(&data_key);
            self.delete(ctx, data_key)?;
        }
        Ok(())
    }

    /// Drops the raw values of sliding windows that no open window can
    /// still include. An open window ends at or after `wm - grace`, so it
    /// starts at or after `wm - grace - length`; a value one ms before that
    /// is kept too, as its right window (starting one ms after it) is open.
    pub(super) fn purge_raw(&mut self, wm: i64, length: i64, ctx: &mut Ctx<'_, K, V, O>) -> Result<(), ProcessError> {
        let bound = wm.saturating_sub(length).saturating_sub(self.windows.grace).saturating_sub(1);
        if bound <= self.raw_purged {
            return Ok(());
        }
        self.raw_purged = bound;
        {
            let old = self.range(ctx, vec![RAW_INDEX], key_of(RAW_INDEX, &[&enc(bound)]))?;
            for (index_key, kb) in old {
                let n = index_key.len();
                if n < 17 {
                    return Err(self.corrupt("a raw-value index key is too short"));
                }
                let ts = &index_key[1..9];
                let offset = &index_key[n - 8..];
                self.delete(ctx, key_of(RAW, &[&kb, ts, offset]))?;
                self.delete(ctx, index_key)?;
            }
        }
        Ok(())
    }
}
