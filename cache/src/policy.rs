//! The eviction policy: W-TinyLFU with CLOCK approximations of LRU order and an admission
//! window sized by ghost hits.
//!
//! New entries enter a small **window**; entries leaving it are admitted to the **main** space
//! only if the frequency sketch says they are more popular than main's eviction victim (TinyLFU),
//! so one-off keys and scans die in the window. Main is split, as in Caffeine, into a
//! **probation** segment (admitted, not yet re-used) and a **protected** one (re-used while on
//! probation), up to 80% of main, which turns at every promotion: its oldest entry goes back to
//! probation unless re-used since it was last looked at.
//!
//! Readers never touch the policy: a hit only bumps the entry's small hit counter. Each segment
//! is a FIFO queue read as a CLOCK: an entry reaching the head with hits gets its hits folded into
//! the sketch and a second chance (window and protected: back to the tail; probation: promotion),
//! which approximates LRU order without moving anything on a hit.
//!
//! The window's share is tuned at run time from what the policy sees. It remembers, in two small
//! ghosts ([`Ghosts`]), the keys it recently turned away at admission (window leavers that lost)
//! and the keys it recently evicted from main. A miss on a key the window turned away says a larger
//! window would have hit, and grows the window by 0.5%; a miss on a key main evicted says a larger
//! main would have, and shrinks it by 0.5%; a long run of recalls on one side steepens the steps
//! (the `k`th of the cache's run by a power of `1 + (k - 96) / 120` past its 96th), so a
//! workload that changes moves the window in a few hundred recalls, not 900; a probation entry
//! re-used by the time it comes up for eviction (main's space paying for itself) shrinks it by
//! 0.0375%. Every shard adds its signals to one cache-wide [`WindowShare`]: the shards split the
//! keys by hash, so they see the same kind of traffic, and pooling gives the share all of the
//! cache's evidence (measured: with each shard tuning its own window, the comparison's hit ratios
//! averaged 0.04 points lower and had two more cases over half a point below the best peer). The
//! window settles where those signals balance, and moves within a few hundred recalls when the
//! workload changes: a shifting hot set or a recency-biased trace grows it toward LRU, a skewed
//! and stable one (or a loop longer than the cache) shrinks it toward LFU. The ghost idea is
//! ARC's (Megiddo and Modha, 2003), applied to W-TinyLFU's split. Caffeine tunes the same split
//! by hill climbing on sampled hit ratios; here that reacted more slowly (a sample is many
//! requests) and settled worse: over the comparison's 41 hit-ratio cases it averaged 0.33 points
//! below the best peer, 2.54 at worst
//! (`benches/results/2026-11-25-cache.md`), where the pooled ghosts average 0.24 above it, 1.17
//! below at worst (`2026-11-26-cache.md`).

use std::sync::Arc;

use crate::ghost::{Ghosts, Side};
use crate::sketch::FrequencySketch;
use crate::window::{WindowShare, log2_fixed};

mod queue;

use queue::Queue;

/// Where an entry is in the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Region {
    Window = 0,
    Probation = 1,
    Protected = 2,
    /// Removed from the policy; its handle may still sit in a queue until popped.
    Gone = 3,
}

impl Region {
    pub(crate) fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Window,
            1 => Self::Probation,
            2 => Self::Protected,
            _ => Self::Gone,
        }
    }
}

/// What the policy needs of an entry. Handles are copied into queues; the entry stays alive
/// until the policy releases the handle.
pub(crate) trait Handle: Copy {
    /// The key's hash.
    fn hash(self) -> u64;
    /// The hits recorded since the last call (saturating), resetting them to zero.
    fn take_hits(self) -> u8;
    /// Its region.
    fn region(self) -> Region;
    /// Moves it to another region (the policy's bookkeeping only).
    fn set_region(self, region: Region);
    /// Its weight (1 for caches bounded by entry count).
    fn weight(self) -> u64;
    /// Starts loading what the policy reads of it (see [`crate::prefetch`]).
    fn prefetch(self);
}

/// Why the policy gives a handle back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Release {
    /// Evicted for size: remove it from the table, tell the listener, then free it.
    Evicted,
    /// Removed earlier (its region is `Gone`) and now out of every queue: free it.
    Reclaim,
}

