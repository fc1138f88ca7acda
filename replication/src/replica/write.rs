//! A client's write and what becomes of it.

use std::time::Duration;

use super::error::WriteError;
use super::types::{AckLevel, ProducerSeq};
use crate::record::Offset;

/// One write to the leader.
///
/// ```
/// use std::time::Duration;
/// use shardkit_replication::replica::{AckLevel, Write};
///
/// let w = Write::new(b"balance=10".to_vec(), AckLevel::Quorum)
///     .with_key(b"account:7".to_vec())
///     .idempotent(42, 0) // producer 42, its first write
///     .with_timeout(Duration::from_secs(2));
/// assert_eq!(w.ack(), AckLevel::Quorum);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) payload: Vec<u8>,
    pub(crate) ack: AckLevel,
    pub(crate) producer: Option<ProducerSeq>,
    pub(crate) timeout: Duration,
}

impl Write {
    /// A write of `payload` acknowledged at `ack`, timing out after 5 seconds.
    pub fn new(payload: Vec<u8>, ack: AckLevel) -> Self {
        Self {
            key: None,
            payload,
            ack,
            producer: None,
            timeout: Duration::from_secs(5),
        }
    }

    /// The same write with a key.
    #[must_use]
    pub fn with_key(mut self, key: Vec<u8>) -> Self {
        self.key = Some(key);
        self
    }

    /// The same write as sequence `seq` of `producer`: a retry with the same pair is not
    /// applied again, and is acknowledged with the original's offset. A producer's sequence
    /// numbers must increase, and it must not send `seq + 1` before `seq` is acknowledged or
    /// known to have failed.
    #[must_use]
    pub fn idempotent(mut self, producer: u64, seq: u64) -> Self {
        self.producer = Some(ProducerSeq { producer, seq });
        self
    }

    /// The same write with another timeout for reaching its ack level.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The ack level.
    pub fn ack(&self) -> AckLevel {
        self.ack
    }

    /// The producer and sequence, for an idempotent write.
    pub fn producer(&self) -> Option<ProducerSeq> {
        self.producer
    }
}

/// Names a write accepted by [`Replica::write`](super::Replica::write) until its completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WriteId(pub(crate) u64);

impl WriteId {
    /// The id as a number (unique per replica instance).
    pub fn get(self) -> u64 {
        self.0
    }
}

/// An acknowledged write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// The record's offset. For a duplicate of an older sequence number than the producer's
    /// latest, the latest's offset (the original is at or before it).
    pub offset: Offset,
    /// Whether this was a retry of a write already in the log (not applied again).
    pub duplicate: bool,
}

/// The end of a write: acknowledged at its level, or why not.
#[derive(Debug)]
pub struct Completion {
    /// The write.
    pub id: WriteId,
    /// Its outcome.
    pub result: Result<Written, WriteError>,
}
