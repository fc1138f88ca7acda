//! The replica state machine: what is common to both roles, and the role changes.

use std::time::Duration;

use super::envelope::{self, Envelope};
use super::follower::FollowerState;
use super::leader::LeaderState;
use super::message::Message;
use super::producers::ProducerTable;
use super::snapshot::StateMachine;
use super::status::ReplicaStatus;
use super::store::{DurableState, ReplicaStore, StoredProducers};
use super::types::{NodeId, Position, ProducerSeq, ReplicaConfig, Role};
use super::wire::MAX_HEAD;
use super::write::Completion;
use crate::error::Error;
use crate::log::storage::LogStorage;
use crate::record::{Epoch, Offset, Record};

/// A record as consumers of committed data see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Its offset. Offsets of committed records increase but may skip the leaders' epoch
    /// markers.
    pub offset: Offset,
    /// The epoch of the leader that wrote it.
    pub epoch: Epoch,
    /// Milliseconds since the Unix epoch, as the leader saw them.
    pub timestamp_ms: u64,
    /// The write's key.
    pub key: Option<Vec<u8>>,
    /// The write's payload.
    pub payload: Vec<u8>,
    /// The producer and sequence of an idempotent write.
    pub producer: Option<ProducerSeq>,
}

pub(crate) enum RoleState {
    Leader(LeaderState),
    Follower(FollowerState),
}

/// One replica of a leader-follower log: a sans-IO state machine. It takes messages
/// ([`handle`](Self::handle)), writes ([`write`](Self::write)) and the time
/// ([`tick`](Self::tick)), does its log I/O through the [`LogStorage`] it owns, and leaves
/// the messages to send in an outbox ([`take_outbox`](Self::take_outbox)) and finished writes
/// in [`take_completions`](Self::take_completions). The same code runs over TCP, in memory and
/// in the deterministic simulator.
///
/// Time is a [`Duration`] since any fixed origin, supplied by the caller, so a simulation can
/// run it on virtual time.
///
/// The driver's loop: deliver messages and writes, call [`tick`](Self::tick), send the
/// outbox, call [`flush`](Self::flush) (which syncs the log, so a leader's records travel to
/// the followers while it syncs its own copy), send the outbox again.
///
/// A driver may instead sync on another thread, so the replica takes messages while the
/// disk works: [`sync_ticket`](Self::sync_ticket), [`LogStorage::sync`], then
/// [`synced`](Self::synced).
///
/// The log should not sync on its own ([`Durability::Never`](crate::Durability::Never)): the
/// replica syncs when an ack level or a [`FollowerAck::Flushed`](super::FollowerAck) follower
/// needs it, once per batch.
pub struct Replica<S> {
    pub(crate) config: ReplicaConfig,
    pub(crate) log: S,
    pub(crate) store: Box<dyn ReplicaStore>,
    pub(crate) epoch: Epoch,
    /// May promise epochs (see [`DurableState::eligible`]).
    pub(crate) eligible: bool,
    /// The highest epoch this replica led (see [`DurableState::led`]).
    led: Epoch,
    /// The epoch this run promised, while no leader of it is known: the only epoch it may
    /// promise again (a coordinator retrying its `Prepare`) or be promoted in at its current
    /// epoch. A restarted replica has none, whatever epoch it stored: it cannot know whether
    /// its current epoch already had a leader, so it refuses to promise that epoch again and
    /// the coordinator goes above it. Otherwise a coordinator that restarted too (its count
    /// back at zero) could run a second election in an epoch that already had a leader, and
    /// two leaders of one epoch break log matching.
    open_promise: Option<Epoch>,
    /// This run's name (see [`ReplicaConfig::incarnation`]).
    incarnation: u64,
    pub(crate) role: RoleState,
    /// Everything before it is on a majority and can never be lost or changed.
    pub(crate) commit: Offset,
    /// Everything before it is synced to this replica's disk.
    pub(crate) flushed: Offset,
    /// How many times the log was cut below its end (a divergent suffix, a snapshot): a
    /// sync asked for before a cut cannot vouch for what was written after it.
    pub(crate) cuts: u64,
    pub(crate) producers: ProducerTable,
    pub(crate) outbox: Vec<(NodeId, Message)>,
    pub(crate) completions: Vec<Completion>,
    pub(crate) next_write_id: u64,
    /// The next id of this replica's fetches and served snapshots: never reused in a run
    /// (see `send_fetch`).
    pub(crate) next_id: u64,
    next_heartbeat: Duration,
    pub(crate) state_machine: Option<Box<dyn StateMachine>>,
    /// The most bytes of records, or of a snapshot's part, one message may carry
    /// ([`limit_packets`](Self::limit_packets)).
    max_carried: usize,
}

