//! Replication across real processes over loopback TCP: a coordinator and three replicas
//! (`shardkit log coordinate` / `serve`), a writer (`shardkit log write`) acknowledging at
//! quorum; the leader is killed with SIGKILL mid-stream, a follower is promoted, the old
//! leader restarts and rejoins. Every acknowledged write must be in every log, once, and the
//! logs must converge. The set authenticates its packets with a shared key.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shardkit_replication::replica::{AuthKey, Packet, ReplicaStatus, Role, TcpClient};
use shardkit_replication::{FileLog, LogConfig, LogStorage, Offset, Record};

const PRODUCER: u64 = 9;
const SIZE: usize = 100;
/// The replica set's members' key, written to the file nodes and the coordinator are given.
const KEY: &[u8] = b"the failover test's shared secret";
/// The clients' key (the writer's, and this test's status requests').
const CLIENT_KEY: &[u8] = b"the failover test's clients' secret";

#[path = "../src/ports.rs"]
mod ports;

/// `n` free loopback addresses, consecutive and outside the ephemeral range, so that no
/// node's outgoing connection can take one before the child meant for it binds it, nor the
/// killed leader's while it is down.
fn free_ports(n: u32) -> Vec<SocketAddr> {
    let seed = u64::from(std::process::id()) << 32
        ^ u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos(),
        );
    let base = ports::free_port_run(n, seed).unwrap();
    (0..n as u16)
        .map(|i| SocketAddr::from(([127, 0, 0, 1], base + i)))
        .collect()
}

struct Cluster {
    dir: PathBuf,
    /// The file holding [`KEY`].
    key_file: PathBuf,
    /// The file holding [`CLIENT_KEY`].
    client_key_file: PathBuf,
    coordinator: SocketAddr,
    nodes: HashMap<u64, SocketAddr>,
    children: HashMap<u64, Child>,
    coordinator_child: Child,
}

impl Cluster {
    fn members(&self) -> Vec<String> {
        let mut ids: Vec<_> = self.nodes.keys().copied().collect();
        ids.sort_unstable();
        ids.iter()
            .flat_map(|id| ["--member".to_string(), format!("{id}={}", self.nodes[id])])
            .collect()
    }

    fn start_node(&mut self, id: u64) {
        let child = Command::new(env!("CARGO_BIN_EXE_shardkit"))
            .args(["log", "serve", "--id", &id.to_string(), "--bootstrap"])
            .arg("--dir")
            .arg(self.dir.join(format!("n{id}")))
            .args(self.members())
            .args(["--coordinator", &format!("0={}", self.coordinator)])
            .arg("--auth-key-file")
            .arg(&self.key_file)
            .arg("--client-auth-key-file")
            .arg(&self.client_key_file)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        self.children.insert(id, child);
    }

