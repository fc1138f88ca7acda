//! Deterministic simulation of the replication protocol: replicas, a coordinator and
//! idempotent clients on a seeded, faulty network (loss, delay, duplication, reordering,
//! partitions), with paused "zombie" leaders, crashes that lose the unsynced tail, wiped
//! disks and forced failovers. The invariants are checked after every step.
//!
//! `SHARDKIT_SIM_SEEDS` (how many) and `SHARDKIT_SIM_SEED_START` (the first) choose the seeds;
//! a failing seed is printed with the command that replays it alone.

use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use shardkit_replication::replica::{
    AckLevel, Committed, Coordinator, FollowerAck, LeaseCoordinator, MemoryReplicaStore, Message,
    NodeId, ProducerSeq, Replica, ReplicaConfig, Role, Snapshot, StateMachine, SyncTicket, Write,
    WriteError, WriteId, Written,
};
use shardkit_replication::{Epoch, Error, LogStorage, MemoryLog, Offset};

mod support;
use support::{DiskHooks, HookedLog};

const TICK: Duration = Duration::from_millis(2);
const COORDINATOR: NodeId = NodeId::new(0);

/// SplitMix64: a small, well-mixed, seedable generator (no dependency needed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, per_million: u64) -> bool {
        self.below(1_000_000) < per_million
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// A disk: a log whose unsynced tail a machine crash takes back.
type SimDisk = Arc<HookedLog<SyncedEnd>>;

/// The end of what the disk holds for sure.
#[derive(Default)]
struct SyncedEnd(AtomicU64);

impl DiskHooks for SyncedEnd {
    fn sync(&self, log: &MemoryLog) -> Result<(), Error> {
        self.0.store(log.end_offset().get(), Ordering::SeqCst);
        Ok(())
    }
    fn truncated(&self, offset: Offset) {
        self.0.fetch_min(offset.get(), Ordering::SeqCst);
    }
    fn reset(&self, start: Offset) {
        self.0.store(start.get(), Ordering::SeqCst);
    }
}

/// A machine crash: the disk keeps what was synced (all of it when `lose_unsynced` is off).
fn crash(disk: &SimDisk, lose_unsynced: bool) {
    let synced = Offset::new(disk.hooks.0.load(Ordering::SeqCst));
    if lose_unsynced && synced < disk.log.end_offset() {
        disk.log.truncate_from(synced).unwrap();
    }
    disk.hooks
        .0
        .store(disk.log.end_offset().get(), Ordering::SeqCst);
}

#[derive(Debug, Clone)]
enum Payload {
    Protocol(Message),
    Request { req: u64, write: Write },
    Response { req: u64, outcome: Outcome },
}

#[derive(Debug, Clone)]
enum Outcome {
    Acked(Written, Epoch),
    NotLeader(Option<NodeId>),
    Refused,
    Unknown,
}

#[derive(Debug)]
struct InFlight {
    at: Duration,
    seq: u64,
    from: NodeId,
    to: NodeId,
    payload: Payload,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq)) // a min-heap
    }
}

/// The user's state: every committed data record, in order. It survives a crash (the user
/// keeps it on disk) but not a wiped disk.
#[derive(Debug, Default)]
struct UserState {
    applied_to: Offset,
    records: Vec<(Offset, Vec<u8>)>,
}

struct Machine(Arc<std::sync::Mutex<UserState>>);

impl StateMachine for Machine {
    fn snapshot(&mut self) -> Result<Snapshot, Error> {
        let s = self.0.lock().unwrap();
        let mut data = Vec::new();
        for (offset, payload) in &s.records {
            data.extend_from_slice(&offset.get().to_le_bytes());
            data.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            data.extend_from_slice(payload);
        }
        Ok(Snapshot {
            offset: s.applied_to,
            data,
        })
    }

