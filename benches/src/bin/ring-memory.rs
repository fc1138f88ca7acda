//! `ring-memory NAME NODES VNODES`: builds one competitor's ring under a counting allocator and
//! prints `live_bytes peak_bytes points` (points 0 for algorithms without them). Run by
//! `compare ring`, one process per competitor so each peak is its own.

use std::alloc::System;

use cap::Cap;
use shardkit_benches::rings::{
    AnchorHashCrate, ConsistentHashRing, HashRingsCrate, HashringCrate, JumpCrate, MaglevCrate,
    Ring, Shardkit,
};

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// `(live bytes, peak bytes, points)` of building `R`.
fn measure<R: Ring>(nodes: u32, vnodes: u32) -> (usize, usize, u64) {
    let base = ALLOCATOR.allocated();
    let ring = R::build(nodes, vnodes);
    let live = ALLOCATOR.allocated() - base + std::mem::size_of::<R>();
    // Nothing before the build allocated much, so the process's peak is the build's.
    let peak = ALLOCATOR.max_allocated() - base;
    std::hint::black_box(&ring);
    let points = if R::VNODES {
        u64::from(nodes) * u64::from(vnodes)
    } else {
        0
    };
    (live, peak, points)
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let parsed = match &args[..] {
        [_, name, nodes, vnodes] => nodes
            .parse()
            .ok()
            .zip(vnodes.parse().ok())
            .map(|nv| (name.as_str(), nv)),
        _ => None,
    };
    let Some((name, (nodes, vnodes))) = parsed else {
        eprintln!("usage: ring-memory NAME NODES VNODES");
        return std::process::ExitCode::FAILURE;
    };
    let m = match name {
        n if n == Shardkit::NAME => measure::<Shardkit>(nodes, vnodes),
        n if n == HashringCrate::NAME => measure::<HashringCrate>(nodes, vnodes),
        n if n == ConsistentHashRing::NAME => measure::<ConsistentHashRing>(nodes, vnodes),
        n if n == HashRingsCrate::NAME => measure::<HashRingsCrate>(nodes, vnodes),
        n if n == AnchorHashCrate::NAME => measure::<AnchorHashCrate>(nodes, vnodes),
        n if n == MaglevCrate::NAME => measure::<MaglevCrate>(nodes, vnodes),
        n if n == JumpCrate::NAME => measure::<JumpCrate>(nodes, vnodes),
        other => {
            eprintln!("unknown ring {other:?}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("{} {} {}", m.0, m.1, m.2);
    std::process::ExitCode::SUCCESS
}
