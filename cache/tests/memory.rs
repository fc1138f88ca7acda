//! `memory_used` against a counting allocator: the estimate is what the cache really holds,
//! filling and at steady state, by entry count and by weight. Its own test binary, with one
//! test, so no other test's allocations are counted.

use std::alloc::System;

use cap::Cap;
use shardkit_cache::Cache;

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// Bytes allocated since `base`, once what the cache released is freed.
fn allocated_since(base: usize) -> usize {
    // Frees what the epochs hold back (no other thread is pinned here).
    Cache::<u8, u8>::new(1).run_pending_tasks();
    ALLOCATOR.allocated() - base
}

/// `estimate` is within 2% of `real`.
fn close(estimate: usize, real: usize, what: &str) {
    let (e, r) = (estimate as f64, real as f64);
    assert!(
        (e - r).abs() <= r * 0.02,
        "{what}: estimated {estimate} bytes, allocated {real}"
    );
}

#[test]
fn the_estimate_matches_what_was_allocated() {
    // This thread's epoch registration and the collector's own, allocated once.
    Cache::<u8, u8>::new(1).insert(1, 1);
    let base = ALLOCATOR.allocated();
    let cache = Cache::new(100_000);
    for k in 0..100_000u64 {
        cache.insert(k.wrapping_mul(0x9e37_79b9_7f4a_7c15), k);
    }
    close(cache.memory_used(), allocated_since(base), "filled");
    for k in 100_000..400_000u64 {
        cache.insert(k.wrapping_mul(0x9e37_79b9_7f4a_7c15), k);
    }
    close(cache.memory_used(), allocated_since(base), "steady state");
    drop(cache);

    let base = ALLOCATOR.allocated();
    let weighted = Cache::builder()
        .max_weight(200_000, |k: &u64, _: &u64| 1 + (*k % 3) as u32)
        .build()
        .unwrap();
    for k in 0..300_000u64 {
        weighted.insert(k.wrapping_mul(0x9e37_79b9_7f4a_7c15), k);
    }
    close(weighted.memory_used(), allocated_since(base), "by weight");
}
