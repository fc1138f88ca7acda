//! Compare-and-swap on one key's entry: what [`Cache::compute`](crate::Cache::compute) runs.
//!
//! The user's function runs without the shard's lock: it may use the cache (a lock held across
//! it would deadlock a function that writes to this shard), and a slow one does not hold up the
//! shard's other writers. So the entry it was shown may be replaced or removed before its answer
//! is written. The answer is written only if, under the lock, the key's live entry is still the
//! one shown (the same address: while the caller is pinned, a removed entry's memory is not
//! reused) or, if it was shown none, there still is none. Otherwise the function runs again on
//! what is there now, as `AtomicU64::fetch_update` does. No update is lost: each write that
//! lands was computed from the value it replaces.
//!
//! That the same address is the same entry rests on the epochs: memory of a removed entry is
//! reused (reclaim.rs) or freed only once no thread pinned before its removal is still pinned,
//! which `loom_batched_recycling_is_not_reused_under_a_reader` and
//! `loom_freed_memory_is_not_reused_under_a_reader` check.

use std::ptr::{self, NonNull};

use super::{Notices, Shard, cause_for};
use crate::entry::{Entry, EntryRef};
use crate::sync::{Pin, lock};
use crate::{Compute, RemovalCause};

/// Why [`Shard::insert_if`] handed its entry back.
pub(crate) enum Refused<K, V> {
    /// The key's entry is no longer the one shown.
    Changed(Entry<K, V>),
    /// The caller no longer wants it cached.
    Unwanted(Entry<K, V>),
}

impl<K, V> Refused<K, V> {
    /// The entry handed back.
    pub(crate) fn into_entry(self) -> Entry<K, V> {
        match self {
            Self::Changed(e) | Self::Unwanted(e) => e,
        }
    }
}

impl<K, V> Shard<K, V>
where
    K: Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Does with `key` what `f` decides from its live value (`None`: absent or expired):
    /// [`Compute::Put`] stores the value, in an entry `build` makes from the key and value, if
    /// `wanted` (asked under the lock) says so, and otherwise only answers it;
    /// [`Compute::Remove`] calls `removing` with the key (before the lock is taken, present or
    /// not), then removes the entry, if there is one; [`Compute::Keep`] writes nothing. Returns
    /// the key's value after that. What leaves the cache goes to `out`.
    /// `read_clock` gives [`insert`](Self::insert)'s `now`; it is read before `f` runs and
    /// again before the write, so a value that expired while `f` ran makes it run again.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn compute(
        &self,
        hash: u64,
        mut key: K,
        read_clock: impl Fn() -> Option<u64>,
        mut f: impl FnMut(Option<&V>) -> Compute<V>,
        wanted: impl Fn() -> bool,
        removing: impl Fn(&K),
        mut build: impl FnMut(K, V, Option<&Entry<K, V>>) -> Entry<K, V>,
        out: &mut Notices<K, V>,
        guard: &Pin,
    ) -> Option<V> {
        loop {
            let shown = self.peek(hash, &key, read_clock(), guard);
            match f(shown.map(|e| &e.value)) {
                // Nothing written: the value shown is the key's value at the time it was read.
                Compute::Keep => return shown.map(|e| e.value.clone()),
                Compute::Put(value) => {
                    let answer = value.clone();
                    // Checked against the clock read again: a value that expired while `f`
                    // ran is no longer the one shown.
                    let entry = build(key, value, shown);
                    match self.insert_if(entry, shown, read_clock(), &wanted, out, guard) {
                        Ok(()) => return Some(answer),
                        // Dropped here, with the lock let go: the key and value are the user's.
                        Err(Refused::Unwanted(_)) => return Some(answer),
                        Err(Refused::Changed(entry)) => key = entry.key,
                    }
                }
                Compute::Remove => {
                    removing(&key);
                    let removed = match shown {
                        Some(e) => self.remove_if(e, read_clock(), out, guard),
                        // Still absent once `removing` is done, or `f` runs again: a value put
                        // while `f` ran (by a load that `removing` came too late for) must not
                        // stay, and under the lock, no write lands before the look.
                        None => {
                            let _w = lock(&self.writer);
                            self.peek(hash, &key, read_clock(), guard).is_none()
                        }
                    };
                    if removed {
                        return None;
                    }
                }
            }
        }
    }

    /// Inserts `entry` if its key's live entry is still `shown` (or, for `None`, there is still
    /// none) and the caller still `wanted` it; otherwise hands `entry` back, unused.
    pub(crate) fn insert_if(
        &self,
        entry: Entry<K, V>,
        shown: Option<&Entry<K, V>>,
        now: Option<u64>,
        wanted: &impl Fn() -> bool,
        out: &mut Notices<K, V>,
        guard: &Pin,
    ) -> Result<(), Refused<K, V>> {
        let mut w = lock(&self.writer);
        // Under the lock no other writer changes the table: this is what the insert replaces.
        let live = self.peek(entry.hash, &entry.key, now, guard);
        if live.map(ptr::from_ref) != shown.map(ptr::from_ref) {
            return Err(Refused::Changed(entry));
        }
        if !wanted() {
            return Err(Refused::Unwanted(entry));
        }
        self.insert_locked(&mut w, entry, now, out, guard);
        Ok(())
    }

    /// Removes `shown` if the table still holds it, telling `out` (as expired, if it was at
    /// `now`); whether it did.
    fn remove_if(
        &self,
        shown: &Entry<K, V>,
        now: Option<u64>,
        out: &mut Notices<K, V>,
        guard: &Pin,
    ) -> bool {
        let mut w = lock(&self.writer);
        // SAFETY: `shown` was read from the table under `guard`, pinned since: its memory
        // stays allocated, and is not reused, until `guard` drops.
        let h = unsafe { EntryRef::new(NonNull::from(shown)) };
        // SAFETY: as above, got while pinned by `guard`.
        if !unsafe { Self::unlink_if_linked(self.table(guard), h, &mut w, guard) } {
            return false;
        }
        self.publish_sizes(&w);
        out.push((h, cause_for(h, now, RemovalCause::Removed)));
        true
    }
}

