//! Where everything lives in a cluster: keys in slots, slots on the ring, each slot's replica
//! set (its ring preference list), and every address, derived from the member list alone, so
//! that each process computes the same layout on its own.

use std::collections::HashMap;
use std::net::SocketAddr;

use shardkit_hashring::{HashRing, SlotMap};
use shardkit_replication::replica::NodeId;

/// Replicas per slot: a leader and two followers.
pub(crate) const REPLICAS: usize = 3;

/// The coordinator's id inside every slot's replica set.
pub(crate) const COORDINATOR: NodeId = NodeId::new(0);

/// `ID=HOST:PORT`: a node and its HTTP address. Its replication ports follow the HTTP port:
/// `port + 1 + slot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) id: u64,
    pub(crate) addr: SocketAddr,
}

impl std::str::FromStr for Member {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (id, addr) = s
            .split_once('=')
            .ok_or_else(|| format!("expected ID=HOST:PORT, got {s:?}"))?;
        let id: u64 = id.parse().map_err(|_| format!("bad node id {id:?}"))?;
        if id == 0 {
            return Err("node id 0 is the coordinators'".into());
        }
        Ok(Self {
            id,
            addr: addr
                .parse()
                .map_err(|_| format!("bad address {addr:?} (expected HOST:PORT)"))?,
        })
    }
}

/// The cluster's layout.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    members: Vec<Member>,
    /// Slot `s`'s coordinator listens on this address's port + `s`.
    coordinators: SocketAddr,
    slots: SlotMap<u64>,
    ring: HashRing<u64>,
}

impl Layout {
    pub(crate) fn new(
        members: &[Member],
        coordinators: SocketAddr,
        slots: u32,
    ) -> Result<Self, String> {
        if members.len() < REPLICAS {
            return Err(format!("a cluster needs at least {REPLICAS} nodes"));
        }
        let ring = HashRing::builder()
            .nodes(members.iter().map(|m| m.id))
            .build()
            .map_err(|e| e.to_string())?;
        let slot_map = ring.slot_map(slots).map_err(|e| e.to_string())?;
        Ok(Self {
            members: members.to_vec(),
            coordinators,
            slots: slot_map,
            ring,
        })
    }

    pub(crate) fn slot_count(&self) -> u32 {
        self.slots.slot_count()
    }

    pub(crate) fn members(&self) -> &[Member] {
        &self.members
    }

    pub(crate) fn slot_of(&self, key: &str) -> u32 {
        self.slots.slot_of(key)
    }

    /// The slot's replica set, ring preference order (distinct nodes).
    pub(crate) fn holders(&self, slot: u32) -> Vec<u64> {
        let hash = self.slots.slot_hash(slot).unwrap_or_default();
        self.ring.replicas_hash(hash, REPLICAS).copied().collect()
    }

    pub(crate) fn http_addr(&self, node: u64) -> Option<SocketAddr> {
        self.members.iter().find(|m| m.id == node).map(|m| m.addr)
    }

    pub(crate) fn replication_addr(&self, node: u64, slot: u32) -> Option<SocketAddr> {
        let mut addr = self.http_addr(node)?;
        addr.set_port(addr.port().checked_add(1 + slot as u16)?);
        Some(addr)
    }

    pub(crate) fn coordinator_addr(&self, slot: u32) -> SocketAddr {
        let mut addr = self.coordinators;
        addr.set_port(addr.port().wrapping_add(slot as u16));
        addr
    }

    /// Every address a slot's replica set and coordinator talk to.
    pub(crate) fn group(&self, slot: u32) -> HashMap<NodeId, SocketAddr> {
        let mut addrs: HashMap<NodeId, SocketAddr> = self
            .holders(slot)
            .into_iter()
            .filter_map(|n| Some((NodeId::new(n), self.replication_addr(n, slot)?)))
            .collect();
        addrs.insert(COORDINATOR, self.coordinator_addr(slot));
        addrs
    }

    /// The ports a cluster of `nodes` with `slots` slots uses from `base` on: per node an HTTP
    /// port and one per slot, then the coordinators'.
    pub(crate) fn ports_needed(nodes: u32, slots: u32) -> u32 {
        nodes * (1 + slots) + slots
    }
}
