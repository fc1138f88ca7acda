//! What a replica reports about itself and, on the leader, about each follower.

use std::time::Duration;

use super::types::{NodeId, Role};
use crate::record::{Epoch, Offset};

/// A replica's state, as [`Replica::status`](super::Replica::status) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// The replica.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// Its epoch.
    pub epoch: Epoch,
    /// The leader it knows (itself if it leads).
    pub leader: Option<NodeId>,
    /// The first offset its log holds.
    pub start: Offset,
    /// One past its last record.
    pub end: Offset,
    /// Everything before it is synced.
    pub flushed: Offset,
    /// Its commit offset.
    pub commit: Offset,
    /// On a leader, each follower; empty on a follower.
    pub followers: Vec<FollowerStatus>,
}

/// One follower, as its leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerStatus {
    /// The follower.
    pub id: NodeId,
    /// Its log end, as its last fetch said.
    pub end: Offset,
    /// What it holds by its ack mode.
    pub acked: Offset,
    /// Records behind the leader's end.
    pub lag_records: u64,
    /// Framed bytes behind the leader's end (to the leader's append batch).
    pub lag_bytes: u64,
    /// How long since it was last caught up.
    pub lag_time: Duration,
    /// Whether it is in the in-sync set.
    pub in_sync: bool,
    /// How long since its last fetch, if it fetched in this leadership.
    pub last_fetch_ago: Option<Duration>,
}
