//! Single-flight loading: of many callers missing the same key at once, one (the leader) runs
//! its loader and the others wait for its outcome instead of loading the key again.
//!
//! A flight ends in one of three ways: the value (waiters return a clone), an error (waiters
//! return it too: a failing backend is not hammered by every waiter in turn), or abandonment,
//! when the leader's loader panicked (waiters retry, one of them becoming the next leader). The
//! leader ends its flight from a drop guard, so no unwinding leaves a waiter hanging.

use std::sync::Arc;

use crate::sync::{Condvar, Mutex, lock, wait};

/// How a flight ended.
#[derive(Debug)]
pub(crate) enum Landing<V, E> {
    /// The leader loaded this value.
    Loaded(V),
    /// The leader's loader failed with this error.
    Failed(Arc<E>),
    /// The leader's loader panicked: retry.
    Abandoned,
}

impl<V: Clone, E> Clone for Landing<V, E> {
    fn clone(&self) -> Self {
        match self {
            Self::Loaded(v) => Self::Loaded(v.clone()),
            Self::Failed(e) => Self::Failed(Arc::clone(e)),
            Self::Abandoned => Self::Abandoned,
        }
    }
}

/// What a flight's lock guards.
#[derive(Debug)]
struct State<V, E> {
    landing: Option<Landing<V, E>>,
    /// Asynchronous waiters to wake when it lands, each under the number its future took
    /// (from `next_waiter`), so a future dropped before the landing takes its waker out: a
    /// waker can keep its task's memory alive, and a load can outlast many callers that gave
    /// up waiting for it (a timeout around each request).
    wakers: Vec<(u64, std::task::Waker)>,
    next_waiter: u64,
}

/// One key's load in progress.
#[derive(Debug)]
pub(crate) struct Flight<V, E> {
    state: Mutex<State<V, E>>,
    landed: Condvar,
}

impl<V: Clone, E> Flight<V, E> {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State {
                landing: None,
                wakers: Vec::new(),
                next_waiter: 0,
            }),
            landed: Condvar::new(),
        }
    }

    /// Waits for the flight to end (a waiter).
    pub(crate) fn wait(&self) -> Landing<V, E> {
        let mut state = lock(&self.state);
        loop {
            if let Some(l) = &state.landing {
                return l.clone();
            }
            state = wait(&self.landed, state);
        }
    }

    /// A future of the flight's end (an asynchronous waiter).
    #[cfg(feature = "async")]
    pub(crate) fn landed(&self) -> Landed<'_, V, E> {
        Landed {
            flight: self,
            waiter: None,
        }
    }

    /// Ends the flight (the leader), waking every waiter. A waker that panics does not keep
    /// the others from being woken; its panic goes on afterwards (unless the leader is
    /// unwinding already).
    pub(crate) fn land(&self, how: Landing<V, E>) {
        let wakers = {
            let mut state = lock(&self.state);
            state.landing = Some(how);
            std::mem::take(&mut state.wakers)
        };
        self.landed.notify_all();
        let mut panicked = None;
        for (_, w) in wakers {
            if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.wake())) {
                panicked.get_or_insert(p);
            }
        }
        if let Some(p) = panicked
            && !std::thread::panicking()
        {
            std::panic::resume_unwind(p);
        }
    }
}

/// The future [`Flight::landed`] returns.
#[cfg(feature = "async")]
pub(crate) struct Landed<'a, V, E> {
    flight: &'a Flight<V, E>,
    /// Its number among the flight's wakers, once it has left one there.
    waiter: Option<u64>,
}

#[cfg(feature = "async")]
impl<V: Clone, E> Future for Landed<'_, V, E> {
    type Output = Landing<V, E>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let mut state = lock(&self.flight.state);
        if let Some(l) = &state.landing {
            return std::task::Poll::Ready(l.clone());
        }
        let slot = self
            .waiter
            .and_then(|id| state.wakers.iter_mut().find(|(waiter, _)| *waiter == id));
        match slot {
            Some((_, waker)) => waker.clone_from(cx.waker()),
            None => {
                let id = state.next_waiter;
                state.next_waiter += 1;
                state.wakers.push((id, cx.waker().clone()));
                drop(state);
                self.waiter = Some(id);
            }
        }
        std::task::Poll::Pending
    }
}

