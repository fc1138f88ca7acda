//! What a replica must not forget across restarts: the highest epoch it promised (Raft's
//! persisted `currentTerm`), whether it may promise at all, and the idempotent producers'
//! latest writes that compaction dropped from the log.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::record::{Epoch, Offset};

/// A replica's durable promise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DurableState {
    /// The highest epoch the replica promised, led or followed.
    pub epoch: Epoch,
    /// Whether the replica's log can be trusted in a failover: it bootstrapped the replica
    /// set, or it caught up with a leader's commit offset since it last started empty. A
    /// replica that lost its disk has lost this too, and must not promise an epoch (its empty
    /// log could tip a failover to a replica that lacks acknowledged writes) until it has
    /// copied what was committed; until then it also follows only the coordinator's answers
    /// to its own heartbeats (see
    /// [`ReplicaConfig::incarnation`](super::ReplicaConfig::incarnation)).
    pub eligible: bool,
    /// The highest epoch the replica led. It never leads an epoch twice: after a crash it may
    /// have lost records it had already sent to followers in that epoch, and writing other
    /// records at the same offsets with the same epoch would break log matching.
    pub led: Epoch,
}

/// An idempotent producer's latest write: `(producer, sequence, offset)`.
pub type ProducerEntry = (u64, u64, Offset);

/// The idempotent producers' latest writes before an offset, as a replica stores them when
/// compaction or a snapshot drops the records that carried them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredProducers {
    /// The records before this offset are counted in `entries`: on restart, the replica
    /// counts only the log's records from here on (a log may keep records from before it,
    /// when a crash came between storing these and dropping them).
    pub upto: Offset,
    /// Each producer's last write before `upto`, in producer order. (A follower stores a
    /// snapshot's producers at the snapshot's offset; when the leader had to rebuild them
    /// from producers it stored at a later cut, they may reach past it. The follower then
    /// fetches the records in between, which repeat those writes in order.)
    pub entries: Vec<ProducerEntry>,
}

/// Durable storage for what a replica must not forget.
pub trait ReplicaStore: Send {
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

    /// The producers as last stored; empty, up to offset 0, if they never were.
    ///
    /// # Errors
    ///
    /// I/O errors, and [`Error::Corrupt`] for an unreadable file.
    fn load_producers(&mut self) -> Result<StoredProducers, Error>;

    /// Replaces the stored producers durably before returning.
    ///
    /// # Errors
    ///
    /// I/O errors.
    fn store_producers(&mut self, producers: &StoredProducers) -> Result<(), Error>;
}

#[derive(Debug, Default)]
struct Stored {
    state: Option<DurableState>,
    producers: StoredProducers,
}

/// A [`ReplicaStore`] in memory: for tests and simulations. Clones share the contents, so a
/// simulated crash keeps them, as a disk would.
#[derive(Debug, Clone, Default)]
pub struct MemoryReplicaStore {
    stored: std::sync::Arc<std::sync::Mutex<Stored>>,
}

impl MemoryReplicaStore {
    /// An empty store (a new disk).
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Stored> {
        self.stored
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ReplicaStore for MemoryReplicaStore {
    fn load(&mut self) -> Result<Option<DurableState>, Error> {
        Ok(self.lock().state)
    }

    fn store(&mut self, state: DurableState) -> Result<(), Error> {
        self.lock().state = Some(state);
        Ok(())
    }

    fn load_producers(&mut self) -> Result<StoredProducers, Error> {
        Ok(self.lock().producers.clone())
    }

    fn store_producers(&mut self, producers: &StoredProducers) -> Result<(), Error> {
        self.lock().producers = producers.clone();
        Ok(())
    }
}

/// A [`ReplicaStore`] in two small text files of a directory (the log's is a good place),
/// each replaced atomically and synced on every store.
#[derive(Debug, Clone)]
pub struct FileReplicaStore {
    dir: PathBuf,
}

const STATE_FILE: &str = "replica-state";
const PRODUCERS_FILE: &str = "replica-producers";
/// The first line of the producers' file: `upto <offset>`.
const UPTO: &str = "upto ";

impl FileReplicaStore {
    /// The store in `dir`.
    pub fn new(dir: impl AsRef<Path>) -> Self {
        Self {
            dir: dir.as_ref().to_path_buf(),
        }
    }

    /// The file's text, `None` if it does not exist.
    fn read(&self, name: &str) -> Result<Option<String>, Error> {
        let path = self.dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", &path)(e)),
        }
    }

    fn corrupt(&self, name: &str, reason: &'static str) -> Error {
        Error::Corrupt {
            path: self.dir.join(name),
            position: 0,
            reason: crate::FrameError::Malformed { reason },
        }
    }
}

impl ReplicaStore for FileReplicaStore {
    fn load(&mut self) -> Result<Option<DurableState>, Error> {
        let Some(text) = self.read(STATE_FILE)? else {
            return Ok(None);
        };
        let mut fields = text.split_whitespace();
        let epoch = fields.next().and_then(|f| f.parse::<u64>().ok());
        let eligible = match fields.next() {
            Some("eligible") => Some(true),
            Some("catching-up") => Some(false),
            _ => None,
        };
        // Files written before `led` existed have two fields.
        let led = fields.next().map_or(Some(0), |f| f.parse::<u64>().ok());
        match (epoch, eligible, led, fields.next()) {
            (Some(epoch), Some(eligible), Some(led), None) => Ok(Some(DurableState {
                epoch: Epoch::new(epoch),
                eligible,
                led: Epoch::new(led),
            })),
            _ => Err(self.corrupt(STATE_FILE, "unreadable replica state")),
        }
    }

