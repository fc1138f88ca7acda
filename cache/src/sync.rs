//! The synchronisation the cache's own protocols use (the single-flight hand-off, the table's
//! publication of entries, the shard writer's lock, the epochs of [`crate::epoch`]):
//! `parking_lot`'s and std's, or loom's when the crate is built with `--cfg shardkit_loom --cfg
//! crossbeam_loom` so the loom models can check them (crossbeam-epoch's atomic pointers then
//! run on loom too).

#[cfg(not(shardkit_loom))]
mod imp {
    pub(crate) use parking_lot::{Condvar, Mutex, MutexGuard};
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, fence};

    #[inline]
    pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock()
    }

    pub(crate) fn wait<'a, T>(cv: &Condvar, mut guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        cv.wait(&mut guard);
        guard
    }

    /// What `m` guards, reached through an exclusive borrow: no lock is taken.
    pub(crate) fn get_mut<T>(m: &mut Mutex<T>) -> &mut T {
        m.get_mut()
    }
}

#[cfg(shardkit_loom)]
mod imp {
    use std::sync::PoisonError;

    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, fence};
    pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};

    /// Locks `m`; the hand-off's state is valid at every step, so a poisoned lock is too.
    #[inline]
    pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn wait<'a, T>(cv: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        cv.wait(guard).unwrap_or_else(PoisonError::into_inner)
    }

    /// What `m` guards, reached through an exclusive borrow: no lock is taken.
    pub(crate) fn get_mut<T>(m: &mut Mutex<T>) -> &mut T {
        m.get_mut().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(crate) use crate::epoch::{Pin, pin};
pub(crate) use imp::{
    AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Condvar, Mutex, fence, get_mut, lock, wait,
};

/// Frees what the cache deferred and no pinned thread can still hold, advancing the epoch
/// first. Writes otherwise do it as they go; this is for `run_pending_tasks` and for
/// a dropped cache. Call with no lock held.
pub(crate) fn flush() {
    crate::epoch::collect(true);
}

/// Under loom, a cell written as the structure holding it is built and as it is dropped (freed,
/// or emptied for reuse), and read wherever a reader reaches that structure
/// ([`reached`](Self::reached)): what loom does not track (plain memory, a table's buckets
/// behind atomic pointers) is checked through it, so a model fails if a reader's access is not
/// ordered after the building or before the freeing. Nothing at all otherwise.
#[derive(Debug)]
pub(crate) struct Built(#[cfg(shardkit_loom)] loom::cell::UnsafeCell<()>);

// SAFETY: the cell holds `()`: there is no data to race on, only accesses for loom to order.
#[cfg(shardkit_loom)]
unsafe impl Sync for Built {}

impl Built {
    pub(crate) fn new() -> Self {
        #[cfg(shardkit_loom)]
        {
            let built = loom::cell::UnsafeCell::new(());
            built.with_mut(|_| ());
            Self(built)
        }
        #[cfg(not(shardkit_loom))]
        Self()
    }

    /// A reader's access.
    #[inline]
    pub(crate) fn reached(&self) {
        #[cfg(shardkit_loom)]
        self.0.with(|_| ());
    }
}

#[cfg(shardkit_loom)]
impl Drop for Built {
    fn drop(&mut self) {
        self.0.with_mut(|_| ());
    }
}
