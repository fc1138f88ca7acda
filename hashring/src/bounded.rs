//! Consistent hashing with bounded loads (Mirrokni, Thorup and Zadimoghaddam, 2018).

use std::hash::Hash;

use crate::error::Error;
use crate::hash::stable_hash;
use crate::ring::{HashRing, with_points};

const MILLION: u64 = 1_000_000;

/// Places keys on a ring so that a node takes a key only while it holds fewer than
/// `⌈c · (m + 1) · w / W⌉` keys, `m` being the keys held before this one (`w` the node's weight,
/// `W` the total weight): a key goes to the first node clockwise from its hash that is below its
/// bound.
///
/// While keys are only placed, no node ever exceeds `⌈c · m · w / W⌉` of the `m` keys: with
/// `c = 1.25`, at most 25% above its fair share (plus the rounding of one key), which a plain
/// ring (7-9% standard deviation at 160 points per node, a worst node 25-35% above the mean) does
/// not promise. Releases lower `m` without moving keys, so after them a node may sit above the
/// current bound until keys leave it; new keys then go elsewhere. Keys still mostly land on their ring owner, so placement stays stable; HAProxy
/// and Vimeo use this scheme to spread connections.
///
/// The tracker borrows the ring: after a membership change, build a new tracker (and re-place
/// keys as the service sees fit). Callers report keys that leave with [`release`](Self::release).
///
/// # Examples
///
/// ```
/// use shardkit_hashring::{BoundedLoads, HashRing};
///
/// let ring = HashRing::builder().nodes(["a", "b", "c", "d"]).build()?;
/// let mut loads = BoundedLoads::new(&ring, 1.25)?;
/// for key in 0..10_000u32 {
///     loads.place(&key)?;
/// }
/// let max = ring.nodes().map(|n| loads.load(n).unwrap()).max().unwrap();
/// assert!(max as f64 <= 1.25 * 10_000.0 / 4.0);
/// loads.release(&"a")?;
/// # Ok::<(), shardkit_hashring::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct BoundedLoads<'r, N> {
    ring: &'r HashRing<N>,
    /// The factor `c` in millionths, so that bounds are exact in integers: `1.1` as an `f64` is
    /// a hair above 1.1, and `⌈1.1 · 100,000 / 100⌉` computed in floating point came out 1,101.
    factor_millionths: u64,
    loads: Vec<u64>,
    total: u64,
    total_weight: u64,
}

impl<'r, N: Hash + Eq + Clone> BoundedLoads<'r, N> {
    /// A tracker with no keys placed, bounding every node to `factor` times its fair share
    /// (`factor` is taken to the nearest millionth, so decimal factors give exact bounds).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLoadFactor`] unless `factor` is finite and `>= 1.0`.
    pub fn new(ring: &'r HashRing<N>, factor: f64) -> Result<Self, Error> {
        if !(factor >= 1.0 && factor.is_finite()) {
            return Err(Error::InvalidLoadFactor(factor));
        }
        let total_weight = ring.weighted_nodes().map(|(_, w)| u64::from(w)).sum();
        Ok(Self {
            ring,
            // Saturates for absurd factors, which leave the nodes unbounded anyway.
            factor_millionths: (factor * MILLION as f64).round() as u64,
            loads: vec![0; ring.len()],
            total: 0,
            total_weight,
        })
    }

    /// Places one key and returns its node, counting the key against that node.
    ///
    /// # Errors
    ///
    /// [`Error::EmptyRing`] if the ring has no nodes.
    pub fn place<K: Hash + ?Sized>(&mut self, key: &K) -> Result<&'r N, Error> {
        self.place_hash(stable_hash(self.ring.seed(), key))
    }

    /// [`place`](Self::place) for a pre-hashed key.
    ///
    /// # Errors
    ///
    /// [`Error::EmptyRing`] if the ring has no nodes.
    pub fn place_hash(&mut self, hash: u64) -> Result<&'r N, Error> {
        let ring = self.ring;
        let owner = with_points!(&ring.store, p => {
            let mut i = p.successor(hash).ok_or(Error::EmptyRing)?;
            // The bounds add up to at least c·(m+1) > m keys, so some node is below its bound
            // and the walk ends within one turn.
            loop {
                let owner = p.owner(i);
                if self.loads[owner as usize] < self.bound(owner) {
                    break owner;
                }
                i = if i + 1 == p.len() { 0 } else { i + 1 };
            }
        });
        self.loads[owner as usize] += 1;
        self.total += 1;
        Ok(&ring.members[owner as usize].node)
    }

    /// The most keys member `owner` may hold once one more key is placed:
    /// `⌈c · (m + 1) · w / W⌉`, in integers.
    fn bound(&self, owner: u32) -> u64 {
        let weight = u128::from(self.ring.members[owner as usize].weight);
        let share = u128::from(self.factor_millionths)
            .checked_mul(u128::from(self.total) + 1)
            .and_then(|n| n.checked_mul(weight));
        let whole = u128::from(MILLION) * u128::from(self.total_weight);
        // An overflow needs a factor far beyond any bound that could bind.
        share.map_or(u64::MAX, |share| {
            u64::try_from(share.div_ceil(whole)).unwrap_or(u64::MAX)
        })
    }

    /// Records that a key placed on `node` has left it.
    ///
    /// # Errors
    ///
    /// [`Error::NodeNotFound`] if `node` is not on the ring, [`Error::NoLoadToRelease`] if it
    /// holds no keys.
    pub fn release<Q>(&mut self, node: &Q) -> Result<(), Error>
    where
        N: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = self.ring.member_index(node).ok_or(Error::NodeNotFound)? as usize;
        if self.loads[i] == 0 {
            return Err(Error::NoLoadToRelease);
        }
        self.loads[i] -= 1;
        self.total -= 1;
        Ok(())
    }

    /// The keys `node` holds, or `None` if it is not on the ring.
    pub fn load<Q>(&self, node: &Q) -> Option<u64>
    where
        N: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.ring.member_index(node).map(|i| self.loads[i as usize])
    }

    /// The keys placed and not released.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Every node with the keys it holds.
    pub fn loads(&self) -> impl Iterator<Item = (&'r N, u64)> + '_ {
        self.ring.nodes().zip(self.loads.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In floating point, `1.1 · 100,000 / 100` is a hair above 1,100, and its ceiling 1,101.
    #[test]
    fn bounds_are_exact_for_decimal_factors() {
        let ring = HashRing::builder()
            .nodes((0..100).map(|i| format!("n{i}")))
            .build()
            .unwrap();
        let mut loads = BoundedLoads::new(&ring, 1.1).unwrap();
        loads.total = 99_999;
        assert_eq!(loads.bound(0), 1_100);
        loads.total = 100_000;
        assert_eq!(loads.bound(0), 1_101);
        // An absurd factor saturates without overflowing: in effect, no bound.
        let mut unbounded = BoundedLoads::new(&ring, 1e300).unwrap();
        unbounded.total = u64::MAX - 1;
        assert_eq!(unbounded.bound(0), u64::MAX);
    }
}
