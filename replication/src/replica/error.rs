//! Why a write or a replica operation failed.

use std::fmt;

use super::types::NodeId;
use crate::record::{Epoch, Offset};

/// Why a write was not acknowledged. [`is_fate_unknown`](Self::is_fate_unknown) says whether
/// it may still have been applied: retry those with the same producer sequence.
#[derive(Debug)]
#[non_exhaustive]
pub enum WriteError {
    /// This replica does not lead; nothing was written.
    NotLeader {
        /// The leader this replica knows, if any.
        leader: Option<NodeId>,
        /// This replica's epoch.
        epoch: Epoch,
    },
    /// Fewer replicas are in sync than `min_in_sync_replicas`; nothing was written. The write
    /// is refused rather than acknowledged with less than its level.
    NotEnoughReplicas {
        /// Replicas in sync now, the leader included.
        in_sync: usize,
        /// The configured minimum.
        required: usize,
    },
    /// The write reached the leader's log at `offset` but not its ack level in time. It may
    /// still commit, or be lost in a failover: its fate is unknown. The level is never
    /// silently lowered instead.
    Timeout {
        /// Where the write sits in the leader's log.
        offset: Offset,
    },
    /// The leader lost its leadership while the write at `offset` waited; its fate is unknown.
    LeadershipLost {
        /// Where the write sat in the old leader's log.
        offset: Offset,
    },
    /// The leader's log refused the append; nothing was written.
    Storage(std::sync::Arc<crate::Error>),
    /// The record would be larger than the replica's packets can carry to its followers
    /// ([`Replica::limit_packets`](super::Replica::limit_packets); a [`Node`](super::Node) on
    /// TCP, [`TcpConfig::max_packet`](super::TcpConfig::max_packet) less a packet's head);
    /// nothing was written. Written, it would stall every follower at it for good.
    TooLarge {
        /// The bytes the record would take in the log (its frame).
        len: usize,
        /// The most a record may take.
        max: usize,
    },
}

impl WriteError {
    /// Whether the write may have been applied (retry it with the same producer sequence to
    /// find out without applying it twice).
    pub fn is_fate_unknown(&self) -> bool {
        matches!(
            self,
            WriteError::Timeout { .. } | WriteError::LeadershipLost { .. }
        )
    }
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::NotLeader { leader, epoch } => match leader {
                Some(l) => write!(f, "not the leader (epoch {epoch}); the leader is {l}"),
                None => write!(f, "not the leader (epoch {epoch}); no leader is known"),
            },
            WriteError::NotEnoughReplicas { in_sync, required } => write!(
                f,
                "only {in_sync} replicas are in sync, {required} required; the write was refused"
            ),
            WriteError::Timeout { offset } => write!(
                f,
                "the write at offset {offset} timed out before its ack level; its fate is unknown"
            ),
            WriteError::LeadershipLost { offset } => write!(
                f,
                "the leader stepped down while the write at offset {offset} waited; its fate is unknown"
            ),
            WriteError::Storage(e) => write!(f, "the leader's log refused the write: {e}"),
            WriteError::TooLarge { len, max } => write!(
                f,
                "the record would take {len} bytes, over the {max} a packet carries to followers; nothing was written"
            ),
        }
    }
}

impl std::error::Error for WriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WriteError::Storage(e) => Some(&**e),
            _ => None,
        }
    }
}
