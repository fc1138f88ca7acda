//! Preference lists: the first `n` distinct nodes clockwise from a key.

use std::fmt;

use crate::points::{OwnerId, Points};
use crate::ring::{HashRing, with_points};

/// Preference lists up to this long are found in one tight walk when the iterator is created
/// and kept inline; longer ones continue lazily and remember extra nodes on the heap.
const INLINE: usize = 8;

/// Iterator over a key's preference list, from [`HashRing::replicas`]: the owner first, then
/// the next distinct nodes clockwise.
pub struct Replicas<'a, N> {
    ring: &'a HashRing<N>,
    /// The first nodes of the list, found eagerly.
    inline: [u32; INLINE],
    inline_len: usize,
    /// Nodes found lazily past the inline ones.
    spill: Vec<u32>,
    /// How many nodes have been yielded.
    yielded: usize,
    /// How many nodes the list has in all.
    wanted: usize,
    /// The walk: the next point to examine, and how many remain before a full turn.
    next: usize,
    left: usize,
}

/// Walks from point `*next` to the first owner that `seen` rejects, or `None` after a full turn.
#[inline]
fn walk<O: OwnerId>(
    p: &Points<O>,
    next: &mut usize,
    left: &mut usize,
    seen: impl Fn(u32) -> bool,
) -> Option<u32> {
    let len = p.len();
    while *left > 0 {
        let owner = p.owner(*next);
        *left -= 1;
        *next = if *next + 1 == len { 0 } else { *next + 1 };
        if !seen(owner) {
            return Some(owner);
        }
    }
    None
}

impl<'a, N> Replicas<'a, N> {
    #[inline]
    pub(crate) fn new(ring: &'a HashRing<N>, start: usize, wanted: usize) -> Self {
        let mut this = Self {
            ring,
            inline: [0; INLINE],
            inline_len: 0,
            spill: Vec::new(),
            yielded: 0,
            wanted,
            next: start,
            left: ring.point_count(),
        };
        let (inline, len) = (&mut this.inline, &mut this.inline_len);
        with_points!(&ring.store, p => {
            while *len < wanted.min(INLINE) {
                let seen = |o: u32| inline[..*len].contains(&o);
                let Some(owner) = walk(p, &mut this.next, &mut this.left, seen) else { break };
                inline[*len] = owner;
                *len += 1;
            }
        });
        this
    }

    fn find_next(&mut self) -> Option<u32> {
        let (inline, spill) = (&self.inline[..self.inline_len], &self.spill);
        let seen = |o: u32| inline.contains(&o) || spill.contains(&o);
        let owner =
            with_points!(&self.ring.store, p => walk(p, &mut self.next, &mut self.left, seen))?;
        self.spill.push(owner);
        Some(owner)
    }
}

impl<'a, N> Iterator for Replicas<'a, N> {
    type Item = &'a N;

    #[inline]
    fn next(&mut self) -> Option<&'a N> {
        if self.yielded >= self.wanted {
            return None;
        }
        let owner = if self.yielded < self.inline_len {
            self.inline[self.yielded]
        } else {
            self.find_next()?
        };
        self.yielded += 1;
        Some(&self.ring.members[owner as usize].node)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // Every node owns at least one point, so the walk finds all `wanted` nodes.
        let left = self.wanted - self.yielded;
        (left, Some(left))
    }
}

impl<N> ExactSizeIterator for Replicas<'_, N> {}
impl<N> std::iter::FusedIterator for Replicas<'_, N> {}

impl<N: fmt::Debug> fmt::Debug for Replicas<'_, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replicas")
            .field("yielded", &self.yielded)
            .field("wanted", &self.wanted)
            .finish()
    }
}
