//! The durable log: segment files with CRC-framed records, sparse indexes, a leader-epoch
//! history, group commit, crash recovery, tailing reads, truncation and retention.

mod config;
pub(crate) mod epochs;
mod lock;
pub(crate) mod memory;
mod read;
mod recent;
mod recovery;
mod segment;
pub(crate) mod storage;
mod synced;
#[cfg(test)]
mod tests;
mod write;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, SystemTime};

use crate::batch::RecordBatch;
use crate::commit::GroupCommit;
use crate::error::{Error, FrameError};
use crate::frame::{FrameParts, encode_parts};
use crate::notify::Tail as TailSignal;
use crate::record::{Epoch, Offset, Record};
use epochs::EpochHistory;
use memory::{framed_len, now_ms};
use recent::RecentFrames;
use segment::{Segment, log_path};
use storage::{Appended, Durability, Entry, LogStorage};
use synced::{Mark, SyncedMark};

pub use config::LogConfig;

/// What recovery found and repaired when the log was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovery {
    /// Bytes of a torn or damaged tail that were cut (zeros preallocated after it not counted).
    pub truncated_bytes: u64,
    /// Frames (complete or not) in the cut tail.
    pub dropped_records: u64,
    /// Segment indexes that were missing or stale and were rebuilt.
    pub rebuilt_indexes: usize,
}

/// A segment as [`FileLog::segments`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentInfo {
    /// The segment file.
    pub path: PathBuf,
    /// Its first offset.
    pub base: Offset,
    /// One past its last offset.
    pub end: Offset,
    /// The bytes of its records (the active segment's file may be longer: zeros preallocated
    /// for the appends to come).
    pub bytes: u64,
}

/// The append side, under one lock: records are framed into `staged` and written from there,
/// at once (`Never`, `Interval`) or by the group-commit syncer together with every other
/// appender's (`Always`).
struct Writer {
    /// Framed records not yet written to the active segment.
    staged: Vec<u8>,
    /// Where each staged frame starts in `staged`.
    starts: Vec<u64>,
    /// The offset of the first staged frame (the published end).
    staged_first: u64,
    /// One past the last offset assigned, staged or written.
    next: u64,
    /// Some staged frames are copies of another log's records (`append_records`,
    /// `append_batch`), which [`RecentFrames`] does not keep.
    staged_copies: bool,
    epochs: EpochHistory,
}

struct Inner {
    dir: PathBuf,
    config: LogConfig,
    /// Every segment, oldest first; the last is the active one. Readers clone the list.
    segments: RwLock<Vec<Arc<Segment>>>,
    writer: Mutex<Writer>,
    commit: GroupCommit,
    tail: TailSignal,
    recovery: Recovery,
    /// How much of the tail segment is known to be synced, for the next recovery.
    synced: SyncedMark,
    /// What changed without a sync under [`Durability::Never`], for the next
    /// [`sync`](LogStorage::sync) to make durable.
    unsynced: Mutex<Unsynced>,
    /// The latest written frames, served to readers of the tail without a file read.
    recent: Mutex<RecentFrames>,
    /// Whoever owns the log has called [`sync`](LogStorage::sync): under
    /// [`Durability::Never`] too, appends then preallocate (see [`LogConfig::preallocate`]).
    synced_by_owner: std::sync::atomic::AtomicBool,
    /// Sealed segments synced by `flush_and_sync`, for tests.
    #[cfg(test)]
    sealed_syncs: std::sync::atomic::AtomicUsize,
    /// For tests: how many segments a reset deletes before it fails as a crash would stop
    /// it (`usize::MAX`: all).
    #[cfg(test)]
    reset_deletions: std::sync::atomic::AtomicUsize,
    /// Keeps other processes out of the directory while the log lives (last: released after
    /// the segment files are closed).
    _lock: lock::DirLock,
}

#[cfg(test)]
impl Inner {
    /// Fails a reset where the test asked it to stop, as a crash would.
    fn crash_point(&self) -> Result<(), Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let left = self.reset_deletions.load(Relaxed);
        if left == 0 {
            return Err(Error::Poisoned {
                reason: "the test's crash".into(),
            });
        }
        self.reset_deletions.store(left.saturating_sub(1), Relaxed);
        Ok(())
    }
}

