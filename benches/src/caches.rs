//! The caches compared in `compare cache` and `cache-memory`, behind one interface, and the
//! synthetic key streams they run.

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

/// shardkit-cache.
#[derive(Debug)]
pub struct Shardkit(shardkit_cache::Cache<u64, u64>);
impl BenchCache for Shardkit {
    const NAME: &'static str = "shardkit";
    fn with_capacity(capacity: usize) -> Self {
        Self(shardkit_cache::Cache::new(capacity))
    }
    fn get(&self, key: u64) -> Option<u64> {
        self.0.get(&key)
    }
    fn insert(&self, key: u64, value: u64) {
        self.0.insert(key, value);
    }
    fn resident(&self) -> usize {
        self.0.len()
    }
}

/// moka's synchronous cache.
#[derive(Debug)]
pub struct Moka(moka::sync::Cache<u64, u64>);
impl BenchCache for Moka {
    const NAME: &'static str = "moka";
    fn with_capacity(capacity: usize) -> Self {
        Self(moka::sync::Cache::new(capacity as u64))
    }
    fn get(&self, key: u64) -> Option<u64> {
        self.0.get(&key)
    }
    fn insert(&self, key: u64, value: u64) {
        self.0.insert(key, value);
    }
    fn resident(&self) -> usize {
        self.0.entry_count() as usize
    }
    fn settle(&self) {
        self.0.run_pending_tasks();
    }
}

/// quick_cache's synchronous cache.
#[derive(Debug)]
pub struct QuickCache(quick_cache::sync::Cache<u64, u64>);
impl BenchCache for QuickCache {
    const NAME: &'static str = "quick_cache";
    fn with_capacity(capacity: usize) -> Self {
        Self(quick_cache::sync::Cache::new(capacity))
    }
    fn get(&self, key: u64) -> Option<u64> {
        self.0.get(&key)
    }
    fn insert(&self, key: u64, value: u64) {
        self.0.insert(key, value);
    }
    fn resident(&self) -> usize {
        self.0.len()
    }
}

/// mini-moka's synchronous cache.
#[derive(Debug)]
pub struct MiniMoka(mini_moka::sync::Cache<u64, u64>);
impl BenchCache for MiniMoka {
    const NAME: &'static str = "mini-moka";
    fn with_capacity(capacity: usize) -> Self {
        Self(mini_moka::sync::Cache::new(capacity as u64))
    }
    fn get(&self, key: u64) -> Option<u64> {
        self.0.get(&key)
    }
    fn insert(&self, key: u64, value: u64) {
        self.0.insert(key, value);
    }
    fn resident(&self) -> usize {
        self.0.entry_count() as usize
    }
}

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
