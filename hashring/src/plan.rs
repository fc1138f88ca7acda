//! Rebalancing plans: which hash ranges change owner when membership changes.

use crate::Error;
use crate::ring::{HashRing, with_points};

/// An inclusive range `start..=end` of the 64-bit hash space. A key moves with the range when
/// its hash (see [`HashRing::hash_key`]) lies inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashRange {
    start: u64,
    end: u64,
}

impl HashRange {
    /// The range `start..=end`, or `None` if `start > end` (ranges never wrap; a plan splits a
    /// wrapping arc into two ranges).
    pub fn new(start: u64, end: u64) -> Option<Self> {
        (start <= end).then_some(Self { start, end })
    }

    /// The range `start..=end`, known to be in order.
    pub(crate) fn spanning(start: u64, end: u64) -> Self {
        debug_assert!(start <= end);
        Self { start, end }
    }

    /// The first hash in the range.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The last hash in the range (inclusive).
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Whether `hash` lies in the range.
    pub fn contains(&self, hash: u64) -> bool {
        self.start <= hash && hash <= self.end
    }

    /// The share of the whole hash space the range covers, in `(0, 1]`.
    pub fn fraction(&self) -> f64 {
        ((self.end - self.start) as f64 + 1.0) / 2f64.powi(64)
    }
}

/// One range of keys that changes owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeMove<N> {
    range: HashRange,
    from: N,
    to: N,
}

impl<N> RangeMove<N> {
    /// The keys that move.
    pub fn range(&self) -> HashRange {
        self.range
    }

    /// Their owner before the change.
    pub fn from(&self) -> &N {
        &self.from
    }

    /// Their owner after the change.
    pub fn to(&self) -> &N {
        &self.to
    }
}

/// The hash ranges that change owner, sorted by start, adjacent ranges with the same owners
/// merged. Returned by [`HashRing::add`], [`HashRing::remove`], [`HashRing::set_weight`] and
/// [`HashRing::diff`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebalance<N> {
    moves: Vec<RangeMove<N>>,
}

impl<N> Rebalance<N> {
    /// A plan in which nothing moves.
    pub(crate) fn nothing() -> Self {
        Self { moves: Vec::new() }
    }

    /// The moves, in hash order.
    pub fn iter(&self) -> std::slice::Iter<'_, RangeMove<N>> {
        self.moves.iter()
    }

    /// The number of ranges that move.
    pub fn len(&self) -> usize {
        self.moves.len()
    }

    /// Whether nothing moves.
    pub fn is_empty(&self) -> bool {
        self.moves.is_empty()
    }

    /// The share of the hash space (and so, for well-spread keys, of the keys) that moves.
    pub fn moved_fraction(&self) -> f64 {
        self.moves.iter().map(|m| m.range.fraction()).sum()
    }

    /// The node that owned `hash` before the change and the one that owns it after, if it moved.
    pub fn find(&self, hash: u64) -> Option<&RangeMove<N>> {
        let i = self.moves.partition_point(|m| m.range.end < hash);
        self.moves.get(i).filter(|m| m.range.contains(hash))
    }
}

impl<N> IntoIterator for Rebalance<N> {
    type Item = RangeMove<N>;
    type IntoIter = std::vec::IntoIter<RangeMove<N>>;
    fn into_iter(self) -> Self::IntoIter {
        self.moves.into_iter()
    }
}

impl<'a, N> IntoIterator for &'a Rebalance<N> {
    type Item = &'a RangeMove<N>;
    type IntoIter = std::slice::Iter<'a, RangeMove<N>>;
    fn into_iter(self) -> Self::IntoIter {
        self.moves.iter()
    }
}

/// A move in terms of member indices (from, to), before the nodes are cloned out.
type RawMove = (HashRange, (u32, u32));

/// Pushes the circular arc `(prev, hash]` as one or two ranges.
fn push_arc<T: Copy>(out: &mut Vec<(HashRange, T)>, prev: u64, hash: u64, tag: T) {
    if prev < hash {
        out.push((
            HashRange {
                start: prev + 1,
                end: hash,
            },
            tag,
        ));
    } else {
        out.push((
            HashRange {
                start: 0,
                end: hash,
            },
            tag,
        ));
        if prev < u64::MAX {
            out.push((
                HashRange {
                    start: prev + 1,
                    end: u64::MAX,
                },
                tag,
            ));
        }
    }
}

/// The arc each point at `at` (ascending indices) owns: `(previous point, its hash]`, or nothing
/// when an earlier point at the same hash takes its keys.
fn owned_arcs<N, T: Copy>(
    ring: &HashRing<N>,
    at: &[usize],
    tag: impl Fn(usize) -> Option<T>,
) -> Vec<(HashRange, T)> {
    let mut arcs = Vec::with_capacity(at.len() + 1);
    with_points!(&ring.store, p => {
        for (j, &i) in at.iter().enumerate() {
            let Some(t) = tag(j) else { continue };
            let hash = p.hash(i);
            let prev = p.hash(if i == 0 { p.len() - 1 } else { i - 1 });
            if i > 0 && prev == hash {
                continue;
            }
            push_arc(&mut arcs, prev, hash, t);
        }
    });
    arcs
}

