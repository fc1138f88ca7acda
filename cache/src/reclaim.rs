//! Freeing what a shard releases, and reusing the memory for its next entries.
//!
//! An entry that leaves the cache cannot be freed at once: a reader may still be cloning its
//! value. The epochs ([`crate::epoch`]) free it once no reader can hold it. Handing each entry
//! over on its own, and allocating each new entry afresh, cost a miss about a fifth of its
//! instructions (measured with crossbeam-epoch's collector: a deferred call per entry, and
//! `malloc` and `free`). So a shard hands its released entries over in batches, and once they
//! are safe to free, their keys and values are dropped and their memory given back to the
//! shard, which builds new entries in it.
//!
//! Nothing here frees while the shard's writer lock is held: freeing runs users' destructors,
//! and one that called back into the shard would deadlock. Deferring never frees; the cache
//! collects once the write is done and the lock released (`Cache::write`).

use std::any::Any;
use std::mem::MaybeUninit;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;

use crossbeam_epoch::Owned;

use crate::entry::{Entry, EntryRef};
use crate::sync::{Mutex, Pin, lock};

/// The memory of a freed entry, ready for a new one.
type Spare<K, V> = Box<MaybeUninit<Entry<K, V>>>;

/// The most entries handed over together. A batch waits, values and all, until it is full, so
/// it is also kept to a sixty-fourth of the shard, in entries and in weight (see
/// [`Reclaimer::new`]). Larger batches
/// cost less per entry: measured per evicting insert in `cache-profile misses` (shards of
/// 12,500 entries, so batches of 195 against 64), this bound at 256 instead of 64 saved 24
/// instructions and 2.5 L1 data misses of 1,116 and 12.6 (with crossbeam-epoch's collector,
/// whose hand-overs cost more than the cache's own).
const MAX_BATCH: usize = 256;

/// Spares kept for a shard, in batches, on top of its share of what the epochs hold back (see
/// [`Reclaimer::new`]): enough to cover the entries in flight, so new entries seldom need the
/// allocator; past it, the memory goes back to the allocator (after a `clear`, say).
const SPARE_BATCHES: usize = 4;

/// What a panicking `drop` unwound with.
type Panic = Box<dyn Any + Send>;

/// Memory of freed entries, between the collector (which may free a batch after the shard is
/// gone, hence shared) and the shard's writer.
type Returned<K, V> = Arc<Mutex<Pool<K, V>>>;

/// Spares given back, and how many of them to keep: read when a batch is recycled, not when
/// it was handed over, so batches in flight across a resize keep to the new bound.
struct Pool<K, V> {
    spares: Vec<Spare<K, V>>,
    keep: usize,
}

/// A shard's reclamation: released entries waiting to be handed to the collector, and the
/// memory it gave back. Guarded by the shard's writer lock.
pub(crate) struct Reclaimer<K, V> {
    /// The shard's size when it was built: about `built_entries` entries (a guess when the
    /// cache is bounded by weight), and `built_weight` units of weight when it is. A resize
    /// scales the guess from these, so repeated resizes do not compound its rounding.
    built_entries: usize,
    built_weight: Option<u64>,
    /// Entries per batch; 1 hands each entry over at once, to be freed, not reused.
    batch_len: usize,
    /// The weight at which a batch is handed over before it is full, and the weight waiting
    /// in it.
    batch_weight: u64,
    waiting_weight: u64,
    /// Spares kept for what the epochs hold back before freeing: three advances' worth of
    /// entries (see [`crate::epoch`]) across the process, at most a sixteenth of the shard.
    /// Without it, spares ran out while freed memory waited, and the allocator churned
    /// (measured: `malloc` and `free` about 2.5% of a two-thread get-or-insert profile, against
    /// 0.5% with these spares).
    in_flight: usize,
    batch: Vec<EntryRef<K, V>>,
    /// Memory for the next entries (the writer's own, refilled from `returned`).
    spares: Vec<Spare<K, V>>,
    returned: Returned<K, V>,
}

