//! The Kafka wire format's primitive types for flexible message versions
//! (KIP-482): big-endian integers, unsigned varints, compact strings and
//! arrays (length + 1, 0 for null), nullable structs (an `i8` of -1 or 1
//! before the struct) and tagged-field sections.
//!
//! `kafka-protocol` has these, but behind crate-private traits; the
//! streams group messages it lacks are written with these instead.

/// Appends wire values to a buffer.
#[derive(Debug, Default)]
pub(super) struct Writer {
    pub(super) buf: Vec<u8>,
}

impl Writer {
    pub(super) fn i8(&mut self, v: i8) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(super) fn i16(&mut self, v: i16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(super) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(super) fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(super) fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(super) fn bool(&mut self, v: bool) {
        self.buf.push(u8::from(v));
    }

    pub(super) fn uvarint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.buf.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    /// A compact length: `len + 1` (0 stands for null).
    fn compact_len(&mut self, len: usize) {
        // Kafka's lengths are i32; nothing rivulet sends comes near.
        self.uvarint(u32::try_from(len).unwrap_or(u32::MAX - 1) + 1);
    }

    pub(super) fn string(&mut self, s: &str) {
        self.compact_len(s.len());
        self.buf.extend_from_slice(s.as_bytes());
    }

    pub(super) fn nullable_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.string(s),
            None => self.uvarint(0),
        }
    }

    /// A compact array: its length, then `item` on each element.
    pub(super) fn array<T>(&mut self, items: &[T], mut item: impl FnMut(&mut Self, &T)) {
        self.compact_len(items.len());
        for i in items {
            item(self, i);
        }
    }

    /// A nullable compact array.
    pub(super) fn nullable_array<T>(&mut self, items: Option<&[T]>, item: impl FnMut(&mut Self, &T)) {
        match items {
            Some(items) => self.array(items, item),
            None => self.uvarint(0),
        }
    }

    /// A nullable struct: -1 for null, else 1 and the struct.
    pub(super) fn nullable_struct<T>(&mut self, value: Option<&T>, write: impl FnOnce(&mut Self, &T)) {
        match value {
            Some(v) => {
                self.i8(1);
                write(self, v);
            }
            None => self.i8(-1),
        }
    }

    /// An empty tagged-field section (rivulet sends no tagged fields).
    pub(super) fn no_tagged_fields(&mut self) {
        self.uvarint(0);
    }
}

/// Reads wire values from a buffer; every read fails with a sentence
/// naming the field when the buffer is short or malformed.
#[derive(Debug)]
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// A decoding failure: what could not be read.
pub(super) type DecodeResult<T> = std::result::Result<T, String>;

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub(super) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> DecodeResult<&'a [u8]> {
        if self.remaining() < n {
            return Err(format!(
                "the response ends inside {what} (needs {n} more bytes at byte {}, has {})",
                self.pos,
                self.remaining()
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array_of<const N: usize>(&mut self, what: &str) -> DecodeResult<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    pub(super) fn i8(&mut self, what: &str) -> DecodeResult<i8> {
        Ok(i8::from_be_bytes(self.array_of(what)?))
    }

    pub(super) fn i16(&mut self, what: &str) -> DecodeResult<i16> {
        Ok(i16::from_be_bytes(self.array_of(what)?))
    }

    pub(super) fn u16(&mut self, what: &str) -> DecodeResult<u16> {
        Ok(u16::from_be_bytes(self.array_of(what)?))
    }

    pub(super) fn i32(&mut self, what: &str) -> DecodeResult<i32> {
        Ok(i32::from_be_bytes(self.array_of(what)?))
    }

    pub(super) fn i64(&mut self, what: &str) -> DecodeResult<i64> {
        Ok(i64::from_be_bytes(self.array_of(what)?))
    }

    pub(super) fn bool(&mut self, what: &str) -> DecodeResult<bool> {
        Ok(self.i8(what)? != 0)
    }

    pub(super) fn uvarint(&mut self, what: &str) -> DecodeResult<u32> {
        let mut value: u32 = 0;
        for shift in (0..35).step_by(7) {
            let [b] = self.array_of::<1>(what)?;
            value |= u32::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(format!("{what}: an unsigned varint longer than 5 bytes at byte {}", self.pos))
    }

    /// A compact length: `None` for null.
    fn compact_len(&mut self, what: &str) -> DecodeResult<Option<usize>> {
        Ok(match self.uvarint(what)? {
            0 => None,
            n => Some(n as usize - 1),
        })
    }

    pub(super) fn nullable_string(&mut self, what: &str) -> DecodeResult<Option<String>> {
        let Some(len) = self.compact_len(what)? else { return Ok(None) };
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map(Some).map_err(|e| format!("{what} is not UTF-8: {e}"))
    }

    pub(super) fn string(&mut self, what: &str) -> DecodeResult<String> {
        self.nullable_string(what)?.ok_or_else(|| format!("{what} is null, which its field does not allow"))
    }

    pub(super) fn nullable_array<T>(
        &mut self,
        what: &str,
        mut item: impl FnMut(&mut Self) -> DecodeResult<T>,
    ) -> DecodeResult<Option<Vec<T>>> {
        let Some(len) = self.compact_len(what)? else { return Ok(None) };
        // Every element takes at least a byte: a corrupt length cannot
        // make this allocate more than the buffer holds.
        if len > self.remaining() {
            return Err(format!("{what}: {len} elements announced, {} bytes left", self.remaining()));
        }
        let mut items = Vec::with_capacity(len);
        for _ in 0..len {
            items.push(item(self)?);
        }
        Ok(Some(items))
    }

    pub(super) fn array<T>(
        &mut self,
        what: &str,
        item: impl FnMut(&mut Self) -> DecodeResult<T>,
    ) -> DecodeResult<Vec<T>> {
        self.nullable_array(what, item)?.ok_or_else(|| format!("{what} is null, which its field does not allow"))
    }

    pub(super) fn nullable_struct<T>(
        &mut self,
        what: &str,
        read: impl FnOnce(&mut Self) -> DecodeResult<T>,
    ) -> DecodeResult<Option<T>> {
        match self.i8(what)? {
            -1 => Ok(None),
            1 => read(self).map(Some),
            other => Err(format!("{what}: a nullable struct marked {other} (neither -1 nor 1)")),
        }
    }

    /// Skips a tagged-field section: these messages define no tagged
    /// fields in version 0, and a later broker's unknown ones are ignored.
    pub(super) fn tagged_fields(&mut self, what: &str) -> DecodeResult<()> {
        let count = self.uvarint(what)?;
        for _ in 0..count {
            self.uvarint(what)?;
            let size = self.uvarint(what)? as usize;
            self.take(size, what)?;
        }
        Ok(())
    }
}
