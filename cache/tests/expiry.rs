//! Expiry with a mock clock: expired entries are never returned, whatever maintenance ran;
//! reads renew time to idle; writes reclaim expired entries without anyone driving them; the
//! listener hears `Expired`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use shardkit_cache::{BuildError, Cache, Clock, Compute, Expiry, RemovalCause};

/// A clock tests move by hand.
#[derive(Clone)]
struct MockClock {
    start: Instant,
    offset_ms: Arc<AtomicU64>,
}

impl MockClock {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            offset_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn advance(&self, ms: u64) {
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for MockClock {
    fn now(&self) -> Instant {
        self.start + Duration::from_millis(self.offset_ms.load(Ordering::SeqCst))
    }
}

/// A cache of 100 entries that live ten seconds on `clock`.
fn ten_second_cache<V: Clone + Send + Sync + 'static>(clock: &MockClock) -> Cache<u64, V> {
    Cache::builder()
        .max_capacity(100)
        .time_to_live(Duration::from_secs(10))
        .clock(clock.clone())
        .build()
        .unwrap()
}

#[test]
fn time_to_live_hides_expired_entries_at_once() {
    let clock = MockClock::new();
    let cache = ten_second_cache(&clock);
    cache.insert(1u64, "a");
    clock.advance(9_999);
    assert_eq!(cache.get(&1), Some("a"));
    clock.advance(1);
    // No write and no maintenance since: still never returned.
    assert_eq!(cache.get(&1), None);
    assert!(!cache.contains_key(&1));
    assert_eq!(cache.iter().count(), 0);
    assert_eq!(cache.remove(&1), None);
    // A new value starts a new lifetime.
    cache.insert(1, "b");
    clock.advance(5_000);
    assert_eq!(cache.get(&1), Some("b"));
}

/// `compute` sees an expired value as absent, and its new value starts a new lifetime.
#[test]
fn compute_treats_an_expired_value_as_absent() {
    let clock = MockClock::new();
    let cache = ten_second_cache(&clock);
    let add = |n: Option<&u64>| Compute::Put(n.map_or(1, |n| n + 1));
    assert_eq!(cache.compute(1, add), Some(1));
    clock.advance(5_000);
    assert_eq!(cache.compute(1, add), Some(2));
    // Ten seconds after the first compute, but five after the second: still there.
    clock.advance(5_000);
    assert_eq!(cache.get(&1), Some(2));
    clock.advance(5_000);
    assert_eq!(
        cache.compute(1, add),
        Some(1),
        "an expired count was carried on"
    );
    clock.advance(9_999);
    assert_eq!(cache.get(&1), Some(1));
}

/// A value that expires while `compute`'s function runs is not updated from: the function
/// runs again and is shown nothing.
#[test]
fn compute_runs_again_when_its_value_expires_meanwhile() {
    let clock = MockClock::new();
    let cache = ten_second_cache(&clock);
    cache.insert(1u64, 41u64);
    let mut shown = Vec::new();
    let answer = cache.compute(1, |n| {
        shown.push(n.copied());
        if shown.len() == 1 {
            clock.advance(10_000); // a slow function: the value's life ends meanwhile
        }
        Compute::Put(n.map_or(1, |n| n + 1))
    });
    assert_eq!(shown, [Some(41), None]);
    assert_eq!(answer, Some(1));
    assert_eq!(cache.get(&1), Some(1));
}

/// A cache of 100 entries idle for at most ten seconds on `clock`, holding key 1.
fn ten_second_idle_cache(clock: &MockClock) -> Cache<u64, u64> {
    let cache = Cache::builder()
        .max_capacity(100)
        .time_to_idle(Duration::from_secs(10))
        .clock(clock.clone())
        .build()
        .unwrap();
    cache.insert(1, 1);
    cache
}

#[test]
fn time_to_idle_is_renewed_by_reads() {
    let clock = MockClock::new();
    let cache = ten_second_idle_cache(&clock);
    for _ in 0..5 {
        clock.advance(8_000);
        assert_eq!(cache.get(&1), Some(1), "read within the idle time");
    }
    clock.advance(10_000);
    assert_eq!(cache.get(&1), None);
}

#[test]
fn peek_neither_renews_time_to_idle_nor_counts_a_read() {
    let clock = MockClock::new();
    let cache = ten_second_idle_cache(&clock);
    clock.advance(8_000);
    assert_eq!(cache.peek(&1), Some(1));
    assert_eq!(cache.peek(&2), None);
    clock.advance(8_000);
    // Idle for 16 s: a read at 8 s would have kept it.
    assert_eq!(cache.peek(&1), None, "an expired value was returned");
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (0, 0));
}

