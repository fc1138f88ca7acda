//! Deterministic simulation of the replication protocol: replicas, a coordinator and
//! idempotent clients on a seeded, faulty network (loss, delay, duplication, reordering,
//! partitions), with paused "zombie" leaders, crashes that lose the unsynced tail, wiped
//! disks, forced failovers and coordinator restarts (their epoch count lost), and for a third
//! of the seeds a largest packet (512 bytes to 8 KiB) that every message must fit. The
//! invariants are checked after every step.
//!
//! `SHARDKIT_SIM_SEEDS` (how many) and `SHARDKIT_SIM_SEED_START` (the first) choose the seeds;
//! a failing seed is printed with the command that replays it alone.

use std::time::Duration;

mod disk;
mod rng;
mod sim;
#[path = "../support/mod.rs"]
mod support;

use sim::{Sim, Stats};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn seeded_simulations_keep_every_invariant() {
    // CI runs both: a quick pass in debug (with overflow checks) and thousands in release.
    let default_seeds = if cfg!(debug_assertions) { 300 } else { 5000 };
    let seeds = env_u64("SHARDKIT_SIM_SEEDS", default_seeds);
    let start = env_u64("SHARDKIT_SIM_SEED_START", 0);
    let mut total = Stats::default();
    for seed in start..start + seeds {
        let stats = Sim::new(seed).run(Duration::from_secs(6), Duration::from_secs(4));
        total.acked += stats.acked;
        total.failovers += stats.failovers;
        total.coordinator_restarts += stats.coordinator_restarts;
        total.multi_part_snapshots += stats.multi_part_snapshots;
    }
    println!(
        "{seeds} seeds from {start}: {} writes acknowledged at quorum or all, {} failovers, \
         {} coordinator restarts, {} snapshots delivered in several parts",
        total.acked, total.failovers, total.coordinator_restarts, total.multi_part_snapshots
    );
    // The invariants are only worth something if the runs did work.
    assert!(
        total.acked as u64 >= seeds * 20,
        "too few writes acknowledged: {total:?}"
    );
    assert!(total.failovers >= seeds, "too few failovers: {total:?}");
    assert!(
        total.coordinator_restarts >= seeds / 4,
        "too few coordinator restarts: {total:?}"
    );
    assert!(
        total.multi_part_snapshots >= seeds / 10,
        "too few snapshots sent in parts: {total:?}"
    );
}

/// Seeds that once broke an invariant, each with what it caught.
const ONCE_FAILED: &[u64] = &[
    // Found in a run of 300,000 seeds from 10,000,000: a replica whose disk was wiped took a
    // `Follow` for epoch 6 that had been sent to its previous run, although that run had
    // promised epoch 7; with its acknowledgements the paused epoch-6 leader, on resuming,
    // completed quorum writes that the next failover (to the epoch-7 log) lost.
    10_022_694,
    // Found in a run of 1,000,000 seeds from 60,000,000: a leader compacted its log, and sent
    // a snapshot, with the producers' writes before the cut only for producers whose latest
    // write was before it. A producer whose acknowledged write was cut away, and whose later
    // (uncommitted) writes were not, was left out; a follower that installed the snapshot,
    // promoted once those later writes were cut, appended a retry of the acknowledged write
    // again.
    60_695_171,
];

/// Replays [`ONCE_FAILED`] on every run (each alone, without the aggregate's minimum of work
/// done).
#[test]
fn seeds_that_once_failed_stay_fixed() {
    for &seed in ONCE_FAILED {
        Sim::new(seed).run(Duration::from_secs(6), Duration::from_secs(4));
    }
}
