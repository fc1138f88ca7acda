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
    /// Asynchronous waiters to wake when it lands.
    wakers: Vec<std::task::Waker>,
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
    pub(crate) fn landed(&self) -> impl Future<Output = Landing<V, E>> + '_ {
        std::future::poll_fn(move |cx| {
            let mut state = lock(&self.state);
            if let Some(l) = &state.landing {
                return std::task::Poll::Ready(l.clone());
            }
            if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                state.wakers.push(cx.waker().clone());
            }
            std::task::Poll::Pending
        })
    }

    /// Ends the flight (the leader), waking every waiter.
    pub(crate) fn land(&self, how: Landing<V, E>) {
        let wakers = {
            let mut state = lock(&self.state);
            state.landing = Some(how);
            std::mem::take(&mut state.wakers)
        };
        self.landed.notify_all();
        for w in wakers {
            w.wake();
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
