//! The segmented window store of tumbling and hopping windows.
//!
//! Kafka Streams keeps windows in a `RocksDBSegmentedBytesStore`
//! (`AbstractRocksDBSegmentedBytesStore`, `KeyValueSegments`): the store
//! is cut into time segments, and once stream time has passed a segment's
//! retention the whole segment is dropped at once, with no per-window
//! deletes. Its changelog topic is `cleanup.policy=compact,delete` with
//! `retention.ms` = the store's retention plus
//! `windowstore.changelog.additional.retention.ms` (1 day;
//! `WindowedChangelogTopicConfig`), so the broker forgets old windows by
//! time instead of by tombstones. `KStreamWindowAggregate` with
//! `EmitStrategy.onWindowClose` finds the closed windows with one
//! time-range fetch over a time-first key schema (`TimeFirstWindowKeySchema`)
//! from the last close time it emitted.
//!
//! This is the same idea over the one key-value store a window operator
//! has:
//!
//! - **Time-first keys.** A window's aggregate lives under
//!   `0x05 | start | key` (start big-endian with the sign bit flipped, so
//!   byte order is time order). A record computes its windows' starts, so
//!   updating a window stays a point read and write; the windows that close
//!   when the watermark moves are one contiguous key range, read once (from
//!   where the last close stopped) and emitted. No close-time index, no
//!   in-memory count of close times.
//! - **Closing costs no changelog record.** The closed range is dropped
//!   *locally*: [`WriteBuffer::drop_locally`](crate::state::WriteBuffer)
//!   discards its buffered writes (a window opened and closed within one
//!   commit never reaches the changelog) and hides the stored ones, and
//!   step 4 of the commit deletes it in the same RocksDB `WriteBatch` as
//!   the data (one range tombstone). Nothing goes to the changelog: before,
//!   each window cost its value, a close-index key and two tombstones.
//! - **The broker forgets by time.** The changelog is created with
//!   `cleanup.policy=compact,delete` and `retention.ms` = size + grace +
//!   `state.window_changelog_additional_retention_ms` (see
//!   [`store_spec`]). Its records carry the wall-clock time of the commit
//!   that wrote them, not the window's event time: a window is written
//!   while it is open, and it stays open for at most size + grace of event
//!   time, plus the out-of-orderness and however long the watermark
//!   stalls; while input flows, event time and wall time run together and
//!   the margin (1 day by default) covers the rest. Event-time stamps (Kafka
//!   Streams' choice) would let the broker delete open windows, and the
//!   watermark, as soon as their log segment rolls whenever the input is
//!   older than the retention (a replay of last week), and would be refused
//!   by brokers limiting future timestamps.
//! - **Restores see closed windows again.** Records of windows closed
//!   since their last write stay in the changelog until retention removes
//!   them, so a restore brings them back; `init` drops every window the
//!   restored watermark has closed, locally again, before any record is
//!   processed, so none is emitted twice.
//!
//! # The watermark under time retention
//!
//! The store's one key that is not a window is the watermark (`0x04`). Time
//! retention must never delete it while a window record it closed
//! survives, or a restore would reopen windows and emit them again. Every
//! commit that writes anything to this store's changelog also writes the
//! watermark ([`rewrite_watermark_with_windows`](WindowProcessor)), so the
//! newest watermark record is as new (in time and offset) as the newest
//! window record. The broker deletes whole segments, oldest first, and
//! never the active one; so while any window record of the store is kept,
//! a watermark record at least as recent is kept too. The one gap: a
//! commit's records are sent in key order (watermark first), so a segment
//! may roll between the watermark and that commit's windows; if that
//! commit is also the last one for longer than the retention, the
//! watermark can go while those (open) windows stay, and a later restore
//! starts them with no watermark: late records for long-closed windows
//! would be accepted again. No window is lost or emitted twice by it.
//!
//! # Stores of the older layout
//!
//! Tumbling and hopping windows used to live under `0x00 | key | start`
//! with a close index. Such entries are not read by this layout: an
//! application upgraded while windows were open never emits those windows
//! (their records stay in the changelog). Upgrade with a reset of the
//! application, or once the input has stopped and every window has closed.

use super::*;
use crate::state::KeyRange;

/// The key prefix of a tumbling or hopping window's aggregate.
pub(super) const TIME_DATA: u8 = 5;

/// `0x05 | start | key`: a time window's key, in start order.
pub(super) fn time_key(kb: &[u8], start: i64) -> Vec<u8> {
    key_of(TIME_DATA, &[&enc(start), kb])
}

/// The keys of the time windows starting before `start`.
fn starting_before(start: i64) -> KeyRange {
    (vec![TIME_DATA], key_of(TIME_DATA, &[&enc(start)]))
}

/// The store of a window operator: tumbling and hopping windows declare
/// their changelog windowed, with the event time a window lives (size plus
/// grace) as the base of its retention.
pub(super) fn store_spec(name: &str, windows: &Windows) -> StoreSpec {
    let spec = StoreSpec::key_value(name, Serdes::bytes(), Serdes::bytes());
    match windows.kind {
        Kind::Time { size, .. } => spec.windowed_changelog(size.saturating_add(windows.grace)),
        _ => spec,
    }
}