    fn install(&mut self, snapshot: &Snapshot) -> Result<(), Error> {
        let mut records = Vec::new();
        let mut rest = snapshot.data.as_slice();
        while !rest.is_empty() {
            let offset = u64::from_le_bytes(rest[..8].try_into().unwrap());
            let len = u32::from_le_bytes(rest[8..12].try_into().unwrap()) as usize;
            records.push((Offset::new(offset), rest[12..12 + len].to_vec()));
            rest = &rest[12 + len..];
        }
        let mut s = self.0.lock().unwrap();
        s.records = records;
        s.applied_to = snapshot.offset;
        Ok(())
    }
}

struct SimNode {
    state: Arc<std::sync::Mutex<UserState>>,
    disk: SimDisk,
    epochs: MemoryReplicaStore,
    replica: Option<Replica<SimDisk>>,
    down_until: Duration,
    paused_until: Duration,
    /// Writes waiting for their completion: the client and its request.
    waiting: HashMap<WriteId, (NodeId, u64)>,
    /// The commit offset already checked against the committed history, this incarnation.
    checked: Offset,
    /// The (epoch, role) last seen, to spot a new leadership.
    seen_leadership: Option<Epoch>,
    /// A sync started on the disk, which the replica hears about when it ends (as `Node`
    /// syncs on another thread while the replica goes on).
    syncing: Option<(SyncTicket, Duration)>,
}

struct Client {
    id: NodeId,
    producer: u64,
    seq: u64,
    target: NodeId,
    outstanding: Option<(u64, Duration, AckLevel)>,
    next_req: u64,
}

#[derive(Debug, Clone, Copy)]
struct AckedWrite {
    producer: ProducerSeq,
    offset: Offset,
    epoch: Epoch,
}

struct Sim {
    seed: u64,
    rng: Rng,
    now: Duration,
    members: Vec<NodeId>,
    nodes: BTreeMap<NodeId, SimNode>,
    config: ReplicaConfig,
    coordinator: LeaseCoordinator,
    net: BinaryHeap<InFlight>,
    net_seq: u64,
    /// Directed links that drop everything.
    cut: BTreeSet<(NodeId, NodeId)>,
    heal_at: Duration,
    clients: Vec<Client>,
    acked: Vec<AckedWrite>,
    /// Every committed record any replica reported: offset → (epoch, payload).
    history: BTreeMap<Offset, (Epoch, Vec<u8>)>,
    applied: HashMap<(u64, u64), Offset>,
    loss: u64,
    lose_unsynced_on_crash: bool,
    /// A replica that lost its disk and is not yet eligible to promise again.
    wiped: Option<NodeId>,
    failovers_forced: u64,
    pending_failover: Option<Duration>,
    tracing: bool,
    chaos_end: Duration,
    /// Per million ticks: how often a replica drops log records its snapshot covers.
    compaction: u64,
    /// Odd seeds sync the way `Node` does: the disk works while the replica takes messages
    /// (even seeds keep the stream, and so the runs, they had before syncs could overlap).
    overlapping_syncs: bool,
    /// How long overlapping syncs take: a stream of its own, so that the seed's stream is
    /// drawn the same way whether syncs overlap or not.
    sync_rng: Rng,
}

/// What one run did, so that the test can tell a busy run from a vacuous one.
#[derive(Debug, Default)]
struct Stats {
    acked: usize,
    failovers: u64,
}

