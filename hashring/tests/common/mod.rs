//! A naive ring written from the documented hashing scheme: every point in a list, a linear
//! scan to find a key's successor. The real ring must agree with it on every key.

#![allow(dead_code, unreachable_pub)]

use shardkit_hashring::stable_hash;

/// Point `index` of a node: output `index + 1` of SplitMix64 seeded with the node's hash.
fn splitmix(node_hash: u64, index: u32) -> u64 {
    let mut z = node_hash.wrapping_add((u64::from(index) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One point: its hash, its node's identity hash (the tie-break), and the node.
pub type NaivePoint = (u64, u64, String);

/// The points of `nodes`, sorted by `(hash, node hash)` as the crate docs promise.
pub fn naive_points(seed: u64, vnodes: u32, nodes: &[(String, u32)]) -> Vec<NaivePoint> {
    let mut points = Vec::new();
    for (node, weight) in nodes {
        let node_hash = stable_hash(seed, node);
        for i in 0..weight * vnodes {
            points.push((splitmix(node_hash, i), node_hash, node.clone()));
        }
    }
    points.sort_by_key(|a| (a.0, a.1));
    points
}

/// The index of the first point at or after `hash`, wrapping.
pub fn naive_successor(points: &[NaivePoint], hash: u64) -> usize {
    points.iter().position(|p| p.0 >= hash).unwrap_or(0)
}

/// The owner of `hash`.
pub fn naive_get(points: &[NaivePoint], hash: u64) -> Option<&str> {
    if points.is_empty() {
        return None;
    }
    Some(&points[naive_successor(points, hash)].2)
}

/// The first `n` distinct nodes clockwise from `hash`.
pub fn naive_replicas(points: &[NaivePoint], hash: u64, n: usize) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    if points.is_empty() {
        return out;
    }
    let start = naive_successor(points, hash);
    for k in 0..points.len() {
        let node = points[(start + k) % points.len()].2.as_str();
        if out.len() < n && !out.contains(&node) {
            out.push(node);
        }
    }
    out
}
