//! The synchronisation the cache's own protocols use (the single-flight hand-off, the table's
//! publication of entries, the shard writer's lock, epoch pinning): `parking_lot`'s and std's,
//! or loom's when the crate is built with `--cfg shardkit_loom --cfg crossbeam_loom` so the loom
//! models can check them (crossbeam-epoch then runs on loom too).

#[cfg(not(shardkit_loom))]
mod imp {
    pub(crate) use parking_lot::{Condvar, Mutex, MutexGuard};
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize};

    std::thread_local! {
        /// This thread's handle in the global epoch collector. The cache keeps its own rather
        /// than going through `crossbeam_epoch::pin`, whose out-of-line thread-local access
        /// costs every read a call (measured: 17 of the 143 instructions a hit took). What the
        /// cache defers then waits in this handle's bag, which only this thread empties: see
        /// [`super::flush`].
        static HANDLE: crossbeam_epoch::LocalHandle = crossbeam_epoch::default_collector().register();
    }

    /// Pins the current thread in the global epoch collector.
    #[inline]
    pub(crate) fn pin() -> crossbeam_epoch::Guard {
        HANDLE
            .try_with(crossbeam_epoch::LocalHandle::pin)
            // The thread is exiting and its handle is gone: pin through a temporary one.
            .unwrap_or_else(|_| crossbeam_epoch::default_collector().register().pin())
    }

    #[inline]
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

    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize};
    pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};

    loom::lazy_static! {
        /// A collector per loom execution (crossbeam-epoch has no global one under loom).
        static ref COLLECTOR: crossbeam_epoch::Collector = crossbeam_epoch::Collector::new();
    }

    loom::thread_local! {
        static HANDLE: crossbeam_epoch::LocalHandle = COLLECTOR.register();
    }

    /// Pins the current thread in the model's collector.
    pub(crate) fn pin() -> crossbeam_epoch::Guard {
        HANDLE.with(crossbeam_epoch::LocalHandle::pin)
    }

    /// Locks `m`; the hand-off's state is valid at every step, so a poisoned lock is too.
    #[inline]
    pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn wait<'a, T>(cv: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        cv.wait(guard).unwrap_or_else(PoisonError::into_inner)
    }
}

pub(crate) use imp::{
    AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Condvar, Mutex, lock, pin, wait,
};

/// Hands what this thread deferred through its handle (unlinked entries and tables) to the
/// collector's shared queue, where any thread's next collection can free it; a handle's own
/// bag is emptied only by its thread.
pub(crate) fn flush() {
    pin().flush();
}
