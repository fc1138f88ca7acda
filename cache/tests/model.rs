//! Random sequences of operations (`compute` among them), with a mock clock moving under a time
//! to live, a time to idle or a per-entry expiry (one keeping a replaced value's deadline among
//! them), agree with a `HashMap` model: with room for
//! every key the cache holds exactly what the model does; with less, it holds a subset (values
//! always the model's, and an evicted key never comes back on its own), within its capacity, in
//! entries or in weight, also after `set_capacity` moves it between the two; an expired entry
//! is never returned.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use shardkit_cache::{Cache, Clock, Compute, Expiry};

/// A clock the test moves.
#[derive(Clone)]
struct MockClock(Instant, Arc<AtomicU64>);

impl Clock for MockClock {
    fn now(&self) -> Instant {
        self.0 + Duration::from_millis(self.1.load(Ordering::SeqCst))
    }
}

/// An entry's life, when the case limits it: from its insert (time to live), or from its last
/// insert or read (time to idle).
const LIFE_MS: u64 = 100;

/// A per-entry expiry: a value divisible by 4 lives for ever, others from their insert for 10
/// to 130 ms, by key; reads leave the deadline alone.
struct ByEntry;

impl ByEntry {
    fn life_ms(key: u8, value: u32) -> Option<u64> {
        (!value.is_multiple_of(4)).then(|| 10 + u64::from(key % 5) * 30)
    }
}

impl Expiry<u8, u32> for ByEntry {
    fn expire_after_create(&self, key: &u8, value: &u32, _: Instant) -> Option<Duration> {
        Self::life_ms(*key, *value).map(Duration::from_millis)
    }
}

/// [`ByEntry`] for new keys; a new value for a live key keeps the old deadline (moka's
/// default for updates).
struct KeepsDeadline;

impl Expiry<u8, u32> for KeepsDeadline {
    fn expire_after_create(&self, key: &u8, value: &u32, now: Instant) -> Option<Duration> {
        ByEntry.expire_after_create(key, value, now)
    }

    fn expire_after_update(
        &self,
        _: &u8,
        _: &u32,
        _: Instant,
        remaining: Option<Duration>,
    ) -> Option<Duration> {
        remaining
    }
}

/// How entries expire in a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    Forever,
    ToLive,
    ToIdle,
    ByEntry,
    /// [`KeepsDeadline`].
    KeepsDeadline,
}

impl Life {
    /// The deadline (ms) of `key` given `value` at `now`, or `None` for none.
    fn deadline(self, key: u8, value: u32, now: u64) -> Option<u64> {
        match self {
            Life::Forever => None,
            Life::ToLive | Life::ToIdle => Some(now + LIFE_MS),
            Life::ByEntry | Life::KeepsDeadline => ByEntry::life_ms(key, value).map(|ms| now + ms),
        }
    }

    /// The deadline (ms) of a new value `value` for `key` at `now`, given the key's deadline
    /// in the model, if the cache held it live (`old`, `Some(None)` for no deadline).
    fn written(self, key: u8, value: u32, now: u64, old: Option<Option<u64>>) -> Option<u64> {
        match (self, old) {
            (Life::KeepsDeadline, Some(deadline)) => deadline,
            _ => self.deadline(key, value, now),
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Get(u8),
    Insert(u8, u32),
    Remove(u8),
    /// `compute` adding to the value, removing one divisible by 3 or keeping one divisible
    /// by 5 (see [`computed`]).
    Compute(u8, u32),
    Retain(u8),
    Clear,
    Advance(u64),
    /// `set_capacity`: to a few entries' room (`true`) or to room for every key.
    Resize(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u8..24).prop_map(Op::Get),
        8 => (0u8..24, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
        2 => (0u8..24).prop_map(Op::Remove),
        4 => (0u8..24, any::<u32>()).prop_map(|(k, v)| Op::Compute(k, v)),
        1 => (1u8..5).prop_map(Op::Retain),
        1 => Just(Op::Clear),
        3 => (1u64..60).prop_map(Op::Advance),
        1 => any::<bool>().prop_map(Op::Resize),
    ]
}

/// What `Op::Compute(_, add)` does with a value: removes one divisible by 3, keeps one
/// divisible by 5, adds `add` to others; an absent key starts at `add` if that is even.
fn computed(old: Option<u32>, add: u32) -> Compute<u32> {
    match old {
        Some(v) if v.is_multiple_of(3) => Compute::Remove,
        Some(v) if v.is_multiple_of(5) => Compute::Keep,
        Some(v) => Compute::Put(v.wrapping_add(add)),
        None if add.is_multiple_of(2) => Compute::Put(add),
        None => Compute::Keep,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(debug_assertions) { 64 } else { 512 }))]