/// Lifetimes by key: even keys live 1 s, odd keys forever; reads of key 0 extend it to 1 s
/// from the read.
struct ByKey;

impl Expiry<u64, u64> for ByKey {
    fn expire_after_create(&self, key: &u64, _: &u64, _: Instant) -> Option<Duration> {
        key.is_multiple_of(2).then_some(Duration::from_secs(1))
    }

    fn expire_after_read(
        &self,
        key: &u64,
        _: &u64,
        _: Instant,
        remaining: Option<Duration>,
    ) -> Option<Duration> {
        if *key == 0 {
            Some(Duration::from_secs(1))
        } else {
            remaining
        }
    }
}

#[test]
fn per_entry_expiry_decides_each_lifetime() {
    let clock = MockClock::new();
    let cache = Cache::builder()
        .max_capacity(100)
        .expiry(ByKey)
        .clock(clock.clone())
        .build()
        .unwrap();
    for k in 0..4u64 {
        cache.insert(k, k);
    }
    clock.advance(600);
    assert_eq!(cache.get(&0), Some(0)); // renewed to 1,600 ms
    clock.advance(600);
    assert_eq!(cache.get(&0), Some(0));
    assert_eq!(cache.get(&2), None, "even keys live one second");
    assert_eq!(cache.get(&1), Some(1));
    clock.advance(100_000);
    assert_eq!(cache.get(&3), Some(3), "odd keys never expire");
    assert_eq!(cache.get(&0), None);
}

#[test]
fn writes_reclaim_expired_entries_and_the_listener_hears_why() {
    let clock = MockClock::new();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&heard);
    let cache = Cache::builder()
        .max_capacity(10_000)
        .shards(1)
        .time_to_live(Duration::from_secs(1))
        .clock(clock.clone())
        .eviction_listener(move |k: &u64, _: &u64, cause| log.lock().push((*k, cause)))
        .build()
        .unwrap();
    for k in 0..1_000u64 {
        cache.insert(k, k);
    }
    assert_eq!(cache.len(), 1_000);
    clock.advance(1_000);
    // Writes of other keys reclaim the expired ones as they go: nothing else runs.
    for k in 10_000..11_000u64 {
        cache.insert(k, k);
    }
    assert!(
        cache.len() < 1_500,
        "{} entries: expired ones not reclaimed",
        cache.len()
    );
    cache.run_pending_tasks();
    assert_eq!(cache.len(), 1_000);
    let heard = heard.lock();
    let expired: std::collections::HashSet<u64> = heard
        .iter()
        .filter(|(_, cause)| *cause == RemovalCause::Expired)
        .map(|(k, _)| *k)
        .collect();
    assert_eq!(expired, (0..1_000).collect());
}

#[test]
fn conflicting_expiry_rules_are_refused() {
    let both = Cache::<u64, u64>::builder()
        .max_capacity(10)
        .time_to_live(Duration::from_secs(1))
        .time_to_idle(Duration::from_secs(1))
        .build();
    assert_eq!(both.unwrap_err(), BuildError::ConflictingExpiry);
}

