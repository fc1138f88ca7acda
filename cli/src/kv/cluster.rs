//! A cluster on this machine: node processes (this binary's `shardkit node`) on loopback, and
//! one lease coordinator per slot in this process.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shardkit_replication::replica::{
    CoordinatorNode, LeaseCoordinator, NodeId, TcpConfig, TcpTransport,
};

use super::layout::{COORDINATOR, Layout, Member};

pub(crate) struct Cluster {
    pub(crate) layout: Layout,
    dir: PathBuf,
    slots: u32,
    children: BTreeMap<u64, Child>,
    coordinators: Vec<CoordinatorNode>,
    cursor_secret: String,
}

/// A run of `count` consecutive free loopback ports, from a seeded starting point.
fn free_ports(count: u32, seed: u64) -> Result<u16, String> {
    let mut pick = seed;
    for _ in 0..50 {
        pick = pick
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let base = 20_000 + (pick >> 33) % 30_000;
        let ports = base as u16..(base as u16).saturating_add(count as u16);
        let free = ports
            .clone()
            .all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok());
        if free {
            return Ok(base as u16);
        }
    }
    Err("no run of free loopback ports found".into())
}

impl Cluster {
    /// Starts `nodes` node processes with data under `dir`, and the slots' coordinators.
    pub(crate) fn start(nodes: u32, slots: u32, dir: &Path, seed: u64) -> Result<Self, String> {
        let per_node = 1 + slots;
        let base = free_ports(Layout::ports_needed(nodes, slots), seed)?;
        let members: Vec<Member> = (1..=u64::from(nodes))
            .map(|id| Member {
                id,
                addr: SocketAddr::from((
                    [127, 0, 0, 1],
                    base + ((id - 1) as u16) * per_node as u16,
                )),
            })
            .collect();
        let coordinators = SocketAddr::from(([127, 0, 0, 1], base + (nodes * per_node) as u16));
        let layout = Layout::new(&members, coordinators, slots)?;
        let mut cluster = Self {
            layout,
            dir: dir.to_path_buf(),
            slots,
            children: BTreeMap::new(),
            coordinators: Vec::new(),
            cursor_secret: format!("shardkit-demo-{seed:016x}-{:08x}", std::process::id()),
        };
        for slot in 0..slots {
            let holders = cluster.layout.holders(slot).into_iter().map(NodeId::new);
            let transport = TcpTransport::bind(
                COORDINATOR,
                cluster.layout.coordinator_addr(slot),
                &cluster.layout.group(slot),
                TcpConfig::default(),
            )
            .map_err(|e| format!("coordinator of slot {slot}: {e}"))?;
            cluster.coordinators.push(CoordinatorNode::start(
                COORDINATOR,
                LeaseCoordinator::new(holders, Duration::from_millis(600)),
                transport,
            ));
        }
        for id in 1..=u64::from(nodes) {
            cluster.spawn(id)?;
        }
        Ok(cluster)
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
            self.layout.coordinator_addr(0).to_string(),
            "--slots".into(),
            self.slots.to_string(),
            "--cursor-secret".into(),
            self.cursor_secret.clone(),
        ];
        for m in self.layout.members() {
            args.push("--member".into());
            args.push(format!("{}={}", m.id, m.addr));
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
        let child = Command::new(exe)
            .args(self.node_command(id))
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
            .iter()
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
