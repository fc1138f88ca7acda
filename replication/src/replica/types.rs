//! The protocol's identities, levels and configuration.

use std::fmt;
use std::time::Duration;

use crate::record::{Epoch, Offset};

/// A node of the replica set (or the coordinator), as the transport addresses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeId(u64);

impl NodeId {
    /// The node `id`.
    pub const fn new(id: u64) -> Self {
        Self(id)
    }

    /// The id as a number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// How many copies a write waits for before it is acknowledged. Chosen per write.
///
/// What each level guarantees when the leader fails (see the crate docs for the full model):
///
/// | level | acknowledged when | survives a failover? |
/// |---|---|---|
/// | `None` | appended to the leader's log (page cache) | no |
/// | `Leader` | synced on the leader | only if that leader comes back |
/// | `Quorum` | on a majority of the replica set | yes |
/// | `All` | on a majority and on every in-sync replica | yes, and readable on every in-sync follower |
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AckLevel {
    /// Acknowledged once appended to the leader's log, before any sync.
    None,
    /// Acknowledged once synced to the leader's disk.
    Leader,
    /// Acknowledged once a majority of the replica set holds it (each follower counting as its
    /// [`FollowerAck`] says). Refused when fewer than `min_in_sync_replicas` are in sync.
    Quorum,
    /// As `Quorum`, and every in-sync follower holds it too. Refused when fewer than
    /// `min_in_sync_replicas` are in sync.
    All,
}

/// When a follower counts a record as held, for the leader's quorum: PostgreSQL's
/// `synchronous_commit = remote_write` versus `on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FollowerAck {
    /// Once written to the follower's log (its page cache): survives the follower's process
    /// crashing, not its machine. Faster: no sync on the write path.
    Received,
    /// Once synced to the follower's disk: survives any crash of the follower.
    Flushed,
}

/// A producer's identity and the sequence number of one of its writes: retried writes with
/// the same pair are applied once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProducerSeq {
    /// The producer, chosen by the client (unique per producer instance).
    pub producer: u64,
    /// Increases by one for each new write of the producer (retries reuse it).
    pub seq: u64,
}

/// A replica's position: the epoch of its last record and its log's end. Positions compare
/// by epoch first (Raft's "at least as up to date").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    /// The epoch of the last record (`Epoch::new(0)` for an empty log).
    pub last_epoch: Epoch,
    /// One past the last record.
    pub end: Offset,
}

/// What a replica is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Accepts writes and serves fetches.
    Leader,
    /// Copies a leader's log (or waits to be told which node leads).
    Follower,
}

/// A replica's settings.
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    /// This replica's id.
    pub id: NodeId,
    /// Every replica of the set, this one included. Quorums are majorities of it.
    pub members: Vec<NodeId>,
    /// The coordinator that receives heartbeats and runs failovers, if any.
    pub coordinator: Option<NodeId>,
    /// When this replica, as a follower, counts records as held.
    pub follower_ack: FollowerAck,
    /// Quorum and all writes are refused while fewer replicas (the leader included) are in
    /// sync. A new leader counts each follower as in sync for its first `max_lag_time`, to
    /// give it time to fetch: a write in that window is not refused, but with too few
    /// followers left it times out instead (its fate reported unknown, never acknowledged at
    /// a lower level).
    pub min_in_sync_replicas: usize,
    /// A follower further behind than this many records leaves the in-sync set.
    pub max_lag_records: u64,
    /// A follower not caught up for this long leaves the in-sync set.
    pub max_lag_time: Duration,
    /// How long a leader holds a fetch that has nothing new (a long poll).
    pub fetch_wait: Duration,
    /// How long a follower waits for a fetch's answer before asking again.
    pub fetch_timeout: Duration,
    /// The most framed bytes one fetch answer carries (or one record, if larger), and the most
    /// bytes of a snapshot one of its parts carries. A [`Node`](super::Node) lowers it to fit
    /// its transport's largest packet ([`Replica::limit_packets`](super::Replica::limit_packets)).
    pub fetch_max_bytes: usize,
    /// How often the replica reports to the coordinator.
    pub heartbeat_interval: Duration,
    /// Whether this replica may vote in failovers from its first start with an empty disk:
    /// set it when creating a new replica set, never when a replica rejoins after losing its
    /// disk (it becomes eligible once it has copied what was committed).
    pub bootstrap: bool,
    /// Names this run of the replica. Its heartbeats carry it, and a replica that is not
    /// [eligible](super::DurableState::eligible) follows only a
    /// [`Message::Follow`](super::Message::Follow) that answers one of them: it has forgotten
    /// which epochs it promised, so a `Follow` sent to an earlier run of it (delayed in the
    /// network, or queued by a transport while it was down) could make it acknowledge the
    /// records of a leader whose epoch it had promised to ignore, and those acknowledgements
    /// could complete writes that a failover then loses.
    ///
    /// `None` (the default): [`Replica::open`](super::Replica::open) draws one at random, so
    /// every run differs, a reopening with the same configuration included. Set it only to make
    /// runs reproducible (tests, simulations), and never to a value an earlier run used.
    pub incarnation: Option<u64>,
}

impl ReplicaConfig {
    /// Defaults for replica `id` of `members`: followers ack on flush, `min_in_sync_replicas`
    /// is a majority, lag limits of 10 s and 100,000 records, 100 ms heartbeats.
    pub fn new(id: NodeId, members: impl IntoIterator<Item = NodeId>) -> Self {
        let mut members: Vec<NodeId> = members.into_iter().collect();
        members.sort_unstable();
        members.dedup();
        let majority = members.len() / 2 + 1;
        Self {
            id,
            members,
            coordinator: None,
            follower_ack: FollowerAck::Flushed,
            min_in_sync_replicas: majority,
            max_lag_records: 100_000,
            max_lag_time: Duration::from_secs(10),
            fetch_wait: Duration::from_millis(500),
            fetch_timeout: Duration::from_secs(2),
            fetch_max_bytes: 1 << 20,
            heartbeat_interval: Duration::from_millis(100),
            bootstrap: false,
            incarnation: None,
        }
    }

    /// How many replicas make a majority of the set.
    pub fn quorum(&self) -> usize {
        self.members.len() / 2 + 1
    }

    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        if !self.members.contains(&self.id) {
            return Err("members must include the replica's own id");
        }
        if self.min_in_sync_replicas == 0 || self.min_in_sync_replicas > self.members.len() {
            return Err("min_in_sync_replicas must be between 1 and the number of members");
        }
        if self.fetch_max_bytes == 0 {
            return Err("fetch_max_bytes must be positive");
        }
        if self.coordinator.is_some_and(|c| self.members.contains(&c)) {
            return Err("the coordinator's id must not be a member's");
        }
        Ok(())
    }
}
