//! The synchronisation the cache's own protocols use (the single-flight hand-off, the table's
//! publication of entries, the shard writer's lock, epoch pinning): `parking_lot`'s and std's,
//! or loom's when the crate is built with `--cfg shardkit_loom --cfg crossbeam_loom` so the loom
//! models can check them (crossbeam-epoch then runs on loom too).

#[cfg(not(shardkit_loom))]
mod imp {
    pub(crate) use parking_lot::{Condvar, Mutex, MutexGuard};
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize};

    use super::Reader;

    std::thread_local! {
        /// This thread's reader state, with its own handle in the global epoch collector. The
        /// cache keeps its own handle rather than going through `crossbeam_epoch::pin`, whose
        /// out-of-line thread-local access costs every read a call (measured: 17 of the 143
        /// instructions a hit took). What the cache defers then waits in this handle's bag
        /// until 64 are pending, the thread exits or [`super::flush`] hands it on.
        static READER: Reader = Reader::new(
            crossbeam_epoch::default_collector().register(),
            next_thread(),
        );
    }

    /// Numbers threads in the order they first use a cache.
    fn next_thread() -> usize {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs `f` on this thread's reader state.
    #[inline(always)]
    pub(super) fn with_reader<R>(f: impl Fn(&Reader) -> R) -> R {
        READER.try_with(&f).unwrap_or_else(|_| exiting(f))
    }

    /// Runs `f` on a temporary reader state: the thread is exiting and its own is gone. Kept
    /// out of line so every read does not carry it.
    #[cold]
    #[inline(never)]
    fn exiting<R>(f: impl Fn(&Reader) -> R) -> R {
        f(&Reader::new(
            crossbeam_epoch::default_collector().register(),
            next_thread(),
        ))
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
        /// Thread numbers per execution, so each execution gives a thread the same stripe.
        /// (Std's atomic: numbering is not part of any protocol the models check.)
        static ref NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    }

    loom::thread_local! {
        static READER: super::Reader = super::Reader::new(
            COLLECTOR.register(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        );
    }

    /// Runs `f` on this thread's reader state, registered in the model's collector.
    pub(super) fn with_reader<R>(f: impl Fn(&super::Reader) -> R) -> R {
        READER.with(f)
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
    AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Condvar, Mutex, MutexGuard, lock, wait,
};

/// A thread's state as a reader of caches: its epoch handle, and a number that spreads threads'
/// read counters over a shard's stripes.
pub(crate) struct Reader {
    handle: crossbeam_epoch::LocalHandle,
    thread: usize,
}

impl Reader {
    fn new(handle: crossbeam_epoch::LocalHandle, thread: usize) -> Self {
        Self { handle, thread }
    }
}

/// An epoch guard, with the number of the thread that pinned it.
pub(crate) struct ReadPin {
    /// Keeps what the read finds from being freed.
    pub(crate) guard: crossbeam_epoch::Guard,
    /// Threads are numbered in the order they first use a cache (read, write or drop one).
    pub(crate) thread: usize,
}

/// Pins the current thread in the epoch collector.
#[inline]
pub(crate) fn pin() -> crossbeam_epoch::Guard {
    imp::with_reader(|r| r.handle.pin())
}

/// Pins the current thread, for a read that counts itself on a stripe: one thread-local access
/// gives both.
#[inline]
pub(crate) fn pin_reader() -> ReadPin {
    imp::with_reader(|r| ReadPin {
        guard: r.handle.pin(),
        thread: r.thread,
    })
}

/// Hands what this thread deferred through its handle (unlinked entries and tables) to the
/// collector's shared queue, where any thread's next collection can free it. Otherwise it
/// moves there only when 64 are pending or the thread exits: a thread that stops writing could
/// hold it indefinitely.
pub(crate) fn flush() {
    pin().flush();
}
