//! A memory log with hooks on the calls that decide what is on its disk: the tests model
//! disks with it (a crash that loses the unsynced tail, a sync or an append that fails).

use std::time::Duration;

use shardkit_replication::{Appended, Entry, Epoch, Error, LogStorage, MemoryLog, Offset, Record};

/// What a modelled disk does; a memory log's own sync does nothing.
pub(crate) trait DiskHooks: Send + Sync {
    /// The sync of `log`.
    fn sync(&self, log: &MemoryLog) -> Result<(), Error>;
    /// Before a leader's append: an error fails it.
    fn append(&self) -> Result<(), Error> {
        Ok(())
    }
    /// After `log` was cut back to `offset`.
    fn truncated(&self, _offset: Offset) {}
    /// After `log` was reset to start at `start`.
    fn reset(&self, _start: Offset) {}
}

/// A memory log on a modelled disk.
#[derive(Default)]
pub(crate) struct HookedLog<H> {
    pub(crate) log: MemoryLog,
    pub(crate) hooks: H,
}

impl<H: DiskHooks> LogStorage for HookedLog<H> {
    fn append(&self, epoch: Epoch, entries: &[Entry<'_>]) -> Result<Appended, Error> {
        self.hooks.append()?;
        self.log.append(epoch, entries)
    }
    fn append_records(&self, records: &[Record]) -> Result<Appended, Error> {
        self.log.append_records(records)
    }
    fn read(&self, from: Offset, max_bytes: usize) -> Result<Vec<Record>, Error> {
        self.log.read(from, max_bytes)
    }
    fn start_offset(&self) -> Offset {
        self.log.start_offset()
    }
    fn end_offset(&self) -> Offset {
        self.log.end_offset()
    }
    fn wait_beyond(&self, offset: Offset, timeout: Duration) -> Offset {
        self.log.wait_beyond(offset, timeout)
    }
    fn truncate_from(&self, offset: Offset) -> Result<(), Error> {
        self.log.truncate_from(offset)?;
        self.hooks.truncated(offset);
        Ok(())
    }
    fn drop_before(&self, offset: Offset) -> Result<(), Error> {
        self.log.drop_before(offset)
    }
    fn reset(&self, start: Offset, epoch: Epoch) -> Result<(), Error> {
        self.log.reset(start, epoch)?;
        self.hooks.reset(start);
        Ok(())
    }
    fn sync(&self) -> Result<(), Error> {
        self.hooks.sync(&self.log)
    }
    fn epochs(&self) -> Vec<(Epoch, Offset)> {
        self.log.epochs()
    }
}
