//! Scaling out a sharded key-value store: add a node, and migrate exactly the keys the
//! rebalancing plan names, from the node the plan names.
//!
//! `cargo run --example migration -p shardkit-hashring`

use std::collections::{BTreeMap, HashMap};

use shardkit_hashring::{Error, HashRing};

fn main() -> Result<(), Error> {
    let mut ring = HashRing::builder()
        .nodes(["shard-a", "shard-b", "shard-c"])
        .build()?;
    // Each shard's data, keyed by the key's ring hash so ranges can be scanned.
    let mut shards: HashMap<&str, BTreeMap<u64, String>> = HashMap::new();
    for i in 0..30_000 {
        let key = format!("user:{i}");
        let owner = *ring.get(&key).expect("ring has nodes");
        shards
            .entry(owner)
            .or_default()
            .insert(ring.hash_key(&key), key);
    }

    let plan = ring.add("shard-d")?;
    let mut moved = 0;
    for m in &plan {
        let range = m.range();
        let from = shards.get_mut(m.from()).expect("source shard exists");
        let taken: Vec<(u64, String)> = from
            .range(range.start()..=range.end())
            .map(|(h, k)| (*h, k.clone()))
            .collect();
        for (h, _) in &taken {
            from.remove(h);
        }
        moved += taken.len();
        shards.entry(*m.to()).or_default().extend(taken);
    }

    // Every key now lives where the new ring routes it.
    for (node, data) in &shards {
        for key in data.values() {
            assert_eq!(ring.get(key), Some(node));
        }
    }
    println!(
        "{} ranges ({:.1}% of the hash space) moved {moved} of 30000 keys to shard-d; every key is where the ring says",
        plan.len(),
        100.0 * plan.moved_fraction()
    );
    Ok(())
}
