//! Property tests: the ring agrees with a naive linear-scan model, and membership changes move
//! exactly the keys they must (and the plans they return say so).

mod common;

use common::{naive_get, naive_points, naive_replicas};
use proptest::prelude::*;
use shardkit_hashring::{HashRing, Rebalance};

#[derive(Debug, Clone)]
enum Op {
    Add(u8, u32),
    Remove(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..40, 1u32..4).prop_map(|(n, w)| Op::Add(n, w)),
        (0u8..40).prop_map(Op::Remove),
    ]
}

fn name(n: u8) -> String {
    format!("node-{n}")
}

/// Applies `op` to the ring and to the model's membership list, checking they agree on errors.
fn apply(ring: &mut HashRing<String>, members: &mut Vec<(String, u32)>, op: &Op) {
    match *op {
        Op::Add(n, w) => {
            let present = members.iter().any(|(m, _)| *m == name(n));
            let result = ring.add_weighted(name(n), w);
            assert_eq!(result.is_ok(), !present, "add {n}: {result:?}");
            if !present {
                members.push((name(n), w));
            }
        }
        Op::Remove(n) => {
            let before = members.len();
            members.retain(|(m, _)| *m != name(n));
            let result = ring.remove(&name(n));
            assert_eq!(
                result.is_ok(),
                before != members.len(),
                "remove {n}: {result:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn agrees_with_naive_model(
        seed in any::<u64>(),
        vnodes in 1u32..24,
        ops in prop::collection::vec(op(), 1..40),
        keys in prop::collection::vec(any::<u64>(), 200),
    ) {
        let mut ring = HashRing::builder().seed(seed).vnodes(vnodes).build().unwrap();
        let mut members = Vec::new();
        for op in &ops {
            apply(&mut ring, &mut members, op);
            let points = naive_points(seed, vnodes, &members);
            prop_assert_eq!(ring.len(), members.len());
            prop_assert_eq!(ring.point_count(), points.len());
            for &k in &keys {
                prop_assert_eq!(ring.get_hash(k).map(String::as_str), naive_get(&points, k));
                for n in [1, 2, 3, 9] {
                    let got: Vec<&str> = ring.replicas_hash(k, n).map(String::as_str).collect();
                    prop_assert_eq!(got, naive_replicas(&points, k, n));
                }
            }
            // The same membership built in one go, in reverse order, is the same ring.
            let rebuilt = HashRing::builder()
                .seed(seed)
                .vnodes(vnodes)
                .weighted_nodes(members.iter().rev().cloned())
                .build()
                .unwrap();
            for &k in &keys {
                prop_assert_eq!(rebuilt.get_hash(k), ring.get_hash(k));
            }
        }
    }
}

/// Checks that exactly the keys of `changed` moved between `before` and `after`, each as the plan
/// says, and that `diff` agrees with the plan.
fn check_movement(
    before: &HashRing<String>,
    after: &HashRing<String>,
    changed: &str,
    plan: &Rebalance<String>,
    keys: &[u64],
) -> Result<(), TestCaseError> {
    for &k in keys {
        let (old, new) = (before.get_hash(k), after.get_hash(k));
        let moved = old != new;
        if moved {
            // Only the added or removed node's keys move.
            prop_assert!(
                old.map(String::as_str) == Some(changed)
                    || new.map(String::as_str) == Some(changed)
            );
        } else {
            // An unmoved key is never the changed node's: an added node had none before, and
            // a removed one has none after.
            prop_assert!(old.map(String::as_str) != Some(changed));
        }
        match plan.find(k) {
            Some(m) => {
                prop_assert!(moved, "plan moves an unmoved key {k}");
                prop_assert_eq!(Some(m.from()), old);
                prop_assert_eq!(Some(m.to()), new);
            }
            None => prop_assert!(
                !moved || old.is_none() || new.is_none(),
                "key {k} moved but not in plan"
            ),
        }
    }
    prop_assert_eq!(&before.diff(after).unwrap(), plan);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn moves_exactly_the_changed_nodes_keys(
        seed in any::<u64>(),
        n in 1u8..30,
        weight in 1u32..4,
        victim in any::<prop::sample::Index>(),
        key_seed in any::<u64>(),
    ) {
        let keys: Vec<u64> = (0..100_000u64)
            .map(|i| shardkit_hashring::stable_hash(key_seed, &i))
            .collect();
        let ring = HashRing::builder()
            .seed(seed)
            .vnodes(40)
            .nodes((0..n).map(name))
            .build()
            .unwrap();

        let mut grown = ring.clone();
        let plan = grown.add_weighted("newcomer".to_string(), weight).unwrap();
        check_movement(&ring, &grown, "newcomer", &plan, &keys)?;

        let mut shrunk = ring.clone();
        let gone = name(victim.index(n as usize) as u8);
        let plan = shrunk.remove(&gone).unwrap();
        check_movement(&ring, &shrunk, &gone, &plan, &keys)?;
    }
}
