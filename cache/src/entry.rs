//! Cache entries: immutable key and value, with the few atomics readers and the policy share.

use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use crate::sync::{AtomicBool, AtomicU8, AtomicU64, Built};

use crate::policy::{Handle, Region};

/// Hits saturate here: the policy only needs "re-used, and about how often".
const MAX_HITS: u8 = 15;

/// One cached key and value. Entries are never changed in place: a new value for a key is a new
/// entry, so a reader can clone the value without a lock. They are freed through epoch-based
/// reclamation once both the table and the policy have let go of them.
///
/// Laid out in field order (`repr(C)`), what an untimed hit reads first: the hash, the key,
/// the value, the hit counter and the removal flag; then the policy's region and the weight,
/// and the expiry last (a cache with expiry reads it on every hit). Entries come from the
/// allocator 16-byte aligned, not line aligned, so a `u64` to `u64` entry (40 bytes) crosses
/// a cache line at half its places; in the compiler's order (the expiry among the first 16
/// bytes, the counters last), a hit touched all 40, where now its first 26 cross a line at a
/// quarter of them. The order costs no padding for the usual keys and values (small values
/// fill the gap before the counters): see the test `entries_are_as_small_as_the_compilers`.
/// A small gain, measured against the compiler's order with a scratch harness (not kept) that
/// ran both builds in one process, alternating every 20,000 operations of `cache-profile`'s
/// workloads (medians of ten rounds): get-or-insert 1.7% faster at Zipf 0.99 and no faster at
/// 0.7, hits 1.8%. Two identical builds came out within 0.8% of each other. An order with the
/// counters before the key gave 2.4%, 2.4% and 1.0% in six rounds, and 1.2%, 0.7% and 0.8%
/// in ten, but padded small values.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Entry<K, V> {
    pub(crate) hash: u64,
    pub(crate) key: K,
    pub(crate) value: V,
    /// Hits since the policy last looked (saturating); readers bump it.
    hits: AtomicU8,
    /// Set once the key was removed or evicted: readers holding the entry treat it as absent.
    /// (A replaced entry is not removed: its value was current until the replacement.)
    removed: AtomicBool,
    /// The policy's region (written only under the shard lock).
    region: AtomicU8,
    pub(crate) weight: u32,
    /// When it expires, in nanoseconds after the cache's time origin; 0 for never. Time to idle
    /// moves it on reads.
    expires_at: AtomicU64,
    /// Read wherever a reader reaches the entry ([`Entry::reached`]): the key and value are
    /// plain memory, which loom does not track, so this is how the models check that whatever
    /// published the entry ordered its building before the read, and its freeing after.
    built: Built,
}

impl<K, V> Entry<K, V> {
    pub(crate) fn new(hash: u64, key: K, value: V, weight: u32) -> Self {
        Self {
            hash,
            hits: AtomicU8::new(0),
            region: AtomicU8::new(Region::Gone as u8),
            removed: AtomicBool::new(false),
            weight,
            expires_at: AtomicU64::new(0),
            key,
            value,
            built: Built::new(),
        }
    }

    /// Marks a reader's access to the entry, found through a table: under loom, a read of
    /// [`built`](Self::built), which fails the model if the entry's building is not ordered
    /// before it. Nothing otherwise.
    #[inline]
    pub(crate) fn reached(&self) {
        self.built.reached();
    }

    /// The entry, expiring at `at` (nanoseconds after the cache's time origin; 0 for never).
    pub(crate) fn expiring_at(self, at: u64) -> Self {
        self.expires_at.store(at, Ordering::Relaxed);
        self
    }

    pub(crate) fn expires_at(&self) -> u64 {
        self.expires_at.load(Ordering::Relaxed)
    }

    pub(crate) fn set_expires_at(&self, at: u64) {
        self.expires_at.store(at, Ordering::Relaxed);
    }

    /// What it has left to live at `now` (nanoseconds after the cache's time origin; `None`: no
    /// deadline).
    pub(crate) fn remaining(&self, now: u64) -> Option<std::time::Duration> {
        let at = self.expires_at();
        (at != 0).then(|| std::time::Duration::from_nanos(at.saturating_sub(now)))
    }

    /// Moves its deadline later to `at`, never earlier: a time-to-idle renewal. A load and a
    /// store, not an atomic maximum, to keep read-modify-writes off the read path: a reader
    /// that read the clock, then waited before storing, can still overwrite a later renewal
    /// made meanwhile, so the entry expires early by at most that wait (a miss, never a stale
    /// value).
    pub(crate) fn extend_expiry_to(&self, at: u64) {
        if at > self.expires_at() {
            self.set_expires_at(at);
        }
    }

    /// Whether it has expired at `now` (nanoseconds after the cache's time origin).
    pub(crate) fn is_expired(&self, now: u64) -> bool {
        let at = self.expires_at();
        at != 0 && at <= now
    }

    /// Records a hit. A load and a store, not an atomic add: a hit lost to a race costs the
    /// policy nothing it needs, and a saturated counter costs readers no write at all.
    pub(crate) fn hit(&self) {
        let hits = self.hits.load(Ordering::Relaxed);
        if hits < MAX_HITS {
            self.hits.store(hits + 1, Ordering::Relaxed);
        }
    }

    pub(crate) fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    pub(crate) fn mark_removed(&self) {
        self.removed.store(true, Ordering::Release);
    }
}

