//! Single-flight loading: one load per missing key however many callers ask at once; a loader
//! that panics or fails never leaves the others hanging.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use shardkit_cache::{Cache, Compute, RemovalCause};

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
    let (answer, answers) = std::sync::mpsc::channel();
    for _ in 0..4 {
        let (cache, loads, answer) = (cache.clone(), loads.clone(), answer.clone());
        std::thread::spawn(move || {
            let _ = answer.send(cache.get_or_insert_with(1u64, || {
                loads.fetch_add(1, Ordering::SeqCst);
                11
            }));
        });
    }
    assert!(leader.join().is_err());
    for _ in 0..4 {
        // A deadlock detector, not a timing: a waiter left hanging fails here, not hangs.
        let got = answers.recv_timeout(Duration::from_secs(30));
        assert_eq!(got.expect("a waiter was left hanging"), 11);
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
    let reloaded = AtomicUsize::new(0);
    let again = cache.try_get_or_insert_with(5u64, || {
        reloaded.fetch_add(1, Ordering::SeqCst);
        Ok::<_, String>(9)
    });
    assert_eq!(again, Ok(9));
    assert_eq!(reloaded.load(Ordering::SeqCst), 1);
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

/// A load of `key` on another thread, held until the sender is used; returns once it runs.
fn held_load<K: std::hash::Hash + Eq + Clone + Send + Sync + 'static>(
    cache: &Arc<Cache<K, String>>,
    key: K,
    value: &'static str,
) -> (std::thread::JoinHandle<String>, std::sync::mpsc::Sender<()>) {
    let (started, loading) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let cache = cache.clone();
    let leader = std::thread::spawn(move || {
        cache.get_or_insert_with(key, || {
            started.send(()).unwrap();
            released.recv().unwrap();
            value.to_string()
        })
    });
    loading.recv().unwrap();
    (leader, release)
}

/// What a removal (or a clear) while a key loads means for the load: the loader may have read
/// what the removal invalidates, so its value is not cached; callers from then on load afresh.
fn a_load_in_flight_is_not_cached_after(invalidate: impl Fn(&Cache<u64, String>, u64)) {
    let cache = Arc::new(Cache::new(100));
    let (leader, release) = held_load(&cache, 1, "read before the removal");
    invalidate(&cache, 1);
    // A caller after the removal does not wait for the old load: it loads afresh.
    let (done, finished) = std::sync::mpsc::channel();
    {
        let cache = cache.clone();
        std::thread::spawn(move || {
            let _ = done.send(cache.get_or_insert_with(1, || "read after the removal".into()));
        });
    }
    // A deadlock detector, not a timing: the old load is only released below.
    let fresh = finished.recv_timeout(Duration::from_secs(30));
    release.send(()).unwrap();
    let fresh = fresh.expect("a caller after the removal waited for the old load");
    assert_eq!(fresh, "read after the removal");
    // As with any value cached while a load runs, that value stays, and is what the old
    // load's caller gets.
    assert_eq!(leader.join().unwrap(), "read after the removal");
    assert_eq!(cache.get(&1).as_deref(), Some("read after the removal"));
    // And with no caller after it, nothing at all is cached.
    let (leader, release) = held_load(&cache, 2, "stale");
    invalidate(&cache, 2);
    release.send(()).unwrap();
    assert_eq!(leader.join().unwrap(), "stale");
    assert_eq!(
        cache.get(&2),
        None,
        "the stale load was cached after the removal"
    );
}

#[test]
fn a_removal_while_a_key_loads_keeps_the_load_from_being_cached() {
    a_load_in_flight_is_not_cached_after(|cache, key| {
        cache.remove(&key);
    });
}

#[test]
fn a_clear_while_a_key_loads_keeps_the_load_from_being_cached() {
    a_load_in_flight_is_not_cached_after(|cache, _| cache.clear());
}

/// `compute` answering `Remove` (a conditional removal) is a removal too, though the key is
/// absent while it loads.
#[test]
fn a_removal_by_compute_while_a_key_loads_keeps_the_load_from_being_cached() {
    a_load_in_flight_is_not_cached_after(|cache, key| {
        cache.compute(key, |_| Compute::Remove);
    });
}