    fn store(&mut self, state: DurableState) -> Result<(), Error> {
        let eligible = if state.eligible {
            "eligible"
        } else {
            "catching-up"
        };
        crate::log::write_atomically(
            &self.dir,
            STATE_FILE,
            format!("{} {eligible} {}\n", state.epoch, state.led).as_bytes(),
        )
    }

    fn load_producers(&mut self) -> Result<StoredProducers, Error> {
        let Some(text) = self.read(PRODUCERS_FILE)? else {
            return Ok(StoredProducers::default());
        };
        let mut lines = text.lines().filter(|l| !l.trim().is_empty()).peekable();
        // Files written before the offset was stored have only producer lines: their writes
        // were before the log's start, which replay starts from anyway.
        let upto = match lines.peek().and_then(|l| l.strip_prefix(UPTO)) {
            Some(n) => {
                let n = n.trim().parse::<u64>();
                lines.next();
                Offset::new(n.map_err(|_| self.corrupt(PRODUCERS_FILE, "unreadable offset line"))?)
            }
            None => Offset::new(0),
        };
        let entries = lines
            .map(|line| {
                let mut f = line.split_whitespace().map(str::parse::<u64>);
                match (f.next(), f.next(), f.next(), f.next()) {
                    (Some(Ok(p)), Some(Ok(seq)), Some(Ok(offset)), None) => {
                        Ok((p, seq, Offset::new(offset)))
                    }
                    _ => Err(self.corrupt(PRODUCERS_FILE, "unreadable producer line")),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(StoredProducers { upto, entries })
    }

    fn store_producers(&mut self, producers: &StoredProducers) -> Result<(), Error> {
        use std::fmt::Write as _;
        let mut text = format!("{UPTO}{}\n", producers.upto);
        for (p, seq, offset) in &producers.entries {
            let _ = writeln!(text, "{p} {seq} {offset}");
        }
        crate::log::write_atomically(&self.dir, PRODUCERS_FILE, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_store_round_trips_and_reports_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileReplicaStore::new(dir.path());
        assert_eq!(store.load().unwrap(), None);
        assert_eq!(store.load_producers().unwrap(), StoredProducers::default());
        let state = DurableState {
            epoch: Epoch::new(42),
            eligible: true,
            led: Epoch::new(41),
        };
        store.store(state).unwrap();
        let producers = StoredProducers {
            upto: Offset::new(120),
            entries: vec![(7, 3, Offset::new(99)), (8, 0, Offset::new(100))],
        };
        store.store_producers(&producers).unwrap();
        let mut reopened = FileReplicaStore::new(dir.path());
        assert_eq!(reopened.load().unwrap(), Some(state));
        assert_eq!(reopened.load_producers().unwrap(), producers);
        std::fs::write(dir.path().join(STATE_FILE), "x").unwrap();
        assert!(matches!(store.load(), Err(Error::Corrupt { .. })));
        std::fs::write(dir.path().join(PRODUCERS_FILE), "1 2").unwrap();
        assert!(matches!(store.load_producers(), Err(Error::Corrupt { .. })));
        std::fs::write(dir.path().join(PRODUCERS_FILE), "upto x\n7 3 99\n").unwrap();
        assert!(matches!(store.load_producers(), Err(Error::Corrupt { .. })));
        // Written before the offset was stored: producer lines only.
        std::fs::write(dir.path().join(PRODUCERS_FILE), "7 3 99\n").unwrap();
        assert_eq!(
            store.load_producers().unwrap(),
            StoredProducers {
                upto: Offset::new(0),
                entries: vec![(7, 3, Offset::new(99))],
            }
        );
    }
}
