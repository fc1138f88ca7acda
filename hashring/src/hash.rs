//! The version-stable hashing scheme every ring, slot map and jump lookup shares.
//!
//! A value's hash is XXH3-64 (seeded with the ring's seed) of the byte stream its [`Hash`]
//! implementation writes, with every integer written little-endian and `usize`/`isize` widened to
//! 64 bits. The stream is therefore the same on every platform and in every process, and it only
//! changes if a type's own `Hash` impl changes what it writes (std's `str` writes its UTF-8 bytes
//! followed by `0xff`; slices write their length first). Golden tests pin the scheme, so a release
//! that changed any of it would fail them.

use std::hash::{Hash, Hasher};

use xxhash_rust::xxh3::{Xxh3, xxh3_64_with_seed};

/// Bytes buffered on the stack before the hasher switches to streaming. Keys this short (the
/// usual case) are hashed with one call to the one-shot XXH3, which is faster than streaming.
const INLINE: usize = 64;

/// A [`Hasher`] that feeds XXH3-64 the platform-independent byte stream described in the
/// module docs.
pub(crate) struct StableHasher {
    seed: u64,
    buf: [u8; INLINE],
    len: usize,
    stream: Option<Box<Xxh3>>,
}

impl StableHasher {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            seed,
            buf: [0; INLINE],
            len: 0,
            stream: None,
        }
    }
}

impl Hasher for StableHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        if self.stream.is_none() && self.len + bytes.len() <= INLINE {
            self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
            return;
        }
        let stream = self.stream.get_or_insert_with(|| {
            let mut stream = Box::new(Xxh3::with_seed(self.seed));
            stream.update(&self.buf[..self.len]);
            stream
        });
        stream.update(bytes);
    }

    #[inline]
    fn finish(&self) -> u64 {
        match &self.stream {
            None => xxh3_64_with_seed(&self.buf[..self.len], self.seed),
            Some(stream) => stream.digest(),
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.write(&[i]);
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.write(&i.to_le_bytes());
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.write(&i.to_le_bytes());
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.write(&i.to_le_bytes());
    }
    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.write(&i.to_le_bytes());
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

/// Hashes `value` with the stable scheme: XXH3-64 with `seed` over the little-endian byte stream
/// that `value`'s [`Hash`] impl writes.
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

/// The position of virtual node `index` of a node whose identity hashes to `node_hash`.
#[inline]
pub(crate) fn point_hash(seed: u64, node_hash: u64, index: u32) -> u64 {
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&node_hash.to_le_bytes());
    bytes[8..].copy_from_slice(&index.to_le_bytes());
    xxh3_64_with_seed(&bytes, seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_matches_one_shot_for_long_keys() {
        let long = "x".repeat(1000);
        let mut bytes = long.as_bytes().to_vec();
        bytes.push(0xff);
        assert_eq!(stable_hash(7, long.as_str()), xxh3_64_with_seed(&bytes, 7));
    }

    #[test]
    fn integers_are_little_endian_and_usize_is_widened() {
        assert_eq!(stable_hash(0, &1u32), xxh3_64_with_seed(&[1, 0, 0, 0], 0));
        assert_eq!(stable_hash(0, &5usize), stable_hash(0, &5u64));
        assert_eq!(stable_hash(0, &-1isize), stable_hash(0, &-1i64));
    }
}
