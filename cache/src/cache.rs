//! The public cache type.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::entry::Entry;
use crate::expiry::Timing;
use crate::loading::{Flights, LoadStats};
use crate::shard::{Notice, Notices, Shard};
use crate::window::WindowShare;

mod builder;

#[cfg(feature = "sim")]
pub(crate) use builder::default_shards;
pub use builder::{BuildError, CacheBuilder};

/// The default hasher: `foldhash`'s fast, randomly seeded hasher (as quick_cache uses); hash
/// flooding is further blunted by the policy's random admission of warm keys.
pub type DefaultHashBuilder = foldhash::fast::RandomState;

/// Why an entry left the cache, as the eviction listener is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemovalCause {
    /// Evicted to stay within the capacity (or too heavy to be admitted at all).
    Size,
    /// Its time to live or to idle, or its own lifetime, ran out. Also what is heard of an
    /// entry that had expired when a write took it out (an insert over it, a clear): to
    /// readers it was gone already.
    Expired,
    /// Its key got a new value (or was given one too heavy for the cache, which is turned
    /// away: the old value leaves all the same).
    Replaced,
    /// Removed by [`Cache::remove`], [`Cache::retain`], [`Cache::clear`] or
    /// [`Cache::compute`] while it was live.
    Removed,
}

/// What [`Cache::compute`] does with a key, decided from its cached value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compute<V> {
    /// Leave the key as it is, cached or not: nothing is written and the listener hears
    /// nothing (unlike putting the same value back, which makes a new entry).
    Keep,
    /// Cache this value for the key, as [`Cache::insert`] does.
    Put(V),
    /// Remove the key, if it is cached.
    Remove,
}

type Weigher<K, V> = Arc<dyn Fn(&K, &V) -> u32 + Send + Sync>;
type Listener<K, V> = Arc<dyn Fn(&K, &V, RemovalCause) + Send + Sync>;

/// Counters of a cache's activity since it was built, from [`Cache::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Reads that found their key.
    pub hits: u64,
    /// Reads that did not.
    pub misses: u64,
    /// Entries evicted for size, including values turned away at once for being heavier than
    /// a shard's share of the capacity (each one the listener hears of as
    /// [`RemovalCause::Size`]).
    pub evictions: u64,
    /// Loads (`get_or_insert_with` and friends) that returned a value; counted only with
    /// [`CacheBuilder::record_stats`].
    pub load_successes: u64,
    /// Loads that returned an error, panicked, or (asynchronous ones) were dropped before they
    /// finished; counted only with [`CacheBuilder::record_stats`].
    pub load_failures: u64,
    /// Time spent in loads, successful or not; counted only with
    /// [`CacheBuilder::record_stats`].
    pub total_load_time: Duration,
}

impl CacheStats {
    /// Hits over reads, 0 before any read.
    pub fn hit_ratio(&self) -> f64 {
        let reads = self.hits + self.misses;
        if reads == 0 {
            0.0
        } else {
            self.hits as f64 / reads as f64
        }
    }
}

/// A concurrent cache bounded by entry count or total weight; see the [crate docs](crate).
///
/// Cloning values is the price of lock-free reads: a hit returns a clone of the value, so for
/// large values store `Arc<V>`.
pub struct Cache<K, V, S = DefaultHashBuilder> {
    shards: Box<[Shard<K, V>]>,
    /// Loads in flight, per shard.
    pub(crate) flights: Box<[Flights<K>]>,
    pub(crate) hasher: S,
    weigher: Option<Weigher<K, V>>,
    listener: Option<Listener<K, V>>,
    timing: Option<Timing<K, V>>,
    /// Load counters, when the builder asked for them.
    pub(crate) loads: Option<LoadStats>,
    /// The capacity: what the builder set, or the last [`set_capacity`](Self::set_capacity).
    /// Std's atomic even under loom: a setting read under each shard's lock, which orders it.
    capacity: AtomicU64,
    /// The window share the shards tune together (its floor moves with a resize).
    share: Arc<WindowShare>,
}

