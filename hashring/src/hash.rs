//! The version-stable hashing scheme every ring, slot map and jump lookup shares.
//!
//! A hasher's state starts as the seed. Each byte-slice write replaces the state with XXH3-64 of
//! the bytes, seeded with the state; each integer write (little-endian semantics, `usize` and
//! `isize` widened to 64 bits, 128-bit integers as their low then high half) replaces it with
//! `fold(state ^ value)`, where `fold(x)` is the high half xor the low half of the 128-bit
//! product `x × 0x9E3779B97F4A7C15`. The result is XXH3's avalanche of the final state:
//! `h ^= h >> 37; h *= 0x165667919E3779F9; h ^= h >> 32`.
//!
//! The stream of writes is the value's [`Hash`] impl's (std's `str` writes its UTF-8 bytes and
//! then the byte `0xff`; slices write their length first), so a key hashes the same on every
//! platform and in every process, and changes only if a type's own `Hash` impl changes what it
//! writes. One exception comes from std itself: slices and arrays of integers wider than a byte
//! (`[u32]`, `Vec<u64>`, `[usize; 4]`) are written as one block of native-endian bytes, so such
//! keys hash differently on big-endian or 32-bit targets. Keys and node identities built from
//! strings, byte slices, integers, `bool`, `char` and tuples or structs of these are portable.
//! Golden tests, cross-checked against an independent implementation, pin the scheme. What std
//! writes for a `str` (the `0xff`) and a slice's length goes through `Hasher` methods std has
//! not stabilised (`write_str`, `write_length_prefix`), whose defaults a future Rust release
//! could change; the golden tests, run on each toolchain, would show it.
//! A string key costs one XXH3 call plus two multiplies, about a third of a buffering hasher.

use std::hash::{Hash, Hasher};

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// The multiplier of integer folds (the golden ratio in 64 bits).
const FOLD: u64 = 0x9e37_79b9_7f4a_7c15;

/// XXH3's final mixing multiplier.
const AVALANCHE: u64 = 0x1656_6791_9e37_79f9;

#[inline]
fn fold(x: u64) -> u64 {
    let product = u128::from(x) * u128::from(FOLD);
    (product as u64) ^ ((product >> 64) as u64)
}

/// A [`Hasher`] implementing the scheme in the module docs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StableHasher {
    state: u64,
}

impl StableHasher {
    pub(crate) fn new(seed: u64) -> Self {
        Self { state: seed }
    }
}

impl Hasher for StableHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.state = xxh3_64_with_seed(bytes, self.state);
    }

    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.state;
        h ^= h >> 37;
        h = h.wrapping_mul(AVALANCHE);
        h ^ (h >> 32)
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.state = fold(self.state ^ i);
    }
    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.write_u64(i as u64);
        self.write_u64((i >> 64) as u64);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    #[inline]
    fn write_i8(&mut self, i: i8) {
        self.write_u8(i as u8);
    }
    #[inline]
    fn write_i16(&mut self, i: i16) {
        self.write_u16(i as u16);
    }
    #[inline]
    fn write_i32(&mut self, i: i32) {
        self.write_u32(i as u32);
    }
    #[inline]
    fn write_i64(&mut self, i: i64) {
        self.write_u64(i as u64);
    }
    #[inline]
    fn write_i128(&mut self, i: i128) {
        self.write_u128(i as u128);
    }
    #[inline]
    fn write_isize(&mut self, i: isize) {
        self.write_u64(i as i64 as u64);
    }
}

/// Hashes `value` with the stable scheme.
///
/// The state starts as `seed`. Each byte-slice write replaces it with XXH3-64 of the bytes,
/// seeded with the state; each integer write (`usize`/`isize` widened to 64 bits, 128-bit
/// integers as their low then high half) replaces it with `fold(state ^ value)`, the high half
/// xor the low half of the 128-bit product with `0x9E3779B97F4A7C15`. The result is XXH3's
/// avalanche of the final state (`h ^= h >> 37; h *= 0x165667919E3779F9; h ^= h >> 32`). The
/// writes are those of `value`'s [`Hash`] impl: std's `str` writes its bytes, then `0xff`.
///
/// Portable across platforms for strings, byte slices, integers, `bool`, `char`, and tuples or
/// structs of these; std writes slices of wider integers as native-endian bytes, which are not.
/// Stable across Rust releases as long as std's `Hash` impls write what they write today: the
/// `0xff` after a `str` and a slice's length go through `Hasher` methods std has not
/// stabilised, whose defaults it could change (the golden tests would show it).
///
/// This is the hash [`HashRing::get`](crate::HashRing::get) computes for a key, so a service
/// can hash once and call [`HashRing::get_hash`](crate::HashRing::get_hash) on several rings.
///
/// # Examples
///
/// ```
/// use shardkit_hashring::{HashRing, stable_hash};
///
/// let mut ring = HashRing::new();
/// ring.add("node-a")?;
/// ring.add("node-b")?;
/// let hash = stable_hash(ring.seed(), "user:42");
/// assert_eq!(ring.get_hash(hash), ring.get("user:42"));
/// # Ok::<(), shardkit_hashring::Error>(())
/// ```
#[inline]
pub fn stable_hash<T: Hash + ?Sized>(seed: u64, value: &T) -> u64 {
    let mut hasher = StableHasher::new(seed);
    value.hash(&mut hasher);
    hasher.finish()
}

/// The position of virtual node `index` of a node whose identity hashes to `node_hash`: the
/// `index + 1`-th output of SplitMix64 seeded with the identity hash. (The ring's seed is
/// already in `node_hash`.) Cheap enough that a ring of 160,000 points hashes them in well
/// under a millisecond, twice over.
#[inline]
pub(crate) fn point_hash(node_hash: u64, index: u32) -> u64 {
    let mut z = node_hash.wrapping_add((u64::from(index) + 1).wrapping_mul(FOLD));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avalanche(mut h: u64) -> u64 {
        h ^= h >> 37;
        h = h.wrapping_mul(AVALANCHE);
        h ^ (h >> 32)
    }

    #[test]
    fn strings_are_their_bytes_then_0xff() {
        let long = "x".repeat(1000);
        let state = fold(xxh3_64_with_seed(long.as_bytes(), 7) ^ 0xff);
        assert_eq!(stable_hash(7, long.as_str()), avalanche(state));
    }

    #[test]
    fn integers_are_widened_and_folded() {
        assert_eq!(stable_hash(0, &1u32), avalanche(fold(1)));
        assert_eq!(stable_hash(0, &5usize), stable_hash(0, &5u64));
        assert_eq!(stable_hash(0, &-1isize), stable_hash(0, &-1i64));
        assert_eq!(stable_hash(3, &7u8), stable_hash(3, &7u64));
    }
}