impl Sim {
    fn new(seed: u64) -> Self {
        let mut rng = Rng(seed);
        let n = if rng.chance(300_000) { 5 } else { 3 };
        let members: Vec<NodeId> = (1..=n).map(NodeId::new).collect();
        let mut config = ReplicaConfig::new(members[0], members.clone());
        config.coordinator = Some(COORDINATOR);
        config.bootstrap = true;
        config.heartbeat_interval = Duration::from_millis(20);
        config.fetch_wait = Duration::from_millis(40);
        config.fetch_timeout = Duration::from_millis(80);
        config.max_lag_time = Duration::from_millis(400);
        config.max_lag_records = 50;
        config.fetch_max_bytes = 1 << (8 + rng.below(8));
        config.min_in_sync_replicas = 1 + rng.below(config.quorum() as u64) as usize;
        // Followers that ack on receipt lose nothing to a process crash, only to a machine
        // crash; with them, crashes here keep the page cache.
        let received = rng.chance(300_000);
        config.follower_ack = if received {
            FollowerAck::Received
        } else {
            FollowerAck::Flushed
        };
        let nodes = members
            .iter()
            .map(|&id| {
                let node = SimNode {
                    state: Arc::default(),
                    disk: SimDisk::default(),
                    epochs: MemoryReplicaStore::new(),
                    replica: None,
                    down_until: Duration::ZERO,
                    paused_until: Duration::ZERO,
                    waiting: HashMap::new(),
                    checked: Offset::new(0),
                    seen_leadership: None,
                    syncing: None,
                };
                (id, node)
            })
            .collect();
        let clients = (0..1 + rng.below(3))
            .map(|i| Client {
                id: NodeId::new(100 + i),
                producer: 1000 + i,
                seq: 0,
                target: members[0],
                outstanding: None,
                next_req: 0,
            })
            .collect();
        let loss = rng.pick(&[0, 5_000, 20_000, 80_000]);
        let mut sim = Self {
            seed,
            rng,
            now: Duration::ZERO,
            coordinator: LeaseCoordinator::new(members.clone(), Duration::from_millis(150)),
            members,
            nodes,
            config,
            net: BinaryHeap::new(),
            net_seq: 0,
            cut: BTreeSet::new(),
            heal_at: Duration::ZERO,
            clients,
            acked: Vec::new(),
            history: BTreeMap::new(),
            applied: HashMap::new(),
            loss,
            lose_unsynced_on_crash: !received,
            wiped: None,
            failovers_forced: 0,
            pending_failover: None,
            chaos_end: Duration::MAX,
            compaction: 0,
            overlapping_syncs: seed % 2 == 1,
            sync_rng: Rng(seed ^ 0x5EED_5A1C),
            tracing: std::env::var_os("SHARDKIT_SIM_TRACE").is_some(),
        };
        sim.compaction = sim.rng.pick(&[0, 0, 2_000, 20_000]);
        for id in sim.members.clone() {
            sim.start(id);
        }
        sim
    }

    /// Prints what happens when `SHARDKIT_SIM_TRACE` is set, to debug a failing seed.
    fn trace(&self, what: impl FnOnce() -> String) {
        if self.tracing {
            println!("{:>9.3?} {}", self.now, what());
        }
    }

    fn fail(&self, what: &str) -> ! {
        if self.tracing {
            for (id, n) in &self.nodes {
                if let Some(r) = &n.replica {
                    println!("{id}: {:?}", r.status(self.now));
                    println!(
                        "{id}: user state applied to {}",
                        n.state.lock().unwrap().applied_to
                    );
                }
            }
        }
        panic!(
            "seed {} failed at {:?}: {what}\nreplay: SHARDKIT_SIM_SEED_START={} SHARDKIT_SIM_SEEDS=1 cargo test -p shardkit-replication --test simulation -- --nocapture",
            self.seed, self.now, self.seed
        );
    }

    fn start(&mut self, id: NodeId) {
        self.trace(|| format!("{id} starts"));
        let mut config = self.config.clone();
        config.id = id;
        // Only the first start forms the replica set; a wiped disk rejoins as a newcomer.
        config.bootstrap = self.now == Duration::ZERO;
        // Each run its own incarnation, as `ReplicaConfig::new` draws at random, but
        // deterministic, and without drawing from the seed's stream (which would reshuffle
        // every seed's run).
        config.incarnation = Some(((self.now.as_nanos() as u64) << 8) | id.get());
        let node = self.nodes.get_mut(&id).unwrap();
        let mut replica = Replica::open(config, node.disk.clone(), Box::new(node.epochs.clone()))
            .unwrap_or_else(|e| panic!("seed {}: reopening {id}: {e}", self.seed));
        replica.set_state_machine(Box::new(Machine(node.state.clone())));
        if self.tracing {
            println!(
                "{:>9.3?} {id} opened at epoch {} eligible {} end {}",
                self.now,
                replica.epoch(),
                replica.is_eligible(),
                replica.log().end_offset()
            );
        }
        node.replica = Some(replica);
        node.checked = Offset::new(0);
        node.seen_leadership = None;
        node.syncing = None;
        node.waiting.clear();
    }

