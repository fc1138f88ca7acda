//! The asynchronous loaders on a minimal executor (no runtime dependency): one load per key,
//! and a leader whose future is dropped mid-load releases its waiters.
#![cfg(feature = "async")]

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use shardkit_cache::Cache;

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `f` to completion on this thread.
fn block_on<T>(f: impl Future<Output = T>) -> T {
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(Duration::from_millis(10));
    }
}

/// A future that is pending `n` times before it yields `v`.
fn after_polls<T>(mut n: usize, v: T) -> impl Future<Output = T> {
    let mut v = Some(v);
    std::future::poll_fn(move |cx| {
        if n == 0 {
            return Poll::Ready(v.take().expect("polled after completion"));
        }
        n -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
}

#[test]
fn concurrent_async_callers_share_one_load() {
    let cache = Arc::new(Cache::new(100));
    let loads = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(6));
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let (cache, loads, barrier) = (cache.clone(), loads.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                block_on(cache.get_or_insert_async(9u64, async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(100));
                    after_polls(3, 90u64).await
                }))
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 90);
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
}

#[test]
fn a_dropped_leader_releases_its_waiters() {
    let cache = Cache::builder()
        .max_capacity(100)
        .record_stats(true)
        .build()
        .unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    // The leader polls once, then is dropped (a timeout): its load never finishes.
    let mut leader = Box::pin(cache.get_or_insert_async(1u64, std::future::pending()));
    assert!(leader.as_mut().poll(&mut cx).is_pending());
    let mut waiter = Box::pin(cache.get_or_insert_async(1u64, async { 5u64 }));
    assert!(
        waiter.as_mut().poll(&mut cx).is_pending(),
        "the second caller waits for the leader's load"
    );
    drop(leader);
    // Released, it loads the key itself.
    assert_eq!(waiter.as_mut().poll(&mut cx), Poll::Ready(5));
    assert_eq!(cache.get(&1), Some(5));
    // The dropped load counts as failed.
    let stats = cache.stats();
    assert_eq!((stats.load_successes, stats.load_failures), (1, 1));
}

/// A waker that counts its wakes.
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A waiting caller's future dropped before the load lands (a timeout around each request)
/// leaves nothing of its task behind: the flight keeps no clone of its waker, which could
/// keep the task's memory alive for as long as the load runs. One kept polling is woken once.
#[test]
fn a_dropped_waiter_leaves_no_waker_behind() {
    let cache = Cache::new(100);
    let mut cx = Context::from_waker(Waker::noop());
    let mut leader = Box::pin(cache.try_get_or_insert_async(1u64, async {
        std::future::pending::<Result<u64, ()>>().await
    }));
    assert!(leader.as_mut().poll(&mut cx).is_pending());
    let wakers: Vec<Arc<CountingWaker>> = (0..100)
        .map(|_| Arc::new(CountingWaker(AtomicUsize::new(0))))
        .collect();
    for waker in &wakers {
        let waker = Waker::from(Arc::clone(waker));
        let mut waiter = Box::pin(cache.try_get_or_insert_async(1u64, async { Ok::<u64, ()>(5) }));
        // Polled twice with the same waker: kept once, not twice.
        for _ in 0..2 {
            let polled = waiter.as_mut().poll(&mut Context::from_waker(&waker));
            assert!(polled.is_pending(), "a waiter joins the leader's flight");
        }
    }
    assert!(
        wakers.iter().all(|w| Arc::strong_count(w) == 1),
        "a dropped waiter's waker kept"
    );
    let kept = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let waker = Waker::from(Arc::clone(&kept));
    let mut waiter = Box::pin(cache.try_get_or_insert_async(1u64, async { Ok::<u64, ()>(5) }));
    for _ in 0..2 {
        assert!(
            waiter
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
    }
    assert_eq!(Arc::strong_count(&kept), 3, "the waiter's waker, kept once");
    drop(leader);
    assert_eq!(
        kept.0.load(Ordering::SeqCst),
        1,
        "woken once as the leader left"
    );
    assert!(wakers.iter().all(|w| w.0.load(Ordering::SeqCst) == 0));
    assert_eq!(
        waiter.as_mut().poll(&mut Context::from_waker(&waker)),
        Poll::Ready(Ok(5))
    );
}

/// An asynchronous load that asks for its own key, with the blocking call or the asynchronous
/// one, loads it again rather than wait for itself: its waiting would block the very polls
/// its load needs (the blocking call hung the thread, the asynchronous one the task).
#[test]
fn an_async_load_that_asks_for_its_own_key_does_not_wait_for_itself() {
    let cache = Arc::new(Cache::new(100));
    let (done, finished) = std::sync::mpsc::channel();
    {
        let cache = cache.clone();
        std::thread::spawn(move || {
            let blocking =
                block_on(cache.get_or_insert_async(1u64, async {
                    cache.get_or_insert_with(1u64, || 10) + 1
                }));
            let nested = block_on(cache.get_or_insert_async(2u64, async {
                cache.get_or_insert_async(2u64, async { 20 }).await + 1
            }));
            let _ = done.send((blocking, nested));
        });
    }
    // A deadlock detector, not a timing: the calls take microseconds when they do not hang.
    let (blocking, nested) = finished
        .recv_timeout(Duration::from_secs(30))
        .expect("a load waited for itself");
    // The inner loads were cached first; the outer ones do not overwrite them.
    assert_eq!((blocking, nested), (10, 20));
    assert_eq!((cache.get(&1), cache.get(&2)), (Some(10), Some(20)));
}

/// The asynchronous loaders' futures are `Send` when their loads are, so a multi-threaded
/// runtime can move them between threads (a compile-time check).
#[test]
fn async_loads_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let cache: Cache<u64, u64> = Cache::new(10);
    assert_send(&cache.get_or_insert_async(1, async { 1 }));
    assert_send(&cache.try_get_or_insert_async(1, async { Ok::<u64, ()>(1) }));
}

