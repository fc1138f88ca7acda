//! An in-memory log: for tests, and for caching a log's tail.

use std::sync::RwLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::Error;
use crate::log::epochs::EpochHistory;
use crate::log::storage::{Appended, Entry, LogStorage};
use crate::notify::Tail as TailSignal;
use crate::record::{Epoch, Offset, Record};

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The framed size of a record with this key and payload, for byte limits.
pub(crate) fn framed_len(key: Option<&[u8]>, payload: &[u8]) -> usize {
    crate::FRAME_HEADER_LEN + 28 + key.map_or(0, <[u8]>::len) + payload.len()
}

#[derive(Debug, Default)]
struct State {
    start: u64,
    records: std::collections::VecDeque<Record>,
    epochs: EpochHistory,
}

/// A [`LogStorage`] in memory: the same contract as [`FileLog`](crate::FileLog), nothing
/// survives the process.
///
/// # Examples
///
/// ```
/// use shardkit_replication::{Entry, Epoch, LogStorage, MemoryLog, Offset};
///
/// let log = MemoryLog::new();
/// let appended = log.append(Epoch::new(1), &[Entry::new(b"x"), Entry::keyed(b"k", b"y")])?;
/// assert_eq!(appended.first(), Offset::new(0));
/// assert_eq!(log.read(Offset::new(1), 1024)?[0].payload, b"y");
/// # Ok::<(), shardkit_replication::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct MemoryLog {
    state: RwLock<State>,
    tail: TailSignal,
}

impl MemoryLog {
    /// An empty log starting at offset 0.
    pub fn new() -> Self {
        Self::default()
    }

    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl LogStorage for MemoryLog {
    fn append(&self, epoch: Epoch, entries: &[Entry<'_>]) -> Result<Appended, Error> {
        let mut s = self.write_state();
        let first = s.start + s.records.len() as u64;
        Error::end_after(first, entries.len() as u64)?;
        s.epochs.check(epoch)?;
        s.epochs.observe(epoch, Offset::new(first));
        let ts = now_ms();
        for (i, e) in entries.iter().enumerate() {
            let mut r = Record::new(Offset::new(first + i as u64), epoch, ts, e.payload.to_vec());
            r.key = e.key.map(<[u8]>::to_vec);
            s.records.push_back(r);
        }
        let end = s.start + s.records.len() as u64;
        drop(s);
        self.tail.publish(end);
        Ok(Appended::new(Offset::new(first), entries.len() as u64))
    }

    fn append_records(&self, records: &[Record]) -> Result<Appended, Error> {
        let mut s = self.write_state();
        let first = s.start + s.records.len() as u64;
        Error::end_after(first, records.len() as u64)?;
        for (i, r) in records.iter().enumerate() {
            if r.offset.get() != first + i as u64 {
                return Err(Error::NotContiguous {
                    expected: first + i as u64,
                    got: r.offset.get(),
                });
            }
        }
        let mut epochs = s.epochs.clone();
        for r in records {
            epochs.check(r.epoch)?;
            epochs.observe(r.epoch, r.offset);
        }
        s.epochs = epochs;
        s.records.extend(records.iter().cloned());
        let end = s.start + s.records.len() as u64;
        drop(s);
        self.tail.publish(end);
        Ok(Appended::new(Offset::new(first), records.len() as u64))
    }

    fn read(&self, from: Offset, max_bytes: usize) -> Result<Vec<Record>, Error> {
        let s = self.read_state();
        let end = s.start + s.records.len() as u64;
        if from.get() < s.start || from.get() > end {
            return Err(Error::OffsetOutOfRange {
                requested: from.get(),
                start: s.start,
                end,
            });
        }
        let mut out = Vec::new();
        let mut bytes = 0;
        for r in s.records.iter().skip((from.get() - s.start) as usize) {
            bytes += framed_len(r.key.as_deref(), &r.payload);
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            out.push(r.clone());
        }
        Ok(out)
    }

    fn start_offset(&self) -> Offset {
        Offset::new(self.read_state().start)
    }

    fn end_offset(&self) -> Offset {
        let s = self.read_state();
        Offset::new(s.start + s.records.len() as u64)
    }

    fn wait_beyond(&self, offset: Offset, timeout: Duration) -> Offset {
        Offset::new(self.tail.wait_beyond(offset.get(), timeout))
    }

    fn truncate_from(&self, offset: Offset) -> Result<(), Error> {
        let mut s = self.write_state();
        let end = s.start + s.records.len() as u64;
        if offset.get() < s.start {
            return Err(Error::OffsetOutOfRange {
                requested: offset.get(),
                start: s.start,
                end,
            });
        }
        let keep = (offset.get().min(end) - s.start) as usize;
        s.records.truncate(keep);
        s.epochs.truncate_from(offset);
        let end = s.start + s.records.len() as u64;
        drop(s);
        self.tail.publish(end);
        Ok(())
    }

    fn drop_before(&self, offset: Offset) -> Result<(), Error> {
        let mut s = self.write_state();
        let end = s.start + s.records.len() as u64;
        if offset.get() > end {
            return Err(Error::OffsetOutOfRange {
                requested: offset.get(),
                start: s.start,
                end,
            });
        }
        while s.start < offset.get() {
            s.records.pop_front();
            s.start += 1;
        }
        Ok(())
    }

    fn reset(&self, start: Offset, epoch: Epoch) -> Result<(), Error> {
        let mut s = self.write_state();
        s.records.clear();
        s.start = start.get();
        s.epochs = EpochHistory::restarted_at(start, epoch);
        drop(s);
        self.tail.publish(start.get());
        Ok(())
    }

    fn sync(&self) -> Result<(), Error> {
        Ok(())
    }

    fn epochs(&self) -> Vec<(Epoch, Offset)> {
        self.read_state().epochs.entries().to_vec()
    }
}