    fn send(&mut self, from: NodeId, to: NodeId, payload: Payload) {
        if self.cut.contains(&(from, to)) || self.rng.chance(self.loss) {
            return;
        }
        let copies = if self.rng.chance(10_000) { 2 } else { 1 };
        for _ in 0..copies {
            let mut delay = Duration::from_micros(200 + self.rng.below(3_000));
            if self.rng.chance(20_000) {
                delay += Duration::from_millis(self.rng.below(300));
            }
            self.net_seq += 1;
            self.net.push(InFlight {
                at: self.now + delay,
                seq: self.net_seq,
                from,
                to,
                payload: payload.clone(),
            });
        }
    }

    fn is_up(&self, id: NodeId) -> bool {
        let n = &self.nodes[&id];
        n.replica.is_some() && self.now >= n.paused_until
    }

    fn deliver(&mut self) {
        // A bounded network: a protocol bug that multiplies messages (a refusal answered by
        // a refusal) shows up here rather than as a hang.
        if self.net.len() > 50_000 {
            self.fail(&format!(
                "{} messages in flight: a message storm",
                self.net.len()
            ));
        }
        while self.net.peek().is_some_and(|m| m.at <= self.now) {
            let m = self.net.pop().unwrap();
            if m.to == COORDINATOR {
                if let Payload::Protocol(msg) = m.payload {
                    if matches!(msg, Message::Prepared { .. } | Message::NotLeader { .. }) {
                        self.trace(|| format!("coordinator hears {msg:?} from {}", m.from));
                    }
                    self.coordinator.handle(self.now, m.from, msg);
                }
                continue;
            }
            if let Some(ci) = self.clients.iter().position(|c| c.id == m.to) {
                if let Payload::Response { req, outcome } = m.payload {
                    self.on_response(ci, m.from, req, outcome);
                }
                continue;
            }
            if !self.nodes.contains_key(&m.to) {
                continue;
            }
            if self.nodes[&m.to].replica.is_none() {
                continue; // a crashed node loses what it is sent
            }
            if self.now < self.nodes[&m.to].paused_until {
                // A paused process reads its socket later.
                let mut m = m;
                m.at = self.nodes[&m.to].paused_until;
                self.net.push(m);
                continue;
            }
            let now = self.now;
            let seed = self.seed;
            let node = self.nodes.get_mut(&m.to).unwrap();
            let replica = node.replica.as_mut().unwrap();
            match m.payload {
                Payload::Protocol(msg) => {
                    if self.tracing
                        && matches!(
                            msg,
                            Message::Promote { .. }
                                | Message::Follow { .. }
                                | Message::Prepare { .. }
                        )
                    {
                        println!(
                            "{now:>9.3?} {} gets {msg:?} from {} at epoch {} eligible {}",
                            m.to,
                            m.from,
                            replica.epoch(),
                            replica.is_eligible()
                        );
                    }
                    if let Err(e) = replica.handle(now, m.from, msg) {
                        panic!("seed {seed}: {} failed handling a message: {e}", m.to);
                    }
                }
                Payload::Request { req, write } => match replica.write(now, write) {
                    Ok(id) => {
                        node.waiting.insert(id, (m.from, req));
                    }
                    Err(e) => {
                        let outcome = refusal(&e);
                        self.send(m.to, m.from, Payload::Response { req, outcome });
                    }
                },
                Payload::Response { .. } => {}
            }
        }
    }

