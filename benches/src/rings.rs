//! One interface over our ring and every peer crate, built and driven the way each crate's
//! docs show. Peers that default to a per-process random hasher get a fixed SipHash-1-3
//! (`std`'s `DefaultHasher`), so every run places keys the same way.

use std::hash::{BuildHasherDefault, DefaultHasher, Hash, Hasher};
use std::sync::LazyLock;

/// A fixed-key SipHash-1-3 builder for peers whose default hasher is random per process.
pub type FixedSip = BuildHasherDefault<DefaultHasher>;

/// Node ids `0..MAX_NODES`, with a `'static` lifetime for crates that borrow their node ids.
static NODE_IDS: LazyLock<Vec<u32>> = LazyLock::new(|| (0..MAX_NODES).collect());

/// The most nodes any benchmark uses, plus room to add one.
pub const MAX_NODES: u32 = 1 << 17;

/// What the benchmarks need from a consistent-hashing implementation.
pub trait Ring: Sized {
    /// The name in result tables.
    const NAME: &'static str;
    /// Whether the algorithm has virtual nodes (the `vnodes` argument means something).
    const VNODES: bool;
    /// A ring of nodes `first..first + nodes` with `vnodes` points each.
    fn build_ids(first: u32, nodes: u32, vnodes: u32) -> Self;
    /// A ring of nodes `0..nodes` with `vnodes` points each.
    fn build(nodes: u32, vnodes: u32) -> Self {
        Self::build_ids(0, nodes, vnodes)
    }
    /// The owner of `key`.
    fn get(&self, key: &str) -> u32;
    /// Adds node `id`.
    fn add(&mut self, id: u32);
    /// Removes node `id`.
    fn remove(&mut self, id: u32);
}

/// `shardkit-hashring`.
#[derive(Debug, Clone)]
pub struct Shardkit(pub shardkit_hashring::HashRing<u32>);

impl Ring for Shardkit {
    const NAME: &'static str = "shardkit-hashring";
    const VNODES: bool = true;
    fn build_ids(first: u32, nodes: u32, vnodes: u32) -> Self {
        Self(
            shardkit_hashring::HashRing::builder()
                .vnodes(vnodes)
                .nodes(first..first + nodes)
                .build()
                .expect("valid ring"),
        )
    }
    #[inline]
    fn get(&self, key: &str) -> u32 {
        *self.0.get(key).expect("ring is not empty")
    }
    fn add(&mut self, id: u32) {
        self.0.add(id).expect("new node");
    }
    fn remove(&mut self, id: u32) {
        self.0.remove(&id).expect("member");
    }
}

/// A virtual node of the `hashring` crate, which has none of its own (its README's pattern).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub struct VNode {
    id: u32,
    index: u32,
}

/// `hashring` 0.3: a sorted `Vec` with binary search, SipHash-2-4.
#[derive(Debug, Clone)]
pub struct HashringCrate {
    ring: hashring::HashRing<VNode>,
    vnodes: u32,
}

impl Ring for HashringCrate {
    const NAME: &'static str = "hashring 0.3";
    const VNODES: bool = true;
    fn build_ids(first: u32, nodes: u32, vnodes: u32) -> Self {
        let mut ring = hashring::HashRing::new();
        ring.batch_add(
            (first..first + nodes)
                .flat_map(|id| (0..vnodes).map(move |index| VNode { id, index }))
                .collect(),
        );
        Self { ring, vnodes }
    }
    #[inline]
    fn get(&self, key: &str) -> u32 {
        self.ring.get(&key).expect("ring is not empty").id
    }
    fn add(&mut self, id: u32) {
        self.ring
            .batch_add((0..self.vnodes).map(|index| VNode { id, index }).collect());
    }
    fn remove(&mut self, id: u32) {
        for index in 0..self.vnodes {
            self.ring.remove(&VNode { id, index });
        }
    }
}

/// `consistent_hash_ring` 0.8: a sorted `Vec`, FNV-1a, distinct-node replicas.
#[allow(missing_debug_implementations, reason = "the peer's ring has no Debug")]
#[derive(Clone)]
pub struct ConsistentHashRing(pub consistent_hash_ring::Ring<u32>);

impl Ring for ConsistentHashRing {
    const NAME: &'static str = "consistent_hash_ring 0.8";
    const VNODES: bool = true;
    fn build_ids(first: u32, nodes: u32, vnodes: u32) -> Self {
        Self(
            consistent_hash_ring::RingBuilder::default()
                .vnodes(vnodes as usize)
                .nodes_iter(first..first + nodes)
                .build(),
        )
    }
    #[inline]
    fn get(&self, key: &str) -> u32 {
        *self.0.get(key)
    }
    fn add(&mut self, id: u32) {
        self.0.insert(id);
    }
    fn remove(&mut self, id: u32) {
        self.0.remove(&id);
    }
}

