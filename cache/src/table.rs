//! A shard's hash table: open addressing over atomic entry pointers, in buckets of seven slots
//! that share one cache line with a word of one-byte hash tags. Readers probe it without a lock
//! while pinned (every method takes the [`crate::epoch::Pin`] that keeps what it loads
//! allocated); only the shard's writer (holding its lock) stores into it.
//!
//! A probe compares a bucket's seven tags at once and follows a pointer only when its tag
//! matches, so a lookup costs one line of the table and about one entry access, and a miss
//! usually the table's line alone. The line also holds the pointers: a hit reads its tag and its
//! pointer from one cache line, not two, and the write that follows a missed read finds its slot
//! in the line the read loaded. Measured against tags and pointers in two parallel arrays
//! (`cache-profile`, alternated runs, million operations a second): evicting inserts 8.7-9.3
//! against 11.4-12.2, get-or-insert at Zipf 0.7 10.8-11.9 against 13.1-14.4, hits 80-87
//! against 79-81. Tags are hints: a reader may see a tag and a pointer from different
//! moments, so a match is always confirmed on the entry's full hash and key.
//!
//! A key's probe starts at its home bucket (its hash's low 32 bits scaled to the bucket count,
//! which need not be a power of two) and moves to the next bucket only past a bucket with no
//! never-used slot: slots become never-used only in a new table, so a key's bucket and every
//! bucket before it on its path keep no never-used slot while it is present, and a probe that
//! meets one can stop.

use std::borrow::Borrow;
use std::sync::atomic::Ordering;

use crossbeam_epoch::{Atomic, Shared};

use crate::epoch::Pin;

use crate::entry::Entry;
use crate::sync::{AtomicU64, Built};

/// Hash tags of slots never used (a probe stops after their bucket) and of removed entries'
/// slots.
const TAG_EMPTY: u8 = 0;
const TAG_TOMBSTONE: u8 = 1;

/// Slots per bucket: seven pointers and their tags fill one 64-byte line.
const LANES: usize = 7;

/// Slot numbers step by this per bucket: slot `i` is lane `i % STRIDE` of bucket
/// `i / STRIDE` (a shift and a mask; lane 7 is never used).
const STRIDE: usize = 8;

/// The high bit of each of the tag word's bytes that belong to slots (the eighth is unused).
const LANE_BITS: u64 = 0x0080_8080_8080_8080;

/// The tag of `hash`: bits the bucket (low bits) and the shard (top bits) do not use, mapped
/// past the two reserved values.
#[inline]
pub(crate) fn tag(hash: u64) -> u8 {
    ((hash >> 40) as u8).max(2)
}

/// The high bit of each byte of `word` that equals `byte`, and possibly of bytes above an
/// equal one (a borrow between bytes can flag a run of bytes equal to `byte ^ 1` just above
/// it). The lowest flagged byte is always an equal one, so "is there one" and "the first
/// one" are exact; a tag match only leads to the slot's entry, which is compared in full
/// anyway.
#[inline]
fn bytes_equal(word: u64, byte: u8) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let x = word ^ (u64::from(byte) * ONES);
    x.wrapping_sub(ONES) & !x & LANE_BITS
}

/// The slot of the lowest byte flagged in `bits` (from [`bytes_equal`]).
#[inline]
fn lowest_lane(bits: u64) -> usize {
    bits.trailing_zeros() as usize / 8
}

/// `word` with byte `lane` replaced by `byte`.
#[inline]
fn with_byte(word: u64, lane: usize, byte: u8) -> u64 {
    let shift = 8 * lane;
    (word & !(0xff << shift)) | u64::from(byte) << shift
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

/// Seven slots and their tags (byte `i` of `tags` is slot `i`'s), one cache line.
#[repr(C, align(64))]
struct Bucket<K, V> {
    tags: AtomicU64,
    slots: [Slot<K, V>; LANES],
}

// One cache line with 64-bit pointers (under loom, atomics are larger).
#[cfg(all(target_pointer_width = "64", not(shardkit_loom)))]
const _: () = assert!(std::mem::size_of::<Bucket<(), ()>>() == 64);

impl<K, V> Bucket<K, V> {
    fn new() -> Self {
        Self {
            tags: AtomicU64::new(0),
            slots: std::array::from_fn(|_| Atomic::null()),
        }
    }
}

/// A table of buckets; slots are numbered as [`STRIDE`] says.
pub(crate) struct Table<K, V> {
    buckets: Box<[Bucket<K, V>]>,
    /// Reached by every lookup: under loom, the models check that a table is freed (after a
    /// rebuild replaced it) only once no reader can still walk it.
    built: Built,
}

impl<K, V> std::fmt::Debug for Table<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("slots", &self.slots())
            .finish()
    }
}