    fn drive_nodes(&mut self) {
        let now = self.now;
        for id in self.members.clone() {
            if !self.is_up(id) {
                continue;
            }
            let node = self.nodes.get_mut(&id).unwrap();
            let replica = node.replica.as_mut().unwrap();
            replica.tick(now).unwrap();
            let mut out = replica.take_outbox();
            if self.overlapping_syncs {
                if let Some((ticket, done)) = node.syncing
                    && now >= done
                {
                    node.syncing = None;
                    replica.synced(now, ticket);
                }
                if node.syncing.is_none() && replica.needs_sync() {
                    // The disk syncs what it holds when the sync starts; the replica learns
                    // of it later, after whatever truncations and appends came between.
                    let ticket = replica.sync_ticket();
                    replica.log().sync().unwrap();
                    let took = Duration::from_micros(50 + self.sync_rng.below(2_000));
                    node.syncing = Some((ticket, now + took));
                }
            } else {
                replica.flush(now).unwrap();
            }
            out.extend(replica.take_outbox());
            let epoch = replica.epoch();
            let completions = replica.take_completions();
            let mut responses = Vec::new();
            for c in completions {
                if let Some((client, req)) = node.waiting.remove(&c.id) {
                    let outcome = match c.result {
                        Ok(w) => Outcome::Acked(w, epoch),
                        Err(e) => refusal(&e),
                    };
                    responses.push((client, req, outcome));
                }
            }
            for (to, msg) in out {
                self.send(id, to, Payload::Protocol(msg));
            }
            for (client, req, outcome) in responses {
                self.send(id, client, Payload::Response { req, outcome });
            }
        }
        self.coordinator.tick(now);
        for (to, msg) in self.coordinator.take_outbox() {
            self.send(COORDINATOR, to, Payload::Protocol(msg));
        }
    }

    fn on_response(&mut self, ci: usize, from: NodeId, req: u64, outcome: Outcome) {
        let client = &mut self.clients[ci];
        let Some((want, _, level)) = client.outstanding else {
            return;
        };
        if want != req {
            return;
        }
        client.outstanding = None;
        match outcome {
            Outcome::Acked(w, epoch) => {
                let producer = ProducerSeq {
                    producer: client.producer,
                    seq: client.seq,
                };
                client.seq += 1;
                if matches!(level, AckLevel::Quorum | AckLevel::All) {
                    let acked = AckedWrite {
                        producer,
                        offset: w.offset,
                        epoch,
                    };
                    self.acked.push(acked);
                    self.trace(|| format!("acked {acked:?} by {from}"));
                    self.check_leaders_hold(&[acked]);
                }
            }
            Outcome::NotLeader(leader) => {
                let members = self.members.clone();
                let client = &mut self.clients[ci];
                client.target =
                    leader.unwrap_or_else(|| members[(from.get() as usize) % members.len()]);
            }
            Outcome::Refused | Outcome::Unknown => {}
        }
    }

    fn drive_clients(&mut self) {
        for ci in 0..self.clients.len() {
            let now = self.now;
            let client = &self.clients[ci];
            let resend = match client.outstanding {
                None => true,
                // A lost request or answer: try again, with the same sequence number.
                Some((_, sent, _)) => now.saturating_sub(sent) > Duration::from_millis(400),
            };
            let finishing = self.now >= self.chaos_end;
            if !resend || !self.rng.chance(300_000) || (finishing && client.outstanding.is_none()) {
                continue;
            }
            let level = self.rng.pick(&[
                AckLevel::Quorum,
                AckLevel::Quorum,
                AckLevel::All,
                AckLevel::Leader,
                AckLevel::None,
            ]);
            let target = if client.outstanding.is_some() && self.rng.chance(500_000) {
                self.rng.pick(&self.members.clone())
            } else {
                client.target
            };
            let client = &mut self.clients[ci];
            client.target = target;
            let req = client.next_req;
            client.next_req += 1;
            client.outstanding = Some((req, now, level));
            let write = Write::new(
                format!("p{}s{}", client.producer, client.seq).into_bytes(),
                level,
            )
            .idempotent(client.producer, client.seq)
            .with_timeout(Duration::from_millis(300));
            let from = client.id;
            self.send(from, target, Payload::Request { req, write });
        }
    }

