//! `cache-profile`: one cache on one workload of `compare cache`'s throughput or atomic-update
//! table, alone in its process, for a profiler. Wall-clock rates on this machine move by tens
//! of percent from run to run, so small changes are judged by instruction counts instead,
//! which repeat:
//!
//! ```text
//! cargo build --release -p shardkit-benches --bin cache-profile
//! valgrind --tool=cachegrind --cache-sim=no target/release/cache-profile shardkit misses
//! perf record target/release/cache-profile shardkit get-or-insert --zipf 0.7
//! ```
//!
//! Each round builds a fresh cache of 100,000 entries, warms it as the table does, and prints
//! the million operations per second of the timed part.

use clap::{Parser, ValueEnum};
use shardkit_benches::caches::{
    BenchCache, BenchCompute, MiniMoka, Moka, MutexLru, QuickCache, Shardkit, ShardkitWeighted,
    compute_throughput, scramble, throughput, zipf_stream,
};

/// The cache to run.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Which {
    Shardkit,
    /// Ours bounded by weight, each entry weighing 1.
    ShardkitWeighted,
    QuickCache,
    Moka,
    MiniMoka,
    MutexLru,
}

/// The workload.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Workload {
    /// `get`, and `insert` on a miss, keys from Zipf over 1,000,000 keys, after 1,000,000
    /// such accesses.
    GetOrInsert,
    /// `get` of 50,000 resident keys, Zipf over those keys.
    Hits,
    /// `insert` after a missed `get`, every key new, into a cache filled as for get-or-insert:
    /// every operation evicts.
    Misses,
    /// An atomic update adding one to the key's count, keys as for get-or-insert (all but
    /// mini-moka, which has no such call).
    Compute,
}

/// One cache, one workload, for a profiler.
#[derive(Debug, Parser)]
struct Args {
    /// The cache.
    #[arg(value_enum)]
    cache: Which,
    /// The workload.
    #[arg(value_enum)]
    workload: Workload,
    /// The Zipf exponent of the keys.
    #[arg(long, default_value_t = 0.99)]
    zipf: f64,
    /// Threads, each with its own stream.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Operations per thread per round.
    #[arg(long, default_value_t = 2_000_000)]
    ops: usize,
    /// Rounds.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
}

const CAPACITY: usize = 100_000;

fn main() {
    let args = Args::parse();
    let keyspace = match args.workload {
        Workload::Hits => 50_000,
        Workload::GetOrInsert | Workload::Misses | Workload::Compute => 1_000_000,
    };
    let warm: Vec<u64> = match args.workload {
        Workload::Hits => (0..keyspace).map(scramble).collect(),
        Workload::GetOrInsert | Workload::Misses | Workload::Compute => {
            zipf_stream(1_000_000, keyspace, args.zipf, 99, 0)
        }
    };
    let streams: Vec<Vec<u64>> = (0..args.threads as u64)
        .map(|t| match args.workload {
            // Ranks past the warm-up's keyspace: never seen before.
            Workload::Misses => (0..args.ops as u64)
                .map(|i| scramble(((t + 1) << 40) | i))
                .collect(),
            Workload::GetOrInsert | Workload::Hits | Workload::Compute => {
                zipf_stream(args.ops, keyspace, args.zipf, 10 + t, 0)
            }
        })
        .collect();
    let get_only = matches!(args.workload, Workload::Hits);
    let compute = matches!(args.workload, Workload::Compute);
    for _ in 0..args.rounds {
        let (name, rate) = match args.cache {
            Which::Shardkit if compute => (Shardkit::NAME, update::<Shardkit>(&warm, &streams)),
            Which::ShardkitWeighted if compute => (
                ShardkitWeighted::NAME,
                update::<ShardkitWeighted>(&warm, &streams),
            ),
            Which::QuickCache if compute => {
                (QuickCache::NAME, update::<QuickCache>(&warm, &streams))
            }
            Which::Moka if compute => (Moka::NAME, update::<Moka>(&warm, &streams)),
            Which::MutexLru if compute => (MutexLru::NAME, update::<MutexLru>(&warm, &streams)),
            other if compute => {
                eprintln!("cache-profile: {other:?} has no atomic update of one key");
                std::process::exit(2);
            }
            Which::Shardkit => (Shardkit::NAME, run::<Shardkit>(&warm, &streams, get_only)),
            Which::ShardkitWeighted => (
                ShardkitWeighted::NAME,
                run::<ShardkitWeighted>(&warm, &streams, get_only),
            ),
            Which::QuickCache => (
                QuickCache::NAME,
                run::<QuickCache>(&warm, &streams, get_only),
            ),
            Which::Moka => (Moka::NAME, run::<Moka>(&warm, &streams, get_only)),
            Which::MiniMoka => (MiniMoka::NAME, run::<MiniMoka>(&warm, &streams, get_only)),
            Which::MutexLru => (MutexLru::NAME, run::<MutexLru>(&warm, &streams, get_only)),
        };
        println!("{name} {rate:.2}");
    }
}

fn run<C: BenchCache>(warm: &[u64], streams: &[Vec<u64>], get_only: bool) -> f64 {
    throughput::<C>(CAPACITY, warm, streams, get_only)
}

fn update<C: BenchCompute>(warm: &[u64], streams: &[Vec<u64>]) -> f64 {
    compute_throughput::<C>(CAPACITY, warm, streams)
}
