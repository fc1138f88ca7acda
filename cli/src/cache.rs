//! `shardkit cache sim`: a trace's hit ratio at several capacities, for this crate's cache next to
//! exact LRU and Belady's optimal policy.

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::num::NonZeroUsize;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use shardkit_cache::sim::{SimOptions, Simulation, read_trace};

/// Cache commands.
#[derive(Debug, Subcommand)]
pub(crate) enum CacheCommand {
    /// Runs an access trace through the cache at several capacities and prints its hit ratio
    /// next to LRU's and the optimal policy's (OPT, with bypass: the bound for any policy), to
    /// size a cache on your own access logs. The cache is built as `Cache::new` builds it on
    /// this machine (its default shard count, printed with each row) unless `--shards` says
    /// otherwise, and hashes with a fixed seed, so a run repeats exactly; on a short trace,
    /// other `--seed`s show how much the ratio moves with the hasher's seed.
    Sim(SimArgs),
}

/// Arguments of `cache sim`.
#[derive(Debug, Args)]
pub(crate) struct SimArgs {
    /// The trace: one key per line, as an unsigned decimal integer; gzip-compressed or plain.
    #[arg(long)]
    trace: PathBuf,
    /// Capacities to try, in entries (default: 25%, 50% and 75% of the trace's distinct keys).
    #[arg(long, num_args = 1..)]
    capacity: Vec<NonZeroUsize>,
    /// Shards of the simulated cache, a power of two (default: what a cache of each capacity
    /// gets on this machine).
    #[arg(long)]
    shards: Option<usize>,
    /// Seed of the simulated cache's hasher.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub(crate) fn run(cmd: &CacheCommand) -> Result<(), String> {
    let CacheCommand::Sim(args) = cmd;
    let keys = load(&args.trace)?;
    if keys.is_empty() {
        return Err(format!(
            "{}: the trace has no accesses",
            args.trace.display()
        ));
    }
    let sim = Simulation::new(&keys);
    let distinct = sim.distinct();
    let capacities: Vec<usize> = if args.capacity.is_empty() {
        let mut quarters: Vec<usize> = [1, 2, 3].map(|q| (distinct * q / 4).max(1)).into();
        quarters.dedup();
        quarters
    } else {
        args.capacity.iter().map(|c| c.get()).collect()
    };
    let mut options = SimOptions::default().seed(args.seed);
    options.shards = args.shards;
    // All rows first, so a bad option prints nothing but its error.
    let results = capacities
        .into_iter()
        .map(|capacity| sim.run_with(capacity, &options))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--shards: {e}"))?;
    let mut out = format!(
        "{}: {} accesses, {distinct} distinct keys\n{:>10}  {:>8}  {:>8}  {:>8}  {:>6}\n",
        args.trace.display(),
        keys.len(),
        "capacity",
        "shardkit",
        "LRU",
        "OPT",
        "shards"
    );
    for r in results {
        out += &format!(
            "{:>10}  {:>8.4}  {:>8.4}  {:>8.4}  {:>6}\n",
            r.capacity, r.cache, r.lru, r.opt, r.shards
        );
    }
    // A reader that stops early (`| head`) is not an error; `println!` would panic on it.
    match std::io::stdout().lock().write_all(out.as_bytes()) {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => Err(format!("writing the table: {e}")),
        _ => Ok(()),
    }
}

/// Reads a trace file, decompressing it if it starts with gzip's magic bytes.
fn load(path: &PathBuf) -> Result<Vec<u64>, String> {
    let describe = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let mut file = BufReader::new(File::open(path).map_err(|e| describe(&e))?);
    let gzip = file
        .fill_buf()
        .map_err(|e| describe(&e))?
        .starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read> = if gzip {
        // Every member: rotated logs are often gzip files concatenated.
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    read_trace(BufReader::new(reader)).map_err(|e| describe(&e))
}