/// The asynchronous calls by reference cache under the owned key and find what is cached.
#[test]
fn async_callers_by_reference_load_and_hit() {
    let cache: Cache<String, u64> = Cache::new(10);
    assert_eq!(
        block_on(cache.get_or_insert_async_by_ref("a", async { 1 })),
        1
    );
    assert_eq!(cache.get("a"), Some(1));
    let hit = cache.try_get_or_insert_async_by_ref("a", async { Err::<u64, ()>(()) });
    assert_eq!(block_on(hit), Ok(1));
    fn assert_send<T: Send>(_: &T) {}
    assert_send(&cache.get_or_insert_async_by_ref("b", async { 2 }));
}

/// A blocking load that asks for its own key through the asynchronous call (a blocking
/// wrapper around an asynchronous client, on an executor it blocks on) loads it again rather
/// than wait for itself: the thread it would wait on is its own.
#[test]
fn a_blocking_load_that_asks_for_its_own_key_asynchronously_does_not_wait_for_itself() {
    let cache = Arc::new(Cache::new(100));
    let (done, finished) = std::sync::mpsc::channel();
    {
        let cache = cache.clone();
        std::thread::spawn(move || {
            let outer = cache.get_or_insert_with(3u64, || {
                block_on(cache.get_or_insert_async(3u64, async { 30 })) + 1
            });
            let _ = done.send(outer);
        });
    }
    // A deadlock detector, not a timing: the call takes microseconds when it does not hang.
    let outer = finished
        .recv_timeout(Duration::from_secs(30))
        .expect("the load waited for itself");
    assert_eq!(outer, 30);
}

/// A waker that panics when woken.
struct PanickingWaker;

impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        panic!("a waker's bug");
    }
}

/// A waiter's waker that panics as the load lands does not keep the other waiters from being
/// woken: the panic reaches the loading caller after every waker was called.
#[test]
fn a_panicking_waker_does_not_strand_the_other_waiters() {
    let cache = Cache::new(10);
    let mut cx = Context::from_waker(Waker::noop());
    let mut leader = Box::pin(cache.get_or_insert_async(1u64, after_polls(1, 5u64)));
    assert!(leader.as_mut().poll(&mut cx).is_pending());
    let bad = Waker::from(Arc::new(PanickingWaker));
    let good = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let good_waker = Waker::from(Arc::clone(&good));
    let mut first = Box::pin(cache.get_or_insert_async(1u64, async { 6 }));
    let mut second = Box::pin(cache.get_or_insert_async(1u64, async { 7 }));
    assert!(
        first
            .as_mut()
            .poll(&mut Context::from_waker(&bad))
            .is_pending()
    );
    assert!(
        second
            .as_mut()
            .poll(&mut Context::from_waker(&good_waker))
            .is_pending()
    );
    let landed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        leader.as_mut().poll(&mut cx)
    }));
    assert!(
        landed.is_err(),
        "the waker's panic reaches the loading caller"
    );
    assert_eq!(
        good.0.load(Ordering::SeqCst),
        1,
        "the other waiter was woken"
    );
    assert_eq!(second.as_mut().poll(&mut cx), Poll::Ready(5));
}
