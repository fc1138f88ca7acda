//! Bounded loads, slot maps, weights and snapshots do what their docs promise.

use std::collections::HashMap;

use shardkit_hashring::{BoundedLoads, HashRing, Membership, jump_hash, stable_hash};

fn loads_of(ring: &HashRing<String>, keys: u64) -> HashMap<String, u64> {
    let mut loads = HashMap::new();
    for k in 0..keys {
        *loads.entry(ring.get(&k).unwrap().clone()).or_default() += 1;
    }
    loads
}

#[test]
fn bounded_loads_cap_every_node() {
    let ring = HashRing::builder()
        .nodes((0..100).map(|i| format!("n{i}")))
        .build()
        .unwrap();
    let plain = loads_of(&ring, 100_000);
    let plain_max = *plain.values().max().unwrap();
    let mut bounded = BoundedLoads::new(&ring, 1.1).unwrap();
    let mut stayed = 0;
    for k in 0..100_000u64 {
        let node = bounded.place(&k).unwrap();
        stayed += u64::from(Some(node) == ring.get(&k));
    }
    let max = bounded.loads().map(|(_, l)| l).max().unwrap();
    assert!(max <= 1100, "max load {max} above 1.1 x mean 1000");
    assert!(
        plain_max > 1100,
        "the plain ring should exceed the bound ({plain_max})"
    );
    // Most keys still go to their ring owner.
    assert!(stayed > 85_000, "{stayed}");
    assert_eq!(bounded.total(), 100_000);
}

#[test]
fn weights_scale_shares() {
    let ring = HashRing::builder()
        .weighted_nodes([("small".to_string(), 1), ("big".to_string(), 4)])
        .build()
        .unwrap();
    let loads = loads_of(&ring, 100_000);
    let share = loads["big"] as f64 / 100_000.0;
    assert!((share - 0.8).abs() < 0.05, "big's share {share}");
}

#[test]
fn slot_maps_move_only_slots_whose_owner_changed() {
    let mut ring = HashRing::builder()
        .nodes((0..8).map(|i| format!("n{i}")))
        .build()
        .unwrap();
    let before = ring
        .slot_map(shardkit_hashring::REDIS_CLUSTER_SLOTS)
        .unwrap();
    ring.add("n8".to_string()).unwrap();
    let after = ring
        .slot_map(shardkit_hashring::REDIS_CLUSTER_SLOTS)
        .unwrap();
    let moves = before.diff(&after).unwrap();
    assert!(moves.iter().all(|m| m.to == "n8"));
    let share = moves.len() as f64 / 16_384.0;
    assert!((share - 1.0 / 9.0).abs() < 0.05, "moved share {share}");
    for (slot, owner) in after.iter() {
        let hash = after.slot_hash(slot).unwrap();
        assert_eq!(Some(owner), ring.replicas_hash(hash, 2).next());
    }
}

#[test]
fn jump_moves_only_to_the_new_bucket() {
    for k in 0..10_000u64 {
        let h = stable_hash(0, &k);
        let (a, b) = (jump_hash(h, 30).unwrap(), jump_hash(h, 31).unwrap());
        assert!(a == b || b == 30);
    }
}

#[test]
fn membership_rebuilds_the_same_ring() {
    let mut ring = HashRing::builder()
        .seed(3)
        .vnodes(50)
        .nodes(["a", "b", "c", "d"])
        .build()
        .unwrap();
    ring.remove(&"b").unwrap();
    ring.add_weighted("e", 2).unwrap();
    let mut m = ring.membership();
    m.nodes.reverse();
    let copy = HashRing::from_membership(m).unwrap();
    for k in 0..10_000u32 {
        assert_eq!(copy.get(&k), ring.get(&k));
    }
    let bad = Membership {
        seed: 0,
        vnodes_per_weight: 10,
        nodes: vec![("a", 1), ("a", 2)],
    };
    assert!(HashRing::from_membership(bad).is_err());
}

#[cfg(feature = "serde")]
#[test]
fn serde_round_trip() {
    let ring = HashRing::builder()
        .seed(5)
        .nodes(["x".to_string(), "y".to_string()])
        .build()
        .unwrap();
    let json = serde_json::to_string(&ring).unwrap();
    let back: HashRing<String> = serde_json::from_str(&json).unwrap();
    for k in 0..1000u32 {
        assert_eq!(back.get(&k), ring.get(&k));
    }
    let dup = r#"{"seed":0,"vnodes_per_weight":10,"nodes":[["a",1],["a",1]]}"#;
    let err = serde_json::from_str::<HashRing<String>>(dup).unwrap_err();
    assert!(err.to_string().contains("already in the ring"), "{err}");
}

