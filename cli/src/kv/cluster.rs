//! A cluster on this machine: node processes (this binary's `shardkit node`) on loopback, and
//! one lease coordinator per slot in this process.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shardkit_replication::replica::{
    CoordinatorNode, LeaseCoordinator, NodeId, TcpConfig, TcpTransport,
};

use super::layout::{COORDINATOR, Generation, Layout, Member};

pub(crate) struct Cluster {
    pub(crate) layout: Layout,
    dir: PathBuf,
    slots: u32,
    /// The node the demo adds later (its addresses are reserved from the start).
    spare: Member,
    children: BTreeMap<u64, Child>,
    coordinators: BTreeMap<u32, CoordinatorNode>,
    cursor_secret: String,
}

/// The lease coordinator of `slot`'s replica set in `layout`, listening on its address.
pub(crate) fn coordinator_for(layout: &Layout, slot: u32) -> Result<CoordinatorNode, String> {
    let holders = layout.holders(slot).iter().copied().map(NodeId::new);
    let transport = TcpTransport::bind(
        COORDINATOR,
        layout.coordinator_addr(slot),
        &layout.group(slot),
        TcpConfig::default(),
    )
    .map_err(|e| format!("coordinator of slot {slot}: {e}"))?;
    Ok(CoordinatorNode::start(
        COORDINATOR,
        LeaseCoordinator::new(holders, Duration::from_millis(600)),
        transport,
    ))
}

impl Cluster {
    /// Starts a node process per weight (node `i` with ring weight `weights[i - 1]`) with data
    /// under `dir`, and the slots' coordinators.
    pub(crate) fn start(
        weights: &[u32],
        slots: u32,
        dir: &Path,
        seed: u64,
    ) -> Result<Self, String> {
        let nodes = weights.len() as u32;
        let per_node = 1 + slots;
        // Room for one more node, which the demo adds later.
        let base = crate::ports::free_port_run(Layout::ports_needed(nodes + 1, slots), seed)?;
        let port = |offset: u32| SocketAddr::from(([127, 0, 0, 1], base + offset as u16));
        let members: Vec<Member> = (1..=nodes + 1)
            .map(|id| Member {
                id: u64::from(id),
                addr: port((id - 1) * per_node),
                weight: weights.get(id as usize - 1).copied().unwrap_or(1),
            })
            .collect();
        let coordinators = port((nodes + 1) * per_node);
        let layout = Layout::new(&members[..nodes as usize], coordinators, slots)?;
        let mut cluster = Self {
            layout,
            spare: members[nodes as usize],
            dir: dir.to_path_buf(),
            slots,
            children: BTreeMap::new(),
            coordinators: BTreeMap::new(),
            cursor_secret: format!("shardkit-demo-{seed:016x}-{:08x}", std::process::id()),
        };
        for slot in 0..slots {
            cluster.start_coordinator(slot)?;
        }
        for id in 1..=u64::from(nodes) {
            cluster.spawn(id)?;
        }
        Ok(cluster)
    }

    /// Starts the coordinator of `slot`'s current replica set.
    fn start_coordinator(&mut self, slot: u32) -> Result<(), String> {
        let coordinator = coordinator_for(&self.layout, slot)?;
        self.coordinators.insert(slot, coordinator);
        Ok(())
    }

    /// The layout once the next node joins the ring (the moved slots in a new generation).
    pub(crate) fn grown_layout(&self) -> Result<Layout, String> {
        let mut members = self.layout.members().to_vec();
        members.push(self.spare);
        let grown = Layout::new(&members, self.layout.coordinators_base(), self.slots)?;
        let (moved, _) = self.layout.moves(&grown);
        let generations: Vec<Generation> = (0..self.slots)
            .map(|slot| Generation {
                slot,
                generation: self.layout.generation(slot) + u32::from(moved.contains(&slot)),
            })
            .collect();
        Ok(grown.with_generations(&generations))
    }

    /// Restarts every node with `layout` (the next node included), with new coordinators for
    /// the slots whose replica set changed; returns the new node's id.
    pub(crate) fn grow(&mut self, layout: Layout) -> Result<u64, String> {
        let (moved, _) = self.layout.moves(&layout);
        for id in self.running() {
            self.kill(id);
        }
        self.layout = layout;
        for slot in moved {
            self.start_coordinator(slot)?;
        }
        let ids: Vec<u64> = self.layout.members().iter().map(|m| m.id).collect();
        for &id in &ids {
            self.spawn(id)?;
        }
        Ok(self.spare.id)
    }

    /// The command line of node `id`, as a user would type it.
    pub(crate) fn node_command(&self, id: u64) -> Vec<String> {
        let mut args = vec![
            "node".to_string(),
            "--id".into(),
            id.to_string(),
            "--data-dir".into(),
            self.dir.join(format!("node-{id}")).display().to_string(),
            "--coordinators".into(),
            self.layout.coordinators_base().to_string(),
            "--slots".into(),
            self.slots.to_string(),
            "--cursor-secret".into(),
            self.cursor_secret.clone(),
            "--exit-with-parent".into(),
        ];
        for slot in 0..self.slots {
            let generation = self.layout.generation(slot);
            if generation > 1 {
                args.push("--generation".into());
                args.push(format!("{slot}={generation}"));
            }
        }
        for m in self.layout.members() {
            args.push("--member".into());
            args.push(m.to_string());
        }
        args
    }

    pub(crate) fn spawn(&mut self, id: u64) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("node-{id}.log")))
            .map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        // The node's stdin is a pipe this process holds (in `Child`) and never writes to: it
        // closes when this process ends, however it ends, and the node then stops.
        let child = Command::new(exe)
            .args(self.node_command(id))
            .stdin(Stdio::piped())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| format!("starting node {id}: {e}"))?;
        self.children.insert(id, child);
        Ok(())
    }

    /// Kills node `id` with SIGKILL: no chance to flush or say goodbye.
    pub(crate) fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.children.remove(&id) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Each slot's leader, as its coordinator decided.
    pub(crate) fn leaders(&self) -> Vec<Option<u64>> {
        self.coordinators
            .values()
            .map(|c| c.leader().map(|(n, _)| n.get()))
            .collect()
    }

    /// Waits until every slot has a leader that is running; returns how long it took.
    pub(crate) fn wait_for_leaders(&self, timeout: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        loop {
            let leaders = self.leaders();
            let ready = leaders
                .iter()
                .all(|l| l.is_some_and(|n| self.children.contains_key(&n)));
            if ready {
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                return Err(format!(
                    "slots without a running leader after {timeout:?}: {leaders:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub(crate) fn running(&self) -> Vec<u64> {
        self.children.keys().copied().collect()
    }

    /// Stops every node (SIGKILL) and the coordinators.
    pub(crate) fn stop(&mut self) {
        let ids: Vec<u64> = self.children.keys().copied().collect();
        for id in ids {
            self.kill(id);
        }
        self.coordinators.clear();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}