#[cfg(feature = "async")]
impl<V, E> Drop for Landed<'_, V, E> {
    fn drop(&mut self) {
        if let Some(id) = self.waiter {
            let mut state = lock(&self.flight.state);
            state.wakers.retain(|(waiter, _)| *waiter != id);
        }
    }
}

/// Lands a leader's flight as abandoned unless it was landed: what a panicking loader leaves.
pub(crate) struct Leader<'a, V: Clone, E> {
    flight: &'a Flight<V, E>,
    landed: bool,
}

impl<'a, V: Clone, E> Leader<'a, V, E> {
    pub(crate) fn new(flight: &'a Flight<V, E>) -> Self {
        Self {
            flight,
            landed: false,
        }
    }

    pub(crate) fn land(mut self, how: Landing<V, E>) {
        self.landed = true;
        self.flight.land(how);
    }
}

impl<V: Clone, E> Drop for Leader<'_, V, E> {
    fn drop(&mut self) {
        if !self.landed {
            self.flight.land(Landing::Abandoned);
        }
    }
}

/// Loom models of the hand-off between a leader and its waiters.
#[cfg(all(test, shardkit_loom))]
mod loom_models {
    use loom::sync::Arc;

    use super::*;

    #[test]
    fn loom_every_waiter_gets_the_leaders_value() {
        loom::model(|| {
            let flight = Arc::new(Flight::<u32, ()>::new());
            let waiters: Vec<_> = (0..2)
                .map(|_| {
                    let flight = flight.clone();
                    loom::thread::spawn(move || flight.wait())
                })
                .collect();
            Leader::new(&*flight).land(Landing::Loaded(7));
            for w in waiters {
                assert!(matches!(w.join().unwrap(), Landing::Loaded(7)));
            }
        });
    }

    /// An asynchronous waiter polled while its leader lands: it sees the landing at once, or
    /// its waker is kept and woken (never lost between its look and the landing); polled again,
    /// it gets the value.
    #[cfg(feature = "async")]
    #[test]
    fn loom_an_async_waiter_is_woken_or_sees_the_landing() {
        use std::task::{Context, Poll, Wake, Waker};

        struct Flag(loom::sync::atomic::AtomicBool);
        impl Wake for Flag {
            fn wake(self: std::sync::Arc<Self>) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }

        loom::model(|| {
            let flight = Arc::new(Flight::<u32, ()>::new());
            let leader = {
                let flight = flight.clone();
                loom::thread::spawn(move || Leader::new(&*flight).land(Landing::Loaded(7)))
            };
            let woken = std::sync::Arc::new(Flag(loom::sync::atomic::AtomicBool::new(false)));
            let waker = Waker::from(std::sync::Arc::clone(&woken));
            let mut cx = Context::from_waker(&waker);
            let mut landed = std::pin::pin!(flight.landed());
            if let Poll::Ready(l) = landed.as_mut().poll(&mut cx) {
                assert!(matches!(l, Landing::Loaded(7)));
                leader.join().unwrap();
                return;
            }
            leader.join().unwrap();
            assert!(
                woken.0.load(std::sync::atomic::Ordering::SeqCst),
                "a waker lost"
            );
            let again = landed.as_mut().poll(&mut cx);
            assert!(matches!(again, Poll::Ready(Landing::Loaded(7))));
        });
    }

    #[test]
    fn loom_a_leader_that_unwinds_releases_its_waiters() {
        loom::model(|| {
            let flight = Arc::new(Flight::<u32, ()>::new());
            let waiter = {
                let flight = flight.clone();
                loom::thread::spawn(move || flight.wait())
            };
            // The leader's loader "panics": its guard is dropped without landing.
            drop(Leader::new(&*flight));
            assert!(matches!(waiter.join().unwrap(), Landing::Abandoned));
        });
    }
}
