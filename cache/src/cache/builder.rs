//! Building a cache: [`Cache::new`] with the default settings, or [`Cache::builder`] and its
//! [`CacheBuilder`], whose settings [`CacheBuilder::build`] checks ([`BuildError`]).

use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use super::{Cache, DefaultHashBuilder, Listener, Weigher, shard_capacity};
use crate::RemovalCause;
use crate::expiry::{Clock, Expiry, SystemClock, Timing};
use crate::loading::LoadStats;
use crate::shard::Shard;
use crate::window::WindowShare;

/// Why [`CacheBuilder::build`] refused a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// Neither [`CacheBuilder::max_capacity`] nor [`CacheBuilder::max_weight`] was set.
    NoCapacity,
    /// [`CacheBuilder::shards`] was given zero, a number that is not a power of two, or one
    /// over 65,536.
    InvalidShards(usize),
    /// More than one of time to live, time to idle and a per-entry [`Expiry`] were set: an
    /// entry keeps one deadline. (An [`Expiry`] can give a time to idle capped by a time to
    /// live only if the value records when it was written: `expire_after_read` is not told.)
    ConflictingExpiry,
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoCapacity => write!(
                f,
                "a cache needs a capacity: set max_capacity or max_weight"
            ),
            Self::InvalidShards(n) => {
                write!(
                    f,
                    "{n} shards: the shard count must be a power of two from 1 to 65,536"
                )
            }
            Self::ConflictingExpiry => write!(
                f,
                "set only one of time_to_live, time_to_idle and expiry: an entry keeps one deadline"
            ),
        }
    }
}

impl std::error::Error for BuildError {}

/// Configures a [`Cache`]; from [`Cache::builder`].
pub struct CacheBuilder<K, V, S = DefaultHashBuilder> {
    max_capacity: Option<u64>,
    max_weight: Option<u64>,
    weigher: Option<Weigher<K, V>>,
    listener: Option<Listener<K, V>>,
    shards: Option<usize>,
    ttl: Option<Duration>,
    tti: Option<Duration>,
    expiry: Option<Arc<dyn Expiry<K, V>>>,
    clock: Arc<dyn Clock>,
    record_stats: bool,
    hasher: S,
}

impl<K, V, S> std::fmt::Debug for CacheBuilder<K, V, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("max_capacity", &self.max_capacity)
            .field("max_weight", &self.max_weight)
            .field("shards", &self.shards)
            .finish_non_exhaustive()
    }
}

impl<K, V, S> CacheBuilder<K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
{
    /// Bounds the cache to `entries` entries. With [`max_weight`](Self::max_weight) too, the
    /// weight is the bound, and `entries` only says how many entries to expect (what the
    /// default shard count is chosen for).
    #[must_use]
    pub fn max_capacity(mut self, entries: u64) -> Self {
        self.max_capacity = Some(entries);
        self
    }

    /// Bounds the cache to a total weight of `max`, each entry weighing what `weigher` says
    /// (computed once, on insertion). An entry heavier than a shard's share of `max` is not
    /// cached (the listener sees it evicted for size), and the value it was to replace is
    /// removed all the same (the listener sees it replaced): a read after an insert never
    /// returns the value the insert overwrote. Without [`max_capacity`](Self::max_capacity),
    /// the default shard count takes `max` for the number of entries, so entries of many
    /// units each make small shards, which admit and evict less well: give `max_capacity` the
    /// number of entries you expect.
    #[must_use]
    pub fn max_weight(
        mut self,
        max: u64,
        weigher: impl Fn(&K, &V) -> u32 + Send + Sync + 'static,
    ) -> Self {
        self.max_weight = Some(max);
        self.weigher = Some(Arc::new(weigher));
        self
    }

