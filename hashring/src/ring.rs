//! The ring: membership, virtual nodes and key lookup.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;

use crate::error::Error;
use crate::hash::{point_hash, stable_hash};
use crate::plan::{self, HashRange, Rebalance};
use crate::points::{OwnerId, Point, Points};
use crate::replica_plan::{self, ReplicaPlan};
use crate::replicas::Replicas;

/// Virtual nodes per unit of weight when the builder is not told otherwise (ketama's figure).
pub const DEFAULT_VNODES: u32 = 160;

/// The seed of [`HashRing::new`]. Rings that must agree on key placement need the same seed.
pub const DEFAULT_SEED: u64 = 0;

/// The most points a ring holds (weights times virtual nodes, summed): 2^28, about 2.7 GB of
/// ring, or a million nodes at the default 160 points each and a weight of one. A request for
/// more, from a weight or a deserialized snapshot, is [`Error::TooManyPoints`] rather than an
/// allocation that could abort the process.
pub const MAX_POINTS: u32 = 1 << 28;

/// One member of the ring.
#[derive(Debug, Clone)]
pub(crate) struct Member<N> {
    pub(crate) node: N,
    /// The node's identity hash: orders tied points and seeds the node's point positions.
    pub(crate) hash: u64,
    pub(crate) weight: u32,
}

/// The points, with owner indices as narrow as the node count allows.
#[derive(Debug, Clone)]
pub(crate) enum Store {
    Narrow(Points<u16>),
    Wide(Points<u32>),
}

/// Runs `$body` with `$p` bound to the store's points, whatever their owner width.
macro_rules! with_points {
    ($store:expr, $p:ident => $body:expr) => {
        match $store {
            $crate::ring::Store::Narrow($p) => $body,
            $crate::ring::Store::Wide($p) => $body,
        }
    };
}
pub(crate) use with_points;

/// A consistent-hashing ring with virtual nodes.
///
/// Each node owns `weight × vnodes` points on a 64-bit circle; a key belongs to the node owning
/// the first point at or after the key's hash, wrapping past the top. Lookups take O(1) expected
/// time (a prefix-bucket index over the sorted points); [`add`](Self::add) and
/// [`remove`](Self::remove) take O(points) memory moves and return the [`Rebalance`] plan of the
/// hash ranges that changed owner.
///
/// # Examples
///
/// ```
/// use shardkit_hashring::HashRing;
///
/// let mut ring = HashRing::new();
/// ring.add("cache-1")?;
/// ring.add("cache-2")?;
/// ring.add_weighted("cache-3", 2)?; // twice the share of keys
///
/// let owner = ring.get("user:1234").unwrap();
/// assert!(["cache-1", "cache-2", "cache-3"].contains(owner));
///
/// // Three distinct nodes to hold copies, in preference order.
/// let copies: Vec<_> = ring.replicas("user:1234", 3).collect();
/// assert_eq!(copies.len(), 3);
/// assert_eq!(copies[0], owner);
/// # Ok::<(), shardkit_hashring::Error>(())
/// ```
#[derive(Clone)]
pub struct HashRing<N> {
    pub(crate) seed: u64,
    pub(crate) vnodes: u32,
    pub(crate) members: Vec<Member<N>>,
    /// Member index by identity hash.
    index: HashMap<u64, u32>,
    pub(crate) store: Store,
}

/// Builds a [`HashRing`] with a chosen seed, virtual-node count and initial members.
///
/// # Examples
///
/// ```
/// use shardkit_hashring::HashRing;
///
/// let ring = HashRing::builder()
///     .vnodes(100)
///     .seed(0x5eed)
///     .nodes(["a", "b", "c"])
///     .weighted_node("d", 3)
///     .build()?;
/// assert_eq!(ring.len(), 4);
/// assert_eq!(ring.point_count(), 600);
/// # Ok::<(), shardkit_hashring::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct RingBuilder<N> {
    seed: u64,
    vnodes: u32,
    nodes: Vec<(N, u32)>,
}

impl<N> Default for RingBuilder<N> {
    fn default() -> Self {
        Self {
            seed: DEFAULT_SEED,
            vnodes: DEFAULT_VNODES,
            nodes: Vec::new(),
        }
    }
}