#[cfg(all(test, shardkit_loom))]
mod loom_models {
    use loom::sync::Arc;

    use super::*;
    use crate::shard::loom_models::{get, insert, remove};
    use crate::window::WindowShare;

    /// Adds one to key 1's count, starting from 1 when it is absent.
    fn add_one(shard: &Shard<u64, u64>) -> Option<u64> {
        let guard = &crate::sync::pin();
        let mut out = Notices::new(false);
        shard.compute(
            1,
            1,
            || None,
            |v| Compute::Put(v.map_or(1, |n| n + 1)),
            || true,
            |_| {},
            |k, v, _| Entry::new(k, k, v, 1),
            &mut out,
            guard,
        )
    }

    #[test]
    fn loom_concurrent_computes_lose_no_update() {
        loom::model(|| {
            let shard = Arc::new(Shard::new(4, 4, false, WindowShare::for_shards(4, 1)));
            let other = {
                let shard = shard.clone();
                loom::thread::spawn(move || add_one(&shard))
            };
            let mine = add_one(&shard);
            let theirs = other.join().unwrap();
            // Each saw the other's update or none: one answered 1, the other 2.
            let mut answers = [mine, theirs];
            answers.sort_unstable();
            assert_eq!(answers, [Some(1), Some(2)]);
            assert_eq!(get(&shard, 1), Some(2));
        });
    }

