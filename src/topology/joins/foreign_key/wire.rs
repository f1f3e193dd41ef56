//! The records of the subscription and response topics, and how they
//! are written (Kafka Streams' `SubscriptionWrapper` and
//! `SubscriptionResponseWrapper` and their serdes).

use super::*;

/// The 128-bit hash of a left value's serialized bytes.
pub(super) type Hash = [u8; 16];

/// What a subscription asks of the right side: Kafka Streams'
/// `SubscriptionWrapper.Instruction`, with its codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Instruction {
    /// Unsubscribe; no answer (the new foreign key answers).
    DeleteKeyNoPropagate = 0,
    /// Unsubscribe and answer with no right value.
    DeleteKeyAndPropagate = 1,
    /// Subscribe; answer with the right value, or with none.
    PropagateNullIfNoFkValAvailable = 2,
    /// Subscribe; answer only when there is a right value.
    PropagateOnlyIfFkValAvailable = 3,
}

impl Instruction {
    pub(super) fn from_code(code: u8) -> Option<Instruction> {
        Some(match code {
            0 => Instruction::DeleteKeyNoPropagate,
            1 => Instruction::DeleteKeyAndPropagate,
            2 => Instruction::PropagateNullIfNoFkValAvailable,
            3 => Instruction::PropagateOnlyIfFkValAvailable,
            _ => return None,
        })
    }
}

/// A subscription of the left key `primary_key` (Kafka Streams'
/// `SubscriptionWrapper`); `hash` is `None` for a deleted left row.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Subscription<K> {
    pub(super) instruction: Instruction,
    pub(super) hash: Option<Hash>,
    pub(super) primary_key: K,
}

/// An answer to the left key it is sent to (Kafka Streams'
/// `SubscriptionResponseWrapper`): the hash of the left value it answers,
/// and the right value (`None`: the foreign key has no row).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Response<VO> {
    pub(super) hash: Option<Hash>,
    pub(super) foreign: Option<VO>,
}

/// The format version both internal topics start with.
pub(super) const VERSION: u8 = 0;
pub(super) const HAS_HASH: u8 = 1;
/// Subscription: the primary key's serde writes it as a Kafka null.
pub(super) const KEY_IS_NULL: u8 = 2;
/// Response: a right value follows.
pub(super) const HAS_FOREIGN: u8 = 2;
/// Response: the right value's serde writes it as a Kafka null.
pub(super) const FOREIGN_IS_NULL: u8 = 4;

pub(super) fn corrupt(serde: &str, what: &str) -> SerdeError {
    SerdeError::new(serde, format!("{what}; only rivulet itself may write to a foreign-key join's internal topics"))
}

/// Reads `[version][flags][hash?]` and returns the flags, the hash and the rest.
pub(super) fn read_header<'a>(
    serde: &str,
    bytes: Option<&'a [u8]>,
    known: u8,
) -> Result<(u8, Option<Hash>, &'a [u8]), SerdeError> {
    let Some([version, flags, rest @ ..]) = bytes else {
        return Err(corrupt(serde, "a record is null or shorter than its header"));
    };
    if *version != VERSION {
        return Err(corrupt(serde, &format!("a record has format version {version}, this rivulet reads {VERSION}")));
    }
    if flags & !known != 0 {
        return Err(corrupt(serde, &format!("a record has the unknown flags {flags:#04x}")));
    }
    if flags & HAS_HASH == 0 {
        return Ok((*flags, None, rest));
    }
    let Some((hash, rest)) = rest.split_first_chunk::<16>() else {
        return Err(corrupt(serde, "a record is cut short in its hash"));
    };
    Ok((*flags, Some(*hash), rest))
}

pub(super) fn write_header(out: &mut Vec<u8>, hash: &Option<Hash>) -> usize {
    out.push(VERSION);
    let flags_at = out.len();
    out.push(0);
    if let Some(hash) = hash {
        out[flags_at] |= HAS_HASH;
        out.extend_from_slice(hash);
    }
    flags_at
}

