//! The synced mark: how much of the tail segment is known to be on disk, so that recovery can
//! tell bit rot in synced records (an error: they were acknowledged) from a torn write (cut:
//! a torn write can only hit bytes no sync covered, but for the sector it shares with them,
//! which recovery leaves out).
//!
//! The file `synced` holds the magic `SKSM0001`, a segment's base offset and a byte position
//! in it (u64 each, little-endian), and a CRC-32C of those 24 bytes (u32): every byte of that
//! segment before the position was synced. It is rewritten in place after each sync, without
//! a sync of its own (a crash may leave an older mark, which only vouches for less), and is
//! lowered, synced, before anything can put unsynced bytes below it: a truncation or a reset.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::Error;

const MAGIC: &[u8; 8] = b"SKSM0001";
const LEN: usize = 8 + 8 + 8 + 4;

/// Bytes of segment `base` before `position` are synced. Ordered by segment, then position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Mark {
    pub(super) base: u64,
    pub(super) position: u64,
}

impl Mark {
    /// How far this mark vouches for the segment with base `base`.
    pub(super) fn position_in(self, base: u64) -> u64 {
        if self.base == base { self.position } else { 0 }
    }

    fn encode(self) -> [u8; LEN] {
        let mut bytes = [0; LEN];
        bytes[..8].copy_from_slice(MAGIC);
        bytes[8..16].copy_from_slice(&self.base.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.position.to_le_bytes());
        let crc = crc32c::crc32c(&bytes[..24]);
        bytes[24..].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    /// `None` unless `bytes` is a whole, undamaged mark.
    fn decode(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; LEN] = bytes.get(..LEN)?.try_into().ok()?;
        let crc = u32::from_le_bytes(bytes[24..].try_into().ok()?);
        (&bytes[..8] == MAGIC && crc32c::crc32c(&bytes[..24]) == crc).then(|| Self {
            base: u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")),
            position: u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes")),
        })
    }
}

/// The mark file of a log directory.
#[derive(Debug)]
pub(super) struct SyncedMark {
    file: File,
    path: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    mark: Mark,
    /// Counts lowerings: a sync that started before one vouches for bytes that may be gone.
    generation: u64,
}

impl SyncedMark {
    /// Opens (or creates) the mark file in `dir`; returns it with the mark it holds, `None` if
    /// there is none (a new log, or one written before marks) or it is damaged.
    pub(super) fn open(dir: &Path) -> Result<(Self, Option<Mark>), Error> {
        let (file, path) = super::open_or_create(dir, "synced")?;
        let mut bytes = [0; LEN];
        let found = match file.read_exact_at(&mut bytes, 0) {
            Ok(()) => Mark::decode(&bytes),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => None,
            Err(e) => return Err(Error::io("read", &path)(e)),
        };
        // The log sets the mark once it has recovered; until then it vouches for nothing.
        let mark = Self {
            file,
            path,
            state: Mutex::new(State::default()),
        };
        Ok((mark, found))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        super::lock(&self.state)
    }

    /// The generation to pass to [`synced`](Self::synced), read before the sync's bytes are
    /// chosen.
    pub(super) fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Records that a sync covered `mark`, if no lowering came since `generation` was read.
    /// Best effort: a failed write leaves an older mark, which vouches for less.
    pub(super) fn synced(&self, mark: Mark, generation: u64) {
        let mut state = self.lock();
        if state.generation == generation && mark > state.mark {
            state.mark = mark;
            let _ = self.file.write_all_at(&mark.encode(), 0);
        }
    }

    /// Before bytes at or after `mark` change without a sync (a truncation): the mark goes no
    /// higher than `mark`, on disk before this returns.
    pub(super) fn lower_to(&self, mark: Mark) -> Result<(), Error> {
        let mut state = self.lock();
        state.generation += 1;
        if state.mark > mark {
            self.store(&mut state, mark)?;
        }
        Ok(())
    }

    /// Sets the mark to exactly `mark`, on disk before this returns: after recovery synced
    /// every segment (`mark` is the tail's end), or before a reset restarts the log at a
    /// segment (position 0: an older segment with that base may have been synced).
    pub(super) fn set(&self, mark: Mark) -> Result<(), Error> {
        let mut state = self.lock();
        state.generation += 1;
        self.store(&mut state, mark)
    }

    fn store(&self, state: &mut State, mark: Mark) -> Result<(), Error> {
        state.mark = mark;
        self.file
            .write_all_at(&mark.encode(), 0)
            .and_then(|()| self.file.sync_data())
            .map_err(Error::io("write", &self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_round_trips_and_damage_is_never_read_as_one() {
        let mark = Mark {
            base: 7,
            position: 4096,
        };
        let bytes = mark.encode();
        assert_eq!(Mark::decode(&bytes), Some(mark));
        for i in 0..LEN {
            let mut damaged = bytes;
            damaged[i] ^= 1;
            assert_eq!(Mark::decode(&damaged), None, "byte {i}");
        }
        assert_eq!(Mark::decode(&bytes[..LEN - 1]), None);
        assert_eq!(Mark::decode(&[0; LEN]), None);
    }

    #[test]
    fn a_sync_from_before_a_lowering_does_not_raise_the_mark() {
        let dir = tempfile::tempdir().unwrap();
        let (marks, found) = SyncedMark::open(dir.path()).unwrap();
        assert_eq!(found, None);
        let at = |position| Mark { base: 0, position };
        marks.synced(at(100), marks.generation());
        let before_cut = marks.generation();
        marks.lower_to(at(40)).unwrap();
        marks.synced(at(100), before_cut);
        let (_, found) = SyncedMark::open(dir.path()).unwrap();
        assert_eq!(found, Some(at(40)));
        // A later sync raises it again; a lower one never lowers it.
        marks.synced(at(60), marks.generation());
        marks.synced(at(50), marks.generation());
        assert_eq!(SyncedMark::open(dir.path()).unwrap().1, Some(at(60)));
        marks
            .set(Mark {
                base: 9,
                position: 0,
            })
            .unwrap();
        assert_eq!(
            SyncedMark::open(dir.path()).unwrap().1,
            Some(Mark {
                base: 9,
                position: 0
            })
        );
    }
}