/// Sorts ranges by start and merges adjacent ones with equal tags.
fn merge_adjacent<T: PartialEq>(mut ranges: Vec<(HashRange, T)>) -> Vec<(HashRange, T)> {
    ranges.sort_unstable_by_key(|m| m.0.start);
    let mut merged: Vec<(HashRange, T)> = Vec::with_capacity(ranges.len());
    for m in ranges {
        match merged.last_mut() {
            Some(last) if last.0.end.checked_add(1) == Some(m.0.start) && last.1 == m.1 => {
                last.0.end = m.0.end;
            }
            _ => merged.push(m),
        }
    }
    merged
}

/// Sorts, merges adjacent ranges with the same owners, and clones the nodes out.
fn finish<N>(
    raw: Vec<RawMove>,
    from_node: impl Fn(u32) -> N,
    to_node: impl Fn(u32) -> N,
) -> Rebalance<N> {
    let moves = merge_adjacent(raw)
        .into_iter()
        .map(|(range, (from, to))| RangeMove {
            range,
            from: from_node(from),
            to: to_node(to),
        })
        .collect();
    Rebalance { moves }
}

fn node_of<N: Clone>(ring: &HashRing<N>) -> impl Fn(u32) -> N + '_ {
    |i| ring.members[i as usize].node.clone()
}

/// The plan after member `added` got new points at indices `at`; `old_owners[j]` owned the
/// `j`-th new point's hash before (`None` when nothing moves: the ring was empty, or the
/// hash was already `added`'s).
pub(crate) fn after_add<N: Clone>(
    ring: &HashRing<N>,
    added: u32,
    at: &[usize],
    old_owners: &[Option<u32>],
) -> Rebalance<N> {
    let arcs = owned_arcs(ring, at, |j| old_owners[j]);
    let raw = arcs
        .into_iter()
        .map(|(range, from)| (range, (from, added)))
        .collect();
    finish(raw, node_of(ring), node_of(ring))
}

/// The ranges the points at `at` (ascending indices) own, sorted, adjacent ones merged.
pub(crate) fn owned_ranges<N>(ring: &HashRing<N>, at: &[usize]) -> Vec<HashRange> {
    merge_adjacent(owned_arcs(ring, at, |_| Some(())))
        .into_iter()
        .map(|(r, ())| r)
        .collect()
}

/// The plan after `removed` gave up the ranges `vacated`: each goes to the owner of its last
/// hash on the ring that remains, unless that is member `staying` (`removed` itself, when it
/// only lost some of its points).
pub(crate) fn after_remove<N: Clone>(
    ring: &HashRing<N>,
    removed: N,
    vacated: Vec<HashRange>,
    staying: Option<u32>,
) -> Rebalance<N> {
    let raw = vacated
        .into_iter()
        .filter_map(|r| {
            let to = ring.owner_index(r.end)?;
            (Some(to) != staying).then_some((r, (0, to)))
        })
        .collect();
    finish(raw, |_| removed.clone(), node_of(ring))
}

/// Every range whose owner differs between `a` and `b`, by one merge over both point lists.
pub(crate) fn diff<N: Clone + Eq + std::hash::Hash>(
    a: &HashRing<N>,
    b: &HashRing<N>,
) -> Result<Rebalance<N>, Error> {
    if a.seed != b.seed {
        return Err(Error::SeedMismatch {
            left: a.seed,
            right: b.seed,
        });
    }
    if a.is_empty() || b.is_empty() {
        return Ok(Rebalance::nothing());
    }
    // b's members as a's indices, so owners compare as integers.
    let b_in_a: Vec<Option<u32>> = b.members.iter().map(|m| a.member_index(&m.node)).collect();
    let mut raw: Vec<RawMove> = Vec::new();
    with_points!(&a.store, pa => with_points!(&b.store, pb => {
        let (la, lb) = (pa.len(), pb.len());
        let (mut i, mut j) = (0, 0);
        let mut start = Some(0u64);
        while let Some(from) = start {
            let boundary = match (i < la, j < lb) {
                (true, true) => pa.hash(i).min(pb.hash(j)),
                (true, false) => pa.hash(i),
                (false, true) => pb.hash(j),
                (false, false) => u64::MAX,
            };
            let oa = pa.owner(if i < la { i } else { 0 });
            let ob = pb.owner(if j < lb { j } else { 0 });
            if b_in_a[ob as usize] != Some(oa) {
                raw.push((HashRange { start: from, end: boundary }, (oa, ob)));
            }
            while i < la && pa.hash(i) == boundary {
                i += 1;
            }
            while j < lb && pb.hash(j) == boundary {
                j += 1;
            }
            start = boundary.checked_add(1);
        }
    }));
    Ok(finish(raw, node_of(a), node_of(b)))
}
