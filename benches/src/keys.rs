//! Key workloads.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Length of every ring benchmark key: `"k"` and 15 lowercase hex digits.
pub const KEY_LEN: usize = 16;

/// Ring benchmark keys stored back to back in one buffer, so a lookup's cost is the ring's, not
/// a cache miss on a scattered heap string.
#[derive(Debug, Clone)]
pub struct RingKeys {
    text: String,
}

impl RingKeys {
    /// `count` keys, `"k"` and the low 60 bits of a `StdRng(seed)` draw as 15 hex digits.
    pub fn new(count: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut text = String::with_capacity(count * KEY_LEN);
        for _ in 0..count {
            let v: u64 = rng.r#gen::<u64>() & ((1 << 60) - 1);
            text.push_str(&format!("k{v:015x}"));
        }
        Self { text }
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.text.len() / KEY_LEN
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Key `i`. No modulo or UTF-8 check here: the harness must not add cost to the lookups
    /// it times.
    ///
    /// # Panics
    ///
    /// If `i >= self.len()`.
    #[inline]
    pub fn get(&self, i: usize) -> &str {
        &self.text[i * KEY_LEN..(i + 1) * KEY_LEN]
    }
}