impl<S> std::fmt::Debug for Replica<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("id", &self.config.id)
            .field("epoch", &self.epoch)
            .field("leads", &matches!(self.role, RoleState::Leader(_)))
            .field("commit", &self.commit)
            .finish_non_exhaustive()
    }
}

/// A sync of a replica's log in progress ([`Replica::sync_ticket`]): the log's end when it
/// was asked for, and which cut of the log it saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncTicket {
    end: Offset,
    cuts: u64,
    /// The run that took it: another run's ticket (or another replica's) vouches for
    /// nothing.
    incarnation: u64,
}

impl SyncTicket {
    /// The end of the records the sync covers.
    pub fn end(&self) -> Offset {
        self.end
    }
}

/// The epoch of the record at `offset`, from a log's epoch history.
pub(crate) fn epoch_at(history: &[(Epoch, Offset)], offset: Offset) -> Option<Epoch> {
    history
        .iter()
        .rev()
        .find(|&&(_, first)| first <= offset)
        .map(|&(e, _)| e)
}

impl<S: LogStorage> Replica<S> {
    /// Opens replica `config.id` over `log`, as a follower that does not yet know its leader
    /// (the coordinator tells it, or [`follow`](Self::follow)/[`promote`](Self::promote)).
    /// Reads the whole log once to rebuild the idempotent producers' table.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for an inconsistent configuration, and the log's and the epoch
    /// store's errors.
    pub fn open(
        config: ReplicaConfig,
        log: S,
        mut store: Box<dyn ReplicaStore>,
    ) -> Result<Self, Error> {
        config
            .validate()
            .map_err(|reason| Error::InvalidConfig { reason })?;
        let log_epoch = log.epochs().last().map_or(Epoch::new(0), |e| e.0);
        let stored = match store.load()? {
            Some(state) => state,
            None => {
                // A new disk: trusted only as part of a new replica set.
                let state = DurableState {
                    epoch: log_epoch,
                    eligible: config.bootstrap,
                    led: Epoch::new(0),
                };
                store.store(state)?;
                state
            }
        };
        let producers = ProducerTable::replay(&log, &mut *store, log.end_offset())?;
        let end = log.end_offset();
        let start = log.start_offset();
        let incarnation = config.incarnation.unwrap_or_else(random_u64);
        Ok(Self {
            incarnation,
            // Ids start from the run's incarnation, so runs do not share them.
            next_id: incarnation,
            config,
            log,
            store,
            epoch: stored.epoch.max(log_epoch),
            eligible: stored.eligible,
            led: stored.led,
            open_promise: None,
            role: RoleState::Follower(FollowerState::new(None)),
            // Records are dropped only once committed (see `compact`).
            commit: start,
            // What survived a restart is on disk (a file log syncs what it recovers).
            flushed: end,
            cuts: 0,
            producers,
            outbox: Vec::new(),
            completions: Vec::new(),
            next_write_id: 0,
            next_heartbeat: Duration::ZERO,
            state_machine: None,
            max_carried: usize::MAX,
        })
    }

