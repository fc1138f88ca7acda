//! `shardkit ring`: balance of a ring and the effect of membership changes.

use std::fmt::Write as _;
use std::str::FromStr;

use clap::Args;
use shardkit_hashring::{BoundedLoads, HashRing};

/// A node given on the command line as `name` or `name:weight`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeSpec {
    name: String,
    weight: u32,
}

impl FromStr for NodeSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, weight) = match s.rsplit_once(':') {
            Some((name, w)) => {
                let weight = w
                    .parse()
                    .map_err(|_| format!("weight {w:?} of {name:?} is not a whole number"))?;
                (name, weight)
            }
            None => (s, 1),
        };
        if name.is_empty() {
            return Err(format!("node {s:?} has no name"));
        }
        Ok(Self {
            name: name.to_string(),
            weight,
        })
    }
}

/// Arguments of `shardkit ring`.
#[derive(Debug, Args)]
pub(crate) struct RingArgs {
    /// The nodes, as `name` or `name:weight`, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    nodes: Vec<NodeSpec>,
    /// How many keys (`key-0`, `key-1`, ...) to place.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Virtual nodes per unit of weight.
    #[arg(long, default_value_t = shardkit_hashring::DEFAULT_VNODES)]
    vnodes: u32,
    /// The hash seed.
    #[arg(long, default_value_t = shardkit_hashring::DEFAULT_SEED)]
    seed: u64,
    /// Nodes to add (`name` or `name:weight`), to see what moves.
    #[arg(long, value_delimiter = ',')]
    add: Vec<NodeSpec>,
    /// Nodes to remove, to see what moves.
    #[arg(long, value_delimiter = ',')]
    remove: Vec<String>,
    /// Also place the keys with bounded loads at this factor (e.g. 1.25).
    #[arg(long)]
    bounded: Option<f64>,
    /// How many of the moving hash ranges to list.
    #[arg(long, default_value_t = 10)]
    ranges: usize,
}

/// Load statistics over nodes, each load divided by the node's weight share.
pub(crate) struct Balance {
    pub(crate) max_over_mean: f64,
    pub(crate) std_over_mean: f64,
}

/// `loads[i]` keys on a node of weight `weights[i]`.
pub(crate) fn balance(loads: &[u64], weights: &[u32]) -> Balance {
    let total: u64 = loads.iter().sum();
    let weight: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    let ratios: Vec<f64> = loads
        .iter()
        .zip(weights)
        .map(|(&l, &w)| l as f64 / (total as f64 * f64::from(w) / weight as f64))
        .collect();
    let n = ratios.len() as f64;
    let var = ratios.iter().map(|r| (r - 1.0).powi(2)).sum::<f64>() / n;
    Balance {
        max_over_mean: ratios.iter().copied().fold(0.0, f64::max),
        std_over_mean: var.sqrt(),
    }
}

fn key(i: u64) -> String {
    format!("key-{i}")
}

/// Each key's owner as an index into `ring.nodes()`; empty when the ring is.
fn owners(ring: &HashRing<String>, keys: u64) -> Vec<u32> {
    let index: std::collections::HashMap<&String, u32> = ring
        .nodes()
        .enumerate()
        .map(|(i, n)| (n, i as u32))
        .collect();
    (0..keys)
        .filter_map(|i| ring.get(&key(i)).map(|n| index[n]))
        .collect()
}

