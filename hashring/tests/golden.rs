//! Golden values: fixed memberships map fixed keys to fixed nodes in every process, on every
//! platform and in every release. A failure here means placement changed, which breaks every
//! deployed service that routes with this crate; never update these values within a major
//! version.

use shardkit_hashring::{HashRing, jump, stable_hash};

#[test]
fn stable_hash_values() {
    assert_eq!(stable_hash(0, "user:42"), GOLDEN_HASH_STR);
    assert_eq!(stable_hash(0, &42u64), GOLDEN_HASH_U64);
    assert_eq!(stable_hash(7, &(1u32, "a")), GOLDEN_HASH_TUPLE);
}

#[test]
fn ring_placements() {
    let ring = HashRing::builder()
        .nodes((0..10).map(|i| format!("node-{i}")))
        .weighted_node("big".to_string(), 3)
        .build()
        .unwrap();
    let owners: Vec<&str> = (0..16)
        .map(|k| ring.get(&format!("key-{k}")).unwrap().as_str())
        .collect();
    assert_eq!(owners, GOLDEN_OWNERS);
    let replicas: Vec<&str> = ring.replicas("key-0", 3).map(String::as_str).collect();
    assert_eq!(replicas, GOLDEN_REPLICAS);
}

#[test]
fn jump_placements() {
    let buckets: Vec<u32> = (0..16u64).map(|k| jump(&k, 100).unwrap()).collect();
    assert_eq!(buckets, GOLDEN_JUMP);
}

// The hash and jump values were checked independently with Python's `xxhash` package:
// xxh3_64_intdigest(b"user:42\xff", seed=0), of (42).to_bytes(8, "little"), and of
// (1).to_bytes(4, "little") + b"a\xff" with seed 7; and a transcription of the paper's jump loop.
const GOLDEN_HASH_STR: u64 = 6902686538045845940;
const GOLDEN_HASH_U64: u64 = 15395265915043915720;
const GOLDEN_HASH_TUPLE: u64 = 17295024103936914506;
const GOLDEN_OWNERS: [&str; 16] = [
    "node-7", "big", "node-0", "node-7", "node-6", "node-6", "node-1", "node-2", "node-4",
    "node-6", "node-2", "node-6", "node-6", "node-5", "big", "node-8",
];
const GOLDEN_REPLICAS: [&str; 3] = ["node-7", "node-2", "big"];
const GOLDEN_JUMP: [u32; 16] = [30, 38, 18, 40, 80, 8, 31, 53, 13, 20, 77, 6, 97, 72, 16, 43];
