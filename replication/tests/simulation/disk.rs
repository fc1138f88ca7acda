//! Simulated disks and the user's state machine on top of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use shardkit_replication::replica::{Snapshot, StateMachine};
use shardkit_replication::{Error, LogStorage, MemoryLog, Offset};

use crate::support::{DiskHooks, HookedLog};

/// A disk: a log whose unsynced tail a machine crash takes back.
pub(crate) type SimDisk = Arc<HookedLog<SyncedEnd>>;

/// The end of what the disk holds for sure.
#[derive(Default)]
pub(crate) struct SyncedEnd(AtomicU64);

impl DiskHooks for SyncedEnd {
    fn sync(&self, log: &MemoryLog) -> Result<(), Error> {
        self.0.store(log.end_offset().get(), Ordering::SeqCst);
        Ok(())
    }
    fn truncated(&self, offset: Offset) {
        self.0.fetch_min(offset.get(), Ordering::SeqCst);
    }
    fn reset(&self, start: Offset) {
        self.0.store(start.get(), Ordering::SeqCst);
    }
}

/// A machine crash: the disk keeps what was synced (all of it when `lose_unsynced` is off).
pub(crate) fn crash(disk: &SimDisk, lose_unsynced: bool) {
    let synced = Offset::new(disk.hooks.0.load(Ordering::SeqCst));
    if lose_unsynced && synced < disk.log.end_offset() {
        disk.log.truncate_from(synced).unwrap();
    }
    disk.hooks
        .0
        .store(disk.log.end_offset().get(), Ordering::SeqCst);
}

/// The user's state: every committed data record, in order. It survives a crash (the user
/// keeps it on disk) but not a wiped disk.
#[derive(Debug, Default)]
pub(crate) struct UserState {
    pub(crate) applied_to: Offset,
    pub(crate) records: Vec<(Offset, Vec<u8>)>,
}

pub(crate) struct Machine(pub(crate) Arc<std::sync::Mutex<UserState>>);

impl StateMachine for Machine {
    fn snapshot(&mut self) -> Result<Snapshot, Error> {
        let s = self.0.lock().unwrap();
        let mut data = Vec::new();
        for (offset, payload) in &s.records {
            data.extend_from_slice(&offset.get().to_le_bytes());
            data.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            data.extend_from_slice(payload);
        }
        Ok(Snapshot {
            offset: s.applied_to,
            data,
        })
    }

    fn install(&mut self, snapshot: &Snapshot) -> Result<(), Error> {
        let mut records = Vec::new();
        let mut rest = snapshot.data.as_slice();
        while !rest.is_empty() {
            let offset = u64::from_le_bytes(rest[..8].try_into().unwrap());
            let len = u32::from_le_bytes(rest[8..12].try_into().unwrap()) as usize;
            records.push((Offset::new(offset), rest[12..12 + len].to_vec()));
            rest = &rest[12 + len..];
        }
        let mut s = self.0.lock().unwrap();
        s.records = records;
        s.applied_to = snapshot.offset;
        Ok(())
    }
}