    /// Fits the messages this replica sends to packets of at most `max_body` bytes (a
    /// transport's largest, [`TcpConfig::max_packet`](super::TcpConfig::max_packet);
    /// [`Node::start`](super::Node::start) sets it from its transport, and a lower limit set
    /// before stays, for a set whose members take smaller packets): fetch answers and
    /// snapshot parts carry at most `max_body` less a packet's head (128 bytes), fewer than
    /// [`ReplicaConfig::fetch_max_bytes`] if need be, and a write whose record would be
    /// larger is refused ([`WriteError::TooLarge`](super::WriteError::TooLarge)): a packet
    /// too large for the transport is never delivered, so a follower would ask for it for
    /// ever. Every member should take packets at least as large. Records already in the log
    /// are not checked: lowering the limit below a stored record stalls followers at it. A
    /// limit no larger than a packet's head leaves nothing to carry (every write refused, no
    /// snapshot part sent): [`TcpConfig`](super::TcpConfig) takes no `max_packet` under
    /// 4 KiB.
    pub fn limit_packets(&mut self, max_body: usize) {
        self.max_carried = self.max_carried.min(max_body.saturating_sub(MAX_HEAD));
    }

    /// The most bytes of records, or of a snapshot's part, one message carries.
    pub(crate) fn carried_bytes(&self) -> usize {
        self.config.fetch_max_bytes.min(self.max_carried)
    }

    /// The most bytes one record may take.
    pub(crate) fn max_record(&self) -> usize {
        self.max_carried
    }

    /// Gives the replica the user's state machine, for full resyncs: as a leader it sends
    /// snapshots to followers behind its retained log, as a follower it installs them.
    /// Without one, a follower that fell behind the leader's log skips to the leader's first
    /// retained record (its log restarts there, empty).
    pub fn set_state_machine(&mut self, state_machine: Box<dyn StateMachine>) {
        self.state_machine = Some(state_machine);
    }

    /// Drops log records that are no longer needed: those before the state machine's
    /// snapshot offset (before the commit offset without a state machine), never a record
    /// that is not committed, nor one after the offset of a snapshot a leader is sending to
    /// followers. Returns the log's new start. A file log drops whole segments.
    ///
    /// # Errors
    ///
    /// The state machine's and the log's errors.
    pub fn compact(&mut self) -> Result<Offset, Error> {
        let upto = match &mut self.state_machine {
            Some(sm) => sm.snapshot()?.offset.min(self.commit),
            None => self.commit,
        };
        // A snapshot being sent to followers must stay one the log continues.
        let upto = self.served_snapshot_offset().map_or(upto, |o| upto.min(o));
        if upto > self.log.start_offset() {
            // The producers' writes must outlive their records, or a retry after a restart
            // would be applied again.
            let producers = self.producers_before(upto)?;
            self.store.store_producers(&producers)?;
            self.log.drop_before(upto)?;
        }
        Ok(self.log.start_offset())
    }

    /// Each idempotent producer's last write before `offset`: what compaction to `offset`
    /// stores and a snapshot at `offset` carries. From the producers' table when its history
    /// reaches back that far, else replayed from the stored producers and the log, which may
    /// count records past `offset` (see [`ProducerTable::replay_before`]).
    pub(crate) fn producers_before(&mut self, offset: Offset) -> Result<StoredProducers, Error> {
        if let Some(stored) = self.producers.before(offset) {
            return Ok(stored);
        }
        let stored = ProducerTable::replay_before(&self.log, &mut *self.store, offset)?;
        self.producers.remember(offset, stored.clone());
        Ok(stored)
    }

    /// This replica's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// The configuration.
    pub fn config(&self) -> &ReplicaConfig {
        &self.config
    }

    /// The log.
    pub fn log(&self) -> &S {
        &self.log
    }

    /// The current epoch: the highest this replica led, followed or promised.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// Leader or follower.
    pub fn role(&self) -> Role {
        match self.role {
            RoleState::Leader(_) => Role::Leader,
            RoleState::Follower(_) => Role::Follower,
        }
    }

    /// The leader this replica follows, itself if it leads.
    pub fn leader(&self) -> Option<NodeId> {
        match &self.role {
            RoleState::Leader(_) => Some(self.config.id),
            RoleState::Follower(f) => f.leader,
        }
    }

