//! Bad input is a typed error and leaves the ring as it was.

use shardkit_hashring::{BoundedLoads, Error, HashRing, MAX_POINTS, jump_hash};

fn ring() -> HashRing<&'static str> {
    HashRing::builder().nodes(["a", "b", "c"]).build().unwrap()
}

#[test]
fn zero_weight_and_zero_vnodes() {
    let mut r = ring();
    assert_eq!(r.add_weighted("d", 0), Err(Error::ZeroWeight));
    assert!(!r.contains(&"d"));
    assert_eq!(
        HashRing::<u32>::builder().vnodes(0).build().unwrap_err(),
        Error::ZeroVnodes
    );
    assert_eq!(
        HashRing::builder()
            .weighted_nodes([("x", 1), ("y", 0)])
            .build()
            .unwrap_err(),
        Error::ZeroWeight
    );
}

#[test]
fn duplicates_are_refused_whole() {
    let mut r = ring();
    let before = r.point_count();
    assert_eq!(r.add("a"), Err(Error::DuplicateNode));
    assert_eq!(r.add_all([("d", 1), ("a", 1)]), Err(Error::DuplicateNode));
    assert_eq!(r.add_all([("d", 1), ("d", 2)]), Err(Error::DuplicateNode));
    assert_eq!(r.point_count(), before);
    assert!(!r.contains(&"d"));
}

#[test]
fn missing_node_and_empty_ring() {
    let mut r = ring();
    assert_eq!(r.remove(&"zzz"), Err(Error::NodeNotFound));
    let empty: HashRing<&str> = HashRing::new();
    assert_eq!(empty.get("k"), None);
    assert_eq!(empty.replicas("k", 3).count(), 0);
    assert_eq!(empty.slot_map(16).unwrap_err(), Error::EmptyRing);
    let mut loads = BoundedLoads::new(&empty, 1.25).unwrap();
    assert_eq!(loads.place("k"), Err(Error::EmptyRing));
    for n in ["a", "b", "c"] {
        r.remove(&n).unwrap();
    }
    assert!(r.is_empty());
    assert_eq!(r.get("k"), None);
}

#[test]
fn too_many_replicas_gives_each_node_once() {
    let r = ring();
    let mut all: Vec<_> = r.replicas("k", 100).copied().collect();
    assert_eq!(r.replicas("k", 100).len(), 3);
    all.sort();
    assert_eq!(all, ["a", "b", "c"]);
    assert_eq!(r.replicas("k", 0).count(), 0);
}

#[test]
fn too_many_points() {
    let mut r: HashRing<u8> = HashRing::builder().vnodes(1 << 20).build().unwrap();
    assert!(matches!(
        r.add_weighted(1, 1 << 12),
        Err(Error::TooManyPoints { .. })
    ));
    assert!(r.is_empty());
    // Just past the limit is refused, not allocated (26 million weight at 160 points would
    // have been 43 GB of ring, under the old limit of 2^32 points).
    let mut r: HashRing<u8> = HashRing::builder().vnodes(1 << 8).build().unwrap();
    assert_eq!(
        r.add_weighted(1, (MAX_POINTS >> 8) + 1),
        Err(Error::TooManyPoints {
            points: u64::from(MAX_POINTS) + 256
        })
    );
    assert!(r.add_weighted(1, 1 << 8).is_ok());
}

#[test]
fn bounded_load_and_slot_errors() {
    let r = ring();
    for c in [0.5, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            BoundedLoads::new(&r, c),
            Err(Error::InvalidLoadFactor(_))
        ));
    }
    let mut loads = BoundedLoads::new(&r, 1.0).unwrap();
    assert_eq!(loads.release(&"a"), Err(Error::NoLoadToRelease));
    assert_eq!(loads.release(&"q"), Err(Error::NodeNotFound));
    assert_eq!(r.slot_map(0).unwrap_err(), Error::ZeroBuckets);
    let slots = r.slot_map(8).unwrap();
    assert_eq!(
        slots.owner(8),
        Err(Error::SlotOutOfRange { slot: 8, slots: 8 })
    );
    assert_eq!(jump_hash(1, 0), Err(Error::ZeroBuckets));
    let other_size = r.slot_map(16).unwrap();
    assert_eq!(
        slots.diff(&other_size).unwrap_err(),
        Error::SlotCountMismatch { left: 8, right: 16 }
    );
    let other = HashRing::builder().seed(1).nodes(["a"]).build().unwrap();
    assert_eq!(
        r.diff(&other),
        Err(Error::SeedMismatch { left: 0, right: 1 })
    );
}

#[test]
fn errors_explain_themselves() {
    let msg = Error::SeedMismatch { left: 1, right: 2 }.to_string();
    assert!(msg.contains("different hash seeds"), "{msg}");
    assert!(Error::ZeroWeight.to_string().contains("at least 1"));
}
