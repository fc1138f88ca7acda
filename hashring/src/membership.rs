//! Membership snapshots: what a ring is made of, to store, send and rebuild it.

use std::hash::Hash;

use crate::error::Error;
use crate::ring::HashRing;

/// Everything that determines a ring: seed, points per unit of weight, and the weighted nodes.
/// The same membership always rebuilds the same ring, in any process and on any platform, and
/// whatever the order of `nodes`. A ring's own [`membership`](HashRing::membership) is
/// canonical: equal rings give equal memberships, which serialize to the same bytes.
///
/// With the `serde` feature it is `Serialize`/`Deserialize`, and so is [`HashRing`] (as its
/// membership).
///
/// # Examples
///
/// ```
/// use shardkit_hashring::{HashRing, Membership};
///
/// let ring = HashRing::builder().seed(9).nodes(["a", "b", "c"]).build()?;
/// let copy = HashRing::from_membership(ring.membership())?;
/// assert_eq!(copy.get("some key"), ring.get("some key"));
/// # Ok::<(), shardkit_hashring::Error>(())
/// ```
///
/// With the `serde` feature, a ring travels as its membership (here as JSON):
///
/// ```
/// # #[cfg(feature = "serde")]
/// # {
/// use shardkit_hashring::HashRing;
///
/// let ring: HashRing<String> = HashRing::builder().nodes(["a".to_string(), "b".to_string()]).build()?;
/// let json = serde_json::to_string(&ring).unwrap();
/// // The nodes in the order of their identity hashes: the same JSON for an equal ring built
/// // in any order.
/// assert_eq!(json, r#"{"seed":0,"vnodes_per_weight":160,"nodes":[["b",1],["a",1]]}"#);
/// let back: HashRing<String> = serde_json::from_str(&json).unwrap();
/// assert_eq!(back.get("key"), ring.get("key"));
/// # }
/// # Ok::<(), shardkit_hashring::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Membership<N> {
    /// The hash seed.
    pub seed: u64,
    /// Points per unit of weight.
    pub vnodes_per_weight: u32,
    /// The nodes with their weights.
    pub nodes: Vec<(N, u32)>,
}

impl<N: Hash + Eq + Clone> HashRing<N> {
    /// This ring's membership, canonical: its nodes in the order of their identity hashes
    /// (each node's [`stable_hash`](crate::stable_hash) under the ring's seed), not the order
    /// they came in. Rings that are equal (that route every key alike) give equal
    /// memberships, and so the same bytes when serialized: a service can hash or compare the
    /// snapshots it stores or sends.
    pub fn membership(&self) -> Membership<N> {
        let mut members: Vec<_> = self.members.iter().collect();
        members.sort_unstable_by_key(|m| m.hash);
        Membership {
            seed: self.seed(),
            vnodes_per_weight: self.vnodes_per_weight(),
            nodes: members
                .into_iter()
                .map(|m| (m.node.clone(), m.weight))
                .collect(),
        }
    }

    /// Rebuilds a ring from a membership.
    ///
    /// # Errors
    ///
    /// As [`RingBuilder::build`](crate::RingBuilder::build): zero vnodes or weights, duplicate
    /// nodes, too many points.
    pub fn from_membership(membership: Membership<N>) -> Result<Self, Error> {
        HashRing::builder()
            .seed(membership.seed)
            .vnodes(membership.vnodes_per_weight)
            .weighted_nodes(membership.nodes)
            .build()
    }
}

#[cfg(feature = "serde")]
impl<N: Hash + Eq + Clone + serde::Serialize> serde::Serialize for HashRing<N> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.membership().serialize(serializer)
    }
}

#[cfg(feature = "serde")]
impl<'de, N: Hash + Eq + Clone + serde::Deserialize<'de>> serde::Deserialize<'de> for HashRing<N> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let membership = Membership::deserialize(deserializer)?;
        HashRing::from_membership(membership).map_err(serde::de::Error::custom)
    }
}