impl<K, V, S> Drop for Cache<K, V, S> {
    /// Frees what the cache's writes deferred and no reader can still hold (see
    /// [`run_pending_tasks`](Self::run_pending_tasks)). Not while unwinding: freeing runs
    /// users' destructors, and a panic there would abort; later writes of any cache free it.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            crate::sync::flush();
        }
    }
}

impl<K, V, S> std::fmt::Debug for Cache<K, V, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("capacity", &self.capacity.load(Ordering::SeqCst))
            .field("shards", &self.shards.len())
            .field("weighted", &self.weigher.is_some())
            .finish_non_exhaustive()
    }
}

/// Shard `i`'s part of a capacity split over `n` shards: the capacity spread exactly, the
/// first `capacity % n` shards taking one more.
fn shard_capacity(capacity: u64, n: u64, i: u64) -> u64 {
    capacity / n + u64::from(i < capacity % n)
}

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
{
    /// `key`'s hash: the hasher's, mixed once more. The shard comes from its top bits, the
    /// table bucket from its low 32, a slot's tag from bits in between, so every bit must
    /// depend on the whole key. A weak hasher (the identity on integers, as `nohash`-style
    /// hashers give) would otherwise put consecutive keys all in one shard: measured, an
    /// identity hasher took lirs-multi1 at 1,303 entries from 0.75 to 0.51 and
    /// cache2k-orm-night at 5,000 from 0.91 to 0.66. The mix is a bijection, so keys with
    /// different hashes keep different hashes.
    #[inline]
    pub(crate) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        let h = self.hasher.hash_one(key);
        // SplitMix64's first round: not the multiplier the sketch and the ghosts spread hashes
        // with, so their positions do not follow the shard's bits.
        let h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^ (h >> 27)
    }

    pub(crate) fn shard_index(&self, hash: u64) -> usize {
        // The top bits pick the shard; the table's buckets use the low 32.
        (hash >> 48) as usize & (self.shards.len() - 1)
    }

    fn shard(&self, hash: u64) -> &Shard<K, V> {
        &self.shards[self.shard_index(hash)]
    }

    /// A clone of `key`'s value, if cached. Takes no lock and allocates nothing.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_hashed(self.hash(key), key)
    }

    /// [`get`](Self::get), for a key already hashed.
    #[inline]
    pub(crate) fn get_hashed<Q>(&self, hash: u64, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(timing) = &self.timing {
            return self.get_timed(timing, hash, key);
        }
        let pin = &crate::sync::pin();
        self.shard(hash)
            .get(hash, key, None, pin)
            .map(|e| e.value.clone())
    }

    /// [`get`](Self::get) when entries can expire. Kept out of line so the untimed read path
    /// stays small enough to inline the shard's lookup.
    #[inline(never)]
    fn get_timed<Q>(&self, timing: &Timing<K, V>, hash: u64, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let pin = &crate::sync::pin();
        let now = timing.now();
        let e = self.shard(hash).get(hash, key, Some(now.1), pin)?;
        timing.on_read(e, now);
        Some(e.value.clone())
    }

    /// A clone of `key`'s value, if cached, without it counting as a read: no hit or miss in
    /// the [`stats`](Self::stats), no use of the key for the eviction policy, no renewal of a
    /// [time to idle](CacheBuilder::time_to_idle) and no call to
    /// [`Expiry::expire_after_read`](crate::Expiry::expire_after_read). For looking at the
    /// cache from outside the workload (a debug endpoint, an audit) without changing what it
    /// keeps. An expired value is not returned, as with [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// ```
    /// let cache = shardkit_cache::Cache::new(100);
    /// cache.insert("k", 1);
    /// assert_eq!(cache.peek("k"), Some(1));
    /// assert_eq!(cache.stats().hits, 0);
    /// ```
    pub fn peek<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.peek_value(self.hash(key), key)
    }

    /// [`peek`](Self::peek), for a key already hashed.
    pub(crate) fn peek_value<Q>(&self, hash: u64, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let guard = &crate::sync::pin();
        self.shard(hash)
            .peek(hash, key, self.now(), guard)
            .map(|e| e.value.clone())
    }

    /// Whether `key` is cached (not counted as a read).
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let guard = &crate::sync::pin();
        self.shard(hash)
            .peek(hash, key, self.now(), guard)
            .is_some()
    }

    /// Caches `value` for `key`, replacing any value it had, and evicting to stay within the
    /// capacity. The new value's lifetime starts now (time to live, time to idle), or is what
    /// an [`Expiry`](crate::Expiry) says: `expire_after_create`, or `expire_after_update` if
    /// the key had a live value.
    pub fn insert(&self, key: K, value: V) {
        let hash = self.hash(&key);
        if let Some(timing) = self.timing.as_ref().filter(|t| t.updates_by_expiry()) {
            return self.insert_by_expiry(timing, hash, key, value);
        }
        let now = self.timing.as_ref().map(Timing::now);
        let entry = self.new_entry(hash, key, value, now, None);
        self.write(|guard| {
            let mut out = Notices::new(self.listener.is_some());
            self.shard(hash)
                .insert(entry, now.map(|n| n.1), &mut out, guard);
            self.notify(out.into_vec());
        });
    }

    /// Decides `key`'s fate from its cached value, atomically: `f` is given the value (`None`
    /// if there is none, or it expired) and answers whether to [`Put`](Compute::Put) a new
    /// one, [`Remove`](Compute::Remove) the key or [`Keep`](Compute::Keep) it as it is.
    /// Returns the value put (even one too heavy to stay cached), the value kept, or `None`
    /// (removed, or kept absent).
    ///
    /// No update is lost to a concurrent write: `f` runs outside the cache's locks, and if the
    /// key's value changed meanwhile (another `compute`, an `insert`, a `remove`, an
    /// eviction, a load of [`get_or_insert_with`](Self::get_or_insert_with)), its answer is
    /// dropped and `f` runs again on the new value, as
    /// [`AtomicU64::fetch_update`](std::sync::atomic::AtomicU64::fetch_update) does. So `f`
    /// may run more than once, and may read and write the cache itself (a write to the same
    /// key makes it run again). A value that expires while `f` runs counts as a change for a
    /// [`Put`](Compute::Put): `f` runs again and is shown `None`; a
    /// [`Remove`](Compute::Remove) removes it all the same (heard as
    /// [`Expired`](RemovalCause::Expired)). Keep `f` short: while it runs, the thread stays pinned,
    /// and memory that any cache of the process releases meanwhile waits to be freed.
    ///
    /// A value put is a new entry, as with [`insert`](Self::insert): its expiry starts again (or as
    /// an [`Expiry`](crate::Expiry)'s `expire_after_update` says, if it replaces one), the weigher
    /// weighs it (one heavier than a shard's share of the capacity is evicted at once), the
    /// eviction policy counts it as a use of the key, and the listener hears of the value it
    /// replaced ([`RemovalCause::Replaced`]). A removal is heard as [`RemovalCause::Removed`], and,
    /// as with [`remove`](Self::remove), a load of the key in flight is not cached when it finishes
    /// (whether or not the key was cached when `f` answered [`Remove`](Compute::Remove)). Showing
    /// `f` the value is not a read: it counts in no [`stats`](Self::stats), renews no time to idle,
    /// and is no use of the key for the policy, so [`Keep`](Compute::Keep) leaves everything as it
    /// was.
    ///
    /// # Examples
    ///
    /// A counter per key, shared by threads:
    ///
    /// ```
    /// use shardkit_cache::{Cache, Compute};
    ///
    /// let hits: Cache<&str, u64> = Cache::new(1_000);
    /// std::thread::scope(|s| {
    ///     for _ in 0..4 {
    ///         s.spawn(|| {
    ///             for _ in 0..1_000 {
    ///                 hits.compute("/index.html", |n| Compute::Put(n.map_or(1, |n| n + 1)));
    ///             }
    ///         });
    ///     }
    /// });
    /// assert_eq!(hits.get("/index.html"), Some(4_000));
    ///
    /// // Remove the key only if its count is past a limit; otherwise touch nothing.
    /// let left = hits.compute("/index.html", |n| match n {
    ///     Some(&n) if n > 10_000 => Compute::Remove,
    ///     _ => Compute::Keep,
    /// });
    /// assert_eq!(left, Some(4_000));
    /// ```
    #[doc(alias = "upsert")]
    #[doc(alias = "and_compute_with")]
    #[doc(alias = "remove_if")]
    pub fn compute(&self, key: K, f: impl FnMut(Option<&V>) -> Compute<V>) -> Option<V> {
        self.compute_then(key, f, || true, |answer| answer)
    }

    /// [`compute`](Self::compute), running `then` on its answer before the listener hears of
    /// the entries that left: a load ends its flight there, so a listener that loads the same
    /// key again does not wait on the flight of the thread that is calling it. A value `f`
    /// puts is cached only if `wanted`, asked under the shard's lock, says so; otherwise it
    /// is the answer all the same.
    pub(crate) fn compute_then<R>(
        &self,
        key: K,
        f: impl FnMut(Option<&V>) -> Compute<V>,
        wanted: impl Fn() -> bool,
        then: impl FnOnce(Option<V>) -> R,
    ) -> R {
        let hash = self.hash(&key);
        // Read afresh for each attempt and each entry built: a retry after a slow `f` must
        // not be shown a value that expired meanwhile, nor write one already expired.
        let timing = self.timing.as_ref();
        let now = || timing.map(|t| t.now().1);
        let build = |key, value, replacing: Option<&Entry<K, V>>| {
            self.new_entry(hash, key, value, timing.map(Timing::now), replacing)
        };
        // A removal by `compute` cancels the caching of a load in flight, as `remove` does.
        let removing = |key: &K| self.invalidate_loads(hash, key);
        self.write(|guard| {
            let mut out = Notices::new(self.listener.is_some());
            let answer = self
                .shard(hash)
                .compute(hash, key, now, f, wanted, removing, build, &mut out, guard);
            // Caught, so a panic in `then` (a clone of the user's value) does not keep the
            // listener from hearing what left; it goes on to the caller after that.
            let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| then(answer)));
            self.notify(out.into_vec());
            done.unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// [`insert`](Self::insert) in a cache with an [`Expiry`](crate::Expiry): the new value's
    /// lifetime may depend on what the old one has left
    /// ([`expire_after_update`](crate::Expiry::expire_after_update)), so the entry's deadline
    /// is set for the live entry seen, and the entry is put only if that is still the key's
    /// live entry under the shard's lock; otherwise its deadline is set again for the new one.
    /// The `Expiry` runs outside the lock.
    fn insert_by_expiry(&self, timing: &Timing<K, V>, hash: u64, key: K, value: V) {
        self.write(|guard| {
            let shard = self.shard(hash);
            let mut out = Notices::new(self.listener.is_some());
            let mut entry = self.new_entry(hash, key, value, None, None);
            loop {
                let now = timing.now();
                let live = shard.peek(hash, &entry.key, Some(now.1), guard);
                entry.set_expires_at(timing.on_insert(&entry.key, &entry.value, now, live));
                // The clock read again, as `compute` does: an entry that expired while the
                // `Expiry` ran is no longer the one looked at, and the next try creates.
                let now = timing.now().1;
                match shard.insert_if(entry, live, Some(now), &|| true, &mut out, guard) {
                    Ok(()) => break,
                    Err(e) => entry = e.into_entry(),
                }
            }
            self.notify(out.into_vec());
        });
    }

    /// The entry for `key` and `value`: weighed, and with its expiry deadline from `now` (the
    /// clock's reading, when entries can expire), `replacing` the key's live entry, if any.
    fn new_entry(
        &self,
        hash: u64,
        key: K,
        value: V,
        now: Option<(Instant, u64)>,
        replacing: Option<&Entry<K, V>>,
    ) -> Entry<K, V> {
        let weight = self.weigher.as_ref().map_or(1, |w| w(&key, &value));
        let deadline = match (&self.timing, now) {
            (Some(t), Some(now)) => t.on_insert(&key, &value, now, replacing),
            _ => 0,
        };
        Entry::new(hash, key, value, weight).expiring_at(deadline)
    }

    /// Runs a write pinned, then frees what the epochs allow: after the write's listener
    /// calls (a panicking destructor of something freed then cannot keep them from being
    /// made), outside every lock, and unpinned (see [`crate::epoch`]).
    fn write<R>(&self, write: impl FnOnce(&crate::sync::Pin) -> R) -> R {
        let done = write(&crate::sync::pin());
        crate::epoch::collect(false);
        done
    }

    /// Reclaims every expired entry now (writes otherwise reclaim them a few at a time), telling
    /// the listener, and frees the memory of every entry that left the cache (expired,
    /// evicted, removed or replaced), if no other thread is pinned: those this cache still
    /// holds for its policy or in its shard batches, those in this thread's bag, and what any
    /// thread of the process handed over. Writes otherwise free them as they go: a removed,
    /// replaced or expired entry once its policy queue passes it, or once such entries are
    /// half a queue or weigh more than a quarter of a shard's capacity and half the queue's
    /// live entries; the rest about every thousand entries. Another thread's bag, of up to 64 entries, is handed over when it fills or
    /// the thread exits.
    ///
    /// Optional: expired entries are never returned either way.
    pub fn run_pending_tasks(&self) {
        let now = self.now();
        self.each_shard(|_, shard, out, guard| shard.run_pending_tasks(now, out, guard));
        // Unpinned: a pin held here would keep the epoch from moving past it.
        crate::sync::flush();
    }

    /// Now, for expiry checks, if anything can expire.
    fn now(&self) -> Option<u64> {
        self.timing.as_ref().map(|t| t.now().1)
    }

    /// Removes `key`, returning its value if it was cached. A load of `key` in flight
    /// ([`get_or_insert_with`](Self::get_or_insert_with) and its variants) is not cached when
    /// it finishes: it may have read what the removal was meant to invalidate. Its caller, and
    /// those already waiting for it, still get its value (or the key's, if one was cached
    /// meanwhile); callers from now on load afresh.
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        self.invalidate_loads(hash, key);
        self.write(|guard| {
            let removed = self.shard(hash).remove(hash, key, guard)?;
            if self.now().is_some_and(|now| removed.get().is_expired(now)) {
                // It had already expired: gone as far as callers could tell.
                self.notify(vec![(removed, RemovalCause::Expired)]);
                return None;
            }
            // Told first: a clone that panics leaves the removal heard all the same.
            self.notify(vec![(removed, RemovalCause::Removed)]);
            Some(removed.get().value.clone())
        })
    }

    /// Removes every entry for which `keep` returns false. Expired entries are not shown to `keep`:
    /// they are gone already, and are reclaimed first (the listener hears them as expired). Keys
    /// being loaded ([`get_or_insert_with`](Self::get_or_insert_with)) are not cached yet, so
    /// `keep` does not judge them: what their loads return is cached.
    ///
    /// `keep` runs outside the cache's locks, so it may read and write the cache. An entry
    /// inserted, replaced or removed while `retain` runs may or may not be judged; one that
    /// changed after `keep` judged it is left as it now is.
    pub fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) {
        self.each_shard(|_, shard, out, guard| shard.retain(&mut keep, self.now(), out, guard));
    }

    /// Removes every entry. Loads in flight ([`get_or_insert_with`](Self::get_or_insert_with)
    /// and its variants) are not cached when they finish, as after a [`remove`](Self::remove).
    pub fn clear(&self) {
        self.invalidate_all_loads();
        self.each_shard(|_, shard, out, guard| shard.clear(self.now(), out, guard));
    }

    /// The cached entries, cloned, shard by shard: entries inserted or removed meanwhile may or
    /// may not be included.
    pub fn iter(&self) -> impl Iterator<Item = (K, V)> + '_
    where
        K: Clone,
    {
        // The clock is read as each shard is reached: the iterator may be consumed slowly.
        self.shards.iter().flat_map(|s| s.snapshot(self.now()))
    }

    /// How many entries are cached, counting expired ones not yet reclaimed (writes reclaim
    /// them as they go; [`run_pending_tasks`](Self::run_pending_tasks) does at once).
    pub fn len(&self) -> usize {
        self.shards.iter().map(Shard::len).sum()
    }

    /// Whether no entry is cached, counting expired ones not yet reclaimed as [`len`](Self::len)
    /// does: a cache whose entries all expired is empty once they are reclaimed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The total weight of the cached entries (their count, without a weigher), counting
    /// expired ones not yet reclaimed as [`len`](Self::len) does.
    pub fn weighted_size(&self) -> u64 {
        self.shards.iter().map(Shard::weight).sum()
    }

    /// The capacity: entries, or total weight with a weigher.
    pub fn capacity(&self) -> u64 {
        self.capacity.load(Ordering::SeqCst)
    }

    /// Changes the capacity (entries, or total weight with a weigher) while the cache is in
    /// use. A smaller capacity takes effect before this returns: each shard in turn evicts
    /// down to its part, under its lock, choosing as any eviction does (the listener hears
    /// each entry, as evicted for size, or as expired if it had), and hands what it evicted
    /// over to be freed. A larger one lets the cache fill further. The eviction policy keeps
    /// what it learnt: the admission window's share is left as it was (the evictions a resize
    /// forces do not move it), and the frequency sketch shrinks with the entries left, its
    /// counts merged, and grows again as the cache fills (its counts then start over, as a
    /// new cache's do). Of resizes made at once, the one that stored its capacity last holds
    /// on every shard.
    ///
    /// The shard count stays what the builder chose for the first capacity, and each shard
    /// takes an equal part of the new one: a cache that starts tiny and grows large keeps
    /// few shards (set [`CacheBuilder::shards`] for the size it will reach), and one shrunk
    /// below its shard count leaves some shards no room.
    ///
    /// # Examples
    ///
    /// ```
    /// let cache = shardkit_cache::Cache::new(1_000);
    /// for k in 0..1_000 {
    ///     cache.insert(k, k);
    /// }
    /// cache.set_capacity(100);
    /// assert!(cache.len() <= 100);
    /// assert_eq!(cache.capacity(), 100);
    /// ```
    #[doc(alias = "set_max_capacity")]
    #[doc(alias = "resize")]
    pub fn set_capacity(&self, capacity: u64) {
        self.capacity.store(capacity, Ordering::SeqCst);
        let n = self.shards.len() as u64;
        // The window's floor follows the capacity stored last: a resize that moved it for a
        // capacity another resize has since replaced moves it again.
        loop {
            let stored = self.capacity.load(Ordering::SeqCst);
            self.share.resize(stored.div_ceil(n));
            if self.capacity.load(Ordering::SeqCst) == stored {
                break;
            }
        }
        self.each_shard(|i, shard, out, guard| {
            let part = || shard_capacity(self.capacity.load(Ordering::SeqCst), n, i);
            shard.set_capacity(part, self.now(), out, guard);
        });
    }

    /// An estimate of the bytes the cache holds, from its own structures: the shards' tables,
    /// the entries (each the size of its key and value plus about 24 bytes of bookkeeping), the
    /// eviction policy's queues, frequency sketch and ghosts, entry memory kept for reuse, and
    /// entries that left the cache and wait in a shard's batch to be handed over for freeing.
    /// Not counted: memory a key or value owns elsewhere (a `String`'s bytes, what an `Arc`
    /// points to), the allocator's own overhead per allocation, entries and old tables already
    /// handed over that wait, briefly, until no reader can still hold them
    /// ([`run_pending_tasks`](Self::run_pending_tasks) frees those it can), and a few small
    /// fixed parts (the loads in flight, the per-shard locks' bookkeeping). Takes each
    /// shard's lock in turn, so it costs about as much as a write per shard.
    ///
    /// # Examples
    ///
    /// ```
    /// let cache = shardkit_cache::Cache::new(10_000);
    /// for k in 0..10_000u64 {
    ///     cache.insert(k, k);
    /// }
    /// let per_entry = cache.memory_used() / cache.len();
    /// assert!(per_entry < 200, "{per_entry} bytes per entry");
    /// ```
    pub fn memory_used(&self) -> usize {
        let guard = &crate::sync::pin();
        std::mem::size_of::<Self>()
            + self
                .shards
                .iter()
                .map(|s| s.memory_used(guard))
                .sum::<usize>()
    }

    /// Hits, misses and evictions so far. Reads are counted on per-thread stripes (the policy
    /// needs them to tune itself) without atomic read-modify-writes, so the counts cost
    /// readers no contended or locked write; with more than four threads reading one shard at
    /// once, a few counts can be lost.
    pub fn stats(&self) -> CacheStats {
        let base = self
            .loads
            .as_ref()
            .map_or_else(CacheStats::default, LoadStats::snapshot);
        self.shards.iter().fold(base, |acc, s| {
            let (hits, misses) = s.reads();
            CacheStats {
                hits: acc.hits + hits,
                misses: acc.misses + misses,
                evictions: acc.evictions + s.evictions(),
                ..acc
            }
        })
    }

    /// Tells the listener about `out`; the caller's guard keeps the entries allocated.
    /// Runs `work` on each shard (with its index), each as a write of its own, and tells the
    /// listener what left each shard after its work. A listener's panic stops neither the
    /// other shards' work nor their listener calls; the first panic goes on to the caller
    /// after them. A panic in `work` itself (the caller's `keep`, say) goes on at once.
    fn each_shard(
        &self,
        mut work: impl FnMut(u64, &Shard<K, V>, &mut Notices<K, V>, &crate::sync::Pin),
    ) {
        let mut panic = None;
        for (i, shard) in (0..).zip(&*self.shards) {
            // Pinned per shard, but freed once, after every shard: a key's or value's
            // destructor that panics as a collection frees it must not stop the others either.
            let guard = &crate::sync::pin();
            let mut out = Notices::new(self.listener.is_some());
            work(i, shard, &mut out, guard);
            let told = std::panic::AssertUnwindSafe(|| self.notify(out.into_vec()));
            if let Err(p) = std::panic::catch_unwind(told) {
                panic.get_or_insert(p);
            }
        }
        crate::epoch::collect(false);
        if let Some(p) = panic {
            std::panic::resume_unwind(p);
        }
    }

    fn notify(&self, out: Vec<Notice<K, V>>) {
        let Some(listener) = &self.listener else {
            return;
        };
        let mut first_panic = None;
        for (h, cause) in out {
            let e = h.get();
            let call = std::panic::AssertUnwindSafe(|| listener(&e.key, &e.value, cause));
            if let Err(p) = std::panic::catch_unwind(call) {
                first_panic.get_or_insert(p);
            }
        }
        if let Some(p) = first_panic {
            std::panic::resume_unwind(p);
        }
    }
}
