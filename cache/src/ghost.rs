//! Ghosts: a lossy memory of keys the policy recently let go, by hash only.

/// Which of the policy's two ghosts: keys admission turned away, or keys main evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    TurnedAway = 0,
    Evicted = 1,
}

/// Two ghosts, each remembering about `len` recently let-go keys' hashes in 4 bytes each,
/// where `len` is given with each call (at most the slots they were created with): the policy
/// keeps it a share of the entries it holds, which for a cache bounded by weight is not known
/// in advance.
///
/// Each hash has one slot in each ghost, and a newer hash landing there overwrites the older
/// one: recently remembered keys are likely still there, older ones have likely been
/// overwritten (a key survives `n` later arrivals on its side with probability
/// `(1 - 1/len)^n`). That is an approximate FIFO with no queue or index, so remembering and
/// recalling are one slot access each. A false recall needs two hashes to share a slot and 31
/// fingerprint bits. A hash's slots in the two ghosts sit side by side, so a miss, which asks
/// both, reads one cache line.
#[derive(Debug)]
pub(crate) struct Ghosts {
    slots: Box<[[u32; 2]]>,
}

impl Ghosts {
    /// Ghosts of up to `len` slots each (at least one).
    pub(crate) fn new(len: usize) -> Self {
        Self {
            slots: vec![[0; 2]; len.max(1)].into_boxed_slice(),
        }
    }

    /// The slot index and the (non-zero) fingerprint of `hash`. The cache's shard index and
    /// table buckets come from `hash`'s top and low bits; mixing first keeps ghosts of one
    /// shard spread over all their slots.
    fn place(&self, hash: u64, len: usize) -> (usize, u32) {
        let len = len.clamp(1, self.slots.len()) as u64;
        let mixed = hash.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let index = ((mixed >> 32) * len) >> 32;
        (index as usize, (mixed as u32) | 1)
    }

    /// Remembers `hash` on `side`, in ghosts of `len` slots.
    pub(crate) fn remember(&mut self, side: Side, hash: u64, len: usize) {
        let (i, fingerprint) = self.place(hash, len);
        self.slots[i][side as usize] = fingerprint;
    }

    /// Starts loading the slot that holds `hash` when the ghost has `len` slots (see
    /// [`crate::prefetch`]).
    pub(crate) fn prefetch(&self, hash: u64, len: usize) {
        crate::prefetch::prefetch(&self.slots[self.place(hash, len).0]);
    }

    /// Which ghost of `len` slots remembers `hash`, asking the turned-away side first; that
    /// side forgets it, so one departure is recalled at most once.
    pub(crate) fn recall(&mut self, hash: u64, len: usize) -> Option<Side> {
        let (i, fingerprint) = self.place(hash, len);
        let pair = &mut self.slots[i];
        let side = if pair[0] == fingerprint {
            Side::TurnedAway
        } else if pair[1] == fingerprint {
            Side::Evicted
        } else {
            return None;
        };
        pair[side as usize] = 0;
        Some(side)
    }

    /// Grows them to at least `len` slots each, if they have fewer (forgetting everything).
    pub(crate) fn ensure_len(&mut self, len: usize) {
        if len > self.slots.len() {
            *self = Self::new(len);
        }
    }

    /// The bytes its slots take.
    pub(crate) fn memory(&self) -> usize {
        std::mem::size_of_val(&*self.slots)
    }

    /// Slots per ghost.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        self.slots.fill([0; 2]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(h: u64) -> u64 {
        h.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    #[test]
    fn recalls_a_remembered_hash_once_on_its_side() {
        let mut g = Ghosts::new(64);
        g.remember(Side::Evicted, 42, 64);
        g.remember(Side::TurnedAway, 43, 64);
        assert_eq!(g.recall(7, 64), None);
        assert_eq!(g.recall(42, 64), Some(Side::Evicted));
        assert_eq!(g.recall(42, 64), None);
        assert_eq!(g.recall(43, 64), Some(Side::TurnedAway));
        assert_eq!(g.recall(43, 64), None);
    }

    #[test]
    fn the_two_sides_do_not_overwrite_each_other() {
        let mut g = Ghosts::new(64);
        g.remember(Side::TurnedAway, 1, 64);
        for h in 100..10_000u64 {
            g.remember(Side::Evicted, spread(h), 64);
        }
        assert_eq!(g.recall(1, 64), Some(Side::TurnedAway));
    }

    #[test]
    fn forgets_old_hashes_as_new_ones_arrive() {
        let mut g = Ghosts::new(64);
        g.remember(Side::Evicted, 1, 64);
        for h in 100..10_000u64 {
            g.remember(Side::Evicted, spread(h), 64);
        }
        assert_eq!(g.recall(1, 64), None);
        // The most recent ones are mostly still there.
        let recent = (9_990..10_000u64)
            .filter(|&h| g.recall(spread(h), 64) == Some(Side::Evicted))
            .count();
        assert!(recent >= 7, "only {recent} of the last 10 recalled");
    }

    #[test]
    fn a_shorter_length_uses_fewer_slots() {
        let mut g = Ghosts::new(1024);
        for h in 0..10_000u64 {
            g.remember(Side::TurnedAway, spread(h), 8);
        }
        assert_eq!(g.slots.iter().filter(|s| s[0] != 0).count(), 8);
        g.clear();
        assert!(g.slots.iter().all(|s| *s == [0; 2]));
    }
}
