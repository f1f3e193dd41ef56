//! The state handles of a keyed processor: each names its state and how
//! its values become bytes, and reads and writes the entry of the
//! [`KeyedContext`]'s current key.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use super::KeyedContext;
use crate::processor::time::duration_ms;
use crate::processor::ProcessError;
use crate::serde::{Encoded, Serde};

/// What every state handle has: its name, its serde, its time-to-live.
struct Cell<T> {
    name: String,
    serde: Arc<dyn Serde<T>>,
    ttl_ms: Option<i64>,
}

impl<T: 'static> Cell<T> {
    fn new(name: &str, serde: impl Serde<T>) -> Self {
        Cell { name: name.to_string(), serde: Arc::new(serde), ttl_ms: None }
    }

    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<(), ProcessError> {
        let at = out.len();
        match self.serde.serialize(value, out) {
            Ok(Encoded::Bytes) => Ok(()),
            // A serde meaning null (Serdes::unit, optional None) wrote nothing.
            Ok(Encoded::Null) => {
                out.truncate(at);
                Ok(())
            }
            Err(e) => Err(ProcessError::Serde { what: format!("value of keyed state `{}`", self.name), source: e }),
        }
    }

    fn decode(&self, bytes: &[u8]) -> Result<T, ProcessError> {
        self.serde
            .deserialize(Some(bytes))
            .map_err(|e| ProcessError::Serde { what: format!("value of keyed state `{}`", self.name), source: e })
    }

    /// The current key's entry (`suffix`: its map key, if any), decoded.
    fn get<K, KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        ctx: &mut KeyedContext<'_, '_, K, KO, VO>,
        suffix: &[u8],
    ) -> Result<Option<T>, ProcessError> {
        let entry = ctx.entry_key(&self.name, suffix)?;
        ctx.read_entry(&entry)?.map(|bytes| self.decode(&bytes)).transpose()
    }

    /// Sets the current key's entry to `value`.
    fn set<K, KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        ctx: &mut KeyedContext<'_, '_, K, KO, VO>,
        suffix: &[u8],
        value: &T,
    ) -> Result<(), ProcessError> {
        let entry = ctx.entry_key(&self.name, suffix)?;
        let mut payload = Vec::new();
        self.encode(value, &mut payload)?;
        ctx.write_entry(entry, &payload, self.ttl_ms)
    }

    /// Removes the current key's entry.
    fn delete<K, KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        ctx: &mut KeyedContext<'_, '_, K, KO, VO>,
        suffix: &[u8],
    ) -> Result<(), ProcessError> {
        let entry = ctx.entry_key(&self.name, suffix)?;
        ctx.delete_entry(entry)
    }
}

/// One value per key.
///
/// ```
/// use std::time::Duration;
/// use rivulet::serde::Serdes;
/// use rivulet::topology::keyed::ValueState;
/// let last_seen = ValueState::new("last-seen", Serdes::i64()).with_ttl(Duration::from_secs(86_400));
/// ```
pub struct ValueState<T> {
    cell: Cell<T>,
}

impl<T: 'static> ValueState<T> {
    /// The state `name` (unique within its keyed processor), values encoded
    /// with `serde`.
    pub fn new(name: &str, serde: impl Serde<T>) -> Self {
        ValueState { cell: Cell::new(name, serde) }
    }

    /// Each key's value expires `ttl` of processing time after it was last
    /// written (see the module docs).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.cell.ttl_ms = Some(duration_ms(ttl));
        self
    }

    /// The current key's value.
    pub fn get<K, KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        ctx: &mut KeyedContext<'_, '_, K, KO, VO>,
    ) -> Result<Option<T>, ProcessError> {
        self.cell.get(ctx, &[])
    }

    /// Sets the current key's value.
    pub fn set<K, KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        ctx: &mut KeyedContext<'_, '_, K, KO, VO>,
        value: &T,
    ) -> Result<(), ProcessError> {
        self.cell.set(ctx, &[], value)
    }

    /// Removes the current key's value.
    pub fn clear<K, KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        ctx: &mut KeyedContext<'_, '_, K, KO, VO>,
    ) -> Result<(), ProcessError> {
        self.cell.delete(ctx, &[])
    }
}

/// A list of values per key, kept as one entry (read and written whole).
pub struct ListState<T> {
    cell: Cell<T>,
}

