//! A consistent-hashing ring for sharding keys across nodes: fast, deterministic across
//! processes and releases, and exact about what moves when membership changes.
//!
//! ```
//! use shardkit_hashring::HashRing;
//!
//! let mut ring = HashRing::new();
//! ring.add("db-1")?;
//! ring.add("db-2")?;
//! ring.add_weighted("db-3", 2)?; // a bigger machine: twice the keys
//!
//! // Route a key, and choose three distinct nodes to hold its copies.
//! let owner = ring.get("order:1001").unwrap();
//! let copies: Vec<_> = ring.replicas("order:1001", 3).collect();
//! assert_eq!(copies[0], owner);
//!
//! // Membership changes report exactly which hash ranges change owner.
//! let plan = ring.add("db-4")?;
//! for m in &plan {
//!     assert_eq!(*m.to(), "db-4"); // only keys the new node takes move
//! }
//! # Ok::<(), shardkit_hashring::Error>(())
//! ```
//!
//! # What it offers
//!
//! - [`HashRing`]: virtual nodes (default [`DEFAULT_VNODES`] per unit of weight), integer
//!   weights, O(1) expected lookup through a prefix-bucket index over the sorted points
//!   ([`get`](HashRing::get), [`get_hash`](HashRing::get_hash)), and Dynamo-style preference
//!   lists of distinct nodes ([`replicas`](HashRing::replicas)).
//! - **Rebalancing plans**: [`add`](HashRing::add), [`remove`](HashRing::remove),
//!   [`set_weight`](HashRing::set_weight) and [`diff`](HashRing::diff) return a
//!   [`Rebalance`]: the hash ranges that change owner, from which node to which, so a service
//!   knows exactly which data to migrate. A new weight moves keys only to or from its node.
//!   [`ranges_of`](HashRing::ranges_of) gives the ranges a node owns.
//! - **Replica-aware plans**: [`diff_replicas`](HashRing::diff_replicas) gives the ranges whose
//!   preference list of `n` nodes changes, with both lists, so a store keeping `n` copies
//!   knows which nodes need a copy ([`ReplicaMove::gained`]) and which may drop one
//!   ([`ReplicaMove::lost`]).
//! - [`BoundedLoads`]: consistent hashing with bounded loads; while keys are only placed, no
//!   node takes more than `c×` its fair share of them (see its docs for releases).
//! - [`SlotMap`]: a fixed number of slots (as Redis Cluster's 16,384) placed on the ring, with a
//!   slot-level diff; [`jump_hash`] for fixed bucket counts.
//! - [`SharedRing`]: readers never block and never see a half-built ring while a writer
//!   publishes the next version.
//! - [`Membership`] snapshots (serde with the `serde` feature) rebuild the same ring anywhere;
//!   a ring's snapshot is canonical, so equal rings serialize to the same bytes.
//!
//! # Guarantees
//!
//! - **Stable placement.** A key's hash is [`stable_hash`]: XXH3-64 over the byte slices its
//!   [`Hash`](std::hash::Hash) impl writes, with integers folded in little-endian and
//!   platform-independent (the exact scheme is in [`stable_hash`]'s docs). Point `i` of a node is
//!   output `i + 1` of SplitMix64 seeded with the node's own stable hash. The scheme is fixed and
//!   pinned by golden tests that an independent implementation agrees with: every process,
//!   platform and release of this major version maps keys the same way (on one condition
//!   outside this crate: that std's `Hash` impls keep writing what they write today, see
//!   [`stable_hash`]).
//! - **Minimal disruption.** Adding a node moves only keys to it; removing one moves only its
//!   keys; no key ever moves between two nodes that stay. Points at the same hash are ordered by
//!   their nodes' identity hashes, never by insertion order, so the guarantee holds on ties
//!   too and the same membership always gives the same ring.
//! - **Errors, not panics.** Zero weights, duplicate or missing nodes and empty rings are
//!   [`Error`]s. Asking [`replicas`](HashRing::replicas) for more nodes than the ring has yields
//!   each node once.
//!
//! # Costs
//!
//! | operation | time | notes |
//! |---|---|---|
//! | `get`, `get_hash` | O(1) expected | hash, one index read, a compare of a fixed window of 8 hashes |
//! | `replicas(key, n)` | O(n) expected for n ≤ 8, O(n²) above, with equal weights | no allocation for n ≤ 8; the walk passes a heavy node's points, so it grows with the heaviest weight over the lightest |
//! | `add`, `remove`, `set_weight` | O(points) memory moves + O(vnodes) | plan included |
//! | `ranges_of(node)` | O(its points × log) | sorted, adjacent ranges merged |
//! | build, `add_all` | O(points) | counting sort by bucket; no scratch copy of the points |
//! | `diff` | O(points of both rings) | |
//! | `diff_replicas(other, n)` | O(points of both × (log + n)) with equal weights | both lists found per stretch between points |
//!
//! Memory is about 11.5 bytes per point after a build while the ring has at most 65,536 nodes:
//! 8 for the hash, 2 for the owner, 1 for the index, and 1/64 spare capacity so that membership
//! changes rarely reallocate. The index is rebuilt only when membership changes take it outside
//! 2 to 8 points a bucket, so it costs 0.5 to 2 bytes a point in between. Owners take 2 more
//! bytes a point once the ring has held more than 65,536 nodes.
//!
//! # Features
//!
//! - `serde`: `Serialize`/`Deserialize` for [`Membership`] and [`HashRing`].
//!
//! The minimum supported Rust version is 1.88. The crate has no `unsafe` code.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod bounded;
mod error;
mod hash;
mod membership;
mod plan;
mod points;
mod replica_plan;
mod replicas;
mod ring;
mod shared;
mod slots;

pub use bounded::BoundedLoads;
pub use error::Error;
pub use hash::stable_hash;
pub use membership::Membership;
pub use plan::{HashRange, RangeMove, Rebalance};
pub use replica_plan::{ReplicaMove, ReplicaPlan};
pub use replicas::Replicas;
pub use ring::{DEFAULT_SEED, DEFAULT_VNODES, HashRing, MAX_POINTS, RingBuilder};
pub use shared::SharedRing;
pub use slots::{REDIS_CLUSTER_SLOTS, SlotMap, SlotMove, jump, jump_hash};

/// The README's examples, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
