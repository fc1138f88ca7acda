//! The synchronisation primitives the log's custom protocols use: `parking_lot`'s mutex and
//! condition variable with std's threads and atomics, or loom's when the crate is built with
//! `--cfg shardkit_loom` so the loom models can check them.

#[cfg(not(shardkit_loom))]
mod imp {
    use std::time::Duration;

    pub(crate) use parking_lot::{Condvar, Mutex, MutexGuard};
    pub(crate) use std::sync::Arc;
    pub(crate) use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
    pub(crate) use std::thread::{Thread, current as current_thread, park, yield_now};

    /// A time budget for a heuristic wait (spinning, gathering a batch): it only delays, so
    /// correctness never depends on when it runs out.
    #[derive(Debug)]
    pub(crate) struct Budget {
        deadline: std::time::Instant,
    }

    impl Budget {
        pub(crate) fn new(limit: Duration) -> Self {
            Self {
                deadline: std::time::Instant::now() + limit,
            }
        }

        /// Whether any of the budget is left.
        pub(crate) fn left(&mut self) -> bool {
            std::time::Instant::now() < self.deadline
        }
    }

    /// Locks `m`.
    pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock()
    }

    /// Waits on `cv` for at most `timeout`, releasing and retaking `guard`'s lock.
    pub(crate) fn wait_timeout<'a, T>(
        cv: &Condvar,
        mut guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> MutexGuard<'a, T> {
        cv.wait_for(&mut guard, timeout);
        guard
    }
}

#[cfg(shardkit_loom)]
mod imp {
    use std::sync::PoisonError;
    use std::time::Duration;

    pub(crate) use loom::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
    pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
    pub(crate) use loom::thread::{Thread, current as current_thread, park, yield_now};

    /// The time budget of a heuristic wait, as one round whatever its length: loom needs
    /// every execution to be deterministic, and one round explores both sides of running out.
    #[derive(Debug)]
    pub(crate) struct Budget {
        rounds: u32,
    }

    impl Budget {
        pub(crate) fn new(_limit: Duration) -> Self {
            Self { rounds: 1 }
        }

        /// Whether any of the budget is left.
        pub(crate) fn left(&mut self) -> bool {
            let left = self.rounds > 0;
            self.rounds = self.rounds.saturating_sub(1);
            left
        }
    }

    /// Locks `m`; the protocols keep their state consistent at every step, so a lock poisoned
    /// by a panicking thread still holds valid state.
    pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits on `cv` for at most `timeout`, releasing and retaking `guard`'s lock (loom never
    /// times out: a lost wake-up is a deadlock it reports).
    pub(crate) fn wait_timeout<'a, T>(
        cv: &Condvar,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> MutexGuard<'a, T> {
        cv.wait_timeout(guard, timeout)
            .map_or_else(|e| e.into_inner().0, |(g, _)| g)
    }
}

pub(crate) use imp::{
    Arc, AtomicU8, AtomicU64, AtomicUsize, Budget, Condvar, Mutex, Ordering, Thread,
    current_thread, lock, park, wait_timeout, yield_now,
};

/// When a wait of `timeout` from now ends: `Duration::MAX` (or any timeout past what an
/// `Instant` holds) means a century, not an overflow panic.
pub(crate) fn deadline_after(timeout: std::time::Duration) -> std::time::Instant {
    const CENTURY: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 24 * 3600);
    let now = std::time::Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + CENTURY.min(timeout))
}
