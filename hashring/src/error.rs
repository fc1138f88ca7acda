//! The crate's one error type.

use std::fmt;

/// What went wrong in a ring operation. Every fallible call in this crate returns it; no call
/// panics on bad input.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A node was added with weight 0; a node must own at least one point.
    ZeroWeight,
    /// The builder was given 0 virtual nodes per unit of weight.
    ZeroVnodes,
    /// The node is already a member; remove it first or use a different identity.
    DuplicateNode,
    /// The node is not a member of the ring.
    NodeNotFound,
    /// Two different nodes hash to the same 64-bit identity, so their points could not be
    /// ordered by identity. Vanishingly rare (about 2^-64 per pair); rename one of them. (Single
    /// points of two nodes may still coincide, about once in 2^63 / vnodes pairs; such ties are
    /// ordered by identity and need no action.)
    NodeHashCollision,
    /// The ring would hold more than [`MAX_POINTS`](crate::MAX_POINTS) points.
    TooManyPoints {
        /// How many points the ring would have held.
        points: u64,
    },
    /// Two rings built with different seeds were compared; their hash spaces do not match.
    SeedMismatch {
        /// This ring's seed.
        left: u64,
        /// The other ring's seed.
        right: u64,
    },
    /// A bounded-load factor below 1.0, infinite, or not a number was given; no assignment can
    /// keep every node below the average, and an infinite one bounds nothing.
    InvalidLoadFactor(f64),
    /// A bounded-load release named a node that holds no load.
    NoLoadToRelease,
    /// A slot map or jump lookup was asked for zero slots or buckets.
    ZeroBuckets,
    /// A slot number outside `0..slot_count` was given.
    SlotOutOfRange {
        /// The slot that was asked for.
        slot: u32,
        /// The number of slots in the map.
        slots: u32,
    },
    /// The operation needs at least one node, and the ring is empty.
    EmptyRing,
    /// Two slot maps with different slot counts were compared.
    SlotCountMismatch {
        /// This map's slot count.
        left: u32,
        /// The other map's slot count.
        right: u32,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ZeroWeight => f.write_str("node weight must be at least 1"),
            Error::ZeroVnodes => f.write_str("vnodes per unit of weight must be at least 1"),
            Error::DuplicateNode => f.write_str("node is already in the ring"),
            Error::NodeNotFound => f.write_str("node is not in the ring"),
            Error::NodeHashCollision => f.write_str(
                "node identity hashes to the same 64-bit value as an existing node; rename it",
            ),
            Error::TooManyPoints { points } => {
                write!(
                    f,
                    "ring would hold {points} points, more than {}; lower weights or vnodes",
                    crate::MAX_POINTS
                )
            }
            Error::SeedMismatch { left, right } => write!(
                f,
                "rings use different hash seeds ({left:#x} vs {right:#x}); only rings with the same seed can be compared"
            ),
            Error::InvalidLoadFactor(c) => {
                write!(f, "bounded-load factor must be a number >= 1.0, got {c}")
            }
            Error::NoLoadToRelease => f.write_str("release of a node that holds no load"),
            Error::ZeroBuckets => f.write_str("the number of slots or buckets must be at least 1"),
            Error::SlotOutOfRange { slot, slots } => {
                write!(f, "slot {slot} is out of range; the map has {slots} slots")
            }
            Error::EmptyRing => f.write_str("the ring has no nodes"),
            Error::SlotCountMismatch { left, right } => write!(
                f,
                "slot maps have different slot counts ({left} vs {right}); only maps of the same size can be compared"
            ),
        }
    }
}

impl std::error::Error for Error {}
