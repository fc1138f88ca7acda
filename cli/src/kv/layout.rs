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

/// `ID=HOST:PORT[/WEIGHT]`: a node, its HTTP address and its ring weight (1 by default; a
/// node of weight 2 holds about twice the slots). Its replication ports follow the HTTP
/// port: `port + 1 + slot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) id: u64,
    pub(crate) addr: SocketAddr,
    pub(crate) weight: u32,
}

impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.weight {
            1 => write!(f, "{}={}", self.id, self.addr),
            w => write!(f, "{}={}/{w}", self.id, self.addr),
        }
    }
}

impl std::str::FromStr for Member {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (member, weight) = match s.rsplit_once('/') {
            Some((m, w)) => (m, w.parse().map_err(|_| format!("bad weight {w:?}"))?),
            None => (s, 1),
        };
        let crate::member::Member { id, addr } = member.parse()?;
        if id.get() == 0 {
            return Err("node id 0 is the coordinators'".into());
        }
        Ok(Self {
            id: id.get(),
            addr,
            weight,
        })
    }
}

/// `SLOT=GENERATION`: a slot that moved to a new replica set (its data copied over), kept in
/// a new directory so the old replica set's files stay apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Generation {
    pub(crate) slot: u32,
    pub(crate) generation: u32,
}

impl std::str::FromStr for Generation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (slot, generation) = s
            .split_once('=')
            .ok_or_else(|| format!("expected SLOT=GENERATION, got {s:?}"))?;
        Ok(Self {
            slot: slot.parse().map_err(|_| format!("bad slot {slot:?}"))?,
            generation: generation
                .parse()
                .map_err(|_| format!("bad generation {generation:?}"))?,
        })
    }
}

/// The cluster's layout.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    members: Vec<Member>,
    generations: std::collections::BTreeMap<u32, u32>,
    /// Slot `s`'s coordinator listens on this address's port + `s`.
    coordinators: SocketAddr,
    slots: SlotMap<u64>,
    /// Each slot's replica set, ring preference order (distinct nodes).
    holders: Vec<Vec<u64>>,
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
            .weighted_nodes(members.iter().map(|m| (m.id, m.weight)))
            .build()
            .map_err(|e| e.to_string())?;
        let slot_map = ring.slot_map(slots).map_err(|e| e.to_string())?;
        let holders = (0..slot_map.slot_count())
            .map(|slot| {
                let hash = slot_map.slot_hash(slot).unwrap_or_default();
                ring.replicas_hash(hash, REPLICAS).copied().collect()
            })
            .collect();
        Ok(Self {
            members: members.to_vec(),
            generations: std::collections::BTreeMap::new(),
            coordinators,
            slots: slot_map,
            holders,
        })
    }

    /// The same layout with these slots' generations.
    pub(crate) fn with_generations(mut self, generations: &[Generation]) -> Self {
        self.generations = generations.iter().map(|g| (g.slot, g.generation)).collect();
        self
    }

    /// The slot's generation: 1 until it first moves.
    pub(crate) fn generation(&self, slot: u32) -> u32 {
        self.generations.get(&slot).copied().unwrap_or(1)
    }

    /// The slot's directory under a node's data directory.
    pub(crate) fn slot_dir(&self, slot: u32) -> String {
        match self.generation(slot) {
            1 => format!("slot-{slot}"),
            g => format!("slot-{slot}-g{g}"),
        }
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
    pub(crate) fn holders(&self, slot: u32) -> &[u64] {
        self.holders.get(slot as usize).map_or(&[], Vec::as_slice)
    }

    pub(crate) fn http_addr(&self, node: u64) -> Option<SocketAddr> {
        self.members.iter().find(|m| m.id == node).map(|m| m.addr)
    }

    pub(crate) fn replication_addr(&self, node: u64, slot: u32) -> Option<SocketAddr> {
        let mut addr = self.http_addr(node)?;
        addr.set_port(addr.port().checked_add(1 + slot as u16)?);
        Some(addr)
    }

    /// Slot `s`'s coordinator in generation `g`: the coordinators' port + `(g - 1) * slots + s`
    /// (a moved slot's new replica set gets a new coordinator beside the old one).
    pub(crate) fn coordinator_addr(&self, slot: u32) -> SocketAddr {
        let offset = (self.generation(slot) - 1) * self.slot_count() + slot;
        let mut addr = self.coordinators;
        addr.set_port(addr.port().wrapping_add(offset as u16));
        addr
    }

    pub(crate) fn coordinators_base(&self) -> SocketAddr {
        self.coordinators
    }

    /// Every address a slot's replica set and coordinator talk to.
    pub(crate) fn group(&self, slot: u32) -> HashMap<NodeId, SocketAddr> {
        let mut addrs: HashMap<NodeId, SocketAddr> = self
            .holders(slot)
            .iter()
            .filter_map(|&n| Some((NodeId::new(n), self.replication_addr(n, slot)?)))
            .collect();
        addrs.insert(COORDINATOR, self.coordinator_addr(slot));
        addrs
    }

    /// The ports a cluster of up to `nodes` with `slots` slots in up to two generations uses
    /// from `base` on: per node an HTTP port and one per slot, then the coordinators'.
    pub(crate) fn ports_needed(nodes: u32, slots: u32) -> u32 {
        nodes * (1 + slots) + 2 * slots
    }

    /// The slots whose replica set differs in `other`, and how many replica placements moved.
    pub(crate) fn moves(&self, other: &Layout) -> (Vec<u32>, usize) {
        let mut slots = Vec::new();
        let mut placements = 0;
        for slot in 0..self.slot_count() {
            let (before, after) = (self.holders(slot), other.holders(slot));
            let gained = after.iter().filter(|n| !before.contains(n)).count();
            if gained > 0 {
                slots.push(slot);
                placements += gained;
            }
        }
        (slots, placements)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_parse_with_and_without_a_weight() {
        let m: Member = "3=127.0.0.1:7000/2".parse().unwrap();
        assert_eq!((m.id, m.addr.port(), m.weight), (3, 7000, 2));
        let m: Member = "4=[::1]:7001".parse().unwrap();
        assert_eq!((m.id, m.addr.port(), m.weight), (4, 7001, 1));
        assert_eq!(m.to_string().parse::<Member>().unwrap(), m);
        for bad in [
            "0=127.0.0.1:7000",
            "x=127.0.0.1:7000",
            "1=nowhere",
            "1=127.0.0.1:7000/x",
        ] {
            assert!(bad.parse::<Member>().is_err(), "{bad} parsed");
        }
    }
}
