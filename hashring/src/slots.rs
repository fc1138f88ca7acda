//! Fixed slots placed on a ring, and jump consistent hashing for fixed bucket counts.

use std::hash::Hash;

use crate::error::Error;
use crate::hash::stable_hash;
use crate::ring::HashRing;

/// Redis Cluster's slot count, a common choice for [`HashRing::slot_map`].
pub const REDIS_CLUSTER_SLOTS: u32 = 16_384;

/// A key's slot out of `slots`: the top bits of its hash scaled to the slot count (uniform, and
/// no modulo bias).
#[inline]
fn slot_of_hash(hash: u64, slots: u32) -> u32 {
    ((u128::from(hash) * u128::from(slots)) >> 64) as u32
}

/// A fixed number of slots, each owned by a node of a ring.
///
/// Services that shard into a fixed number of slots (as Redis Cluster's 16,384) map each key to
/// a slot once and for all, and move whole slots between nodes: a slot's data is the unit of
/// migration. Slot `s` sits on the ring at the hash of `s` (as a `u32`), so a membership change
/// moves only the slots whose ring owner changed; [`SlotMap::diff`] lists them.
///
/// # Examples
///
/// ```
/// use shardkit_hashring::HashRing;
///
/// let mut ring = HashRing::builder().nodes(["a", "b", "c"]).build()?;
/// let before = ring.slot_map(1024)?;
/// let slot = before.slot_of("user:7");
/// assert_eq!(before.get("user:7"), before.owner(slot)?);
///
/// ring.add("d")?;
/// let after = ring.slot_map(1024)?;
/// let moves = before.diff(&after)?;
/// assert!(moves.iter().all(|m| *m.to == "d"));
/// # Ok::<(), shardkit_hashring::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SlotMap<N> {
    seed: u64,
    owners: Vec<u32>,
    nodes: Vec<N>,
}

/// A slot that changes owner between two slot maps.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SlotMove<'a, N> {
    /// The slot.
    pub slot: u32,
    /// Its owner in the first map.
    pub from: &'a N,
    /// Its owner in the second map.
    pub to: &'a N,
}

impl<N: Hash + Eq + Clone> HashRing<N> {
    /// Places `slots` fixed slots on the ring.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroBuckets`] for zero slots, [`Error::EmptyRing`] if the ring has no nodes.
    pub fn slot_map(&self, slots: u32) -> Result<SlotMap<N>, Error> {
        if slots == 0 {
            return Err(Error::ZeroBuckets);
        }
        if self.is_empty() {
            return Err(Error::EmptyRing);
        }
        let owners = (0..slots)
            .map(|s| {
                self.owner_index(slot_point(self.seed, s))
                    .ok_or(Error::EmptyRing)
            })
            .collect::<Result<_, _>>()?;
        Ok(SlotMap {
            seed: self.seed,
            owners,
            nodes: self.nodes().cloned().collect(),
        })
    }
}

/// Where slot `slot` sits on a ring with `seed`.
fn slot_point(seed: u64, slot: u32) -> u64 {
    stable_hash(seed, &slot)
}

impl<N> SlotMap<N> {
    /// The number of slots.
    pub fn slot_count(&self) -> u32 {
        self.owners.len() as u32
    }

    /// The slot of `key`.
    pub fn slot_of<K: Hash + ?Sized>(&self, key: &K) -> u32 {
        slot_of_hash(stable_hash(self.seed, key), self.slot_count())
    }

    /// The node owning `key`'s slot.
    pub fn get<K: Hash + ?Sized>(&self, key: &K) -> &N {
        &self.nodes[self.owners[self.slot_of(key) as usize] as usize]
    }

    /// The node owning `slot`.
    ///
    /// # Errors
    ///
    /// [`Error::SlotOutOfRange`] unless `slot < slot_count()`.
    pub fn owner(&self, slot: u32) -> Result<&N, Error> {
        let slots = self.slot_count();
        let owner = self
            .owners
            .get(slot as usize)
            .ok_or(Error::SlotOutOfRange { slot, slots })?;
        Ok(&self.nodes[*owner as usize])
    }

    /// The position of `slot` on the ring, for [`HashRing::replicas_hash`] (the slot's
    /// preference list).
    ///
    /// # Errors
    ///
    /// [`Error::SlotOutOfRange`] unless `slot < slot_count()`.
    pub fn slot_hash(&self, slot: u32) -> Result<u64, Error> {
        let slots = self.slot_count();
        if slot >= slots {
            return Err(Error::SlotOutOfRange { slot, slots });
        }
        Ok(slot_point(self.seed, slot))
    }

    /// Every slot with its owner, in slot order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (u32, &N)> + '_ {
        self.owners
            .iter()
            .enumerate()
            .map(|(s, &o)| (s as u32, &self.nodes[o as usize]))
    }
}

impl<N: Eq> SlotMap<N> {
    /// The slots whose owner differs between `self` and `other`.
    ///
    /// # Errors
    ///
    /// [`Error::SeedMismatch`] if the maps come from rings with different seeds, and
    /// [`Error::SlotCountMismatch`] if their slot counts differ.
    pub fn diff<'a>(&'a self, other: &'a SlotMap<N>) -> Result<Vec<SlotMove<'a, N>>, Error> {
        if self.seed != other.seed {
            return Err(Error::SeedMismatch {
                left: self.seed,
                right: other.seed,
            });
        }
        if self.slot_count() != other.slot_count() {
            return Err(Error::SlotCountMismatch {
                left: self.slot_count(),
                right: other.slot_count(),
            });
        }
        Ok(self
            .iter()
            .zip(other.iter())
            .filter(|((_, a), (_, b))| a != b)
            .map(|((slot, from), (_, to))| SlotMove { slot, from, to })
            .collect())
    }
}

/// Jump consistent hash (Lamping and Veach, 2014): the bucket in `0..buckets` of a 64-bit key
/// hash. Growing `buckets` by one moves exactly the keys the new bucket gets; there is no
/// memory and no per-node state, but buckets can only be added or removed at the end.
///
/// # Examples
///
/// ```
/// use shardkit_hashring::jump_hash;
///
/// let b = jump_hash(0xdead_beef, 10)?;
/// assert!(b < 10);
/// // Growing to 11 buckets either keeps the key or moves it to the new bucket.
/// let grown = jump_hash(0xdead_beef, 11)?;
/// assert!(grown == b || grown == 10);
/// # Ok::<(), shardkit_hashring::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::ZeroBuckets`] if `buckets` is 0.
pub fn jump_hash(key_hash: u64, buckets: u32) -> Result<u32, Error> {
    if buckets == 0 {
        return Err(Error::ZeroBuckets);
    }
    let mut key = key_hash;
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    Ok(b as u32)
}

/// [`jump_hash`] of any hashable key, hashed with [`stable_hash`](crate::stable_hash) and
/// seed 0.
///
/// # Errors
///
/// [`Error::ZeroBuckets`] if `buckets` is 0.
pub fn jump<K: Hash + ?Sized>(key: &K, buckets: u32) -> Result<u32, Error> {
    jump_hash(stable_hash(0, key), buckets)
}
