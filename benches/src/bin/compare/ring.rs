//! The ring suite. Workloads are defined in `benches/README.md`; every competitor runs
//! interleaved with the others in each round, and tables report the median over rounds.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::process::Command;
use std::time::Instant;

use clap::Args;
use shardkit_benches::keys::RingKeys;
use shardkit_benches::rings::{
    AnchorHashCrate, ConsistentHashRing, HashRingsCrate, HashringCrate, JumpCrate, MaglevCrate,
    Ring, Shardkit,
};
use shardkit_benches::stats::{balance, median};

/// Arguments of the ring suite.
#[derive(Debug, Args)]
pub(crate) struct RingArgs {
    /// Interleaved rounds per measurement; tables show the median.
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Lookups per competitor per round.
    #[arg(long, default_value_t = 200_000)]
    window: usize,
    /// Keys for the balance and movement tables.
    #[arg(long, default_value_t = 1_000_000)]
    keys: usize,
    /// Virtual nodes per node for the crates that have them.
    #[arg(long, default_value_t = 160)]
    vnodes: u32,
    /// Memberships each balance figure is averaged over (node ids shifted by 1001 each time).
    #[arg(long, default_value_t = 16)]
    memberships: u32,
    /// Only these tables (lookup, replicas, churn, memory, balance, movement); default all.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

impl RingArgs {
    fn wants(&self, table: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|t| t == table)
    }
}

/// Node counts of the lookup, balance and movement tables.
const SIZES: [u32; 3] = [10, 100, 1000];

/// Every competitor's name, in table order.
fn names() -> Vec<&'static str> {
    vec![
        Shardkit::NAME,
        HashringCrate::NAME,
        ConsistentHashRing::NAME,
        HashRingsCrate::NAME,
        AnchorHashCrate::NAME,
        MaglevCrate::NAME,
        JumpCrate::NAME,
    ]
}

/// Calls `$f::<R>($args)` for every competitor, in [`names`] order.
macro_rules! each_ring {
    ($f:ident($($arg:expr),*)) => {
        vec![
            $f::<Shardkit>($($arg),*),
            $f::<HashringCrate>($($arg),*),
            $f::<ConsistentHashRing>($($arg),*),
            $f::<HashRingsCrate>($($arg),*),
            $f::<AnchorHashCrate>($($arg),*),
            $f::<MaglevCrate>($($arg),*),
            $f::<JumpCrate>($($arg),*),
        ]
    };
}

/// A built ring behind a batch-timing closure: dynamic dispatch once per batch, never per key.
type Timer<'k> = Box<dyn FnMut(usize, usize) -> f64 + 'k>;