#[test]
fn rings_past_65536_nodes_widen_their_owner_index() {
    let nodes = (0..65_536u32).map(|n| (n, 1));
    let mut ring = HashRing::builder()
        .vnodes(1)
        .weighted_nodes(nodes)
        .build()
        .unwrap();
    ring.add(65_536).unwrap();
    ring.add(65_537).unwrap();
    let rebuilt = HashRing::from_membership(ring.membership()).unwrap();
    assert_eq!(ring.len(), 65_538);
    for k in 0..20_000u64 {
        let h = stable_hash(99, &k);
        assert_eq!(ring.get_hash(h), rebuilt.get_hash(h));
    }
    let mut owners: Vec<u32> = (0..200_000u64).map(|k| *ring.get(&k).unwrap()).collect();
    owners.sort_unstable();
    owners.dedup();
    assert!(owners.iter().any(|&o| o >= 65_536), "new nodes own no key");
}

/// Membership questions take a borrowed form of the node, as a map's keys do: a `&str` for a
/// `HashRing<String>`, with no `String` built to ask.
#[test]
fn nodes_are_looked_up_by_a_borrowed_form() {
    let mut ring = HashRing::builder()
        .weighted_nodes([("db-1".to_string(), 1), ("db-2".to_string(), 2)])
        .build()
        .unwrap();
    assert!(ring.contains("db-1"));
    assert!(!ring.contains("db-3"));
    assert_eq!(ring.weight("db-2"), Some(2));
    let mut loads = BoundedLoads::new(&ring, 1.25).unwrap();
    let placed = loads.place(&7u64).unwrap().clone();
    assert_eq!(loads.load(placed.as_str()), Some(1));
    assert!(loads.release(placed.as_str()).is_ok());
    let plan = ring.remove("db-1").unwrap();
    assert!(plan.iter().all(|m| m.from() == "db-1"));
    assert!(!ring.contains("db-1"));
}

#[test]
fn rings_are_equal_when_they_route_alike_whatever_the_order_nodes_came_in() {
    let build = |nodes: &[(&'static str, u32)]| {
        let mut ring = HashRing::new();
        for &(node, weight) in nodes {
            ring.add_weighted(node, weight).unwrap();
        }
        ring
    };
    let one = build(&[("a", 1), ("b", 2), ("c", 1)]);
    let other = build(&[("c", 1), ("a", 1), ("b", 2)]);
    assert_eq!(one, other);
    // Their snapshots are the same too, whatever the order the nodes came in.
    assert_eq!(one.membership(), other.membership());
    #[cfg(feature = "serde")]
    assert_eq!(
        serde_json::to_string(&one).unwrap(),
        serde_json::to_string(&other).unwrap()
    );
    for key in 0..10_000u64 {
        assert_eq!(one.get(&key), other.get(&key), "key {key}");
    }
    // Removed and added back: equal again.
    let mut churned = other.clone();
    churned.remove("a").unwrap();
    assert_ne!(churned, one);
    churned.add("a").unwrap();
    assert_eq!(churned, one);
    assert_eq!(churned.membership(), one.membership());
    // Another weight, node, seed or point count: not equal.
    assert_ne!(one, build(&[("a", 1), ("b", 1), ("c", 1)]));
    assert_ne!(one, build(&[("a", 1), ("b", 2), ("d", 1)]));
    let reseeded = HashRing::builder()
        .seed(7)
        .weighted_node("a", 1)
        .weighted_node("b", 2)
        .weighted_node("c", 1)
        .build()
        .unwrap();
    assert_ne!(one, reseeded);
    let fewer_points = HashRing::builder()
        .vnodes(10)
        .weighted_node("a", 1)
        .weighted_node("b", 2)
        .weighted_node("c", 1)
        .build()
        .unwrap();
    assert_ne!(one, fewer_points);
}

#[test]
fn replica_plans_say_who_gains_and_who_loses_a_copy() {
    let before = HashRing::builder().nodes(["a", "b", "c"]).build().unwrap();
    let mut after = before.clone();
    after.remove(&"c").unwrap();
    // Every key's list of 3 was all three nodes; now it is the two left.
    let plan = before.diff_replicas(&after, 3).unwrap();
    assert!(!plan.is_empty());
    for m in &plan {
        assert_eq!(m.before().len(), 3);
        assert_eq!(m.after().len(), 2);
        assert_eq!(m.lost().collect::<Vec<_>>(), [&"c"]);
        assert_eq!(m.gained().count(), 0);
        assert!(!m.reordered_only(), "a copy is gone, not just moved");
    }
    // The whole hash space, in order.
    assert_eq!(plan.iter().next().unwrap().range().start(), 0);
    assert_eq!(plan.iter().last().unwrap().range().end(), u64::MAX);
    // Adding "c" back restores every list: the reverse plan gains it everywhere.
    for m in &after.diff_replicas(&before, 3).unwrap() {
        assert_eq!(m.gained().collect::<Vec<_>>(), [&"c"]);
    }
    // A seed mismatch is an error, as for `diff`.
    let other = HashRing::builder().seed(7).nodes(["a"]).build().unwrap();
    assert!(before.diff_replicas(&other, 3).is_err());
}