    fn kill(&mut self, id: u64) {
        let mut child = self.children.remove(&id).unwrap();
        // SIGKILL: no chance to flush or close anything.
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn status(&self, id: u64) -> Option<ReplicaStatus> {
        let key = AuthKey::new(CLIENT_KEY).unwrap();
        self.status_with(id, Some(key))
    }

    fn status_with(&self, id: u64, key: Option<AuthKey>) -> Option<ReplicaStatus> {
        let mut c = TcpClient::connect(self.nodes[&id], Duration::from_millis(500)).ok()?;
        if let Some(key) = key {
            c = c.with_auth(key);
        }
        match c
            .call(
                |request| Packet::StatusRequest { request },
                Duration::from_secs(2),
            )
            .ok()?
        {
            Packet::Status { status, .. } => Some(status),
            _ => None,
        }
    }

    fn leader(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            for &id in self.children.keys() {
                if self.status(id).is_some_and(|s| s.role == Role::Leader) {
                    return id;
                }
            }
            assert!(Instant::now() < deadline, "no leader");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.children.values_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = self.coordinator_child.kill();
        let _ = self.coordinator_child.wait();
    }
}

fn payload(seq: u64) -> Vec<u8> {
    let mut p = format!("{PRODUCER}:{seq}:").into_bytes();
    p.resize(SIZE, b'.');
    p
}

fn read_all(dir: &Path) -> Vec<Record> {
    let log = FileLog::open(dir, LogConfig::default()).unwrap();
    let mut out = Vec::new();
    let mut at = log.start_offset();
    while at < log.end_offset() {
        let batch = log.read(at, 1 << 20).unwrap();
        at = Offset::new(batch.last().unwrap().offset.get() + 1);
        out.extend(batch);
    }
    out
}

#[test]
fn sigkilled_leader_loses_no_acknowledged_write_and_rejoins() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(4);
    let coordinator = ports[0];
    let nodes: HashMap<u64, SocketAddr> = (1..=3).zip(ports[1..].iter().copied()).collect();
    let mut members = Vec::new();
    for id in 1..=3u64 {
        members.push("--member".to_string());
        members.push(format!("{id}={}", nodes[&id]));
    }
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, KEY).unwrap();
    let client_key_file = dir.path().join("client-key");
    std::fs::write(&client_key_file, CLIENT_KEY).unwrap();
    let coordinator_child = Command::new(env!("CARGO_BIN_EXE_shardkit"))
        .args(["log", "coordinate", "--lease-ms", "400"])
        .args(["--listen", &format!("0={coordinator}")])
        .args(&members)
        .arg("--auth-key-file")
        .arg(&key_file)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut cluster = Cluster {
        dir: dir.path().to_path_buf(),
        key_file: key_file.clone(),
        client_key_file: client_key_file.clone(),
        coordinator,
        nodes,
        children: HashMap::new(),
        coordinator_child,
    };
    for id in 1..=3 {
        cluster.start_node(id);
    }
    let first_leader = cluster.leader();
    assert!(
        cluster.status_with(first_leader, None).is_none(),
        "a client without a key was answered"
    );

    // The writer runs as its own process and prints each acknowledged `seq offset`.
    let total = 600u64;
    let mut writer = Command::new(env!("CARGO_BIN_EXE_shardkit"))
        .args([
            "log",
            "write",
            "--ack",
            "quorum",
            "--size",
            &SIZE.to_string(),
        ])
        .args([
            "--count",
            &total.to_string(),
            "--producer",
            &PRODUCER.to_string(),
        ])
        .args(
            (1..=3u64)
                .flat_map(|id| ["--node".to_string(), format!("{id}={}", cluster.nodes[&id])]),
        )
        .arg("--auth-key-file")
        .arg(&client_key_file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(writer.stdout.take().unwrap()).lines();
    let mut acked: Vec<(u64, u64)> = Vec::new();
    let mut killed = false;
    let mut restarted_at = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        let mut f = line.split_whitespace().map(|x| x.parse::<u64>().unwrap());
        acked.push((f.next().unwrap(), f.next().unwrap()));
        if acked.len() == 150 && !killed {
            // Mid-stream: the leader dies without warning.
            cluster.kill(first_leader);
            killed = true;
        }
        if killed && restarted_at.is_none() && acked.len() == 300 {
            cluster.start_node(first_leader);
            restarted_at = Some(acked.len());
        }
    }
    let status = writer.wait().unwrap();
    assert!(status.success(), "the writer failed: {status}");
    assert_eq!(
        acked.len() as u64,
        total,
        "every write was eventually acknowledged"
    );
    assert!(restarted_at.is_some(), "the old leader was restarted");
    let second_leader = cluster.leader();
    assert_ne!(second_leader, first_leader, "a follower was promoted");

    // Converge: every replica commits the leader's whole log.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let statuses: Vec<_> = (1..=3).map(|id| cluster.status(id)).collect();
        let converged = statuses.iter().all(|s| {
            s.as_ref().is_some_and(|s| {
                let lead = statuses[(second_leader - 1) as usize].as_ref();
                lead.is_some_and(|l| s.end == l.end && s.commit == l.end && s.flushed == l.end)
            })
        });
        if converged {
            break;
        }
        assert!(Instant::now() < deadline, "no convergence: {statuses:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    for id in 1..=3 {
        cluster.kill(id);
    }

    let logs: Vec<Vec<Record>> = (1..=3)
        .map(|id| read_all(&dir.path().join(format!("n{id}"))))
        .collect();
    assert_eq!(logs[0], logs[1], "replicas 1 and 2 differ");
    assert_eq!(logs[0], logs[2], "replicas 1 and 3 differ");
    let by_offset: HashMap<u64, &Record> = logs[0].iter().map(|r| (r.offset.get(), r)).collect();
    for &(seq, offset) in &acked {
        let record = by_offset
            .get(&offset)
            .unwrap_or_else(|| panic!("acknowledged write {seq} at {offset} is missing"));
        assert!(
            record.payload.ends_with(&payload(seq)),
            "offset {offset} does not hold write {seq}"
        );
    }
    // Each write is in the log exactly once, despite the writer's retries.
    for seq in 0..total {
        let copies = logs[0]
            .iter()
            .filter(|r| r.payload.ends_with(&payload(seq)))
            .count();
        assert_eq!(copies, 1, "write {seq} is in the log {copies} times");
    }
}
