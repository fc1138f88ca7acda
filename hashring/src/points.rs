//! The sorted points of a ring and the prefix-bucket index that finds a key's successor in O(1).
//!
//! Points live in two parallel arrays, `hashes` (8 bytes) and `owners` (2 bytes while the ring
//! has at most 65,536 nodes, 4 bytes past that), sorted by `(hash, owner's node hash)`. The index
//! `table` splits the hash space into equal buckets (one per 4 points) and records where each
//! bucket starts, so a lookup reads one table entry and compares one fixed window of hashes,
//! instead of a binary search whose probes each miss the cache at 160,000 points. The table
//! costs about one byte per point.
//!
//! Ties between equal hashes are broken by the owners' node hashes, never by insertion order, so
//! the same membership always yields the same order, whatever order nodes were added in.

/// An owner index as stored per point: `u16` for rings of up to 65,536 nodes, `u32` above.
pub(crate) trait OwnerId: Copy + Eq + Default {
    const MAX_NODES: usize;
    fn from_index(index: u32) -> Self;
    fn index(self) -> u32;
}

impl OwnerId for u16 {
    const MAX_NODES: usize = u16::MAX as usize + 1;
    #[inline]
    fn from_index(index: u32) -> Self {
        index as u16
    }
    #[inline]
    fn index(self) -> u32 {
        u32::from(self)
    }
}

impl OwnerId for u32 {
    const MAX_NODES: usize = u32::MAX as usize;
    #[inline]
    fn from_index(index: u32) -> Self {
        index
    }
    #[inline]
    fn index(self) -> u32 {
        self
    }
}

/// One point to place: its position on the ring and its owner's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Point {
    pub(crate) hash: u64,
    pub(crate) owner: u32,
}

/// Sentinel hashes after the last point, so a lookup can compare a fixed window of hashes
/// without a bounds branch: `u64::MAX` is never below a key's hash.
const PAD: usize = 8;

/// The sorted points and their bucket index.
#[derive(Debug)]
pub(crate) struct Points<O> {
    /// The points' hashes, then [`PAD`] sentinels.
    hashes: Vec<u64>,
    owners: Vec<O>,
    /// `table[b]` is the index of the first point whose bucket is `>= b`; `table[buckets]` is
    /// the number of points.
    table: Vec<u32>,
    /// The number of buckets; a hash's bucket is `hash × buckets / 2^64`.
    buckets: usize,
}

/// Spare point capacity kept beyond `points`: 1/64 of them, so membership changes rarely
/// reallocate, for 0.2 bytes per point.
fn slack(points: usize) -> usize {
    points / 64
}

/// The bucket count a table is built with: 4 points a bucket on average, which the lookup
/// window of [`PAD`] hashes covers in one go, for one byte of index per point.
fn bucket_count(points: usize) -> usize {
    (points / 4).max(1)
}

/// Whether `buckets` still suit `points`: membership changes keep the table (and update it in
/// place) while buckets average 2 to 8 points, and rebuild it beyond.
fn buckets_fit(buckets: usize, points: usize) -> bool {
    buckets == bucket_count(points) || (2 * buckets <= points && points <= 8 * buckets)
}

/// Keeps the spare capacity (a derived clone would drop it), so the first change to a cloned
/// ring, as [`SharedRing`](crate::SharedRing) makes, does not reallocate.
impl<O: Copy> Clone for Points<O> {
    fn clone(&self) -> Self {
        let mut hashes = Vec::with_capacity(self.hashes.capacity());
        hashes.extend_from_slice(&self.hashes);
        let mut owners = Vec::with_capacity(self.owners.capacity());
        owners.extend_from_slice(&self.owners);
        Self {
            hashes,
            owners,
            table: self.table.clone(),
            buckets: self.buckets,
        }
    }
}

