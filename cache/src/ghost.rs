//! Ghosts: a lossy memory of keys the policy recently let go, by hash only.

/// Remembers about `len` recently evicted keys' hashes, in 4 bytes each, where `len` is given
/// with each call (at most the slots it was created with): the policy keeps it a share of the
/// entries it holds, which for a cache bounded by weight is not known in advance.
///
/// Each hash has one slot, and a newer hash landing there overwrites the older one: recently
/// remembered keys are likely still there, older ones have likely been overwritten (a key
/// survives `n` later evictions with probability `(1 - 1/len)^n`). That is an approximate FIFO
/// with no queue or index, so remembering and recalling are one slot access each. A false
/// recall needs two hashes to share a slot and 31 fingerprint bits.
#[derive(Debug)]
pub(crate) struct Ghost {
    slots: Box<[u32]>,
}

impl Ghost {
    /// A ghost of up to `len` slots (at least one).
    pub(crate) fn new(len: usize) -> Self {
        Self {
            slots: vec![0; len.max(1)].into_boxed_slice(),
        }
    }

    /// The slot index and the (non-zero) fingerprint of `hash`. The cache's shard index and
    /// table slots come from `hash`'s top and low bits; mixing first keeps ghosts of one shard
    /// spread over all their slots.
    fn place(&self, hash: u64, len: usize) -> (usize, u32) {
        let len = len.clamp(1, self.slots.len()) as u64;
        let mixed = hash.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let index = ((mixed >> 32) * len) >> 32;
        (index as usize, (mixed as u32) | 1)
    }

    /// Remembers `hash` in a ghost of `len` slots.
    pub(crate) fn remember(&mut self, hash: u64, len: usize) {
        let (i, fingerprint) = self.place(hash, len);
        self.slots[i] = fingerprint;
    }

    /// Whether `hash` is remembered in a ghost of `len` slots; it is forgotten either way, so
    /// one eviction is recalled at most once.
    pub(crate) fn recall(&mut self, hash: u64, len: usize) -> bool {
        let (i, fingerprint) = self.place(hash, len);
        let found = self.slots[i] == fingerprint;
        if found {
            self.slots[i] = 0;
        }
        found
    }

    /// Grows it to at least `len` slots, if it has fewer (forgetting everything).
    pub(crate) fn ensure_len(&mut self, len: usize) {
        if len > self.slots.len() {
            *self = Self::new(len);
        }
    }

    /// Its slots.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        self.slots.fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recalls_a_remembered_hash_once() {
        let mut g = Ghost::new(64);
        g.remember(42, 64);
        assert!(!g.recall(7, 64));
        assert!(g.recall(42, 64));
        assert!(!g.recall(42, 64));
    }

    #[test]
    fn forgets_old_hashes_as_new_ones_arrive() {
        let mut g = Ghost::new(64);
        g.remember(1, 64);
        for h in 100..10_000u64 {
            g.remember(h.wrapping_mul(0x2545_f491_4f6c_dd1d), 64);
        }
        assert!(!g.recall(1, 64));
        // The most recent ones are mostly still there.
        let recent = (9_990..10_000u64)
            .filter(|h| g.recall(h.wrapping_mul(0x2545_f491_4f6c_dd1d), 64))
            .count();
        assert!(recent >= 7, "only {recent} of the last 10 recalled");
    }

    #[test]
    fn a_shorter_length_uses_fewer_slots() {
        let mut g = Ghost::new(1024);
        for h in 0..10_000u64 {
            g.remember(h.wrapping_mul(0x2545_f491_4f6c_dd1d), 8);
        }
        assert_eq!(g.slots.iter().filter(|&&s| s != 0).count(), 8);
        g.clear();
        assert!(g.slots.iter().all(|&s| s == 0));
    }
}
