//! Criterion benches of the ring workloads in `benches/README.md`: one group per workload, one
//! id per implementation, peers side by side. `cargo bench -p shardkit-benches --bench hashring`.

use std::hint::black_box;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_main};
use shardkit_benches::keys::RingKeys;
use shardkit_benches::rings::{
    AnchorHashCrate, ConsistentHashRing, HashRingsCrate, HashringCrate, JumpCrate, MaglevCrate,
    Ring, Shardkit,
};

const VNODES: u32 = 160;
const KEYS: usize = 1 << 16;

fn lookup_one<R: Ring>(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    nodes: u32,
    keys: &RingKeys,
) {
    let ring = R::build(nodes, VNODES);
    let mut i = 0;
    c.bench_function(BenchmarkId::new(R::NAME, nodes), |b| {
        b.iter(|| {
            i = (i + 1) & (KEYS - 1);
            black_box(ring.get(black_box(keys.get(i))))
        })
    });
}

fn lookup(c: &mut Criterion) {
    let keys = RingKeys::new(KEYS, 42);
    for nodes in [10, 100, 1000] {
        let mut group = c.benchmark_group(format!("ring_lookup/n={nodes}"));
        lookup_one::<Shardkit>(&mut group, nodes, &keys);
        lookup_one::<HashringCrate>(&mut group, nodes, &keys);
        lookup_one::<ConsistentHashRing>(&mut group, nodes, &keys);
        lookup_one::<HashRingsCrate>(&mut group, nodes, &keys);
        lookup_one::<AnchorHashCrate>(&mut group, nodes, &keys);
        lookup_one::<MaglevCrate>(&mut group, nodes, &keys);
        lookup_one::<JumpCrate>(&mut group, nodes, &keys);
        group.finish();
    }
}

fn replicas(c: &mut Criterion) {
    let keys = RingKeys::new(KEYS, 42);
    let ours = Shardkit::build(1000, VNODES);
    let peer = ConsistentHashRing::build(1000, VNODES);
    let mut group = c.benchmark_group("ring_replicas3/n=1000");
    let mut i = 0;
    group.bench_function("shardkit-hashring get", |b| {
        b.iter(|| {
            i = (i + 1) & (KEYS - 1);
            black_box(ours.get(black_box(keys.get(i))))
        })
    });
    group.bench_function("shardkit-hashring replicas", |b| {
        b.iter(|| {
            i = (i + 1) & (KEYS - 1);
            ours.0.replicas(black_box(keys.get(i)), 3).for_each(|n| {
                black_box(n);
            })
        })
    });
    group.bench_function(ConsistentHashRing::NAME, |b| {
        b.iter(|| {
            i = (i + 1) & (KEYS - 1);
            peer.0
                .replicas(black_box(keys.get(i)))
                .take(3)
                .for_each(|n| {
                    black_box(n);
                })
        })
    });
    group.finish();
}

fn churn_one<R: Ring>(c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    c.bench_function(BenchmarkId::new("build", R::NAME), |b| {
        b.iter(|| black_box(R::build(1000, VNODES)))
    });
    c.bench_function(BenchmarkId::new("add", R::NAME), |b| {
        b.iter_batched_ref(
            || R::build(1000, VNODES),
            |r| r.add(1000),
            BatchSize::LargeInput,
        )
    });
    c.bench_function(BenchmarkId::new("remove", R::NAME), |b| {
        b.iter_batched_ref(
            || R::build(1000, VNODES),
            |r| r.remove(417),
            BatchSize::LargeInput,
        )
    });
}

fn churn(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring_churn/n=1000");
    group.sample_size(10);
    churn_one::<Shardkit>(&mut group);
    churn_one::<HashringCrate>(&mut group);
    churn_one::<HashRingsCrate>(&mut group);
    churn_one::<AnchorHashCrate>(&mut group);
    churn_one::<JumpCrate>(&mut group);
    // consistent_hash_ring (about 2 s a build) and maglev (rebuilds on every change) are in the
    // `compare` runner's table; here they would dominate the run time.
    group.finish();
}

/// `criterion_group!` defines an undocumented public function.
mod harness {
    #![allow(missing_docs)]
    use super::{churn, lookup, replicas};
    criterion::criterion_group!(benches, lookup, replicas, churn);
}

criterion_main!(harness::benches);