    /// The invalidation of a load in flight (`Cache::remove` while `get_or_insert_with` loads):
    /// the remover sets the flag, then removes; the loader puts only if the flag, read under
    /// the shard's lock, is clear. However they interleave, the key is absent once both are
    /// done: the put came first and was removed, or it saw the flag and put nothing.
    #[test]
    fn loom_a_load_invalidated_by_a_removal_is_never_left_cached() {
        loom::model(|| {
            let shard = Arc::new(Shard::new(4, 4, false, WindowShare::for_shards(4, 1)));
            let invalidated = Arc::new(crate::sync::AtomicBool::new(false));
            let remover = {
                let (shard, invalidated) = (shard.clone(), invalidated.clone());
                loom::thread::spawn(move || {
                    invalidated.store(true, std::sync::atomic::Ordering::Release);
                    let guard = &crate::sync::pin();
                    shard.remove(1, &1, guard);
                })
            };
            let answer = {
                let guard = &crate::sync::pin();
                let mut out = Notices::new(false);
                shard.compute(
                    1,
                    1,
                    || None,
                    |v| match v {
                        Some(_) => Compute::Keep,
                        None => Compute::Put(10),
                    },
                    || !invalidated.load(std::sync::atomic::Ordering::Acquire),
                    |_| {},
                    |k, v, _| Entry::new(k, k, v, 1),
                    &mut out,
                    guard,
                )
            };
            remover.join().unwrap();
            // The loader gets its value either way; the cache does not keep it.
            assert_eq!(answer, Some(10));
            assert_eq!(get(&shard, 1), None);
        });
    }

    /// A compute whose entry is removed while its function runs, the memory recycled and the
    /// key inserted again: the compute's check that the key's entry is still the one it was
    /// shown compares addresses, which holds only because the compute's pin keeps that memory
    /// from being reused meanwhile. Were it reused for the new entry, the compute would write
    /// its answer over the new value (an update lost, and a stale answer).
    #[test]
    fn loom_a_compute_is_not_fooled_by_recycled_memory() {
        loom::model(|| {
            // Room for one entry, sized so that retired entries go in batches of two and come
            // back as spares.
            let shard = Arc::new(Shard::new(1, 128, false, WindowShare::for_shards(1, 1)));
            add_one(&shard);
            let writer = {
                let shard = shard.clone();
                loom::thread::spawn(move || {
                    remove(&shard, 1);
                    // The second insert takes the removed entry out of the window's queue and
                    // evicts the first: a batch of two, handed over.
                    insert(&shard, 2, 20);
                    insert(&shard, 3, 30);
                    // Two epochs on with nothing pinned here: the batch comes back as spares
                    // unless the compute's pin holds it back.
                    for _ in 0..3 {
                        crate::sync::flush();
                    }
                    // Spares are taken last in first: the second insert gets the memory of
                    // key 1's removed entry, if it came back.
                    insert(&shard, 1, 100);
                    insert(&shard, 1, 100);
                })
            };
            let answer = add_one(&shard);
            writer.join().unwrap();
            // Before the removal (2) or between it and the reinserts (1), and then replaced
            // by 100; or after a reinsert (101), perhaps replaced by the second: never 2 over
            // a reinserted 100.
            match answer {
                Some(1 | 2) => assert_eq!(get(&shard, 1), Some(100)),
                Some(101) => assert!(matches!(get(&shard, 1), Some(100 | 101))),
                other => panic!("compute answered {other:?}"),
            }
        });
    }

    #[test]
    fn loom_a_compute_racing_a_removal_applies_to_what_it_saw() {
        loom::model(|| {
            let shard = Arc::new(Shard::new(4, 4, false, WindowShare::for_shards(4, 1)));
            add_one(&shard);
            let remover = {
                let shard = shard.clone();
                loom::thread::spawn(move || {
                    let guard = &crate::sync::pin();
                    shard.remove(1, &1, guard).is_some()
                })
            };
            let answer = add_one(&shard);
            let removed = remover.join().unwrap();
            assert!(removed);
            // Either the removal came first (the compute started afresh: 1, still cached) or
            // the compute did (2, then removed): never 2 left after the removal of 1.
            match answer {
                Some(1) => assert_eq!(get(&shard, 1), Some(1)),
                Some(2) => assert_eq!(get(&shard, 1), None),
                other => panic!("compute answered {other:?}"),
            }
        });
    }
}