impl<K, V> Table<K, V> {
    /// An empty table of at least `slots` slots.
    pub(crate) fn new(slots: usize) -> Self {
        let buckets = slots.div_ceil(LANES).max(1);
        // `home` scales 32 bits of hash by the bucket count in 64 bits.
        debug_assert!(buckets as u64 <= 1 << 32, "{buckets} buckets");
        Self {
            buckets: (0..buckets).map(|_| Bucket::new()).collect(),
            built: Built::new(),
        }
    }

    /// The bytes its buckets take.
    pub(crate) fn memory(&self) -> usize {
        std::mem::size_of_val(&*self.buckets)
    }

    /// How many slots it has.
    pub(crate) fn slots(&self) -> usize {
        self.buckets.len() * LANES
    }

    /// The bucket a probe for `hash` starts at.
    #[inline]
    fn home(&self, hash: u64) -> usize {
        (((hash & 0xffff_ffff) * self.buckets.len() as u64) >> 32) as usize
    }

    /// The bucket after `b`, wrapping around.
    #[inline]
    fn next(&self, b: usize) -> usize {
        if b + 1 == self.buckets.len() {
            0
        } else {
            b + 1
        }
    }

    /// The slot `i` names.
    #[inline]
    fn slot(&self, i: usize) -> &Slot<K, V> {
        &self.buckets[i / STRIDE].slots[i % STRIDE]
    }

    /// Walks `hash`'s probe path from its home bucket: calls `visit` with each bucket's index,
    /// the bucket and its tag word (loaded with `order`) until `visit` returns a result, or
    /// until it has visited a bucket with a never-used slot, where the path ends (`None`).
    #[inline(always)]
    fn walk<'t, R>(
        &'t self,
        hash: u64,
        order: Ordering,
        mut visit: impl FnMut(usize, &'t Bucket<K, V>, u64) -> Option<R>,
    ) -> Option<R> {
        self.built.reached();
        let mut b = self.home(hash);
        // The writer keeps a quarter of the slots never used, so a probe ends within a few
        // buckets; the bound only guards the loop.
        for _ in 0..self.buckets.len() {
            let bucket = &self.buckets[b];
            let tags = bucket.tags.load(order);
            if let Some(found) = visit(b, bucket, tags) {
                return Some(found);
            }
            if bytes_equal(tags, TAG_EMPTY) != 0 {
                return None;
            }
            b = self.next(b);
        }
        None
    }

