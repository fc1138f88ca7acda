//! `shardkit log serve | follow | coordinate | status | write`: a replicated log as
//! processes on one machine or several, over TCP.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use shardkit_replication::replica::{
    AckLevel, AuthKey, CoordinatorNode, FileReplicaStore, FollowerAck, LeaseCoordinator, Node,
    NodeId, Packet, RemoteWriteError, Replica, ReplicaConfig, TcpClient, TcpConfig, TcpTransport,
    Write,
};
use shardkit_replication::{Durability, Epoch, FileLog, LogConfig};

use crate::member::Member;

/// When a follower acknowledges records to its leader.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum AckOn {
    /// Once written to its log (survives its process crashing, not its machine).
    Received,
    /// Once synced to its disk.
    Flushed,
}

/// The replica set's packet authentication, if it has a key.
#[derive(Debug, Args)]
pub(crate) struct AuthArgs {
    /// A file whose bytes (all of them, 16 or more; for instance 32 from /dev/urandom) are a
    /// key of the replica set: for a node or the coordinator the members' key, for a client
    /// the clients' key if the nodes have one (--client-auth-key-file), else the members'.
    /// Packets are then authenticated, and whoever lacks a key is not heard.
    #[arg(long, value_name = "FILE")]
    auth_key_file: Option<PathBuf>,
}

impl AuthArgs {
    fn key(&self) -> Result<Option<AuthKey>, String> {
        self.auth_key_file.as_deref().map(read_key).transpose()
    }

    fn tcp_config(&self) -> Result<TcpConfig, String> {
        Ok(TcpConfig {
            auth: self.key()?,
            ..TcpConfig::default()
        })
    }
}

/// The key whose bytes are those of the file at `path`.
fn read_key(path: &std::path::Path) -> Result<AuthKey, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    AuthKey::new(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// A client of the node at `addr`, with `key` if there is one.
fn connect(
    addr: SocketAddr,
    timeout: Duration,
    key: Option<&AuthKey>,
) -> std::io::Result<TcpClient> {
    let client = TcpClient::connect(addr, timeout)?;
    Ok(match key {
        Some(key) => client.with_auth(key.clone()),
        None => client,
    })
}

/// Arguments of `shardkit log serve` and `shardkit log follow`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// This replica's id (one of the `--member`s).
    #[arg(long)]
    id: u64,
    /// The log directory (created if missing).
    #[arg(long)]
    dir: PathBuf,
    /// Every replica of the set, this one included, as ID=HOST:PORT (repeat the flag).
    #[arg(long = "member", required = true)]
    members: Vec<Member>,
    /// The coordinator, as ID=HOST:PORT; without one, `serve` leads and `follow` follows.
    #[arg(long)]
    coordinator: Option<Member>,
    /// When followers acknowledge records.
    #[arg(long, value_enum, default_value_t = AckOn::Flushed)]
    ack_on: AckOn,
    /// Replicas that must be in sync for quorum and all writes (default: a majority).
    #[arg(long)]
    min_in_sync: Option<usize>,
    /// This disk starts a new replica set (ignored once the directory holds replica state;
    /// never pass it to a replica rejoining after losing its disk).
    #[arg(long)]
    bootstrap: bool,
    #[command(flatten)]
    auth: AuthArgs,
    /// A file holding the clients' key, if clients should not hold the members' (which lets
    /// them speak the protocol as a member): clients then give it as their --auth-key-file.
    #[arg(long, value_name = "FILE", requires = "auth_key_file")]
    client_auth_key_file: Option<PathBuf>,
}

/// Arguments of `shardkit log coordinate`.
#[derive(Debug, Args)]
pub(crate) struct CoordinateArgs {
    /// The coordinator's own id and address, as ID=HOST:PORT.
    #[arg(long)]
    listen: Member,
    /// Every replica, as ID=HOST:PORT (repeat the flag).
    #[arg(long = "member", required = true)]
    members: Vec<Member>,
    /// Milliseconds without a heartbeat before the leader is replaced.
    #[arg(long, default_value_t = 1000)]
    lease_ms: u64,
    #[command(flatten)]
    auth: AuthArgs,
}

/// Arguments of `shardkit log status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The node's address.
    addr: SocketAddr,
    #[command(flatten)]
    auth: AuthArgs,
}

