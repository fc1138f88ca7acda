//! The faults: crashes, zombie pauses, partitions, forced failovers, coordinator restarts and
//! wiped disks.

use std::sync::Arc;
use std::time::Duration;

use shardkit_replication::replica::{Coordinator, MemoryReplicaStore, NodeId};

use super::{COORDINATOR, Sim};
use crate::disk::{SimDisk, crash};

impl Sim {
    pub(super) fn inject_faults(&mut self) {
        if !self.cut.is_empty() && self.now >= self.heal_at {
            self.cut.clear();
        }
        for id in self.members.clone() {
            let n = &self.nodes[&id];
            if n.replica.is_none() && self.now >= n.down_until {
                self.start(id);
            }
        }
        if let Some(id) = self.wiped {
            let caught_up = self.nodes[&id]
                .replica
                .as_ref()
                .is_some_and(|r| r.is_eligible());
            if caught_up {
                self.trace(|| format!("{id} caught up after losing its disk"));
                self.wiped = None;
            }
        }
        // Faults overlap freely; only a lost disk is limited to one replica at a time (a
        // majority losing its disks loses data in any protocol).
        if !self.rng.chance(4_000) {
            return;
        }
        let leader = self.coordinator.leader().map(|l| l.0);
        let victim = match leader {
            Some(l) if self.rng.chance(600_000) => l,
            _ => self.rng.pick(&self.members.clone()),
        };
        let hold = Duration::from_millis(100 + self.rng.below(1_500));
        let fault = self.rng.below(9);
        self.trace(|| format!("fault {fault} on {victim} for {hold:?} (leader {leader:?})"));
        match fault {
            0 | 1 => {
                // Crash and restart (a machine crash loses the unsynced tail).
                let node = self.nodes.get_mut(&victim).unwrap();
                node.replica = None;
                crash(&node.disk, self.lose_unsynced_on_crash);
                node.down_until = self.now + hold;
            }
            2 => {
                // A zombie: the process stops (GC pause, SIGSTOP) and resumes later.
                self.nodes.get_mut(&victim).unwrap().paused_until = self.now + hold * 2;
            }
            3 => {
                // The victim is cut off from everyone (a minority leader, when it leads).
                for &m in self.members.iter().chain([COORDINATOR].iter()) {
                    if m != victim {
                        self.cut.insert((victim, m));
                        self.cut.insert((m, victim));
                    }
                }
                self.heal_at = self.heal_at.max(self.now + hold);
            }
            4 => {
                // One-way: the victim hears everyone, nobody hears it.
                for &m in self.members.iter().chain([COORDINATOR].iter()) {
                    if m != victim {
                        self.cut.insert((victim, m));
                    }
                }
                self.heal_at = self.heal_at.max(self.now + hold);
            }
            5 => {
                // A bridge: two sides that only the victim connects.
                let others: Vec<NodeId> = self
                    .members
                    .iter()
                    .copied()
                    .filter(|&m| m != victim)
                    .collect();
                let (a, b) = others.split_at(others.len() / 2);
                for &x in a {
                    for &y in b {
                        self.cut.insert((x, y));
                        self.cut.insert((y, x));
                    }
                }
                self.heal_at = self.heal_at.max(self.now + hold);
            }
            6 => {
                // Two failovers in quick succession.
                self.coordinator.fail_over(self.now);
                self.failovers_forced += 1;
                let again = self.now + Duration::from_millis(self.rng.below(30));
                self.pending_failover = Some(again);
            }
            7 => {
                // The coordinator restarts, its state (the epoch count) lost: replicas must
                // not promise it an epoch they may have had a leader in. Half the time the
                // whole replica set restarts with it (a power cut), each back after its own
                // while, so every replica has forgotten who led its epoch.
                self.earlier_failovers += self.coordinator.failovers();
                self.coordinator = super::new_coordinator(&self.members);
                self.coordinator_restarts += 1;
                if self.rng.chance(500_000) {
                    for id in self.members.clone() {
                        let down = Duration::from_millis(self.rng.below(1_000));
                        let node = self.nodes.get_mut(&id).unwrap();
                        node.replica = None;
                        crash(&node.disk, self.lose_unsynced_on_crash);
                        node.down_until = node.down_until.max(self.now + down);
                    }
                }
            }
            _ if self.wiped.is_some() => {}
            _ => {
                // The disk is wiped; the replica rejoins empty and must copy everything.
                let node = self.nodes.get_mut(&victim).unwrap();
                node.replica = None;
                node.disk = SimDisk::default();
                node.epochs = MemoryReplicaStore::new();
                node.state = Arc::default();
                node.down_until = self.now + hold;
                self.wiped = Some(victim);
            }
        }
    }
}
