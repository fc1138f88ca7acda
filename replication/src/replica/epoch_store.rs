//! Where a replica keeps the highest epoch it promised, so that a restart cannot make it
//! forget a promise (Raft's persisted `currentTerm`), and whether it may promise at all.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::record::Epoch;

/// What a replica must not forget across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DurableState {
    /// The highest epoch the replica promised, led or followed.
    pub epoch: Epoch,
    /// Whether the replica's log can be trusted in a failover: it bootstrapped the replica
    /// set, or it caught up with a leader's commit offset since it last started empty. A
    /// replica that lost its disk has lost this too, and must not promise an epoch (its empty
    /// log could tip a failover to a replica that lacks acknowledged writes) until it has
    /// copied what was committed.
    pub eligible: bool,
}

/// Durable storage for a replica's [`DurableState`].
pub trait EpochStore: Send {
    /// The stored state, or `None` if nothing was ever stored (a new or wiped disk).
    ///
    /// # Errors
    ///
    /// I/O errors, and [`Error::Corrupt`] for an unreadable file.
    fn load(&mut self) -> Result<Option<DurableState>, Error>;

    /// Stores `state` durably before returning.
    ///
    /// # Errors
    ///
    /// I/O errors.
    fn store(&mut self, state: DurableState) -> Result<(), Error>;
}

/// An [`EpochStore`] in memory: for tests and simulations. Clones share the state, so a
/// simulated crash keeps it, as a disk would.
#[derive(Debug, Clone, Default)]
pub struct MemoryEpochStore {
    state: std::sync::Arc<std::sync::Mutex<Option<DurableState>>>,
}

impl MemoryEpochStore {
    /// An empty store (a new disk).
    pub fn new() -> Self {
        Self::default()
    }
}

impl EpochStore for MemoryEpochStore {
    fn load(&mut self) -> Result<Option<DurableState>, Error> {
        Ok(*self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    fn store(&mut self, state: DurableState) -> Result<(), Error> {
        *self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(state);
        Ok(())
    }
}

/// An [`EpochStore`] in a file, replaced atomically and synced on every store.
#[derive(Debug, Clone)]
pub struct FileEpochStore {
    path: PathBuf,
}

impl FileEpochStore {
    /// The store at `dir/replica-epoch` (the log's directory is a good place).
    pub fn new(dir: impl AsRef<Path>) -> Self {
        Self {
            path: dir.as_ref().join("replica-epoch"),
        }
    }
}

impl EpochStore for FileEpochStore {
    fn load(&mut self) -> Result<Option<DurableState>, Error> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", &self.path)(e)),
        };
        let mut fields = text.split_whitespace();
        let epoch = fields.next().and_then(|f| f.parse::<u64>().ok());
        let eligible = match fields.next() {
            Some("eligible") => Some(true),
            Some("catching-up") => Some(false),
            _ => None,
        };
        match (epoch, eligible, fields.next()) {
            (Some(epoch), Some(eligible), None) => Ok(Some(DurableState {
                epoch: Epoch::new(epoch),
                eligible,
            })),
            _ => Err(Error::Corrupt {
                path: self.path.clone(),
                position: 0,
                reason: crate::FrameError::Malformed {
                    reason: "unreadable replica state",
                },
            }),
        }
    }

    fn store(&mut self, state: DurableState) -> Result<(), Error> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let tmp = self.path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            use std::io::Write as _;
            let mut f = std::fs::File::create(&tmp)?;
            let eligible = if state.eligible {
                "eligible"
            } else {
                "catching-up"
            };
            writeln!(f, "{} {eligible}", state.epoch)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            std::fs::File::open(dir)?.sync_all()
        };
        write().map_err(Error::io("write", &self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_store_round_trips_and_reports_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileEpochStore::new(dir.path());
        assert_eq!(store.load().unwrap(), None);
        let state = DurableState {
            epoch: Epoch::new(42),
            eligible: true,
        };
        store.store(state).unwrap();
        assert_eq!(FileEpochStore::new(dir.path()).load().unwrap(), Some(state));
        std::fs::write(dir.path().join("replica-epoch"), "x").unwrap();
        assert!(matches!(store.load(), Err(Error::Corrupt { .. })));
    }
}