/// Arguments of `shardkit log write`.
#[derive(Debug, Args)]
pub(crate) struct WriteArgs {
    /// Nodes to try, leader first if known (repeat); the writer follows `NotLeader` hints.
    #[arg(long = "node", required = true)]
    nodes: Vec<Member>,
    /// How many records to write, one at a time.
    #[arg(long, default_value_t = 10)]
    count: u64,
    /// Payload bytes per record.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// The ack level to wait for.
    #[arg(long, value_enum, default_value_t = Ack::Quorum)]
    ack: Ack,
    /// The idempotent producer id (retries reuse sequence numbers).
    #[arg(long, default_value_t = 1)]
    producer: u64,
    /// The first sequence number.
    #[arg(long, default_value_t = 0)]
    first_seq: u64,
    #[command(flatten)]
    auth: AuthArgs,
}

/// An ack level on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Ack {
    /// Appended on the leader.
    None,
    /// Synced on the leader.
    Leader,
    /// On a majority.
    Quorum,
    /// On a majority and every in-sync follower.
    All,
}

impl Ack {
    fn level(self) -> AckLevel {
        match self {
            Ack::None => AckLevel::None,
            Ack::Leader => AckLevel::Leader,
            Ack::Quorum => AckLevel::Quorum,
            Ack::All => AckLevel::All,
        }
    }
}

/// The payload `shardkit log write` writes for a producer's sequence number.
pub(crate) fn write_payload(producer: u64, seq: u64, size: usize) -> Vec<u8> {
    let mut p = format!("{producer}:{seq}:").into_bytes();
    p.resize(size.max(p.len()), b'.');
    p
}

/// Runs a replica until the process is killed. `lead` says what to do without a
/// coordinator: lead (`serve`) or follow the first other member (`follow`).
pub(crate) fn serve(args: &ServeArgs, lead: bool) -> Result<(), String> {
    let id = NodeId::new(args.id);
    let mut addrs: HashMap<NodeId, SocketAddr> =
        args.members.iter().map(|m| (m.id, m.addr)).collect();
    let listen = *addrs
        .get(&id)
        .ok_or_else(|| format!("--id {} is not among the --member flags", args.id))?;
    let mut config = ReplicaConfig::new(id, addrs.keys().copied());
    config.bootstrap = args.bootstrap;
    config.follower_ack = match args.ack_on {
        AckOn::Received => FollowerAck::Received,
        AckOn::Flushed => FollowerAck::Flushed,
    };
    if let Some(n) = args.min_in_sync {
        config.min_in_sync_replicas = n;
    }
    if let Some(c) = &args.coordinator {
        config.coordinator = Some(c.id);
        addrs.insert(c.id, c.addr);
    }
    // The replica syncs when an ack level needs it, once per batch.
    let log = FileLog::open(
        &args.dir,
        LogConfig::default().durability(Durability::Never),
    )
    .map_err(|e| e.to_string())?;
    let replica = Replica::open(
        config,
        Arc::new(log),
        Box::new(FileReplicaStore::new(&args.dir)),
    )
    .map_err(|e| e.to_string())?;
    let epoch = replica.epoch();
    let tcp = TcpConfig {
        client_auth: args
            .client_auth_key_file
            .as_deref()
            .map(read_key)
            .transpose()?,
        ..args.auth.tcp_config()?
    };
    let transport = TcpTransport::bind(id, listen, &addrs, tcp)
        .map_err(|e| format!("listening on {listen}: {e}"))?;
    let node = Node::start(replica, transport);
    if args.coordinator.is_none() {
        let next = Epoch::new(epoch.get() + 1);
        if lead {
            node.promote(next).map_err(|e| e.to_string())?;
        } else if let Some(leader) = args.members.iter().find(|m| m.id != id) {
            node.follow(epoch, leader.id).map_err(|e| e.to_string())?;
        }
    }
    println!(
        "replica {id} listening on {listen}, log in {}",
        args.dir.display()
    );
    loop {
        std::thread::sleep(Duration::from_secs(3600));
        let _ = node.commit_offset();
    }
}