fn lookup_timer<'k, R: Ring + 'k>(nodes: u32, vnodes: u32, keys: &'k RingKeys) -> Timer<'k> {
    let ring = R::build(nodes, vnodes);
    Box::new(move |start, count| {
        let t = Instant::now();
        let mut acc = 0u32;
        for i in start..start + count {
            acc = acc.wrapping_add(ring.get(black_box(keys.get(i))));
        }
        black_box(acc);
        t.elapsed().as_nanos() as f64 / count as f64
    })
}

/// Runs every timer once per round, in a rotated order, and returns each one's median.
fn interleaved(timers: &mut [Timer<'_>], rounds: usize, window: usize) -> Vec<f64> {
    let mut samples = vec![Vec::new(); timers.len()];
    for round in 0..rounds {
        for k in 0..timers.len() {
            let i = (k + round) % timers.len();
            timers[i](round * window, window / 100); // warm-up
            samples[i].push(timers[i](round * window, window));
        }
    }
    samples.iter_mut().map(|s| median(s)).collect()
}

fn ratio(value: f64, ours: f64) -> String {
    if ours == 0.0 {
        "-".into()
    } else {
        format!("{:.2}x", value / ours)
    }
}

fn lookup_table(args: &RingArgs, keys: &RingKeys, out: &mut String) {
    let _ = writeln!(
        out,
        "### Lookup, ns per `get` of a 16-byte string key (median of {} rounds; ratio = time / ours)\n",
        args.rounds
    );
    let _ = writeln!(out, "| crate | n=10 | n=100 | n=1000 |\n|---|---|---|---|");
    let mut columns = Vec::new();
    for nodes in SIZES {
        let mut timers: Vec<Timer<'_>> = each_ring!(lookup_timer(nodes, args.vnodes, keys));
        columns.push(interleaved(&mut timers, args.rounds, args.window));
    }
    for (i, name) in names().iter().enumerate() {
        let cells: Vec<String> = columns
            .iter()
            .map(|col| format!("{:.1} ({})", col[i], ratio(col[i], col[0])))
            .collect();
        let _ = writeln!(out, "| {name} | {} |", cells.join(" | "));
    }
    let _ = writeln!(out);
}

fn replicas_table(args: &RingArgs, keys: &RingKeys, out: &mut String) {
    let ours = Shardkit::build(1000, args.vnodes);
    let peer = ConsistentHashRing::build(1000, args.vnodes);
    let mut timers: Vec<Timer<'_>> = vec![
        Box::new(|start, count| {
            let t = Instant::now();
            for i in start..start + count {
                black_box(ours.get(black_box(keys.get(i))));
            }
            t.elapsed().as_nanos() as f64 / count as f64
        }),
        Box::new(|start, count| {
            let t = Instant::now();
            for i in start..start + count {
                for node in ours.0.replicas(black_box(keys.get(i)), 3) {
                    black_box(node);
                }
            }
            t.elapsed().as_nanos() as f64 / count as f64
        }),
        Box::new(|start, count| {
            let t = Instant::now();
            for i in start..start + count {
                for node in peer.0.replicas(black_box(keys.get(i))).take(3) {
                    black_box(node);
                }
            }
            t.elapsed().as_nanos() as f64 / count as f64
        }),
    ];
    let m = interleaved(&mut timers, args.rounds, args.window);
    let _ = writeln!(
        out,
        "### Preference list of 3 distinct nodes at n=1000 (ns, median)\n"
    );
    let _ = writeln!(out, "| operation | ns | vs our `get` |\n|---|---|---|");
    let _ = writeln!(out, "| shardkit-hashring `get` | {:.1} | 1.00x |", m[0]);
    let _ = writeln!(
        out,
        "| shardkit-hashring `replicas(key, 3)` | {:.1} | {} |",
        m[1],
        ratio(m[1], m[0])
    );
    let _ = writeln!(
        out,
        "| consistent_hash_ring `replicas(key).take(3)` | {:.1} | {} |\n",
        m[2],
        ratio(m[2], m[0])
    );
}

/// Milliseconds to build, add one node and remove one node at n=1000: `[build, add, remove]`.
fn churn_timer<R: Ring>(vnodes: u32, victim: u32) -> Box<dyn FnMut() -> [f64; 3]> {
    Box::new(move || {
        let t = Instant::now();
        let mut ring = black_box(R::build(1000, vnodes));
        let build = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        ring.add(1000);
        let add = t.elapsed().as_secs_f64() * 1e3;
        let mut ring = R::build(1000, vnodes);
        let t = Instant::now();
        ring.remove(victim);
        let remove = t.elapsed().as_secs_f64() * 1e3;
        black_box(ring);
        [build, add, remove]
    })
}

fn churn_table(args: &RingArgs, out: &mut String) {
    let victims: Vec<u32> = (0..args.rounds as u64)
        .map(|r| (r * 7919 + 17) as u32 % 1000)
        .collect();
    let mut samples: Vec<[Vec<f64>; 3]> = names().iter().map(|_| Default::default()).collect();
    for (round, &victim) in victims.iter().enumerate() {
        let mut timers: Vec<Box<dyn FnMut() -> [f64; 3]>> =
            each_ring!(churn_timer(args.vnodes, victim));
        for k in 0..timers.len() {
            let i = (k + round) % timers.len();
            let t = timers[i]();
            for (s, v) in samples[i].iter_mut().zip(t) {
                s.push(v);
            }
        }
    }
    let _ = writeln!(
        out,
        "### Build n=1000 x {} vnodes, add one node, remove one node (ms, median of {} rounds)\n",
        args.vnodes, args.rounds
    );
    let _ = writeln!(
        out,
        "Our add and remove include computing the rebalancing plan. Maglev has no incremental update (rebuild).\n"
    );
    let _ = writeln!(out, "| crate | build | add | remove |\n|---|---|---|---|");
    let meds: Vec<[f64; 3]> = samples
        .iter_mut()
        .map(|[a, b, c]| [median(a), median(b), median(c)])
        .collect();
    for (i, name) in names().iter().enumerate() {
        let cells: Vec<String> = (0..3)
            .map(|j| format!("{:.3} ({})", meds[i][j], ratio(meds[i][j], meds[0][j])))
            .collect();
        let _ = writeln!(out, "| {name} | {} |", cells.join(" | "));
    }
    let _ = writeln!(out);
}

/// Live heap bytes after building at n=1000 and the peak during the build, measured in a fresh
/// process by the `ring-memory` binary so its counting allocator does not slow the timings.
fn memory_table(args: &RingArgs, out: &mut String) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let tool = exe.with_file_name(format!("ring-memory{}", std::env::consts::EXE_SUFFIX));
    let _ = writeln!(
        out,
        "### Memory at n=1000 x {} vnodes (heap bytes after build; peak during build)\n",
        args.vnodes
    );
    let _ = writeln!(
        out,
        "| crate | live | bytes per point | peak during build |\n|---|---|---|---|"
    );
    for name in names() {
        let output = Command::new(&tool)
            .args([name, "1000", &args.vnodes.to_string()])
            .output()
            .map_err(|e| format!("cannot run {} (build it with `cargo build --release -p shardkit-benches`): {e}", tool.display()))?;
        let text = String::from_utf8_lossy(&output.stdout);
        let nums: Vec<f64> = text
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        let [live, peak, points] = nums[..] else {
            return Err(format!("ring-memory {name} printed {text:?}"));
        };
        let per_point = if points > 0.0 {
            format!("{:.1}", live / points)
        } else {
            "-".into()
        };
        let _ = writeln!(
            out,
            "| {name} | {:.2} MB | {per_point} | {:.2} MB |",
            live / 1e6,
            peak / 1e6
        );
    }
    let _ = writeln!(out);
    Ok(())
}

