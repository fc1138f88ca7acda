//! The file log's configuration.

use std::time::Duration;

use super::storage::Durability;
use crate::error::Error;

/// Configuration of a [`FileLog`](super::FileLog).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogConfig {
    /// Roll to a new segment once one would exceed this many bytes (default 64 MiB, at most
    /// 4 GiB so index positions fit 32 bits).
    pub segment_bytes: u64,
    /// One sparse-index entry per this many bytes of frames (default 4 KiB): a seek reads at
    /// most this much before the wanted record.
    pub index_interval: u64,
    /// When appends are durable (default [`Durability::Always`]).
    pub durability: Durability,
    /// Whether a log that syncs writes zeros ahead of its appends, 4 MiB at a time (default
    /// `true`). A sync then writes only data, not the file's growth: on ext4 that makes each
    /// `fdatasync` about a third faster, and group commit twice as fast. Turn it off on
    /// copy-on-write filesystems (btrfs, ZFS), where overwriting zeros gains nothing. Under
    /// [`Durability::Never`] a log preallocates only once its owner has called
    /// [`sync`](crate::LogStorage::sync) (as a replica does): a log nobody syncs gains nothing.
    /// Sealed segments and a cleanly closed log hold no zeros.
    pub preallocate: bool,
    /// Bytes of the latest frames the log appended itself ([`append`](crate::LogStorage::append))
    /// kept in memory (default 4 MiB; `0` keeps none). Readers of the log's tail, such as a
    /// leader's followers fetching what it just appended, get them from memory, without
    /// reading the file back and checking it. About twice this much memory per log at most
    /// (each of its two halves may exceed it by one append); copies of another log's records
    /// (a follower's appends) are not kept.
    pub recent_bytes: usize,
}

/// Zeros written ahead of appends at a time; see [`LogConfig::preallocate`].
pub(super) const PREALLOCATE_CHUNK: u64 = 4 << 20;

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 64 << 20,
            index_interval: 4096,
            durability: Durability::Always,
            preallocate: true,
            recent_bytes: 4 << 20,
        }
    }
}

impl LogConfig {
    /// The default configuration with another durability policy.
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The default configuration with another segment size.
    #[must_use]
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// The configuration keeping `bytes` of the latest frames in memory; see
    /// [`recent_bytes`](Self::recent_bytes).
    #[must_use]
    pub fn recent_bytes(mut self, bytes: usize) -> Self {
        self.recent_bytes = bytes;
        self
    }

    /// The configuration with preallocation on or off; see [`preallocate`](Self::preallocate).
    #[must_use]
    pub fn preallocate(mut self, on: bool) -> Self {
        self.preallocate = on;
        self
    }

    pub(super) fn validate(&self) -> Result<(), Error> {
        if self.segment_bytes < 1024 || self.segment_bytes > u64::from(u32::MAX) {
            return Err(Error::InvalidConfig {
                reason: "segment_bytes must be between 1 KiB and 4 GiB",
            });
        }
        if self.index_interval == 0 {
            return Err(Error::InvalidConfig {
                reason: "index_interval must be at least 1 byte",
            });
        }
        if self.durability == Durability::Interval(Duration::ZERO) {
            return Err(Error::InvalidConfig {
                reason: "a sync interval must be longer than zero",
            });
        }
        Ok(())
    }
}