/// Each ghost remembers one key per this many entries the policy holds (6.25%): enough to see
/// the next slice of space on either side, small enough to stay local, where "one more entry"
/// is the question (measured with 2% to 25%, before the probation signal below existed: 12.5%
/// and up let a loop a little longer than the cache pull the window into LRU's collapse). An
/// integer, so sizing a ghost on every insert is a shift, not a floating-point round.
const ENTRIES_PER_GHOST_SLOT: usize = 16;

/// How much one ghost recall scales the window: by 0.5%, so that, were every recall a step of
/// this size, the window would cross from 1% to 95% of the cache in about 900 recalls, counted
/// over all shards (a shifting hot set needs that within a phase), while one recall moves it
/// little; a one-sided run of recalls steepens the steps (see [`RUN_STEEPENING`]). Steps in
/// entries instead, as ARC takes, were too slow after a shift (measured: 0.25 entries per
/// recall left the shifting hot set at 100,000 entries 6 points lower). With each shard moving
/// only its own window, 1% was best; with the recalls of all shards pooled (see
/// [`WindowShare`]), 0.5% was (measured, 1% to 0.125%, mean over the 41 comparison cases).
const ADAPT_RATE: f64 = 0.005;

/// Recalls, over the whole cache, over which a run of them on one side steepens the window's step
/// by one more step, once the run is past [`RUN_ONSET`]: the `k`th recall of a run of turned-away
/// keys (with no recall of an evicted key between) scales the window by the grow step raised to
/// `1 + (k - 96) / 120` (1 up to the 96th), and likewise for the shrink side. Each shard counts its
/// own run and takes it times the shard count (up to [`RUN_SHARDS`], and to what
/// [`GHOST_SLOTS_PER_RUN_SHARD`] allows) as the cache's. A workload that changes sends long
/// one-sided runs, and the window then crosses from 1% to 95% in a few hundred recalls (about 435
/// by this formula), not 900; a settled one sends mixed signals, whose runs are short, and its
/// steps stay at 0.5%. A second chance in probation (see [`SAVE_RATE`]) does not end a run of the
/// window's growth: ending it there left the shifting hot set at 100,000 entries 0.9 points lower.
///
/// Measured without an onset, by replaying the comparison's 41 cases against the peers of its
/// run 28c (`benches/results/2026-11-28c-cache.md`, where runs were counted per shard, 30 to a
/// step; run 28d, `2026-11-28d-cache.md`, is of this code before [`RUN_ONSET`]: +0.36, 7
/// below, and the shifting hot set at 100,000 entries at 0.745 against LRU's 0.743): 30, 60,
/// 120 and 240 scored +0.36, +0.38, +0.38 and +0.37 points above the better of moka and
/// quick_cache on average, with 7, 7, 6 and 6 cases more than 0.5 below; with per-shard runs,
/// 10 had let lirs-zigzag lose up to 4.9 points.
const RUN_STEEPENING: f64 = 120.0;

/// The cache-wide run a run of recalls must pass before it steepens the steps (see
/// [`RUN_STEEPENING`]). Without it, the short runs of a settled workload steepened too, a
/// little, and unevenly: on a loop 5% longer than a cache of 4,000 entries in 8 shards, runs of
/// turned-away recalls came a few at a time against single evicted-side ones, and the window
/// settled near 15% of the cache instead of under 1%, where the loop thrashes in it (hit
/// ratio 0.82 over 400 passes, where 0.95 is the most any policy gets; the test
/// `loops_longer_than_a_sharded_cache_keep_most_of_what_fits`).
///
/// Replays of the comparison's 41 cases against run 28d's peers (one each, seeds anew): an
/// onset of 64, 96 and 128 moved the average by -0.01, -0.00 and -0.01 points (lirs-zigzag up
/// by 0.3 to 0.5 at 1,000 and 1,500 entries, the shifting hot set at 10,000 down by 0.5 to
/// 0.7), left the shifting hot set at 100,000 within 0.0002 of the unchanged code's 0.7452,
/// and took the loop to 0.93, 0.95 and 0.94. Saves that shortened or ended a growth run
/// instead held the shifting hot set at 100,000 under LRU's 0.7429 (0.736 to 0.742), and
/// saves steepened by a tenth to a half of the run either did too or left the loop at 0.86
/// to 0.89.
const RUN_ONSET: u32 = 96;