/// Per-node key counts for `keys` keys.
fn loads<R: Ring>(ring: &R, keys: &RingKeys, count: usize) -> HashMap<u32, u64> {
    let mut loads = HashMap::new();
    for i in 0..count {
        *loads.entry(ring.get(keys.get(i))).or_default() += 1;
    }
    loads
}

/// Node ids of membership `k` start at `k × MEMBERSHIP_STRIDE`. One membership's spread is one
/// random draw (about 1/sqrt(vnodes) for any ring); the mean of several shows the expected
/// spread rather than one lucky or unlucky placement.
const MEMBERSHIP_STRIDE: u32 = 1001;

/// `[max/mean, std/mean]` at each of [`SIZES`], averaged over `memberships` memberships.
fn balance_row<R: Ring>(
    vnodes: u32,
    memberships: u32,
    keys: &RingKeys,
    count: usize,
) -> Vec<(f64, f64)> {
    SIZES
        .iter()
        .map(|&n| {
            let (mut max, mut std) = (0.0, 0.0);
            for k in 0..memberships {
                let ring = R::build_ids(k * MEMBERSHIP_STRIDE, n, vnodes);
                let mut l: Vec<u64> = loads(&ring, keys, count).into_values().collect();
                l.resize(n as usize, 0);
                let (m, s) = balance(&l);
                max += m / f64::from(memberships);
                std += s / f64::from(memberships);
            }
            (max, std)
        })
        .collect()
}

fn balance_table(args: &RingArgs, keys: &RingKeys, out: &mut String) -> Result<(), String> {
    let _ = writeln!(
        out,
        "### Balance over {} keys: max/mean and std/mean of keys per node\n",
        args.keys
    );
    let _ = writeln!(
        out,
        "Each cell is the mean over {} memberships (node ids shifted by {MEMBERSHIP_STRIDE} each time). \
         Every virtual-node ring sits near the theoretical 1/sqrt(vnodes) = {:.3}; the sampling floor of a perfect spread \
         is std/mean = sqrt(n/keys).\n",
        args.memberships,
        1.0 / f64::from(args.vnodes).sqrt()
    );
    let _ = writeln!(out, "| crate | n=10 | n=100 | n=1000 |\n|---|---|---|---|");
    let rows = each_ring!(balance_row(args.vnodes, args.memberships, keys, args.keys));
    for (name, row) in names().iter().zip(rows) {
        let cells: Vec<String> = row
            .iter()
            .map(|(max, std)| format!("{max:.3} / {std:.3}"))
            .collect();
        let _ = writeln!(out, "| {name} | {} |", cells.join(" | "));
    }
    let mut cells = Vec::new();
    // Bounded loads cap the maximum by construction; one membership shows it.
    for n in SIZES {
        let ring = Shardkit::build(n, args.vnodes);
        let mut bounded =
            shardkit_hashring::BoundedLoads::new(&ring.0, 1.25).map_err(|e| e.to_string())?;
        for i in 0..args.keys {
            bounded.place(keys.get(i)).map_err(|e| e.to_string())?;
        }
        let l: Vec<u64> = bounded.loads().map(|(_, l)| l).collect();
        let (max, std) = balance(&l);
        cells.push(format!("{max:.3} / {std:.3}"));
    }
    let _ = writeln!(
        out,
        "| shardkit-hashring, bounded loads c=1.25 (one membership: the cap holds by construction) | {} |\n",
        cells.join(" | ")
    );
    Ok(())
}

