//! The log directory's lock: one `FileLog` writes a log at a time, in any process.

use std::fs::File;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use rustix::fs::FlockOperation;
use rustix::io::Errno;

use crate::error::Error;

/// The lock file in a log's directory.
const LOCK_FILE: &str = "lock";

/// A lock file's identity: its device and inode, the same whatever path reached it.
type FileId = (u64, u64);

/// The lock files this process's logs hold. An `fcntl` lock belongs to the process, so it
/// cannot tell two logs of one process apart; this list does. Its mutex is also held while a
/// lock file is opened or closed: closing any descriptor of a lock file releases the
/// process's lock on it, so no descriptor of a held one is ever opened, and none is closed
/// while another log could be taking it.
static HELD: Mutex<Vec<FileId>> = Mutex::new(Vec::new());

/// Holds a log's directory for as long as it lives: another process, or another log in this
/// one, opening the log is refused ([`Error::InUse`]) instead of writing the same files (two
/// writers would interleave appends and cut each other's records).
///
/// Across processes, an `fcntl` record lock (the process's: it ends with it, however it
/// ends); within the process, [`HELD`]. A log dropped without closing (leaked) keeps its
/// directory until its process ends.
#[derive(Debug)]
pub(crate) struct DirLock {
    /// Always `Some` until dropped, when it is closed under [`HELD`]'s mutex.
    file: Option<File>,
    id: FileId,
}

impl DirLock {
    /// Locks `dir`, creating its lock file if needed.
    ///
    /// # Errors
    ///
    /// [`Error::InUse`] if another log holds it, [`Error::Io`] if the lock file cannot be
    /// made, examined or locked.
    pub(crate) fn take(dir: &Path) -> Result<Self, Error> {
        let in_use = || Error::InUse {
            dir: dir.to_path_buf(),
        };
        let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
        // Before opening it: a second descriptor, once closed, would end the holder's lock.
        if let Ok(meta) = std::fs::metadata(dir.join(LOCK_FILE))
            && held.contains(&(meta.dev(), meta.ino()))
        {
            return Err(in_use());
        }
        let (file, path) = super::open_or_create(dir, LOCK_FILE)?;
        // Had the path changed since the check (the file replaced, a symlink repointed), this
        // could be a file the process holds; closing it would end that lock. Such a
        // descriptor is left open instead.
        let id = match file.metadata() {
            Ok(meta) if !held.contains(&(meta.dev(), meta.ino())) => (meta.dev(), meta.ino()),
            Ok(_) => {
                std::mem::forget(file);
                return Err(in_use());
            }
            Err(e) => {
                std::mem::forget(file);
                return Err(Error::io("examine", &path)(e));
            }
        };
        match rustix::fs::fcntl_lock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {
                held.push(id);
                Ok(Self {
                    file: Some(file),
                    id,
                })
            }
            Err(Errno::AGAIN | Errno::ACCESS) => Err(in_use()),
            Err(e) => Err(Error::io("lock", &path)(e.into())),
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
        drop(self.file.take());
        if let Some(at) = held.iter().position(|&id| id == self.id) {
            held.swap_remove(at);
        }
    }
}