/// The most shards a shard's run is multiplied by to stand for the cache's (see
/// [`RUN_STEEPENING`]). Within a one-sided run each shard sees about its share of the recalls,
/// so its run times the shard count is the cache's; but while recalls on the two sides mix, a
/// shard's runs are as long as the cache's, and the multiple would steepen a settled
/// workload's steps with the shard count (runs of two at each of 64 shards would count as
/// 128, past [`RUN_ONSET`]: steps of about 0.63%). 8 is the most the
/// comparison ran with (shards are up to four per core): beyond it, the steepening of a
/// one-sided run weakens in proportion, and a mixed one's steps stay as measured.
const RUN_SHARDS: u32 = 8;

/// The ghost slots in use a shard needs per shard its run stands for (see [`RUN_SHARDS`]): the
/// multiple is at most a quarter of the slots its ghosts use (one per 16 entries held, rounded up,
/// followed within an eighth: see [`Policy::track_ghost_len`]), at least 1. So about one shard per
/// 64 entries held: 2 at 125 entries, 4 from 241 and 8 from 497, and less while a shard fills. A
/// cache bounded by entries gets shards of at least 256 entries by default (when it has more than
/// one), which allow 4 or more once full. A small shard's ghosts remember only a few keys, and its
/// runs are a coarse sample of the cache's: on a loop, multiplied by 8, they steepened the window's
/// growth until it ran away to the whole cache (a share of 1.0 after 200 passes, where 8 shards of
/// 500 held it at 0.4%). On a loop 5% longer than the cache, 8 shards of 125 entries kept 0.80 of
/// what fits, 8 of 250 kept 0.92 and 64 of 62 kept 0.76; with this bound, 0.98 to 0.99 (with 2
/// slots per shard: 0.92 to 0.97, and 0.87 at 16 × 125). Replays of the comparison's 41 cases moved
/// by +0.0005 points on average (+0.012 with the shard counts of 16 processors, where more of its
/// caches have shards under 497 entries).
const GHOST_SLOTS_PER_RUN_SHARD: usize = 4;

/// The longest run counted, for one shard and for the cache: a bound on how far one recall
/// can move the window (by a factor of about 1.13).
const MAX_RUN: i32 = 3_000;

/// How much a second chance in probation shrinks the window: 0.075 of the unsteepened 0.5% step. A
/// probation entry found re-used as it comes up for eviction is main's space paying for itself,
/// which the evicted-key ghost cannot see while admission keeps main stable (as in a loop longer
/// than the cache: without it, the window grew until the loop thrashed). Too strong, it holds the
/// window too small when the hot set shifts. Measured relative to [`ADAPT_RATE`]: with per-shard
/// windows and 1% recalls, 0.05 to 1 were tried, 0.1 was best on average, 0.05 let loops lose up to
/// 11 points, and 0.2 and up held the window too small on a shifting hot set. With pooled recalls
/// at 0.5% (2 to 3 runs of the 41 comparison cases each): 0.1 left the shifting hot set at 100,000
/// entries at 0.727 (LRU 0.743); 0.075 reached 0.735 and raised the mean by 0.02 points; 0.06
/// reached 0.742 but failed `loops_longer_than_the_cache_keep_most_of_what_fits` on one of 8 key
/// sets (0.075 passed all of 20), and 0.05 failed it outright.
const SAVE_RATE: f64 = 0.000375;

/// A queue's stale handles (entries removed, replaced or expired while queued) are dropped at
/// the next insert once they weigh more than this fraction of the shard's capacity and half as
/// much as the queue's live entries (see `Queue::compact`), so the memory a shard holds for
/// entries gone from it stays bounded by its capacity: after an insert, each queue's stale
/// handles weigh at most a quarter of the capacity or half its live entries, whichever is more,
/// so at most one and a half times the capacity in all (removals, `retain` and sweeps between
/// two inserts can add more, until the next insert or `run_pending_tasks`). Without it, a cache
/// bounded by weight held many times its bound in a few heavy entries gone among many light live
/// ones.
const STALE_WEIGHT_SHARE: u64 = 4;

/// Entries the frequency sketch is first sized for (8 bytes each); it grows with the entries
/// held. A cache sized for millions of entries, or bounded by a weight (which says nothing of
/// how many entries it will hold), pays for its sketch only as it fills.
const INITIAL_SKETCH: usize = 4096;