impl<K, V> std::fmt::Debug for Reclaimer<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reclaimer")
            .field("waiting", &self.batch.len())
            .field("batch_len", &self.batch_len)
            .field("spares", &self.spares.len())
            .finish()
    }
}

impl<K, V> Reclaimer<K, V>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    /// For a shard of about `entries` entries (a guess when the cache is bounded by weight),
    /// and of `weight` units of weight when the cache is bounded by weight. A batch is handed
    /// over once it holds a sixty-fourth of either, as a bound on what waits in batches: for a
    /// cache bounded by weight, the weight is what the user says an entry costs, so the bound
    /// holds whatever the values' sizes. Shards of fewer than 128 entries hand each entry over
    /// at once.
    pub(crate) fn new(entries: usize, weight: Option<u64>) -> Self {
        let (batch_len, batch_weight, in_flight) = bounds(entries, weight);
        let keep = spares_kept(batch_len, in_flight);
        Self {
            built_entries: entries,
            built_weight: weight,
            batch_len,
            batch_weight,
            waiting_weight: 0,
            in_flight,
            batch: Vec::new(),
            spares: Vec::new(),
            returned: Arc::new(Mutex::new(Pool {
                spares: Vec::new(),
                keep,
            })),
        }
    }

    /// Sizes it for the shard's new capacity, `capacity` entries, or units of weight when the
    /// cache is bounded by weight (the guess of its entries scaled with it); then hands the
    /// waiting batch over, so what a shrink evicted is freed without waiting for more to
    /// fill it, and lets the spares past the new bound go (empty memory: no user code runs).
    pub(crate) fn resize(&mut self, capacity: u64, guard: &Pin) {
        let to_usize = |n: u128| usize::try_from(n).unwrap_or(usize::MAX);
        let built = u128::try_from(self.built_entries).unwrap_or(u128::MAX);
        let entries = match self.built_weight {
            Some(w) => to_usize(built * u128::from(capacity) / u128::from(w.max(1))),
            None => to_usize(u128::from(capacity)),
        };
        let weight = self.built_weight.map(|_| capacity);
        (self.batch_len, self.batch_weight, self.in_flight) = bounds(entries.max(1), weight);
        let keep = spares_kept(self.batch_len, self.in_flight);
        // The bound first: the batch handed over now is recycled under it.
        let mut pool = lock(&self.returned);
        pool.keep = keep;
        pool.spares.truncate(keep);
        pool.spares.shrink_to_fit();
        drop(pool);
        self.hand_over(guard);
        self.spares.truncate(keep);
        self.spares.shrink_to_fit();
    }

    /// The bytes it holds: its lists, and the entries in them (retired ones waiting in the
    /// batch, spares to build in).
    pub(crate) fn memory(&self) -> usize {
        let pool = lock(&self.returned);
        let pointer = std::mem::size_of::<usize>();
        let lists = self.batch.capacity() + self.spares.capacity() + pool.spares.capacity();
        let entries = self.batch.len() + self.spares.len() + pool.spares.len();
        lists * pointer + entries * std::mem::size_of::<Entry<K, V>>()
    }

    /// `entry`, moved to the heap: into the memory of a freed entry if there is one.
    pub(crate) fn alloc(&mut self, entry: Entry<K, V>) -> Owned<Entry<K, V>> {
        // Shards that hand entries over one at a time free them: nothing ever comes back.
        if self.spares.is_empty() && self.batch_len > 1 {
            self.take_returned();
        }
        match self.spares.pop() {
            Some(spare) => Owned::from(Box::write(spare, entry)),
            None => Owned::new(entry),
        }
    }

    #[cold]
    fn take_returned(&mut self) {
        std::mem::swap(&mut self.spares, &mut lock(&self.returned).spares);
    }

    /// Frees `h` once no reader can hold it: deferred now, or with its batch once that is
    /// full.
    ///
    /// # Safety
    ///
    /// `h` is out of the table and released by the policy (or was never published), and
    /// nobody retires it again; the caller is pinned (`guard`), and every thread that can
    /// still use `h` got it while pinned and is pinned still (the epochs wait for every pinned
    /// thread, not only `guard`'s).
    pub(crate) unsafe fn retire(&mut self, h: EntryRef<K, V>, guard: &Pin) {
        if self.batch_len == 1 {
            // SAFETY: see above: unreachable and retired once; it was allocated as a `Box`
            // (by `alloc`, through `Owned`), and is freed only after every thread that could
            // hold it unpins.
            unsafe { guard.defer_drop(1, h.as_ptr()) };
            return;
        }
        if self.batch.capacity() == 0 {
            self.batch.reserve_exact(self.batch_len);
        }
        self.waiting_weight += u64::from(h.get().weight);
        self.batch.push(h);
        if self.batch.len() >= self.batch_len || self.waiting_weight >= self.batch_weight {
            self.hand_over(guard);
        }
    }

    /// Hands the waiting entries over now (`guard` was pinned before they were unlinked); the
    /// caller collects once it has released the writer's lock.
    pub(crate) fn hand_over(&mut self, guard: &Pin) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        self.waiting_weight = 0;
        let units = batch.len();
        let returned = self.returned.clone();
        // Every entry in the batch is out of the table and the policy, and a thread that can
        // still hold one got it while pinned and is pinned now (see `retire`), so `recycle`
        // runs after they all unpin. Deferring later than the release only waits longer.
        // SAFETY: retired once, and freed only after every thread that could hold them unpins
        // (above).
        guard.defer(units, move || unsafe { recycle(batch, &returned) });
    }
}

