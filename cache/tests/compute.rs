//! `Cache::compute`: atomic read-modify-write of one key. It puts, removes and keeps;
//! the listener hears what it replaced or removed; its function may use the cache and may
//! panic; and under many threads no update is lost.

use std::sync::Arc;

use parking_lot::Mutex;
use shardkit_cache::{Cache, Compute, RemovalCause};

type Heard = Arc<Mutex<Vec<(u64, u64, RemovalCause)>>>;

fn listened(capacity: u64) -> (Cache<u64, u64>, Heard) {
    let heard: Heard = Arc::default();
    let log = Arc::clone(&heard);
    let cache = Cache::builder()
        .max_capacity(capacity)
        .shards(1)
        .eviction_listener(move |k: &u64, v: &u64, cause| log.lock().push((*k, *v, cause)))
        .build()
        .unwrap();
    (cache, heard)
}

fn one_shard(capacity: u64) -> Cache<u64, u64> {
    Cache::builder()
        .max_capacity(capacity)
        .shards(1)
        .build()
        .unwrap()
}

#[test]
fn compute_puts_removes_and_keeps() {
    let (cache, heard) = listened(100);
    let mut seen = Vec::new();
    let mut step = |cache: &Cache<u64, u64>, answer: Compute<u64>| {
        cache.compute(7, |v| {
            seen.push(v.copied());
            answer
        })
    };
    // Absent: removing or keeping leaves it absent, and nothing is heard.
    assert_eq!(step(&cache, Compute::Remove), None);
    assert_eq!(step(&cache, Compute::Keep), None);
    assert!(!cache.contains_key(&7));
    // Absent, then put.
    assert_eq!(step(&cache, Compute::Put(1)), Some(1));
    assert_eq!(cache.get(&7), Some(1));
    // Kept: the value stays, and no new entry replaces it (the listener hears nothing).
    assert_eq!(step(&cache, Compute::Keep), Some(1));
    // Present, then replaced: the listener hears the old value.
    assert_eq!(step(&cache, Compute::Put(2)), Some(2));
    assert_eq!(cache.get(&7), Some(2));
    // Present, then removed.
    assert_eq!(step(&cache, Compute::Remove), None);
    assert_eq!(cache.get(&7), None);
    assert_eq!(cache.len(), 0);
    assert_eq!(seen, [None, None, None, Some(1), Some(1), Some(2)]);
    assert_eq!(
        *heard.lock(),
        [
            (7, 1, RemovalCause::Replaced),
            (7, 2, RemovalCause::Removed)
        ]
    );
}

#[test]
fn compute_is_not_counted_as_a_read() {
    let cache: Cache<u64, u64> = Cache::builder()
        .max_capacity(100)
        .record_stats(true)
        .build()
        .unwrap();
    cache.compute(1, |_| Compute::Put(1));
    cache.compute(1, |v| Compute::Put(v.map_or(0, |n| n + 1)));
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (0, 0));
    assert_eq!(cache.get(&1), Some(2));
}

/// The function runs without the cache's locks: it may read and write the cache, and when it
/// writes the very key it is computing, its answer (made from a value now gone) is dropped and
/// it runs again on the value it wrote.
#[test]
fn compute_may_use_the_cache_and_runs_again_when_its_key_changed() {
    let cache = one_shard(100);
    cache.insert(1, 10);
    let mut runs = 0;
    let answer = cache.compute(1, |v| {
        runs += 1;
        if runs == 1 {
            assert_eq!(v, Some(&10));
            assert_eq!(cache.get(&1), Some(10));
            cache.insert(2, 20);
            cache.insert(1, 100);
        }
        Compute::Put(v.map_or(0, |n| n + 1))
    });
    assert_eq!(runs, 2);
    assert_eq!(answer, Some(101));
    assert_eq!(cache.get(&1), Some(101));
    assert_eq!(cache.get(&2), Some(20));

    // The same for a removal decided from a value that changed meanwhile: the new value is
    // judged, not removed on the old verdict.
    let mut runs = 0;
    let answer = cache.compute(1, |v| {
        runs += 1;
        if runs == 1 {
            cache.insert(1, 7);
            return Compute::Remove;
        }
        if v == Some(&7) {
            Compute::Keep
        } else {
            Compute::Remove
        }
    });
    assert_eq!((runs, answer), (2, Some(7)));
    assert_eq!(cache.get(&1), Some(7));
}

