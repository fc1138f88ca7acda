//! A shard: a lock-free readable table, and the writer's lock over the policy.
//!
//! Readers find an entry in the table while pinned ([`crate::epoch`]), check that it was not
//! removed, bump its hit counter and a per-thread hit count, and clone the value: no lock, no
//! allocation, no shared write except to the entry itself (and none once its counter saturates).
//! Writers take the shard's mutex, update the table with atomic stores, and run the policy, which
//! may evict; an evicted or replaced entry is unlinked from the table at once and freed once no
//! reader can still hold it.

use std::borrow::Borrow;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_epoch::{Atomic, Owned, Shared};
use crossbeam_utils::CachePadded;

use crate::RemovalCause;
use crate::entry::{Entry, EntryRef};
use crate::policy::{Policy, Release};
use crate::reclaim::Reclaimer;
use crate::sync::{AtomicU64, AtomicUsize, Mutex, Pin, lock};
use crate::table::{Probe, Table};
use crate::window::WindowShare;

mod compute;

/// Counter stripes per shard: readers on different threads count on different cache lines.
/// Threads take stripes in turn, in the order they first use a cache, so up to this many
/// threads never share one.
const STRIPES: usize = 4;

/// Entries each write looks at per policy queue for expiry: enough to reclaim expired entries
/// steadily under writes, little enough to keep a write's cost flat.
const SWEEP_BUDGET: usize = 4;

/// Writes between two hand-overs of the read counts to the policy.
const FEED_EVERY: u32 = 32;

/// Slots of the smallest table (rounded up to whole buckets of seven: 21).
const MIN_SLOTS: usize = 16;

/// An entry that left the cache, for the eviction listener: still allocated (its destruction
/// is deferred) until the guard it was released under is dropped.
pub(crate) type Notice<K, V> = (EntryRef<K, V>, RemovalCause);

/// The entries that left the cache during a call, collected only when a listener will hear of
/// them (a cache without one allocates nothing for them).
#[derive(Debug)]
pub(crate) struct Notices<K, V> {
    list: Vec<Notice<K, V>>,
    keep: bool,
}

impl<K, V> Notices<K, V> {
    pub(crate) fn new(keep: bool) -> Self {
        Self {
            list: Vec::new(),
            keep,
        }
    }

    pub(crate) fn push(&mut self, notice: Notice<K, V>) {
        if self.keep {
            self.list.push(notice);
        }
    }

    pub(crate) fn into_vec(self) -> Vec<Notice<K, V>> {
        self.list
    }
}

