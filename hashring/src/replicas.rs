//! Preference lists: the first `n` distinct nodes clockwise from a key.

use std::fmt;

use crate::ring::{HashRing, with_points};

/// How many chosen nodes are remembered inline before the iterator spills to the heap.
const INLINE: usize = 8;

/// The nodes already yielded, so each physical node is yielded once.
#[derive(Debug, Clone)]
struct Seen {
    inline: [u32; INLINE],
    len: usize,
    spill: Vec<u32>,
}

impl Seen {
    fn contains(&self, owner: u32) -> bool {
        self.inline[..self.len.min(INLINE)].contains(&owner) || self.spill.contains(&owner)
    }

    fn insert(&mut self, owner: u32) {
        if self.len < INLINE {
            self.inline[self.len] = owner;
        } else {
            self.spill.push(owner);
        }
        self.len += 1;
    }
}

/// Iterator over a key's preference list, from [`HashRing::replicas`]: the owner first, then
/// the next distinct nodes clockwise.
pub struct Replicas<'a, N> {
    ring: &'a HashRing<N>,
    next: usize,
    /// Points not yet examined; stops the walk after one full turn.
    left: usize,
    /// Nodes still to yield.
    wanted: usize,
    seen: Seen,
}

impl<'a, N> Replicas<'a, N> {
    pub(crate) fn new(ring: &'a HashRing<N>, start: usize, wanted: usize) -> Self {
        Self {
            ring,
            next: start,
            left: ring.point_count(),
            wanted,
            seen: Seen {
                inline: [0; INLINE],
                len: 0,
                spill: Vec::new(),
            },
        }
    }
}

impl<'a, N> Iterator for Replicas<'a, N> {
    type Item = &'a N;

    #[inline]
    fn next(&mut self) -> Option<&'a N> {
        let ring = self.ring;
        with_points!(&ring.store, p => {
            while self.wanted > 0 && self.left > 0 {
                let owner = p.owner(self.next);
                self.left -= 1;
                self.next = if self.next + 1 == p.len() { 0 } else { self.next + 1 };
                if !self.seen.contains(owner) {
                    self.seen.insert(owner);
                    self.wanted -= 1;
                    return Some(&ring.members[owner as usize].node);
                }
            }
            None
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // Every node owns at least one point, so the walk finds all `wanted` nodes.
        (self.wanted, Some(self.wanted))
    }
}

impl<N> ExactSizeIterator for Replicas<'_, N> {}
impl<N> std::iter::FusedIterator for Replicas<'_, N> {}

impl<N: fmt::Debug> fmt::Debug for Replicas<'_, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replicas")
            .field("next", &self.next)
            .field("wanted", &self.wanted)
            .finish()
    }
}