impl<N: Hash + Eq + Clone> RingBuilder<N> {
    /// Virtual nodes (points) per unit of weight; default [`DEFAULT_VNODES`]. More points give a
    /// more even spread at the cost of memory (about 11 bytes a point).
    pub fn vnodes(mut self, vnodes: u32) -> Self {
        self.vnodes = vnodes;
        self
    }

    /// The hash seed; default [`DEFAULT_SEED`]. Every process that must route keys the same way
    /// has to use the same seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Adds nodes of weight 1.
    pub fn nodes(mut self, nodes: impl IntoIterator<Item = N>) -> Self {
        self.nodes.extend(nodes.into_iter().map(|n| (n, 1)));
        self
    }

    /// Adds one node with a weight.
    pub fn weighted_node(mut self, node: N, weight: u32) -> Self {
        self.nodes.push((node, weight));
        self
    }

    /// Adds nodes with weights.
    pub fn weighted_nodes(mut self, nodes: impl IntoIterator<Item = (N, u32)>) -> Self {
        self.nodes.extend(nodes);
        self
    }

    /// Builds the ring in one pass: O(points) time, and no memory beyond the ring's own.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroVnodes`], and those of [`HashRing::add_all`].
    pub fn build(self) -> Result<HashRing<N>, Error> {
        if self.vnodes == 0 {
            return Err(Error::ZeroVnodes);
        }
        let mut ring = HashRing {
            seed: self.seed,
            vnodes: self.vnodes,
            members: Vec::new(),
            index: HashMap::new(),
            store: Store::Narrow(Points::empty()),
        };
        ring.add_all(self.nodes)?;
        Ok(ring)
    }
}

impl<N: Hash + Eq + Clone> Default for HashRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<N: Hash + Eq + Clone> HashRing<N> {
    /// An empty ring with [`DEFAULT_VNODES`] points per unit of weight and [`DEFAULT_SEED`].
    pub fn new() -> Self {
        Self {
            seed: DEFAULT_SEED,
            vnodes: DEFAULT_VNODES,
            members: Vec::new(),
            index: HashMap::new(),
            store: Store::Narrow(Points::empty()),
        }
    }

    /// A builder for a ring with another seed, point count or initial members.
    pub fn builder() -> RingBuilder<N> {
        RingBuilder::default()
    }

    /// Adds a node of weight 1.
    ///
    /// Only keys that the new node now owns move, each from the node that owned it before; the
    /// returned plan lists those hash ranges (none when the ring was empty: no key had a node).
    ///
    /// # Errors
    ///
    /// See [`add_weighted`](Self::add_weighted).
    pub fn add(&mut self, node: N) -> Result<Rebalance<N>, Error> {
        self.add_weighted(node, 1)
    }

    /// Adds a node owning `weight × vnodes` points, and returns the ranges it takes over.
    ///
    /// # Examples
    ///
    /// ```
    /// use shardkit_hashring::HashRing;
    ///
    /// let mut ring = HashRing::new();
    /// ring.add("a")?;
    /// let plan = ring.add_weighted("b", 3)?;
    /// assert!(plan.iter().all(|m| *m.from() == "a" && *m.to() == "b"));
    /// // "b" has 3/4 of the points, so it takes about 3/4 of the hash space.
    /// assert!((plan.moved_fraction() - 0.75).abs() < 0.1);
    /// # Ok::<(), shardkit_hashring::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::ZeroWeight`], [`Error::DuplicateNode`], [`Error::NodeHashCollision`], or
    /// [`Error::TooManyPoints`]. The ring is unchanged on error.
    pub fn add_weighted(&mut self, node: N, weight: u32) -> Result<Rebalance<N>, Error> {
        let hash = self.admit(&node, weight, 0)?;
        let idx = self.members.len() as u32;
        self.members.push(Member { node, hash, weight });
        self.index.insert(hash, idx);
        if let Store::Narrow(p) = &self.store
            && self.members.len() > u16::MAX_NODES
        {
            self.store = Store::Wide(p.widen());
        }
        Ok(self.insert_points(idx, &sorted_points(hash, 0..weight * self.vnodes)))
    }

    /// Inserts `new` (sorted) as member `idx`'s points, and returns the ranges that move to it.
    fn insert_points(&mut self, idx: u32, new: &[u64]) -> Rebalance<N> {
        let old_owners: Vec<Option<u32>> = new
            .iter()
            .map(|&h| self.owner_index(h).filter(|&o| o != idx))
            .collect();
        let members = &self.members;
        let tie = |o: u32| members[o as usize].hash;
        let at = with_points!(&mut self.store, p => p.insert(new, idx, &tie));
        plan::after_add(self, idx, &at, &old_owners)
    }

