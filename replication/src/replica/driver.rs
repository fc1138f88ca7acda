//! The engine under a [`Node`](super::Node): the sans-IO replica behind a lock, run by
//! whichever thread brings it work ([`Pump`]).
//!
//! A socket reader that receives a follower's acknowledgement handles it on the spot (the
//! leader's commit advances and the writer is answered from that thread); a caller of a
//! blocking write appends and sends its records itself. The node's own thread only keeps time,
//! takes asynchronous submissions, runs the syncs callers hand it, and serves transports that
//! cannot call back. Syncs run outside the lock ([`Replica::sync_ticket`]), so the replica
//! keeps taking acknowledgements while its disk works: a caller's sync starts on the node's
//! thread before its records are sent, and a follower acking on flush syncs on the reader
//! that received the records (its acknowledgement waits for that sync), once per delivery.
//!
//! A panic in a round or a sync stops the node, as a failed sync does: waiting writers get
//! `LeadershipLost`, later calls an error saying the node stopped.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use super::core::{Replica, SyncTicket};
use super::error::WriteError;
use super::status::ReplicaStatus;
use super::transport::{Inbound, ReplyTo, Transport};
use super::types::{FollowerAck, NodeId, Role};
use super::wire::{Packet, RemoteWriteError};
use super::write::{Write, WriteId, Written};
use crate::error::Error;
use crate::log::storage::LogStorage;
use crate::pump::{Pump, Ran};
use crate::record::{Epoch, Offset};

/// How often the node's thread advances the state machine's clock.
pub(crate) const TICK: Duration = Duration::from_millis(1);
/// The most writes gathered into one append.
const MAX_BATCH: usize = 4096;
/// The most rounds a thread runs for others before it hands the rest to the node's thread.
const MAX_ROUNDS: usize = 64;

/// Each write's outcome, in the order submitted.
pub type BatchOutcome = Vec<Result<Written, WriteError>>;

pub(crate) enum Command {
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

/// Who waits for each accepted write, by id. Ids count up from 0 and writes mostly finish
/// in the order they were accepted, so the waiters sit in a queue indexed from the oldest
/// unfinished id: adding and finishing cost O(1), with no hashing. A write that waits long
/// (a timeout of seconds) would hold the queue open behind it for every id issued meanwhile:
/// once the queue spans more than twice the waiters and [`SLACK`](Self::SLACK), its oldest
/// waiters move to a map.
#[derive(Default)]
struct Waiters {
    /// The id of `slots[0]`.
    base: u64,
    /// `None` for a write already finished (or an id this node never waited for).
    slots: VecDeque<Option<Waiter>>,
    /// Waiters in `slots`.
    queued: usize,
    /// Waiters older than `base`.
    stragglers: std::collections::HashMap<WriteId, Waiter>,
}

impl Waiters {
    /// Empty slots the queue may span beyond twice its waiters.
    const SLACK: usize = 1 << 16;

    fn insert(&mut self, id: WriteId, waiter: Waiter) {
        if self.slots.is_empty() {
            self.base = id.get();
        }
        let Some(at) = id.get().checked_sub(self.base) else {
            self.stragglers.insert(id, waiter);
            return;
        };
        let at = at as usize;
        if self.slots.len() <= at {
            self.slots.resize_with(at + 1, || None);
        }
        if self.slots[at].replace(waiter).is_none() {
            self.queued += 1;
        }
        while self.slots.len() > 2 * self.queued + Self::SLACK {
            if let Some(w) = self.slots.pop_front().flatten() {
                self.queued -= 1;
                self.stragglers.insert(WriteId(self.base), w);
            }
            self.base += 1;
        }
    }

