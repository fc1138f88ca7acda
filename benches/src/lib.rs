//! Shared pieces of the shardkit benchmarks: seeded workload generators and adapters that give
//! every peer crate the same interface, so the criterion benches and the `compare` runner
//! measure exactly the same thing. Workloads are defined in `benches/README.md`.

pub mod caches;
pub mod keys;
pub mod machine;
pub mod rings;
pub mod stats;