/// Frequencies at or above this get a small random chance of admission even when they lose, so
/// an attacker cannot keep a key out by flooding its victim's sketch counters.
const WARM: u8 = 6;

/// Inserts between two exchanges of a shard's window adjustments with the cache-wide share (a
/// compare-and-swap and a load): rarely enough that shards do not contend on the share's cache
/// line (8 and 128 measured the same hit ratios).
const EXCHANGE_EVERY: u32 = 32;

/// A multiplicative step of the window: the factor, and its logarithm for the cache-wide share
/// (computed once, not per signal).
#[derive(Debug, Clone, Copy)]
struct Step {
    factor: f64,
    log2: i64,
}

impl Step {
    fn new(factor: f64) -> Self {
        Self {
            factor,
            log2: log2_fixed(factor),
        }
    }

    /// This step as the `run`th recall of a one-sided run takes it, `run` counted for the whole
    /// cache (see [`RUN_STEEPENING`] and [`RUN_ONSET`]).
    fn steepened(self, run: u32) -> Self {
        if run <= RUN_ONSET {
            return self;
        }
        let power = 1.0 + f64::from(run - RUN_ONSET) / RUN_STEEPENING;
        Self {
            factor: self.factor.powf(power),
            log2: (self.log2 as f64 * power).round() as i64,
        }
    }
}

/// The window's steps: grow on a recall of a key it turned away, shrink on one of a key main
/// evicted, and a smaller shrink on a second chance in probation.
#[derive(Debug)]
struct Steps {
    grow: Step,
    shrink: Step,
    save: Step,
}

impl Default for Steps {
    fn default() -> Self {
        Self {
            grow: Step::new(1.0 + ADAPT_RATE),
            shrink: Step::new(1.0 / (1.0 + ADAPT_RATE)),
            save: Step::new(1.0 / (1.0 + SAVE_RATE)),
        }
    }
}

/// The slots a ghost uses for `entries` entries.
fn ghost_slots(entries: usize) -> usize {
    entries.div_ceil(ENTRIES_PER_GHOST_SLOT)
}

/// The policy of one shard; see the module docs. Not synchronised: the shard's writer lock
/// guards it.
#[derive(Debug)]
pub(crate) struct Policy<H> {
    capacity: u64,
    window: Queue<H>,
    probation: Queue<H>,
    protected: Queue<H>,
    sketch: FrequencySketch,
    /// The window's size: the cache-wide share, moved between two exchanges with it by this
    /// shard's own ghost recalls; and its integer part, the window's weight limit, which
    /// `maintain` reads in its loops (a float-to-integer cast each time cost more than the
    /// rest of the check). Both are set only by `set_window`.
    window_target: f64,
    window_max: u64,
    /// The window share all shards tune together, this shard's adjustments not yet added to
    /// it, and inserts since the last exchange.
    share: Arc<WindowShare>,
    pending: i64,
    since_exchange: u32,
    steps: Steps,
    /// Window leavers admission turned away, and entries evicted from main.
    ghosts: Ghosts,
    /// How many slots each ghost uses: one per [`ENTRIES_PER_GHOST_SLOT`] entries held, as
    /// of the last write that moved it (see [`track_ghost_len`](Self::track_ghost_len)).
    ghost_len: usize,
    /// The current run of ghost recalls on one side: turned-away keys (positive) or keys
    /// evicted from main (negative), counted up to a bound (see [`RUN_STEEPENING`]).
    recall_run: i32,
    /// xorshift state for the random admission of warm candidates.
    rng: u64,
}

impl<H: Handle> Policy<H> {
    /// A policy for `capacity` units of weight, of about `entries` entries.
    pub(crate) fn new(capacity: u64, entries: usize, share: Arc<WindowShare>) -> Self {
        let sketch = FrequencySketch::new(entries.clamp(1, INITIAL_SKETCH));
        let ghosts = ghost_slots(sketch.capacity());
        let mut policy = Self {
            capacity,
            window: Queue::default(),
            probation: Queue::default(),
            protected: Queue::default(),
            sketch,
            window_target: 0.0,
            window_max: 0,
            share,
            pending: 0,
            since_exchange: 0,
            steps: Steps::default(),
            ghosts: Ghosts::new(ghosts),
            ghost_len: 0,
            recall_run: 0,
            rng: 0x2545_f491_4f6c_dd1d,
        };
        policy.take_share();
        policy
    }