    fn remove(&mut self, id: WriteId) -> Option<Waiter> {
        let Some(at) = id.get().checked_sub(self.base) else {
            return self.stragglers.remove(&id);
        };
        let waiter = self.slots.get_mut(usize::try_from(at).ok()?)?.take();
        if waiter.is_some() {
            self.queued -= 1;
        }
        while self.slots.front().is_some_and(Option::is_none) {
            self.slots.pop_front();
            self.base += 1;
        }
        waiter
    }
}

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

/// Role changes, handled before anything else in a round.
pub(crate) enum Control {
    Promote(Epoch, Sender<Result<(), Error>>),
    Follow(Epoch, NodeId, Sender<Result<(), Error>>),
}

/// A sync that ran outside the lock, and how it ended.
type SyncDone = (SyncTicket, Result<(), Error>);

/// A sync to run outside the lock: what it covers, and the log (taken from the replica when
/// the sync is handed out, so a stopped engine holds no log).
pub(crate) struct SyncJob<S> {
    ticket: SyncTicket,
    log: Arc<S>,
}

/// The commit offset, published for readers on other threads (the log's own tail signal,
/// whose wake-ups are model-checked with loom).
pub(crate) type Published = crate::notify::Tail;

/// The replica and everything only a runner touches.
struct Driver<S: LogStorage, T> {
    replica: Replica<Arc<S>>,
    transport: T,
    started: Instant,
    next_tick: Instant,
    waiters: Waiters,
    batches: Batches,
    published: Arc<Published>,
    /// A sync was handed out and has not come back.
    syncing: bool,
}

impl<S: LogStorage, T: Transport> Driver<S, T> {
    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Drains every input, then steps the replica. Returns a sync for the caller to run
    /// outside the lock, and whether inputs were left for another round.
    fn round(
        &mut self,
        inputs: &Inputs,
        sync: SyncTo<'_, S>,
    ) -> Result<(Option<SyncJob<S>>, bool), Error> {
        while let Ok(c) = inputs.control.try_recv() {
            self.control(c);
        }
        while let Ok((ticket, result)) = inputs.synced.try_recv() {
            self.syncing = false;
            // A failed sync poisons the log: the node stops (its writers hear
            // `LeadershipLost`) and must be reopened.
            result?;
            self.replica.synced(self.now(), ticket);
        }
        // Gather whatever is waiting: one append, and one sync, for all of it.
        let mut writes: Vec<(Write, Waiter)> = Vec::new();
        let more = loop {
            if writes.len() >= MAX_BATCH {
                break true;
            }
            if let Ok(m) = self.transport.inbox().try_recv() {
                self.inbound(m, &mut writes);
            } else if let Ok(c) = inputs.commands.try_recv() {
                self.command(c, &mut writes);
            } else {
                break false;
            }
        };
        let sync = self.step(writes, sync)?;
        Ok((sync, more))
    }

    fn control(&mut self, c: Control) {
        let now = self.now();
        match c {
            Control::Promote(epoch, tx) => {
                let _ = tx.send(self.replica.promote(now, epoch));
            }
            Control::Follow(epoch, leader, tx) => {
                let _ = tx.send(self.replica.follow(now, epoch, Some(leader)));
            }
        }
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

    /// Appends `writes`, advances the clock, starts the sync the new records need (before
    /// they are sent, so the disk works while they travel), answers the writers that are
    /// done, and sends the outbox. Returns the sync to run on this thread, if any.
    fn step(
        &mut self,
        writes: Vec<(Write, Waiter)>,
        sync: SyncTo<'_, S>,
    ) -> Result<Option<SyncJob<S>>, Error> {
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
        if Instant::now() >= self.next_tick {
            self.replica.tick(now)?;
            self.next_tick = Instant::now() + TICK;
        }
        let mut here = None;
        if !self.syncing && self.replica.needs_sync() {
            self.syncing = true;
            let job = SyncJob {
                ticket: self.replica.sync_ticket(),
                log: Arc::clone(self.replica.log()),
            };
            here = match sync {
                SyncTo::Here => Some(job),
                // The node's thread is gone only if it panicked: sync here rather than never.
                SyncTo::NodeThread(requests) => requests.send(job).err().map(|e| e.into_inner()),
            };
        }
        // Published before writers hear back, so a writer can read its write at once; and
        // writers hear back before the sends, which can take a while.
        let commit = self.replica.commit_offset().get();
        if self.published.end() != commit {
            self.published.publish(commit);
        }
        for c in self.replica.take_completions() {
            if let Some(w) = self.waiters.remove(c.id) {
                w.finish(c.result, &mut self.batches);
            }
        }
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
        Ok(here)
    }
}

/// Where a thread that runs the engine syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Syncs {
    /// On this thread (the node's own).
    Here,
    /// On this thread if an acknowledgement waits for the sync (a transport's reader).
    HereIfAckWaits,
    /// On the node's thread (a caller, who must not wait for others' syncs).
    OnNodeThread,
}

/// Where a sync the runner finds needed runs.
enum SyncTo<'a, S> {
    /// On the runner's thread, after its rounds (a thread that may block).
    Here,
    /// On the node's own thread, started at once (a caller that must not wait for it).
    NodeThread(&'a Sender<SyncJob<S>>),
}

/// The queues every thread may add to, drained by the runner.
struct Inputs {
    commands: Receiver<Command>,
    control: Receiver<Control>,
    synced: Receiver<SyncDone>,
}

/// A node's replica, runnable from any thread; see the module docs.
pub(crate) struct Engine<S: LogStorage, T> {
    pump: Pump,
    /// `None` once the node stopped (or its log failed).
    driver: Mutex<Option<Driver<S, T>>>,
    inputs: Inputs,
    commands: Sender<Command>,
    control: Sender<Control>,
    synced: Sender<SyncDone>,
    /// Wakes the node's own thread.
    wake: Sender<()>,
    /// Syncs for the node's own thread to run (found by callers that must not wait for one).
    sync_requests: Sender<SyncJob<S>>,
    /// Set when the node stops: read without the lock.
    stopped: AtomicBool,
    /// Threads inside [`run`](Self::run) or a sync: `stop` returns only once there are none,
    /// so nothing uses the log after it.
    busy: AtomicUsize,
    /// The transport of a node whose log failed, dropped by the node's own thread as it ends
    /// (or by `stop`) rather than on the thread that found the failure (which can be one of
    /// the transport's own).
    retired: Mutex<Option<T>>,
}

/// What the node's own thread waits on.
pub(crate) struct Waker<S> {
    woken: Receiver<()>,
    sync_requests: Receiver<SyncJob<S>>,
    /// The transport's inbox, when the transport cannot call back.
    inbox: Option<Receiver<Inbound>>,
}

/// Counts a thread in [`Engine::busy`] while it lives.
struct Busy<'a>(&'a AtomicUsize);

