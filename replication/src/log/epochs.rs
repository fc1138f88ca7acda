//! The leader-epoch history: each epoch with the first offset written in it.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::record::{Epoch, Offset};

/// Epochs in ascending order with their first offsets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EpochHistory {
    entries: Vec<(Epoch, Offset)>,
}

impl EpochHistory {
    pub(crate) fn entries(&self) -> &[(Epoch, Offset)] {
        &self.entries
    }

    /// The latest epoch, if any record was ever written.
    pub(crate) fn latest(&self) -> Option<Epoch> {
        self.entries.last().map(|e| e.0)
    }

    /// Refuses an epoch older than the latest.
    pub(crate) fn check(&self, epoch: Epoch) -> Result<(), Error> {
        match self.latest() {
            Some(current) if epoch < current => Err(Error::StaleEpoch {
                current: current.get(),
                got: epoch.get(),
            }),
            _ => Ok(()),
        }
    }

    /// Records that `epoch` wrote at `offset`; returns whether that started a new epoch.
    pub(crate) fn observe(&mut self, epoch: Epoch, offset: Offset) -> bool {
        if self.latest() == Some(epoch) {
            return false;
        }
        self.entries.push((epoch, offset));
        true
    }

    /// Forgets epochs that start at or after `offset`.
    pub(crate) fn truncate_from(&mut self, offset: Offset) {
        self.entries.retain(|&(_, first)| first < offset);
    }

    /// The history of a log restarted at `start` whose record before it has `epoch`.
    pub(crate) fn restarted_at(start: Offset, epoch: Epoch) -> Self {
        let entries = match start.get().checked_sub(1) {
            Some(last) => vec![(epoch, Offset::new(last))],
            None => Vec::new(),
        };
        Self { entries }
    }

    /// The file that stores the history in a log directory.
    pub(crate) fn path(dir: &Path) -> PathBuf {
        dir.join("leader-epochs")
    }

    /// Loads the history, one `epoch first_offset` line each; empty if the file is missing.
    pub(crate) fn load(dir: &Path) -> Result<Self, Error> {
        let path = Self::path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(Error::io("read", &path)(e)),
        };
        let mut history = Self::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut parts = line.split_whitespace().map(str::parse::<u64>);
            match (parts.next(), parts.next()) {
                (Some(Ok(epoch)), Some(Ok(first))) => history
                    .entries
                    .push((Epoch::new(epoch), Offset::new(first))),
                _ => {
                    return Err(Error::Corrupt {
                        path,
                        position: 0,
                        reason: crate::FrameError::Malformed {
                            reason: "unreadable leader-epoch line",
                        },
                    });
                }
            }
        }
        Ok(history)
    }

    /// Writes the history atomically (a new file renamed over the old) and syncs it.
    pub(crate) fn store(&self, dir: &Path) -> Result<(), Error> {
        let text: String = self
            .entries
            .iter()
            .map(|(e, o)| format!("{e} {o}\n"))
            .collect();
        crate::log::write_atomically(dir, "leader-epochs", text.as_bytes())
    }
}