/// What a listener heard: each key and why it left.
type Heard = Arc<Mutex<Vec<(u64, RemovalCause)>>>;

/// A cache of `ttl` on `clock` with one shard, whose listener's notices land in the result's
/// log.
fn heard_cache(clock: &MockClock, ttl: Duration) -> (Cache<u64, u64>, Heard) {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&heard);
    let cache = Cache::builder()
        .max_capacity(100)
        .shards(1)
        .time_to_live(ttl)
        .clock(clock.clone())
        .eviction_listener(move |k: &u64, _: &u64, cause| log.lock().push((*k, cause)))
        .build()
        .unwrap();
    (cache, heard)
}

/// Whatever write takes out an entry that had expired, the listener hears it expired: to
/// readers it was gone already, not replaced or removed.
#[test]
fn writes_over_expired_entries_report_them_expired() {
    let clock = MockClock::new();
    let (cache, heard) = heard_cache(&clock, Duration::from_secs(1));
    for k in 0..4 {
        cache.insert(k, k);
    }
    clock.advance(1_000);
    cache.insert(0, 10);
    cache.compute(1, |_| Compute::Put(11));
    // Shown `None` (expired), so `Remove` finds nothing to remove; the key's entry stays for
    // a sweep to reclaim, as expired.
    cache.compute(2, |_| Compute::Remove);
    cache.clear();
    let heard = heard.lock();
    let cause_of = |k: u64| {
        heard
            .iter()
            .find(|(key, _)| *key == k)
            .map(|(_, cause)| *cause)
    };
    assert_eq!(cause_of(0), Some(RemovalCause::Expired));
    assert_eq!(cause_of(1), Some(RemovalCause::Expired));
    assert_eq!(cause_of(2), Some(RemovalCause::Expired));
    assert_eq!(cause_of(3), Some(RemovalCause::Expired));
    // The values written after the expiry were live when cleared.
    let mut removed: Vec<u64> = heard
        .iter()
        .filter(|(_, cause)| *cause == RemovalCause::Removed)
        .map(|(k, _)| *k)
        .collect();
    removed.sort_unstable();
    assert_eq!(removed, [0, 1]);
}

#[test]
fn retain_never_shows_an_expired_entry() {
    let clock = MockClock::new();
    let (cache, heard) = heard_cache(&clock, Duration::from_secs(1));
    cache.insert(1, 1);
    clock.advance(500);
    cache.insert(2, 2);
    clock.advance(500);
    let mut shown = Vec::new();
    cache.retain(|k, _| {
        shown.push(*k);
        false
    });
    assert_eq!(shown, [2], "retain showed an expired entry");
    // The expired entry is reclaimed on the way, as expired.
    assert_eq!(
        *heard.lock(),
        [(1, RemovalCause::Expired), (2, RemovalCause::Removed)]
    );
}

#[test]
fn iter_hides_entries_that_expire_while_it_is_consumed() {
    let clock = MockClock::new();
    let cache: Cache<u64, u64> = Cache::builder()
        .max_capacity(1_000)
        .shards(4)
        .time_to_live(Duration::from_secs(1))
        .clock(clock.clone())
        .build()
        .unwrap();
    for k in 0..100 {
        cache.insert(k, k);
    }
    let mut iter = cache.iter();
    let first = iter.next();
    assert!(first.is_some());
    clock.advance(1_000);
    // The first shard's entries were cloned before the expiry; the others' after it.
    let after: Vec<_> = iter.collect();
    assert!(
        after.len() < 99,
        "{} entries seen after they expired",
        after.len()
    );
}

#[test]
fn a_lifetime_of_zero_expires_at_once_even_at_the_clocks_origin() {
    let clock = MockClock::new();
    let cache: Cache<u64, u64> = Cache::builder()
        .max_capacity(10)
        .time_to_live(Duration::ZERO)
        .clock(clock)
        .build()
        .unwrap();
    cache.insert(1, 1);
    assert_eq!(cache.get(&1), None);
}

