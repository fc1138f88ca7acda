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
