//! Confluent's wire format: a magic byte `0`, the schema id as 4 bytes
//! big-endian, then the encoded record; for Protobuf, the message indexes
//! (which message of the .proto file) come between the id and the message.
//! Confluent's `AbstractKafkaSchemaSerDe` (magic byte, id) and
//! `MessageIndexes` (zig-zag varints, `[0]` written as the single byte `0`)
//! define it.

/// The first byte of every record in the wire format.
pub(crate) const MAGIC_BYTE: u8 = 0;

/// Appends the header: the magic byte and `id`.
pub(crate) fn write_header(id: u32, out: &mut Vec<u8>) {
    out.push(MAGIC_BYTE);
    out.extend_from_slice(&id.to_be_bytes());
}

/// The schema id and the rest of a record in the wire format.
pub(crate) fn read_header(bytes: &[u8]) -> Result<(u32, &[u8]), String> {
    match bytes {
        [MAGIC_BYTE, a, b, c, d, rest @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), rest)),
        [MAGIC_BYTE, ..] => Err(format!(
            "{} bytes, fewer than the 5 of the Schema Registry header (magic byte, schema id)",
            bytes.len()
        )),
        [first, ..] => Err(format!(
            "unknown magic byte {first}: not in the Schema Registry wire format (which starts with byte 0)"
        )),
        [] => Err("no bytes: not in the Schema Registry wire format".to_string()),
    }
}

/// Appends `n` as a zig-zag varint (Protobuf's `sint32`, Kafka's
/// `ByteUtils.writeVarint`).
fn write_varint(n: i32, out: &mut Vec<u8>) {
    let mut v = ((n << 1) ^ (n >> 31)) as u32;
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a zig-zag varint from the front of `bytes`, advancing it.
fn read_varint(bytes: &mut &[u8]) -> Result<i32, String> {
    let mut v: u32 = 0;
    for shift in (0..35).step_by(7) {
        let (&b, rest) = bytes.split_first().ok_or("the message indexes end in the middle of a varint")?;
        *bytes = rest;
        v |= u32::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(((v >> 1) as i32) ^ -((v & 1) as i32));
        }
    }
    Err("a varint of the message indexes is longer than 5 bytes".to_string())
}

/// Appends the Protobuf message indexes: the path of the message in the
/// .proto file (`[0]` is the first top-level message), as a count and
/// the indexes, zig-zag varints; `[0]` is written as the single byte `0`.
pub(crate) fn write_message_indexes(indexes: &[i32], out: &mut Vec<u8>) {
    if indexes == [0] {
        out.push(0);
        return;
    }
    write_varint(indexes.len() as i32, out);
    for &i in indexes {
        write_varint(i, out);
    }
}

/// Reads the Protobuf message indexes from the front of `bytes`; a count of
/// 0 means `[0]`.
pub(crate) fn read_message_indexes(bytes: &mut &[u8]) -> Result<Vec<i32>, String> {
    let count = read_varint(bytes)?;
    if count == 0 {
        return Ok(vec![0]);
    }
    if !(1..=100).contains(&count) {
        return Err(format!("{count} message indexes: not a Protobuf message path"));
    }
    (0..count).map(|_| read_varint(bytes)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_magic_byte_and_big_endian_id() {
        let mut out = Vec::new();
        write_header(0x0102_0304, &mut out);
        out.extend_from_slice(b"x");
        assert_eq!(out, [0, 1, 2, 3, 4, b'x']);
        assert_eq!(read_header(&out), Ok((0x0102_0304, &b"x"[..])));
    }

    #[test]
    fn bad_headers_say_what_is_wrong() {
        assert!(read_header(&[1, 0, 0, 0, 1]).unwrap_err().contains("unknown magic byte 1"));
        assert!(read_header(&[0, 0, 1]).unwrap_err().contains("3 bytes"));
        assert!(read_header(&[]).is_err());
    }

    /// Byte-exact against Confluent's encoding (MessageIndexes.toByteArray,
    /// as confluent-kafka-python's `_MessageIndexes` writes it too).
    #[test]
    fn message_indexes_are_zigzag_varints_with_the_zero_shorthand() {
        let cases: [(&[i32], &[u8]); 5] = [
            (&[0], &[0]),
            (&[1], &[2, 2]),
            (&[0, 1], &[4, 0, 2]),
            (&[2, 0, 3], &[6, 4, 0, 6]),
            (&[64], &[2, 0x80, 0x01]),
        ];
        for (indexes, bytes) in cases {
            let mut out = Vec::new();
            write_message_indexes(indexes, &mut out);
            assert_eq!(out, bytes, "{indexes:?}");
            let mut input = bytes;
            assert_eq!(read_message_indexes(&mut input).unwrap(), indexes);
            assert!(input.is_empty());
        }
    }

    #[test]
    fn truncated_indexes_are_an_error() {
        let mut input: &[u8] = &[4, 0];
        assert!(read_message_indexes(&mut input).is_err());
        let mut input: &[u8] = &[0x80];
        assert!(read_message_indexes(&mut input).is_err());
    }
}
