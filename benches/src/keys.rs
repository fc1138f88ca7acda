//! Key workloads.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Length of every ring benchmark key: `"k"` and 15 lowercase hex digits.
pub const KEY_LEN: usize = 16;

/// Ring benchmark keys stored back to back in one buffer, so a lookup's cost is the ring's, not
/// a cache miss on a scattered heap string.
#[derive(Debug, Clone)]
pub struct RingKeys {
    bytes: Vec<u8>,
}

impl RingKeys {
    /// `count` keys, `"k"` and the low 60 bits of a `StdRng(seed)` draw as 15 hex digits.
    pub fn new(count: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut bytes = Vec::with_capacity(count * KEY_LEN);
        for _ in 0..count {
            let v: u64 = rng.r#gen::<u64>() & ((1 << 60) - 1);
            bytes.extend_from_slice(format!("k{v:015x}").as_bytes());
        }
        Self { bytes }
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.bytes.len() / KEY_LEN
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Key `i` (wrapping).
    #[inline]
    pub fn get(&self, i: usize) -> &str {
        let at = (i % self.len()) * KEY_LEN;
        // Keys are ASCII by construction.
        std::str::from_utf8(&self.bytes[at..at + KEY_LEN]).unwrap_or_default()
    }
}
