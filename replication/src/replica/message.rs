//! The messages replicas and the coordinator exchange. The transport only moves them; the
//! state machines decide what they mean.

use super::types::{NodeId, Position, Role};
use crate::batch::RecordBatch;
use crate::record::{Epoch, Offset};

/// One protocol message. Every message carries the sender's epoch, so that a node that has
/// moved on can fence off one that has not.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// Follower → leader: send records from `from`; everything before `from` is held, and
    /// everything before `acked` counts for the leader's quorum.
    Fetch {
        /// The follower's epoch.
        epoch: Epoch,
        /// Pairs the answer with this request.
        id: u64,
        /// The follower's log end.
        from: Offset,
        /// The epoch of the follower's record at `from - 1` (`0` if none).
        last_epoch: Epoch,
        /// Records before this offset are held as the follower's [`FollowerAck`](super::FollowerAck) says.
        acked: Offset,
    },
    /// Leader → follower: records that continue the follower's log (possibly none), and the
    /// leader's commit offset.
    Records {
        /// The leader's epoch.
        epoch: Epoch,
        /// The fetch this answers.
        id: u64,
        /// The records, from the fetch's `from` on, as the leader's log holds them.
        records: RecordBatch,
        /// The leader's commit offset (high watermark).
        commit: Offset,
    },
    /// Leader → follower: the follower's log diverged from the leader's. The follower cuts its
    /// log to where it agrees with `epoch_end` and fetches again (Kafka's KIP-101/KIP-320).
    Diverging {
        /// The leader's epoch.
        epoch: Epoch,
        /// The fetch this answers.
        id: u64,
        /// The leader's latest epoch no newer than the follower's `last_epoch`, and the offset
        /// where that epoch ends in the leader's log; `None` if the leader has no such epoch.
        epoch_end: Option<(Epoch, Offset)>,
    },
    /// Leader → follower: the records the follower asked for were dropped by retention; it
    /// must install a snapshot.
    OutOfRange {
        /// The leader's epoch.
        epoch: Epoch,
        /// The fetch this answers.
        id: u64,
        /// The leader's first retained offset.
        start: Offset,
    },
    /// Follower → leader: send a snapshot (after [`Message::OutOfRange`]), or the next part
    /// of the one being received.
    FetchSnapshot {
        /// The follower's epoch.
        epoch: Epoch,
        /// Pairs the answer with this request.
        id: u64,
        /// The snapshot being received and how much of it the follower holds; `None` for
        /// any snapshot, from its first byte.
        resume: Option<SnapshotResume>,
    },
    /// Leader → follower: part of a snapshot as of `offset`. A snapshot travels in parts of at
    /// most [`ReplicaConfig::fetch_max_bytes`](super::ReplicaConfig::fetch_max_bytes), fewer if
    /// the transport's packets are smaller ([`Replica::limit_packets`](super::Replica::limit_packets)),
    /// so that one of any size reaches the follower; the follower asks for each next part,
    /// installs the snapshot once it holds all of it, and continues from `offset`.
    ///
    /// What travels is the user's state, then the idempotent producers' latest writes before
    /// `offset` (24 bytes each: producer, sequence and offset, little-endian), then their count
    /// (8 bytes, little-endian).
    InstallSnapshot {
        /// The leader's epoch.
        epoch: Epoch,
        /// The request this answers.
        id: u64,
        /// Names the snapshot this part belongs to (unique in the leader's run).
        snapshot: u64,
        /// The snapshot's offset.
        offset: Offset,
        /// The epoch of the record before `offset`.
        last_epoch: Epoch,
        /// The length of the whole snapshot as it travels, in bytes.
        len: u64,
        /// Where `data` starts in it.
        at: u64,
        /// Its bytes from `at` on.
        data: Vec<u8>,
    },
    /// Any node → sender: the sender is behind, or this node does not lead.
    NotLeader {
        /// The epoch this node knows.
        epoch: Epoch,
        /// The leader this node knows, if any.
        leader: Option<NodeId>,
    },
    /// Replica → coordinator: the replica's state, every heartbeat interval.
    Heartbeat {
        /// The replica's epoch.
        epoch: Epoch,
        /// Its role.
        role: Role,
        /// The leader it follows (or itself).
        leader: Option<NodeId>,
        /// Its log position.
        position: Position,
        /// Its commit offset.
        commit: Offset,
        /// This run of the replica (see
        /// [`ReplicaConfig::incarnation`](super::ReplicaConfig::incarnation)).
        incarnation: u64,
    },
    /// Coordinator → replica: promise to ignore every leader older than `epoch`, and report
    /// your position (phase one of a failover).
    Prepare {
        /// The new epoch.
        epoch: Epoch,
    },
    /// Replica → coordinator: promised `epoch`; this is my (synced) position.
    Prepared {
        /// The epoch promised.
        epoch: Epoch,
        /// The replica's position.
        position: Position,
    },
    /// Coordinator → replica: lead in `epoch`.
    Promote {
        /// The new epoch.
        epoch: Epoch,
    },
    /// Coordinator → replica: follow `leader` in `epoch`.
    Follow {
        /// The epoch.
        epoch: Epoch,
        /// The leader to fetch from.
        leader: NodeId,
        /// The incarnation whose heartbeat this answers, if it answers one: a replica that
        /// lost its disk follows only such answers (see
        /// [`ReplicaConfig::incarnation`](super::ReplicaConfig::incarnation)).
        incarnation: Option<u64>,
    },
}

/// Which snapshot a follower is receiving, and how much of it it holds
/// ([`Message::FetchSnapshot`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotResume {
    /// The snapshot, as [`Message::InstallSnapshot`] named it.
    pub snapshot: u64,
    /// The bytes held: the next part starts here.
    pub from: u64,
}

impl Message {
    /// The sender's epoch.
    pub fn epoch(&self) -> Epoch {
        match self {
            Message::Fetch { epoch, .. }
            | Message::Records { epoch, .. }
            | Message::Diverging { epoch, .. }
            | Message::OutOfRange { epoch, .. }
            | Message::FetchSnapshot { epoch, .. }
            | Message::InstallSnapshot { epoch, .. }
            | Message::NotLeader { epoch, .. }
            | Message::Heartbeat { epoch, .. }
            | Message::Prepare { epoch }
            | Message::Prepared { epoch, .. }
            | Message::Promote { epoch }
            | Message::Follow { epoch, .. } => *epoch,
        }
    }
}