    fn inject_faults(&mut self) {
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
        let fault = self.rng.below(8);
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

    /// Every leader at an epoch at least as new as an acknowledged write's holds it.
    fn check_leaders_hold(&self, writes: &[AckedWrite]) {
        for (&id, node) in &self.nodes {
            let Some(r) = &node.replica else { continue };
            if r.role() != Role::Leader {
                continue;
            }
            for w in writes.iter().filter(|w| w.epoch <= r.epoch()) {
                let expected = payload_of(w.producer);
                let held = if w.offset < r.log().start_offset() {
                    // Compacted: the user's state holds it.
                    let state = node.state.lock().unwrap();
                    state
                        .records
                        .iter()
                        .any(|(o, p)| *o == w.offset && p.ends_with(expected.as_slice()))
                } else {
                    r.log()
                        .read(w.offset, 1)
                        .ok()
                        .and_then(|v| v.into_iter().next())
                        .is_some_and(|rec| rec.payload.ends_with(expected.as_slice()))
                };
                if !held {
                    self.fail(&format!(
                        "leader {id} (epoch {}) lacks the acknowledged write {:?}",
                        r.epoch(),
                        w
                    ));
                }
            }
        }
    }

    fn check(&mut self) {
        let mut new_leaders = false;
        let mut newly_committed: Vec<(NodeId, Vec<Committed>)> = Vec::new();
        for (&id, node) in self.nodes.iter_mut() {
            let Some(r) = &node.replica else { continue };
            if r.role() == Role::Leader && node.seen_leadership != Some(r.epoch()) {
                node.seen_leadership = Some(r.epoch());
                new_leaders = true;
                if self.tracing {
                    println!(
                        "{:>9.3?} {id} leads epoch {} at {:?}, log end {}",
                        self.now,
                        r.epoch(),
                        r.position(),
                        r.log().end_offset()
                    );
                }
            }
            let commit = r.commit_offset();
            if commit < node.checked {
                let msg = format!(
                    "{id}'s commit offset went back from {} to {commit}",
                    node.checked
                );
                self.fail_later(msg);
                return;
            }
            if commit > r.log().end_offset() {
                self.fail_later(format!("{id}'s commit offset is beyond its log"));
                return;
            }
            if commit > node.checked {
                let mut got = Vec::new();
                // Below the log's start the records came in a snapshot (checked at the end).
                let mut at = node.checked.max(r.log().start_offset());
                while at < commit {
                    let raw = r.log().read(at, 1 << 16).unwrap();
                    let Some(last) = raw.last() else { break };
                    let next = Offset::new(last.offset.get() + 1);
                    for rec in raw {
                        if rec.offset < commit {
                            got.push(Committed {
                                offset: rec.offset,
                                epoch: rec.epoch,
                                timestamp_ms: 0,
                                key: None,
                                payload: rec.payload,
                                producer: None,
                            });
                        }
                    }
                    at = next;
                }
                if self.tracing {
                    println!(
                        "{:>9.3?} {id} commits {}..{commit} (epoch {}, {:?})",
                        self.now,
                        node.checked,
                        r.epoch(),
                        r.role()
                    );
                }
                node.checked = commit;
                let mut state = node.state.lock().unwrap();
                for rec in &got {
                    if rec.offset >= state.applied_to && rec.payload.first() != Some(&2) {
                        state.records.push((rec.offset, rec.payload.clone()));
                    }
                }
                state.applied_to = state.applied_to.max(commit);
                drop(state);
                newly_committed.push((id, got));
            }
        }
        for (id, records) in newly_committed {
            for rec in records {
                match self.history.get(&rec.offset) {
                    Some((epoch, payload)) if (*epoch, payload) != (rec.epoch, &rec.payload) => {
                        self.fail(&format!(
                            "log matching broken at committed offset {}: {id} has epoch {} where another replica committed epoch {}",
                            rec.offset, rec.epoch, epoch
                        ));
                    }
                    Some(_) => {}
                    None => {
                        if let Some(p) = producer_of(&rec.payload)
                            && let Some(other) =
                                self.applied.insert((p.producer, p.seq), rec.offset)
                            && other != rec.offset
                        {
                            self.fail(&format!(
                                "idempotent write {p:?} applied twice, at {other} and {}",
                                rec.offset
                            ));
                        }
                        self.history.insert(rec.offset, (rec.epoch, rec.payload));
                    }
                }
            }
        }
        if new_leaders {
            let acked = self.acked.clone();
            self.check_leaders_hold(&acked);
        }
    }

    fn fail_later(&self, msg: String) {
        self.fail(&msg);
    }

    fn step(&mut self) {
        self.now += TICK;
        if let Some(at) = self.pending_failover
            && self.now >= at
        {
            self.pending_failover = None;
            self.coordinator.fail_over(self.now);
        }
        self.deliver();
        if self.rng.chance(self.compaction) {
            let id = self.rng.pick(&self.members.clone());
            if self.is_up(id) {
                let r = self.nodes.get_mut(&id).unwrap().replica.as_mut().unwrap();
                r.compact().unwrap();
            }
        }
        self.drive_nodes();
        self.drive_clients();
        self.check();
    }

    fn run(mut self, chaos: Duration, settle: Duration) -> Stats {
        self.chaos_end = chaos;
        while self.now < chaos {
            self.inject_faults();
            self.step();
        }
        // Heal everything and let the replica set converge.
        self.cut.clear();
        self.loss = 0;
        for id in self.members.clone() {
            let n = self.nodes.get_mut(&id).unwrap();
            n.paused_until = Duration::ZERO;
            if n.replica.is_none() {
                self.start(id);
            }
        }
        // Clients finish (retrying what is in doubt) in the first half, then stop.
        let quiet = self.now + settle / 2;
        let end = self.now + settle;
        while self.now < end {
            if self.now >= quiet {
                self.clients.clear();
            }
            self.step();
        }
        self.check_converged();
        Stats {
            acked: self.acked.len(),
            failovers: self.coordinator.failovers(),
        }
    }

    fn check_converged(&self) {
        let leaders: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.replica.as_ref().is_some_and(|r| r.role() == Role::Leader))
            .map(|(&id, _)| id)
            .collect();
        let Some(&leader) = leaders
            .iter()
            .max_by_key(|&&id| self.nodes[&id].replica.as_ref().unwrap().epoch())
        else {
            self.fail("no leader after the network healed");
        };
        let lead = self.nodes[&leader].replica.as_ref().unwrap();
        let end = lead.log().end_offset();
        // What every user's state must be: the committed data records, in order.
        let reference: Vec<(Offset, Vec<u8>)> = self
            .history
            .range(..end)
            .filter(|(_, (_, payload))| payload.first() != Some(&2))
            .map(|(&offset, (_, payload))| (offset, payload.clone()))
            .collect();
        if let Some(gap) = (0..end.get()).find(|&o| !self.history.contains_key(&Offset::new(o))) {
            self.fail(&format!(
                "the committed history has a gap at {gap} (end {end})"
            ));
        }
        let start = self
            .nodes
            .values()
            .map(|n| n.replica.as_ref().unwrap().log().start_offset())
            .max()
            .unwrap();
        let tail = |r: &Replica<SimDisk>| r.log().read(start, usize::MAX).unwrap_or_default();
        let lead_tail = tail(lead);
        for (&id, node) in &self.nodes {
            let r = node.replica.as_ref().unwrap();
            if r.commit_offset() != end || r.log().end_offset() != end {
                self.fail(&format!(
                    "{id} did not converge: commit {} end {} against leader {leader}'s end {end}",
                    r.commit_offset(),
                    r.log().end_offset()
                ));
            }
            if tail(r) != lead_tail {
                self.fail(&format!("{id}'s log differs from leader {leader}'s"));
            }
            let state = node.state.lock().unwrap();
            if state.records != reference {
                self.fail(&format!(
                    "{id}'s state ({} records) differs from the committed history ({})",
                    state.records.len(),
                    reference.len()
                ));
            }
        }
        for w in &self.acked {
            let held = reference.iter().any(|(offset, payload)| {
                *offset == w.offset && payload.ends_with(payload_of(w.producer).as_slice())
            });
            if !held {
                self.fail(&format!(
                    "acknowledged write {w:?} is missing after convergence"
                ));
            }
        }
    }
}