/// How many spares a shard keeps, for batches of `batch_len` and `in_flight` entries held back
/// (see [`Reclaimer::new`]): none when it hands entries over one at a time, since it then frees
/// them and never builds in spares.
fn spares_kept(batch_len: usize, in_flight: usize) -> usize {
    if batch_len == 1 {
        0
    } else {
        batch_len * SPARE_BATCHES + in_flight
    }
}

/// The bounds [`Reclaimer::new`] describes for a shard of `entries` entries and `weight` units
/// of weight: `(batch_len, batch_weight, in_flight)`.
fn bounds(entries: usize, weight: Option<u64>) -> (usize, u64, usize) {
    (
        (entries / 64).clamp(1, MAX_BATCH),
        weight.map_or(u64::MAX, |w| (w / 64).max(1)),
        (3 * crate::epoch::ADVANCE_AFTER).min(entries / 16),
    )
}

/// Drops the batch's keys and values and returns their memory to the shard, up to the pool's
/// `keep` spares; the rest is freed. A panicking `drop` of one entry does not keep the others
/// from being dropped and freed; the first panic is resumed once they are.
///
/// # Safety
///
/// As [`empty_all`].
unsafe fn recycle<K, V>(batch: Vec<EntryRef<K, V>>, returned: &Returned<K, V>) {
    // SAFETY: the caller's contract is `empty_all`'s.
    let (mut spares, panic) = unsafe { empty_all(batch) };
    // Keys and values were dropped above, outside the pool's lock: their `drop` is the user's
    // code.
    let mut pool = lock(returned);
    let room = pool
        .keep
        .saturating_sub(pool.spares.len())
        .min(spares.len());
    pool.spares.extend(spares.drain(..room));
    drop(pool);
    drop(spares);
    if let Some(panic) = panic {
        resume_unwind(panic);
    }
}

/// Drops every entry of `batch`, keeping their memory, and the first panic a `drop` raised.
///
/// # Safety
///
/// Every entry of `batch` was allocated as a `Box` (by `Reclaimer::alloc`), retired once,
/// and no thread can reach it any more: every thread pinned when it was handed over has
/// unpinned (the collector runs this), or the shard is owned exclusively (its drop).
unsafe fn empty_all<K, V>(batch: Vec<EntryRef<K, V>>) -> (Vec<Spare<K, V>>, Option<Panic>) {
    let mut panic = None;
    let spares = batch
        .into_iter()
        .map(|h| {
            let raw = h.as_ptr();
            // SAFETY: retired once and out of every thread's reach (the contract), so its
            // contents are dropped once, here (a panicking field's drop still drops the
            // other fields).
            let dropped =
                catch_unwind(AssertUnwindSafe(|| unsafe { std::ptr::drop_in_place(raw) }));
            if let Err(p) = dropped {
                panic.get_or_insert(p);
            }
            // SAFETY: the entry was allocated as a `Box` (by `Reclaimer::alloc`, through
            // `Owned`), and its memory, now holding nothing, has the same layout as
            // `MaybeUninit<Entry>`.
            unsafe { Box::from_raw(raw.cast::<MaybeUninit<Entry<K, V>>>()) }
        })
        .collect();
    (spares, panic)
}