    /// Changes `node`'s weight, and returns the ranges that change owner: only keys moving to
    /// `node` when its weight grows, only keys leaving it when its weight shrinks; no key moves
    /// between two other nodes, and the same weight moves nothing. (A node's points are the
    /// first `weight × vnodes` of a sequence fixed by its identity, so a new weight adds or
    /// drops points at the end and leaves the others in place. Removing the node and adding
    /// it back would move all its keys away and back.)
    ///
    /// # Examples
    ///
    /// ```
    /// use shardkit_hashring::HashRing;
    ///
    /// let mut ring = HashRing::builder().nodes(["a", "b", "c"]).build()?;
    /// let plan = ring.set_weight(&"c", 3)?;
    /// assert!(plan.iter().all(|m| *m.to() == "c"));
    /// // "c" has 3 of the 5 weight units now, up from 1 of 3.
    /// assert!((plan.moved_fraction() - (3.0 / 5.0 - 1.0 / 3.0)).abs() < 0.1);
    /// let plan = ring.set_weight(&"c", 1)?;
    /// assert!(plan.iter().all(|m| *m.from() == "c"));
    /// # Ok::<(), shardkit_hashring::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::NodeNotFound`], [`Error::ZeroWeight`] or [`Error::TooManyPoints`]. The ring is
    /// unchanged on error.
    pub fn set_weight<Q>(&mut self, node: &Q, weight: u32) -> Result<Rebalance<N>, Error>
    where
        N: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let idx = self.member_index(node).ok_or(Error::NodeNotFound)?;
        if weight == 0 {
            return Err(Error::ZeroWeight);
        }
        let member = &self.members[idx as usize];
        let (hash, old, vnodes) = (member.hash, member.weight, self.vnodes);
        if weight > old {
            let points = self.point_count() as u64 + u64::from(weight - old) * u64::from(vnodes);
            if points > u64::from(MAX_POINTS) {
                return Err(Error::TooManyPoints { points });
            }
            self.members[idx as usize].weight = weight;
            return Ok(self.insert_points(idx, &sorted_points(hash, old * vnodes..weight * vnodes)));
        }
        let gone = sorted_points(hash, weight * vnodes..old * vnodes);
        let at = with_points!(&self.store, p => p.positions(&gone, idx));
        let vacated = plan::owned_ranges(self, &at);
        with_points!(&mut self.store, p => p.remove(&at, &gone, None));
        self.members[idx as usize].weight = weight;
        let node = self.members[idx as usize].node.clone();
        Ok(plan::after_remove(self, node, vacated, Some(idx)))
    }

    /// The hash ranges whose keys `node` owns, sorted by start, adjacent ones merged (`None`
    /// if it is not a member): the data a node should hold, to copy to a new machine, check
    /// against what it stores, or scan by range. Every hash lies in the ranges of exactly one
    /// node, the one [`get_hash`](Self::get_hash) names. O(its points × log(its points)).
    ///
    /// # Examples
    ///
    /// ```
    /// use shardkit_hashring::HashRing;
    ///
    /// let ring = HashRing::builder().nodes(["a", "b"]).build()?;
    /// let hash = ring.hash_key("user:42");
    /// let owner = ring.get_hash(hash).unwrap();
    /// assert!(ring.ranges_of(owner).unwrap().iter().any(|r| r.contains(hash)));
    /// let share: f64 = ring.ranges_of(&"a").unwrap().iter().map(|r| r.fraction()).sum();
    /// assert!((share - 0.5).abs() < 0.15);
    /// # Ok::<(), shardkit_hashring::Error>(())
    /// ```
    pub fn ranges_of<Q>(&self, node: &Q) -> Option<Vec<HashRange>>
    where
        N: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let idx = self.member_index(node)?;
        let member = &self.members[idx as usize];
        let points = sorted_points(member.hash, 0..member.weight * self.vnodes);
        let at = with_points!(&self.store, p => p.positions(&points, idx));
        Some(plan::owned_ranges(self, &at))
    }

    /// Adds many `(node, weight)` pairs with one rebuild: O(total points), where adding them one
    /// by one would move the points once per node. Returns no plan (use [`diff`](Self::diff)
    /// against a copy if one is needed).
    ///
    /// # Errors
    ///
    /// As [`add_weighted`](Self::add_weighted); on error no node is added.
    pub fn add_all(&mut self, nodes: impl IntoIterator<Item = (N, u32)>) -> Result<(), Error> {
        let mut fresh: Vec<Member<N>> = Vec::new();
        let mut seen: HashMap<u64, usize> = HashMap::new();
        let mut extra = 0u64;
        for (node, weight) in nodes {
            let hash = self.admit(&node, weight, extra)?;
            if let Some(&other) = seen.get(&hash) {
                let other: &Member<N> = &fresh[other];
                return Err(if other.node == node {
                    Error::DuplicateNode
                } else {
                    Error::NodeHashCollision
                });
            }
            seen.insert(hash, fresh.len());
            extra += u64::from(weight) * u64::from(self.vnodes);
            fresh.push(Member { node, hash, weight });
        }
        if fresh.is_empty() {
            return Ok(());
        }
        for member in fresh {
            self.index.insert(member.hash, self.members.len() as u32);
            self.members.push(member);
        }
        self.rebuild();
        Ok(())
    }

    /// Checks that `node` may join with `weight` while `pending` other points are being added,
    /// and returns its identity hash.
    fn admit(&self, node: &N, weight: u32, pending: u64) -> Result<u64, Error> {
        if weight == 0 {
            return Err(Error::ZeroWeight);
        }
        let hash = stable_hash(self.seed, node);
        if let Some(&i) = self.index.get(&hash) {
            return Err(if self.members[i as usize].node == *node {
                Error::DuplicateNode
            } else {
                Error::NodeHashCollision
            });
        }
        let points =
            self.point_count() as u64 + pending + u64::from(weight) * u64::from(self.vnodes);
        if points > u64::from(MAX_POINTS) {
            return Err(Error::TooManyPoints { points });
        }
        Ok(hash)
    }

    fn rebuild(&mut self) {
        let count: usize = self
            .members
            .iter()
            .map(|m| (m.weight * self.vnodes) as usize)
            .sum();
        let (vnodes, members) = (self.vnodes, &self.members);
        let points = || {
            members.iter().enumerate().flat_map(move |(owner, m)| {
                (0..m.weight * vnodes).map(move |i| Point {
                    hash: point_hash(m.hash, i),
                    owner: owner as u32,
                })
            })
        };
        let tie = |o: u32| members[o as usize].hash;
        self.store = if members.len() > u16::MAX_NODES {
            Store::Wide(Points::build(count, points, tie))
        } else {
            Store::Narrow(Points::build(count, points, tie))
        };
    }

    /// Removes a node, and returns the ranges its keys move to: each goes to the next surviving
    /// node clockwise, and no other key moves. Removing the last node returns an empty plan: its
    /// keys have nowhere to go.
    ///
    /// # Examples
    ///
    /// ```
    /// use shardkit_hashring::HashRing;
    ///
    /// let mut ring = HashRing::builder().nodes(["a", "b", "c"]).build()?;
    /// let plan = ring.remove(&"b")?;
    /// assert!(plan.iter().all(|m| *m.from() == "b" && *m.to() != "b"));
    /// assert_eq!(ring.remove(&"b"), Err(shardkit_hashring::Error::NodeNotFound));
    /// # Ok::<(), shardkit_hashring::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::NodeNotFound`] if `node` is not a member; the ring is unchanged.
    pub fn remove<Q>(&mut self, node: &Q) -> Result<Rebalance<N>, Error>
    where
        N: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let idx = self.member_index(node).ok_or(Error::NodeNotFound)?;
        let member = &self.members[idx as usize];
        let gone = sorted_points(member.hash, 0..member.weight * self.vnodes);
        let at = with_points!(&self.store, p => p.positions(&gone, idx));
        let vacated = plan::owned_ranges(self, &at);
        let last = self.members.len() as u32 - 1;
        let removed = self.members.swap_remove(idx as usize);
        self.index.remove(&removed.hash);
        let relabel = (idx != last).then(|| {
            self.index.insert(self.members[idx as usize].hash, idx);
            (last, idx)
        });
        with_points!(&mut self.store, p => p.remove(&at, &gone, relabel));
        Ok(plan::after_remove(self, removed.node, vacated, None))
    }

    /// The node that owns `key`, or `None` if the ring is empty.
    ///
    /// The key is hashed with [`stable_hash`](crate::stable_hash) and the ring's seed.
    #[inline]
    pub fn get<K: Hash + ?Sized>(&self, key: &K) -> Option<&N> {
        self.get_hash(stable_hash(self.seed, key))
    }

    /// The node that owns a key whose hash is `hash` (for keys hashed once and looked up on
    /// several rings, or hashed by the caller's own scheme).
    #[inline]
    pub fn get_hash(&self, hash: u64) -> Option<&N> {
        self.owner_index(hash)
            .map(|o| &self.members[o as usize].node)
    }

    /// The first `n` distinct nodes clockwise from `key` (Dynamo's preference list): the owner
    /// first, then the nodes to hold its replicas. Yields `min(n, len())` nodes; the iterator
    /// allocates nothing for `n <= 8`.
    ///
    /// # Examples
    ///
    /// ```
    /// use shardkit_hashring::HashRing;
    ///
    /// let ring = HashRing::builder().nodes(["a", "b"]).build()?;
    /// // Asking for more replicas than there are nodes gives every node once.
    /// let mut copies: Vec<_> = ring.replicas("key", 5).copied().collect();
    /// copies.sort();
    /// assert_eq!(copies, ["a", "b"]);
    /// # Ok::<(), shardkit_hashring::Error>(())
    /// ```
    #[inline]
    pub fn replicas<K: Hash + ?Sized>(&self, key: &K, n: usize) -> Replicas<'_, N> {
        self.replicas_hash(stable_hash(self.seed, key), n)
    }

    /// [`replicas`](Self::replicas) for a pre-hashed key.
    #[inline]
    pub fn replicas_hash(&self, hash: u64, n: usize) -> Replicas<'_, N> {
        let start = with_points!(&self.store, p => p.successor(hash));
        Replicas::new(self, start.unwrap_or(0), n.min(self.members.len()))
    }

    /// The hash a key gets on this ring: [`stable_hash`](crate::stable_hash) with its seed.
    pub fn hash_key<K: Hash + ?Sized>(&self, key: &K) -> u64 {
        stable_hash(self.seed, key)
    }

    /// The ranges of the hash space whose owner differs between `self` and `other`: the data to
    /// migrate when a service switches from this membership to the other. O(points of both).
    ///
    /// Empty when either ring is empty: no key moves between two nodes then.
    ///
    /// # Examples
    ///
    /// ```
    /// use shardkit_hashring::HashRing;
    ///
    /// let before = HashRing::builder().nodes(["a", "b", "c"]).build()?;
    /// let after = HashRing::builder().nodes(["a", "b", "c", "d"]).build()?;
    /// let plan = before.diff(&after)?;
    /// assert!(plan.iter().all(|m| *m.to() == "d"));
    /// # Ok::<(), shardkit_hashring::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::SeedMismatch`] if the rings hash with different seeds.
    pub fn diff(&self, other: &HashRing<N>) -> Result<Rebalance<N>, Error> {
        plan::diff(self, other)
    }

    /// The ranges of the hash space whose preference list of `n` nodes
    /// ([`replicas`](Self::replicas)) differs between `self` and `other`, with both lists: for
    /// a store that keeps `n` copies of each key, where copies must be made
    /// ([`ReplicaMove::gained`](crate::ReplicaMove::gained)), where they may be dropped ([`ReplicaMove::lost`](crate::ReplicaMove::lost)), and
    /// where only the owner changed among the same nodes. With `n = 1` the ranges are
    /// [`diff`](Self::diff)'s. O((points of both) × (log + `n`)) with equal weights: both
    /// lists are found for every stretch between two points (more with uneven weights, as for
    /// [`replicas`](Self::replicas)).
    ///
    /// Empty when either ring is empty or `n` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use shardkit_hashring::HashRing;
    ///
    /// let before = HashRing::builder().nodes(["a", "b", "c", "d"]).build()?;
    /// let mut after = before.clone();
    /// after.add("e")?;
    /// let plan = before.diff_replicas(&after, 3)?;
    /// // Only "e" takes new copies; every other node only gives some up.
    /// assert!(plan.iter().all(|m| m.gained().all(|n| *n == "e")));
    /// assert!(plan.iter().all(|m| m.lost().all(|n| *n != "e")));
    /// // Every key whose three copies change is in the plan, with its lists.
    /// let hash = before.hash_key("user:42");
    /// let lists = |ring: &HashRing<&'static str>| -> Vec<&'static str> {
    ///     ring.replicas_hash(hash, 3).copied().collect()
    /// };
    /// match plan.find(hash) {
    ///     Some(m) => assert_eq!((m.before(), m.after()), (&lists(&before)[..], &lists(&after)[..])),
    ///     None => assert_eq!(lists(&before), lists(&after)),
    /// }
    /// # Ok::<(), shardkit_hashring::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::SeedMismatch`] if the rings hash with different seeds.
    pub fn diff_replicas(&self, other: &HashRing<N>, n: usize) -> Result<ReplicaPlan<N>, Error> {
        replica_plan::diff_replicas(self, other, n)
    }

    /// `node`'s index among the members. `node` may be a borrowed form of `N` (a `&str` for a
    /// `String`): `Borrow` requires that it hash as `N` does.
    pub(crate) fn member_index<Q>(&self, node: &Q) -> Option<u32>
    where
        N: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = *self.index.get(&stable_hash(self.seed, node))?;
        (self.members[i as usize].node.borrow() == node).then_some(i)
    }

    /// Whether `node` is a member. `node` may be a borrowed form of the node type, as for a
    /// map's keys: `ring.contains("db-1")` on a `HashRing<String>`.
    pub fn contains<Q>(&self, node: &Q) -> bool
    where
        N: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.member_index(node).is_some()
    }

    /// The weight `node` was added with, or `None` if it is not a member.
    pub fn weight<Q>(&self, node: &Q) -> Option<u32>
    where
        N: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.member_index(node)
            .map(|i| self.members[i as usize].weight)
    }
}