/// The calls by reference (a `&str` for a `String` key) find what the owned ones cached, cache
/// under the owned key, and share a load in flight with them.
#[test]
fn callers_by_reference_share_loads_with_owned_ones() {
    let cache: Arc<Cache<String, String>> = Arc::new(
        Cache::builder()
            .max_capacity(100)
            .record_stats(true)
            .build()
            .unwrap(),
    );
    assert_eq!(cache.get_or_insert_with_by_ref("a", || "1".into()), "1");
    assert_eq!(cache.get("a").as_deref(), Some("1"));
    let cached = cache.get_or_insert_with("a".to_string(), || unreachable!("cached"));
    assert_eq!(cached, "1");
    let failed = cache.try_get_or_insert_with_by_ref("b", || Err::<String, _>("down"));
    assert_eq!(*failed.unwrap_err(), "down");
    assert_eq!(cache.get("b"), None);
    // A caller by reference waits for an owned caller's load of the same key.
    let (leader, release) = held_load(&cache, "c".to_string(), "loaded once");
    let misses = cache.stats().misses;
    let (done, finished) = std::sync::mpsc::channel();
    {
        let cache = cache.clone();
        std::thread::spawn(move || {
            let _ = done.send(cache.get_or_insert_with_by_ref("c", || panic!("loaded twice")));
        });
    }
    // Released once the caller by reference has missed: it then joins the flight (a load of
    // its own would panic, and the deadline below fail), or, very rarely, finds the landed
    // value, which it returns without loading either.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while cache.stats().misses == misses && std::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
    release.send(()).unwrap();
    let waited = finished
        .recv_timeout(Duration::from_secs(30))
        .expect("the caller by reference hung");
    assert_eq!(
        (leader.join().unwrap(), waited.as_str()),
        ("loaded once".into(), "loaded once")
    );
}

/// A load that asks for its own key (here directly; a listener it sets off could too) loads it
/// again rather than wait for itself.
#[test]
fn a_load_that_asks_for_its_own_key_does_not_wait_for_itself() {
    let cache = Arc::new(Cache::new(100));
    let (done, finished) = std::sync::mpsc::channel();
    {
        let cache = cache.clone();
        std::thread::spawn(move || {
            let outer = cache.get_or_insert_with(3u64, || {
                let inner = cache.get_or_insert_with(3u64, || 30);
                inner + 1
            });
            let _ = done.send(outer);
        });
    }
    // A deadlock detector, not a timing: the call takes microseconds when it does not hang.
    let outer = finished
        .recv_timeout(Duration::from_secs(30))
        .expect("the load waited for itself");
    // The inner load was cached first; the outer one does not overwrite it.
    assert_eq!(outer, 30);
    assert_eq!(cache.get(&3), Some(30));
}

/// Callers with one error type share a load even while one with another type is in flight
/// for the key (flights of different types cannot be shared).
#[test]
fn callers_share_a_load_whatever_other_error_types_are_loading_the_key() {
    #[derive(Debug)]
    struct Unavailable;
    let cache = Arc::new(Cache::new(100));
    let (started, loading) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let infallible = {
        let cache = cache.clone();
        std::thread::spawn(move || {
            cache.get_or_insert_with(4u64, || {
                started.send(()).unwrap();
                released.recv().unwrap();
                40
            })
        })
    };
    loading.recv().unwrap();
    let fallible_loads = Arc::new(AtomicUsize::new(0));
    let (first_started, first_loading) = std::sync::mpsc::channel();
    let fallible = |signal: Option<std::sync::mpsc::Sender<()>>| {
        let (cache, loads) = (cache.clone(), fallible_loads.clone());
        std::thread::spawn(move || {
            cache.try_get_or_insert_with(4u64, || {
                loads.fetch_add(1, Ordering::SeqCst);
                if let Some(s) = signal {
                    s.send(()).unwrap();
                }
                // Long enough for the second caller to find this flight (if it did not, it
                // would load too, and the count below would show it).
                std::thread::sleep(Duration::from_millis(300));
                Ok::<_, Unavailable>(41)
            })
        })
    };
    let first = fallible(Some(first_started));
    first_loading.recv().unwrap();
    let second = fallible(None);
    assert_eq!(first.join().unwrap().unwrap(), 41);
    assert_eq!(second.join().unwrap().unwrap(), 41);
    assert_eq!(fallible_loads.load(Ordering::SeqCst), 1);
    release.send(()).unwrap();
    // The fallible load was cached first; the infallible one gets that value.
    assert_eq!(infallible.join().unwrap(), 41);
}

/// `compute` answering `Remove` for a key absent when it looked, while a load of the key lands
/// its value: that value does not stay (`compute` looks again under the lock, and runs again
/// on the value if it landed before its invalidation did).
#[test]
fn a_removal_by_compute_of_an_absent_key_does_not_leave_a_landing_load_cached() {
    let cache = Arc::new(Cache::new(100));
    let (leader, release) = held_load(&cache, 1u64, "stale");
    let mut release = Some(release);
    let answer = cache.compute(1, |v| {
        if let Some(release) = release.take() {
            assert!(v.is_none());
            // The load lands while `f` decides.
            release.send(()).unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while cache.peek(&1).is_none() && std::time::Instant::now() < deadline {
                std::thread::yield_now();
            }
        }
        Compute::Remove
    });
    assert_eq!(answer, None);
    assert_eq!(leader.join().unwrap(), "stale");
    assert_eq!(
        cache.peek(&1),
        None,
        "the load's value stayed after the removal"
    );
}
