//! Replica-aware plans: which hash ranges change their preference list of `n` nodes between
//! two rings, so a replicated store knows where copies must be made and where they may go.

use std::hash::Hash;

use crate::Error;
use crate::plan::HashRange;
use crate::ring::{HashRing, with_points};

/// One range of keys whose preference list ([`HashRing::replicas`]) differs between two rings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaMove<N> {
    range: HashRange,
    before: Vec<N>,
    after: Vec<N>,
}

impl<N> ReplicaMove<N> {
    /// The keys concerned.
    pub fn range(&self) -> HashRange {
        self.range
    }

    /// Their preference list before: the owner first, then the replicas.
    pub fn before(&self) -> &[N] {
        &self.before
    }

    /// Their preference list after.
    pub fn after(&self) -> &[N] {
        &self.after
    }
}

impl<N: PartialEq> ReplicaMove<N> {
    /// The nodes that hold these keys after but not before: each needs a copy.
    pub fn gained(&self) -> impl Iterator<Item = &N> + '_ {
        self.after.iter().filter(|n| !self.before.contains(n))
    }

    /// The nodes that held these keys before but not after: each may drop its copy once the
    /// new ones are made.
    pub fn lost(&self) -> impl Iterator<Item = &N> + '_ {
        self.before.iter().filter(|n| !self.after.contains(n))
    }

    /// Whether the same nodes hold these keys before and after, only in another order (a new
    /// owner among them): no copy to make or drop.
    pub fn reordered_only(&self) -> bool {
        self.gained().next().is_none() && self.lost().next().is_none()
    }
}

/// The hash ranges whose preference list changes, sorted by start, adjacent ranges with the
/// same lists merged. Returned by [`HashRing::diff_replicas`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaPlan<N> {
    moves: Vec<ReplicaMove<N>>,
}

impl<N> ReplicaPlan<N> {
    /// The moves, in hash order.
    pub fn iter(&self) -> std::slice::Iter<'_, ReplicaMove<N>> {
        self.moves.iter()
    }

    /// The number of ranges whose list changes.
    pub fn len(&self) -> usize {
        self.moves.len()
    }

    /// Whether no list changes.
    pub fn is_empty(&self) -> bool {
        self.moves.is_empty()
    }

    /// The change of the list of a key whose hash is `hash`, if its list changes.
    pub fn find(&self, hash: u64) -> Option<&ReplicaMove<N>> {
        let i = self.moves.partition_point(|m| m.range.end() < hash);
        self.moves.get(i).filter(|m| m.range.contains(hash))
    }
}

impl<N> IntoIterator for ReplicaPlan<N> {
    type Item = ReplicaMove<N>;
    type IntoIter = std::vec::IntoIter<ReplicaMove<N>>;
    fn into_iter(self) -> Self::IntoIter {
        self.moves.into_iter()
    }
}

impl<'a, N> IntoIterator for &'a ReplicaPlan<N> {
    type Item = &'a ReplicaMove<N>;
    type IntoIter = std::slice::Iter<'a, ReplicaMove<N>>;
    fn into_iter(self) -> Self::IntoIter {
        self.moves.iter()
    }
}

/// Every range whose preference list of `n` nodes differs between `a` and `b`. Between two
/// consecutive points of either ring, every hash has the same successor in each ring, so the
/// same lists: one comparison per such stretch.
pub(crate) fn diff_replicas<N: Clone + Eq + Hash>(
    a: &HashRing<N>,
    b: &HashRing<N>,
    n: usize,
) -> Result<ReplicaPlan<N>, Error> {
    if a.seed() != b.seed() {
        return Err(Error::SeedMismatch {
            left: a.seed(),
            right: b.seed(),
        });
    }
    let mut moves: Vec<ReplicaMove<N>> = Vec::new();
    if a.is_empty() || b.is_empty() || n == 0 {
        return Ok(ReplicaPlan { moves });
    }
    let mut ends: Vec<u64> = Vec::with_capacity(a.point_count() + b.point_count() + 1);
    for ring in [a, b] {
        with_points!(&ring.store, p => ends.extend((0..p.len()).map(|i| p.hash(i))));
    }
    // The stretch past the last point, up to the top of the hash space, wraps to the first.
    ends.push(u64::MAX);
    ends.sort_unstable();
    ends.dedup();
    let (mut before, mut after): (Vec<&N>, Vec<&N>) = (Vec::new(), Vec::new());
    let mut start = 0u64;
    for end in ends {
        before.clear();
        before.extend(a.replicas_hash(end, n));
        after.clear();
        after.extend(b.replicas_hash(end, n));
        if before != after {
            match moves.last_mut() {
                Some(last)
                    if last.range.end().checked_add(1) == Some(start)
                        && last.before.iter().eq(before.iter().copied())
                        && last.after.iter().eq(after.iter().copied()) =>
                {
                    last.range = HashRange::spanning(last.range.start(), end);
                }
                _ => moves.push(ReplicaMove {
                    range: HashRange::spanning(start, end),
                    before: before.iter().map(|&n| n.clone()).collect(),
                    after: after.iter().map(|&n| n.clone()).collect(),
                }),
            }
        }
        // `end` is `u64::MAX` on the last stretch.
        start = end.wrapping_add(1);
    }
    Ok(ReplicaPlan { moves })
}
