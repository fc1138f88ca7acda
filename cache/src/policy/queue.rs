//! A queue of the policy: a FIFO of entry handles read as a CLOCK, with the weight of its
//! live entries and the count of stale handles (entries removed while queued) it drops lazily.

use std::collections::VecDeque;

use super::{Handle, Region, Release};

/// One queue of the policy.
#[derive(Debug)]
pub(super) struct Queue<H> {
    pub(super) handles: VecDeque<H>,
    /// Total weight of the live entries in it.
    pub(super) weight: u64,
    /// Handles in it whose entries were removed, and their total weight: memory the shard
    /// still holds for entries no longer in it.
    pub(super) stale: usize,
    pub(super) stale_weight: u64,
    /// Where the expiry sweep is (see [`Policy::sweep`](super::Policy::sweep)): a position from
    /// the front, moved with the handles as they leave the front or stale ones are dropped, so
    /// the sweep goes on round the queue rather than starting over at its front.
    pub(super) sweep_at: usize,
}

impl<H> Default for Queue<H> {
    fn default() -> Self {
        Self {
            handles: VecDeque::new(),
            weight: 0,
            stale: 0,
            stale_weight: 0,
            sweep_at: 0,
        }
    }
}

impl<H: Handle> Queue<H> {
    pub(super) fn push(&mut self, h: H, region: Region) {
        h.set_region(region);
        self.weight += h.weight();
        self.handles.push_back(h);
    }

    /// Puts `h`, popped just now, back at the front (in `region`).
    pub(super) fn push_front(&mut self, h: H, region: Region) {
        h.set_region(region);
        self.weight += h.weight();
        self.handles.push_front(h);
        self.sweep_at = (self.sweep_at + 1).min(self.handles.len());
    }

    /// Pops the oldest live handle, reclaiming stale ones on the way.
    pub(super) fn pop(&mut self, release: &mut impl FnMut(H, Release)) -> Option<H> {
        while let Some(h) = self.handles.pop_front() {
            self.sweep_at = self.sweep_at.saturating_sub(1);
            if h.region() == Region::Gone {
                self.stale -= 1;
                self.stale_weight -= h.weight();
                release(h, Release::Reclaim);
                continue;
            }
            self.weight -= h.weight();
            return Some(h);
        }
        None
    }

    /// Releases every handle, live ones as evicted, and empties the queue.
    pub(super) fn drain(&mut self, release: &mut impl FnMut(H, Release)) {
        for h in self.handles.drain(..) {
            let kind = if h.region() == Region::Gone {
                Release::Reclaim
            } else {
                h.set_region(Region::Gone);
                Release::Evicted
            };
            release(h, kind);
        }
        self.weight = 0;
        self.stale = 0;
        self.stale_weight = 0;
        self.sweep_at = 0;
    }

    /// Takes `h`, queued here, out of the policy: its handle stays until popped or compacted.
    pub(super) fn mark_gone(&mut self, h: H) {
        self.weight -= h.weight();
        self.stale += 1;
        self.stale_weight += h.weight();
        h.set_region(Region::Gone);
    }

    /// Drops stale handles once they are half the queue, so removals cannot grow it unbounded,
    /// or once they weigh more than `max_stale_weight` and half the live entries', so that
    /// entries gone from a cache bounded by weight cannot hold many times its bound (a few
    /// heavy values expired or removed among many light live ones). Either way the scan's
    /// handles are paid for by what it drops: by their count, or, with weights of at least 1,
    /// by their weight (the live handles are at most their weight). Checked on every insert,
    /// rarely due: the check is inlined, the work is not.
    #[inline]
    pub(super) fn compact(&mut self, max_stale_weight: u64, release: &mut impl FnMut(H, Release)) {
        if (self.stale > 16 && self.stale * 2 > self.handles.len())
            || (self.stale_weight > max_stale_weight && self.stale_weight * 2 > self.weight)
        {
            self.compact_now(release);
        }
    }

    /// Drops the stale handles now.
    #[cold]
    pub(super) fn compact_now(&mut self, release: &mut impl FnMut(H, Release)) {
        let (sweep_at, mut index, mut live_before_sweep) = (self.sweep_at, 0, 0);
        self.handles.retain(|&h| {
            let live = h.region() != Region::Gone;
            if !live {
                release(h, Release::Reclaim);
            } else if index < sweep_at {
                live_before_sweep += 1;
            }
            index += 1;
            live
        });
        self.sweep_at = live_before_sweep;
        self.stale = 0;
        self.stale_weight = 0;
    }
}