    /// The slots of `bucket` whose tag in `tags` may be `hash`'s, with their pointers (loaded
    /// with `order`; null ones skipped).
    #[inline(always)]
    fn candidates<'g>(
        bucket: &Bucket<K, V>,
        tags: u64,
        hash: u64,
        order: Ordering,
        guard: &'g Pin,
    ) -> impl Iterator<Item = (usize, Shared<'g, Entry<K, V>>)>
    where
        K: 'g,
        V: 'g,
    {
        let mut matches = bytes_equal(tags, tag(hash));
        std::iter::from_fn(move || {
            while matches != 0 {
                let lane = lowest_lane(matches);
                matches &= matches - 1;
                let p = bucket.slots[lane].load(order, guard.guard());
                if !p.is_null() {
                    return Some((lane, p));
                }
            }
            None
        })
    }

    /// Whether `p` (loaded under `guard`) points to the entry for `key`.
    #[inline(always)]
    fn holds<Q>(p: Shared<'_, Entry<K, V>>, hash: u64, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        // SAFETY: the pointer was loaded while pinned from a table reached under that pin, and
        // is not null (see `candidates`). An entry is retired only after leaving the current
        // table, and any older table still reachable was retired before it, so the entry is
        // freed only through the epochs, after the pin (a shard's drop frees at once, but
        // nothing borrows the shard then).
        let entry = unsafe { p.deref() };
        entry.reached();
        entry.hash == hash && entry.key.borrow() == key
    }

    /// The entry for `key`, if present (removed entries included: callers check).
    #[inline]
    pub(crate) fn find<'g, Q>(&self, hash: u64, key: &Q, guard: &'g Pin) -> Option<&'g Entry<K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let found = self.walk(hash, Ordering::Acquire, |_, bucket, tags| {
            Self::candidates(bucket, tags, hash, Ordering::Acquire, guard)
                .find(|&(_, p)| Self::holds(p, hash, key))
        })?;
        // SAFETY: as in `holds`: loaded while pinned (`guard` is the pin) from a table
        // reached under it, not null.
        Some(unsafe { found.1.deref() })
    }

    /// Finds `key`'s slot, or the slot an insertion of it should use (the first tombstone on
    /// its probe path, else the never-used slot where the path ends). Writer only: it reads
    /// what it stored itself, so its loads need no ordering.
    #[inline]
    pub(crate) fn probe<'g, Q>(&self, hash: u64, key: &Q, guard: &'g Pin) -> Probe<'g, K, V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let (mut tombstone, mut empty) = (None, None);
        let found = self.walk(hash, Ordering::Relaxed, |b, bucket, tags| {
            if let Some((lane, p)) = Self::candidates(bucket, tags, hash, Ordering::Relaxed, guard)
                .find(|&(_, p)| Self::holds(p, hash, key))
            {
                return Some(Probe::Found(b * STRIDE + lane, p));
            }
            let tombstones = bytes_equal(tags, TAG_TOMBSTONE);
            if tombstone.is_none() && tombstones != 0 {
                tombstone = Some(b * STRIDE + lowest_lane(tombstones));
            }
            let empties = bytes_equal(tags, TAG_EMPTY);
            if empties != 0 {
                empty = Some(b * STRIDE + lowest_lane(empties));
            }
            None
        });
        found.unwrap_or_else(|| {
            // The writer rebuilds before fewer than a quarter of the slots are left never used,
            // so a walk always meets one: a table without one means its counts are wrong.
            debug_assert!(
                tombstone.or(empty).is_some(),
                "a full table: no slot to insert"
            );
            Probe::Vacant(tombstone.or(empty).unwrap_or(0))
        })
    }

    /// The slot holding exactly `entry` (writer only).
    ///
    /// # Safety
    ///
    /// `entry` is not null, and not retired yet, or `guard` was pinned while the table or
    /// the policy still held it (an eviction's victim, `retain`'s and `compute`'s entries):
    /// either way its memory is neither freed nor reused before `guard` drops.
    pub(crate) unsafe fn position(
        &self,
        entry: Shared<'_, Entry<K, V>>,
        guard: &Pin,
    ) -> Option<usize> {
        // SAFETY: live under `guard`, and not null (the contract).
        let hash = unsafe { entry.deref() }.hash;
        // The writer sees its own stores: an entry's slot has its tag.
        self.walk(hash, Ordering::Relaxed, |b, bucket, tags| {
            Self::candidates(bucket, tags, hash, Ordering::Relaxed, guard)
                .find(|&(_, p)| p == entry)
                .map(|(lane, _)| b * STRIDE + lane)
        })
    }

    /// Stores `entry` in slot `i` (writer only): the pointer first, so a reader that sees the
    /// tag finds it.
    ///
    /// # Safety
    ///
    /// `entry` is not null and not retired: readers that find it dereference it for as long
    /// as they are pinned, and it may be retired only after it leaves the table. The caller
    /// is the shard's writer (it holds the writer's lock, or owns the table alone): a tag
    /// word written by two at once could lose a tag, and with it the entry's slot.
    pub(crate) unsafe fn store(&self, i: usize, entry: Shared<'_, Entry<K, V>>) {
        // SAFETY: not null and live (the contract).
        let hash = unsafe { entry.deref() }.hash;
        self.slot(i).store(entry, Ordering::Release);
        self.set_tag(i, tag(hash));
    }

    /// Sets slot `i`'s tag (writer only: the word is read and written back, which no other
    /// writer can interleave with).
    fn set_tag(&self, i: usize, tag: u8) {
        let tags = &self.buckets[i / STRIDE].tags;
        let word = tags.load(Ordering::Relaxed);
        tags.store(with_byte(word, i % STRIDE, tag), Ordering::Release);
    }

    /// Empties slot `i`, leaving a tombstone so probes pass it (writer only).
    ///
    /// Emptying the slot outright when no probe path runs through it was tried (with single
    /// slots in place of buckets): tombstones became rarer, the table was never rebuilt, and
    /// its clusters grew under the churn of evictions until a miss cost more (measured: 1,187
    /// to 1,264 instructions per evicting insert in `cache-profile misses`). The tombstones,
    /// and the rebuilds they trigger, keep probes short.
    pub(crate) fn clear_slot(&self, i: usize) {
        self.set_tag(i, TAG_TOMBSTONE);
        self.slot(i).store(Shared::null(), Ordering::Release);
    }

    /// Whether slot `i` holds a tombstone.
    pub(crate) fn is_tombstone(&self, i: usize) -> bool {
        let word = self.buckets[i / STRIDE].tags.load(Ordering::Relaxed);
        (word >> (8 * (i % STRIDE))) as u8 == TAG_TOMBSTONE
    }

    /// The entries, in slot order.
    pub(crate) fn entries<'g>(
        &'g self,
        guard: &'g Pin,
    ) -> impl Iterator<Item = Shared<'g, Entry<K, V>>> + 'g {
        self.buckets
            .iter()
            .flat_map(|b| &b.slots)
            .map(move |s| s.load(Ordering::Acquire, guard.guard()))
            .filter(|p| !p.is_null())
    }

    /// A table holding the entries of `old`, with no tombstones, for a table nobody reads yet:
    /// twice as many slots as entries (and one more pair), at least `min_slots`.
    pub(crate) fn rebuilt_from(old: &Self, min_slots: usize, guard: &Pin) -> Self {
        // Every entry's hash first, in a loop of independent loads, then the placing: each
        // hash is a cache miss, and a loop that also probed (branching on the loaded tags)
        // left the processor one miss at a time (measured with single slots: `cache-profile
        // misses` 7.4-8.1 against 7.8-8.4 million operations a second, alternated runs).
        let moved: Vec<(u64, Shared<'_, Entry<K, V>>)> = old
            .entries(guard)
            // SAFETY: entries in `old`'s slots are live while `guard` is pinned.
            .map(|e| (unsafe { e.deref() }.hash, e))
            .collect();
        // At most half full, so every walk below meets a never-used slot.
        let new = Self::new(min_slots.max(2 * (moved.len() + 1)));
        for (hash, entry) in moved {
            // Into the first never-used slot on the path: where the walk ends.
            let placed = new.walk(hash, Ordering::Relaxed, |_, bucket, tags| {
                let empty = bytes_equal(tags, TAG_EMPTY);
                (empty != 0).then(|| {
                    let lane = lowest_lane(empty);
                    bucket.slots[lane].store(entry, Ordering::Relaxed);
                    let word = with_byte(tags, lane, tag(hash));
                    bucket.tags.store(word, Ordering::Relaxed);
                })
            });
            debug_assert!(placed.is_some(), "a half-full table with no slot left");
        }
        new
    }
}