    /// The capacity, in units of weight.
    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Bounds it to `capacity` units of weight from now on, evicting down to it at once. A grow
    /// only lets it fill further.
    ///
    /// What a shrink forces says nothing of the workload, so it does not move the window: the
    /// second chances its evictions give in probation are not counted, and the ghosts start
    /// afresh (a miss on a key the shrink evicted would read as "a larger main would have hit",
    /// of a size the user chose). The sketch shrinks with the entries left, its counts kept;
    /// it grows again, as a new cache's does, as the cache fills.
    pub(crate) fn set_capacity(&mut self, capacity: u64, release: &mut impl FnMut(H, Release)) {
        let shrinking = capacity < self.capacity;
        self.capacity = capacity;
        self.take_share();
        if !shrinking {
            return;
        }
        let pending = self.pending;
        self.maintain(release);
        self.pending = pending;
        self.take_share();
        self.demote_overflow(release);
        let held = self.held();
        let least = usize::try_from(capacity).map_or(INITIAL_SKETCH, |c| c.min(INITIAL_SKETCH));
        self.sketch.shrink_to(held.max(least));
        self.ghosts = Ghosts::new(ghost_slots(self.sketch.capacity()));
        self.recall_run = 0;
        self.ghost_len = ghost_slots(held);
        for queue in [&mut self.window, &mut self.probation, &mut self.protected] {
            queue.handles.shrink_to_fit();
        }
    }

    /// The bytes of its queues, sketch and ghosts, and how many entries its queues hold (live
    /// ones, and removed ones whose handles are not yet popped): `(bytes, entries)`.
    pub(crate) fn memory(&self) -> (usize, usize) {
        let queues = [&self.window, &self.probation, &self.protected];
        let handles = queues.iter().map(|q| q.handles.capacity()).sum::<usize>();
        let entries = queues.iter().map(|q| q.handles.len()).sum();
        let bytes =
            handles * std::mem::size_of::<H>() + self.sketch.memory() + self.ghosts.memory();
        (bytes, entries)
    }

    /// The weight of the live entries.
    pub(crate) fn weight(&self) -> u64 {
        self.window.weight + self.probation.weight + self.protected.weight
    }

    fn main_max(&self) -> u64 {
        self.capacity - self.window_max().min(self.capacity)
    }

    fn protected_max(&self) -> u64 {
        self.main_max() / 5 * 4
    }

    /// Counts hits readers saw, for the sketch's aging.
    pub(crate) fn record(&mut self, hits: u64) {
        // Hits reach the sketch only when the policy next looks at their entries; aging must
        // still keep pace with requests, or old popularity lingers (measured: counting hits here
        // gained 1.3 points on a shifting hot set at 100,000 entries, 1.9 on lirs-sprite and
        // 2.9 on lirs-loop).
        self.sketch.count_unrecorded(hits);
    }

    /// Starts loading what inserting the key with `hash` will read: its counters and ghost
    /// slot, and the entries first in line to leave the window and probation. Without it the
    /// write's cache misses come one after another, each waiting for the one before.
    pub(crate) fn prefetch_insert(&self, hash: u64) {
        self.sketch.prefetch(hash);
        self.ghosts.prefetch(hash, self.ghost_len);
        for queue in [&self.window, &self.probation] {
            if let Some(&h) = queue.handles.front() {
                h.prefetch();
            }
        }
    }

    /// Adds a new entry, evicting as needed.
    pub(crate) fn insert(&mut self, h: H, release: &mut impl FnMut(H, Release)) {
        let held = self.held();
        self.track_ghost_len(held);
        // Past what it is sized for, not at it: a full shard of a power-of-two size holds
        // exactly its sketch's size at every insert, and must not get a new, empty one then.
        if held > self.sketch.capacity() {
            self.sketch.ensure_capacity(held);
            let ghosts = ghost_slots(self.sketch.capacity());
            // The ghosts start over, larger; a run of their recalls goes on (unlike after a
            // shrink or a clear): the cache is still filling, and what the run said of the
            // workload still holds. With nothing remembered, their length need not lag.
            self.ghosts.ensure_len(ghosts);
            self.ghost_len = ghost_slots(held);
        }
        self.sketch.increment(h.hash());
        self.adapt(h.hash());
        self.since_exchange += 1;
        if self.since_exchange >= EXCHANGE_EVERY {
            self.exchange_share();
        }
        self.window.push(h, Region::Window);
        self.maintain(release);
    }

