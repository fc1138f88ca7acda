//! A replica (or the coordinator) running as a service over a [`Transport`]: blocking
//! writes, committed reads, read-your-writes waits and tailing subscriptions. (How a node's
//! work is spread over threads is in `driver.rs`.)

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded, select};
use parking_lot::Mutex;

use super::coordinator::Coordinator;
use super::core::{Committed, Replica, read_committed};
use super::driver::{Command, Control, Engine, Published, Runner};
use super::error::WriteError;
use super::status::ReplicaStatus;
use super::transport::{Inbound, Transport};
use super::types::NodeId;
use super::wire::Packet;
use super::write::{Write, Written};
use crate::error::Error;
use crate::log::storage::LogStorage;
use crate::record::Offset;

pub use super::driver::BatchOutcome;

/// A [`Replica`] running over a [`Transport`]. Writes block until their ack level (or
/// fail); committed reads, read-your-writes waits and subscriptions run on the caller's
/// thread against the shared log. See [`start`](Self::start) for which threads do the work.
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
    engine: Arc<dyn Runner>,
    published: Arc<Published>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl<S: LogStorage + 'static> std::fmt::Debug for Node<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .field("commit", &self.commit_offset())
            .finish_non_exhaustive()
    }
}

fn stopped() -> Error {
    Error::InvalidConfig {
        reason: "the node has stopped",
    }
}

fn lost<T>() -> Result<T, WriteError> {
    Err(WriteError::LeadershipLost {
        offset: Offset::new(0),
    })
}

impl<S: LogStorage + 'static> Node<S> {
    /// Starts `replica`, talking over `transport`. The replica's log is shared (`Arc`) so
    /// that reads need not go through the node.
    ///
    /// Work runs on the thread that brings it: a transport's receiving thread handles what
    /// arrives (when the transport supports it, as [`TcpTransport`](super::TcpTransport)
    /// does), a blocking call's caller runs its own call. The node's own thread keeps time
    /// and takes asynchronous submissions. The replica's messages are fitted to the
    /// transport's largest packet ([`Replica::limit_packets`]).
    pub fn start(mut replica: Replica<Arc<S>>, transport: impl Transport + 'static) -> Self {
        replica.limit_packets(transport.max_packet());
        let id = replica.id();
        let log = Arc::clone(replica.log());
        let published = Arc::new(Published::new(replica.commit_offset().get()));
        let (engine, waker) = Engine::new(replica, transport, Arc::clone(&published));
        let runner = Arc::clone(&engine);
        let thread = std::thread::Builder::new()
            .name(format!("shardkit-replica-{id}"))
            .spawn(move || runner.serve(&waker))
            .expect("spawning the replica's thread");
        Self {
            id,
            log,
            engine,
            published,
            thread: Mutex::new(Some(thread)),
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

    /// Writes and waits until the write reaches its ack level, or fails. The write is
    /// appended and sent on the caller's thread (unless another thread is running the node,
    /// which then takes it).
    ///
    /// # Errors
    ///
    /// Every [`WriteError`]; [`WriteError::LeadershipLost`] also if the node stopped.
    pub fn write(&self, write: Write) -> Result<Written, WriteError> {
        self.submit_write(write, true)
            .recv()
            .unwrap_or_else(|_| lost())
    }

    /// Submits a write without waiting: the outcome arrives on the returned channel. Many
    /// writes in flight at once share appends and syncs.
    pub fn write_async(&self, write: Write) -> Receiver<Result<Written, WriteError>> {
        self.submit_write(write, false)
    }

    fn submit_write(&self, write: Write, run_here: bool) -> Receiver<Result<Written, WriteError>> {
        let (tx, rx) = bounded(1);
        if let Err(Command::Write(_, tx)) = self.engine.submit(Command::Write(write, tx), run_here)
        {
            let _ = tx.send(lost());
        }
        rx
    }

    /// Submits writes together (a producer's batch): one hand-off to the node for all of
    /// them, and one answer with each write's outcome in order once every one has reached
    /// its ack level or failed. The fastest way to write many records.
    pub fn write_batch_async(&self, writes: Vec<Write>) -> Receiver<BatchOutcome> {
        self.submit_batch(writes, false)
    }

    /// [`write_batch_async`](Self::write_batch_async), waiting for the outcomes (and, like
    /// [`write`](Self::write), appending on the caller's thread).
    pub fn write_batch(&self, writes: Vec<Write>) -> BatchOutcome {
        let n = writes.len();
        self.submit_batch(writes, true)
            .recv()
            .unwrap_or_else(|_| (0..n).map(|_| lost()).collect())
    }

    fn submit_batch(&self, writes: Vec<Write>, run_here: bool) -> Receiver<BatchOutcome> {
        let (tx, rx) = bounded(1);
        if let Err(Command::WriteBatch(writes, tx)) = self
            .engine
            .submit(Command::WriteBatch(writes, tx), run_here)
        {
            let _ = tx.send(writes.iter().map(|_| lost()).collect());
        }
        rx
    }

    /// The replica's status.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if the node has stopped.
    pub fn status(&self) -> Result<ReplicaStatus, Error> {
        let (tx, rx) = bounded(1);
        self.engine
            .submit(Command::Status(tx), true)
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
        self.engine
            .submit(Command::Compact(tx), true)
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
        self.engine.control(build(tx));
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

    /// Stops the node (also on drop): drops its replica and transport; waiting and later
    /// writes get [`WriteError::LeadershipLost`], other calls an error saying the node
    /// stopped. Any thread holding the node may stop it, and the call returns once no thread
    /// uses the log any more; so never call it (or drop the last handle) from code the node
    /// runs, such as a [`StateMachine`](super::StateMachine) or a [`LogStorage`].
    pub fn stop(&self) {
        self.engine.stop();
        // Held through the join: a second caller returns only once the thread has ended.
        let mut thread = self.thread.lock();
        if let Some(t) = thread.take() {
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
        let deadline = crate::sync::deadline_after(timeout);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let commit = self.published.wait_beyond(self.next.get(), left);
            if commit <= self.next.get() {
                return Ok(Vec::new());
            }
            let (records, next) =
                read_committed(&*self.log, Offset::new(commit), self.next, 1 << 20)?;
            let moved = next != self.next;
            self.next = next;
            // Only epoch markers committed: nothing to deliver yet, so keep waiting (unless
            // nothing was read at all, which waiting on the commit offset cannot change).
            if !records.is_empty() || !moved || left.is_zero() {
                return Ok(records);
            }
        }
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

    /// Whether the coordinator's thread still runs. A panic in the [`Coordinator`] ends it,
    /// and with it every failover of the replica set: watch this to raise an alarm or start
    /// another.
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
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
