//! `shardkit cache sim`: a trace's hit ratio at several capacities, for this crate's cache next to
//! exact LRU and Belady's optimal policy.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use shardkit_cache::sim::{Simulation, read_trace};

/// Cache commands.
#[derive(Debug, Subcommand)]
pub(crate) enum CacheCommand {
    /// Runs an access trace through the cache at several capacities and prints its hit ratio
    /// next to LRU's and the optimal policy's (OPT), to size a cache on your own access logs.
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
    capacity: Vec<usize>,
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
    let distinct = keys.iter().collect::<std::collections::HashSet<_>>().len();
    let capacities = if args.capacity.is_empty() {
        vec![
            (distinct / 4).max(1),
            (distinct / 2).max(1),
            (distinct * 3 / 4).max(1),
        ]
    } else {
        args.capacity.clone()
    };
    println!(
        "{}: {} accesses, {distinct} distinct keys",
        args.trace.display(),
        keys.len()
    );
    println!(
        "{:>10}  {:>8}  {:>8}  {:>8}",
        "capacity", "shardkit", "LRU", "OPT"
    );
    let sim = Simulation::new(&keys);
    for capacity in capacities {
        let r = sim.run(capacity);
        println!(
            "{capacity:>10}  {:>8.4}  {:>8.4}  {:>8.4}",
            r.cache, r.lru, r.opt
        );
    }
    Ok(())
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
