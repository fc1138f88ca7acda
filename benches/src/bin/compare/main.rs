//! `compare`: measures shardkit's crates against their peers side by side in one process and
//! prints Markdown tables of medians and ratios. Run it with
//! `cargo run --release -p shardkit-benches --bin compare -- ring`.

mod cache;
mod log;
mod page;
mod replication;
mod ring;

use std::io::Write as _;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Side-by-side comparisons with peer crates.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    suite: Suite,
    /// Also write the report to this file.
    #[arg(long, global = true)]
    out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Suite {
    /// Consistent-hashing rings: lookup, build, add/remove, memory, balance, movement.
    Ring(ring::RingArgs),
    /// Pagination: keyset vs offset page cost by depth, cursor codec cost, merged shards.
    Page(page::PageArgs),
    /// The durable log against this machine's raw disk limits, okaywal and commitlog.
    Log(log::LogArgs),
    /// The cache against moka, quick_cache and mini-moka: hit ratios (with LRU and OPT).
    Cache(cache::CacheArgs),
    /// Replication over loopback TCP against the machine's bandwidth, round trip and sync.
    Replication(replication::ReplicationArgs),
}

/// What the report says about where it ran.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{cores} cores, {cpu}; {} {}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let mut report = format!("Machine: {}\n\n", machine());
    let result = match &cli.suite {
        Suite::Ring(args) => ring::run(args, &mut report),
        Suite::Page(args) => page::run(args, &mut report),
        Suite::Log(args) => log::run(args, &mut report),
        Suite::Cache(args) => cache::run(args, &mut report),
        Suite::Replication(args) => replication::run(args, &mut report),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        return std::process::ExitCode::FAILURE;
    }
    print!("{report}");
    if let Some(path) = &cli.out {
        let written = std::fs::File::create(path).and_then(|mut f| f.write_all(report.as_bytes()));
        if let Err(e) = written {
            eprintln!("error: cannot write {}: {e}", path.display());
            return std::process::ExitCode::FAILURE;
        }
    }
    std::process::ExitCode::SUCCESS
}
