//! Many threads mixing every operation (`compute` and `set_capacity` included) on a small hot
//! key set: values always belong to their key, a thread's own keys never show a stale or
//! removed value, nothing deadlocks, and every value is dropped exactly once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use shardkit_cache::{Cache, Compute};

/// A value naming its key and version, counting live copies.
#[derive(Debug)]
struct Tagged {
    key: u64,
    version: u64,
    live: Arc<AtomicUsize>,
}

impl Tagged {
    fn new(key: u64, version: u64, live: &Arc<AtomicUsize>) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Self {
            key,
            version,
            live: Arc::clone(live),
        }
    }
}

impl Clone for Tagged {
    fn clone(&self) -> Self {
        Self::new(self.key, self.version, &self.live)
    }
}

impl Drop for Tagged {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

const THREADS: u64 = 8;

/// Threads' own keys start here, past every shared key.
const OWN_KEYS: u64 = 1 << 32;

/// Thread `t`'s share of the mix: `ops` operations on keys below `shared_keys` and on a key
/// of its own, in a cache whose capacity it sometimes halves or restores to `capacity`.
fn worker(
    cache: &Cache<u64, Tagged>,
    t: u64,
    ops: u64,
    (shared_keys, capacity): (u64, u64),
    live: &Arc<AtomicUsize>,
) {
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64 ^ (t + 1).wrapping_mul(0x2545_f491_4f6c_dd1d);
    // This thread's own key and the version it last wrote (None: removed by it).
    let own = OWN_KEYS + t;
    let mut own_version = None;
    for i in 0..ops {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let key = rng % shared_keys;
        match rng >> 58 {
            0..=29 => {
                if let Some(v) = cache.get(&key) {
                    assert_eq!(v.key, key);
                }
            }
            30..=44 => cache.insert(key, Tagged::new(key, i, live)),
            45..=49 => {
                // From what is there now: a removal of an odd version, a new version after
                // an even one, an absent key left alone one time in two.
                cache.compute(key, |v| {
                    assert!(v.is_none_or(|v| v.key == key));
                    match v {
                        Some(v) if v.version % 2 == 1 => Compute::Remove,
                        None if i % 2 == 1 => Compute::Keep,
                        _ => Compute::Put(Tagged::new(key, i, live)),
                    }
                });
            }
            50..=54 => {
                if let Some(v) = cache.remove(&key) {
                    assert_eq!(v.key, key);
                }
            }
            55..=56 => {
                own_version = Some(i);
                cache.insert(own, Tagged::new(own, i, live));
            }
            57 => {
                // Only this thread writes its key: `compute` is shown its last write, or
                // nothing (evicted or cleared meanwhile).
                cache.compute(own, |v| {
                    if let Some(v) = v {
                        assert_eq!(Some(v.version), own_version, "thread {t}");
                    }
                    Compute::Put(Tagged::new(own, i, live))
                });
                own_version = Some(i);
            }
            58..=59 => {
                cache.remove(&own);
                own_version = None;
            }
            60 => {
                let _ = cache.contains_key(&key);
            }
            61 => cache.retain(|k, v| {
                assert_eq!(*k, v.key);
                k % 3 != 0 || *k >= OWN_KEYS
            }),
            62 => {
                for (k, v) in cache.iter() {
                    assert_eq!(k, v.key);
                }
            }
            _ => {
                if i % 64 == 0 {
                    cache.clear();
                    own_version = None;
                } else if i % 64 == 1 {
                    cache.set_capacity(capacity >> (rng >> 8 & 1));
                }
            }
        }
        // Only this thread writes its key: a read shows its last write, or nothing (evicted,
        // or cleared by another thread), never an older version or a removed value.
        if let Some(v) = cache.get(&own) {
            assert_eq!(v.key, own);
            assert_eq!(Some(v.version), own_version, "thread {t}");
        }
    }
}

/// Runs the workers on `cache` (at most `capacity` entries, or units of weight) over
/// `shared_keys` keys, then checks every value was dropped once the cache is gone.
fn run_workers(
    cache: Cache<u64, Tagged>,
    capacity: usize,
    shared_keys: u64,
    live: &Arc<AtomicUsize>,
) {
    {
        let cache = Arc::new(cache);
        let ops = if cfg!(debug_assertions) {
            20_000
        } else {
            200_000
        };
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (cache, live) = (Arc::clone(&cache), Arc::clone(live));
                let sizes = (shared_keys, capacity as u64);
                std::thread::spawn(move || worker(&cache, t, ops, sizes, &live))
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Within the capacity the last resize set (the full one, or half of it).
        let now = cache.capacity();
        assert!(
            now == capacity as u64 || now == capacity as u64 / 2,
            "{now}"
        );
        assert!(cache.len() as u64 <= now);
        assert!(cache.weighted_size() <= now);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while live.load(Ordering::SeqCst) != 0 && std::time::Instant::now() < deadline {
        collect_now();
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

/// A cache smaller than the hot set: every insert evicts, and each released entry is handed
/// to the epoch collector on its own.
#[test]
fn eight_threads_mixing_every_operation() {
    let live = Arc::new(AtomicUsize::new(0));
    let cache = Cache::builder().max_capacity(32).shards(2).build().unwrap();
    run_workers(cache, 32, 64, &live);
}

/// A shard large enough that released entries are handed over in batches (of 16) and new
/// entries are built in the memory of freed ones, under the same mix over four times as many
/// keys as fit, so most inserts evict.
#[test]
fn eight_threads_mixing_every_operation_with_batched_reclamation() {
    let live = Arc::new(AtomicUsize::new(0));
    let cache = Cache::builder()
        .max_capacity(1024)
        .shards(1)
        .build()
        .unwrap();
    run_workers(cache, 1024, 4096, &live);
}

/// The same bounded by weight (entries weigh 1 to 4): released entries are handed over when
/// a batch holds a sixty-fourth of the shard's weight, and new entries are built in freed
/// memory.
#[test]
fn eight_threads_mixing_every_operation_with_batched_reclamation_by_weight() {
    let live = Arc::new(AtomicUsize::new(0));
    let cache = Cache::builder()
        .max_weight(2048, |k: &u64, _: &Tagged| 1 + (*k % 4) as u32)
        .shards(1)
        .build()
        .unwrap();
    run_workers(cache, 2048, 4096, &live);
}

/// Frees what was handed over for freeing, by any cache and thread, and this thread's own
/// deferred work, if no thread still holds it: `run_pending_tasks` of any cache does that.
fn collect_now() {
    Cache::<u8, u8>::new(1).run_pending_tasks();
}
