//! The crate's error type.

use std::fmt;

/// What went wrong. Errors about a client's request or cursor say what the client must change;
/// errors about configuration say what the service must fix.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A page size of zero or below was asked for.
    InvalidPageSize(i64),
    /// A size policy whose default is zero or above its maximum.
    InvalidPolicy {
        /// The default size given.
        default: u32,
        /// The maximum size given.
        max: u32,
    },
    /// Forward (`first`/`after`) and backward (`last`/`before`) arguments were mixed.
    ConflictingDirections,
    /// A sort that keyset paging cannot use (no columns, no unique tiebreaker at the end, a
    /// repeated column).
    InvalidSort {
        /// What is wrong.
        reason: String,
    },
    /// A sort key that does not fit its sort (wrong number of values, wrong type, NULL in a
    /// non-nullable column).
    InvalidKey {
        /// What is wrong.
        reason: String,
    },
    /// A cursor codec configuration that is unsafe or inconsistent (short or repeated keys).
    InvalidCodec {
        /// What is wrong.
        reason: String,
    },
    /// The cursor is not a token this service issued: not base64url, cut short, or with fields
    /// that do not parse.
    MalformedCursor {
        /// What is wrong.
        reason: &'static str,
    },
    /// The cursor was written by a format version this release does not read.
    UnsupportedVersion(u8),
    /// The cursor carries no signature, and this service only accepts signed cursors.
    UnsignedCursor,
    /// The cursor's signature does not verify: it was forged, tampered with, or signed with a
    /// key that has been retired.
    BadSignature,
    /// The cursor was issued for a different query (other filters or another sort).
    WrongQuery,
    /// The cursor has expired; start again from the first page. Also a cursor issued with no
    /// lifetime to a codec that now gives cursors one.
    ExpiredCursor {
        /// When it expired, in seconds since the Unix epoch; 0 for a cursor issued with no
        /// lifetime.
        expired_at: u64,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidPageSize(n) => write!(f, "page size must be at least 1, got {n}"),
            Error::InvalidPolicy { default, max } => write!(
                f,
                "page size policy needs 1 <= default <= max, got default {default} and max {max}"
            ),
            Error::ConflictingDirections => f.write_str(
                "use either `first`/`after` (forwards) or `last`/`before` (backwards), not both",
            ),
            Error::InvalidSort { reason } => write!(f, "invalid sort: {reason}"),
            Error::InvalidKey { reason } => write!(f, "invalid sort key: {reason}"),
            Error::InvalidCodec { reason } => write!(f, "invalid cursor codec: {reason}"),
            Error::MalformedCursor { reason } => write!(f, "malformed cursor: {reason}"),
            Error::UnsupportedVersion(v) => write!(f, "cursor format version {v} is not supported"),
            Error::UnsignedCursor => {
                f.write_str("cursor is not signed; use a cursor this service returned")
            }
            Error::BadSignature => {
                f.write_str("cursor signature is invalid; use a cursor this service returned")
            }
            Error::WrongQuery => f.write_str(
                "cursor belongs to a different query; keep the same filters and sort while paging",
            ),
            Error::ExpiredCursor { expired_at } => {
                write!(
                    f,
                    "cursor expired at {expired_at} (Unix seconds); start again from the first page"
                )
            }
        }
    }
}

impl std::error::Error for Error {}
