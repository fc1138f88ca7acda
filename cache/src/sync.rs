//! The mutex and condition variable of the single-flight hand-off: `parking_lot`'s, or loom's
//! when the crate is built with `--cfg shardkit_loom` so the loom models can check it.

#[cfg(not(shardkit_loom))]
mod imp {
    pub(crate) use parking_lot::{Condvar, Mutex, MutexGuard};

    pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock()
    }

    pub(crate) fn wait<'a, T>(cv: &Condvar, mut guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        cv.wait(&mut guard);
        guard
    }
}

#[cfg(shardkit_loom)]
mod imp {
    use std::sync::PoisonError;

    pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};

    /// Locks `m`; the hand-off's state is valid at every step, so a poisoned lock is too.
    pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn wait<'a, T>(cv: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        cv.wait(guard).unwrap_or_else(PoisonError::into_inner)
    }
}

pub(crate) use imp::{Condvar, Mutex, lock, wait};
