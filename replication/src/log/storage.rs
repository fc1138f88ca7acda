//! The storage contract every log implements, and its configuration types.

use std::time::Duration;

use crate::batch::RecordBatch;
use crate::error::Error;
use crate::record::{Epoch, Offset, Record};

/// When an append is durable, and so when it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// Appends return once the records are in the operating system's page cache: fastest, and
    /// a machine crash (not a process crash) loses recent records.
    Never,
    /// A background thread syncs every interval: a machine crash loses at most that much.
    Interval(Duration),
    /// Appends return only once their records are synced to disk. Concurrent appenders share
    /// one sync (group commit).
    Always,
}

/// One record to append: the log assigns its offset, epoch and timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// An optional key.
    pub key: Option<&'a [u8]>,
    /// The payload.
    pub payload: &'a [u8],
}

impl<'a> Entry<'a> {
    /// An entry without a key.
    pub fn new(payload: &'a [u8]) -> Self {
        Self { key: None, payload }
    }

    /// An entry with a key.
    pub fn keyed(key: &'a [u8], payload: &'a [u8]) -> Self {
        Self {
            key: Some(key),
            payload,
        }
    }
}

/// The offsets an append assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    first: Offset,
    count: u64,
}

impl Appended {
    pub(crate) fn new(first: Offset, count: u64) -> Self {
        Self { first, count }
    }

    /// The first record's offset (the log's end before the append).
    pub fn first(&self) -> Offset {
        self.first
    }

    /// The last record's offset, or `None` for an empty append.
    pub fn last(&self) -> Option<Offset> {
        self.count
            .checked_sub(1)
            .map(|n| Offset::new(self.first.get() + n))
    }

    /// How many records were appended.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The offsets, in order.
    pub fn offsets(&self) -> impl DoubleEndedIterator<Item = Offset> {
        (self.first.get()..self.first.get() + self.count).map(Offset::new)
    }
}

/// An append-only log of records with dense offsets: the contract of [`FileLog`](crate::FileLog)
/// and [`MemoryLog`](crate::MemoryLog), and of any storage a user plugs into replication.
///
/// Contract: offsets are dense and start at [`start_offset`](Self::start_offset); an append
/// that returned `Ok` is readable at once and survives a process crash (and, by its
/// [`Durability`], a machine crash); epochs never decrease along the log; readers never block
/// writers.
pub trait LogStorage: Send + Sync {
    /// Appends entries written in `epoch`, assigning consecutive offsets from the log's end.
    ///
    /// # Errors
    ///
    /// [`Error::StaleEpoch`] if `epoch` is older than the log's latest, I/O errors, and
    /// [`Error::Poisoned`] after a failed sync.
    fn append(&self, epoch: Epoch, entries: &[Entry<'_>]) -> Result<Appended, Error>;

    /// Appends records that already carry offsets, epochs and timestamps (a follower copying
    /// its leader): the first must be the log's end, the rest consecutive.
    ///
    /// # Errors
    ///
    /// [`Error::NotContiguous`], [`Error::StaleEpoch`], and as [`append`](Self::append).
    fn append_records(&self, records: &[Record]) -> Result<Appended, Error>;

    /// Records from `from` on, at least one if any exists, stopping before `max_bytes` of
    /// framed records would be exceeded.
    ///
    /// # Errors
    ///
    /// [`Error::OffsetOutOfRange`] if `from` is below the start or beyond the end, and
    /// [`Error::Corrupt`] for a damaged record.
    fn read(&self, from: Offset, max_bytes: usize) -> Result<Vec<Record>, Error>;

    /// [`append_records`](Self::append_records) for records kept as their frames, as a
    /// follower receives them. A log that stores frames writes them as they are, without
    /// framing the records again; the default copies the records out and appends those.
    ///
    /// # Errors
    ///
    /// As [`append_records`](Self::append_records).
    fn append_batch(&self, batch: &RecordBatch) -> Result<Appended, Error> {
        self.append_records(&batch.to_records())
    }

    /// [`read`](Self::read) as frames, ready to send: at least one record if any exists
    /// from `from` on, within `max_bytes` of frames (a log may return fewer, at a segment's
    /// end). The default frames what [`read`](Self::read) returns.
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read).
    fn read_batch(&self, from: Offset, max_bytes: usize) -> Result<RecordBatch, Error> {
        let records = self.read(from, max_bytes)?;
        RecordBatch::from_records(&records).map_err(|e| match e {
            crate::FrameError::TooLarge { len } => Error::RecordTooLarge { len },
            // The only other failure: `read` broke its contract of consecutive offsets.
            _ => crate::batch::first_gap(&records),
        })
    }

    /// The first offset the log holds.
    fn start_offset(&self) -> Offset;

    /// One past the last offset: where the next append goes.
    fn end_offset(&self) -> Offset;

    /// Waits until the log's end is beyond `offset` or `timeout` passes; returns the end.
    fn wait_beyond(&self, offset: Offset, timeout: Duration) -> Offset;

    /// Drops every record at or after `offset` (a follower discarding a divergent suffix).
    ///
    /// # Errors
    ///
    /// [`Error::OffsetOutOfRange`] if `offset` is below the start, and I/O errors.
    fn truncate_from(&self, offset: Offset) -> Result<(), Error>;

    /// Drops records before `offset` (retention). A file log drops whole segments, so records
    /// just below `offset` may remain readable until their segment is wholly older.
    ///
    /// # Errors
    ///
    /// [`Error::OffsetOutOfRange`] if `offset` is beyond the end, and I/O errors.
    fn drop_before(&self, offset: Offset) -> Result<(), Error>;

    /// Drops every record and restarts the log, empty, at `start` (a follower that installed
    /// a snapshot of everything before `start`). `epoch` is the epoch of the record just
    /// before `start`, kept in the epoch history for the next divergence check.
    ///
    /// # Errors
    ///
    /// I/O errors; a failure part-way leaves a log that opens empty or as it was, never with a
    /// gap.
    fn reset(&self, start: Offset, epoch: Epoch) -> Result<(), Error>;

    /// Makes every appended record durable now, whatever the durability policy.
    ///
    /// # Errors
    ///
    /// I/O errors, and [`Error::Poisoned`].
    fn sync(&self) -> Result<(), Error>;

    /// The leader-epoch history: each epoch with the first offset it wrote, ascending.
    fn epochs(&self) -> Vec<(Epoch, Offset)>;
}

/// Reads a log from an offset on, batch by batch, waiting for new records at the end: a
/// follower's or consumer's view of the log.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use shardkit_replication::{Entry, Epoch, LogStorage, MemoryLog, Offset, Tail};
///
/// let log = MemoryLog::new();
/// log.append(Epoch::new(1), &[Entry::new(b"a"), Entry::new(b"b")])?;
/// let mut tail = Tail::new(&log, Offset::new(0));
/// assert_eq!(tail.next_batch(Duration::from_millis(10))?.len(), 2);
/// assert!(tail.next_batch(Duration::from_millis(10))?.is_empty()); // nothing new yet
/// # Ok::<(), shardkit_replication::Error>(())
/// ```
#[derive(Debug)]
pub struct Tail<'a, L: ?Sized> {
    log: &'a L,
    next: Offset,
    max_bytes: usize,
}