/// Per-thread counters of a shard's reads.
#[derive(Debug)]
struct Stripe {
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Default for Stripe {
    fn default() -> Self {
        Self {
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }
}

/// A shard's policy, over handles to its entries.
type ShardPolicy<K, V> = Policy<EntryRef<K, V>>;

/// What the writer's lock guards.
#[derive(Debug)]
struct Writer<K, V> {
    policy: ShardPolicy<K, V>,
    /// Entries in the table.
    live: usize,
    /// Tombstones in the table.
    tombstones: usize,
    /// Hits already handed to the policy.
    seen_hits: u64,
    /// Writes since the read counts were last handed to the policy.
    unfed_writes: u32,
    evictions: u64,
    reclaim: Reclaimer<K, V>,
}

/// One shard of the cache.
#[derive(Debug)]
pub(crate) struct Shard<K, V> {
    /// Padded: readers load it on every get, and the fields writers update on every insert
    /// must not share its cache line.
    table: CachePadded<Atomic<Table<K, V>>>,
    writer: Mutex<Writer<K, V>>,
    len: AtomicUsize,
    weight: AtomicU64,
    stripes: [CachePadded<Stripe>; STRIPES],
}

/// Counts one on a stripe with a load and a store, not an atomic add: a stripe is one thread's
/// unless more threads than stripes read the shard, and a count lost to that race costs the
/// sketch's aging and the statistics nothing that matters, while a locked add costs every read.
#[inline]
fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// What the listener hears of `h`, taken out by a write for `cause`: [`RemovalCause::Expired`]
/// if it had expired at `now` (to readers it was gone already), else `cause`.
fn cause_for<K, V>(h: EntryRef<K, V>, now: Option<u64>, cause: RemovalCause) -> RemovalCause {
    if now.is_some_and(|now| h.get().is_expired(now)) {
        RemovalCause::Expired
    } else {
        cause
    }
}

/// The [`EntryRef`] of `p`, an entry of the shard.
///
/// # Safety
///
/// `p` is an entry a shard's table holds (loaded from it under the pin the caller holds) or
/// one just allocated by the shard's reclaimer: it is emptied or freed only once retired
/// through the epochs, as [`EntryRef::new`] requires; and once it is retired, the
/// `EntryRef` is read only under the pin it was got under (its notice is sent before that
/// pin drops).
unsafe fn entry_ref<K, V>(p: Shared<'_, Entry<K, V>>) -> EntryRef<K, V> {
    let p = NonNull::new(p.as_raw().cast_mut()).expect("entries in the table are not null");
    // SAFETY: the contract above is `new`'s, for an entry of the table or a fresh one.
    unsafe { EntryRef::new(p) }
}

fn shared<'g, K, V>(h: EntryRef<K, V>) -> Shared<'g, Entry<K, V>> {
    Shared::from(h.as_ptr().cast_const())
}

impl<K, V> Shard<K, V>
where
    K: Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A shard holding up to `capacity` units of weight, about `entries` entries (a guess when
    /// the cache is bounded by weight, `weighted`).
    pub(crate) fn new(
        capacity: u64,
        entries: usize,
        weighted: bool,
        share: Arc<WindowShare>,
    ) -> Self {
        Self {
            table: CachePadded::new(Atomic::new(Table::new(MIN_SLOTS))),
            writer: Mutex::new(Writer {
                policy: Policy::new(capacity, entries, share),
                live: 0,
                tombstones: 0,
                seen_hits: 0,
                unfed_writes: 0,
                evictions: 0,
                reclaim: Reclaimer::new(entries, weighted.then_some(capacity)),
            }),
            len: AtomicUsize::new(0),
            weight: AtomicU64::new(0),
            stripes: Default::default(),
        }
    }

    fn table<'g>(&'g self, guard: &'g Pin) -> &'g Table<K, V> {
        let table = self.table.load(Ordering::Acquire, guard.guard());
        // SAFETY: the table pointer is never null; a replaced table is freed only through the
        // epochs, so it lives as long as the pin `guard`, and the current one only by the
        // shard's drop, which the borrow of `self` excludes for as long.
        unsafe { table.deref() }
    }

    /// The live entry for `key`, counting the read as a hit or a miss. `now` (nanoseconds
    /// after the cache's time origin) is given when entries can expire.
    #[inline(always)]
    pub(crate) fn get<'g, Q>(
        &'g self,
        hash: u64,
        key: &Q,
        now: Option<u64>,
        pin: &'g Pin,
    ) -> Option<&'g Entry<K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let stripe = &self.stripes[pin.thread() % STRIPES];
        let found = self.peek(hash, key, now, pin);
        match found {
            Some(e) => {
                e.hit();
                bump(&stripe.hits);
            }
            None => bump(&stripe.misses),
        }
        found
    }