/// Runs the lease coordinator until the process is killed.
pub(crate) fn coordinate(args: &CoordinateArgs) -> Result<(), String> {
    let mut addrs: HashMap<NodeId, SocketAddr> =
        args.members.iter().map(|m| (m.id, m.addr)).collect();
    let members: Vec<NodeId> = addrs.keys().copied().collect();
    addrs.insert(args.listen.id, args.listen.addr);
    let transport = TcpTransport::bind(
        args.listen.id,
        args.listen.addr,
        &addrs,
        args.auth.tcp_config()?,
    )
    .map_err(|e| format!("listening on {}: {e}", args.listen.addr))?;
    let coordinator = CoordinatorNode::start(
        args.listen.id,
        LeaseCoordinator::new(members, Duration::from_millis(args.lease_ms)),
        transport,
    );
    println!("coordinator listening on {}", args.listen.addr);
    let mut last = None;
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let leader = coordinator.leader();
        if leader != last {
            if let Some((id, epoch)) = leader {
                println!("leader {id} in epoch {epoch}");
            }
            last = leader;
        }
    }
}

/// Prints a node's status.
pub(crate) fn status(args: &StatusArgs) -> Result<(), String> {
    let key = args.auth.key()?;
    let mut client =
        connect(args.addr, Duration::from_secs(2), key.as_ref()).map_err(|e| e.to_string())?;
    let answer = client
        .call(
            |request| Packet::StatusRequest { request },
            Duration::from_secs(5),
        )
        .map_err(|e| e.to_string())?;
    let Packet::Status { status: s, .. } = answer else {
        return Err(format!("unexpected answer {answer:?}"));
    };
    println!("replica {}: {:?} in epoch {}", s.id, s.role, s.epoch);
    match s.leader {
        Some(l) => println!("leader: {l}"),
        None => println!("leader: unknown"),
    }
    println!(
        "log: {}..{} (synced to {}), commit offset {}",
        s.start, s.end, s.flushed, s.commit
    );
    for f in &s.followers {
        println!(
            "follower {}: end {} acked {} lag {} records / {} bytes / {:?}{}",
            f.id,
            f.end,
            f.acked,
            f.lag_records,
            f.lag_bytes,
            f.lag_time,
            if f.in_sync {
                ", in sync"
            } else {
                ", NOT in sync"
            }
        );
    }
    Ok(())
}

/// Writes records one at a time, following leader hints and retrying with the same
/// sequence number; prints `seq offset` per acknowledged write.
pub(crate) fn write(args: &WriteArgs) -> Result<(), String> {
    let addrs: HashMap<NodeId, SocketAddr> = args.nodes.iter().map(|m| (m.id, m.addr)).collect();
    let key = args.auth.key()?;
    let mut target = args.nodes[0].id;
    let mut client: Option<TcpClient> = None;
    let last = args
        .first_seq
        .checked_add(args.count)
        .ok_or("--first-seq plus --count passes the largest sequence number")?;
    for seq in args.first_seq..last {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if Instant::now() > deadline {
                return Err(format!("write {seq} was not acknowledged within 30 s"));
            }
            let c = match &mut client {
                Some(c) => c,
                None => match connect(addrs[&target], Duration::from_secs(1), key.as_ref()) {
                    Ok(c) => client.insert(c),
                    Err(_) => {
                        target = next_node(&args.nodes, target);
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                },
            };
            let write = Write::new(
                write_payload(args.producer, seq, args.size),
                args.ack.level(),
            )
            .idempotent(args.producer, seq)
            .with_timeout(Duration::from_secs(2));
            match c.call(
                |request| Packet::Write { request, write },
                Duration::from_secs(5),
            ) {
                Ok(Packet::WriteResult { result: Ok(w), .. }) => {
                    println!("{seq} {}", w.offset);
                    break;
                }
                Ok(Packet::WriteResult {
                    result: Err(RemoteWriteError::NotLeader { leader, .. }),
                    ..
                }) => {
                    target = leader
                        .filter(|l| addrs.contains_key(l))
                        .unwrap_or_else(|| next_node(&args.nodes, target));
                    client = None;
                    std::thread::sleep(Duration::from_millis(20));
                }
                // Retrying cannot help: no packet carries it.
                Ok(Packet::WriteResult {
                    result: Err(e @ RemoteWriteError::TooLarge { .. }),
                    ..
                }) => return Err(format!("write {seq}: {e}")),
                Ok(_) => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => {
                    client = None;
                    target = next_node(&args.nodes, target);
                }
            }
        }
    }
    Ok(())
}

fn next_node(nodes: &[Member], current: NodeId) -> NodeId {
    let i = nodes.iter().position(|m| m.id == current).unwrap_or(0);
    nodes[(i + 1) % nodes.len()].id
}