/// A panic in the user's code of a `compute` (its function, or the weigher of its answer)
/// happens outside the cache's locks and before anything is written: the cache is unchanged
/// and goes on working.
#[test]
fn a_panicking_compute_changes_nothing() {
    let cache = Cache::builder()
        .max_weight(100, |_: &u64, v: &u64| {
            assert_ne!(*v, 13, "the weigher refuses 13");
            1
        })
        .shards(1)
        .build()
        .unwrap();
    cache.insert(1, 1);
    for answer in [None, Some(13)] {
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            cache.compute(1, |_| match answer {
                None => panic!("the user's function fails"),
                Some(v) => Compute::Put(v),
            });
        }));
        assert!(panicked.is_err());
        assert_eq!(cache.get(&1), Some(1));
        assert_eq!(cache.len(), 1);
    }
    assert_eq!(
        cache.compute(1, |v| Compute::Put(v.map_or(0, |n| n + 1))),
        Some(2)
    );
    cache.insert(3, 3);
    assert_eq!(cache.len(), 2);
}

/// `get_or_insert_with` caches what it loaded only if the key is still absent: a value
/// written while the load ran is not overwritten (it would lose, say, a counter's increment).
#[test]
fn a_load_does_not_overwrite_a_value_written_while_it_ran() {
    let cache = one_shard(100);
    let got = cache.get_or_insert_with(1, || {
        cache.compute(1, |_| Compute::Put(5));
        42
    });
    assert_eq!(got, 5);
    assert_eq!(cache.get(&1), Some(5));
    // Absent all along: the load is cached.
    assert_eq!(cache.get_or_insert_with(2, || 42), 42);
    assert_eq!(cache.get(&2), Some(42));
}

#[test]
fn a_computed_value_is_weighed_like_an_inserted_one() {
    let heard: Heard = Arc::default();
    let log = Arc::clone(&heard);
    let cache = Cache::builder()
        .max_weight(10, |_: &u64, v: &u64| u32::try_from(*v).unwrap())
        .shards(1)
        .eviction_listener(move |k: &u64, v: &u64, cause| log.lock().push((*k, *v, cause)))
        .build()
        .unwrap();
    assert_eq!(cache.compute(1, |_| Compute::Put(4)), Some(4));
    assert_eq!(cache.weighted_size(), 4);
    // Heavier than the whole cache: evicted at once, and the value it replaced is gone too.
    assert_eq!(cache.compute(1, |_| Compute::Put(11)), Some(11));
    assert_eq!(cache.get(&1), None);
    assert_eq!(cache.weighted_size(), 0);
    assert_eq!(
        *heard.lock(),
        [(1, 4, RemovalCause::Replaced), (1, 11, RemovalCause::Size)]
    );
}

/// Eight threads add to sixteen shared counters while others read them: every addition lands
/// once, whatever interleaving the threads had.
#[test]
fn concurrent_computes_lose_no_update() {
    const THREADS: u64 = 8;
    const ADDS: u64 = 5_000;
    const KEYS: u64 = 16;
    let cache: Cache<u64, u64> = Cache::builder()
        .max_capacity(1_000)
        .shards(2)
        .build()
        .unwrap();
    let added: Vec<[u64; KEYS as usize]> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let cache = &cache;
                s.spawn(move || {
                    let mut added = [0; KEYS as usize];
                    let mut rng = 0x9e37_79b9_7f4a_7c15_u64 ^ (t + 1);
                    for _ in 0..ADDS {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        let key = rng % KEYS;
                        cache.compute(key, |n| Compute::Put(n.map_or(1, |n| n + 1)));
                        added[key as usize] += 1;
                        if rng.is_multiple_of(4) {
                            // Reads interleave with the writes and never go backwards.
                            let before = cache.get(&(rng % KEYS)).unwrap_or(0);
                            let after = cache.get(&(rng % KEYS)).unwrap_or(0);
                            assert!(after >= before);
                        }
                    }
                    added
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    for key in 0..KEYS {
        let want: u64 = added.iter().map(|a| a[key as usize]).sum();
        assert_eq!(cache.get(&key), Some(want), "key {key}");
    }
}
