//! A replica (or the coordinator) running on its own thread over a [`Transport`]: the driver
//! that turns the sans-IO state machines into a service, with blocking writes, committed
//! reads, read-your-writes waits and tailing subscriptions.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded, select, unbounded};
use parking_lot::Mutex;

use super::coordinator::Coordinator;
use super::core::{Committed, Replica, read_committed};
use super::error::WriteError;
use super::status::ReplicaStatus;
use super::transport::{Inbound, ReplyTo, Transport};
use super::types::NodeId;
use super::wire::{Packet, RemoteWriteError};
use super::write::{Write, WriteId, Written};
use crate::error::Error;
use crate::log::storage::LogStorage;
use crate::record::Offset;

/// How often the driver advances the state machine's clock when nothing arrives.
const TICK: Duration = Duration::from_millis(1);
/// The most writes gathered into one append.
const MAX_BATCH: usize = 4096;

/// Each write's outcome, in the order submitted.
pub type BatchOutcome = Vec<Result<Written, WriteError>>;

enum Command {
    Write(Write, Sender<Result<Written, WriteError>>),
    WriteBatch(Vec<Write>, Sender<BatchOutcome>),
    Status(Sender<ReplicaStatus>),
    Compact(Sender<Result<Offset, Error>>),
}

/// Who waits for a write's outcome.
enum Waiter {
    Local(Sender<Result<Written, WriteError>>),
    Remote(ReplyTo, u64),
    /// Write `index` of batch `batch`.
    Batch {
        batch: u64,
        index: usize,
    },
}

/// Write ids are a counter: they need no hashing against collisions, only spreading.
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type Waiters = std::collections::HashMap<WriteId, Waiter, std::hash::BuildHasherDefault<IdHasher>>;

/// A batch of writes submitted together, answered together.
struct PendingBatch {
    results: Vec<Option<Result<Written, WriteError>>>,
    remaining: usize,
    reply: Sender<BatchOutcome>,
}

/// The batches waiting for their writes' outcomes.
#[derive(Default)]
struct Batches {
    next: u64,
    open: std::collections::HashMap<u64, PendingBatch>,
}

impl Batches {
    /// Registers a batch of `len` writes; returns their waiters.
    fn open(&mut self, len: usize, reply: Sender<BatchOutcome>) -> impl Iterator<Item = Waiter> {
        let batch = self.next;
        self.next += 1;
        if len == 0 {
            let _ = reply.send(Vec::new());
        } else {
            self.open.insert(
                batch,
                PendingBatch {
                    results: (0..len).map(|_| None).collect(),
                    remaining: len,
                    reply,
                },
            );
        }
        (0..len).map(move |index| Waiter::Batch { batch, index })
    }

    fn finish(&mut self, batch: u64, index: usize, result: Result<Written, WriteError>) {
        let Some(b) = self.open.get_mut(&batch) else {
            return;
        };
        b.results[index] = Some(result);
        b.remaining -= 1;
        if b.remaining == 0
            && let Some(b) = self.open.remove(&batch)
        {
            let lost = || {
                Err(WriteError::LeadershipLost {
                    offset: Offset::new(0),
                })
            };
            let _ = b.reply.send(
                b.results
                    .into_iter()
                    .map(|r| r.unwrap_or_else(lost))
                    .collect(),
            );
        }
    }
}

impl Waiter {
    fn finish(self, result: Result<Written, WriteError>, batches: &mut Batches) {
        match self {
            Waiter::Local(tx) => {
                let _ = tx.send(result);
            }
            Waiter::Remote(reply, request) => reply.send(Packet::WriteResult {
                request,
                result: result.map_err(|e| RemoteWriteError::from(&e)),
            }),
            Waiter::Batch { batch, index } => batches.finish(batch, index, result),
        }
    }
}

/// The commit offset, published by the driver for readers on other threads (the log's own
/// tail signal, whose wake-ups are model-checked with loom).
type Published = crate::notify::Tail;