    /// Puts `new` in `old`'s place (a new value for the key): same region, as the most recent
    /// entry there, which is what an access would do.
    pub(crate) fn replace(&mut self, old: H, new: H, release: &mut impl FnMut(H, Release)) {
        let region = old.region();
        self.track_ghost_len(self.held());
        self.remove(old);
        self.sketch.increment(new.hash());
        match region {
            Region::Probation => self.probation.push(new, Region::Probation),
            Region::Protected => self.protected.push(new, Region::Protected),
            Region::Window | Region::Gone => self.window.push(new, Region::Window),
        }
        self.maintain(release);
    }

    /// Takes `h` out of the policy (removed, replaced or expired); its handle is released with
    /// [`Release::Reclaim`] when it leaves its queue.
    pub(crate) fn remove(&mut self, h: H) {
        let queue = match h.region() {
            Region::Window => &mut self.window,
            Region::Probation => &mut self.probation,
            Region::Protected => &mut self.protected,
            Region::Gone => return,
        };
        queue.mark_gone(h);
    }

    /// Releases every handle (the cache is being cleared or dropped).
    pub(crate) fn drain(&mut self, release: &mut impl FnMut(H, Release)) {
        for queue in [&mut self.window, &mut self.probation, &mut self.protected] {
            queue.drain(release);
        }
        // Keys put back after a clear are not returning evictions.
        self.ghosts.clear();
        self.recall_run = 0;
    }

    /// Looks at up to `budget` entries per queue, going round each queue over successive calls,
    /// and takes those `expired` says are out of the policy (as [`remove`](Self::remove) does),
    /// into `out`: expired entries are reclaimed a few at a time by writes, whatever their
    /// place in the queues.
    pub(crate) fn sweep(&mut self, budget: usize, expired: impl Fn(H) -> bool, out: &mut Vec<H>) {
        for queue in [&mut self.window, &mut self.probation, &mut self.protected] {
            let len = queue.handles.len();
            let mut at = queue.sweep_at;
            for _ in 0..budget.min(len) {
                if at >= len {
                    at = 0;
                }
                let h = queue.handles[at];
                if h.region() != Region::Gone && expired(h) {
                    queue.mark_gone(h);
                    out.push(h);
                }
                at += 1;
            }
            queue.sweep_at = at;
        }
    }