    #[test]
    fn the_cache_agrees_with_a_map(ops in prop::collection::vec(op(), 1..300), roomy in any::<bool>(), shards in 0u32..3, life in prop_oneof![Just(Life::Forever), Just(Life::ToLive), Just(Life::ToIdle), Just(Life::ByEntry), Just(Life::KeepsDeadline)], weighted in any::<bool>()) {
        // Bounded by weight, key `k` weighs 1 to 3; room for every key is then three times as
        // much.
        let most = if weighted { 3 } else { 1 };
        let room = 24 * most * (1 << shards) * 4;
        let (mut capacity, mut roomy) = (if roomy { room } else { 6 }, roomy);
        let clock = MockClock(Instant::now(), Arc::new(AtomicU64::new(0)));
        let builder = Cache::builder().shards(1 << shards).clock(clock.clone());
        let mut builder = if weighted {
            builder.max_weight(capacity, |k: &u8, _: &u32| 1 + u32::from(*k % 3))
        } else {
            builder.max_capacity(capacity)
        };
        let life_span = Duration::from_millis(LIFE_MS);
        match life {
            Life::Forever => {}
            Life::ToLive => builder = builder.time_to_live(life_span),
            Life::ToIdle => builder = builder.time_to_idle(life_span),
            Life::ByEntry => builder = builder.expiry(ByEntry),
            Life::KeepsDeadline => builder = builder.expiry(KeepsDeadline),
        }
        let cache = builder.build().unwrap();
        // Value, and when it expires (ms), if it does.
        let mut model: HashMap<u8, (u32, Option<u64>)> = HashMap::new();
        let now = || clock.1.load(Ordering::SeqCst);
        for op in ops {
            let t = now();
            model.retain(|_, (_, deadline)| deadline.is_none_or(|d| t < d));
            match op {
                Op::Advance(ms) => {
                    clock.1.fetch_add(ms, Ordering::SeqCst);
                }
                Op::Get(k) => {
                    let got = cache.get(&k);
                    match (got, model.get(&k).map(|&(v, _)| v)) {
                        (Some(v), Some(m)) => {
                            prop_assert_eq!(v, m);
                            if life == Life::ToIdle {
                                model.insert(k, (v, life.deadline(k, v, now())));
                            }
                        }
                        (None, Some(_)) => {
                            // Evicted: allowed only when the cache is short of room.
                            prop_assert!(!roomy, "key {} lost with room to spare", k);
                            model.remove(&k);
                        }
                        (Some(v), None) => prop_assert!(false, "key {} came back with {}", k, v),
                        (None, None) => {}
                    }
                }
                Op::Insert(k, v) => {
                    // Whether the new value replaces a live one (short of room, the cache may
                    // have evicted a key the model still holds).
                    let old = cache.contains_key(&k).then(|| model.get(&k).map(|&(_, d)| d));
                    prop_assert!(old != Some(None), "key {} held by the cache only", k);
                    cache.insert(k, v);
                    model.insert(k, (v, life.written(k, v, now(), old.flatten())));
                }
                Op::Remove(k) => {
                    let got = cache.remove(&k);
                    let expected = model.remove(&k).map(|(v, _)| v);
                    if roomy {
                        prop_assert_eq!(got, expected);
                    } else if let Some(v) = got {
                        prop_assert_eq!(Some(v), expected);
                    }
                }
                Op::Compute(k, add) => {
                    let mut seen = None;
                    let answer = cache.compute(k, |old| {
                        seen = Some(old.copied());
                        computed(old.copied(), add)
                    });
                    let seen = seen.expect("compute ran its function");
                    // Shown the model's value, or (short of room) nothing, the key evicted.
                    let expected = model.get(&k).map(|&(v, _)| v);
                    if roomy || seen.is_some() {
                        prop_assert_eq!(seen, expected);
                    }
                    match computed(seen, add) {
                        Compute::Put(v) => {
                            prop_assert_eq!(answer, Some(v));
                            let old = seen.and_then(|_| model.get(&k).map(|&(_, d)| d));
                            model.insert(k, (v, life.written(k, v, now(), old)));
                        }
                        Compute::Remove => {
                            prop_assert_eq!(answer, None);
                            model.remove(&k);
                        }
                        // Nothing written: an evicted key stays out of the cache too.
                        Compute::Keep => {
                            prop_assert_eq!(answer, seen);
                            if seen.is_none() {
                                model.remove(&k);
                            }
                        }
                    }
                }
                Op::Retain(m) => {
                    cache.retain(|k, _| k % m != 0);
                    model.retain(|k, _| k % m != 0);
                }
                Op::Clear => {
                    cache.clear();
                    model.clear();
                }
                Op::Resize(tight) => {
                    let was_tight = !roomy;
                    (capacity, roomy) = if tight { (6, false) } else { (room, true) };
                    cache.set_capacity(capacity);
                    prop_assert_eq!(cache.capacity(), capacity);
                    if tight || was_tight {
                        // Short of room, the cache may have evicted any key, now or before
                        // (the model learns of an eviction only when it reads the key): the
                        // model forgets those the cache let go. Grown to room for every key,
                        // it must keep the rest from here on.
                        model.retain(|k, _| cache.contains_key(k));
                    }
                }
            }
            prop_assert!(cache.len() as u64 <= capacity);
            if weighted {
                // Summed here from what the cache returns, not only taken from its own count
                // (which also counts expired entries not yet reclaimed).
                let held: u64 = cache.iter().map(|(k, _)| 1 + u64::from(k % 3)).sum();
                prop_assert!(held <= capacity, "{} held, capacity {}", held, capacity);
                prop_assert!(cache.weighted_size() <= capacity);
                if life == Life::Forever {
                    prop_assert_eq!(cache.weighted_size(), held);
                }
            }
            let t = now();
            model.retain(|_, (_, deadline)| deadline.is_none_or(|d| t < d));
            if roomy && life == Life::Forever {
                prop_assert_eq!(cache.len(), model.len());
            }
            for (k, v) in cache.iter() {
                prop_assert_eq!(model.get(&k).map(|&(v, _)| v), Some(v));
            }
        }
    }
}