#[cfg(all(test, not(shardkit_loom)))]
mod tests {
    use std::collections::HashMap;

    use crossbeam_epoch::Owned;

    use super::*;

    /// A hash whose home is bucket `bucket` of `buckets`, with `key` in its tag bits.
    fn hash_at(bucket: u64, buckets: u64, key: u64) -> u64 {
        ((bucket << 32).div_ceil(buckets)) | (key << 40) | (1 << 50)
    }

    /// Inserts `key` (its own value) with `hash` as the shard's writer does, into the slot
    /// `probe` gives: that slot, and the entry, which the caller drops.
    fn put<'g>(
        table: &Table<u64, u64>,
        hash: u64,
        key: u64,
        guard: &'g Pin,
    ) -> (usize, Shared<'g, Entry<u64, u64>>) {
        let entry = Owned::new(Entry::new(hash, key, key, 1)).into_shared(guard.guard());
        let Probe::Vacant(i) = table.probe(hash, &key, guard) else {
            panic!("key {key} present before its insert");
        };
        // SAFETY: just allocated, and freed only at the test's end, when the table is not
        // read again.
        unsafe { table.store(i, entry) };
        (i, entry)
    }

    /// [`Table::position`] of an entry the test allocated.
    fn position_of(
        table: &Table<u64, u64>,
        entry: Shared<'_, Entry<u64, u64>>,
        guard: &Pin,
    ) -> Option<usize> {
        // SAFETY: the tests' entries are freed only at their end, after their last search.
        unsafe { table.position(entry, guard) }
    }

    /// Random inserts and removals of keys crowded onto two home buckets of a small table, as
    /// the shard's writer makes them: every present key is found, every removed one is not,
    /// and the writer's count of tombstones matches the table's.
    #[test]
    fn removals_keep_every_probe_path_whole() {
        let guard = &crate::sync::pin();
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        for _round in 0..200 {
            let table: Table<u64, u64> = Table::new(16);
            assert_eq!(table.slots(), 21);
            let mut present: HashMap<u64, Shared<'_, Entry<u64, u64>>> = HashMap::new();
            let mut tombstones = 0usize;
            // Homes in the last bucket and the first: clusters that wrap around the end. Keys
            // 0 to 2 share a tag, so matching tags must be told apart by the entries.
            let hash_of = |key: u64| hash_at(if key.is_multiple_of(4) { 0 } else { 2 }, 3, key);
            for _ in 0..300 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let key = rng % 24;
                let hash = hash_of(key);
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
                        // SAFETY: just allocated, and freed only once out of the table or at
                        // the end.
                        unsafe { table.store(i, entry) };
                        present.insert(key, entry);
                    }
                    Probe::Vacant(_) => {}
                }
                for k in 0..24u64 {
                    let hash = hash_of(k);
                    let found = table.find(hash, &k, guard).map(|e| e.key);
                    let want = present.contains_key(&k).then_some(k);
                    assert_eq!(found, want, "key {k}");
                }
                let counted = (0..3 * STRIDE)
                    .filter(|&i| i % STRIDE < LANES && table.is_tombstone(i))
                    .count();
                assert_eq!(tombstones, counted);
            }
            for (_, entry) in present {
                // SAFETY: `table` is not read again, dropping it does not touch entries, and
                // nothing else holds them.
                drop(unsafe { entry.into_owned() });
            }
        }
    }

    /// The tag word's byte comparison flags every slot's byte that equals the one sought,
    /// and its lowest flag is always a true one (what ends probes and picks free slots),
    /// whatever the neighbouring bytes (borrows between them show near 0x00, 0x01 and 0x80).
    #[test]
    fn tag_bytes_compare_flags_every_equal_byte_and_the_first_exactly() {
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let bytes = [0u8, 1, 2, 0x7f, 0x80, 0x81, 0xfe, 0xff];
        for _ in 0..20_000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let word = (0..8).fold(0u64, |w, i| {
                w | u64::from(bytes[(rng >> (3 * i)) as usize % 8]) << (8 * i)
            });
            for &b in &bytes {
                let equal = (0..LANES as u64)
                    .filter(|i| (word >> (8 * i)) as u8 == b)
                    .fold(0u64, |m, i| m | 0x80 << (8 * i));
                let flagged = bytes_equal(word, b);
                assert_eq!(flagged & equal, equal, "word {word:#018x}, byte {b:#04x}");
                assert_eq!(
                    flagged & LANE_BITS,
                    flagged,
                    "word {word:#018x}: the eighth byte"
                );
                assert_eq!(
                    flagged & flagged.wrapping_neg(),
                    equal & equal.wrapping_neg(),
                    "word {word:#018x}, byte {b:#04x}: the lowest flag"
                );
            }
        }
        assert_eq!(lowest_lane(bytes_equal(0x0000_0505_0000_0000, 5)), 4);
        assert_eq!(
            with_byte(0x1122_3344_5566_7788, 2, 0xab),
            0x1122_3344_55ab_7788
        );
    }

    /// A table's size in slots: whole buckets of seven, at least one.
    #[test]
    fn tables_are_whole_buckets() {
        for (asked, slots) in [(0, 7), (1, 7), (7, 7), (8, 14), (16, 21), (1000, 1001)] {
            assert_eq!(
                Table::<u64, u64>::new(asked).slots(),
                slots,
                "{asked} asked"
            );
        }
        // The hash's low 32 bits scale to the bucket: the lowest to the first bucket, the
        // highest to the last, whatever the count.
        for buckets in [1usize, 2, 3, 7, 1000] {
            let table: Table<u64, u64> = Table::new(buckets * LANES);
            assert_eq!(table.home(0xffff_ffff_0000_0000), 0);
            assert_eq!(table.home(0x0000_0000_ffff_ffff), buckets - 1);
        }
    }

    /// Entries in a table where a cluster wraps from the last bucket to the first, found by
    /// `find` and `position` (writer's search by pointer) before and after a rebuild, which
    /// leaves no tombstones and keeps every entry findable in a table of another size.
    #[test]
    fn entries_are_found_by_key_and_by_pointer_across_a_rebuild() {
        let guard = &crate::sync::pin();
        let table: Table<u64, u64> = Table::new(21);
        // Ten keys homed in the last bucket (seven fit there, three wrap to the first) and
        // two homed in the first: (key, hash, entry).
        let keys: Vec<_> = (0..12u64)
            .map(|k| {
                let hash = hash_at(if k < 10 { 2 } else { 0 }, 3, k);
                let (i, entry) = put(&table, hash, k, guard);
                assert_eq!(position_of(&table, entry, guard), Some(i), "key {k}");
                (k, hash, entry)
            })
            .collect();
        let (removed, kept) = keys.split_at(2);
        // Remove the first two keys of the last bucket: tombstones the wrapped keys sit past.
        for &(k, hash, entry) in removed {
            let i = position_of(&table, entry, guard).expect("present");
            table.clear_slot(i);
            assert_eq!(position_of(&table, entry, guard), None);
            assert!(table.find(hash, &k, guard).is_none());
        }
        for &(k, hash, _) in kept {
            let found = table.find(hash, &k, guard).map(|e| e.value);
            assert_eq!(found, Some(k), "key {k} behind the tombstones");
        }
        // A new key homed in the last bucket takes the first tombstone on its path.
        let Probe::Vacant(i) = table.probe(hash_at(2, 3, 40), &40, guard) else {
            panic!("absent key found");
        };
        assert!(table.is_tombstone(i));
        // Rebuilt into a table of another size (asked too small: it grows to fit).
        for slots in [4, 30] {
            let rebuilt = Table::rebuilt_from(&table, slots, guard);
            assert!(rebuilt.slots() >= 20);
            let tombstones = (0..rebuilt.buckets.len() * STRIDE)
                .filter(|&i| i % STRIDE < LANES && rebuilt.is_tombstone(i))
                .count();
            assert_eq!(tombstones, 0);
            assert_eq!(rebuilt.entries(guard).count(), kept.len());
            for &(k, hash, entry) in kept {
                let found = rebuilt.find(hash, &k, guard).map(|e| e.value);
                assert_eq!(found, Some(k), "key {k} after a rebuild to {slots}");
                assert!(position_of(&rebuilt, entry, guard).is_some());
            }
        }
        for (_, _, entry) in keys {
            // SAFETY: the tables only borrowed them, and they are dropped once each here.
            drop(unsafe { entry.into_owned() });
        }
    }

    /// In a table with no never-used slot left (which the writer never lets happen), a walk
    /// still ends: an absent key is not found, and an insert gets the tombstone.
    #[test]
    fn a_table_without_never_used_slots_still_ends_every_walk() {
        let guard = &crate::sync::pin();
        let table: Table<u64, u64> = Table::new(7);
        let entries: Vec<_> = (0..7u64)
            .map(|k| put(&table, hash_at(0, 1, k), k, guard).1)
            .collect();
        assert!(table.find(hash_at(0, 1, 99), &99, guard).is_none());
        let i = position_of(&table, entries[3], guard).expect("present");
        table.clear_slot(i);
        assert!(table.find(hash_at(0, 1, 3), &3, guard).is_none());
        match table.probe(hash_at(0, 1, 99), &99, guard) {
            Probe::Vacant(v) => assert_eq!(v, i, "the tombstone is the one free slot"),
            Probe::Found(..) => panic!("absent key found"),
        }
        for entry in entries {
            // SAFETY: the table only borrowed them, and they are dropped once each here.
            drop(unsafe { entry.into_owned() });
        }
    }
}
