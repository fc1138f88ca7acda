//! `shardkit`: demonstrates and operates the shardkit crates.
//!
//! `shardkit demo` tours the crates; `shardkit ring` measures a ring's balance and what a
//! membership change moves. Run `shardkit --help` for every command.

mod cache;
mod demo;
mod kv;
mod log;
mod page;
mod replicate;
mod ring;

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
    /// A short tour of the crates, with real figures computed as it runs.
    Demo(demo::DemoArgs),
    /// The sharded, replicated, cached key-value service on this machine, with chaos.
    Service(kv::demo::DemoArgs),
    /// One node of the sharded, replicated key-value service (HTTP/JSON).
    Node(kv::node::NodeArgs),
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
        Command::Demo(args) => demo::run(&args),
        Command::Ring(args) => ring::run(&args),
        Command::Page(cmd) => page::run(&cmd),
        Command::Log(cmd) => log::run(&cmd),
        Command::Node(args) => kv::node::run(&args),
        Command::Service(args) => kv::demo::run(&args),
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
