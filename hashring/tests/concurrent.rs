//! Readers on several threads during continuous membership changes always see a complete ring.
//! The swap is `arc_swap`'s (model-checked upstream), so this is a stress test, not a loom model.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use shardkit_hashring::{HashRing, Replicas, SharedRing};

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<HashRing<String>>();
    check::<SharedRing<String>>();
    check::<Replicas<'static, String>>();
    check::<shardkit_hashring::Error>();
}

#[test]
fn readers_see_only_complete_rings_while_a_writer_churns() {
    const VNODES: u32 = 20;
    let base: Vec<String> = (0..16).map(|i| format!("n{i}")).collect();
    let ring = HashRing::builder()
        .vnodes(VNODES)
        .nodes(base.clone())
        .build()
        .unwrap();
    // Every key's owner under the two memberships the writer flips between.
    let full = ring.clone();
    let mut without = ring.clone();
    without.remove("n3").unwrap();
    without.add_weighted("extra".to_string(), 2).unwrap();

    let shared = Arc::new(SharedRing::new(ring));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|t| {
            let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
            let (full, without) = (full.clone(), without.clone());
            thread::spawn(move || {
                let mut checks = 0u64;
                let mut k = t as u64;
                while !stop.load(Ordering::Relaxed) || checks < 10_000 {
                    shared.read(|ring| {
                        let weight: u32 = ring.weighted_nodes().map(|(_, w)| w).sum();
                        assert_eq!(ring.point_count() as u32, weight * VNODES);
                        let expected = if ring.contains("extra") {
                            &without
                        } else {
                            &full
                        };
                        assert_eq!(ring.get(&k), expected.get(&k));
                        let reps: Vec<_> = ring.replicas(&k, 3).collect();
                        assert_eq!(reps.len(), 3);
                        assert!(reps[0] != reps[1] && reps[1] != reps[2] && reps[0] != reps[2]);
                    });
                    k += 4;
                    checks += 1;
                }
                checks
            })
        })
        .collect();
    for _ in 0..300 {
        shared
            .update(|ring| {
                ring.remove("n3")?;
                ring.add_weighted("extra".to_string(), 2).map(|_| ())
            })
            .unwrap();
        shared
            .update(|ring| {
                ring.remove(&"extra".to_string())?;
                ring.add("n3".to_string()).map(|_| ())
            })
            .unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() >= 10_000);
    }
    // A failed update publishes nothing.
    assert!(shared.add("n0".to_string()).is_err());
    assert_eq!(shared.snapshot().len(), 16);
}