    /// Every live handle, in no particular order.
    pub(crate) fn handles(&self) -> impl Iterator<Item = H> + '_ {
        [&self.window, &self.probation, &self.protected]
            .into_iter()
            .flat_map(|q| q.handles.iter().copied())
            .filter(|h| h.region() != Region::Gone)
    }

    fn fold_hits(&mut self, h: H) -> bool {
        let hits = h.take_hits();
        if hits > 0 {
            self.sketch.add_counted(h.hash(), hits);
        }
        hits > 0
    }

    /// Moves window overflow to main through admission, then evicts down to capacity.
    fn maintain(&mut self, release: &mut impl FnMut(H, Release)) {
        // Each pass clears hit counters, so every loop below ends within two turns of a queue.
        let mut budget = self.window.handles.len() * 2 + 2;
        while self.window.weight > self.window_max() && budget > 0 {
            budget -= 1;
            let Some(candidate) = self.window.pop(release) else {
                break;
            };
            if self.fold_hits(candidate) {
                self.window.push(candidate, Region::Window);
                continue;
            }
            self.admit(candidate, release);
        }
        while self.weight() > self.capacity {
            let ghost_len = self.ghost_len;
            let victim = if let Some(v) = self.main_victim(release) {
                self.ghosts.remember(Side::Evicted, v.hash(), ghost_len);
                v
            } else if let Some(v) = self.window.pop(release) {
                self.ghosts.remember(Side::TurnedAway, v.hash(), ghost_len);
                v
            } else {
                break;
            };
            victim.set_region(Region::Gone);
            release(victim, Release::Evicted);
        }
        let max_stale_weight = self.capacity / STALE_WEIGHT_SHARE;
        self.window.compact(max_stale_weight, release);
        self.probation.compact(max_stale_weight, release);
        self.protected.compact(max_stale_weight, release);
    }

    /// Drops every stale handle now (see [`Queue::compact`]), so what left the policy can be
    /// freed.
    pub(crate) fn compact_all(&mut self, release: &mut impl FnMut(H, Release)) {
        for queue in [&mut self.window, &mut self.probation, &mut self.protected] {
            if queue.stale > 0 {
                queue.compact_now(release);
            }
        }
    }

    /// Admits a window leaver to probation if there is room or it is more popular than main's
    /// victim (which is then evicted); otherwise evicts it.
    fn admit(&mut self, candidate: H, release: &mut impl FnMut(H, Release)) {
        let main = self.probation.weight + self.protected.weight;
        if main + candidate.weight() <= self.main_max() {
            self.probation.push(candidate, Region::Probation);
            return;
        }
        // The candidate's frequency without the access that brought it in: it was just counted,
        // while the victim's next access is still to come, so with the raw counts a key seen as
        // often as the victim always looks one access more popular, and steady loops and
        // zig-zag scans churn (measured on lirs-zigzag at 1,500 entries: 0.56 against 0.72).
        // TinyLFU's doorkeeper has the same effect.
        let c = self.sketch.frequency(candidate.hash()).saturating_sub(1);
        // A candidate seen for the first time (most of them when misses abound) cannot beat
        // any victim, whose estimate is never below zero, and is not warm: it is turned away
        // without taking main's victim out of its queue and putting it back.
        if c == 0 && main > 0 {
            self.turn_away(candidate, release);
            return;
        }
        let Some(victim) = self.main_victim(release) else {
            self.probation.push(candidate, Region::Probation);
            return;
        };
        let admit = c > 0
            && (c > self.sketch.frequency(victim.hash())
                || (c >= WARM && self.random().is_multiple_of(128)));
        if admit {
            self.ghosts
                .remember(Side::Evicted, victim.hash(), self.ghost_len);
            victim.set_region(Region::Gone);
            release(victim, Release::Evicted);
            self.probation.push(candidate, Region::Probation);
        } else {
            // The victim stays first in line for the next comparison.
            self.probation.push_front(victim, Region::Probation);
            self.turn_away(candidate, release);
        }
    }

    /// Evicts a window leaver admission turned away.
    fn turn_away(&mut self, candidate: H, release: &mut impl FnMut(H, Release)) {
        self.ghosts
            .remember(Side::TurnedAway, candidate.hash(), self.ghost_len);
        candidate.set_region(Region::Gone);
        release(candidate, Release::Evicted);
    }

    /// Takes main's eviction victim out of its queue: the oldest probation entry not re-used
    /// (re-used ones are promoted on the way), or protected's when probation is empty.
    fn main_victim(&mut self, release: &mut impl FnMut(H, Release)) -> Option<H> {
        let mut budget = (self.probation.handles.len() + self.protected.handles.len()) * 2 + 2;
        while budget > 0 {
            budget -= 1;
            if let Some(h) = self.probation.pop(release) {
                if self.fold_hits(h) {
                    self.resize_window(self.steps.save);
                    self.promote(h, release);
                    continue;
                }
                return Some(h);
            }
            let h = self.protected.pop(release)?;
            if self.fold_hits(h) {
                self.protected.push(h, Region::Protected);
                continue;
            }
            return Some(h);
        }
        self.probation
            .pop(release)
            .or_else(|| self.protected.pop(release))
    }

    /// Moves a re-used probation entry to protected. Protected turns at the pace of
    /// promotions: each one first looks at protected's oldest entry, which goes back to
    /// probation unless it was re-used since it was last looked at; and protected's oldest
    /// unused entries are demoted while it overflows. Without the first, protected turned only
    /// when it overflowed, so the entries of a hot set that had moved on stayed in it as long
    /// as it was under its share (measured: about a third of the cache, for a whole phase of the
    /// shifting hot set at 100,000 entries, with a scratch count of the queues' keys).
    fn promote(&mut self, h: H, release: &mut impl FnMut(H, Release)) {
        if self.protected.weight + h.weight() <= self.protected_max() {
            self.turn_protected(release);
        }
        self.protected.push(h, Region::Protected);
        self.demote_overflow(release);
    }

    /// Demotes protected's oldest unused entries to probation while it is over its share.
    fn demote_overflow(&mut self, release: &mut impl FnMut(H, Release)) {
        let mut budget = self.protected.handles.len() * 2 + 2;
        while self.protected.weight > self.protected_max() && budget > 0 {
            budget -= 1;
            if !self.turn_protected(release) {
                break;
            }
        }
    }

    /// Looks at protected's oldest entry: re-used since it was last looked at, it goes to the
    /// back of protected, otherwise to probation. False if protected is empty.
    fn turn_protected(&mut self, release: &mut impl FnMut(H, Release)) -> bool {
        let Some(oldest) = self.protected.pop(release) else {
            return false;
        };
        if self.fold_hits(oldest) {
            self.protected.push(oldest, Region::Protected);
        } else {
            self.probation.push(oldest, Region::Probation);
        }
        true
    }

    fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// Moves the window's boundary toward the side whose ghost remembers `hash`, the key of a
    /// miss; see the module docs.
    fn adapt(&mut self, hash: u64) {
        let ghost_len = self.ghost_len;
        match self.ghosts.recall(hash, ghost_len) {
            Some(Side::TurnedAway) => {
                self.recall_run = (self.recall_run.max(0) + 1).min(MAX_RUN);
                self.resize_window(self.steps.grow.steepened(self.cache_wide_run()));
            }
            Some(Side::Evicted) => {
                self.recall_run = (self.recall_run.min(0) - 1).max(-MAX_RUN);
                self.resize_window(self.steps.shrink.steepened(self.cache_wide_run()));
            }
            None => {}
        }
    }

    /// The current run of recalls as the whole cache's: this shard's, times the shards (up to
    /// [`RUN_SHARDS`], and to what the ghost slots it uses allow: see
    /// [`GHOST_SLOTS_PER_RUN_SHARD`]), up to [`MAX_RUN`].
    fn cache_wide_run(&self) -> u32 {
        let allowed = (self.ghost_len / GHOST_SLOTS_PER_RUN_SHARD).clamp(1, RUN_SHARDS as usize);
        let shards = self.share.shards().min(allowed as u32);
        (self.recall_run.unsigned_abs() * shards).min(MAX_RUN.unsigned_abs())
    }

    /// Follows the entries held with the ghosts' length, but only once it is off by more than
    /// an eighth: a key's slot is its hash scaled to the length, so a length one slot longer
    /// or shorter moves about half the keys a ghost remembers, which are then forgotten. A
    /// full cache bounded by entries holds a steady count, but one bounded by weight, or
    /// losing entries to removals and expiry, holds a count that wanders by a few entries at
    /// every write; followed exactly, its ghosts lost half their memory at each slot's
    /// change. Computed once per write, not per use: it saves summing the queues three or
    /// four times a miss.
    fn track_ghost_len(&mut self, held: usize) {
        let wanted = ghost_slots(held);
        if wanted.abs_diff(self.ghost_len) * 8 > self.ghost_len {
            // Not past the slots the ghosts have: a shard may hold one entry more than its
            // sketch (and ghosts) are sized for until its next insert grows them.
            self.ghost_len = wanted.min(self.ghosts.len());
        }
    }

    /// How many entries it holds.
    fn held(&self) -> usize {
        [&self.window, &self.probation, &self.protected]
            .iter()
            .map(|q| q.handles.len() - q.stale)
            .sum()
    }

    /// Scales the window's target size by `step` at once, and keeps the step for the
    /// cache-wide share's next exchange; the next [`maintain`](Self::maintain) applies it.
    fn resize_window(&mut self, step: Step) {
        self.pending += step.log2;
        self.set_window(self.window_target * step.factor);
    }

    /// Sets the window's target size, kept between one unit of weight and all but one, and its
    /// integer weight limit with it.
    fn set_window(&mut self, target: f64) {
        let max = self.capacity.saturating_sub(1).max(1) as f64;
        self.window_target = target.clamp(1.0, max);
        self.window_max = self.window_target as u64;
    }

    /// Adds this shard's adjustments to the cache-wide share and takes the result.
    fn exchange_share(&mut self) {
        self.since_exchange = 0;
        self.share.scale(std::mem::take(&mut self.pending));
        self.take_share();
    }

    /// Sizes the window to the cache-wide share.
    fn take_share(&mut self) {
        self.set_window(self.share.fraction() * self.capacity as f64);
    }

    /// The window's weight limit.
    fn window_max(&self) -> u64 {
        self.window_max
    }
}

#[cfg(test)]
mod tests;