/// Changes a log under [`Durability::Never`] made without syncing, which an owner that syncs
/// it explicitly (a replica) needs durable at its next sync.
#[derive(Debug, Default)]
struct Unsynced {
    /// Sealed segments whose records may not be on disk.
    sealed: Vec<Arc<Segment>>,
    /// Segment files were created or deleted: the directory must be synced.
    directory: bool,
}

impl Unsynced {
    /// Forgets segments no longer in the log (deleted by retention, a cut or a reset), so
    /// their files are closed.
    fn prune(&mut self, live: &[Arc<Segment>]) {
        self.sealed
            .retain(|s| live.iter().any(|l| Arc::ptr_eq(l, s)));
    }
}

/// A durable, segmented, checksummed record log in a directory (Unix).
///
/// One writer at a time appends (appends from several threads are serialised, and with
/// [`Durability::Always`] share syncs); readers read concurrently and never block it.
///
/// # Examples
///
/// ```
/// use shardkit_replication::{Entry, Epoch, FileLog, LogConfig, LogStorage, Offset};
///
/// let dir = tempfile::tempdir().unwrap();
/// {
///     let log = FileLog::open(dir.path(), LogConfig::default())?;
///     let appended = log.append(Epoch::new(1), &[Entry::new(b"hello"), Entry::new(b"world")])?;
///     assert_eq!(appended.last(), Some(Offset::new(1)));
/// } // closed; with Durability::Always both records were synced before append returned
///
/// let log = FileLog::open(dir.path(), LogConfig::default())?;
/// assert_eq!(log.recovery().truncated_bytes, 0);
/// let records = log.read(Offset::new(0), 1 << 20)?;
/// assert_eq!(records[1].payload, b"world");
/// # Ok::<(), shardkit_replication::Error>(())
/// ```
pub struct FileLog {
    inner: Arc<Inner>,
    /// The `Interval` policy's background syncer.
    flusher: Option<Flusher>,
}

impl std::fmt::Debug for FileLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileLog")
            .field("dir", &self.inner.dir)
            .field("config", &self.inner.config)
            .field("start", &self.start_offset())
            .field("end", &self.end_offset())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Replaces `dir/name` with `bytes` atomically (a synced new file renamed over it, then the
/// directory synced), so a crash leaves the old contents or the new, never a mix.
pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), Error> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let write = || -> std::io::Result<()> {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(Error::io("write", &path))
}

/// Opens `dir/name` to read and write, creating it (empty) if it is missing; returns it with
/// its path.
pub(crate) fn open_or_create(dir: &Path, name: &str) -> Result<(std::fs::File, PathBuf), Error> {
    let path = dir.join(name);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(Error::io("open", &path))?;
    Ok((file, path))
}

