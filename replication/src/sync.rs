//! The synchronisation primitives the log's custom protocols use: `std`'s, or loom's when the
//! crate is built with `--cfg shardkit_loom` so `tests/loom.rs` can model-check them.

#[cfg(not(shardkit_loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};

#[cfg(shardkit_loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};

/// Locks `m`, taking the data even if a thread panicked while holding it: the protocols here
/// keep their state consistent at every step, so a poisoned lock holds valid state.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