impl<'a> Busy<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<S: LogStorage + 'static, T: Transport + 'static> Engine<S, T> {
    /// The engine, and what the node's thread waits on.
    pub(crate) fn new(
        replica: Replica<Arc<S>>,
        transport: T,
        published: Arc<Published>,
    ) -> (Arc<Self>, Waker<S>) {
        let (commands, command_rx) = crossbeam_channel::unbounded();
        let (control, control_rx) = crossbeam_channel::unbounded();
        let (synced, synced_rx) = crossbeam_channel::unbounded();
        let (wake, woken) = crossbeam_channel::bounded(1);
        let (sync_requests, sync_requests_rx) = crossbeam_channel::unbounded();
        let mut inbox = None;
        let engine = Arc::new_cyclic(|weak: &std::sync::Weak<Self>| {
            // Installed before the transport is behind the lock: a transport may call the
            // hook at once (the engine, not built yet, then does nothing; the node's thread
            // finds the packets within a tick).
            let weak = weak.clone();
            let hook: super::transport::DeliveryHook = Arc::new(move || {
                if let Some(engine) = weak.upgrade() {
                    engine.run(Syncs::HereIfAckWaits);
                }
            });
            if !transport.set_on_delivery(hook) {
                inbox = Some(transport.inbox().clone());
            }
            let now = Instant::now();
            let driver = Driver {
                replica,
                transport,
                started: now,
                next_tick: now,
                waiters: Waiters::default(),
                batches: Batches::default(),
                published,
                syncing: false,
            };
            Self {
                pump: Pump::new(),
                driver: Mutex::new(Some(driver)),
                inputs: Inputs {
                    commands: command_rx,
                    control: control_rx,
                    synced: synced_rx,
                },
                commands,
                control,
                synced,
                wake,
                sync_requests,
                stopped: AtomicBool::new(false),
                busy: AtomicUsize::new(0),
                retired: Mutex::new(None),
            }
        });
        let waker = Waker {
            woken,
            sync_requests: sync_requests_rx,
            inbox,
        };
        (engine, waker)
    }

    /// Runs everything queued, unless another thread is running it; then runs the sync
    /// that turned out to be needed (where `syncs` says), and applies it. A thread syncs here
    /// at most once per call: later syncs go to the node's thread, so a transport's reader
    /// goes back to reading.
    pub(crate) fn run(&self, mut syncs: Syncs) -> Ran {
        let _busy = Busy::enter(&self.busy);
        loop {
            let mut job = None;
            let ran = self.pump.run(MAX_ROUNDS, || {
                let round = catch_unwind(AssertUnwindSafe(|| self.round(syncs, &mut job)));
                if round.is_err() {
                    // A bug in the replica (or in the user's state machine, store or log): stop
                    // the node, as a failed log does, rather than go on from a half-done round.
                    let driver = self.driver.lock().take();
                    self.retire(driver);
                }
            });
            if ran == Ran::Yielded {
                let _ = self.wake.try_send(());
            }
            let Some(job) = job else { return ran };
            self.sync(job);
            syncs = Syncs::OnNodeThread;
        }
    }

    /// One round under the lock; a sync it hands out lands in `job`.
    fn round(&self, syncs: Syncs, job: &mut Option<SyncJob<S>>) {
        let mut guard = self.driver.lock();
        let Some(driver) = guard.as_mut() else {
            self.inputs.drop_all();
            return;
        };
        let here = match syncs {
            Syncs::Here => true,
            Syncs::OnNodeThread => false,
            // Only a follower's acknowledgement waits for its sync: a leader's reader goes on
            // reading acknowledgements (its writes commit on a majority, its own copy or not),
            // and a follower acking on receipt has already answered.
            Syncs::HereIfAckWaits => {
                driver.replica.role() == Role::Follower
                    && driver.replica.config.follower_ack == FollowerAck::Flushed
            }
        };
        let to = if here {
            SyncTo::Here
        } else {
            SyncTo::NodeThread(&self.sync_requests)
        };
        match driver.round(&self.inputs, to) {
            Ok((found, more)) => {
                if found.is_some() {
                    *job = found;
                }
                if more {
                    self.pump.again();
                }
            }
            // The log failed: stop.
            Err(_) => {
                let driver = guard.take();
                drop(guard);
                self.retire(driver);
            }
        }
    }

    /// Stops the node after a failure: the replica and its waiters go now (their callers
    /// hear the node stopped); the transport waits for the node's thread (see `retired`).
    fn retire(&self, driver: Option<Driver<S, T>>) {
        // The transport is in place before the flag: the node's thread, seeing the flag, finds
        // it to drop.
        if let Some(driver) = driver {
            let Driver { transport, .. } = driver;
            *self.retired.lock() = Some(transport);
        }
        self.stopped.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        self.inputs.drop_all();
        let _ = self.wake.try_send(());
    }

    fn sync(&self, job: SyncJob<S>) {
        let _busy = Busy::enter(&self.busy);
        // A panicking log counts as a failed sync: the node stops instead of waiting for ever
        // for a sync that never reports.
        let result = catch_unwind(AssertUnwindSafe(|| job.log.sync())).unwrap_or_else(|_| {
            Err(Error::Poisoned {
                reason: "the log panicked in a sync".into(),
            })
        });
        let _ = self.synced.send((job.ticket, result));
    }

    /// The node's own thread: keeps time, runs asynchronous submissions and the syncs
    /// callers handed over, and serves a transport that cannot call back.
    pub(crate) fn serve(&self, waker: &Waker<S>) {
        while !self.stopped.load(Ordering::SeqCst) {
            if self.run(Syncs::Here) == Ran::Elsewhere {
                // Another thread is running (and will drain the inbox this thread may be
                // woken by): let it.
                std::thread::yield_now();
            }
            let mut select = crossbeam_channel::Select::new();
            let woken = select.recv(&waker.woken);
            let sync = select.recv(&waker.sync_requests);
            if let Some(inbox) = &waker.inbox {
                select.recv(inbox);
            }
            match select.ready_timeout(TICK) {
                Ok(i) if i == woken => {
                    let _ = waker.woken.try_recv();
                }
                Ok(i) if i == sync => {
                    if let Ok(job) = waker.sync_requests.try_recv() {
                        self.sync(job);
                    }
                }
                _ => {}
            }
        }
        fence(Ordering::SeqCst);
        self.inputs.drop_all();
        // A node whose log failed lets go of its transport now, not at `stop`: it hears
        // nothing more (its inbox would fill until then), and its peers see it gone. This
        // thread is none of the transport's, so the transport's `Drop` may wait for those.
        let retired = self.retired.lock().take();
        drop(retired);
    }
}