/// Keys under `permanent_below` never expire; the others live `lifetime`.
struct Lifetimes {
    permanent_below: u64,
    lifetime: Duration,
}

impl Expiry<u64, u64> for Lifetimes {
    fn expire_after_create(&self, key: &u64, _: &u64, _: Instant) -> Option<Duration> {
        (*key >= self.permanent_below).then_some(self.lifetime)
    }
}

/// A cache of 1,000 entries in one shard with `lifetimes` on `clock`, whose listener's
/// notices land in the result's log.
fn lifetimes_cache(clock: &MockClock, lifetimes: Lifetimes) -> (Cache<u64, u64>, Heard) {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&heard);
    let cache = Cache::builder()
        .max_capacity(1_000)
        .shards(1)
        .expiry(lifetimes)
        .clock(clock.clone())
        .eviction_listener(move |k: &u64, _: &u64, cause| log.lock().push((*k, cause)))
        .build()
        .unwrap();
    (cache, heard)
}

/// What the listener heard for size, sorted.
fn evicted_for_size(heard: &Heard) -> Vec<u64> {
    let mut keys: Vec<u64> = heard
        .lock()
        .iter()
        .filter(|(_, cause)| *cause == RemovalCause::Size)
        .map(|(k, _)| *k)
        .collect();
    keys.sort_unstable();
    keys
}

/// A shrink makes its room from expired entries first: live entries are not evicted for the
/// space expired ones hold (they were, oldest first, while ~800 expired ones stayed).
#[test]
fn a_shrink_takes_expired_entries_before_live_ones() {
    let clock = MockClock::new();
    let lifetimes = Lifetimes {
        permanent_below: 100,
        lifetime: Duration::from_secs(1),
    };
    let (cache, heard) = lifetimes_cache(&clock, lifetimes);
    for k in 0..1_000 {
        cache.insert(k, k);
    }
    clock.advance(2_000);
    cache.set_capacity(100);
    assert_eq!(evicted_for_size(&heard), [] as [u64; 0]);
    assert!((0..100).all(|k| cache.get(&k) == Some(k)));
    assert_eq!(cache.len(), 100);
}

/// An entry expired on arrival (a lifetime of zero: "do not cache this") is reported expired
/// at once and takes no room: the live entries stay (it used to push the window's oldest
/// live entry out to admission, which turned it away).
#[test]
fn entries_expired_on_arrival_take_no_room() {
    let clock = MockClock::new();
    let lifetimes = Lifetimes {
        permanent_below: 1_000,
        lifetime: Duration::ZERO,
    };
    let (cache, heard) = lifetimes_cache(&clock, lifetimes);
    for k in 0..2_000 {
        cache.insert(k, k);
    }
    assert_eq!(evicted_for_size(&heard), [] as [u64; 0]);
    assert!((0..1_000).all(|k| cache.get(&k) == Some(k)));
    assert!((1_000..2_000).all(|k| cache.get(&k).is_none()));
    let expired = heard
        .lock()
        .iter()
        .filter(|(_, cause)| *cause == RemovalCause::Expired)
        .count();
    assert_eq!(expired, 1_000);
    assert_eq!(cache.len(), 1_000);
}

/// `run_pending_tasks` frees the values of expired entries, not only unlinks them: before, their
/// handles stayed in the policy's queues, and their values with them, until later writes.
#[test]
fn run_pending_tasks_frees_what_expired() {
    let clock = MockClock::new();
    let token = Arc::new(());
    let cache: Cache<u64, Arc<()>> = ten_second_cache(&clock);
    for k in 0..50 {
        cache.insert(k, Arc::clone(&token));
    }
    clock.advance(10_000);
    // Other tests' threads may be pinned for a moment, delaying the free: retry a while.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Arc::strong_count(&token) > 1 && Instant::now() < deadline {
        cache.run_pending_tasks();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(Arc::strong_count(&token), 1);
    assert!(cache.is_empty());
}