impl<K: Data, V: Data, S: Data, O: Data> WindowProcessor<K, V, S, O> {
    /// The first window start still open at watermark `wm`: a window closes
    /// when `start + size + grace <= wm`.
    fn first_open_start(&self, wm: i64, size: i64) -> i64 {
        wm.saturating_sub(size).saturating_sub(self.windows.grace).saturating_add(1)
    }

    /// Writes a time window's aggregate (no index: its key is in close order).
    pub(super) fn put_time_window(
        &mut self,
        ctx: &mut Ctx<'_, K, V, O>,
        data_key: Vec<u8>,
        state: &S,
    ) -> Result<(), ProcessError> {
        let bytes = self.encode_state(state)?;
        if self.emit == EmitMode::OnUpdate {
            self.dirty.insert(data_key.clone());
        }
        self.put(ctx, data_key, bytes)
    }

    /// Closes the time windows the watermark `wm` has passed: one range
    /// read from where the last close stopped, each emitted (`emit_final`,
    /// or a change not emitted yet), then the whole range dropped locally.
    /// Window starts are multiples of `advance`: while no start lies between
    /// the last close and the new one (the watermark moves with nearly every
    /// record), there is nothing to read or drop.
    pub(super) fn close_time_windows(
        &mut self,
        wm: i64,
        size: i64,
        advance: i64,
        ctx: &mut Ctx<'_, K, V, O>,
    ) -> Result<(), ProcessError> {
        let below = self.first_open_start(wm, size);
        if below <= self.closed_below {
            return Ok(());
        }
        if self.closed_below != i64::MIN {
            let floor = self.closed_below.div_euclid(advance).saturating_mul(advance);
            let next_start = if floor < self.closed_below { floor.saturating_add(advance) } else { floor };
            if next_start >= below {
                self.closed_below = below;
                return Ok(());
            }
        }
        let from = time_key(&[], self.closed_below);
        let (start, to) = starting_before(below);
        for (data_key, value) in self.range(ctx, from, to.clone())? {
            if self.emit == EmitMode::Final || self.dirty.contains(&data_key) {
                self.emit_time_window(ctx, &data_key, &value)?;
            }
            self.dirty.remove(&data_key);
        }
        ctx.task.buffer.drop_locally(&self.store, start, to);
        self.closed_below = below;
        Ok(())
    }

    /// After a start or a restore: the windows the restored watermark has
    /// closed were emitted before it was committed, but their records may
    /// have come back from the changelog; drop them locally, unemitted.
    pub(super) fn init_time_windows(&mut self, ctx: &mut Ctx<'_, K, V, O>) -> Result<(), ProcessError> {
        self.closed_below = i64::MIN;
        let Kind::Time { size, .. } = self.windows.kind else { return Ok(()) };
        if self.persisted_watermark == i64::MIN {
            return Ok(());
        }
        let below = self.first_open_start(self.persisted_watermark, size);
        let (start, to) = starting_before(below);
        ctx.task.buffer.drop_locally(&self.store, start, to);
        self.closed_below = below;
        Ok(())
    }

    /// Writes the watermark again whenever this commit writes anything else
    /// to a time-window store, so that time retention never deletes it
    /// before the window records it closed (see the module docs).
    pub(super) fn rewrite_watermark_with_windows(&mut self, ctx: &mut Ctx<'_, K, V, O>) -> Result<(), ProcessError> {
        if !matches!(self.windows.kind, Kind::Time { .. }) {
            return Ok(());
        }
        let wm = self.watermark.max(self.persisted_watermark);
        if wm == i64::MIN || ctx.task.buffer.range(&self.store, None, None).next().is_none() {
            return Ok(());
        }
        self.put(ctx, WATERMARK.to_vec(), enc(wm).to_vec())?;
        self.persisted_watermark = wm;
        Ok(())
    }

    /// Emits a time window: `[start, start + size)`, stamped `end - 1`.
    pub(super) fn emit_time_window(
        &self,
        ctx: &mut Ctx<'_, K, V, O>,
        data_key: &[u8],
        value: &[u8],
    ) -> Result<(), ProcessError> {
        let Kind::Time { size, .. } = self.windows.kind else {
            return Err(self.corrupt("a time-window key in a store of another window kind"));
        };
        if data_key.len() < 9 {
            return Err(self.corrupt("a time-window key is too short"));
        }
        let start = dec(&data_key[1..9]);
        let end = start.saturating_add(size);
        let key = self.key_serde.deserialize(Some(&data_key[9..])).map_err(|e| self.serde_error("key", e))?;
        let state = self.decode_state(value)?;
        let Some(result) = (self.agg.result)(&state) else { return Ok(()) };
        let out = WinOut::Result(Windowed { key, start, end }, Some(result));
        ctx.forward(Record::new((), out, end.saturating_sub(1)))
    }
}
