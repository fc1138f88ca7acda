//! The crate's error type.

use std::fmt;

/// Why a page request was refused.
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
        }
    }
}

impl std::error::Error for Error {}
