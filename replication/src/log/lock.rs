//! The log directory's lock: one process writes a log at a time.

use std::fs::File;
use std::path::Path;

use rustix::fs::FlockOperation;
use rustix::io::Errno;

use crate::error::Error;

/// The lock file in a log's directory.
const LOCK_FILE: &str = "lock";

/// Holds a log's directory for this process, for as long as it lives: another process
/// opening the log is refused ([`Error::InUse`]) instead of writing the same files (two
/// writers would interleave appends and cut each other's records).
///
/// An `fcntl` record lock, which belongs to the process, not the descriptor: the same
/// process may open the log again, as after dropping a log without closing it. Closing any
/// descriptor of the lock file in the process releases it, so nothing else opens it.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Locks `dir`, creating its lock file if needed.
    ///
    /// # Errors
    ///
    /// [`Error::InUse`] if another process holds it, [`Error::Io`] if the lock file cannot
    /// be made or locked.
    pub(crate) fn take(dir: &Path) -> Result<Self, Error> {
        let (file, path) = super::open_or_create(dir, LOCK_FILE)?;
        match rustix::fs::fcntl_lock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Self { _file: file }),
            Err(Errno::AGAIN | Errno::ACCESS) => Err(Error::InUse {
                dir: dir.to_path_buf(),
            }),
            Err(e) => Err(Error::io("lock", &path)(e.into())),
        }
    }
}