    /// The commit offset (high watermark) as this replica knows it: every record before it is
    /// on a majority of the replica set, and no failover can lose it.
    pub fn commit_offset(&self) -> Offset {
        self.commit
    }

    /// This replica's position: its last record's epoch and its log's end.
    pub fn position(&self) -> Position {
        let end = self.log.end_offset();
        let last_epoch = end
            .get()
            .checked_sub(1)
            .and_then(|last| epoch_at(&self.log.epochs(), Offset::new(last)))
            .unwrap_or_default();
        Position { last_epoch, end }
    }

    /// Committed records from `from` on (at least one if any is committed there), up to
    /// `max_bytes`, without the leaders' epoch markers.
    ///
    /// # Errors
    ///
    /// [`Error::OffsetOutOfRange`] if `from` is below the log's start or beyond the commit
    /// offset, and the log's read errors.
    pub fn read_committed(&self, from: Offset, max_bytes: usize) -> Result<Vec<Committed>, Error> {
        read_committed(&self.log, self.commit, from, max_bytes).map(|(records, _)| records)
    }

    /// Messages to send, as `(destination, message)`, in order.
    pub fn take_outbox(&mut self) -> Vec<(NodeId, Message)> {
        std::mem::take(&mut self.outbox)
    }

    /// Writes that finished (acknowledged or failed) since the last call.
    pub fn take_completions(&mut self) -> Vec<Completion> {
        std::mem::take(&mut self.completions)
    }

    /// A snapshot of the replica's state and, on a leader, each follower's lag.
    pub fn status(&self, now: Duration) -> ReplicaStatus {
        let followers = match &self.role {
            RoleState::Leader(l) => l.follower_status(&self.config, self.log.end_offset(), now),
            RoleState::Follower(_) => Vec::new(),
        };
        ReplicaStatus {
            id: self.config.id,
            role: self.role(),
            epoch: self.epoch,
            leader: self.leader(),
            start: self.log.start_offset(),
            end: self.log.end_offset(),
            flushed: self.flushed,
            commit: self.commit,
            followers,
        }
    }

