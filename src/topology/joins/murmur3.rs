//! MurmurHash3 x64 128-bit, as Kafka Streams' `state.internals.Murmur3`
//! (`hash128`, taken from Hive): the foreign-key join hashes the left
//! value's serialized bytes with it, so that a response computed for an
//! older value is recognised and dropped. The hash depends on the bytes
//! only (never on a per-process random state), so every instance and every
//! restart computes the same one; it is written into the subscription and
//! response topics as `h1` then `h2`, each 8 bytes big-endian.

/// Kafka Streams' `Murmur3.DEFAULT_SEED`.
const SEED: i64 = 104_729;

const C1: u64 = 0x87c3_7b91_1142_53d5;
const C2: u64 = 0x4cf5_ad43_2745_937f;

fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

fn mix_k1(k1: u64) -> u64 {
    k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2)
}

fn mix_k2(k2: u64) -> u64 {
    k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1)
}

/// Little-endian value of up to 8 bytes.
fn le(bytes: &[u8]) -> u64 {
    bytes.iter().rev().fold(0, |acc, &b| (acc << 8) | u64::from(b))
}

/// The 128-bit hash of `data` with `seed`, as `(h1, h2)`.
fn hash128_seeded(data: &[u8], seed: i64) -> (u64, u64) {
    let (mut h1, mut h2) = (seed as u64, seed as u64);
    let mut blocks = data.chunks_exact(16);
    for block in &mut blocks {
        let (k1, k2) = (le(&block[..8]), le(&block[8..]));
        h1 ^= mix_k1(k1);
        h1 = h1.rotate_left(27).wrapping_add(h2).wrapping_mul(5).wrapping_add(0x52dc_e729);
        h2 ^= mix_k2(k2);
        h2 = h2.rotate_left(31).wrapping_add(h1).wrapping_mul(5).wrapping_add(0x3849_5ab5);
    }
    let tail = blocks.remainder();
    if tail.len() > 8 {
        h2 ^= mix_k2(le(&tail[8..]));
    }
    if !tail.is_empty() {
        h1 ^= mix_k1(le(&tail[..tail.len().min(8)]));
    }
    let len = data.len() as u64;
    h1 ^= len;
    h2 ^= len;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    (h1, h2)
}

/// The hash of `data` as Kafka Streams' `Murmur3.hash128(data)`, as 16
/// bytes: `h1` then `h2`, big-endian.
pub(crate) fn hash128(data: &[u8]) -> [u8; 16] {
    let (h1, h2) = hash128_seeded(data, SEED);
    let mut out = [0; 16];
    out[..8].copy_from_slice(&h1.to_be_bytes());
    out[8..].copy_from_slice(&h2.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka Streams' `Murmur3Test#testMurmur3_128` (seed 123).
    #[test]
    fn the_hash_is_kafka_streams_murmur3_128() {
        let cases: [(&[u8], i64, i64); 6] = [
            (b"21", 5857341059704281894, -5288187638297930763),
            (b"foobar", -351361463397418609, 8959716011862540668),
            (b"a-little-bit-long-string", 8836256500583638442, -198172363548498523),
            (b"a-little-bit-longer-string", 1838346159335108511, 8794688210320490705),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -4024021876037397259, -1482317706335141238),
            (b"abc", 1489494923063836066, -5440978547625122829),
        ];
        for (data, h1, h2) in cases {
            assert_eq!(hash128_seeded(data, 123), (h1 as u64, h2 as u64), "{}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn the_hash_covers_every_length_and_the_default_seed() {
        let data: Vec<u8> = (0..40u8).map(|b| b.wrapping_mul(37)).collect();
        let hashes: std::collections::BTreeSet<[u8; 16]> = (0..=data.len()).map(|n| hash128(&data[..n])).collect();
        assert_eq!(hashes.len(), data.len() + 1, "every prefix hashes differently");
        assert_eq!(hash128(b"abc"), hash128(b"abc"));
        assert_ne!(hash128(b"abc")[..8], hash128_seeded(b"abc", 123).0.to_be_bytes());
    }
}
