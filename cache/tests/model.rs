//! Random sequences of operations agree with a `HashMap` model: with room for every key the
//! cache holds exactly what the model does; with less, it holds a subset (values always the
//! model's, and an evicted key never comes back on its own), within its capacity.

use std::collections::HashMap;

use proptest::prelude::*;
use shardkit_cache::Cache;

#[derive(Debug, Clone)]
enum Op {
    Get(u8),
    Insert(u8, u32),
    Remove(u8),
    Retain(u8),
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u8..24).prop_map(Op::Get),
        8 => (0u8..24, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
        2 => (0u8..24).prop_map(Op::Remove),
        1 => (1u8..5).prop_map(Op::Retain),
        1 => Just(Op::Clear),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(debug_assertions) { 64 } else { 512 }))]

    #[test]
    fn the_cache_agrees_with_a_map(ops in prop::collection::vec(op(), 1..300), roomy in any::<bool>(), shards in 0u32..3) {
        let capacity = if roomy { 24 * (1 << shards) * 4 } else { 6 };
        let cache = Cache::builder().max_capacity(capacity).shards(1 << shards).build().unwrap();
        let mut model: HashMap<u8, u32> = HashMap::new();
        for op in ops {
            match op {
                Op::Get(k) => {
                    let got = cache.get(&k);
                    match (got, model.get(&k)) {
                        (Some(v), Some(&m)) => prop_assert_eq!(v, m),
                        (None, Some(_)) => {
                            // Evicted: allowed only when the cache is short of room.
                            prop_assert!(!roomy, "key {} lost with room to spare", k);
                            model.remove(&k);
                        }
                        (Some(v), None) => prop_assert!(false, "key {} came back with {}", k, v),
                        (None, None) => {}
                    }
                }
                Op::Insert(k, v) => {
                    cache.insert(k, v);
                    model.insert(k, v);
                }
                Op::Remove(k) => {
                    let got = cache.remove(&k);
                    let expected = model.remove(&k);
                    if roomy {
                        prop_assert_eq!(got, expected);
                    } else if let Some(v) = got {
                        prop_assert_eq!(Some(v), expected);
                    }
                }
                Op::Retain(m) => {
                    cache.retain(|k, _| k % m != 0);
                    model.retain(|k, _| k % m != 0);
                }
                Op::Clear => {
                    cache.clear();
                    model.clear();
                }
            }
            prop_assert!(cache.len() as u64 <= capacity);
            if roomy {
                prop_assert_eq!(cache.len(), model.len());
            }
            for (k, v) in cache.iter() {
                prop_assert_eq!(model.get(&k), Some(&v));
            }
        }
    }
}