    /// Handles one message from `from`.
    ///
    /// # Errors
    ///
    /// The log's and the epoch store's errors (the replica should then be stopped and
    /// reopened); a message that is stale, misdirected or from an unknown node is ignored.
    pub fn handle(&mut self, now: Duration, from: NodeId, message: Message) -> Result<(), Error> {
        let theirs = message.epoch();
        match message {
            Message::Prepare { epoch } => self.on_prepare(from, epoch),
            Message::Promote { epoch } => {
                let repeated = epoch == self.epoch && self.role() == Role::Leader;
                if Some(from) != self.config.coordinator || repeated {
                    Ok(())
                } else if epoch != self.epoch
                    || self.open_promise != Some(epoch)
                    || self.leader().is_some()
                    || !self.eligible
                    || epoch <= self.led
                {
                    // Only a replica that promised exactly this epoch in this run (and has
                    // followed no one in it since) may lead it: its log is the one the
                    // coordinator chose. A replica that restarted, or lost its disk, has
                    // forgotten its promise and refuses.
                    self.reply_not_leader(from);
                    Ok(())
                } else {
                    self.promote(now, epoch)
                }
            }
            Message::Follow {
                epoch,
                leader,
                incarnation,
            } => {
                let current = epoch == self.epoch && self.leader() == Some(leader);
                let coordinator = Some(from) == self.config.coordinator;
                // An epoch this replica led has no other leader: a Follow naming one is from
                // an election that should not have happened.
                let led_it = epoch <= self.led;
                if !coordinator
                    || epoch < self.epoch
                    || leader == self.config.id
                    || current
                    || led_it
                {
                    return Ok(());
                }
                // A replica that lost its disk forgot its promises: only an answer to this
                // run's own heartbeat is known not to predate them (see
                // `ReplicaConfig::incarnation`).
                if !self.eligible && incarnation != Some(self.incarnation) {
                    return Ok(());
                }
                self.follow(now, epoch, Some(leader))
            }
            Message::Fetch {
                epoch,
                id,
                from: at,
                last_epoch,
                acked,
            } => {
                if !self.config.members.contains(&from) || from == self.config.id {
                    return Ok(());
                }
                if epoch > self.epoch {
                    // A follower knows a newer epoch: this replica's leadership is over. (A
                    // replica that lost its disk takes epochs from the coordinator only.)
                    return match self.eligible {
                        true => self.follow(now, epoch, None),
                        false => Ok(()),
                    };
                }
                match &mut self.role {
                    RoleState::Leader(_) if epoch == self.epoch => {
                        self.on_fetch(now, from, id, at, last_epoch, acked)
                    }
                    RoleState::Leader(_) => {
                        self.reply_not_leader(from);
                        Ok(())
                    }
                    RoleState::Follower(_) => {
                        self.reply_not_leader(from);
                        Ok(())
                    }
                }
            }
            Message::FetchSnapshot { epoch, id, resume } => {
                let leads = self.role() == Role::Leader && epoch == self.epoch;
                if leads && self.config.members.contains(&from) {
                    self.on_fetch_snapshot(now, from, id, resume)?;
                } else if epoch < self.epoch {
                    self.reply_not_leader(from);
                }
                Ok(())
            }
            Message::NotLeader { epoch, leader } => {
                // A replica that lost its disk forgot which epochs it promised: only the
                // coordinator may tell it which leader is current (see `DurableState`).
                if epoch > self.epoch && self.eligible {
                    let leader = leader.filter(|&l| l != self.config.id);
                    self.follow(now, epoch, leader)
                } else {
                    Ok(())
                }
            }
            Message::Records { .. }
            | Message::Diverging { .. }
            | Message::OutOfRange { .. }
            | Message::InstallSnapshot { .. } => {
                if theirs < self.epoch || !self.config.members.contains(&from) {
                    return Ok(());
                }
                if theirs > self.epoch || self.leader() != Some(from) {
                    if !self.eligible {
                        return Ok(()); // see `NotLeader` above
                    }
                    // Only a leader answers fetches: the sender leads `theirs`.
                    if self.role() == Role::Leader && theirs == self.epoch {
                        return Ok(()); // two leaders in one epoch cannot happen; ignore
                    }
                    self.follow(now, theirs, Some(from))?;
                }
                self.on_fetch_answer(now, message)
            }
            // Heartbeats and Prepared go to the coordinator.
            Message::Heartbeat { .. } | Message::Prepared { .. } => Ok(()),
        }
    }

    /// Advances time: heartbeats, fetch retries, long-poll expiries, write timeouts and the
    /// in-sync set.
    ///
    /// # Errors
    ///
    /// The log's errors.
    pub fn tick(&mut self, now: Duration) -> Result<(), Error> {
        if now >= self.next_heartbeat {
            self.next_heartbeat = now.saturating_add(self.config.heartbeat_interval);
            if let Some(coordinator) = self.config.coordinator {
                self.outbox.push((
                    coordinator,
                    Message::Heartbeat {
                        epoch: self.epoch,
                        role: self.role(),
                        leader: self.leader(),
                        position: self.position(),
                        commit: self.commit,
                        incarnation: self.incarnation,
                    },
                ));
            }
        }
        match self.role {
            RoleState::Leader(_) => self.leader_tick(now),
            RoleState::Follower(_) => self.follower_tick(now),
        }
    }

    /// Syncs the log if it holds unsynced records, then acts on it: a leader counts its own
    /// copy and completes writes, a follower that acks on flush reports to its leader.
    /// ([`sync_ticket`](Self::sync_ticket) and [`synced`](Self::synced) split it, for a
    /// driver that syncs on another thread while the replica goes on.)
    ///
    /// # Errors
    ///
    /// The log's sync error; the log is poisoned then, and the replica must be reopened.
    pub fn flush(&mut self, now: Duration) -> Result<(), Error> {
        let ticket = self.sync_ticket();
        if ticket.end > self.flushed {
            self.log.sync()?;
        }
        self.synced(now, ticket);
        Ok(())
    }

