//! Merged paging across shards: one ordered source drawn from several by a k-way merge.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

use crate::error::Error;
use crate::request::Direction;
use crate::sort::Sort;
use crate::source::{PREALLOCATE, Source};
use crate::value::Value;

/// Several shard sources ordered by the same [`Sort`], paged as one (scatter-gather).
///
/// A page of `n` items reads lazily: each shard is asked for about `n / shards + 1` items at a
/// time, and again only when the merge has used up what it gave, so a page of 100 over 16 shards
/// does not fetch 100 rows from every shard. Items are assumed to live on exactly one shard
/// (as a hash ring places them); the unique last sort column makes one cursor, the last key
/// returned, resume every shard at the right place.
///
/// # Examples
///
/// ```
/// use std::collections::BTreeMap;
/// use shardkit_pagination::{ColumnType, Direction, Merged, Sort, Source};
///
/// let even: BTreeMap<u64, ()> = (0..10).step_by(2).map(|k| (k, ())).collect();
/// let odd: BTreeMap<u64, ()> = (1..10).step_by(2).map(|k| (k, ())).collect();
/// let sort = Sort::builder().unique_asc("id", ColumnType::Uint).build()?;
/// let merged = Merged::new(vec![even, odd], sort);
/// let first: Vec<u64> = merged.scan(None, Direction::Forward, 4)?.into_iter().map(|(k, _)| k).collect();
/// assert_eq!(first, [0, 1, 2, 3]);
/// # Ok::<(), shardkit_pagination::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Merged<S> {
    shards: Vec<S>,
    sort: Sort,
}

impl<S: Source> Merged<S> {
    /// Merges `shards`, each ordered by `sort`.
    pub fn new(shards: Vec<S>, sort: Sort) -> Self {
        Self { shards, sort }
    }

    /// The shards.
    pub fn shards(&self) -> &[S] {
        &self.shards
    }
}

/// One shard's fetched-but-unmerged items.
struct Lane<T> {
    buffered: VecDeque<T>,
    /// The key to continue the shard's scan from, once the buffer runs dry.
    resume: Option<Vec<Value>>,
    /// Whether the shard's last scan came back short: it has nothing more.
    exhausted: bool,
}

/// A lane's head item in the merge heap, ordered so the heap pops the next item in scan order.
struct Head<'s, S: Source> {
    item: S::Item,
    lane: usize,
    source: &'s S,
    direction: Direction,
}

impl<S: Source> Ord for Head<'_, S> {
    fn cmp(&self, other: &Self) -> Ordering {
        let o = self.source.compare(&self.item, &other.item);
        // `BinaryHeap` pops the greatest: invert for forward scans, which want the smallest.
        let o = if self.direction == Direction::Forward {
            o.reverse()
        } else {
            o
        };
        o.then_with(|| other.lane.cmp(&self.lane))
    }
}

impl<S: Source> PartialOrd for Head<'_, S> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<S: Source> PartialEq for Head<'_, S> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<S: Source> Eq for Head<'_, S> {}

impl<S: Source> Merged<S> {
    fn refill(
        &self,
        lane: &mut Lane<S::Item>,
        i: usize,
        direction: Direction,
        chunk: usize,
    ) -> Result<(), Error> {
        let items = self.shards[i].scan(lane.resume.as_deref(), direction, chunk)?;
        lane.exhausted = items.len() < chunk;
        if let Some(last) = items.last() {
            lane.resume = Some(self.shards[i].key(last));
        }
        lane.buffered.extend(items);
        Ok(())
    }

    /// Moves lane `i`'s next item into the heap, refilling the lane from its shard if needed.
    fn advance<'s>(
        &'s self,
        lanes: &mut [Lane<S::Item>],
        heap: &mut BinaryHeap<Head<'s, S>>,
        i: usize,
        direction: Direction,
        chunk: usize,
    ) -> Result<(), Error> {
        let lane = &mut lanes[i];
        if lane.buffered.is_empty() && !lane.exhausted {
            self.refill(lane, i, direction, chunk)?;
        }
        if let Some(item) = lane.buffered.pop_front() {
            heap.push(Head {
                item,
                lane: i,
                source: &self.shards[i],
                direction,
            });
        }
        Ok(())
    }
}

impl<S: Source> Source for Merged<S> {
    type Item = S::Item;

    fn key(&self, item: &S::Item) -> Vec<Value> {
        // Every shard keys its items the same way.
        self.shards.first().map_or_else(Vec::new, |s| s.key(item))
    }

    fn compare(&self, a: &S::Item, b: &S::Item) -> Ordering {
        self.shards
            .first()
            .map_or(Ordering::Equal, |s| s.compare(a, b))
    }

    fn scan(
        &self,
        bound: Option<&[Value]>,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<S::Item>, Error> {
        if self.shards.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        if let Some(b) = bound {
            self.sort.check(b)?;
        }
        let chunk = (limit / self.shards.len()).saturating_add(1);
        let mut lanes: Vec<Lane<S::Item>> = (0..self.shards.len())
            .map(|_| Lane {
                buffered: VecDeque::new(),
                resume: bound.map(<[Value]>::to_vec),
                exhausted: false,
            })
            .collect();
        let mut heap = BinaryHeap::with_capacity(self.shards.len());
        for i in 0..self.shards.len() {
            self.advance(&mut lanes, &mut heap, i, direction, chunk)?;
        }
        // Not `limit` up front: a caller may pass `usize::MAX` for "everything".
        let mut out = Vec::with_capacity(limit.min(PREALLOCATE));
        while let Some(head) = heap.pop() {
            out.push(head.item);
            if out.len() == limit {
                break;
            }
            self.advance(&mut lanes, &mut heap, head.lane, direction, chunk)?;
        }
        Ok(out)
    }
}
