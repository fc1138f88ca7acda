//! Where a replica keeps the highest epoch it promised, so that a restart cannot make it
//! forget a promise (Raft's persisted `currentTerm`).

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::record::Epoch;

/// Durable storage for a replica's promised epoch.
pub trait EpochStore: Send {
    /// The stored epoch (`Epoch::new(0)` if none was ever stored).
    ///
    /// # Errors
    ///
    /// I/O errors, and [`Error::Corrupt`] for an unreadable file.
    fn load(&mut self) -> Result<Epoch, Error>;

    /// Stores `epoch` durably before returning.
    ///
    /// # Errors
    ///
    /// I/O errors.
    fn store(&mut self, epoch: Epoch) -> Result<(), Error>;
}

/// An [`EpochStore`] in memory: for tests and simulations (a simulated crash keeps it, as a
/// disk would).
#[derive(Debug, Clone, Default)]
pub struct MemoryEpochStore {
    epoch: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl MemoryEpochStore {
    /// A store holding epoch 0.
    pub fn new() -> Self {
        Self::default()
    }
}

impl EpochStore for MemoryEpochStore {
    fn load(&mut self) -> Result<Epoch, Error> {
        Ok(Epoch::new(
            self.epoch.load(std::sync::atomic::Ordering::SeqCst),
        ))
    }

    fn store(&mut self, epoch: Epoch) -> Result<(), Error> {
        self.epoch
            .store(epoch.get(), std::sync::atomic::Ordering::SeqCst);
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
    fn load(&mut self) -> Result<Epoch, Error> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Epoch::new(0)),
            Err(e) => return Err(Error::io("read", &self.path)(e)),
        };
        text.trim()
            .parse::<u64>()
            .map(Epoch::new)
            .map_err(|_| Error::Corrupt {
                path: self.path.clone(),
                position: 0,
                reason: crate::FrameError::Malformed {
                    reason: "unreadable replica epoch",
                },
            })
    }

    fn store(&mut self, epoch: Epoch) -> Result<(), Error> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let tmp = self.path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            use std::io::Write as _;
            let mut f = std::fs::File::create(&tmp)?;
            writeln!(f, "{epoch}")?;
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
        assert_eq!(store.load().unwrap(), Epoch::new(0));
        store.store(Epoch::new(42)).unwrap();
        assert_eq!(
            FileEpochStore::new(dir.path()).load().unwrap(),
            Epoch::new(42)
        );
        std::fs::write(dir.path().join("replica-epoch"), "x").unwrap();
        assert!(matches!(store.load(), Err(Error::Corrupt { .. })));
    }
}
