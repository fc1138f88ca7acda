//! A shard's hash table: open addressing with linear probing over atomic entry pointers, with a
//! parallel array of one-byte hash tags. Readers probe it without a lock while pinned (every
//! method takes the [`crate::epoch::Pin`] that keeps what it loads allocated); only the
//! shard's writer (holding its lock) stores into it.
//!
//! A probe reads tags, which sit 64 to a cache line, and follows a pointer only when its tag
//! matches: a lookup costs about one entry access instead of one per probed slot, and a miss
//! usually none. Tags are hints: a reader may see a tag and a pointer from different moments,
//! so a match is always confirmed on the entry's full hash and key.

use std::borrow::Borrow;
use std::sync::atomic::Ordering;

use crossbeam_epoch::{Atomic, Shared};

use crate::epoch::Pin;

use crate::entry::Entry;
use crate::sync::AtomicU8;

/// The tag of a null slot pointer that marks a removed entry: probes continue past it.
const TOMBSTONE: usize = 1;

/// Hash tags of slots never used (a probe stops there) and of removed entries' slots.
const TAG_EMPTY: u8 = 0;
const TAG_TOMBSTONE: u8 = 1;

/// The tag of `hash`: bits the slot index (low bits) and the shard (top bits) do not use,
/// mapped past the two reserved values.
#[inline]
pub(crate) fn tag(hash: u64) -> u8 {
    ((hash >> 40) as u8).max(2)
}

/// Where a key is, or would go.
pub(crate) enum Probe<'g, K, V> {
    /// The key is in slot `.0`.
    Found(usize, Shared<'g, Entry<K, V>>),
    /// The key is absent; it would go in slot `.0`.
    Vacant(usize),
}

/// A slot: a pointer to an entry, null when empty.
type Slot<K, V> = Atomic<Entry<K, V>>;

/// A table of `2^k` slots.
pub(crate) struct Table<K, V> {
    slots: Box<[Slot<K, V>]>,
    tags: Box<[AtomicU8]>,
}

impl<K, V> std::fmt::Debug for Table<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("slots", &self.slots.len())
            .finish()
    }
}

impl<K, V> Table<K, V> {
    /// An empty table of `slots` slots (a power of two).
    pub(crate) fn new(slots: usize) -> Self {
        debug_assert!(slots.is_power_of_two());
        Self {
            slots: (0..slots).map(|_| Atomic::null()).collect(),
            tags: (0..slots).map(|_| AtomicU8::new(TAG_EMPTY)).collect(),
        }
    }

    /// The tags and the slots as slices of one length the compiler can see, and the mask of
    /// that length (a power of two): indexes masked with it need no bounds checks in a probe's
    /// loop.
    #[inline]
    fn parts(&self) -> (&[AtomicU8], &[Slot<K, V>], usize) {
        let tags = &self.tags[..];
        let slots = &self.slots[..tags.len()];
        (tags, slots, tags.len().wrapping_sub(1))
    }

    pub(crate) fn slots(&self) -> usize {
        self.slots.len()
    }

