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
    SetWeight(u8, u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..40, 1u32..4).prop_map(|(n, w)| Op::Add(n, w)),
        (0u8..40).prop_map(Op::Remove),
        (0u8..40, 1u32..5).prop_map(|(n, w)| Op::SetWeight(n, w)),
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
        Op::SetWeight(n, w) => {
            let member = members.iter_mut().find(|(m, _)| *m == name(n));
            let present = member.is_some();
            if let Some(member) = member {
                member.1 = w;
            }
            let result = ring.set_weight(&name(n), w);
            assert_eq!(result.is_ok(), present, "set weight {n}: {result:?}");
        }
    }
}

/// Checks that the members' `ranges_of` split the hash space between them exactly, each
/// range owned, at both ends, by its member.
fn check_ranges(ring: &HashRing<String>, keys: &[u64]) -> Result<(), TestCaseError> {
    let mut all = Vec::new();
    for node in ring.nodes() {
        let ranges = ring.ranges_of(node).unwrap();
        for r in &ranges {
            prop_assert_eq!(ring.get_hash(r.start()), Some(node));
            prop_assert_eq!(ring.get_hash(r.end()), Some(node));
        }
        for &k in keys {
            let inside = ranges.iter().any(|r| r.contains(k));
            prop_assert_eq!(inside, ring.get_hash(k) == Some(node));
        }
        all.extend(ranges);
    }
    all.sort_by_key(|r| r.start());
    if let (Some(first), Some(last)) = (all.first(), all.last()) {
        prop_assert_eq!(first.start(), 0);
        prop_assert_eq!(last.end(), u64::MAX);
    }
    for pair in all.windows(2) {
        prop_assert_eq!(pair[0].end() + 1, pair[1].start(), "a gap or an overlap");
    }
    prop_assert_eq!(ring.ranges_of("not a member"), None);
    Ok(())
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
            check_ranges(&ring, &keys)?;
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
        } else if before.contains(changed) != after.contains(changed) {
            // An unmoved key is never an added or removed node's: an added node had none
            // before, and a removed one has none after.
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

/// Checks `before.diff_replicas(after, n)` against each ring's own preference lists: at random
/// keys, and at both edges of every range and just outside them (where an off-by-one would
/// show); with `n = 1` its ranges must be `diff`'s.
fn check_replica_plan(
    before: &HashRing<String>,
    after: &HashRing<String>,
    n: usize,
    keys: &[u64],
) -> Result<(), TestCaseError> {
    let plan = before.diff_replicas(after, n).unwrap();
    if before.is_empty() || after.is_empty() {
        // As with `diff`: no key moves between two nodes.
        prop_assert!(plan.is_empty());
        return Ok(());
    }
    let lists = |ring: &HashRing<String>, hash: u64| -> Vec<String> {
        ring.replicas_hash(hash, n).cloned().collect()
    };
    let check = |hash: u64| -> Result<(), TestCaseError> {
        let (old, new) = (lists(before, hash), lists(after, hash));
        match plan.find(hash) {
            Some(m) => {
                prop_assert_ne!(&old, &new, "an unchanged list at {} is in the plan", hash);
                prop_assert_eq!(m.before(), &old[..]);
                prop_assert_eq!(m.after(), &new[..]);
            }
            None => prop_assert_eq!(old, new, "a changed list at {} is missing", hash),
        }
        Ok(())
    };
    // The two ends of the hash space, where the stretch past the last point wraps.
    for &k in keys.iter().chain(&[0, u64::MAX]) {
        check(k)?;
    }
    for m in &plan {
        let r = m.range();
        for hash in [
            Some(r.start()),
            Some(r.end()),
            r.start().checked_sub(1),
            r.end().checked_add(1),
        ]
        .into_iter()
        .flatten()
        {
            check(hash)?;
        }
    }
    for pair in plan.iter().collect::<Vec<_>>().windows(2) {
        let (a, b) = (pair[0], pair[1]);
        prop_assert!(
            a.range().end() < b.range().start(),
            "out of order or overlapping"
        );
        if a.range().end() + 1 == b.range().start() {
            prop_assert!(
                a.before() != b.before() || a.after() != b.after(),
                "not merged"
            );
        }
    }
    if n == 1 {
        let moves: Vec<_> = before.diff(after).unwrap().into_iter().collect();
        prop_assert_eq!(moves.len(), plan.len());
        for (m, r) in moves.iter().zip(&plan) {
            prop_assert_eq!(m.range(), r.range());
            prop_assert_eq!((m.from(), m.to()), (&r.before()[0], &r.after()[0]));
        }
    }
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
        for n in [1, 3] {
            check_replica_plan(&ring, &grown, n, &keys[..20_000])?;
            // Only the newcomer takes copies; every changed list has it.
            let plan = ring.diff_replicas(&grown, n).unwrap();
            prop_assert!(plan.iter().all(|m| m.gained().all(|g| g == "newcomer")));
            prop_assert!(plan.iter().all(|m| !m.reordered_only()));
        }

        let mut shrunk = ring.clone();
        let gone = name(victim.index(n as usize) as u8);
        let plan = shrunk.remove(&gone).unwrap();
        check_movement(&ring, &shrunk, &gone, &plan, &keys)?;
        check_replica_plan(&ring, &shrunk, 3, &keys[..20_000])?;
        // Every list that changes loses the removed node, so none is a mere reordering, even
        // when too few nodes are left to take its place (the list only shrinks).
        for m in &ring.diff_replicas(&shrunk, 3).unwrap() {
            prop_assert!(m.lost().any(|l| *l == gone) && !m.reordered_only());
        }

        // A new weight moves keys only to the node (growing) or only from it (shrinking).
        let mut heavier = ring.clone();
        let plan = heavier.set_weight(&gone, 1 + weight).unwrap();
        // (With one node, it owns everything at any weight.)
        prop_assert_eq!(plan.is_empty(), n == 1);
        prop_assert!(plan.iter().all(|m| *m.to() == gone));
        check_movement(&ring, &heavier, &gone, &plan, &keys)?;
        let mut lighter = heavier.clone();
        let plan = lighter.set_weight(&gone, 1).unwrap();
        prop_assert_eq!(plan.is_empty(), n == 1);
        prop_assert!(plan.iter().all(|m| *m.from() == gone));
        check_movement(&heavier, &lighter, &gone, &plan, &keys)?;
        prop_assert_eq!(&lighter, &ring);
        prop_assert!(lighter.set_weight(&gone, 1).unwrap().is_empty());
    }
}