impl<O: OwnerId> Points<O> {
    pub(crate) fn empty() -> Self {
        Self {
            hashes: vec![u64::MAX; PAD],
            owners: Vec::new(),
            table: vec![0, 0],
            buckets: 1,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.owners.len()
    }

    #[inline]
    pub(crate) fn hash(&self, i: usize) -> u64 {
        self.hashes[i]
    }

    #[inline]
    pub(crate) fn owner(&self, i: usize) -> u32 {
        self.owners[i].index()
    }

    #[inline]
    fn bucket(&self, hash: u64) -> usize {
        // A multiply-shift maps hashes to buckets in order, for any bucket count.
        ((u128::from(hash) * self.buckets as u128) >> 64) as usize
    }

    /// Index of the first point with hash `>= hash`, wrapping to 0 past the last point; `None`
    /// when there are no points.
    #[inline]
    pub(crate) fn successor(&self, hash: u64) -> Option<usize> {
        let len = self.len();
        if len == 0 {
            return None;
        }
        let start = self.table[self.bucket(hash)] as usize;
        // Buckets hold 2 to 4 points on average: count the ones below `hash` in a fixed window,
        // without a data-dependent branch (later buckets' points and the sentinels are never
        // below it), and walk on only for the rare bucket that overflows the window.
        let window = &self.hashes[start..start + PAD];
        let mut i = start + window.iter().map(|&h| usize::from(h < hash)).sum::<usize>();
        if i == start + PAD {
            while self.hashes[i] < hash {
                i += 1;
            }
        }
        Some(if i >= len { 0 } else { i })
    }

    /// Builds from scratch: a counting sort by bucket (which yields the table), then a sort of
    /// each small bucket. `points` is called twice and must yield the same points both times, so
    /// no unsorted copy of the points is ever held.
    pub(crate) fn build<I>(count: usize, points: impl Fn() -> I, tie: impl Fn(u32) -> u64) -> Self
    where
        I: Iterator<Item = Point>,
    {
        let buckets = bucket_count(count);
        let mut hashes = Vec::with_capacity(count + PAD + slack(count));
        hashes.resize(count + PAD, u64::MAX);
        let mut owners = Vec::with_capacity(count + slack(count));
        owners.resize(count, O::default());
        let mut this = Self {
            hashes,
            owners,
            table: vec![0; buckets + 1],
            buckets,
        };
        for p in points() {
            let b = this.bucket(p.hash);
            this.table[b + 1] += 1;
        }
        for b in 0..buckets {
            this.table[b + 1] += this.table[b];
        }
        // Scatter with each bucket's start as its write cursor; afterwards every entry holds the
        // next bucket's start, so shifting the table by one restores it, with no scratch copy.
        for p in points() {
            let b = this.bucket(p.hash);
            let at = this.table[b] as usize;
            this.table[b] += 1;
            this.hashes[at] = p.hash;
            this.owners[at] = O::from_index(p.owner);
        }
        this.table.copy_within(0..buckets, 1);
        this.table[0] = 0;
        for b in 0..buckets {
            this.sort_range(this.table[b] as usize, this.table[b + 1] as usize, &tie);
        }
        this
    }

    /// Insertion sort of `start..end` by `(hash, tie(owner))`; buckets hold a few points, and
    /// `tie` is only consulted for equal hashes.
    fn sort_range(&mut self, start: usize, end: usize, tie: &impl Fn(u32) -> u64) {
        let before = |a: (u64, O), b: (u64, O)| {
            a.0 < b.0 || (a.0 == b.0 && tie(a.1.index()) < tie(b.1.index()))
        };
        for i in start + 1..end {
            let item = (self.hashes[i], self.owners[i]);
            let mut j = i;
            while j > start && before(item, (self.hashes[j - 1], self.owners[j - 1])) {
                self.hashes[j] = self.hashes[j - 1];
                self.owners[j] = self.owners[j - 1];
                j -= 1;
            }
            self.hashes[j] = item.0;
            self.owners[j] = item.1;
        }
    }

    /// Where a point `(hash, tie)` goes: after every point that sorts before or equal to it.
    fn insertion_index(&self, hash: u64, tie_key: u64, tie: &impl Fn(u32) -> u64) -> usize {
        let b = self.bucket(hash);
        let mut i = self.table[b] as usize;
        let end = self.len();
        while i < end
            && (self.hashes[i] < hash || (self.hashes[i] == hash && tie(self.owner(i)) <= tie_key))
        {
            i += 1;
        }
        i
    }

    /// Inserts `new` (sorted by `(hash, tie)`, all owned by `owner`), moving each run of old
    /// points once with a `memmove`. Returns the final index of every new point, ascending.
    pub(crate) fn insert(
        &mut self,
        new: &[u64],
        owner: u32,
        tie: &impl Fn(u32) -> u64,
    ) -> Vec<usize> {
        let tie_key = tie(owner);
        let old_len = self.len();
        let at: Vec<usize> = new
            .iter()
            .map(|&h| self.insertion_index(h, tie_key, tie))
            .collect();
        let total = old_len + new.len();
        // Growing past the capacity reserves some slack, so a run of additions does not copy
        // the whole ring into a new allocation each time.
        let slack = slack(total);
        self.hashes.truncate(old_len);
        if self.hashes.capacity() < total + PAD {
            self.hashes.reserve_exact(new.len() + PAD + slack);
            self.owners.reserve_exact(new.len() + slack);
        }
        self.hashes.resize(total, 0);
        self.owners.resize(total, O::default());
        let mut end = old_len;
        for (j, (&h, &pos)) in new.iter().zip(&at).enumerate().rev() {
            self.hashes.copy_within(pos..end, pos + j + 1);
            self.owners.copy_within(pos..end, pos + j + 1);
            self.hashes[pos + j] = h;
            self.owners[pos + j] = O::from_index(owner);
            end = pos;
        }
        self.hashes.extend_from_slice(&[u64::MAX; PAD]);
        self.reindex(new, 1);
        at.iter().enumerate().map(|(j, &pos)| pos + j).collect()
    }

    /// Indices of the points of `owner` whose hashes are `gone` (sorted), ascending.
    pub(crate) fn positions(&self, gone: &[u64], owner: u32) -> Vec<usize> {
        let mut at: Vec<usize> = Vec::with_capacity(gone.len());
        for &h in gone {
            // The point sits in the run of equal hashes that starts at its successor; a node whose
            // own points collide has several points in that run, each taken once.
            let Some(mut i) = self.successor(h) else {
                break;
            };
            if let Some(&last) = at.last() {
                i = i.max(last + 1);
            }
            while self.owner(i) != owner {
                i += 1;
            }
            at.push(i);
        }
        at
    }

    /// Removes the points at `at` (ascending, from [`Self::positions`]; their hashes are `gone`)
    /// and relabels the points of `relabel.0` as `relabel.1`: the node table moved its last node
    /// into the freed slot.
    pub(crate) fn remove(&mut self, at: &[usize], gone: &[u64], relabel: Option<(u32, u32)>) {
        let len = self.len();
        self.hashes.truncate(len);
        let mut write = 0;
        let mut read = 0;
        for &i in at {
            self.hashes.copy_within(read..i, write);
            self.owners.copy_within(read..i, write);
            write += i - read;
            read = i + 1;
        }
        self.hashes.copy_within(read..len, write);
        self.owners.copy_within(read..len, write);
        write += len - read;
        self.hashes.truncate(write);
        self.hashes.resize(write + PAD, u64::MAX);
        self.owners.truncate(write);
        // Give memory back once the ring has shrunk to half its allocation.
        if self.owners.capacity() > 2 * (write + slack(write)) {
            self.hashes.shrink_to(write + PAD + slack(write));
            self.owners.shrink_to(write + slack(write));
        }
        if let Some((from, to)) = relabel {
            let (from, to) = (O::from_index(from), O::from_index(to));
            for o in &mut self.owners {
                if *o == from {
                    *o = to;
                }
            }
        }
        self.reindex(gone, -1);
    }

    /// Brings the table up to date after `changed` (sorted) hashes were inserted (`sign` 1) or
    /// removed (`sign` -1): in place when the bucket count stays, rebuilt otherwise.
    fn reindex(&mut self, changed: &[u64], sign: i64) {
        if !buckets_fit(self.buckets, self.len()) {
            self.rebuild_table(bucket_count(self.len()));
            return;
        }
        let mut below = 0i64;
        let mut next = 0;
        for b in 0..self.table.len() {
            while next < changed.len() && self.bucket(changed[next]) < b {
                below += 1;
                next += 1;
            }
            if below != 0 {
                self.table[b] = (i64::from(self.table[b]) + sign * below) as u32;
            }
        }
    }

    fn rebuild_table(&mut self, buckets: usize) {
        self.buckets = buckets;
        self.table = vec![0; buckets + 1];
        for &h in &self.hashes[..self.len()] {
            let b = self.bucket(h);
            self.table[b + 1] += 1;
        }
        for b in 0..buckets {
            self.table[b + 1] += self.table[b];
        }
    }

    /// Copies into the wider owner representation.
    pub(crate) fn widen(&self) -> Points<u32> {
        Points {
            hashes: self.hashes.clone(),
            owners: self.owners.iter().map(|o| o.index()).collect(),
            table: self.table.clone(),
            buckets: self.buckets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ties sort by this key, deliberately not by owner index or insertion order.
    fn tie(owner: u32) -> u64 {
        1000 - u64::from(owner) * 7 % 11
    }

    fn sorted(points: &[Point]) -> Vec<(u64, u32)> {
        let mut v: Vec<(u64, u32)> = points.iter().map(|p| (p.hash, p.owner)).collect();
        v.sort_by_key(|&(h, o)| (h, tie(o)));
        v
    }

    fn contents<O: OwnerId>(p: &Points<O>) -> Vec<(u64, u32)> {
        (0..p.len()).map(|i| (p.hash(i), p.owner(i))).collect()
    }

    /// Points crowded onto a few hashes, so most of them tie.
    fn crowded(owners: u32) -> Vec<Point> {
        (0..owners)
            .flat_map(|o| [5u64, 5, 9, u64::MAX, 0, 1 << 63].map(|h| Point { hash: h, owner: o }))
            .collect()
    }

    #[test]
    fn ties_order_by_identity_whatever_the_insertion_order() {
        let points = crowded(6);
        let mut reversed = points.clone();
        reversed.reverse();
        let a = Points::<u16>::build(points.len(), || points.iter().copied(), tie);
        let b = Points::<u16>::build(reversed.len(), || reversed.iter().copied(), tie);
        assert_eq!(contents(&a), sorted(&points));
        assert_eq!(contents(&b), sorted(&points));
    }

    #[test]
    fn insert_and_remove_keep_tie_order_and_index() {
        let base = crowded(4);
        let mut p = Points::<u16>::build(base.len(), || base.iter().copied(), tie);
        for owner in [4u32, 5] {
            let mut new = vec![0, 5, 5, 9, 1 << 63, u64::MAX];
            new.sort_unstable();
            let at = p.insert(&new, owner, &tie);
            assert!(at.iter().all(|&i| p.owner(i) == owner));
        }
        assert_eq!(contents(&p), sorted(&crowded(6)));

        let gone = [0, 5, 5, 9, 1 << 63, u64::MAX];
        let at = p.positions(&gone, 2);
        assert_eq!(at.len(), gone.len());
        p.remove(&at, &gone, Some((5, 2)));
        let expect: Vec<Point> = crowded(5)
            .into_iter()
            .filter(|q| q.owner != 2)
            .map(|q| Point {
                owner: if q.owner == 4 { 4 } else { q.owner },
                ..q
            })
            .chain(
                crowded(6)
                    .into_iter()
                    .filter(|q| q.owner == 5)
                    .map(|q| Point { owner: 2, ..q }),
            )
            .collect();
        assert_eq!(contents(&p), sorted(&expect));
        // The index still finds every successor.
        for h in [0, 1, 5, 6, 9, 10, 1 << 63, u64::MAX] {
            let i = p.successor(h).unwrap();
            let first = contents(&p).iter().position(|&(x, _)| x >= h).unwrap_or(0);
            assert_eq!(i, first, "successor of {h}");
        }
    }

    #[test]
    fn index_grows_and_shrinks_across_bucket_sizes() {
        let points_of = |owner: u32| -> Vec<u64> {
            let mut new: Vec<u64> = (0..37u64)
                .map(|i| (i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(owner))
                .collect();
            new.sort_unstable();
            new
        };
        // Every successor, checked against a scan of the sorted hashes: at the points, between
        // them, and past the last one (which wraps to the first).
        let check = |p: &Points<u32>, all: &[u64]| {
            let probes = all
                .iter()
                .step_by(3)
                .flat_map(|&h| [h, h.wrapping_add(1), h.wrapping_sub(1)])
                .chain([0, u64::MAX]);
            for h in probes {
                let expect = all.iter().position(|&x| x >= h).unwrap_or(0);
                assert_eq!(p.successor(h), (!all.is_empty()).then_some(expect), "{h}");
            }
        };
        let mut p = Points::<u32>::empty();
        let mut all: Vec<u64> = Vec::new();
        for owner in 0..50u32 {
            let new = points_of(owner);
            p.insert(&new, owner, &|o| u64::from(o));
            all.extend(&new);
            all.sort_unstable();
            check(&p, &all);
        }
        assert_eq!(p.len(), all.len());
        // And back down, through the smaller bucket counts, to empty.
        for owner in (0..50u32).rev() {
            let gone = points_of(owner);
            let at = p.positions(&gone, owner);
            p.remove(&at, &gone, None);
            all.retain(|h| gone.binary_search(h).is_err());
            check(&p, &all);
        }
        assert_eq!(p.len(), 0);
    }
}
