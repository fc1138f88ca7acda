//! Segment files: a run of framed records from a base offset, with a sparse offset index.
//!
//! `{base:020}.log` holds the frames; `{base:020}.index` holds the sparse index of a sealed
//! segment: the magic `SKIX0001`, the segment length it covers (u64), then `(offset - base,
//! position)` pairs (u32 each), one per `index_interval` bytes of frames. An index that is
//! missing, or covers another length, is rebuilt by scanning the segment.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::error::{Error, FrameError};
use crate::frame::{decode, frame_len};
use crate::record::Record;

const INDEX_MAGIC: &[u8; 8] = b"SKIX0001";

/// Bytes read at a time when scanning.
const READ_CHUNK: usize = 256 << 10;

/// Zeros written at a time when preallocating.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// A segment's mutable state, guarded for the writer and readers.
#[derive(Debug, Default, Clone)]
pub(crate) struct Meta {
    /// Bytes of complete frames.
    pub(crate) len: u64,
    /// The file's length: `len` plus any zeros written ahead of appends (see
    /// [`Segment::preallocate`]). (After a failed cut of a partial write the file may be longer;
    /// appends overwrite what is there.)
    pub(crate) allocated: u64,
    /// Set when writing zeros ahead failed (a full disk): the segment grows append by append.
    pub(crate) preallocation_failed: bool,
    /// One past the last offset in the segment.
    pub(crate) next: u64,
    /// Sparse index: `(offset - base, position)`, ascending.
    pub(crate) index: Vec<(u32, u32)>,
    /// The position of the last indexed frame.
    pub(crate) last_indexed: Option<u64>,
}

/// One segment file.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) base: u64,
    pub(crate) path: PathBuf,
    pub(crate) file: File,
    meta: RwLock<Meta>,
}

pub(crate) fn log_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

fn index_path(path: &Path) -> PathBuf {
    path.with_extension("index")
}

/// Where a scan of a segment stopped.
#[derive(Debug)]
pub(crate) struct ScanEnd {
    /// The position after the last good frame.
    pub(crate) pos: u64,
    /// The offset after the last good frame.
    pub(crate) next: u64,
    /// The problem that stopped the scan before the file's end, with its position.
    pub(crate) bad: Option<(u64, FrameError)>,
}

impl Segment {
    /// Creates an empty segment file (failing if one exists), syncing the directory if `durable`.
    pub(crate) fn create(dir: &Path, base: u64, durable: bool) -> Result<Self, Error> {
        let path = log_path(dir, base);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(Error::io("create", &path))?;
        if durable {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(Error::io("sync directory", dir))?;
        }
        Ok(Self::with_file(base, path, file))
    }

    /// A segment of `file`, empty until the caller fills in its metadata.
    fn with_file(base: u64, path: PathBuf, file: File) -> Self {
        Self {
            base,
            path,
            file,
            meta: RwLock::new(Meta {
                next: base,
                ..Meta::default()
            }),
        }
    }