impl<T: 'static> ListState<T> {
    /// The state `name` (unique within its keyed processor), elements
    /// encoded with `serde`.
    pub fn new(name: &str, serde: impl Serde<T>) -> Self {
        ListState { cell: Cell::new(name, serde) }
    }

    /// Each key's list expires `ttl` of processing time after it was last
    /// written.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.cell.ttl_ms = Some(duration_ms(ttl));
        self
    }

    /// The current key's elements, oldest first (empty if none).
    pub fn get<K, KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        ctx: &mut KeyedContext<'_, '_, K, KO, VO>,
    ) -> Result<Vec<T>, ProcessError> {
        let entry = ctx.entry_key(&self.cell.name, &[])?;
        let Some(bytes) = ctx.read_entry(&entry)? else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            let len = rest.get(..4).and_then(|b| <[u8; 4]>::try_from(b).ok()).map(u32::from_be_bytes);
            let element = len.and_then(|n| rest.get(4..4 + n as usize));
            let Some(element) = element else {
                return Err(ProcessError::Serde {
                    what: format!("list of keyed state `{}`", self.cell.name),
                    source: crate::serde::SerdeError::new("keyed-state", "an element's length runs past the list"),
                });
            };
            out.push(self.cell.decode(element)?);
            rest = &rest[4 + element.len()..];
        }
        Ok(out)
    }

    /// Appends `value` to the current key's list.
    pub fn add<K, KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        ctx: &mut KeyedContext<'_, '_, K, KO, VO>,
        value: &T,
    ) -> Result<(), ProcessError> {
        let entry = ctx.entry_key(&self.cell.name, &[])?;
        let mut payload = ctx.read_entry(&entry)?.unwrap_or_default();
        self.append(value, &mut payload)?;
        ctx.write_entry(entry, &payload, self.cell.ttl_ms)
    }

    /// Replaces the current key's list (an empty one removes it).
    pub fn update<K, KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        ctx: &mut KeyedContext<'_, '_, K, KO, VO>,
        values: &[T],
    ) -> Result<(), ProcessError> {
        let entry = ctx.entry_key(&self.cell.name, &[])?;
        if values.is_empty() {
            return ctx.delete_entry(entry);
        }
        let mut payload = Vec::new();
        for v in values {
            self.append(v, &mut payload)?;
        }
        ctx.write_entry(entry, &payload, self.cell.ttl_ms)
    }

    /// Removes the current key's list.
    pub fn clear<K, KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        ctx: &mut KeyedContext<'_, '_, K, KO, VO>,
    ) -> Result<(), ProcessError> {
        self.cell.delete(ctx, &[])
    }

    /// Appends `[u32 length][encoding]`.
    fn append(&self, value: &T, payload: &mut Vec<u8>) -> Result<(), ProcessError> {
        let at = payload.len();
        payload.extend_from_slice(&[0; 4]);
        self.cell.encode(value, payload)?;
        let len = u32::try_from(payload.len() - at - 4).map_err(|_| ProcessError::Serde {
            what: format!("element of keyed state `{}`", self.cell.name),
            source: crate::serde::SerdeError::new("keyed-state", "an element of 4 GiB or more cannot be stored"),
        })?;
        payload[at..at + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }
}

/// A map per key, one store entry per map entry, iterated in the order of
/// the encoded map keys. Each map entry has its own time-to-live.
pub struct MapState<MK, MV> {
    cell: Cell<MV>,
    key_serde: Arc<dyn Serde<MK>>,
    _key: PhantomData<fn(MK)>,
}

impl<MK: 'static, MV: 'static> MapState<MK, MV> {
    /// The state `name` (unique within its keyed processor), map keys and
    /// values encoded with `key_serde` and `value_serde`.
    pub fn new(name: &str, key_serde: impl Serde<MK>, value_serde: impl Serde<MV>) -> Self {
        MapState { cell: Cell::new(name, value_serde), key_serde: Arc::new(key_serde), _key: PhantomData }
    }

    /// Each map entry expires `ttl` of processing time after it was last
    /// written.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.cell.ttl_ms = Some(duration_ms(ttl));
        self
    }

    fn map_key(&self, key: &MK) -> Result<Vec<u8>, ProcessError> {
        let mut out = Vec::new();
        self.key_serde.serialize(key, &mut out).map_err(|e| ProcessError::Serde {
            what: format!("map key of keyed state `{}`", self.cell.name),
            source: e,
        })?;
        Ok(out)
    }

    /// The value under `key` in the current key's map.
    pub fn get<K, KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        ctx: &mut KeyedContext<'_, '_, K, KO, VO>,
        key: &MK,
    ) -> Result<Option<MV>, ProcessError> {
        self.cell.get(ctx, &self.map_key(key)?)
    }

    /// Whether the current key's map holds `key`.
    pub fn contains<K, KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        ctx: &mut KeyedContext<'_, '_, K, KO, VO>,
        key: &MK,
    ) -> Result<bool, ProcessError> {
        let entry = ctx.entry_key(&self.cell.name, &self.map_key(key)?)?;
        Ok(ctx.read_entry(&entry)?.is_some())
    }

    /// Puts `value` under `key` in the current key's map.
    pub fn put<K, KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        ctx: &mut KeyedContext<'_, '_, K, KO, VO>,
        key: &MK,
        value: &MV,
    ) -> Result<(), ProcessError> {
        self.cell.set(ctx, &self.map_key(key)?, value)
    }

    /// Removes `key` from the current key's map.
    pub fn remove<K, KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        ctx: &mut KeyedContext<'_, '_, K, KO, VO>,
        key: &MK,
    ) -> Result<(), ProcessError> {
        self.cell.delete(ctx, &self.map_key(key)?)
    }

    /// The current key's map entries, in the order of their encoded keys.
    pub fn entries<K, KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        ctx: &mut KeyedContext<'_, '_, K, KO, VO>,
    ) -> Result<Vec<(MK, MV)>, ProcessError> {
        let prefix = ctx.entry_key(&self.cell.name, &[])?;
        ctx.scan_entries(&prefix)?
            .into_iter()
            .map(|(entry, payload)| {
                let key = self.key_serde.deserialize(entry.get(prefix.len()..)).map_err(|e| ProcessError::Serde {
                    what: format!("map key of keyed state `{}`", self.cell.name),
                    source: e,
                })?;
                Ok((key, self.cell.decode(&payload)?))
            })
            .collect()
    }

    /// Removes every entry of the current key's map.
    pub fn clear<K, KO: Clone + 'static, VO: Clone + 'static>(
        &self,
        ctx: &mut KeyedContext<'_, '_, K, KO, VO>,
    ) -> Result<(), ProcessError> {
        let prefix = ctx.entry_key(&self.cell.name, &[])?;
        for (entry, _) in ctx.scan_entries(&prefix)? {
            ctx.delete_entry(entry)?;
        }
        Ok(())
    }
}