    /// Calls `listener` for every entry that leaves the cache, with why, after the cache's own
    /// locks are released. A panicking listener does not harm the cache: the other
    /// notifications still run, then the panic goes on to the caller whose call caused them.
    /// The listener may use the cache, even load the key it hears of. It runs on the thread
    /// whose call caused the departure, while that thread is pinned (the entry it is shown
    /// stays allocated until it returns), so keep it short: memory that any cache of the
    /// process releases meanwhile waits to be freed.
    #[must_use]
    pub fn eviction_listener(
        mut self,
        listener: impl Fn(&K, &V, RemovalCause) + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// Splits the cache into `shards` independently locked parts (a power of two). The default,
    /// four per processor, kept small enough that each shard holds at least 256 entries
    /// (admission and eviction are decided per shard, and tiny shards decide worse; the
    /// admission window's size is tuned for the whole cache).
    #[must_use]
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Expires every entry `ttl` after it was inserted.
    #[must_use]
    pub fn time_to_live(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Expires every entry `tti` after it was last read or inserted.
    #[must_use]
    pub fn time_to_idle(mut self, tti: Duration) -> Self {
        self.tti = Some(tti);
        self
    }

    /// Decides each entry's lifetime with `expiry`: when it is inserted (and whether it
    /// replaces a live value), and on reads.
    #[must_use]
    pub fn expiry(mut self, expiry: impl Expiry<K, V>) -> Self {
        self.expiry = Some(Arc::new(expiry));
        self
    }

    /// Counts loads (successes, failures, and the time they took) for [`Cache::stats`]; off by
    /// default, so a load costs no clock reads. Hits, misses and evictions are counted either
    /// way: the policy tunes itself with them.
    #[must_use]
    pub fn record_stats(mut self, enabled: bool) -> Self {
        self.record_stats = enabled;
        self
    }

    /// Reads time from `clock` instead of the system's (for tests of expiry).
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Uses another hasher. The cache mixes its output once more, so even a weak hasher (the
    /// identity on integer keys) spreads keys evenly over shards and table slots; it must
    /// still be consistent with `Eq`, and a hasher an attacker can predict lets them aim keys
    /// at one slot.
    pub fn hasher<S2: BuildHasher>(self, hasher: S2) -> CacheBuilder<K, V, S2> {
        CacheBuilder {
            max_capacity: self.max_capacity,
            max_weight: self.max_weight,
            weigher: self.weigher,
            listener: self.listener,
            shards: self.shards,
            ttl: self.ttl,
            tti: self.tti,
            expiry: self.expiry,
            clock: self.clock,
            record_stats: self.record_stats,
            hasher,
        }
    }

    /// Builds the cache.
    ///
    /// # Errors
    ///
    /// [`BuildError`] for a configuration without a capacity or with an invalid shard count.
    pub fn build(self) -> Result<Cache<K, V, S>, BuildError> {
        let rules = [
            self.ttl.is_some(),
            self.tti.is_some(),
            self.expiry.is_some(),
        ];
        if rules.iter().filter(|&&set| set).count() > 1 {
            return Err(BuildError::ConflictingExpiry);
        }
        let (capacity, entries) = match (self.max_weight, self.max_capacity) {
            (Some(w), entries) => (w, entries.unwrap_or(w).min(1 << 24)),
            (None, Some(n)) => (n, n.min(1 << 24)),
            (None, None) => return Err(BuildError::NoCapacity),
        };
        let shards = match self.shards {
            Some(n) if n == 0 || !n.is_power_of_two() || n > 1 << 16 => {
                return Err(BuildError::InvalidShards(n));
            }
            Some(n) => n,
            None => default_shards(entries),
        };
        let n = shards as u64;
        let weighted = self.max_weight.is_some();
        let share = WindowShare::for_shards(capacity.div_ceil(n), n as u32);
        let shards = (0..n)
            .map(|i| {
                let cap = shard_capacity(capacity, n, i);
                Shard::new(cap, (entries / n).max(1) as usize, weighted, share.clone())
            })
            .collect();
        Ok(Cache {
            flights: (0..n)
                .map(|_| parking_lot::Mutex::new(Vec::new()))
                .collect(),
            shards,
            hasher: self.hasher,
            weigher: self.weigher,
            listener: self.listener,
            timing: Timing::new(self.clock, self.ttl, self.tti, self.expiry),
            loads: self.record_stats.then(LoadStats::default),
            capacity: AtomicU64::new(capacity),
            share,
        })
    }
}

/// The shard count a cache of about `entries` entries gets by default (see
/// [`CacheBuilder::shards`]): four per processor, fewer where shards would hold under 256
/// entries, at most 64.
pub(crate) fn default_shards(entries: u64) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    // At most 2^16, so the power of two below cannot overflow.
    let by_size = (entries.min(1 << 24) / 256).max(1) as usize;
    (cpus * 4)
        .next_power_of_two()
        .min(by_size.next_power_of_two() / 2)
        .clamp(1, 64)
}

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A cache of at most `capacity` entries, with the default settings.
    ///
    /// # Examples
    ///
    /// ```
    /// let cache = shardkit_cache::Cache::new(1_000);
    /// cache.insert("k", 1);
    /// assert_eq!(cache.get("k"), Some(1));
    /// ```
    pub fn new(capacity: usize) -> Self {
        Self::builder()
            .max_capacity(capacity as u64)
            .build()
            .expect("a capacity and the default shards are a valid configuration")
    }

    /// A builder for a cache with more settings.
    pub fn builder() -> CacheBuilder<K, V> {
        CacheBuilder {
            max_capacity: None,
            max_weight: None,
            weigher: None,
            listener: None,
            shards: None,
            ttl: None,
            tti: None,
            expiry: None,
            clock: Arc::new(SystemClock),
            record_stats: false,
            hasher: DefaultHashBuilder::default(),
        }
    }
}