    /// What a sync of the log started now would make durable. Sync the log
    /// ([`LogStorage::sync`]) after taking it, on any thread, then hand it to
    /// [`synced`](Self::synced).
    pub fn sync_ticket(&self) -> SyncTicket {
        SyncTicket {
            end: self.log.end_offset(),
            cuts: self.cuts,
            incarnation: self.incarnation,
        }
    }

    /// Whether the log holds records no sync has covered yet. It stays true while a sync is
    /// in flight, until [`synced`](Self::synced) takes it: a driver tracks its own syncs.
    pub fn needs_sync(&self) -> bool {
        self.flushed < self.log.end_offset()
    }

    /// Takes a sync that ended well: counts what it covered as durable (unless the log was
    /// cut since the ticket was taken, when the records past the cut may be new ones the
    /// sync missed, or the ticket is another run's), then acts on it as
    /// [`flush`](Self::flush) does.
    pub fn synced(&mut self, now: Duration, ticket: SyncTicket) {
        let ours = ticket.incarnation == self.incarnation && ticket.cuts == self.cuts;
        if ours && ticket.end > self.flushed {
            self.flushed = ticket.end.min(self.log.end_offset());
        }
        match self.role {
            RoleState::Leader(_) => self.advance_commit(now),
            RoleState::Follower(_) => self.follower_flushed(now),
        }
    }

    /// Makes this replica lead in `epoch` (an operator's or coordinator's decision: the
    /// caller must have chosen the most up-to-date replica of a majority that promised
    /// `epoch`, as [`LeaseCoordinator`](crate::replica::LeaseCoordinator) does). Appends the
    /// epoch's marker record.
    ///
    /// # Errors
    ///
    /// [`Error::StaleEpoch`] if `epoch` is not newer than the current one (or equal to it
    /// while following a leader), and the log's errors.
    pub fn promote(&mut self, now: Duration, epoch: Epoch) -> Result<(), Error> {
        let following = self.leader().is_some_and(|l| l != self.config.id);
        let stale = epoch < self.epoch
            || (epoch == self.epoch && (following || self.role() == Role::Leader))
            || epoch <= self.led;
        if stale {
            return Err(Error::StaleEpoch {
                current: self.epoch.max(self.led).get(),
                got: epoch.get(),
            });
        }
        // A leader promoted again (an operator's newer epoch) ends its own epoch's writes
        // first: replaced with the role, they would never be answered.
        self.step_down();
        // Recorded before the first record of the epoch is written: never lead it twice.
        self.persist(epoch, self.eligible, epoch)?;
        self.open_promise = None;
        let marker = envelope::marker();
        let appended = self.log.append(epoch, &[crate::Entry::new(&marker)])?;
        let mut leader = LeaderState::new(appended.first(), &self.config, now);
        leader.note_appended(self.log.end_offset(), marker.len() as u64 + 40);
        self.role = RoleState::Leader(leader);
        Ok(())
    }

    /// Makes this replica follow `leader` (or wait for one, with `None`) in `epoch`.
    ///
    /// On a replica that is not [eligible](Self::is_eligible) (it lost its disk, or is new),
    /// name the current epoch and leader only: it has forgotten which epochs it promised, so it
    /// cannot refuse an older one, and following a deposed leader would let that leader
    /// complete writes a failover loses (a coordinator's own `Follow` messages are checked; see
    /// [`ReplicaConfig::incarnation`]).
    ///
    /// # Errors
    ///
    /// [`Error::StaleEpoch`] if `epoch` is older than the current one, and the epoch store's
    /// errors.
    pub fn follow(
        &mut self,
        now: Duration,
        epoch: Epoch,
        leader: Option<NodeId>,
    ) -> Result<(), Error> {
        if epoch < self.epoch {
            return Err(Error::StaleEpoch {
                current: self.epoch.get(),
                got: epoch.get(),
            });
        }
        self.set_epoch(epoch)?;
        self.step_down();
        if leader.is_some() {
            self.open_promise = None;
        }
        self.role = RoleState::Follower(FollowerState::new(leader));
        self.follower_tick(now)
    }