impl Inputs {
    /// Drops everything queued for a stopped node: its callers hear that it stopped.
    fn drop_all(&self) {
        while self.commands.try_recv().is_ok() {}
        while self.control.try_recv().is_ok() {}
        while self.synced.try_recv().is_ok() {}
    }
}

/// A running node's engine, whatever its transport.
pub(crate) trait Runner: Send + Sync {
    /// Queues a command; `run_here` runs it on this thread (for callers that wait anyway),
    /// otherwise the node's thread does. Gives the command back if the node has stopped.
    fn submit(&self, command: Command, run_here: bool) -> Result<(), Command>;

    /// Queues a role change and runs it on this thread.
    fn control(&self, control: Control);

    /// Stops the node: drops the replica and its transport, and with them every waiter;
    /// returns once no thread is using the log.
    fn stop(&self);
}

impl<S: LogStorage + 'static, T: Transport + 'static> Runner for Engine<S, T> {
    fn submit(&self, command: Command, run_here: bool) -> Result<(), Command> {
        if self.stopped.load(Ordering::SeqCst) {
            return Err(command);
        }
        let _ = self.commands.send(command);
        if run_here {
            self.run(Syncs::OnNodeThread);
        } else {
            let _ = self.wake.try_send(());
        }
        self.drop_if_stopped();
        Ok(())
    }