impl<K, V> Drop for Reclaimer<K, V> {
    fn drop(&mut self) {
        // The shard is being dropped, so no reader holds its entries. A panic from a `drop`
        // is not resumed here: this may already run while unwinding.
        // SAFETY: retired, and out of every reader's reach with the shard gone.
        drop(unsafe { empty_all(std::mem::take(&mut self.batch)) });
    }
}

#[cfg(all(test, not(shardkit_loom)))]
mod tests {
    use std::ptr::NonNull;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A value counting its drops, panicking in its drop if asked to.
    struct Fragile<'a> {
        drops: &'a AtomicUsize,
        panics: bool,
    }

    impl Drop for Fragile<'_> {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::SeqCst);
            assert!(!self.panics, "a value's drop panics");
        }
    }

    /// How many entries wait in a batch after each of four retirements of entries weighing 4,
    /// from a reclaimer for 1,024 entries (batches of 16) and `weight`.
    fn waiting_after_each_retirement(weight: Option<u64>) -> Vec<usize> {
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        let mut reclaimer = Reclaimer::new(1024, weight);
        let guard = crate::sync::pin();
        (0..4u64)
            .map(|k| {
                let value = Fragile {
                    drops: &DROPS,
                    panics: false,
                };
                let entry = reclaimer.alloc(Entry::new(k, k, value, 4));
                // SAFETY: leaked from a `Box` and never published: it stays allocated until
                // retired below, through the epochs.
                let h = unsafe { EntryRef::new(NonNull::from(Box::leak(entry.into_box()))) };
                // SAFETY: the entry was never published, so nothing else can reach or retire
                // it, and `guard` was pinned before.
                unsafe { reclaimer.retire(h, &guard) };
                reclaimer.batch.len()
            })
            .collect()
    }

    #[test]
    fn a_batch_is_handed_over_at_a_sixty_fourth_of_the_weight() {
        // A weight of 640 hands a batch over once it holds 10: at the third entry, and the
        // fourth starts the next batch.
        assert_eq!(waiting_after_each_retirement(Some(640)), [1, 2, 0, 1]);
        // Bounded by entry count, the batch waits for its 16 entries.
        assert_eq!(waiting_after_each_retirement(None), [1, 2, 3, 4]);
    }

    #[test]
    fn a_panicking_drop_does_not_keep_the_rest_of_its_batch_from_being_dropped() {
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        let batch: Vec<EntryRef<u64, Fragile<'static>>> = (0..8u64)
            .map(|k| {
                let value = Fragile {
                    drops: &DROPS,
                    panics: k == 2 || k == 5,
                };
                let entry = Box::new(Entry::new(k, k, value, 1));
                // SAFETY: leaked from a `Box`, emptied only by `empty_all` below.
                unsafe { EntryRef::new(NonNull::from(Box::leak(entry))) }
            })
            .collect();
        let returned: Returned<u64, Fragile<'static>> = Arc::new(Mutex::new(Pool {
            spares: Vec::new(),
            keep: 5,
        }));
        // SAFETY: the test's entries, reachable by nothing else.
        let outcome = catch_unwind(AssertUnwindSafe(|| unsafe { recycle(batch, &returned) }));
        assert!(outcome.is_err(), "the first panic is resumed");
        assert_eq!(
            DROPS.load(Ordering::SeqCst),
            8,
            "every value was dropped once"
        );
        assert_eq!(
            lock(&returned).spares.len(),
            5,
            "memory is returned up to `keep`, the rest freed"
        );
    }
}