    /// Stores the durable state, then adopts it.
    fn persist(&mut self, epoch: Epoch, eligible: bool, led: Epoch) -> Result<(), Error> {
        self.store.store(DurableState {
            epoch,
            eligible,
            led,
        })?;
        (self.epoch, self.eligible, self.led) = (epoch, eligible, led);
        Ok(())
    }

    fn set_epoch(&mut self, epoch: Epoch) -> Result<(), Error> {
        if epoch > self.epoch {
            self.persist(epoch, self.eligible, self.led)?;
        }
        Ok(())
    }

    /// A replica that started empty has copied everything committed: it may promise now.
    pub(crate) fn became_eligible(&mut self) -> Result<(), Error> {
        // What it copied must be on disk before it is trusted to hold it: stored eligible with
        // the copy still unsynced, a machine crash would restart it eligible and empty, and a
        // failover could count its empty log against a write a majority acknowledged.
        let end = self.log.end_offset();
        if self.flushed < end {
            self.log.sync()?;
            self.flushed = end;
        }
        self.persist(self.epoch, true, self.led)
    }

    /// Whether this replica may promise epochs in a failover (see [`DurableState::eligible`]).
    pub fn is_eligible(&self) -> bool {
        self.eligible
    }

    fn on_prepare(&mut self, from: NodeId, epoch: Epoch) -> Result<(), Error> {
        if Some(from) != self.config.coordinator || !self.eligible {
            return Ok(());
        }
        let fresh = epoch > self.epoch;
        // A coordinator asking again (its Prepare or the answer was lost); see `open_promise`.
        let repeat =
            epoch == self.epoch && self.leader().is_none() && self.open_promise == Some(epoch);
        if !fresh && !repeat {
            self.reply_not_leader(from);
            return Ok(());
        }
        self.set_epoch(epoch)?;
        self.open_promise = Some(epoch);
        self.step_down();
        self.role = RoleState::Follower(FollowerState::new(None));
        // The position reported must survive a crash: the coordinator may pick this replica
        // for holding records that only it has.
        self.log.sync()?;
        self.flushed = self.log.end_offset();
        self.outbox.push((
            from,
            Message::Prepared {
                epoch,
                position: self.position(),
            },
        ));
        Ok(())
    }

    pub(crate) fn reply_not_leader(&mut self, to: NodeId) {
        self.outbox.push((
            to,
            Message::NotLeader {
                epoch: self.epoch,
                leader: self.leader(),
            },
        ));
    }
}

/// A random number from the standard library's per-process hash keys, fresh on each call (no
/// dependency needed for a value that only has to differ between runs).
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// Committed records of `log` from `from` on, below `commit`, without epoch markers; and the
/// offset after the last record read (markers included), where the next read starts.
pub(crate) fn read_committed<S: LogStorage + ?Sized>(
    log: &S,
    commit: Offset,
    from: Offset,
    max_bytes: usize,
) -> Result<(Vec<Committed>, Offset), Error> {
    if from > commit {
        return Err(Error::OffsetOutOfRange {
            requested: from.get(),
            start: log.start_offset().get(),
            end: commit.get(),
        });
    }
    if from == commit {
        return Ok((Vec::new(), from));
    }
    let records: Vec<Record> = log
        .read(from, max_bytes)?
        .into_iter()
        .take_while(|r| r.offset < commit)
        .collect();
    let next = records
        .last()
        .map_or(from, |r| Offset::new(r.offset.get() + 1));
    Ok((records.into_iter().filter_map(to_committed).collect(), next))
}

fn to_committed(record: Record) -> Option<Committed> {
    let (producer, payload) = match envelope::decode(&record.payload) {
        Some(Envelope::Marker) => return None,
        Some(Envelope::Data { producer, payload }) => (producer, payload.to_vec()),
        None => (None, record.payload),
    };
    Some(Committed {
        offset: record.offset,
        epoch: record.epoch,
        timestamp_ms: record.timestamp_ms,
        key: record.key,
        payload,
        producer,
    })
}