/// Something a test runs once, at a given point of a call.
type Hook = std::cell::RefCell<Option<Box<dyn FnOnce()>>>;

thread_local! {
    /// Run by the next clone of a [`Hooked`] key (`ON_CLONE[0]`) or value (`ON_CLONE[1]`) on
    /// this thread: how a test steps in between two steps of a call.
    static ON_CLONE: [Hook; 2] = Default::default();
}

/// A key (`VALUE` false) or value (`VALUE` true) whose clone runs this thread's hook, if set.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Hooked<const VALUE: bool>(u64);

impl<const VALUE: bool> Clone for Hooked<VALUE> {
    fn clone(&self) -> Self {
        if let Some(hook) = ON_CLONE.with(|hooks| hooks[usize::from(VALUE)].borrow_mut().take()) {
            hook();
        }
        Self(self.0)
    }
}

/// A loading caller that finds the key written by another caller since it missed returns that
/// value as it is cached, and does not put it again: put again, a value that expired in
/// between came back with a new lifetime, though no load ran.
#[test]
fn a_value_written_during_a_load_is_not_given_a_new_lifetime() {
    let clock = MockClock::new();
    let cache: Arc<Cache<Hooked<false>, Hooked<true>>> = Arc::new(
        Cache::builder()
            .max_capacity(100)
            .time_to_live(Duration::from_secs(1))
            .clock(clock.clone())
            .build()
            .unwrap(),
    );
    let writer = Arc::clone(&cache);
    // The leader's key is cloned as its flight starts, after its miss: another caller's value
    // lands then. The leader's look at it clones it: it expires just after.
    ON_CLONE.with(|hooks| {
        *hooks[0].borrow_mut() = Some(Box::new(move || {
            writer.insert(Hooked(1), Hooked(5));
            ON_CLONE.with(|hooks| {
                *hooks[1].borrow_mut() = Some(Box::new(move || clock.advance(1_000)));
            });
        }));
    });
    let got = cache.get_or_insert_with(Hooked(1), || panic!("the value was there"));
    assert_eq!(got, Hooked(5));
    assert_eq!(cache.get(&Hooked(1)), None, "an expired value came back");
}

/// Lives one second from its first write: a new value keeps what the old one had left. Given a
/// clock, its first update moves it two seconds on as it decides: the old value expires
/// meanwhile.
#[derive(Default)]
struct KeepsItsDeadline {
    slow_first_update: Option<(MockClock, std::sync::atomic::AtomicBool)>,
}

impl Expiry<u64, u64> for KeepsItsDeadline {
    fn expire_after_create(&self, _: &u64, _: &u64, _: Instant) -> Option<Duration> {
        Some(Duration::from_secs(1))
    }

    fn expire_after_update(
        &self,
        _: &u64,
        _: &u64,
        _: Instant,
        remaining: Option<Duration>,
    ) -> Option<Duration> {
        if let Some((clock, moved)) = &self.slow_first_update
            && !moved.swap(true, Ordering::SeqCst)
        {
            clock.advance(2_000);
        }
        remaining
    }
}