/// `hash-rings` 1.1 `consistent::Ring`: a `BTreeMap`.
#[allow(missing_debug_implementations, reason = "the peer's ring has no Debug")]
pub struct HashRingsCrate {
    ring: hash_rings::consistent::Ring<'static, u32, FixedSip>,
    vnodes: u32,
}

impl Ring for HashRingsCrate {
    const NAME: &'static str = "hash-rings 1.1";
    const VNODES: bool = true;
    fn build_ids(first: u32, nodes: u32, vnodes: u32) -> Self {
        let mut ring = hash_rings::consistent::Ring::with_hasher(FixedSip::default());
        for id in &NODE_IDS[first as usize..(first + nodes) as usize] {
            ring.insert_node(id, vnodes as usize);
        }
        Self { ring, vnodes }
    }
    #[inline]
    fn get(&self, key: &str) -> u32 {
        *self.ring.get_node(&key)
    }
    fn add(&mut self, id: u32) {
        self.ring
            .insert_node(&NODE_IDS[id as usize], self.vnodes as usize);
    }
    fn remove(&mut self, id: u32) {
        self.ring.remove_node(&id);
    }
}

/// `anchorhash` 0.2: AnchorHash with capacity `2n`.
#[derive(Debug)]
pub struct AnchorHashCrate(anchorhash::AnchorHash<&'static str, u32, FixedSip>);

impl Ring for AnchorHashCrate {
    const NAME: &'static str = "anchorhash 0.2";
    const VNODES: bool = false;
    fn build_ids(first: u32, nodes: u32, _vnodes: u32) -> Self {
        let capacity = u16::try_from(2 * nodes).expect("at most 32,767 nodes");
        Self(
            anchorhash::Builder::with_hasher(FixedSip::default())
                .with_resources(first..first + nodes)
                .build(capacity),
        )
    }
    #[inline]
    fn get(&self, key: &str) -> u32 {
        // The key type only lives in a `PhantomData`, so the table is covariant in it and takes
        // keys of any lifetime.
        let table: &anchorhash::AnchorHash<&str, u32, FixedSip> = &self.0;
        *table.get_resource(key).expect("ring is not empty")
    }
    fn add(&mut self, id: u32) {
        self.0.add_resource(id).expect("capacity left");
    }
    fn remove(&mut self, id: u32) {
        self.0.remove_resource(&id).expect("member");
    }
}

/// `maglev` 0.2: Maglev with the crate's default table size (a prime near 100n).
#[derive(Debug)]
pub struct MaglevCrate {
    table: maglev::Maglev<u32>,
    nodes: Vec<u32>,
}

impl Ring for MaglevCrate {
    const NAME: &'static str = "maglev 0.2";
    const VNODES: bool = false;
    fn build_ids(first: u32, nodes: u32, _vnodes: u32) -> Self {
        let nodes: Vec<u32> = (first..first + nodes).collect();
        Self {
            table: maglev::Maglev::new(nodes.clone()),
            nodes,
        }
    }
    #[inline]
    fn get(&self, key: &str) -> u32 {
        use maglev::ConsistentHasher;
        *self.table.get(key).expect("ring is not empty")
    }
    // Maglev has no incremental update: the documented way is a rebuild.
    fn add(&mut self, id: u32) {
        self.nodes.push(id);
        self.table = maglev::Maglev::new(self.nodes.clone());
    }
    fn remove(&mut self, id: u32) {
        self.nodes.retain(|&n| n != id);
        self.table = maglev::Maglev::new(self.nodes.clone());
    }
}

/// `jump-consistent-hash` 0.1: Jump over a node list, keys hashed with SipHash-1-3; removing a
/// middle node is `swap_remove` (Jump can only drop the last bucket).
#[derive(Debug, Clone)]
pub struct JumpCrate {
    nodes: Vec<u32>,
}

impl Ring for JumpCrate {
    const NAME: &'static str = "jump-consistent-hash 0.1";
    const VNODES: bool = false;
    fn build_ids(first: u32, nodes: u32, _vnodes: u32) -> Self {
        Self {
            nodes: (first..first + nodes).collect(),
        }
    }
    #[inline]
    fn get(&self, key: &str) -> u32 {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        self.nodes[jump_consistent_hash::hash(h.finish(), self.nodes.len()) as usize]
    }
    fn add(&mut self, id: u32) {
        self.nodes.push(id);
    }
    fn remove(&mut self, id: u32) {
        if let Some(i) = self.nodes.iter().position(|&n| n == id) {
            self.nodes.swap_remove(i);
        }
    }
}
