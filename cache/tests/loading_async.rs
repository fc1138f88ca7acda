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
    let cache = Arc::new(Cache::new(100));
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    {
        // The leader polls once, then is dropped (a timeout): its load never finishes.
        let mut leader = Box::pin(cache.get_or_insert_async(1u64, std::future::pending()));
        assert!(leader.as_mut().poll(&mut cx).is_pending());
        let waiter = {
            let cache = cache.clone();
            std::thread::spawn(move || block_on(cache.get_or_insert_async(1u64, async { 5u64 })))
        };
        std::thread::sleep(Duration::from_millis(50));
        drop(leader);
        assert_eq!(waiter.join().unwrap(), 5);
    }
    assert_eq!(cache.get(&1), Some(5));
}