/// A new value for a live key lives as `expire_after_update` says: by default its lifetime
/// starts again (`Lifetimes`, which does not override it), and an `Expiry` that returns what
/// was left keeps the old deadline, through `insert` and `compute` alike. A key whose value had
/// expired gets a new lifetime either way (`expire_after_create`).
#[test]
fn a_new_value_lives_as_expire_after_update_says() {
    let clock = MockClock::new();
    let restarts: Cache<u64, u64> = Cache::builder()
        .max_capacity(100)
        .expiry(Lifetimes {
            permanent_below: 0,
            lifetime: Duration::from_secs(1),
        })
        .clock(clock.clone())
        .build()
        .unwrap();
    let keeps: Cache<u64, u64> = Cache::builder()
        .max_capacity(100)
        .expiry(KeepsItsDeadline::default())
        .clock(clock.clone())
        .build()
        .unwrap();
    for cache in [&restarts, &keeps] {
        cache.insert(1, 1);
        cache.insert(2, 2);
    }
    clock.advance(600);
    for cache in [&restarts, &keeps] {
        cache.insert(1, 10);
        cache.compute(2, |v| Compute::Put(v.map_or(0, |v| v * 10)));
    }
    clock.advance(500);
    // 1.1 s after the first writes, 0.5 s after the second.
    assert_eq!((restarts.get(&1), restarts.get(&2)), (Some(10), Some(20)));
    assert_eq!(
        (keeps.get(&1), keeps.get(&2)),
        (None, None),
        "the old deadline was kept"
    );
    // Expired keys start over.
    keeps.insert(1, 100);
    clock.advance(900);
    assert_eq!(keeps.get(&1), Some(100));
}

/// An old value that expires while `expire_after_update` decides is not replaced with that
/// answer: the write reads the clock again, sees the key absent, and creates (before, the new
/// value took the old, passed deadline and was expired as soon as written).
#[test]
fn an_update_whose_old_value_expires_meanwhile_creates_instead() {
    let clock = MockClock::new();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&heard);
    let expiry = KeepsItsDeadline {
        slow_first_update: Some((clock.clone(), std::sync::atomic::AtomicBool::new(false))),
    };
    let cache: Cache<u64, u64> = Cache::builder()
        .max_capacity(100)
        .expiry(expiry)
        .clock(clock.clone())
        .eviction_listener(move |k: &u64, _: &u64, cause| log.lock().push((*k, cause)))
        .build()
        .unwrap();
    cache.insert(1, 1);
    clock.advance(500);
    cache.insert(1, 2);
    assert_eq!(cache.get(&1), Some(2), "the new value was written expired");
    assert_eq!(*heard.lock(), [(1, RemovalCause::Expired)]);
}

/// Counts its calls; every entry lives a minute, updates included.
struct CountingExpiry(std::sync::atomic::AtomicUsize);

impl Expiry<u64, u64> for CountingExpiry {
    fn expire_after_create(&self, _: &u64, _: &u64, _: Instant) -> Option<Duration> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Some(Duration::from_secs(60))
    }
}

/// Writers racing on a few keys of a cache with an `Expiry` (each insert a compare-and-swap
/// against the entry it looked at, retried when another write lands first): no write is lost
/// or stuck, every key ends with one of its writers' values, and the `Expiry` was asked at
/// least once per write.
#[test]
fn racing_inserts_with_an_expiry_all_land() {
    let expiry = Arc::new(CountingExpiry(std::sync::atomic::AtomicUsize::new(0)));
    let cache: Arc<Cache<u64, u64>> = Arc::new(
        Cache::builder()
            .max_capacity(100)
            .expiry(ArcExpiry(Arc::clone(&expiry)))
            .build()
            .unwrap(),
    );
    let writers: Vec<_> = (0..4u64)
        .map(|t| {
            let cache = Arc::clone(&cache);
            std::thread::spawn(move || {
                for i in 0..2_000u64 {
                    cache.insert(i % 4, t * 10_000 + i);
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    for k in 0..4u64 {
        let v = cache.get(&k).expect("a key lost every write");
        assert_eq!(v % 10_000 % 4, k, "key {k} holds another key's value {v}");
    }
    assert!(expiry.0.load(Ordering::SeqCst) >= 8_000);
}

/// An `Expiry` shared with the test.
struct ArcExpiry(Arc<CountingExpiry>);

impl Expiry<u64, u64> for ArcExpiry {
    fn expire_after_create(&self, k: &u64, v: &u64, now: Instant) -> Option<Duration> {
        self.0.expire_after_create(k, v, now)
    }
}
