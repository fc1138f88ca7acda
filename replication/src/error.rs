//! Errors of the frame codec.

use std::fmt;

/// Why a frame could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The buffer ends before the frame does: a torn write at the tail of a log, or a read that
    /// needs more bytes.
    Incomplete {
        /// Bytes the whole frame needs.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The frame is complete but its checksum does not match: the bytes were damaged.
    ChecksumMismatch {
        /// The checksum stored in the frame.
        stored: u32,
        /// The checksum of the bytes as read.
        computed: u32,
    },
    /// The length field is larger than [`MAX_FRAME_BODY`](crate::MAX_FRAME_BODY): garbage, or a
    /// record too large to store.
    TooLarge {
        /// The length that was found or asked for.
        len: u64,
    },
    /// The checksum matched but the fields inside do not add up (a key longer than the frame).
    Malformed {
        /// What is wrong.
        reason: &'static str,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Incomplete { needed, available } => {
                write!(
                    f,
                    "incomplete frame: needs {needed} bytes, {available} available"
                )
            }
            FrameError::ChecksumMismatch { stored, computed } => write!(
                f,
                "frame checksum mismatch: stored {stored:#010x}, computed {computed:#010x}; the data is damaged"
            ),
            FrameError::TooLarge { len } => write!(
                f,
                "frame body of {len} bytes exceeds the maximum of {} bytes",
                crate::MAX_FRAME_BODY
            ),
            FrameError::Malformed { reason } => write!(f, "malformed frame: {reason}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// What went wrong in a log operation.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An I/O call failed (disk full, permission denied, ...). The log stays consistent: a
    /// failed append leaves no partial record behind.
    Io {
        /// What the log was doing.
        op: &'static str,
        /// The file or directory involved.
        path: std::path::PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A record inside the log (not at its tail) is damaged: its bytes changed after they were
    /// written. The log refuses to skip it; restore the segment from a replica.
    Corrupt {
        /// The segment file.
        path: std::path::PathBuf,
        /// The byte position of the damaged frame in the file.
        position: u64,
        /// What is wrong with it.
        reason: FrameError,
    },
    /// A sync of the log's files failed earlier (or, under `Durability::Always`, the write of a
    /// group of several appenders' records did). Data may not be on disk, and the kernel may
    /// have dropped it, so the log refuses writes until it is reopened and recovered.
    Poisoned {
        /// The failed sync's error.
        reason: String,
    },
    /// The offset lies outside the log's retained range.
    OffsetOutOfRange {
        /// The offset asked for.
        requested: u64,
        /// The first offset the log holds.
        start: u64,
        /// One past the last offset the log holds.
        end: u64,
    },
    /// Replicated records did not continue the log: their first offset must be its end.
    NotContiguous {
        /// The offset the log expected.
        expected: u64,
        /// The offset given.
        got: u64,
    },
    /// A record's epoch is older than the log's current epoch.
    StaleEpoch {
        /// The log's latest epoch.
        current: u64,
        /// The epoch given.
        got: u64,
    },
    /// A record is too large to frame.
    RecordTooLarge {
        /// The frame body's length.
        len: u64,
    },
    /// A truncation removed the append's records before they became durable (a follower cut
    /// its log while the append was waiting); the append did not happen.
    Truncated {
        /// Where the log was cut.
        at: u64,
    },
    /// A leader asked this follower to cut records it knows are committed: the replica set's
    /// guarantee is broken (for example a majority lost its disks), and the follower refuses.
    CommittedCut {
        /// The follower's commit offset.
        commit: u64,
        /// Where the leader asked it to cut.
        cut: u64,
    },
    /// A configuration value is out of range.
    InvalidConfig {
        /// What is wrong.
        reason: &'static str,
    },
    /// Appending would take the log's end past the largest offset, `u64::MAX` (a log reset
    /// near it, say by a snapshot from a faulty leader).
    OffsetOverflow {
        /// The log's end.
        end: u64,
        /// How many records the append had.
        count: u64,
    },
    /// Another `FileLog`, in this process or another, has the log in `dir` open: two writers
    /// would interleave appends and cut each other's records, so the second is refused.
    InUse {
        /// The log's directory.
        dir: std::path::PathBuf,
    },
}

impl Error {
    /// The log's end after appending `count` records at `end`, or [`Error::OffsetOverflow`].
    pub(crate) fn end_after(end: u64, count: u64) -> Result<u64, Error> {
        end.checked_add(count)
            .ok_or(Error::OffsetOverflow { end, count })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { op, path, source } => write!(f, "{op} {}: {source}", path.display()),
            Error::Corrupt {
                path,
                position,
                reason,
            } => write!(
                f,
                "corrupt record in {} at byte {position}: {reason}; restore the segment from a replica",
                path.display()
            ),
            Error::Poisoned { reason } => write!(
                f,
                "the log is poisoned by a failed sync ({reason}); reopen it to recover before writing again"
            ),
            Error::OffsetOutOfRange {
                requested,
                start,
                end,
            } => {
                write!(
                    f,
                    "offset {requested} is outside the log's range {start}..{end}"
                )
            }
            Error::NotContiguous { expected, got } => {
                write!(
                    f,
                    "records must continue the log at offset {expected}, got {got}"
                )
            }
            Error::StaleEpoch { current, got } => {
                write!(
                    f,
                    "epoch {got} is older than the log's current epoch {current}"
                )
            }
            Error::RecordTooLarge { len } => write!(
                f,
                "record of {len} bytes exceeds the maximum frame body of {} bytes",
                crate::MAX_FRAME_BODY
            ),
            Error::Truncated { at } => write!(
                f,
                "the log was truncated at offset {at} before this append became durable; the append did not happen"
            ),
            Error::CommittedCut { commit, cut } => write!(
                f,
                "the leader asked to cut the log at {cut}, below the commit offset {commit}; refused"
            ),
            Error::InvalidConfig { reason } => write!(f, "invalid log configuration: {reason}"),
            Error::OffsetOverflow { end, count } => write!(
                f,
                "appending {count} records at offset {end} would pass the largest offset"
            ),
            Error::InUse { dir } => {
                write!(f, "the log in {} is already open", dir.display())
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Corrupt { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

impl From<crate::commit::WaitError> for Error {
    fn from(e: crate::commit::WaitError) -> Self {
        match e {
            crate::commit::WaitError::Failed(reason) => Error::Poisoned { reason },
            crate::commit::WaitError::Truncated { at } => Error::Truncated { at },
        }
    }
}

impl Error {
    pub(crate) fn io<'p>(
        op: &'static str,
        path: &'p std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Error + 'p {
        move |source| Error::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}