    /// Opens an existing segment; its metadata is filled in by the caller's recovery.
    pub(crate) fn open(path: PathBuf, base: u64) -> Result<Self, Error> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(Error::io("open", &path))?;
        Ok(Self::with_file(base, path, file))
    }

    pub(crate) fn meta(&self) -> RwLockReadGuard<'_, Meta> {
        self.meta.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn meta_mut(&self) -> RwLockWriteGuard<'_, Meta> {
        self.meta.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The file's length on disk.
    pub(crate) fn file_len(&self) -> Result<u64, Error> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(Error::io("stat", &self.path))
    }

    /// Reads frames from `pos`, expecting offset `next` first, until `limit_pos`, the first bad
    /// frame, or `visit` returning `false`.
    pub(crate) fn scan(
        &self,
        mut pos: u64,
        mut next: u64,
        limit_pos: u64,
        mut visit: impl FnMut(u64, Record) -> bool,
    ) -> Result<ScanEnd, Error> {
        let mut buf: Vec<u8> = Vec::new();
        let mut buf_at = pos;
        loop {
            if pos >= limit_pos {
                return Ok(ScanEnd {
                    pos,
                    next,
                    bad: None,
                });
            }
            let in_buf = (pos - buf_at) as usize;
            let avail = &buf[in_buf.min(buf.len())..];
            let want = frame_len(avail).unwrap_or(crate::FRAME_HEADER_LEN);
            if avail.len() < want {
                // Refill from `pos` with at least the frame (or header) we need.
                let len = ((limit_pos - pos) as usize).min(want.max(READ_CHUNK));
                buf.resize(len, 0);
                buf_at = pos;
                let mut read = 0;
                while read < len {
                    match self.file.read_at(&mut buf[read..], pos + read as u64) {
                        Ok(0) => break,
                        Ok(n) => read += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(Error::io("read", &self.path)(e)),
                    }
                }
                buf.truncate(read);
                if buf.len() < want {
                    let available = buf.len();
                    return Ok(ScanEnd {
                        pos,
                        next,
                        bad: Some((
                            pos,
                            FrameError::Incomplete {
                                needed: want,
                                available,
                            },
                        )),
                    });
                }
                continue;
            }
            match decode(avail) {
                Ok((record, used)) if record.offset.get() == next => {
                    let at = pos;
                    pos += used as u64;
                    next += 1;
                    if !visit(at, record) {
                        return Ok(ScanEnd {
                            pos,
                            next,
                            bad: None,
                        });
                    }
                }
                Ok(_) => {
                    let reason = FrameError::Malformed {
                        reason: "record offset out of sequence",
                    };
                    return Ok(ScanEnd {
                        pos,
                        next,
                        bad: Some((pos, reason)),
                    });
                }
                Err(e) => {
                    return Ok(ScanEnd {
                        pos,
                        next,
                        bad: Some((pos, e)),
                    });
                }
            }
        }
    }

    /// Where the first frame with offset at least `next` starts in `bytes` (the file from a bad
    /// frame on), if one starts before `data_len` other than at its very start: tells a damaged
    /// tail (nothing valid follows) from damage in the middle (valid records follow).
    pub(crate) fn valid_frame_after(bytes: &[u8], data_len: usize, next: u64) -> Option<usize> {
        (1..data_len).find(|&q| matches!(decode(&bytes[q..]), Ok((r, _)) if r.offset.get() >= next))
    }

    /// Adds an index entry for the frame of `offset` at `pos` if `interval` bytes passed.
    pub(crate) fn maybe_index(meta: &mut Meta, base: u64, offset: u64, pos: u64, interval: u64) {
        if meta
            .last_indexed
            .is_none_or(|last| pos >= last.saturating_add(interval))
        {
            meta.index.push(((offset - base) as u32, pos as u32));
            meta.last_indexed = Some(pos);
        }
    }

    /// The position of the last index entry at or before `offset` (0 without one).
    pub(crate) fn seek(&self, offset: u64) -> (u64, u64) {
        let meta = self.meta();
        let rel = offset.saturating_sub(self.base);
        let i = meta.index.partition_point(|&(r, _)| u64::from(r) <= rel);
        match i.checked_sub(1).map(|i| meta.index[i]) {
            Some((r, p)) => (u64::from(p), self.base + u64::from(r)),
            None => (0, self.base),
        }
    }

    /// Writes the index file for the segment as it is now, synced if `durable`. (An index lost
    /// in a crash is only rebuilt, so a log that does not sync its data need not sync it.)
    pub(crate) fn store_index(&self, durable: bool) -> Result<(), Error> {
        let meta = self.meta().clone();
        let path = index_path(&self.path);
        let mut bytes = Vec::with_capacity(16 + meta.index.len() * 8);
        bytes.extend_from_slice(INDEX_MAGIC);
        bytes.extend_from_slice(&meta.len.to_le_bytes());
        for (r, p) in &meta.index {
            bytes.extend_from_slice(&r.to_le_bytes());
            bytes.extend_from_slice(&p.to_le_bytes());
        }
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&path)?;
            f.write_all(&bytes)?;
            if durable { f.sync_all() } else { Ok(()) }
        };
        write().map_err(Error::io("write index", &path))
    }

    /// Loads the index file if it exists and covers `len` bytes.
    pub(crate) fn load_index(&self, len: u64) -> Option<Vec<(u32, u32)>> {
        let bytes = std::fs::read(index_path(&self.path)).ok()?;
        if bytes.len() < 16 || &bytes[..8] != INDEX_MAGIC || (bytes.len() - 16) % 8 != 0 {
            return None;
        }
        let covered = u64::from_le_bytes(bytes[8..16].try_into().ok()?);
        if covered != len {
            return None;
        }
        let entries: Vec<(u32, u32)> = bytes[16..]
            .chunks_exact(8)
            .map(|c| {
                (
                    u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                    u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
                )
            })
            .collect();
        let sorted = entries
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1);
        let in_file = entries.iter().all(|&(_, p)| u64::from(p) < len);
        (sorted && in_file).then_some(entries)
    }

    /// Writes zeros from the file's end up to `end`, so later appends overwrite allocated blocks
    /// and their `fdatasync` need not also commit the file's growth (on ext4, a journal commit):
    /// syncs get much faster. The one sync after each extension also writes the zeros. Best
    /// effort: on failure (a full disk) the file is cut back and appends simply grow it.
    pub(crate) fn preallocate(&self, end: u64) {
        let (from, failed) = {
            let meta = self.meta();
            (meta.allocated, meta.preallocation_failed)
        };
        if failed {
            return;
        }
        // Only the writer grows the file, so the zeros go in without holding the metadata lock:
        // readers of the segment are not kept waiting.
        let mut at = from;
        while at < end {
            let n = ZEROS.len().min((end - at) as usize);
            if self.file.write_all_at(&ZEROS[..n], at).is_err() {
                // A failed cut leaves zeros past `allocated`, which appends overwrite anyway.
                let _ = self.file.set_len(from);
                // A full disk stays full for a while: appends just grow this segment now.
                self.meta_mut().preallocation_failed = true;
                return;
            }
            at += n as u64;
        }
        let mut meta = self.meta_mut();
        meta.allocated = meta.allocated.max(end);
    }

    /// Cuts preallocated zeros off the file (when it is sealed or closed).
    pub(crate) fn trim(&self) -> Result<(), Error> {
        let mut meta = self.meta_mut();
        if meta.allocated > meta.len {
            self.file
                .set_len(meta.len)
                .map_err(Error::io("truncate", &self.path))?;
            meta.allocated = meta.len;
        }
        Ok(())
    }

    /// The end of the non-zero bytes from `pos` to `len` (`pos` if they are all zeros), with
    /// those bytes read: what recovery tells preallocated space from a torn write by.
    pub(crate) fn data_end(&self, pos: u64, len: u64) -> Result<(u64, Vec<u8>), Error> {
        let mut bytes = vec![0; (len - pos) as usize];
        self.file
            .read_exact_at(&mut bytes, pos)
            .map_err(Error::io("read", &self.path))?;
        let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        Ok((pos + end as u64, bytes))
    }

    /// Deletes the segment's files.
    pub(crate) fn delete(&self) -> Result<(), Error> {
        let _ = std::fs::remove_file(index_path(&self.path));
        std::fs::remove_file(&self.path).map_err(Error::io("delete", &self.path))
    }
}
