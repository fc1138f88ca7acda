//! The caches compared in `compare cache`, `cache-memory` and `cache-profile`, behind one
//! interface; the synthetic key streams they run; and the timed replay of those streams.

use std::time::Instant;

use rand::SeedableRng;
use rand::distributions::Distribution;

/// A cache driven through its plain `get` and `insert` (no loader APIs), so every crate does
/// the same work: `u64` keys and values, values returned by value.
pub trait BenchCache: Send + Sync {
    /// The crate's name in tables.
    const NAME: &'static str;
    /// A cache of `capacity` entries in the crate's default configuration.
    fn with_capacity(capacity: usize) -> Self;
    /// `get`.
    fn get(&self, key: u64) -> Option<u64>;
    /// `insert`.
    fn insert(&self, key: u64, value: u64);
    /// Lets deferred work run (moka's maintenance); a no-op for the others.
    fn settle(&self) {}
    /// Entries resident (after `settle`).
    fn resident(&self) -> usize;
    /// `get`, and `insert` on a miss; whether it hit.
    fn access(&self, key: u64) -> bool {
        self.get(key).is_some() || {
            self.insert(key, key);
            false
        }
    }
}

/// An adapter for a cache whose `get` takes `&K` and returns `Option<V>` (ours and the
/// peers' `sync::Cache`s).
macro_rules! sync_cache_adapter {
    ($(#[$doc:meta])* $name:ident, $label:literal, $ty:ty, $new:expr, $len:expr $(, $settle:expr)?) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name($ty);
        impl BenchCache for $name {
            const NAME: &'static str = $label;
            fn with_capacity(capacity: usize) -> Self {
                Self($new(capacity))
            }
            fn get(&self, key: u64) -> Option<u64> {
                self.0.get(&key)
            }
            fn insert(&self, key: u64, value: u64) {
                self.0.insert(key, value);
            }
            $(fn settle(&self) {
                $settle(&self.0);
            })?
            fn resident(&self) -> usize {
                $len(&self.0)
            }
        }
    };
}

sync_cache_adapter!(
    /// shardkit-cache.
    Shardkit,
    "shardkit",
    shardkit_cache::Cache<u64, u64>,
    shardkit_cache::Cache::new,
    |c: &shardkit_cache::Cache<u64, u64>| c.len()
);

sync_cache_adapter!(
    /// shardkit-cache bounded by weight (`max_weight`), every entry weighing 1: the same
    /// capacity in entries as [`Shardkit`], through the weighted path.
    ShardkitWeighted,
    "shardkit-weighted",
    shardkit_cache::Cache<u64, u64>,
    |c: usize| shardkit_cache::Cache::builder()
        .max_weight(c as u64, |_: &u64, _: &u64| 1)
        .build()
        .expect("a weight capacity"),
    |c: &shardkit_cache::Cache<u64, u64>| c.len()
);

sync_cache_adapter!(
    /// moka's synchronous cache.
    Moka,
    "moka",
    moka::sync::Cache<u64, u64>,
    |c: usize| moka::sync::Cache::new(c as u64),
    |c: &moka::sync::Cache<u64, u64>| c.entry_count() as usize,
    |c: &moka::sync::Cache<u64, u64>| c.run_pending_tasks()
);

sync_cache_adapter!(
    /// moka's synchronous cache built [`moka_excess`] entries smaller than the capacity asked
    /// for, so that one thread never sees it hold more than that capacity: moka at the same
    /// peak number of entries as the caches that keep their bound at every insert. Mostly a
    /// lower bound for moka: its reads run its maintenance too (every 64), so where some
    /// accesses hit, moka as it runs holds fewer than [`moka_excess`] extra entries at its
    /// peak, and this one holds less than the capacity, well under it at small capacities. At
    /// a capacity of [`moka_excess`] or less it is built with a capacity of 1, and can hold
    /// more than asked.
    MokaHeldToCapacity,
    "moka held to capacity",
    moka::sync::Cache<u64, u64>,
    |c: usize| moka::sync::Cache::new(c.saturating_sub(moka_excess()).max(1) as u64),
    |c: &moka::sync::Cache<u64, u64>| c.entry_count() as usize,
    |c: &moka::sync::Cache<u64, u64>| c.run_pending_tasks()
);

/// The most entries beyond its capacity a moka cache holds while one thread inserts new keys
/// and does nothing else, measured once per process (64 with moka 0.12). moka queues inserts
/// and applies them in batches (its maintenance runs once 64 writes or 64 reads are queued, or
/// 300 ms have passed); a queued insert is already readable, and eviction for it waits for
/// the batch, so between batches the cache holds more than its capacity. With several
/// threads inserting at once, the queue can grow longer.
pub fn moka_excess() -> usize {
    static EXCESS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *EXCESS.get_or_init(|| {
        const CAPACITY: u64 = 1_000;
        let cache = moka::sync::Cache::<u64, u64>::new(CAPACITY);
        (0..3 * CAPACITY)
            .map(|k| {
                cache.insert(k, k);
                cache.iter().count().saturating_sub(CAPACITY as usize)
            })
            .max()
            .unwrap_or(0)
    })
}

sync_cache_adapter!(
    /// quick_cache's synchronous cache.
    QuickCache,
    "quick_cache",
    quick_cache::sync::Cache<u64, u64>,
    quick_cache::sync::Cache::new,
    |c: &quick_cache::sync::Cache<u64, u64>| c.len()
);

sync_cache_adapter!(
    /// mini-moka's synchronous cache.
    MiniMoka,
    "mini-moka",
    mini_moka::sync::Cache<u64, u64>,
    |c: usize| mini_moka::sync::Cache::new(c as u64),
    |c: &mini_moka::sync::Cache<u64, u64>| c.entry_count() as usize
);

/// The `lru` crate's exact LRU behind a `parking_lot` mutex: the baseline.
#[derive(Debug)]
pub struct MutexLru(parking_lot::Mutex<lru::LruCache<u64, u64>>);
impl BenchCache for MutexLru {
    const NAME: &'static str = "mutex-lru";
    fn with_capacity(capacity: usize) -> Self {
        let capacity = std::num::NonZeroUsize::new(capacity.max(1)).expect("at least one");
        Self(parking_lot::Mutex::new(lru::LruCache::new(capacity)))
    }
    fn get(&self, key: u64) -> Option<u64> {
        self.0.lock().get(&key).copied()
    }
    fn insert(&self, key: u64, value: u64) {
        self.0.lock().put(key, value);
    }
    fn resident(&self) -> usize {
        self.0.lock().len()
    }
}

/// Scrambles a rank into a key (bijectively), so hot keys are not small consecutive integers.
pub fn scramble(rank: u64) -> u64 {
    let x = (rank + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^ (x >> 32)
}

/// `n` keys drawn from Zipf(`s`) over `keyspace` ranks, seeded, each rank shifted by `offset`
/// before scrambling (so streams with different offsets share no keys).
pub fn zipf_stream(n: usize, keyspace: u64, s: f64, seed: u64, offset: u64) -> Vec<u64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let zipf = rand_distr::Zipf::new(keyspace, s).expect("valid Zipf parameters");
    (0..n)
        .map(|_| scramble(zipf.sample(&mut rng) as u64 - 1 + offset))
        .collect()
}

/// Million operations per second of one thread per stream, each replaying its stream (`get`
/// only, or `get` and `insert` on a miss) through a cache of `capacity` warmed with `warm`.
pub fn throughput<C: BenchCache>(
    capacity: usize,
    warm: &[u64],
    streams: &[Vec<u64>],
    get_only: bool,
) -> f64 {
    let cache = C::with_capacity(capacity);
    for &k in warm {
        if get_only {
            cache.insert(k, k);
        } else {
            cache.access(k);
        }
    }
    cache.settle();
    replay(&cache, streams, |cache, k| {
        if get_only {
            cache.get(k).is_some()
        } else {
            cache.access(k)
        }
    })
}

/// A cache with a call that updates one key atomically, for the atomic-update workload: ours
/// (`compute`), moka (`entry(key).and_compute_with`) and the mutex baseline (its lock held
/// across the get and the put). quick_cache and mini-moka have no such call.
pub trait BenchCompute: BenchCache {
    /// Adds one to `key`'s count (starting it at 1 when absent), atomically; whether the key
    /// was cached.
    fn add_one(&self, key: u64) -> bool;
}

/// [`BenchCompute::add_one`] through shardkit-cache's `compute`.
fn shardkit_add_one(cache: &shardkit_cache::Cache<u64, u64>, key: u64) -> bool {
    let mut cached = false;
    cache.compute(key, |n| {
        cached = n.is_some();
        shardkit_cache::Compute::Put(n.map_or(1, |n| n + 1))
    });
    cached
}

impl BenchCompute for Shardkit {
    fn add_one(&self, key: u64) -> bool {
        shardkit_add_one(&self.0, key)
    }
}

impl BenchCompute for ShardkitWeighted {
    fn add_one(&self, key: u64) -> bool {
        shardkit_add_one(&self.0, key)
    }
}

impl BenchCompute for Moka {
    fn add_one(&self, key: u64) -> bool {
        use moka::ops::compute::{CompResult, Op};
        let done = self
            .0
            .entry(key)
            .and_compute_with(|e| Op::Put(e.map_or(1, |e| e.into_value() + 1)));
        matches!(done, CompResult::ReplacedWith(_))
    }
}

impl BenchCompute for QuickCache {
    fn add_one(&self, key: u64) -> bool {
        use quick_cache::sync::{EntryAction, EntryResult};
        // In place under the shard's write lock; an absent key gets a placeholder that makes
        // concurrent callers wait for this one's insert, then update what it inserted.
        match self.0.entry(&key, None, |_, n| {
            *n += 1;
            EntryAction::Retain(())
        }) {
            EntryResult::Retained(()) => true,
            EntryResult::Vacant(guard) => {
                let _ = guard.insert(1);
                false
            }
            EntryResult::Removed(..) | EntryResult::Replaced(..) | EntryResult::Timeout => {
                unreachable!("the callback retains, and there is no timeout")
            }
        }
    }
}

impl BenchCompute for MutexLru {
    fn add_one(&self, key: u64) -> bool {
        let mut lru = self.0.lock();
        let old = lru.get(&key).copied();
        lru.put(key, old.map_or(1, |n| n + 1));
        old.is_some()
    }
}

/// Million operations per second of one thread per stream, each adding one to the count of
/// every key of its stream through a cache of `capacity` warmed with `warm`.
pub fn compute_throughput<C: BenchCompute>(
    capacity: usize,
    warm: &[u64],
    streams: &[Vec<u64>],
) -> f64 {
    let cache = C::with_capacity(capacity);
    for &k in warm {
        cache.add_one(k);
    }
    cache.settle();
    replay(&cache, streams, C::add_one)
}

/// Million operations per second of one thread per stream, each calling `op` on every key of
/// its stream (barrier release to last join).
fn replay<C: Sync>(cache: &C, streams: &[Vec<u64>], op: impl Fn(&C, u64) -> bool + Sync) -> f64 {
    let barrier = std::sync::Barrier::new(streams.len() + 1);
    let (barrier, op) = (&barrier, &op);
    std::thread::scope(|scope| {
        for stream in streams {
            scope.spawn(move || {
                barrier.wait();
                let mut hits = 0u64;
                for &k in stream {
                    hits += u64::from(op(cache, k));
                }
                std::hint::black_box(hits);
            });
        }
        barrier.wait();
        // Taken at the barrier's release; read after the scope has joined every thread.
        Instant::now()
    })
    .elapsed()
    .as_secs_f64()
    .recip()
        * (streams.iter().map(Vec::len).sum::<usize>() as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The most entries `cache` shows (queued inserts included) after any insert of `keys`,
    /// each a `get` and an `insert` on a miss.
    fn peak_held(cache: &moka::sync::Cache<u64, u64>, keys: impl Iterator<Item = u64>) -> usize {
        keys.filter(|k| cache.get(k).is_none())
            .map(|k| {
                cache.insert(k, k);
                cache.iter().count()
            })
            .max()
            .unwrap_or(0)
    }

    /// The "moka held" column's claim: built [`moka_excess`] smaller, moka never holds more
    /// than the capacity asked for, whether every access inserts or some hit; moka built at
    /// that capacity does hold more.
    #[test]
    fn moka_held_to_capacity_never_holds_more_than_it() {
        // The smallest capacity of the hit-ratio table.
        const CAPACITY: usize = 252;
        assert!(moka_excess() > 0, "moka queues no inserts now");
        let new_keys: Vec<u64> = (0..4 * CAPACITY as u64).collect();
        // Keys drawn evenly from a set twice the capacity: about half the accesses hit, and
        // each miss evicts.
        let mixed_keys: Vec<u64> = (0..20 * CAPACITY as u64)
            .map(|i| scramble(i) % (2 * CAPACITY as u64))
            .collect();
        for (pattern, keys) in [("new keys", new_keys), ("mixed keys", mixed_keys)] {
            let held = MokaHeldToCapacity::with_capacity(CAPACITY);
            let held = peak_held(&held.0, keys.iter().copied());
            let shipped = peak_held(&Moka::with_capacity(CAPACITY).0, keys.iter().copied());
            assert!(
                held <= CAPACITY && shipped > CAPACITY,
                "{pattern}: held {held}, shipped {shipped}"
            );
        }
    }
}