/// A pointer to an entry. Valid while the policy holds it (entries are freed only when the
/// policy releases them, and then only through the epochs of [`crate::epoch`]), and after
/// release for as long as a pin taken before the release. Made only by the unsafe
/// [`new`](Self::new), which promises that much, so [`get`](Self::get) can be safe.
pub(crate) struct EntryRef<K, V>(NonNull<Entry<K, V>>);

impl<K, V> Clone for EntryRef<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V> Copy for EntryRef<K, V> {}

impl<K, V> std::fmt::Debug for EntryRef<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("EntryRef").field(&self.0).finish()
    }
}

// SAFETY: an `EntryRef` is a shared reference in disguise; sending one to another thread is
// sending `&Entry<K, V>`, which is sound when the entry is `Sync` (its atomics are, and `K`, `V`
// are required to be `Sync`) and the entry may be dropped there (`Send`). Which thread may
// read through it is `new`'s contract: any, while the entry is not retired (the policy's
// handles, used under the shard's lock); once it is, only a thread pinned since before the
// retirement (a retired batch handed to the collector is only emptied, by `as_ptr`, once
// every such thread has unpinned).
unsafe impl<K: Send + Sync, V: Send + Sync> Send for EntryRef<K, V> {}
// SAFETY: as above; sharing the pointer only ever gives out `&Entry`.
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for EntryRef<K, V> {}

impl<K, V> EntryRef<K, V> {
    /// A reference to the entry at `entry`.
    ///
    /// # Safety
    ///
    /// `entry` points to a live entry allocated as a `Box`, whose contents are not dropped,
    /// and whose memory is neither freed nor reused, for as long as the `EntryRef` (or a copy)
    /// is read through: it is not retired yet, and is emptied or freed only once retired
    /// through the epochs (fresh and owned by its writer, or held by a shard's table or
    /// policy), or by an owner with exclusive access (a shard's drop); or it was retired, and
    /// the thread reading through the `EntryRef` has stayed pinned since before the
    /// retirement. The `EntryRef` is `Copy` and `Send`: code that keeps one past a retirement
    /// (a removal's notice) must read it only under the pin it was got under.
    pub(crate) unsafe fn new(entry: NonNull<Entry<K, V>>) -> Self {
        Self(entry)
    }

    /// The entry's address.
    pub(crate) fn as_ptr(self) -> *mut Entry<K, V> {
        self.0.as_ptr()
    }

    pub(crate) fn get(&self) -> &Entry<K, V> {
        // SAFETY: `new`'s contract: the entry is not retired yet (fresh and owned by its
        // writer, or held by a shard's table or policy, which let it go only by retiring it
        // through the epochs), or this thread has stayed pinned since before it was retired:
        // the epochs keep it whole until then.
        unsafe { self.0.as_ref() }
    }
}

impl<K, V> Handle for EntryRef<K, V> {
    fn hash(self) -> u64 {
        self.get().hash
    }

    fn take_hits(self) -> u8 {
        // A load and a store, not a swap: a reader's hit landing between them is lost, which
        // costs the policy nothing it needs (see `Entry::hit`), while a swap is a locked
        // instruction on every entry the policy looks at.
        let hits = &self.get().hits;
        let n = hits.load(Ordering::Relaxed);
        if n > 0 {
            hits.store(0, Ordering::Relaxed);
        }
        n
    }

    fn region(self) -> Region {
        Region::from_u8(self.get().region.load(Ordering::Relaxed))
    }

    fn set_region(self, region: Region) {
        self.get().region.store(region as u8, Ordering::Relaxed);
    }

    fn weight(self) -> u64 {
        u64::from(self.get().weight)
    }

    fn prefetch(self) {
        crate::prefetch::prefetch(self.as_ptr());
    }
}

#[cfg(all(test, not(shardkit_loom)))]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// `Entry`'s fields in the compiler's own order, for the size it would choose.
    #[allow(dead_code)]
    struct CompilersOrder<K, V> {
        hash: u64,
        hits: AtomicU8,
        removed: AtomicBool,
        region: AtomicU8,
        weight: u32,
        expires_at: AtomicU64,
        key: K,
        value: V,
    }

    fn same_size<K, V>() {
        assert_eq!(
            std::mem::size_of::<Entry<K, V>>(),
            std::mem::size_of::<CompilersOrder<K, V>>(),
            "Entry<{}, {}>",
            std::any::type_name::<K>(),
            std::any::type_name::<V>()
        );
    }

    /// The hit-first layout pads no common key and value types more than the compiler would.
    /// (Keys of one or two bytes with 8-byte values would take 8 bytes more: a cache of at most
    /// 65,536 keys.)
    #[test]
    fn entries_are_as_small_as_the_compilers() {
        assert_eq!(std::mem::size_of::<Entry<u64, u64>>(), 40);
        same_size::<u64, u64>();
        same_size::<u64, u8>();
        same_size::<u64, bool>();
        same_size::<u32, u32>();
        same_size::<u32, u64>();
        same_size::<u64, u128>();
        same_size::<String, u64>();
        same_size::<u64, String>();
        same_size::<Arc<str>, u8>();
        same_size::<Arc<str>, Arc<[u8]>>();
        same_size::<(u64, u32), Vec<u8>>();
    }
}