/// `(moved fraction, defects)` when adding node `n` and when removing `victim`, at `n` nodes.
fn movement_row<R: Ring>(
    n: u32,
    vnodes: u32,
    victim: u32,
    keys: &RingKeys,
    count: usize,
) -> [(f64, u64); 2] {
    let before = R::build(n, vnodes);
    let owners: Vec<u32> = (0..count).map(|i| before.get(keys.get(i))).collect();
    let mut grown = R::build(n, vnodes);
    grown.add(n);
    let mut shrunk = R::build(n, vnodes);
    shrunk.remove(victim);
    let (mut add_moved, mut add_bad, mut rm_moved, mut rm_bad) = (0u64, 0u64, 0u64, 0u64);
    for (i, &old) in owners.iter().enumerate() {
        let (g, s) = (grown.get(keys.get(i)), shrunk.get(keys.get(i)));
        if g != old {
            add_moved += 1;
            add_bad += u64::from(g != n);
        }
        if s != old {
            rm_moved += 1;
            rm_bad += u64::from(old != victim);
        }
    }
    let c = count as f64;
    [
        (add_moved as f64 / c, add_bad),
        (rm_moved as f64 / c, rm_bad),
    ]
}

fn movement_table(args: &RingArgs, keys: &RingKeys, out: &mut String) {
    let n = 100;
    let victim = 37;
    let _ = writeln!(
        out,
        "### Key movement at n={n} over {} keys: fraction moved (ideal) and defects\n",
        args.keys
    );
    let _ = writeln!(
        out,
        "Defects are keys that moved between two nodes that both stayed.\n"
    );
    let _ = writeln!(
        out,
        "| crate | add: moved (ideal {:.4}) | add: defects | remove: moved (ideal ~{:.4}) | remove: defects |\n|---|---|---|---|---|",
        1.0 / f64::from(n + 1),
        1.0 / f64::from(n)
    );
    let rows = each_ring!(movement_row(n, args.vnodes, victim, keys, args.keys));
    for (name, [(am, ab), (rm, rb)]) in names().iter().zip(rows) {
        let _ = writeln!(out, "| {name} | {am:.4} | {ab} | {rm:.4} | {rb} |");
    }
    let _ = writeln!(out);
}

pub(crate) fn run(args: &RingArgs, out: &mut String) -> Result<(), String> {
    if args.rounds == 0 || args.window == 0 || args.keys == 0 || args.memberships == 0 {
        return Err("--rounds, --window, --keys and --memberships must be at least 1".into());
    }
    let highest_id = u64::from(args.memberships - 1) * u64::from(MEMBERSHIP_STRIDE) + 1001;
    if highest_id > u64::from(shardkit_benches::rings::MAX_NODES) {
        return Err(format!(
            "--memberships {} needs node ids beyond {}",
            args.memberships,
            shardkit_benches::rings::MAX_NODES
        ));
    }
    let keys = RingKeys::new(args.keys.max(args.rounds * args.window), 42);
    let _ = writeln!(out, "## Consistent-hashing rings\n");
    let _ = writeln!(
        out,
        "Reproduce: `cargo run --release -p shardkit-benches --bin compare -- ring --rounds {} --window {} --keys {} --vnodes {}`\n",
        args.rounds, args.window, args.keys, args.vnodes
    );
    if args.wants("lookup") {
        lookup_table(args, &keys, out);
    }
    if args.wants("replicas") {
        replicas_table(args, &keys, out);
    }
    if args.wants("churn") {
        churn_table(args, out);
    }
    if args.wants("memory") {
        memory_table(args, out)?;
    }
    if args.wants("balance") {
        balance_table(args, &keys, out)?;
    }
    if args.wants("movement") {
        movement_table(args, &keys, out);
    }
    Ok(())
}
