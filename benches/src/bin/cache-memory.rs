//! `cache-memory NAME`: fills one competitor's cache of 1,000,000 entries under a counting
//! allocator and prints `fill steady`: live heap bytes per resident entry after 1,000,000
//! distinct keys, and after 2,000,000 more (steady state). Run by `compare cache`, one process
//! per cache.

use std::alloc::System;

use cap::Cap;
use shardkit_benches::caches::{
    BenchCache, MiniMoka, Moka, MutexLru, QuickCache, Shardkit, scramble,
};

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

const CAPACITY: u64 = 1_000_000;

fn per_entry<C: BenchCache>(cache: &C, base: usize) -> f64 {
    cache.settle();
    std::thread::sleep(std::time::Duration::from_millis(200));
    cache.settle();
    (ALLOCATOR.allocated() - base) as f64 / cache.resident().max(1) as f64
}

fn measure<C: BenchCache>() -> (f64, f64) {
    let base = ALLOCATOR.allocated();
    let cache = C::with_capacity(CAPACITY as usize);
    for k in 0..CAPACITY {
        cache.access(scramble(k));
    }
    let fill = per_entry(&cache, base);
    for k in CAPACITY..3 * CAPACITY {
        cache.access(scramble(k));
    }
    let steady = per_entry(&cache, base);
    std::hint::black_box(&cache);
    (fill, steady)
}

fn main() -> std::process::ExitCode {
    let name = std::env::args().nth(1).unwrap_or_default();
    let m = match name.as_str() {
        n if n == Shardkit::NAME => measure::<Shardkit>(),
        n if n == QuickCache::NAME => measure::<QuickCache>(),
        n if n == MutexLru::NAME => measure::<MutexLru>(),
        n if n == MiniMoka::NAME => measure::<MiniMoka>(),
        n if n == Moka::NAME => measure::<Moka>(),
        other => {
            eprintln!("usage: cache-memory NAME (unknown cache {other:?})");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("{:.1} {:.1}", m.0, m.1);
    std::process::ExitCode::SUCCESS
}
