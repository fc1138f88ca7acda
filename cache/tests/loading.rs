//! Single-flight loading: one load per missing key however many callers ask at once; a loader
//! that panics or fails never leaves the others hanging.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use shardkit_cache::{Cache, RemovalCause};

#[test]
fn concurrent_callers_share_one_load() {
    let cache = Arc::new(Cache::new(100));
    let loads = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (cache, loads, barrier) = (cache.clone(), loads.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                cache.get_or_insert_with("key".to_string(), || {
                    loads.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(100));
                    7
                })
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 7);
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert_eq!(cache.get("key"), Some(7));
}

#[test]
fn a_panicking_loader_releases_the_waiters_who_load_again() {
    let cache = Arc::new(Cache::new(100));
    let loads = Arc::new(AtomicUsize::new(0));
    let (started, loading) = std::sync::mpsc::channel();
    let leader = {
        let (cache, loads) = (cache.clone(), loads.clone());
        std::thread::spawn(move || {
            cache.get_or_insert_with(1u64, || {
                loads.fetch_add(1, Ordering::SeqCst);
                started.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(100));
                panic!("the backend is down")
            })
        })
    };
    // The waiters come once the leader is loading (a sleep instead let a slow-starting leader
    // find a waiter's value now and then).
    loading.recv().unwrap();
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let (cache, loads) = (cache.clone(), loads.clone());
            std::thread::spawn(move || {
                cache.get_or_insert_with(1u64, || {
                    loads.fetch_add(1, Ordering::SeqCst);
                    11
                })
            })
        })
        .collect();
    assert!(leader.join().is_err());
    for w in waiters {
        assert_eq!(w.join().unwrap(), 11);
    }
    // The panicked load and exactly one retry.
    assert_eq!(loads.load(Ordering::SeqCst), 2);
}

#[test]
fn a_failed_load_is_shared_and_not_cached() {
    let cache = Arc::new(Cache::new(100));
    let loads = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (cache, loads, barrier) = (cache.clone(), loads.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                cache.try_get_or_insert_with(5u64, || {
                    loads.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(100));
                    Err::<u64, _>(format!("load {}", loads.load(Ordering::SeqCst)))
                })
            })
        })
        .collect();
    let errors: Vec<Arc<String>> = threads
        .into_iter()
        .map(|t| t.join().unwrap().unwrap_err())
        .collect();
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert!(errors.iter().all(|e| Arc::ptr_eq(e, &errors[0])));
    assert!(!cache.contains_key(&5));
    // Nothing was cached: the next call loads again.
    assert_eq!(
        cache.try_get_or_insert_with(5u64, || Ok::<_, String>(9)),
        Ok(9)
    );
    assert_eq!(loads.load(Ordering::SeqCst), 1);
}

#[test]
fn load_stats_count_successes_failures_and_panics_only_when_recorded() {
    let cache: Cache<u32, u32> = Cache::builder()
        .max_capacity(100)
        .record_stats(true)
        .build()
        .unwrap();
    assert_eq!(cache.get_or_insert_with(1, || 10), 10);
    assert_eq!(cache.get_or_insert_with(1, || unreachable!()), 10);
    assert!(
        cache
            .try_get_or_insert_with(2, || Err::<u32, _>("down"))
            .is_err()
    );
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        cache.get_or_insert_with(3, || {
            std::thread::sleep(std::time::Duration::from_millis(5));
            panic!("loader bug")
        })
    }));
    assert!(panicked.is_err());
    let stats = cache.stats();
    assert_eq!((stats.load_successes, stats.load_failures), (1, 2));
    assert!(stats.total_load_time >= std::time::Duration::from_millis(5));

    let quiet: Cache<u32, u32> = Cache::new(100);
    quiet.get_or_insert_with(1, || 10);
    let stats = quiet.stats();
    assert_eq!(
        (stats.load_successes, stats.total_load_time),
        (0, std::time::Duration::ZERO)
    );
}

/// A listener may load the key it hears of: the load that evicted it has landed by then, so
/// the listener's own load runs instead of waiting on its caller's flight for ever.
#[test]
fn a_listener_can_load_the_key_whose_load_it_hears_evicted() {
    type Shared = Cache<u32, Vec<u8>>;
    let cell: Arc<std::sync::OnceLock<Shared>> = Arc::new(std::sync::OnceLock::new());
    let listener_cell = Arc::clone(&cell);
    let built = Cache::builder()
        .max_weight(100, |_: &u32, v: &Vec<u8>| v.len() as u32)
        .shards(1)
        .eviction_listener(move |k: &u32, v: &Vec<u8>, cause| {
            // A value too heavy to cache: load a small placeholder for its key instead.
            if cause == RemovalCause::Size && v.len() > 100 {
                let cache = listener_cell.get().expect("built");
                cache.get_or_insert_with(*k, || vec![0; 1]);
            }
        })
        .build()
        .unwrap();
    assert!(cell.set(built).is_ok());
    let (done, finished) = std::sync::mpsc::channel();
    let cache = Arc::clone(&cell);
    std::thread::spawn(move || {
        let loaded = cache
            .get()
            .unwrap()
            .get_or_insert_with(7, || vec![0; 1_000]);
        let _ = done.send(loaded.len());
    });
    // A deadlock detector, not a timing: the call takes microseconds when it does not hang.
    let loaded = finished
        .recv_timeout(Duration::from_secs(30))
        .expect("the listener's load waited on its own caller's flight");
    assert_eq!(loaded, 1_000, "the caller gets what it loaded");
    assert_eq!(cell.get().unwrap().get(&7), Some(vec![0; 1]));
}
