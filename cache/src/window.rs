//! The admission window's share of the cache, tuned by every shard's policy together.
//!
//! Shards split the keys by hash, so each sees the same kind of traffic and would settle on
//! the same window share; but each sees only its part of the ghost recalls that move it, and
//! the recalls that say "a much larger window would hit" are rare. Pooling them lets the share
//! follow the workload on all of the cache's evidence instead of one shard's.

use std::sync::Arc;
// Std's atomic even under loom: the share is a tuning hint, not a synchronisation protocol
// (nothing is published through it, and any interleaving of adjustments is a valid share).
use std::sync::atomic::{AtomicI64, Ordering};

use crossbeam_utils::CachePadded;

/// Fixed-point units per doubling of the share.
const SCALE: f64 = (1u64 << 24) as f64;

/// The share new caches start with: 1% of the capacity, W-TinyLFU's default.
const INITIAL: f64 = 0.01;

/// The window's share of each shard's capacity, held as a base-2 logarithm in fixed point, so
/// that shards combine multiplicative adjustments by adding them: a compare-and-swap each
/// (retried if another shard's lands first), none lost to a race.
#[derive(Debug)]
pub(crate) struct WindowShare {
    /// Padded: every shard writes it, every few dozen inserts.
    log2: CachePadded<AtomicI64>,
    /// The smallest share (one unit of weight of the largest shard), in the same units; moved
    /// when the cache is resized. The share read is never below it, but the share learnt may
    /// be: a resize moves the floor and leaves the share alone (see [`resize`](Self::resize)).
    floor: AtomicI64,
    /// How many shards tune it: each sees about this fraction of the cache's signals.
    shards: u32,
}

impl WindowShare {
    /// The starting share, 1% (or one unit of weight, if more), for `shards` shards of up to
    /// `largest_shard` units of weight.
    pub(crate) fn for_shards(largest_shard: u64, shards: u32) -> Arc<Self> {
        let floor = floor_for(largest_shard);
        Arc::new(Self {
            log2: CachePadded::new(AtomicI64::new(log2_fixed(INITIAL).clamp(floor, 0))),
            floor: AtomicI64::new(floor),
            shards: shards.max(1),
        })
    }

    /// How many shards tune it.
    pub(crate) fn shards(&self) -> u32 {
        self.shards
    }

    /// Moves the floor to one unit of weight of the largest shard after a resize. The share
    /// learnt stays as it was: a share below the new floor (the cache shrank) reads as the
    /// floor until the cache grows back or a signal to grow the window arrives, so a
    /// temporary shrink does not erase what the shards learnt.
    pub(crate) fn resize(&self, largest_shard: u64) {
        self.floor
            .store(floor_for(largest_shard), Ordering::Relaxed);
    }

    /// Scales the share by `2^(delta / SCALE)` (a `delta` from [`log2_fixed`]), within its
    /// bounds.
    pub(crate) fn scale(&self, delta: i64) {
        if delta == 0 {
            return;
        }
        // Clamped at the bounds, so a run of signals past one is not owed back before the share
        // moves again. A share a resize left below the floor is not raised by a signal to
        // shrink, and grows from the floor, where it reads. (`fetch_update` is std's name for
        // this up to the crate's minimum Rust.)
        let floor = self.floor.load(Ordering::Relaxed);
        let _ = self
            .log2
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(if delta < 0 {
                    v.saturating_add(delta).max(v.min(floor))
                } else {
                    v.max(floor).saturating_add(delta).min(0)
                })
            });
    }

    /// The share, as a fraction of the capacity (at most 1).
    pub(crate) fn fraction(&self) -> f64 {
        let floor = self.floor.load(Ordering::Relaxed);
        (self.log2.load(Ordering::Relaxed).max(floor) as f64 / SCALE).exp2()
    }
}

/// The smallest share for shards of up to `largest_shard` units of weight: one unit.
fn floor_for(largest_shard: u64) -> i64 {
    log2_fixed(1.0 / largest_shard.max(1) as f64)
}

/// `x`'s base-2 logarithm in the share's fixed point: a multiplicative step, as the share
/// adds it.
pub(crate) fn log2_fixed(x: f64) -> i64 {
    (x.log2() * SCALE).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_multiplies_and_is_undone_by_the_inverse() {
        let share = WindowShare::for_shards(10_000, 1);
        assert!((share.fraction() - 0.01).abs() < 1e-9);
        for _ in 0..100 {
            share.scale(log2_fixed(1.005));
        }
        assert!((share.fraction() - 0.01 * 1.005f64.powi(100)).abs() < 1e-6);
        for _ in 0..100 {
            share.scale(log2_fixed(1.0 / 1.005));
        }
        assert!((share.fraction() - 0.01).abs() < 1e-6);
    }

    #[test]
    fn a_resize_moves_the_floor_and_keeps_the_share_learnt() {
        let share = WindowShare::for_shards(10_000, 1);
        // Shrunk to shards of 10: the 1% learnt reads as one unit of the new shards, 10%.
        share.resize(10);
        assert!((share.fraction() - 0.1).abs() < 1e-6);
        // A signal to shrink the window cannot move it below where it reads.
        share.scale(log2_fixed(0.5));
        assert!((share.fraction() - 0.1).abs() < 1e-6);
        // Grown back, the share learnt is still there.
        share.resize(10_000);
        assert!((share.fraction() - 0.01).abs() < 1e-6);
        // A signal to grow after a shrink grows the window from where it read.
        share.resize(10);
        share.scale(log2_fixed(2.0));
        share.resize(10_000);
        assert!((share.fraction() - 0.2).abs() < 1e-6);
    }

    #[test]
    fn the_share_stays_between_one_entry_and_the_whole_shard() {
        let share = WindowShare::for_shards(1_000, 1);
        for _ in 0..10_000 {
            share.scale(log2_fixed(0.5));
        }
        assert!((share.fraction() - 0.001).abs() < 1e-9);
        // Pushed past the floor, it climbs back as soon as it is scaled up.
        share.scale(log2_fixed(2.0));
        assert!((share.fraction() - 0.002).abs() < 1e-9);
        for _ in 0..10_000 {
            share.scale(log2_fixed(2.0));
        }
        assert_eq!(share.fraction(), 1.0);
    }
}