/// A [`Replica`] on its own thread, over a [`Transport`]. Writes block until their ack
/// level (or fail); committed reads, read-your-writes waits and subscriptions run on the
/// caller's thread against the shared log.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use shardkit_replication::MemoryLog;
/// use shardkit_replication::replica::{
///     AckLevel, MemoryNetwork, MemoryReplicaStore, Node, NodeId, Replica, ReplicaConfig, Write,
/// };
///
/// let network = MemoryNetwork::new();
/// let ids = [NodeId::new(1), NodeId::new(2), NodeId::new(3)];
/// let nodes: Vec<Node<_>> = ids.iter().map(|&id| {
///     let mut config = ReplicaConfig::new(id, ids);
///     config.bootstrap = true;
///     let replica = Replica::open(config, Arc::new(MemoryLog::new()), Box::new(MemoryReplicaStore::new()))?;
///     Ok(Node::start(replica, network.join(id)))
/// }).collect::<Result<_, shardkit_replication::Error>>()?;
///
/// // No coordinator here: make node 1 lead epoch 1, the others follow it.
/// nodes[0].promote(shardkit_replication::Epoch::new(1))?;
/// for n in &nodes[1..] { n.follow(shardkit_replication::Epoch::new(1), ids[0])?; }
///
/// let written = nodes[0].write(Write::new(b"hello".to_vec(), AckLevel::Quorum))?;
/// // Read your write on a follower: wait until it has committed it.
/// assert!(nodes[1].wait_for_commit(written.offset, Duration::from_secs(5)));
/// let records = nodes[1].read_committed(written.offset, 1 << 20)?;
/// assert_eq!(records[0].payload, b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Node<S: LogStorage + 'static> {
    id: NodeId,
    log: Arc<S>,
    commands: Sender<Command>,
    control: Sender<Control>,
    published: Arc<Published>,
    thread: Option<JoinHandle<()>>,
}

enum Control {
    Promote(crate::record::Epoch, Sender<Result<(), Error>>),
    Follow(crate::record::Epoch, NodeId, Sender<Result<(), Error>>),
    Stop,
}

impl<S: LogStorage + 'static> std::fmt::Debug for Node<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .field("commit", &self.commit_offset())
            .finish_non_exhaustive()
    }
}