    /// The live entry for `key`, without counting anything.
    #[inline]
    pub(crate) fn peek<'g, Q>(
        &'g self,
        hash: u64,
        key: &Q,
        now: Option<u64>,
        guard: &'g Pin,
    ) -> Option<&'g Entry<K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.table(guard)
            .find(hash, key, guard)
            .filter(|e| !e.is_removed() && !now.is_some_and(|now| e.is_expired(now)))
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub(crate) fn weight(&self) -> u64 {
        self.weight.load(Ordering::Relaxed)
    }

    /// `(hits, misses)` counted by readers.
    pub(crate) fn reads(&self) -> (u64, u64) {
        self.stripes.iter().fold((0, 0), |(h, m), s| {
            (
                h + s.hits.load(Ordering::Relaxed),
                m + s.misses.load(Ordering::Relaxed),
            )
        })
    }

    /// The bytes the shard holds (see [`Cache::memory_used`](crate::Cache::memory_used)).
    pub(crate) fn memory_used(&self, guard: &Pin) -> usize {
        let w = lock(&self.writer);
        let (policy, entries) = w.policy.memory();
        std::mem::size_of::<Self>()
            + self.table(guard).memory()
            + policy
            + entries * std::mem::size_of::<Entry<K, V>>()
            + w.reclaim.memory()
    }

    pub(crate) fn evictions(&self) -> u64 {
        lock(&self.writer).evictions
    }

    /// Inserts or replaces `entry`'s key; entries that leave the cache go to `out`. An entry
    /// heavier than the shard's whole capacity, or expired at `now` already, is not inserted
    /// (it goes to `out` itself, as evicted for size or as expired), and the key's old entry
    /// leaves all the same.
    ///
    /// `guard` is pinned, before the lock is taken: what leaves the cache is deferred under it,
    /// and the notices in `out` stay valid as long as it is.
    pub(crate) fn insert(
        &self,
        entry: Entry<K, V>,
        now: Option<u64>,
        out: &mut Notices<K, V>,
        guard: &Pin,
    ) {
        let mut w = lock(&self.writer);
        self.insert_locked(&mut w, entry, now, out, guard);
    }

    /// [`insert`](Self::insert), with the writer's lock held (`w`).
    #[inline(always)]
    fn insert_locked(
        &self,
        w: &mut Writer<K, V>,
        entry: Entry<K, V>,
        now: Option<u64>,
        out: &mut Notices<K, V>,
        guard: &Pin,
    ) {
        w.policy.prefetch_insert(entry.hash);
        let new = w.reclaim.alloc(entry).into_shared(guard.guard());
        // SAFETY: just allocated by the reclaimer; retired only through it.
        let new_ref = unsafe { entry_ref(new) };
        let hash = new_ref.get().hash;
        if u64::from(new_ref.get().weight) > w.policy.capacity() {
            self.turn_away_at_once(w, new_ref, RemovalCause::Size, now, out, guard);
            return;
        }
        // Reading the stripes touches cache lines other threads' reads write to: do it every
        // few writes, not every write (the sketch's aging needs no finer grain).
        w.unfed_writes += 1;
        if w.unfed_writes >= FEED_EVERY {
            w.unfed_writes = 0;
            self.feed_reads(w);
        }
        let mut table = self.table(guard);
        // Before the new entry takes its room: expired entries swept after it would have
        // counted toward the window's and main's bounds, and pushed live entries out.
        if let Some(now) = now {
            Self::sweep(w, table, now, SWEEP_BUDGET, out, guard);
            // Expired on arrival (an `Expiry` answering zero, "do not cache this"): it would
            // only take room in the window from a live entry, and be swept later.
            if new_ref.get().is_expired(now) {
                self.turn_away_at_once(w, new_ref, RemovalCause::Expired, Some(now), out, guard);
                return;
            }
        }
        if (w.live + w.tombstones + 1) * 4 > table.slots() * 3 {
            table = self.rebuild(w, guard);
        }
        let replaced = match table.probe(hash, &new_ref.get().key, guard) {
            Probe::Found(i, old) => {
                // SAFETY: just built, not null, retired only once out of the table.
                unsafe { table.store(i, new) };
                // SAFETY: loaded from the table under `guard`; retired only through the
                // reclaimer, once the policy releases it.
                Some(unsafe { entry_ref(old) })
            }
            Probe::Vacant(i) => {
                if table.is_tombstone(i) {
                    w.tombstones -= 1;
                }
                // SAFETY: as above.
                unsafe { table.store(i, new) };
                w.live += 1;
                None
            }
        };
        {
            let (policy, mut release) = Self::policy_and_release(w, table, now, out, guard);
            match replaced {
                Some(old) => policy.replace(old, new_ref, &mut release),
                None => policy.insert(new_ref, &mut release),
            }
        }
        if let Some(old) = replaced {
            out.push((old, cause_for(old, now, RemovalCause::Replaced)));
        }
        self.publish_sizes(w);
    }

    /// Turns `new` away (to `out`, with `cause`: evicted for size, too heavy for the shard, or
    /// expired on arrival); the value it was to replace leaves too, or a reader would get back
    /// the value the caller just overwrote. `new` was never shared.
    #[cold]
    fn turn_away_at_once(
        &self,
        w: &mut Writer<K, V>,
        new: EntryRef<K, V>,
        cause: RemovalCause,
        now: Option<u64>,
        out: &mut Notices<K, V>,
        guard: &Pin,
    ) {
        let table = self.table(guard);
        if let Probe::Found(i, old) = table.probe(new.get().hash, &new.get().key, guard) {
            // SAFETY: loaded from the table under `guard`, as in `insert_locked`.
            let old = unsafe { entry_ref(old) };
            Self::unlink(table, i, old, w);
            self.publish_sizes(w);
            out.push((old, cause_for(old, now, RemovalCause::Replaced)));
        }
        new.get().mark_removed();
        if cause == RemovalCause::Size {
            w.evictions += 1;
        }
        out.push((new, cause));
        // SAFETY: never shared: no reader can hold it; `guard` is pinned (the caller's).
        unsafe { w.reclaim.retire(new, guard) };
    }

    /// Removes every entry expired at `now` (if given) at once, rather than a few per write
    /// (they go to `out`), drops every handle the policy still queues for entries gone from
    /// the shard (removed, replaced or expired), and hands all they held over for freeing.
    pub(crate) fn run_pending_tasks(&self, now: Option<u64>, out: &mut Notices<K, V>, guard: &Pin) {
        let mut w = lock(&self.writer);
        let table = self.table(guard);
        if let Some(now) = now {
            Self::sweep(&mut w, table, now, usize::MAX, out, guard);
        }
        {
            let (policy, mut release) = Self::policy_and_release(&mut w, table, now, out, guard);
            policy.compact_all(&mut release);
        }
        w.reclaim.hand_over(guard);
        self.publish_sizes(&w);
    }

    /// Unlinks up to `budget` expired entries per policy queue (see [`Policy::sweep`]).
    fn sweep(
        w: &mut Writer<K, V>,
        table: &Table<K, V>,
        now: u64,
        budget: usize,
        out: &mut Notices<K, V>,
        guard: &Pin,
    ) {
        let mut expired = Vec::new();
        w.policy
            .sweep(budget, |h| h.get().is_expired(now), &mut expired);
        for h in expired {
            // SAFETY: the policy gave `h` up just now, under the writer's lock and `guard`.
            if let Some(i) = unsafe { table.position(shared(h), guard) } {
                table.clear_slot(i);
                w.live -= 1;
                w.tombstones += 1;
            }
            h.get().mark_removed();
            out.push((h, RemovalCause::Expired));
        }
    }

    /// Removes `key`'s entry, returning it.
    pub(crate) fn remove<Q>(&self, hash: u64, key: &Q, guard: &Pin) -> Option<EntryRef<K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let mut w = lock(&self.writer);
        let table = self.table(guard);
        let Probe::Found(i, e) = table.probe(hash, key, guard) else {
            return None;
        };
        // SAFETY: loaded from the table under `guard`, as in `insert_locked`.
        let h = unsafe { entry_ref(e) };
        Self::unlink(table, i, h, &mut w);
        self.publish_sizes(&w);
        Some(h)
    }

    /// Removes every entry for which `keep` is false; they go to `out`. Entries expired at
    /// `now` (if given) are not shown to `keep`: they are gone already, and swept first (to
    /// `out`, as expired).
    ///
    /// `keep` runs without the shard's lock, so it may use the cache (a lock held across the
    /// user's code would deadlock a `keep` that writes to this shard). An entry replaced or
    /// removed while `keep` looked at it is left alone: `keep` judged a value that is gone.
    pub(crate) fn retain(
        &self,
        keep: &mut impl FnMut(&K, &V) -> bool,
        now: Option<u64>,
        out: &mut Notices<K, V>,
        guard: &Pin,
    ) {
        // The entries stay readable while `guard` is pinned, in the table or not.
        let held: Vec<EntryRef<K, V>> = {
            let mut w = lock(&self.writer);
            if let Some(now) = now {
                Self::sweep(&mut w, self.table(guard), now, usize::MAX, out, guard);
                self.publish_sizes(&w);
            }
            w.policy.handles().collect()
        };
        let doomed: Vec<EntryRef<K, V>> = held
            .into_iter()
            .filter(|h| !keep(&h.get().key, &h.get().value))
            .collect();
        if doomed.is_empty() {
            return;
        }
        let mut w = lock(&self.writer);
        let table = self.table(guard);
        for h in doomed {
            // Still the entry `keep` judged, not one removed or replaced meanwhile.
            // SAFETY: `held` was taken from the policy under `guard`, pinned since.
            if unsafe { Self::unlink_if_linked(table, h, &mut w, guard) } {
                out.push((h, cause_for(h, now, RemovalCause::Removed)));
            }
        }
        self.publish_sizes(&w);
    }

    /// Bounds the shard to `capacity()` units of weight (read once its lock is held, so that of
    /// two resizes at once, the capacity stored last is the one every shard ends with),
    /// evicting down to it at once; what leaves goes to `out` (expired at `now`, if given, or
    /// evicted for size). A shrink also hands what it evicted over to be freed, and moves the
    /// entries to a smaller table if the old one is under a quarter full.
    pub(crate) fn set_capacity(
        &self,
        capacity: impl FnOnce() -> u64,
        now: Option<u64>,
        out: &mut Notices<K, V>,
        guard: &Pin,
    ) {
        let mut w = lock(&self.writer);
        let capacity = capacity();
        let table = self.table(guard);
        // Expired entries leave first: a shrink must not evict live entries for room that
        // expired ones hold.
        if let Some(now) = now
            && capacity < w.policy.capacity()
        {
            Self::sweep(&mut w, table, now, usize::MAX, out, guard);
        }
        {
            let (policy, mut release) = Self::policy_and_release(&mut w, table, now, out, guard);
            policy.set_capacity(capacity, &mut release);
        }
        w.reclaim.resize(capacity, guard);
        if table.slots() > 4 * (w.live + 1) + MIN_SLOTS {
            self.rebuild(&mut w, guard);
        }
        self.publish_sizes(&w);
    }

    /// Removes every entry; they go to `out` (as expired, those expired at `now`, if given).
    pub(crate) fn clear(&self, now: Option<u64>, out: &mut Notices<K, V>, guard: &Pin) {
        let mut w = lock(&self.writer);
        let table = self.table(guard);
        let Writer {
            policy,
            live,
            tombstones,
            reclaim,
            ..
        } = &mut *w;
        let mut evictions = 0;
        let mut evicted = Notices::new(out.keep);
        policy.drain(&mut |h, why| {
            Self::release(
                table,
                h,
                why,
                None,
                live,
                tombstones,
                &mut evictions,
                reclaim,
                &mut evicted,
                guard,
            );
        });
        for (h, _) in evicted.into_vec() {
            out.push((h, cause_for(h, now, RemovalCause::Removed)));
        }
        self.rebuild(&mut w, guard);
        self.publish_sizes(&w);
        // What a clear released need not wait for more to fill its batch.
        w.reclaim.hand_over(guard);
    }

    /// Clones of the live entries (not expired at `now`, if given).
    pub(crate) fn snapshot(&self, now: Option<u64>) -> Vec<(K, V)>
    where
        K: Clone,
    {
        let guard = &crate::sync::pin();
        self.table(guard)
            .entries(guard)
            .filter_map(|p| {
                // SAFETY: loaded under `guard` from the table (see `Table::find`).
                let e = unsafe { p.deref() };
                let live = !e.is_removed() && !now.is_some_and(|now| e.is_expired(now));
                live.then(|| (e.key.clone(), e.value.clone()))
            })
            .collect()
    }

    /// Hands the hits counted since the last call to the policy (for its sketch's aging).
    fn feed_reads(&self, w: &mut Writer<K, V>) {
        // A stripe shared by racing readers can lose counts, and so read lower than before.
        let (hits, _) = self.reads();
        w.policy.record(hits.saturating_sub(w.seen_hits));
        w.seen_hits = w.seen_hits.max(hits);
    }

    /// Replaces the table by one sized for the live entries, without tombstones.
    fn rebuild<'g>(&'g self, w: &mut Writer<K, V>, guard: &'g Pin) -> &'g Table<K, V> {
        let old = self.table.load(Ordering::Acquire, guard.guard());
        // SAFETY: `old` is the current table, live under `guard`.
        let new = Table::rebuilt_from(unsafe { old.deref() }, MIN_SLOTS, guard);
        w.tombstones = 0;
        self.table.store(Owned::new(new), Ordering::Release);
        // SAFETY: `old` is no longer reachable from the shard and is retired once; readers
        // that loaded it are pinned, so it is freed only after they unpin. Dropping a table
        // frees its bucket array, not the entries. A table counts for a whole advance's worth
        // of entries: its memory is worth the `membarrier`.
        unsafe { guard.defer_drop(crate::epoch::ADVANCE_AFTER, old.as_raw().cast_mut()) };
        self.table(guard)
    }

    /// Unlinks `h` if the table still holds it, and says whether it did: an entry seen
    /// earlier may have been removed or replaced since. While `guard` is pinned, a removed
    /// entry's memory is not reused, so the same address is the same entry.
    ///
    /// # Safety
    ///
    /// `h` was got while `guard` was pinned (from this shard's table or policy), so its
    /// memory has not been reused for another entry since.
    unsafe fn unlink_if_linked(
        table: &Table<K, V>,
        h: EntryRef<K, V>,
        w: &mut Writer<K, V>,
        guard: &Pin,
    ) -> bool {
        // SAFETY: `h` was got while pinned by `guard` (the contract), so it is not freed, nor
        // its memory reused, before `guard` drops.
        let Some(i) = (unsafe { table.position(shared(h), guard) }) else {
            return false;
        };
        Self::unlink(table, i, h, w);
        true
    }

    /// Takes `h`, found in slot `i`, out of the table and the policy (which releases it later).
    fn unlink(table: &Table<K, V>, i: usize, h: EntryRef<K, V>, w: &mut Writer<K, V>) {
        table.clear_slot(i);
        w.live -= 1;
        w.tombstones += 1;
        h.get().mark_removed();
        w.policy.remove(h);
    }

    fn publish_sizes(&self, w: &Writer<K, V>) {
        self.len.store(w.live, Ordering::Relaxed);
        self.weight.store(w.policy.weight(), Ordering::Relaxed);
    }

    /// The writer's policy, and the release it evicts and reclaims through (see
    /// [`release`](Self::release)): entries evicted are cleared from `table` and go to `out`
    /// (expired at `now`, if given, or evicted for size).
    // The pair is two borrows split from one writer, and a closure's type has no name to
    // factor out.
    #[allow(clippy::type_complexity)]
    #[inline(always)]
    fn policy_and_release<'a>(
        w: &'a mut Writer<K, V>,
        table: &'a Table<K, V>,
        now: Option<u64>,
        out: &'a mut Notices<K, V>,
        guard: &'a Pin,
    ) -> (
        &'a mut ShardPolicy<K, V>,
        impl FnMut(EntryRef<K, V>, Release) + 'a,
    ) {
        let Writer {
            policy,
            live,
            tombstones,
            evictions,
            reclaim,
            ..
        } = w;
        let release = move |h: EntryRef<K, V>, why: Release| {
            Self::release(
                table, h, why, now, live, tombstones, evictions, reclaim, out, guard,
            );
        };
        (policy, release)
    }

    /// What the policy's releases mean for the table: an evicted entry leaves it (and goes to
    /// `out`), and every released entry is freed once no reader can hold it.
    #[allow(clippy::too_many_arguments)]
    // Inlined into the policy's eviction loop: called out of line, it cost each evicting
    // insert about 60 to 70 instructions (cachegrind, `cache-profile get-or-insert --zipf 0.7`).
    #[inline]
    fn release(
        table: &Table<K, V>,
        h: EntryRef<K, V>,
        why: Release,
        now: Option<u64>,
        live: &mut usize,
        tombstones: &mut usize,
        evictions: &mut u64,
        reclaim: &mut Reclaimer<K, V>,
        out: &mut Notices<K, V>,
        guard: &Pin,
    ) {
        if why == Release::Evicted {
            // SAFETY: the policy released `h` just now, while `guard` was pinned.
            if let Some(i) = unsafe { table.position(shared(h), guard) } {
                table.clear_slot(i);
                *live -= 1;
                *tombstones += 1;
            }
            h.get().mark_removed();
            let cause = cause_for(h, now, RemovalCause::Size);
            if cause == RemovalCause::Size {
                *evictions += 1;
            }
            out.push((h, cause));
        }
        // SAFETY: the entry has left the table and the policy for good, and the policy
        // releases each entry once; readers that loaded it, and the caller that will show it to
        // the listener, are pinned, so it is freed only after they unpin.
        unsafe { reclaim.retire(h, guard) };
    }
}

impl<K, V> Drop for Shard<K, V> {
    fn drop(&mut self) {
        // Nobody else can hold the shard, so nothing is pinned on its behalf: free at once.
        // SAFETY: `&mut self` means no reader or writer is using the shard.
        let guard = unsafe { crossbeam_epoch::unprotected() };
        // Reached without locking: the values dropped below are the user's, and their `drop`
        // runs under no lock of the cache's.
        let w = crate::sync::get_mut(&mut self.writer);
        w.policy.drain(&mut |h, _| {
            // SAFETY: every entry is released exactly once by the drain, and none is shared.
            drop(unsafe { shared(h).into_owned() });
        });
        let table = self.table.load(Ordering::Relaxed, guard);
        // SAFETY: the current table, reachable from nowhere else now.
        drop(unsafe { table.into_owned() });
    }
}

#[cfg(all(test, shardkit_loom))]
mod loom_models;
