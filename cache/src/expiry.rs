//! Expiry: time to live, time to idle, per-entry lifetimes, and the clock they read.
//!
//! An entry's deadline is stored in it (nanoseconds after the cache's time origin). Readers
//! compare it with the clock, so an expired entry is never returned, whether or not anything
//! has reclaimed it yet; writes reclaim expired entries a few at a time as they go, and
//! [`Cache::run_pending_tasks`](crate::Cache::run_pending_tasks) reclaims all of them at once.
//! A cache without expiry never reads the clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::entry::Entry;

/// A source of time for expiry. [`SystemClock`] by default; tests can drive expiry with their
/// own.
pub trait Clock: Send + Sync + 'static {
    /// The current time; it must never go backwards.
    fn now(&self) -> Instant;
}

/// The system's monotonic clock ([`Instant::now`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// How long each entry lives, decided per entry when it is inserted (created, or replacing a live
/// value) and when it is read.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use shardkit_cache::{Cache, Expiry};
///
/// /// Sessions live as long as they say; everything else an hour.
/// struct ByKind;
///
/// impl Expiry<String, (u64, Duration)> for ByKind {
///     fn expire_after_create(&self, key: &String, value: &(u64, Duration), _now: Instant)
///         -> Option<Duration> {
///         Some(if key.starts_with("session:") { value.1 } else { Duration::from_secs(3600) })
///     }
/// }
///
/// let cache = Cache::builder().max_capacity(1_000).expiry(ByKind).build()?;
/// cache.insert("session:1".to_string(), (7, Duration::from_secs(60)));
/// assert_eq!(cache.get("session:1"), Some((7, Duration::from_secs(60))));
/// # Ok::<(), shardkit_cache::BuildError>(())
/// ```
pub trait Expiry<K, V>: Send + Sync + 'static {
    /// How long a newly inserted entry lives (`None`: until evicted), for a key that had no
    /// live value.
    fn expire_after_create(&self, key: &K, value: &V, now: Instant) -> Option<Duration>;

    /// How long a new value for a key with a live one lives (an [`insert`](crate::Cache::insert)
    /// or a [`compute`](crate::Cache::compute) that replaces it), given what the old value had
    /// left (`None`: no deadline). By default a new value's lifetime starts again, as
    /// [`expire_after_create`](Self::expire_after_create) says; return `remaining` to keep the
    /// old deadline instead (moka's default, so a port from moka that relied on it must
    /// override this). Called outside the cache's locks, so it may be called again for one
    /// write: if another write replaces the key meanwhile, or the old value expires before the
    /// new one is written (and then `expire_after_create` decides).
    fn expire_after_update(
        &self,
        key: &K,
        value: &V,
        now: Instant,
        remaining: Option<Duration>,
    ) -> Option<Duration> {
        let _ = remaining;
        self.expire_after_create(key, value, now)
    }

    /// How long an entry lives after a read, given what it had left (`None`: no deadline). By
    /// default, a read changes nothing.
    fn expire_after_read(
        &self,
        key: &K,
        value: &V,
        now: Instant,
        remaining: Option<Duration>,
    ) -> Option<Duration> {
        let _ = (key, value, now);
        remaining
    }
}

/// What a cache with expiry needs: its time origin, clock and rules.
pub(crate) struct Timing<K, V> {
    origin: Instant,
    clock: Arc<dyn Clock>,
    ttl: Option<Duration>,
    tti: Option<Duration>,
    expiry: Option<Arc<dyn Expiry<K, V>>>,
}

impl<K: 'static, V: 'static> Timing<K, V> {
    /// `None` when nothing can expire.
    pub(crate) fn new(
        clock: Arc<dyn Clock>,
        ttl: Option<Duration>,
        tti: Option<Duration>,
        expiry: Option<Arc<dyn Expiry<K, V>>>,
    ) -> Option<Self> {
        (ttl.is_some() || tti.is_some() || expiry.is_some()).then(|| Self {
            origin: clock.now(),
            clock,
            ttl,
            tti,
            expiry,
        })
    }

    /// Now, in nanoseconds after the origin, plus one: never 0, so that a deadline (now plus a
    /// lifetime) is never 0 either, which would mean "never", and a lifetime of zero expires
    /// at once even at the origin.
    // Out of line: it reads a clock through a trait object, which costs more than the call.
    // Inlined, its saturating add tipped the optimiser's choices on the write path of caches
    // without expiry: with it and the `max(1)` below, an evicting insert ran 1,268
    // instructions against 1,234-1,241 (cachegrind, `cache-profile shardkit misses`).
    #[inline(never)]
    pub(crate) fn now(&self) -> (Instant, u64) {
        let now = self.clock.now();
        let nanos = now.saturating_duration_since(self.origin).as_nanos();
        let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
        (now, nanos.saturating_add(1))
    }

    /// The deadline of a `life` starting at `now` (from [`now`](Self::now), so at least 1).
    fn deadline(now: u64, life: Option<Duration>) -> u64 {
        life.map_or(0, |life| {
            let nanos = u64::try_from(life.as_nanos()).unwrap_or(u64::MAX);
            // `now` is at least 1 already; the `max` is kept for the optimiser (see `now`).
            now.saturating_add(nanos).max(1)
        })
    }

    /// Whether a new value's lifetime can depend on the one it replaces (an [`Expiry`] decides
    /// it): a write must then know which live entry it replaces.
    pub(crate) fn updates_by_expiry(&self) -> bool {
        self.expiry.is_some()
    }

    /// The deadline of an entry written now, `replacing` the key's live entry, if any.
    pub(crate) fn on_insert(
        &self,
        key: &K,
        value: &V,
        (now, nanos): (Instant, u64),
        replacing: Option<&Entry<K, V>>,
    ) -> u64 {
        let life = match (&self.expiry, replacing) {
            (Some(e), None) => e.expire_after_create(key, value, now),
            (Some(e), Some(old)) => e.expire_after_update(key, value, now, old.remaining(nanos)),
            (None, _) => self.ttl.or(self.tti),
        };
        Self::deadline(nanos, life)
    }

    /// Moves the deadline of `entry`, read now, as the rules say: the [`Expiry`]'s answer, or
    /// a time to idle renewed (only ever later).
    pub(crate) fn on_read(&self, entry: &Entry<K, V>, (now, nanos): (Instant, u64)) {
        if let Some(e) = &self.expiry {
            let at = entry.expires_at();
            let life = e.expire_after_read(&entry.key, &entry.value, now, entry.remaining(nanos));
            let new = Self::deadline(nanos, life);
            if new != at {
                entry.set_expires_at(new);
            }
        } else if let Some(tti) = self.tti {
            entry.extend_expiry_to(Self::deadline(nanos, Some(tti)));
        }
    }
}