/// The segment bases in `dir`, ascending.
fn segment_bases(dir: &Path) -> Result<Vec<u64>, Error> {
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(Error::io("list", dir))? {
        let entry = entry.map_err(Error::io("list", dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(base) = name
            .strip_suffix(".log")
            .and_then(|b| b.parse::<u64>().ok())
        {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

impl FileLog {
    /// Opens the log in `dir` (creating it if needed) and recovers it: a torn tail is cut (see
    /// [`recovery`](Self::recovery)), missing or stale indexes are rebuilt.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] (a missing permission, a full disk), [`Error::Corrupt`] if a record before
    /// the tail, or one the synced mark says was synced, is damaged or missing (it is never
    /// skipped), [`Error::InvalidConfig`], [`Error::InUse`] if another `FileLog`, in this process or
    /// another, has the log open (the log locks a file `lock` in `dir` while it lives; a file
    /// system without `fcntl` locks, such as NFS without its lock daemon, fails the open with
    /// [`Error::Io`]). A log leaked instead of dropped keeps `dir` until its process ends.
    pub fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<Self, Error> {
        config.validate()?;
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(Error::io("create directory", &dir))?;
        let dir_lock = lock::DirLock::take(&dir)?;
        let mut recovery = Recovery::default();
        let (synced, mark) = SyncedMark::open(&dir)?;
        let bases = segment_bases(&dir)?;
        let mut segments = Vec::with_capacity(bases.len().max(1));
        for (i, &base) in bases.iter().enumerate() {
            let seg = Segment::open(log_path(&dir, base), base)?;
            let len = seg.file_len()?;
            match bases.get(i + 1) {
                Some(&next_base) => recovery::recover_sealed(
                    &seg,
                    len,
                    next_base,
                    config.index_interval,
                    &mut recovery,
                )?,
                None => {
                    let synced = mark.map_or(0, |m| m.position_in(base));
                    recovery::recover_tail(
                        &seg,
                        len,
                        config.index_interval,
                        synced,
                        &mut recovery,
                    )?;
                }
            }
            segments.push(Arc::new(seg));
        }
        // What recovery found may still sit unsynced in the page cache (the last run may have
        // used `Never`, or died mid-append, with the machine up): make it durable before
        // counting it so, whatever this run's policy, since the log reports its end as durable
        // (a replica on it tells its leader so). Every segment: under `Never` the last run
        // sealed segments without syncing them.
        if !segments.is_empty() {
            for seg in &segments {
                seg.file.sync_data().map_err(Error::io("sync", &seg.path))?;
            }
            std::fs::File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(Error::io("sync directory", &dir))?;
        }
        if segments.is_empty() {
            // Its directory entry is synced at once: a sync under `Never` syncs only the
            // directories of segments made after it.
            segments.push(Arc::new(Segment::create(&dir, 0, true)?));
        }
        // Everything recovered is synced now.
        let tail = segments.last().expect("a log always has an active segment");
        synced.set(Mark {
            base: tail.base,
            position: tail.meta().len,
        })?;
        let end = segments.last().map_or(0, |s| s.meta().next);
        let mut epochs = EpochHistory::load(&dir)?;
        let before = epochs.clone();
        epochs.truncate_from(Offset::new(end));
        if epochs != before {
            epochs.store(&dir)?;
        }
        let inner = Arc::new(Inner {
            dir,
            config,
            segments: RwLock::new(segments),
            writer: Mutex::new(Writer {
                staged: Vec::new(),
                starts: Vec::new(),
                staged_first: end,
                next: end,
                staged_copies: false,
                epochs,
            }),
            commit: GroupCommit::new(end),
            tail: TailSignal::new(end),
            recovery,
            synced,
            unsynced: Mutex::new(Unsynced::default()),
            recent: Mutex::new(RecentFrames::new(config.recent_bytes)),
            synced_by_owner: std::sync::atomic::AtomicBool::new(false),
            #[cfg(test)]
            sealed_syncs: std::sync::atomic::AtomicUsize::new(0),
            #[cfg(test)]
            reset_deletions: std::sync::atomic::AtomicUsize::new(usize::MAX),
            _lock: dir_lock,
        });
        let flusher = match config.durability {
            Durability::Interval(every) => Some(spawn_flusher(Arc::downgrade(&inner), every)),
            _ => None,
        };
        Ok(Self { inner, flusher })
    }

    /// What recovery repaired when the log was opened.
    pub fn recovery(&self) -> Recovery {
        self.inner.recovery
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The segments, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.inner
            .segments()
            .iter()
            .map(|s| {
                let meta = s.meta();
                SegmentInfo {
                    path: s.path.clone(),
                    base: Offset::new(s.base),
                    end: Offset::new(meta.next),
                    bytes: meta.len,
                }
            })
            .collect()
    }

    /// Checks every record of every segment (checksum, dense offsets) and every index entry,
    /// returning each problem found with its file and position; empty when the log is sound.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if a segment cannot be read.
    pub fn verify(&self) -> Result<Vec<String>, Error> {
        let mut problems = Vec::new();
        let mut expected_base: Option<u64> = None;
        for seg in self.inner.segments() {
            if let Some(base) = expected_base.filter(|&b| b != seg.base) {
                problems.push(format!(
                    "{}: starts at offset {}, but the previous segment ends at {base}",
                    seg.path.display(),
                    seg.base
                ));
            }
            let meta = seg.meta().clone();
            let mut positions = std::collections::HashMap::new();
            let end = seg.scan(0, seg.base, meta.len, |pos, r| {
                positions.insert(r.offset.get(), pos);
                true
            })?;
            if let Some((pos, e)) = end.bad {
                problems.push(format!("{}: byte {pos}: {e}", seg.path.display()));
            }
            expected_base = Some(end.next);
            for (rel, pos) in &meta.index {
                let offset = seg.base + u64::from(*rel);
                if positions.get(&offset) != Some(&u64::from(*pos)) {
                    problems.push(format!("{}: index entry for offset {offset} points to byte {pos}, not to that record", seg.path.display()));
                }
            }
        }
        Ok(problems)
    }

    /// Deletes the oldest segments while the log holds more than `max_bytes`, or while their
    /// files are older than `max_age`; the active segment always stays. Returns how many
    /// segments were deleted.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if a file cannot be deleted.
    pub fn apply_retention(
        &self,
        max_bytes: Option<u64>,
        max_age: Option<Duration>,
    ) -> Result<usize, Error> {
        let _writer = lock(&self.inner.writer);
        let mut segments = self
            .inner
            .segments
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let mut total: u64 = segments.iter().map(|s| s.meta().len).sum();
        let cutoff = max_age.and_then(|age| SystemTime::now().checked_sub(age));
        let mut deleted = 0;
        while segments.len() > 1 {
            let oldest = &segments[0];
            let too_big = max_bytes.is_some_and(|m| total > m);
            let modified = oldest
                .file
                .metadata()
                .and_then(|m| m.modified())
                .map_err(Error::io("stat", &oldest.path))?;
            let too_old = cutoff.is_some_and(|c| modified < c);
            if !(too_big || too_old) {
                break;
            }
            total -= oldest.meta().len;
            oldest.delete()?;
            segments.remove(0);
            deleted += 1;
            lock(&self.inner.unsynced).directory = true;
        }
        Ok(deleted)
    }

    /// Appends `count` frames: `encode(i, offset, buf)` frames the `i`-th record at `offset`;
    /// `expected_first`, for replicated records, must be the log's end.
    fn append_frames(
        &self,
        count: u64,
        expected_first: Option<u64>,
        epoch_of: impl Fn(usize) -> Epoch,
        encode: impl Fn(usize, u64, &mut Vec<u8>) -> Result<(), FrameError>,
    ) -> Result<Appended, Error> {
        let inner = &*self.inner;
        let mut writer = lock(&inner.writer);
        // Under the writer lock: a truncation that fails poisons the log under it too.
        if let Some(reason) = inner.commit.failure() {
            return Err(Error::Poisoned { reason });
        }
        let first = writer.next;
        if count == 0 {
            return Ok(Appended::new(Offset::new(first), 0));
        }
        Error::end_after(first, count)?;
        if let Some(got) = expected_first.filter(|&got| got != first) {
            return Err(Error::NotContiguous {
                expected: first,
                got,
            });
        }
        let mut epochs = writer.epochs.clone();
        let mut new_epoch = false;
        for i in 0..count as usize {
            let epoch = epoch_of(i);
            epochs.check(epoch)?;
            new_epoch |= epochs.observe(epoch, Offset::new(first + i as u64));
        }
        let mark = (writer.staged.len(), writer.starts.len());
        writer.staged_copies |= expected_first.is_some();
        for i in 0..count as usize {
            let start = writer.staged.len() as u64;
            writer.starts.push(start);
            if let Err(e) = encode(i, first + i as u64, &mut writer.staged) {
                writer.staged.truncate(mark.0);
                writer.starts.truncate(mark.1);
                let FrameError::TooLarge { len } = e else {
                    unreachable!("framing only fails on size")
                };
                return Err(Error::RecordTooLarge { len });
            }
        }
        if new_epoch && let Err(e) = epochs.store(&inner.dir) {
            writer.staged.truncate(mark.0);
            writer.starts.truncate(mark.1);
            return Err(e);
        }
        writer.epochs = epochs;
        let end = first + count;
        writer.next = end;
        if inner.config.durability == Durability::Always && count > 0 {
            // Whoever syncs next writes these records together with everyone else's staged ones.
            let written = inner.commit.written_awaiting(end);
            drop(writer);
            inner
                .commit
                .wait_durable(written, || inner.flush_and_sync())
                .map_err(Error::from)?;
        } else {
            // Counts the records as written (see `flush_locked`).
            inner.flush_locked(&mut writer)?;
        }
        Ok(Appended::new(Offset::new(first), count))
    }

    /// Deletes the segments after `offset` and cuts the one holding it just before it.
    fn cut_files(&self, offset: u64) -> Result<(), Error> {
        let inner = &*self.inner;
        let mut segments = inner
            .segments
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let mut deleted = false;
        while segments.len() > 1 && segments.last().is_some_and(|s| s.base > offset) {
            if let Some(seg) = segments.pop() {
                seg.delete()?;
                deleted = true;
            }
        }
        let seg = Arc::clone(segments.last().expect("a log always has an active segment"));
        drop(segments);
        if deleted {
            // Before the cut below: a machine crash could otherwise bring the deleted
            // segments back behind a cut one (on file systems where syncing one file does not
            // make another's unlink durable), a gap that fails the next open.
            std::fs::File::open(&inner.dir)
                .and_then(|d| d.sync_all())
                .map_err(Error::io("sync directory", &inner.dir))?;
        }
        let mut cut = None;
        let (pos, first) = seg.seek(offset);
        let len = seg.meta().len;
        let end = seg.scan(pos, first, len, |at, r| {
            if r.offset.get() == offset {
                cut = Some(at);
                return false;
            }
            true
        })?;
        let cut = match (cut, end.bad) {
            (Some(at), _) => at,
            (None, None) => len,
            // Damage before `offset`: cutting at the end would leave the records meant to go.
            (None, Some((position, reason))) => {
                return Err(Error::Corrupt {
                    path: seg.path.clone(),
                    position,
                    reason,
                });
            }
        };
        // Below the cut, new appends will be unsynced: the mark must not vouch for them.
        inner.synced.lower_to(Mark {
            base: seg.base,
            position: cut,
        })?;
        seg.file
            .set_len(cut)
            .map_err(Error::io("truncate", &seg.path))?;
        seg.file.sync_all().map_err(Error::io("sync", &seg.path))?;
        let mut meta = seg.meta_mut();
        meta.len = cut;
        meta.allocated = cut;
        meta.next = offset;
        let rel = offset - seg.base;
        meta.index.retain(|&(r, _)| u64::from(r) < rel);
        meta.last_indexed = meta.index.last().map(|&(_, p)| u64::from(p));
        drop(meta);
        let _ = std::fs::remove_file(seg.path.with_extension("index"));
        Ok(())
    }
}

impl Inner {
    fn segments(&self) -> Vec<Arc<Segment>> {
        self.segments
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn active(&self) -> Arc<Segment> {
        let segments = self.segments.read().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(segments.last().expect("a log always has an active segment"))
    }
}

impl Drop for FileLog {
    fn drop(&mut self) {
        // Stopped first and waited for: a sync of its own holds the log, and the log (with its
        // directory lock) must be gone when this returns, not at the end of that sync.
        if let Some(flusher) = self.flusher.take() {
            drop(flusher.stop);
            let _ = flusher.thread.join();
        }
        let inner = &*self.inner;
        // `Interval` promises at most one interval of unsynced records; closing must not leave
        // more behind. Failures here cannot be reported; recovery handles what they leave.
        if inner.config.durability != Durability::Never {
            let _ = inner.commit.sync_pending(|| inner.flush_and_sync());
        }
        // A clean close leaves no zeros behind. (No segment at all only after a reset failed
        // part-way, which poisoned the log; reopening recovers it.)
        let active = inner
            .segments
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .last()
            .cloned();
        if let Some(active) = active {
            let _ = active.trim();
        }
    }
}

/// The `Interval` policy's background syncer, stopped by dropping `stop`.
struct Flusher {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

/// Starts the syncer: every `every`, it syncs what is pending, until told to stop (or the log
/// fails a sync).
fn spawn_flusher(inner: Weak<Inner>, every: Duration) -> Flusher {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        // Nothing is ever sent: the wait ends early only when the log drops the sender.
        while stopped.recv_timeout(every) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            let Some(inner) = inner.upgrade() else { return };
            if inner
                .commit
                .sync_pending(|| inner.flush_and_sync())
                .is_err()
            {
                return;
            }
        }
    });
    Flusher { stop, thread }
}

impl LogStorage for FileLog {
    fn append(&self, epoch: Epoch, entries: &[Entry<'_>]) -> Result<Appended, Error> {
        let ts = now_ms();
        self.append_frames(
            entries.len() as u64,
            None,
            |_| epoch,
            |i, offset, buf| {
                let e = &entries[i];
                let parts = FrameParts {
                    offset: Offset::new(offset),
                    epoch,
                    timestamp_ms: ts,
                    key: e.key,
                    payload: e.payload,
                };
                encode_parts(&parts, buf)
            },
        )
    }

    fn append_records(&self, records: &[Record]) -> Result<Appended, Error> {
        let Some(first) = records.first() else {
            return Ok(Appended::new(self.end_offset(), 0));
        };
        for (i, r) in records.iter().enumerate() {
            let Some(expected) = first.offset.get().checked_add(i as u64) else {
                return Err(Error::NotContiguous {
                    expected: u64::MAX,
                    got: r.offset.get(),
                });
            };
            if r.offset.get() != expected {
                return Err(Error::NotContiguous {
                    expected,
                    got: r.offset.get(),
                });
            }
        }
        self.append_frames(
            records.len() as u64,
            Some(first.offset.get()),
            |i| records[i].epoch,
            |i, _, buf| crate::encode(&records[i], buf),
        )
    }

    fn append_batch(&self, batch: &RecordBatch) -> Result<Appended, Error> {
        let Some(first) = batch.first_offset() else {
            return Ok(Appended::new(self.end_offset(), 0));
        };
        // The batch's frames were checked when it was built: they are stored as they are.
        self.append_frames(
            batch.len() as u64,
            Some(first.get()),
            |i| batch.record(i).epoch,
            |i, _, buf| {
                buf.extend_from_slice(batch.frame(i));
                Ok(())
            },
        )
    }

    fn read_batch(&self, from: Offset, max_bytes: usize) -> Result<RecordBatch, Error> {
        FileLog::read_batch(self, from, max_bytes)
    }

    fn read(&self, from: Offset, max_bytes: usize) -> Result<Vec<Record>, Error> {
        let mut out: Vec<Record> = Vec::new();
        let mut next = from;
        let mut bytes = 0;
        loop {
            let batch = self.read_batch(next, max_bytes.saturating_sub(bytes).max(1))?;
            let before = out.len();
            for r in batch.iter() {
                bytes += framed_len(r.key, r.payload);
                if bytes > max_bytes && !out.is_empty() {
                    return Ok(out);
                }
                out.push(r.to_record());
            }
            match out.last() {
                // Continue into the next segment while the limit allows.
                Some(last) if out.len() > before && bytes < max_bytes => {
                    next = Offset::new(last.offset.get() + 1)
                }
                _ => return Ok(out),
            }
            if next >= self.end_offset() {
                return Ok(out);
            }
        }
    }

    fn start_offset(&self) -> Offset {
        Offset::new(
            self.inner
                .segments
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .first()
                .map_or(0, |s| s.base),
        )
    }

    fn end_offset(&self) -> Offset {
        Offset::new(self.inner.tail.end())
    }

    fn wait_beyond(&self, offset: Offset, timeout: Duration) -> Offset {
        Offset::new(self.inner.tail.wait_beyond(offset.get(), timeout))
    }

    fn truncate_from(&self, offset: Offset) -> Result<(), Error> {
        let inner = &*self.inner;
        let mut writer = lock(&inner.writer);
        if let Some(reason) = inner.commit.failure() {
            return Err(Error::Poisoned { reason });
        }
        // Staged records are written first, so the cut below sees every assigned offset.
        inner.flush_locked(&mut writer)?;
        let end = inner.tail.end();
        let start = self.start_offset().get();
        if offset.get() < start {
            return Err(Error::OffsetOutOfRange {
                requested: offset.get(),
                start,
                end,
            });
        }
        if offset.get() >= end {
            return Ok(());
        }
        // Readers stop at the published end, so lower it before cutting files.
        inner.tail.publish(offset.get());
        lock(&inner.recent).clear();
        inner.commit.truncated(offset.get());
        // Past this point the files no longer match the writer's state until the cut is done:
        // a failure poisons the log, and reopening recovers a consistent one.
        let result = self.cut_files(offset.get()).and_then(|()| {
            writer.epochs.truncate_from(offset);
            writer.epochs.store(&inner.dir)
        });
        if let Err(e) = &result {
            inner.commit.poison(format!("truncation failed: {e}"));
        }
        writer.next = offset.get();
        writer.staged_first = offset.get();
        result
    }

    fn drop_before(&self, offset: Offset) -> Result<(), Error> {
        let inner = &*self.inner;
        let _writer = lock(&inner.writer);
        let end = inner.tail.end();
        if offset.get() > end {
            return Err(Error::OffsetOutOfRange {
                requested: offset.get(),
                start: self.start_offset().get(),
                end,
            });
        }
        let mut segments = inner
            .segments
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        while segments.len() > 1 && segments[0].meta().next <= offset.get() {
            segments[0].delete()?;
            segments.remove(0);
            lock(&inner.unsynced).directory = true;
        }
        Ok(())
    }

    fn reset(&self, start: Offset, epoch: Epoch) -> Result<(), Error> {
        let inner = &*self.inner;
        let mut writer = lock(&inner.writer);
        if let Some(reason) = inner.commit.failure() {
            return Err(Error::Poisoned { reason });
        }
        writer.staged.clear();
        writer.starts.clear();
        inner.tail.publish(self.start_offset().get());
        lock(&inner.recent).clear();
        inner.commit.restarted_at(start.get());
        // The segments newest first, then the history: a crash part-way leaves a shorter log
        // (which the follower re-fetches), never one with a gap, and with the history of what
        // is left (the history first would leave old records under the new one, which the
        // next open cuts to nothing past the log's end, forgetting their epochs).
        let history = EpochHistory::restarted_at(start, epoch);
        let restarted = Mark {
            base: start.get(),
            position: 0,
        };
        let result = inner.synced.set(restarted).and_then(|()| {
            let mut segments = inner
                .segments
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            while let Some(seg) = segments.pop() {
                #[cfg(test)]
                inner.crash_point()?;
                seg.delete()?;
            }
            history.store(&inner.dir)?;
            // The directory is synced whatever the policy: a crash must not bring the deleted
            // segments back next to the new history (a reset is rare: a snapshot install).
            segments.push(Arc::new(Segment::create(&inner.dir, start.get(), true)?));
            Ok(())
        });
        if let Err(e) = &result {
            inner.commit.poison(format!("reset failed: {e}"));
            return result;
        }
        // The old segments are gone, synced or not.
        lock(&inner.unsynced).sealed.clear();
        writer.epochs = history;
        writer.next = start.get();
        writer.staged_first = start.get();
        inner.tail.publish(start.get());
        Ok(())
    }

    fn sync(&self) -> Result<(), Error> {
        let inner = &*self.inner;
        inner
            .synced_by_owner
            .store(true, std::sync::atomic::Ordering::Relaxed);
        inner
            .commit
            .sync_pending(|| inner.flush_and_sync())
            .map_err(Error::from)
    }

    fn epochs(&self) -> Vec<(Epoch, Offset)> {
        lock(&self.inner.writer).epochs.entries().to_vec()
    }
}
