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

mod list;
mod map;
mod value;

pub use list::ListState;
pub use map::MapState;
pub use value::ValueState;

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