impl<'a, L: LogStorage + ?Sized> Tail<'a, L> {
    /// Tails `log` from `from`, 1 MiB per batch.
    pub fn new(log: &'a L, from: Offset) -> Self {
        Self {
            log,
            next: from,
            max_bytes: 1 << 20,
        }
    }

    /// The next offset this tail will return.
    pub fn position(&self) -> Offset {
        self.next
    }

    /// The next records, waiting up to `timeout` for some to arrive; empty on timeout.
    ///
    /// # Errors
    ///
    /// As [`LogStorage::read`] (for example when retention dropped the position).
    pub fn next_batch(&mut self, timeout: Duration) -> Result<Vec<Record>, Error> {
        if self.log.end_offset() <= self.next
            && self.log.wait_beyond(self.next, timeout) <= self.next
        {
            return Ok(Vec::new());
        }
        let batch = self.log.read(self.next, self.max_bytes)?;
        if let Some(last) = batch.last() {
            self.next = Offset::new(last.offset.get() + 1);
        }
        Ok(batch)
    }
}

/// A shared log is a log: a node can keep a handle for reads while its replica appends.
impl<T: LogStorage + ?Sized> LogStorage for std::sync::Arc<T> {
    fn append(&self, epoch: Epoch, entries: &[Entry<'_>]) -> Result<Appended, Error> {
        (**self).append(epoch, entries)
    }
    fn append_records(&self, records: &[Record]) -> Result<Appended, Error> {
        (**self).append_records(records)
    }
    fn read(&self, from: Offset, max_bytes: usize) -> Result<Vec<Record>, Error> {
        (**self).read(from, max_bytes)
    }
    fn append_batch(&self, batch: &RecordBatch) -> Result<Appended, Error> {
        (**self).append_batch(batch)
    }
    fn read_batch(&self, from: Offset, max_bytes: usize) -> Result<RecordBatch, Error> {
        (**self).read_batch(from, max_bytes)
    }
    fn start_offset(&self) -> Offset {
        (**self).start_offset()
    }
    fn end_offset(&self) -> Offset {
        (**self).end_offset()
    }
    fn wait_beyond(&self, offset: Offset, timeout: Duration) -> Offset {
        (**self).wait_beyond(offset, timeout)
    }
    fn truncate_from(&self, offset: Offset) -> Result<(), Error> {
        (**self).truncate_from(offset)
    }
    fn drop_before(&self, offset: Offset) -> Result<(), Error> {
        (**self).drop_before(offset)
    }
    fn reset(&self, start: Offset, epoch: Epoch) -> Result<(), Error> {
        (**self).reset(start, epoch)
    }
    fn sync(&self) -> Result<(), Error> {
        (**self).sync()
    }
    fn epochs(&self) -> Vec<(Epoch, Offset)> {
        (**self).epochs()
    }
}
