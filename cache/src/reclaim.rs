//! Freeing what a shard releases, and reusing the memory for its next entries.
//!
//! An entry that leaves the cache cannot be freed at once: a reader may still be cloning its
//! value. The epoch collector frees it once no reader can hold it. Handing each entry to the
//! collector on its own, and allocating each new entry afresh, cost a miss about a fifth of its
//! instructions (a deferred call per entry, and `malloc` and `free`, which the collector's bag
//! allocations kept off their fast paths). So a shard hands its released entries over in
//! batches, and the collector, once they are safe to free, drops their keys and values and
//! gives their memory back to the shard, which builds new entries in it.

use std::mem::MaybeUninit;
use std::sync::Arc;

use crossbeam_epoch::Owned;

use crate::entry::{Entry, EntryRef};
use crate::sync::{Mutex, lock};

/// The memory of a freed entry, ready for a new one.
type Spare<K, V> = Box<MaybeUninit<Entry<K, V>>>;

/// The most entries handed over together. A batch waits, values and all, until it is full, so
/// it is also kept to a sixty-fourth of the shard (see [`Reclaimer::new`]). Each hand-over
/// pushes the thread's epoch bag (2 KiB, copied three times) to the collector's queue, so
/// larger batches cost less per entry: measured per evicting insert in `cache-profile misses`
/// (shards of 12,500 entries, so batches of 195 against 64), this bound at 256 instead of 64
/// saved 24 instructions and 2.5 L1 data misses of 1,116 and 12.6.
const MAX_BATCH: usize = 256;

/// Spares the collector gives back to a shard, kept up to this many batches' worth: enough to
/// cover the entries of the batches in flight; past it, the memory goes back to the allocator
/// (after a `clear`, say).
const SPARE_BATCHES: usize = 4;

/// Memory of freed entries, between the collector (which may free a batch after the shard is
/// gone, hence shared) and the shard's writer.
type Returned<K, V> = Arc<Mutex<Vec<Spare<K, V>>>>;

/// A shard's reclamation: released entries waiting to be handed to the collector, and the
/// memory it gave back. Guarded by the shard's writer lock.
pub(crate) struct Reclaimer<K, V> {
    batch: Vec<EntryRef<K, V>>,
    batch_len: usize,
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
    /// For a shard of about `entries` entries, or of unknown entries when it is bounded by
    /// weight (`weighted`): an entry's weight says nothing of its value's size, so those hand
    /// over each entry at once, as a bound on what waits.
    pub(crate) fn new(entries: usize, weighted: bool) -> Self {
        let batch_len = if weighted {
            1
        } else {
            (entries / 64).clamp(1, MAX_BATCH)
        };
        Self {
            batch: Vec::with_capacity(batch_len),
            batch_len,
            spares: Vec::new(),
            returned: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// `entry`, moved to the heap: into the memory of a freed entry if there is one.
    pub(crate) fn alloc(&mut self, entry: Entry<K, V>) -> Owned<Entry<K, V>> {
        if self.spares.is_empty() {
            self.take_returned();
        }
        match self.spares.pop() {
            Some(spare) => Owned::from(Box::write(spare, entry)),
            None => Owned::new(entry),
        }
    }

    #[cold]
    fn take_returned(&mut self) {
        std::mem::swap(&mut self.spares, &mut *lock(&self.returned));
    }

    /// Frees `h`, which left the table and the policy for good, once no reader can hold it:
    /// it is handed to the collector with its batch, so it stays valid for everyone pinned
    /// until then, and for everyone pinned at the hand-over until they unpin.
    ///
    /// # Safety
    ///
    /// `h` is unreachable from the table and the policy, and nobody retires it again.
    pub(crate) unsafe fn retire(&mut self, h: EntryRef<K, V>) {
        self.batch.push(h);
        if self.batch.len() >= self.batch_len {
            self.hand_over();
        }
    }

    /// Hands the waiting entries to the collector now, and pushes this thread's deferred work
    /// to the collector's shared queue, so a later collection by any thread frees them (not
    /// only this thread's, after 63 more hand-overs).
    pub(crate) fn hand_over(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(self.batch_len));
        let returned = self.returned.clone();
        let keep = self.batch_len * SPARE_BATCHES;
        let free = move || recycle(batch, &returned, keep);
        // Pinned here, whatever the caller holds: a writer may run unpinned (see
        // `Shard::insert`), and a deferral under no guard would free at once.
        let guard = &crate::sync::pin();
        // SAFETY: every entry in the batch left the table and the policy before this call (see
        // `retire`), so only threads pinned now can hold one; the collector runs `free` after
        // they all unpin. Deferring later than the release only waits longer.
        unsafe { guard.defer_unchecked(free) };
        if self.batch_len > 1 {
            guard.flush();
        }
    }
}

/// Drops the batch's keys and values and returns their memory to the shard, up to `keep`
/// spares; the rest is freed.
fn recycle<K, V>(batch: Vec<EntryRef<K, V>>, returned: &Returned<K, V>, keep: usize) {
    // Keys and values are dropped here, outside the lock: their `drop` is the user's code.
    let mut spares: Vec<Spare<K, V>> = batch.into_iter().map(empty).collect();
    let mut pool = lock(returned);
    let room = keep.saturating_sub(pool.len()).min(spares.len());
    pool.extend(spares.drain(..room));
}

/// Drops `h`'s entry, keeping its memory.
fn empty<K, V>(h: EntryRef<K, V>) -> Spare<K, V> {
    let raw = h.0.as_ptr();
    // SAFETY: the collector runs this only once no reader can hold the entry, and the entry
    // was retired once, so nothing else drops or frees it: its contents are dropped once, here.
    unsafe { std::ptr::drop_in_place(raw) };
    // SAFETY: the entry was allocated as a `Box` (by `Reclaimer::alloc`, through `Owned`), and
    // its memory, now holding nothing, has the same layout as `MaybeUninit<Entry>`.
    unsafe { Box::from_raw(raw.cast::<MaybeUninit<Entry<K, V>>>()) }
}

impl<K, V> Drop for Reclaimer<K, V> {
    fn drop(&mut self) {
        for h in self.batch.drain(..) {
            // The shard is being dropped, so no reader holds its entries.
            drop(empty(h));
        }
    }
}