impl<S: LogStorage + 'static> Node<S> {
    /// Starts `replica` on a new thread, talking over `transport`. The replica's log is
    /// shared (`Arc`) so that reads need not go through the thread.
    pub fn start(replica: Replica<Arc<S>>, transport: impl Transport + 'static) -> Self {
        let id = replica.id();
        let log = Arc::clone(replica.log());
        let (commands, command_rx) = unbounded();
        let (control, control_rx) = unbounded();
        let published = Arc::new(Published::new(replica.commit_offset().get()));
        let shared = Arc::clone(&published);
        let thread = std::thread::Builder::new()
            .name(format!("shardkit-replica-{id}"))
            .spawn(move || {
                let mut driver = Driver {
                    replica,
                    transport,
                    started: Instant::now(),
                    waiters: Waiters::default(),
                    batches: Batches::default(),
                    published: shared,
                };
                driver.run(&command_rx, &control_rx);
            })
            .expect("spawning the replica's thread");
        Self {
            id,
            log,
            commands,
            control,
            published,
            thread: Some(thread),
        }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The log, for reads of uncommitted records (a leader's own, or for tools).
    pub fn log(&self) -> &Arc<S> {
        &self.log
    }

    /// Writes and waits until the write reaches its ack level, or fails.
    ///
    /// # Errors
    ///
    /// Every [`WriteError`]; [`WriteError::LeadershipLost`] also if the node stopped.
    pub fn write(&self, write: Write) -> Result<Written, WriteError> {
        self.write_async(write)
            .recv()
            .unwrap_or(Err(WriteError::LeadershipLost {
                offset: Offset::new(0),
            }))
    }

    /// Submits a write without waiting: the outcome arrives on the returned channel. Many
    /// writes in flight at once share appends and syncs.
    pub fn write_async(&self, write: Write) -> Receiver<Result<Written, WriteError>> {
        let (tx, rx) = bounded(1);
        if let Err(e) = self.commands.send(Command::Write(write, tx))
            && let Command::Write(_, tx) = e.into_inner()
        {
            let _ = tx.send(Err(WriteError::LeadershipLost {
                offset: Offset::new(0),
            }));
        }
        rx
    }

    /// Submits writes together (a producer's batch): one hand-off to the node for all of
    /// them, and one answer with each write's outcome in order once every one has reached
    /// its ack level or failed. The fastest way to write many records.
    pub fn write_batch_async(&self, writes: Vec<Write>) -> Receiver<BatchOutcome> {
        let (tx, rx) = bounded(1);
        if let Err(e) = self.commands.send(Command::WriteBatch(writes, tx))
            && let Command::WriteBatch(writes, tx) = e.into_inner()
        {
            let lost = writes
                .iter()
                .map(|_| {
                    Err(WriteError::LeadershipLost {
                        offset: Offset::new(0),
                    })
                })
                .collect();
            let _ = tx.send(lost);
        }
        rx
    }

    /// [`write_batch_async`](Self::write_batch_async), waiting for the outcomes.
    pub fn write_batch(&self, writes: Vec<Write>) -> BatchOutcome {
        let n = writes.len();
        self.write_batch_async(writes).recv().unwrap_or_else(|_| {
            (0..n)
                .map(|_| {
                    Err(WriteError::LeadershipLost {
                        offset: Offset::new(0),
                    })
                })
                .collect()
        })
    }

    /// The replica's status.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if the node has stopped.
    pub fn status(&self) -> Result<ReplicaStatus, Error> {
        let (tx, rx) = bounded(1);
        let stopped = || Error::InvalidConfig {
            reason: "the node has stopped",
        };
        self.commands
            .send(Command::Status(tx))
            .map_err(|_| stopped())?;
        rx.recv().map_err(|_| stopped())
    }

    /// Drops log records that the state machine's snapshot (or the commit offset) covers;
    /// see [`Replica::compact`].
    ///
    /// # Errors
    ///
    /// As [`Replica::compact`].
    pub fn compact(&self) -> Result<Offset, Error> {
        let (tx, rx) = bounded(1);
        let stopped = || Error::InvalidConfig {
            reason: "the node has stopped",
        };
        self.commands
            .send(Command::Compact(tx))
            .map_err(|_| stopped())?;
        rx.recv().map_err(|_| stopped())?
    }

    /// Makes this node lead `epoch`; see [`Replica::promote`].
    ///
    /// # Errors
    ///
    /// As [`Replica::promote`].
    pub fn promote(&self, epoch: crate::record::Epoch) -> Result<(), Error> {
        self.control_call(|tx| Control::Promote(epoch, tx))
    }

    /// Makes this node follow `leader` in `epoch`; see [`Replica::follow`].
    ///
    /// # Errors
    ///
    /// As [`Replica::follow`].
    pub fn follow(&self, epoch: crate::record::Epoch, leader: NodeId) -> Result<(), Error> {
        self.control_call(|tx| Control::Follow(epoch, leader, tx))
    }

    fn control_call(
        &self,
        build: impl FnOnce(Sender<Result<(), Error>>) -> Control,
    ) -> Result<(), Error> {
        let (tx, rx) = bounded(1);
        let stopped = || Error::InvalidConfig {
            reason: "the node has stopped",
        };
        self.control.send(build(tx)).map_err(|_| stopped())?;
        rx.recv().map_err(|_| stopped())?
    }

    /// The commit offset this node knows.
    pub fn commit_offset(&self) -> Offset {
        Offset::new(self.published.end())
    }

    /// Waits until this node has committed the record at `offset` (read-your-writes: pass
    /// the offset your write was acknowledged with); returns whether it has, `false` on
    /// timeout.
    pub fn wait_for_commit(&self, offset: Offset, timeout: Duration) -> bool {
        self.published.wait_beyond(offset.get(), timeout) > offset.get()
    }

    /// Committed records from `from` on, as [`Replica::read_committed`].
    ///
    /// # Errors
    ///
    /// As [`Replica::read_committed`].
    pub fn read_committed(&self, from: Offset, max_bytes: usize) -> Result<Vec<Committed>, Error> {
        read_committed(&*self.log, self.commit_offset(), from, max_bytes)
            .map(|(records, _)| records)
    }

    /// A tailing subscription to committed records from `from` (0 replays everything the
    /// log retains).
    pub fn subscribe(&self, from: Offset) -> Subscription<S> {
        Subscription {
            log: Arc::clone(&self.log),
            published: Arc::clone(&self.published),
            next: from,
        }
    }

    /// Stops the node's thread (also on drop).
    pub fn stop(&mut self) {
        let _ = self.control.send(Control::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl<S: LogStorage + 'static> Drop for Node<S> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Committed records as they commit, from an offset on: an event consumer's view.
#[derive(Debug)]
pub struct Subscription<S> {
    log: Arc<S>,
    published: Arc<Published>,
    next: Offset,
}

impl<S: LogStorage> Subscription<S> {
    /// The next offset this subscription will deliver from.
    pub fn position(&self) -> Offset {
        self.next
    }

    /// The next committed records, waiting up to `timeout` for some; empty on timeout.
    /// Offsets only move forward (epoch markers are skipped).
    ///
    /// # Errors
    ///
    /// As [`Replica::read_committed`] (for example when compaction dropped the position).
    pub fn next_batch(&mut self, timeout: Duration) -> Result<Vec<Committed>, Error> {
        let commit = self.published.wait_beyond(self.next.get(), timeout);
        if commit <= self.next.get() {
            return Ok(Vec::new());
        }
        let (records, next) = read_committed(&*self.log, Offset::new(commit), self.next, 1 << 20)?;
        self.next = next;
        Ok(records)
    }
}

struct Driver<S: LogStorage, T> {
    replica: Replica<Arc<S>>,
    transport: T,
    started: Instant,
    waiters: Waiters,
    batches: Batches,
    published: Arc<Published>,
}

impl<S: LogStorage, T: Transport> Driver<S, T> {
    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    fn run(&mut self, commands: &Receiver<Command>, control: &Receiver<Control>) {
        let mut next_tick = Instant::now();
        loop {
            let mut writes: Vec<(Write, Waiter)> = Vec::new();
            let wait = next_tick.saturating_duration_since(Instant::now());
            select! {
                recv(self.transport.inbox()) -> m => if let Ok(m) = m { self.inbound(m, &mut writes) },
                recv(commands) -> c => if let Ok(c) = c { self.command(c, &mut writes) },
                recv(control) -> c => match c {
                    Ok(c) => if !self.control(c) { break },
                    Err(_) => break,
                },
                default(wait) => {}
            }
            // Gather whatever else is waiting: one append and one sync for all of it.
            while writes.len() < MAX_BATCH {
                if let Ok(m) = self.transport.inbox().try_recv() {
                    self.inbound(m, &mut writes);
                } else if let Ok(c) = commands.try_recv() {
                    self.command(c, &mut writes);
                } else {
                    break;
                }
            }
            if self.step(writes, &mut next_tick).is_err() {
                break;
            }
        }
    }

    fn control(&mut self, c: Control) -> bool {
        let now = self.now();
        match c {
            Control::Promote(epoch, tx) => {
                let _ = tx.send(self.replica.promote(now, epoch));
            }
            Control::Follow(epoch, leader, tx) => {
                let _ = tx.send(self.replica.follow(now, epoch, Some(leader)));
            }
            Control::Stop => return false,
        }
        true
    }

    fn inbound(&mut self, m: Inbound, writes: &mut Vec<(Write, Waiter)>) {
        let now = self.now();
        match m.packet {
            Packet::Protocol { from, message } => {
                // A storage error here fails the message; the replica stays up and the
                // protocol retries (a poisoned log keeps failing and the node stays behind).
                let _ = self.replica.handle(now, from, message);
            }
            Packet::Write { request, write } => {
                writes.push((write, Waiter::Remote(m.reply, request)))
            }
            Packet::StatusRequest { request } => m.reply.send(Packet::Status {
                request,
                status: self.replica.status(now),
            }),
            _ => {}
        }
    }

    fn command(&mut self, c: Command, writes: &mut Vec<(Write, Waiter)>) {
        match c {
            Command::Write(w, tx) => writes.push((w, Waiter::Local(tx))),
            Command::WriteBatch(batch, tx) => {
                let waiters = self.batches.open(batch.len(), tx);
                writes.extend(batch.into_iter().zip(waiters));
            }
            Command::Status(tx) => {
                let _ = tx.send(self.replica.status(self.now()));
            }
            Command::Compact(tx) => {
                let _ = tx.send(self.replica.compact());
            }
        }
    }

    fn send_outbox(&mut self) {
        let from = self.replica.id();
        let packets: Vec<(NodeId, Packet)> = self
            .replica
            .take_outbox()
            .into_iter()
            .map(|(to, message)| (to, Packet::Protocol { from, message }))
            .collect();
        if !packets.is_empty() {
            self.transport.send_batch(packets);
        }
    }

    fn step(&mut self, writes: Vec<(Write, Waiter)>, next_tick: &mut Instant) -> Result<(), Error> {
        let now = self.now();
        if !writes.is_empty() {
            let (batch, waiters): (Vec<Write>, Vec<Waiter>) = writes.into_iter().unzip();
            let results = self.replica.write_batch(now, batch);
            for (result, waiter) in results.into_iter().zip(waiters) {
                match result {
                    Ok(id) => {
                        self.waiters.insert(id, waiter);
                    }
                    Err(e) => waiter.finish(Err(e), &mut self.batches),
                }
            }
        }
        if Instant::now() >= *next_tick {
            self.replica.tick(now)?;
            *next_tick = Instant::now() + TICK;
        }
        // The leader's records leave before its own sync, so copies are made in parallel.
        self.send_outbox();
        let flushed = self.replica.flush(now);
        self.send_outbox();
        // Published before writers hear back, so a writer can read its write at once.
        let commit = self.replica.commit_offset().get();
        if self.published.end() != commit {
            self.published.publish(commit);
        }
        for c in self.replica.take_completions() {
            if let Some(w) = self.waiters.remove(&c.id) {
                w.finish(c.result, &mut self.batches);
            }
        }
        flushed
    }
}

/// A [`Coordinator`] on its own thread, over a [`Transport`] (use an id no replica has).
pub struct CoordinatorNode {
    stop: Sender<()>,
    thread: Option<JoinHandle<()>>,
    leader: Arc<Mutex<Option<(NodeId, crate::record::Epoch)>>>,
}

impl std::fmt::Debug for CoordinatorNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordinatorNode")
            .field("leader", &*self.leader.lock())
            .finish_non_exhaustive()
    }
}

impl CoordinatorNode {
    /// Starts `coordinator` as node `id` on `transport`.
    pub fn start(
        id: NodeId,
        mut coordinator: impl Coordinator + Send + 'static,
        transport: impl Transport + 'static,
    ) -> Self {
        let (stop, stop_rx) = bounded::<()>(1);
        let leader = Arc::new(Mutex::new(None));
        let shared = Arc::clone(&leader);
        let thread = std::thread::Builder::new()
            .name("shardkit-coordinator".into())
            .spawn(move || {
                let started = Instant::now();
                loop {
                    select! {
                        recv(transport.inbox()) -> m => {
                            if let Ok(Inbound { packet: Packet::Protocol { from, message }, .. }) = m {
                                coordinator.handle(started.elapsed(), from, message);
                            }
                        }
                        recv(stop_rx) -> _ => return,
                        default(Duration::from_millis(5)) => {}
                    }
                    coordinator.tick(started.elapsed());
                    let packets: Vec<(NodeId, Packet)> = coordinator
                        .take_outbox()
                        .into_iter()
                        .map(|(to, message)| (to, Packet::Protocol { from: id, message }))
                        .collect();
                    transport.send_batch(packets);
                    *shared.lock() = coordinator.leader();
                }
            })
            .expect("spawning the coordinator's thread");
        Self {
            stop,
            thread: Some(thread),
            leader,
        }
    }

    /// The leader the coordinator chose last, and its epoch.
    pub fn leader(&self) -> Option<(NodeId, crate::record::Epoch)> {
        *self.leader.lock()
    }
}

impl Drop for CoordinatorNode {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