fn refusal(e: &WriteError) -> Outcome {
    match e {
        WriteError::NotLeader { leader, .. } => Outcome::NotLeader(*leader),
        e if e.is_fate_unknown() => Outcome::Unknown,
        _ => Outcome::Refused,
    }
}

fn payload_of(p: ProducerSeq) -> Vec<u8> {
    format!("p{}s{}", p.producer, p.seq).into_bytes()
}

/// The producer of a replicated record's payload (tag 1: producer and sequence follow).
fn producer_of(payload: &[u8]) -> Option<ProducerSeq> {
    if payload.first() != Some(&1) || payload.len() < 17 {
        return None;
    }
    Some(ProducerSeq {
        producer: u64::from_le_bytes(payload[1..9].try_into().unwrap()),
        seq: u64::from_le_bytes(payload[9..17].try_into().unwrap()),
    })
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn seeded_simulations_keep_every_invariant() {
    // CI runs both: a quick pass in debug (with overflow checks) and thousands in release.
    let default_seeds = if cfg!(debug_assertions) { 300 } else { 5000 };
    let seeds = env_u64("SHARDKIT_SIM_SEEDS", default_seeds);
    let start = env_u64("SHARDKIT_SIM_SEED_START", 0);
    let mut total = Stats::default();
    for seed in start..start + seeds {
        let stats = Sim::new(seed).run(Duration::from_secs(6), Duration::from_secs(4));
        total.acked += stats.acked;
        total.failovers += stats.failovers;
    }
    println!(
        "{seeds} seeds from {start}: {} writes acknowledged at quorum or all, {} failovers",
        total.acked, total.failovers
    );
    // The invariants are only worth something if the runs did work.
    assert!(
        total.acked as u64 >= seeds * 20,
        "too few writes acknowledged: {total:?}"
    );
    assert!(total.failovers >= seeds, "too few failovers: {total:?}");
}

/// Seeds that once broke an invariant, each with what it caught.
const ONCE_FAILED: &[u64] = &[
    // Found in a run of 300,000 seeds from 10,000,000: a replica whose disk was wiped took a
    // `Follow` for epoch 6 that had been sent to its previous run, although that run had
    // promised epoch 7; with its acknowledgements the paused epoch-6 leader, on resuming,
    // completed quorum writes that the next failover (to the epoch-7 log) lost.
    10_022_694,
    // Found in a run of 1,000,000 seeds from 60,000,000: a leader compacted its log, and sent
    // a snapshot, with the producers' writes before the cut only for producers whose latest
    // write was before it. A producer whose acknowledged write was cut away, and whose later
    // (uncommitted) writes were not, was left out; a follower that installed the snapshot,
    // promoted once those later writes were cut, appended a retry of the acknowledged write
    // again.
    60_695_171,
];

/// Replays [`ONCE_FAILED`] on every run (each alone, without the aggregate's minimum of work
/// done).
#[test]
fn seeds_that_once_failed_stay_fixed() {
    for &seed in ONCE_FAILED {
        Sim::new(seed).run(Duration::from_secs(6), Duration::from_secs(4));
    }
}
