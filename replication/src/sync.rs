//! The synchronisation primitives the log's custom protocols use: `parking_lot`'s (whose
//! `notify_all` moves waiters onto the mutex instead of waking them all to fight for it), or
//! loom's when the crate is built with `--cfg shardkit_loom` so the loom models can check them.

#[cfg(not(shardkit_loom))]
mod imp {
    use std::time::Duration;

    pub(crate) use parking_lot::{Condvar, Mutex, MutexGuard};

    /// Locks `m`.
    pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock()
    }

    /// Waits on `cv`, releasing and retaking `guard`'s lock.
    pub(crate) fn wait<'a, T>(cv: &Condvar, mut guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        cv.wait(&mut guard);
        guard
    }

    /// [`wait`], for at most `timeout`.
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

    pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};

    /// Locks `m`; the protocols keep their state consistent at every step, so a lock poisoned
    /// by a panicking thread still holds valid state.
    pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits on `cv`, releasing and retaking `guard`'s lock.
    pub(crate) fn wait<'a, T>(cv: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        cv.wait(guard).unwrap_or_else(PoisonError::into_inner)
    }

    /// [`wait`], for at most `timeout` (loom never times out: a lost wake-up is a deadlock it
    /// reports).
    pub(crate) fn wait_timeout<'a, T>(
        cv: &Condvar,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> MutexGuard<'a, T> {
        cv.wait_timeout(guard, timeout)
            .map_or_else(|e| e.into_inner().0, |(g, _)| g)
    }
}

pub(crate) use imp::{Condvar, Mutex, lock, wait, wait_timeout};
