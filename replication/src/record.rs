//! Records and the typed identities they carry.

use std::fmt;

/// A record's position in the log: dense, assigned by the log, starting at 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset(u64);

impl Offset {
    /// The offset `value`.
    pub const fn new(value: u64) -> Self {
        Self(value)
    }

    /// The offset as a number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The offset after this one, or `None` at `u64::MAX`.
    pub fn next(self) -> Option<Self> {
        self.0.checked_add(1).map(Self)
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A leadership term: every new leader takes a higher epoch, and stamps it on what it writes,
/// so a deposed leader's writes can be told apart and fenced off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Epoch(u64);

impl Epoch {
    /// The epoch `value`.
    pub const fn new(value: u64) -> Self {
        Self(value)
    }

    /// The epoch as a number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Where the record sits in the log.
    pub offset: Offset,
    /// The leader epoch that wrote it.
    pub epoch: Epoch,
    /// Milliseconds since the Unix epoch, as the writer saw them.
    pub timestamp_ms: u64,
    /// An optional key (for compaction and routing).
    pub key: Option<Vec<u8>>,
    /// The payload.
    pub payload: Vec<u8>,
}

impl Record {
    /// A record without a key.
    pub fn new(offset: Offset, epoch: Epoch, timestamp_ms: u64, payload: Vec<u8>) -> Self {
        Self {
            offset,
            epoch,
            timestamp_ms,
            key: None,
            payload,
        }
    }

    /// The same record with `key`.
    #[must_use]
    pub fn with_key(mut self, key: Vec<u8>) -> Self {
        self.key = Some(key);
        self
    }
}