    /// The entry for `key`, if present (removed entries included: callers check).
    #[inline]
    pub(crate) fn find<'g, Q>(&self, hash: u64, key: &Q, guard: &'g Pin) -> Option<&'g Entry<K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        match self.probe(hash, key, guard) {
            Probe::Found(_, entry) => {
                // SAFETY: the pointer was loaded from a slot while pinned (`guard` is the pin);
                // entries are freed only through the epochs after leaving every slot, so it is
                // live for as long as `guard` is.
                Some(unsafe { entry.deref() })
            }
            Probe::Vacant(_) => None,
        }
    }

    /// Finds `key`'s slot, or the slot an insertion of it should use (the first tombstone on
    /// its probe path, else the empty slot ending it).
    #[inline]
    pub(crate) fn probe<'g, Q>(&self, hash: u64, key: &Q, guard: &'g Pin) -> Probe<'g, K, V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let mut vacant = None;
        let want = tag(hash);
        let (tags, slots, mask) = self.parts();
        let mut i = hash as usize & mask;
        // The writer keeps a quarter of the slots empty, so a probe always ends early; the bound
        // only guards the loop.
        for _ in 0..tags.len() {
            // The likeliest outcome first: a hit's first slot is usually its own.
            let t = tags[i].load(Ordering::Acquire);
            if t == want {
                let p = slots[i].load(Ordering::Acquire, guard.guard());
                if p.is_null() {
                    vacant.get_or_insert(i);
                } else {
                    // SAFETY: loaded under `guard` (see `find`).
                    let entry = unsafe { p.deref() };
                    if entry.hash == hash && entry.key.borrow() == key {
                        return Probe::Found(i, p);
                    }
                }
            } else if t == TAG_EMPTY {
                return Probe::Vacant(vacant.unwrap_or(i));
            } else if t == TAG_TOMBSTONE {
                vacant.get_or_insert(i);
            }
            i = (i + 1) & mask;
        }
        Probe::Vacant(vacant.unwrap_or(i))
    }

    /// The slot holding exactly `entry`.
    pub(crate) fn position(&self, entry: Shared<'_, Entry<K, V>>, guard: &Pin) -> Option<usize> {
        // SAFETY: the caller holds `entry` alive: the policy has not released it, or (`retain`)
        // the caller's guard was pinned while the policy held it, so its memory is neither
        // freed nor reused before the guard is dropped.
        let hash = unsafe { entry.deref() }.hash;
        let (tags, slots, mask) = self.parts();
        let mut i = hash as usize & mask;
        for _ in 0..tags.len() {
            // The pointer first: it is what is sought, and the writer (the only caller) never
            // sees an entry's slot with an empty tag.
            if slots[i].load(Ordering::Acquire, guard.guard()) == entry {
                return Some(i);
            }
            if tags[i].load(Ordering::Relaxed) == TAG_EMPTY {
                return None;
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// Stores `entry` in slot `i` (writer only): the pointer first, so a reader that sees the
    /// tag finds it.
    pub(crate) fn store(&self, i: usize, entry: Shared<'_, Entry<K, V>>) {
        // SAFETY: the caller holds `entry` alive.
        let hash = unsafe { entry.deref() }.hash;
        self.slots[i].store(entry, Ordering::Release);
        self.tags[i].store(tag(hash), Ordering::Release);
    }

    /// Empties slot `i`, leaving a tombstone so probes pass it (writer only).
    ///
    /// Emptying the slot outright when the next one is empty (no entry's probe path runs
    /// through it then) was tried: tombstones became rarer, the table was never rebuilt, and
    /// its clusters grew under the churn of evictions until a miss cost more (measured: 1,187
    /// to 1,264 instructions per evicting insert in `cache-profile misses`). The tombstones,
    /// and the rebuilds they trigger, keep clusters short.
    pub(crate) fn clear_slot(&self, i: usize) {
        self.tags[i].store(TAG_TOMBSTONE, Ordering::Release);
        self.slots[i].store(Shared::null().with_tag(TOMBSTONE), Ordering::Release);
    }

    /// Whether slot `i` holds a tombstone.
    pub(crate) fn is_tombstone(&self, i: usize) -> bool {
        self.tags[i].load(Ordering::Relaxed) == TAG_TOMBSTONE
    }

    /// The entries, in slot order.
    pub(crate) fn entries<'g>(
        &'g self,
        guard: &'g Pin,
    ) -> impl Iterator<Item = Shared<'g, Entry<K, V>>> + 'g {
        self.slots
            .iter()
            .map(move |s| s.load(Ordering::Acquire, guard.guard()))
            .filter(|p| !p.is_null())
    }

    /// A table of `slots` slots (a power of two) holding the entries of `old`, with no
    /// tombstones, for a table nobody reads yet.
    pub(crate) fn rebuilt_from(old: &Self, slots: usize, guard: &Pin) -> Self {
        let new = Self::new(slots);
        // Every entry's hash first, in a loop of independent loads, then the placing: each
        // hash is a cache miss, and a loop that also probed (branching on the loaded tags)
        // left the processor one miss at a time.
        let moved: Vec<(u64, Shared<'_, Entry<K, V>>)> = old
            .entries(guard)
            // SAFETY: entries in `old`'s slots are live while `guard` is pinned.
            .map(|e| (unsafe { e.deref() }.hash, e))
            .collect();
        let (tags, slots, mask) = new.parts();
        for (hash, entry) in moved {
            let mut i = hash as usize & mask;
            while tags[i].load(Ordering::Relaxed) != TAG_EMPTY {
                i = (i + 1) & mask;
            }
            slots[i].store(entry, Ordering::Relaxed);
            tags[i].store(tag(hash), Ordering::Relaxed);
        }
        new
    }
}

#[cfg(all(test, not(shardkit_loom)))]
mod tests {
    use std::collections::HashMap;

    use crossbeam_epoch::Owned;

    use super::*;

    /// Random inserts and removals of keys crowded onto a few home slots of a small table,
    /// as the shard's writer makes them: every present key is found, every removed one is not,
    /// and the writer's count of tombstones matches the table's.
    #[test]
    fn removals_keep_every_probe_path_whole() {
        let guard = &crate::sync::pin();
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        for _round in 0..200 {
            let table: Table<u64, u64> = Table::new(16);
            let mut present: HashMap<u64, Shared<'_, Entry<u64, u64>>> = HashMap::new();
            let mut tombstones = 0usize;
            for _ in 0..300 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let key = rng % 24;
                // Homes in slots 13..=15 and 0..=2: clusters that wrap around the end.
                let hash = ((key % 6 + 13) % 16) | (key << 40) | (1 << 50);
                match table.probe(hash, &key, guard) {
                    Probe::Found(i, _) => {
                        table.clear_slot(i);
                        tombstones += 1;
                        let entry = present.remove(&key).expect("found keys are present");
                        // SAFETY: out of the table, and no other thread can hold it.
                        drop(unsafe { entry.into_owned() });
                    }
                    Probe::Vacant(i) if present.len() < 12 => {
                        if table.is_tombstone(i) {
                            tombstones -= 1;
                        }
                        let entry =
                            Owned::new(Entry::new(hash, key, key, 1)).into_shared(guard.guard());
                        table.store(i, entry);
                        present.insert(key, entry);
                    }
                    Probe::Vacant(_) => {}
                }
                for k in 0..24u64 {
                    let hash = ((k % 6 + 13) % 16) | (k << 40) | (1 << 50);
                    let found = table.find(hash, &k, guard).map(|e| e.key);
                    let want = present.contains_key(&k).then_some(k);
                    assert_eq!(found, want, "key {k}");
                }
                let counted = (0..16).filter(|&i| table.is_tombstone(i)).count();
                assert_eq!(tombstones, counted);
            }
            for (_, entry) in present {
                // SAFETY: unreachable once the table is dropped, and never shared elsewhere.
                drop(unsafe { entry.into_owned() });
            }
        }
    }
}