pub(crate) fn run(args: &RingArgs) -> Result<(), String> {
    if args.keys == 0 {
        return Err("--keys must be at least 1".into());
    }
    let ring = HashRing::builder()
        .vnodes(args.vnodes)
        .seed(args.seed)
        .weighted_nodes(args.nodes.iter().map(|n| (n.name.clone(), n.weight)))
        .build()
        .map_err(|e| e.to_string())?;
    print!("{}", load_report(&ring, args.keys));
    if let Some(c) = args.bounded {
        let mut bounded = BoundedLoads::new(&ring, c).map_err(|e| e.to_string())?;
        for i in 0..args.keys {
            bounded.place(&key(i)).map_err(|e| e.to_string())?;
        }
        let loads: Vec<u64> = bounded.loads().map(|(_, l)| l).collect();
        let weights: Vec<u32> = ring.weighted_nodes().map(|(_, w)| w).collect();
        let b = balance(&loads, &weights);
        println!(
            "bounded loads (c = {c}): max/mean {:.3}, std/mean {:.3}",
            b.max_over_mean, b.std_over_mean
        );
    }
    if args.add.is_empty() && args.remove.is_empty() {
        return Ok(());
    }
    let mut after = ring.clone();
    let before_weight: u64 = ring.weighted_nodes().map(|(_, w)| u64::from(w)).sum();
    let mut ideal = 0.0;
    for name in &args.remove {
        let weight = ring
            .weight(name)
            .ok_or_else(|| format!("cannot remove {name:?}: not in the ring"))?;
        ideal += f64::from(weight) / before_weight as f64;
        after
            .remove(name)
            .map_err(|e| format!("cannot remove {name:?}: {e}"))?;
    }
    for spec in &args.add {
        after
            .add_weighted(spec.name.clone(), spec.weight)
            .map_err(|e| format!("cannot add {:?}: {e}", spec.name))?;
    }
    if after.is_empty() {
        return Err("the change leaves the ring empty: no node to place keys on".into());
    }
    let after_weight: u64 = after.weighted_nodes().map(|(_, w)| u64::from(w)).sum();
    ideal += args.add.iter().map(|s| f64::from(s.weight)).sum::<f64>() / after_weight as f64;

    let moved = (0..args.keys)
        .filter(|&i| ring.get(&key(i)) != after.get(&key(i)))
        .count();
    let plan = ring.diff(&after).map_err(|e| e.to_string())?;
    println!(
        "\nafter the change: {} of {} keys moved ({:.2}%), ideal {:.2}%; {} hash ranges ({:.2}% of the hash space) change owner",
        moved,
        args.keys,
        100.0 * moved as f64 / args.keys as f64,
        100.0 * ideal,
        plan.len(),
        100.0 * plan.moved_fraction()
    );
    for m in plan.iter().take(args.ranges) {
        let r = m.range();
        println!(
            "  {:#018x}..={:#018x}  {} -> {}",
            r.start(),
            r.end(),
            m.from(),
            m.to()
        );
    }
    if plan.len() > args.ranges {
        println!("  ... and {} more", plan.len() - args.ranges);
    }
    print!("{}", load_report(&after, args.keys));
    Ok(())
}

/// The per-node table and the balance summary.
pub(crate) fn load_report(ring: &HashRing<String>, keys: u64) -> String {
    let mut loads = vec![0u64; ring.len()];
    for o in owners(ring, keys) {
        loads[o as usize] += 1;
    }
    let weights: Vec<u32> = ring.weighted_nodes().map(|(_, w)| w).collect();
    let total_weight: u32 = weights.iter().sum();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:>6} {:>10} {:>8} {:>8}",
        "node", "weight", "keys", "share", "fair"
    );
    let mut rows: Vec<(&String, u32, u64)> = ring
        .weighted_nodes()
        .zip(&loads)
        .map(|((n, w), &l)| (n, w, l))
        .collect();
    rows.sort();
    for (node, weight, load) in rows {
        let _ = writeln!(
            out,
            "{:<16} {:>6} {:>10} {:>7.2}% {:>7.2}%",
            node,
            weight,
            load,
            100.0 * load as f64 / keys as f64,
            100.0 * f64::from(weight) / f64::from(total_weight)
        );
    }
    let b = balance(&loads, &weights);
    let _ = writeln!(
        out,
        "{} nodes, {} points, {} keys: max/mean {:.3}, std/mean {:.3}",
        ring.len(),
        ring.point_count(),
        keys,
        b.max_over_mean,
        b.std_over_mean
    );
    out
}
