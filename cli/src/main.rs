//! `shardkit`: demonstrates and operates the shardkit crates.
//!
//! `shardkit demo` runs the crates together as a sharded, replicated, cached key-value service
//! (`shardkit node` processes) and proves it keeps every acknowledged write through a node
//! being killed; `shardkit tour` shows each crate alone. Run `shardkit --help` for every
//! command.

mod cache;
mod kv;
mod log;
mod member;
mod page;
mod ports;
mod replicate;
mod ring;
mod tour;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Sharding, replication, caching and pagination building blocks for scaled-out services.
#[derive(Debug, Parser)]
#[command(name = "shardkit", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The main job: a sharded, replicated, cached key-value service started on this machine,
    /// a workload, a node killed and restarted, every acknowledged write verified.
    Demo(kv::demo::DemoArgs),
    /// A short tour of each crate on its own, with real figures computed as it runs.
    Tour(tour::TourArgs),
    /// One node of the sharded, replicated key-value service (HTTP/JSON).
    Node(kv::node::NodeArgs),
    /// The failover coordinators of every slot of a `shardkit node` cluster.
    Coordinators(kv::node::CoordinatorsArgs),
    /// Load per node for a ring, and what adding or removing nodes moves.
    Ring(ring::RingArgs),
    /// The replicated log: durable log tools, and replicas, a coordinator and clients over TCP.
    #[command(subcommand)]
    Log(log::LogCommand),
    /// The cache: hit-ratio simulation on access traces.
    #[command(subcommand)]
    Cache(cache::CacheCommand),
    /// Cursor pagination: offset vs keyset paging, on one collection and merged shards.
    #[command(subcommand)]
    Page(page::PageCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => kv::demo::run(&args),
        Command::Tour(args) => tour::run(&args),
        Command::Ring(args) => ring::run(&args),
        Command::Page(cmd) => page::run(&cmd),
        Command::Log(cmd) => log::run(&cmd),
        Command::Node(args) => kv::node::run(&args),
        Command::Coordinators(args) => kv::node::coordinate(&args),
        Command::Cache(cmd) => cache::run(&cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