/// Points `indices` of the sequence of the node whose identity hash is `node_hash`, sorted.
fn sorted_points(node_hash: u64, indices: std::ops::Range<u32>) -> Vec<u64> {
    let mut points: Vec<u64> = indices.map(|i| point_hash(node_hash, i)).collect();
    points.sort_unstable();
    points
}

impl<N> HashRing<N> {
    #[inline]
    pub(crate) fn owner_index(&self, hash: u64) -> Option<u32> {
        with_points!(&self.store, p => p.successor(hash).map(|i| p.owner(i)))
    }

    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the ring has no nodes.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The nodes, in no particular order.
    pub fn nodes(&self) -> impl ExactSizeIterator<Item = &N> + '_ {
        self.members.iter().map(|m| &m.node)
    }

    /// The nodes with their weights, in no particular order.
    pub fn weighted_nodes(&self) -> impl ExactSizeIterator<Item = (&N, u32)> + '_ {
        self.members.iter().map(|m| (&m.node, m.weight))
    }

    /// The number of points (virtual nodes) on the ring.
    pub fn point_count(&self) -> usize {
        with_points!(&self.store, p => p.len())
    }

    /// The hash seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Points per unit of weight.
    pub fn vnodes_per_weight(&self) -> u32 {
        self.vnodes
    }
}

/// Two rings are equal when they route every key alike: the same seed, virtual nodes per unit
/// of weight, and nodes with their weights, whatever order the nodes were added in (the points
/// are a function of these alone).
impl<N: PartialEq> PartialEq for HashRing<N> {
    fn eq(&self, other: &Self) -> bool {
        self.seed == other.seed
            && self.vnodes == other.vnodes
            && self.members.len() == other.members.len()
            && self.members.iter().all(|m| {
                other.index.get(&m.hash).is_some_and(|&i| {
                    let theirs = &other.members[i as usize];
                    theirs.node == m.node && theirs.weight == m.weight
                })
            })
    }
}

impl<N: Eq> Eq for HashRing<N> {}

impl<N: fmt::Debug> fmt::Debug for HashRing<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HashRing")
            .field("seed", &self.seed)
            .field("vnodes_per_weight", &self.vnodes)
            .field(
                "nodes",
                &self
                    .members
                    .iter()
                    .map(|m| (&m.node, m.weight))
                    .collect::<Vec<_>>(),
            )
            .field("points", &self.point_count())
            .finish()
    }
}
