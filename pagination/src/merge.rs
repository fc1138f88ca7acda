//! Merged paging across shards: one ordered source drawn from several by a k-way merge.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

use crate::error::Error;
use crate::request::Direction;
use crate::sort::Sort;
use crate::source::Source;
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
    buffered: VecDeque<(Vec<Value>, T)>,
    /// The key to continue the shard's scan from, once the buffer runs dry.
    resume: Option<Vec<Value>>,
    /// Whether the shard's last scan came back short: it has nothing more.
    exhausted: bool,
}

/// A lane's head in the merge heap, ordered so the heap pops the next item in scan order.
struct Head<'s> {
    key: Vec<Value>,
    lane: usize,
    sort: &'s Sort,
    direction: Direction,
}

impl Ord for Head<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        let o = self.sort.compare(&self.key, &other.key);
        // `BinaryHeap` pops the greatest: invert for forward scans, which want the smallest.
        let o = if self.direction == Direction::Forward {
            o.reverse()
        } else {
            o
        };
        o.then_with(|| other.lane.cmp(&self.lane))
    }
}

impl PartialOrd for Head<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Head<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Head<'_> {}

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
        for item in items {
            let key = self.shards[i].key(&item);
            lane.resume = Some(key.clone());
            lane.buffered.push_back((key, item));
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

    fn scan(
        &self,
        bound: Option<&[Value]>,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<S::Item>, Error> {
        if self.shards.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let chunk = limit / self.shards.len() + 1;
        let mut lanes: Vec<Lane<S::Item>> = Vec::with_capacity(self.shards.len());
        let mut heap = BinaryHeap::with_capacity(self.shards.len());
        for i in 0..self.shards.len() {
            let mut lane = Lane {
                buffered: VecDeque::new(),
                resume: bound.map(<[Value]>::to_vec),
                exhausted: false,
            };
            self.refill(&mut lane, i, direction, chunk)?;
            if let Some((key, _)) = lane.buffered.front() {
                heap.push(Head {
                    key: key.clone(),
                    lane: i,
                    sort: &self.sort,
                    direction,
                });
            }
            lanes.push(lane);
        }
        let mut out = Vec::with_capacity(limit);
        while out.len() < limit {
            let Some(head) = heap.pop() else { break };
            let lane = &mut lanes[head.lane];
            let Some((_, item)) = lane.buffered.pop_front() else {
                continue;
            };
            out.push(item);
            if lane.buffered.is_empty() && !lane.exhausted && out.len() < limit {
                self.refill(lane, head.lane, direction, chunk)?;
            }
            if let Some((key, _)) = lane.buffered.front() {
                heap.push(Head {
                    key: key.clone(),
                    lane: head.lane,
                    sort: &self.sort,
                    direction,
                });
            }
        }
        Ok(out)
    }
}
