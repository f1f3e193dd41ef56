//! What a table forwards downstream: a key's new value together with the
//! value it replaces, as Kafka Streams' `Change<V>` (with `sendOldValues`
//! always on). Operators below a table need the old value to stay exact:
//! `filter` turns a key that stops passing into a delete, a table
//! `group_by` subtracts the old value from its old group, and a table join
//! retracts the old result.
//!
//! The old value costs one store read per update, which every table
//! operator does anyway (the source reads before it writes, an aggregate
//! reads its current value), so rivulet never runs without it.

use crate::serde::{Encoded, Serde, SerdeError};

/// A table update of one key: `new` is the value after it (`None`: the key
/// is deleted), `old` the value before it (`None`: the key was absent).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Change<V> {
    pub(crate) new: Option<V>,
    pub(crate) old: Option<V>,
}

impl<V> Change<V> {
    pub(crate) fn new(new: Option<V>, old: Option<V>) -> Self {
        Change { new, old }
    }

    /// A change with neither value tells downstream nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.new.is_none() && self.old.is_none()
    }
}

/// Writes a [`Change`] to a repartition topic (a table's `group_by`), as
/// Kafka Streams' `ChangedSerializer` does: one flag byte (bit 0: a new
/// value follows, bit 1: an old value follows; bits 2 and 3: the new or old
/// value is one the value serde writes as a Kafka null, such as `()`), then
/// the new value's length as 4 bytes big-endian and its bytes, then the old
/// value's bytes.
pub(crate) struct ChangeSerde<V> {
    pub(crate) inner: std::sync::Arc<dyn Serde<V>>,
}

/// Appends `value` as `serde` writes it; true when the serde means a Kafka
/// null (a unit value), which then takes no bytes.
pub(crate) fn append_value<V: 'static>(serde: &dyn Serde<V>, value: &V, out: &mut Vec<u8>) -> Result<bool, SerdeError> {
    let at = out.len();
    match serde.serialize(value, out)? {
        Encoded::Bytes => Ok(false),
        Encoded::Null => {
            out.truncate(at);
            Ok(true)
        }
    }
}

const HAS_NEW: u8 = 1;
const HAS_OLD: u8 = 2;
const NEW_IS_NULL: u8 = 4;
const OLD_IS_NULL: u8 = 8;

impl<V: 'static> ChangeSerde<V> {
    fn corrupt(&self, what: &str) -> SerdeError {
        SerdeError::new(
            self.name(),
            format!("{what}; only rivulet itself may write to its internal repartition topics"),
        )
    }

    fn part(&self, value: &V, out: &mut Vec<u8>) -> Result<bool, SerdeError> {
        append_value(self.inner.as_ref(), value, out)
    }

    fn value(&self, null: bool, bytes: &[u8]) -> Result<V, SerdeError> {
        if null {
            if !bytes.is_empty() {
                return Err(self.corrupt("a table change has bytes for a null value"));
            }
            return self.inner.deserialize(None);
        }
        self.inner.deserialize(Some(bytes))
    }
}

impl<V: 'static> Serde<Change<V>> for ChangeSerde<V> {
    fn serialize(&self, value: &Change<V>, out: &mut Vec<u8>) -> Result<Encoded, SerdeError> {
        let flags_at = out.len();
        out.push(0);
        let mut flags = 0;
        if let Some(new) = &value.new {
            flags |= HAS_NEW;
            let at = out.len();
            out.extend_from_slice(&[0; 4]);
            if self.part(new, out)? {
                flags |= NEW_IS_NULL;
            }
            let len = u32::try_from(out.len() - at - 4)
                .map_err(|_| SerdeError::new(self.name(), "a table value is larger than 4 GiB"))?;
            out[at..at + 4].copy_from_slice(&len.to_be_bytes());
        }
        if let Some(old) = &value.old {
            flags |= HAS_OLD;
            if self.part(old, out)? {
                flags |= OLD_IS_NULL;
            }
        }
        out[flags_at] = flags;
        Ok(Encoded::Bytes)
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Change<V>, SerdeError> {
        let Some((&flags, mut rest)) = bytes.and_then(<[u8]>::split_first) else {
            return Err(self.corrupt("a table change is null or empty"));
        };
        if flags & !(HAS_NEW | HAS_OLD | NEW_IS_NULL | OLD_IS_NULL) != 0 {
            return Err(self.corrupt(&format!("a table change starts with the unknown flags {flags:#04x}")));
        }
        let mut new = None;
        if flags & HAS_NEW != 0 {
            let Some((len, tail)) = rest.split_first_chunk::<4>() else {
                return Err(self.corrupt("a table change is cut short in its length"));
            };
            let len = u32::from_be_bytes(*len) as usize;
            if tail.len() < len {
                return Err(self.corrupt("a table change is shorter than its new value's length"));
            }
            let (value, tail) = tail.split_at(len);
            new = Some(self.value(flags & NEW_IS_NULL != 0, value)?);
            rest = tail;
        }
        let old = if flags & HAS_OLD != 0 {
            Some(self.value(flags & OLD_IS_NULL != 0, rest)?)
        } else if rest.is_empty() {
            None
        } else {
            return Err(self.corrupt("a table change has bytes after its values"));
        };
        Ok(Change { new, old })
    }

    fn name(&self) -> String {
        format!("change<{}>", self.inner.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serde::Serdes;
    use std::sync::Arc;

    fn round_trip(c: Change<String>) -> Change<String> {
        let serde = ChangeSerde { inner: Arc::new(Serdes::string()) };
        let mut out = Vec::new();
        assert_eq!(serde.serialize(&c, &mut out).unwrap(), Encoded::Bytes);
        serde.deserialize(Some(&out)).unwrap()
    }

    #[test]
    fn every_shape_of_change_survives_the_repartition_topic() {
        for c in [
            Change::new(Some("new".to_string()), Some("old".to_string())),
            Change::new(Some(String::new()), None),
            Change::new(None, Some("old".to_string())),
            Change::new(None, Some(String::new())),
            Change::new(None, None),
        ] {
            assert_eq!(round_trip(c.clone()), c);
        }
        let units = ChangeSerde { inner: Arc::new(Serdes::unit()) };
        for c in [Change::new(Some(()), Some(())), Change::new(Some(()), None), Change::new(None, Some(()))] {
            let mut out = Vec::new();
            units.serialize(&c, &mut out).unwrap();
            assert_eq!(units.deserialize(Some(&out)).unwrap(), c);
        }
    }

    #[test]
    fn bytes_rivulet_did_not_write_are_refused_with_the_serde_named() {
        let serde: ChangeSerde<String> = ChangeSerde { inner: Arc::new(Serdes::string()) };
        for bad in [&b""[..], &[16][..], &[1, 0, 0][..], &[1, 0, 0, 0, 9, b'x'][..], &[0, b'x'][..], &[10, b'x'][..]] {
            let e = serde.deserialize(Some(bad)).unwrap_err();
            assert_eq!(e.serde, "change<string>", "{bad:?}");
            assert!(e.reason.contains("internal repartition topics"), "{e}");
        }
        assert!(serde.deserialize(None).is_err());
    }
}