/// `[version 0][flags: 1 hash, 2 null key][hash: 16 bytes][instruction][primary key]`.
pub(super) struct SubscriptionSerde<K> {
    pub(super) key: Arc<dyn Serde<K>>,
}

impl<K: 'static> Serde<Subscription<K>> for SubscriptionSerde<K> {
    fn serialize(&self, value: &Subscription<K>, out: &mut Vec<u8>) -> Result<Encoded, SerdeError> {
        let flags_at = write_header(out, &value.hash);
        out.push(value.instruction as u8);
        if append_value(self.key.as_ref(), &value.primary_key, out)? {
            out[flags_at] |= KEY_IS_NULL;
        }
        Ok(Encoded::Bytes)
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Subscription<K>, SerdeError> {
        let name = self.name();
        let (flags, hash, rest) = read_header(&name, bytes, HAS_HASH | KEY_IS_NULL)?;
        let Some((&code, key)) = rest.split_first() else {
            return Err(corrupt(&name, "a subscription is cut short before its instruction"));
        };
        let instruction = Instruction::from_code(code)
            .ok_or_else(|| corrupt(&name, &format!("a subscription has the unknown instruction {code}")))?;
        let primary_key = if flags & KEY_IS_NULL != 0 {
            if !key.is_empty() {
                return Err(corrupt(&name, "a subscription has bytes for a null primary key"));
            }
            self.key.deserialize(None)?
        } else {
            self.key.deserialize(Some(key))?
        };
        Ok(Subscription { instruction, hash, primary_key })
    }

    fn name(&self) -> String {
        format!("subscription<{}>", self.key.name())
    }
}

/// `[version 0][flags: 1 hash, 2 right value, 4 null right value][hash: 16 bytes][right value]`.
pub(super) struct ResponseSerde<VO> {
    pub(super) foreign: Arc<dyn Serde<VO>>,
}

impl<VO: 'static> Serde<Response<VO>> for ResponseSerde<VO> {
    fn serialize(&self, value: &Response<VO>, out: &mut Vec<u8>) -> Result<Encoded, SerdeError> {
        let flags_at = write_header(out, &value.hash);
        if let Some(foreign) = &value.foreign {
            out[flags_at] |= HAS_FOREIGN;
            if append_value(self.foreign.as_ref(), foreign, out)? {
                out[flags_at] |= FOREIGN_IS_NULL;
            }
        }
        Ok(Encoded::Bytes)
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Response<VO>, SerdeError> {
        let name = self.name();
        let (flags, hash, rest) = read_header(&name, bytes, HAS_HASH | HAS_FOREIGN | FOREIGN_IS_NULL)?;
        let foreign = match (flags & HAS_FOREIGN != 0, flags & FOREIGN_IS_NULL != 0) {
            (true, false) => Some(self.foreign.deserialize(Some(rest))?),
            (true, true) if rest.is_empty() => Some(self.foreign.deserialize(None)?),
            (false, false) if rest.is_empty() => None,
            _ => return Err(corrupt(&name, "a response's right value does not match its flags")),
        };
        Ok(Response { hash, foreign })
    }

    fn name(&self) -> String {
        format!("subscription-response<{}>", self.foreign.name())
    }
}

/// `serde`'s bytes for `value` (empty for a Kafka null), or the error
/// naming what was written.
pub(super) fn bytes_of<T: 'static>(serde: &dyn Serde<T>, value: &T, what: &str) -> Result<Vec<u8>, ProcessError> {
    let mut out = Vec::new();
    append_value(serde, value, &mut out).map_err(|e| ProcessError::Serde { what: what.to_string(), source: e })?;
    Ok(out)
}

/// The subscription store's key prefix of a foreign key: its length as 4
/// bytes big-endian, then its bytes (Kafka Streams' `CombinedKeySchema`).
pub(super) fn prefix_of(fk: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + fk.len());
    out.extend_from_slice(&(fk.len() as u32).to_be_bytes());
    out.extend_from_slice(fk);
    out
}