    fn control(&self, control: Control) {
        let _ = self.control.send(control);
        self.run(Syncs::OnNodeThread);
        self.drop_if_stopped();
    }

    fn stop(&self) {
        let driver = self.driver.lock().take();
        self.stopped.store(true, Ordering::SeqCst);
        // Dropped outside the lock: a transport's `Drop` may wait for its reader threads,
        // which may be waiting for the lock.
        drop(driver);
        fence(Ordering::SeqCst);
        self.inputs.drop_all();
        let _ = self.wake.try_send(());
        // A reader thread may still be in a round or a sync: the log is the caller's again
        // only once none is.
        while self.busy.load(Ordering::SeqCst) > 0 {
            std::thread::sleep(Duration::from_micros(50));
        }
        // After the wait: a round that failed meanwhile retired its transport.
        let retired = self.retired.lock().take();
        drop(retired);
    }
}

impl<S: LogStorage, T> Engine<S, T> {
    /// After queueing: if the node stopped meanwhile, drops what is queued, so no caller
    /// waits for an answer that never comes. (With the fence here and the one in `stop`,
    /// either this sees the flag or `stop`'s drain sees what was queued.)
    fn drop_if_stopped(&self) {
        fence(Ordering::SeqCst);
        if self.stopped.load(Ordering::SeqCst) {
            self.inputs.drop_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(w: Option<Waiter>) -> Option<usize> {
        match w? {
            Waiter::Batch { index, .. } => Some(index),
            _ => None,
        }
    }

    fn waiter(index: u64) -> Waiter {
        Waiter::Batch {
            batch: 0,
            index: index as usize,
        }
    }

    #[test]
    fn waiters_are_found_by_id_in_any_order_and_the_queue_shrinks_behind_them() {
        let mut w = Waiters::default();
        for id in 5..10 {
            w.insert(WriteId(id), waiter(id));
        }
        assert_eq!(index(w.remove(WriteId(7))), Some(7));
        assert_eq!(index(w.remove(WriteId(7))), None);
        assert_eq!(index(w.remove(WriteId(5))), Some(5));
        assert_eq!((w.base, w.slots.len()), (6, 4));
        assert_eq!(index(w.remove(WriteId(6))), Some(6));
        assert_eq!((w.base, w.slots.len()), (8, 2));
        assert_eq!(index(w.remove(WriteId(4))), None);
        assert_eq!(index(w.remove(WriteId(99))), None);
        for id in [9, 8] {
            assert_eq!(index(w.remove(WriteId(id))), Some(id as usize));
        }
        assert!(w.slots.is_empty());
    }

    /// A write that waits while many others come and go does not hold the queue open.
    #[test]
    fn a_long_wait_moves_aside_instead_of_holding_the_queue_open() {
        let mut w = Waiters::default();
        w.insert(WriteId(0), waiter(0));
        let many = 10 * Waiters::SLACK as u64;
        for id in 1..many {
            w.insert(WriteId(id), waiter(id));
            // Bounded by the waiters there were before this one finished.
            assert!(w.slots.len() <= 2 * (w.queued + 1) + Waiters::SLACK);
            assert_eq!(index(w.remove(WriteId(id))), Some(id as usize));
        }
        assert_eq!(w.stragglers.len(), 1, "the long wait moved aside");
        assert_eq!(index(w.remove(WriteId(0))), Some(0));
        assert!(w.stragglers.is_empty() && w.slots.is_empty());
    }
}
