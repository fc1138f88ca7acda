//! The durable log under a leader-follower (master-slave) replication scheme: an append-only,
//! segmented, checksummed record log that survives crashes, with dense offsets, leader epochs,
//! group commit, tailing reads, truncation and retention.
//!
//! The leader appends every change to its log; followers copy it record for record
//! ([`LogStorage::append_records`]); consumers replay it from any offset ([`Tail`]). A record
//! acknowledged under [`Durability::Always`] is on disk before `append` returns, and survives a
//! crash at any moment: on reopening, [`FileLog::open`] cuts a torn or damaged tail (and says how
//! much, in [`FileLog::recovery`]) but refuses to skip damage in the middle of the log.
//!
//! ```
//! use std::time::Duration;
//! use shardkit_replication::{Entry, Epoch, FileLog, LogConfig, LogStorage, Offset, Tail};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let log = FileLog::open(dir.path(), LogConfig::default())?; // Durability::Always
//!
//! // Write: a batch is one write and, with concurrent appenders, one shared sync.
//! let batch = [Entry::keyed(b"user:1", b"created"), Entry::keyed(b"user:1", b"renamed")];
//! let appended = log.append(Epoch::new(1), &batch)?;
//! assert_eq!(appended.offsets().collect::<Vec<_>>(), [Offset::new(0), Offset::new(1)]);
//!
//! // Read: by offset, with a byte limit.
//! let records = log.read(Offset::new(1), 64 << 10)?;
//! assert_eq!(records[0].payload, b"renamed");
//!
//! // Tail: a consumer waits for what comes next.
//! let mut tail = Tail::new(&log, Offset::new(2));
//! std::thread::scope(|s| {
//!     s.spawn(|| log.append(Epoch::new(1), &[Entry::new(b"deleted")]));
//!     let next = tail.next_batch(Duration::from_secs(5))?;
//!     assert_eq!(next[0].offset, Offset::new(2));
//!     Ok::<(), shardkit_replication::Error>(())
//! })?;
//!
//! // Recover: reopening after a crash cuts a torn tail, never an acknowledged record.
//! drop(log);
//! let log = FileLog::open(dir.path(), LogConfig::default())?;
//! assert_eq!(log.end_offset(), Offset::new(3));
//! assert_eq!(log.recovery().truncated_bytes, 0);
//! # Ok::<(), shardkit_replication::Error>(())
//! ```
//!
//! # Guarantees
//!
//! - Offsets are dense and assigned by the log; epochs never decrease along it, and the
//!   leader-epoch history (each epoch's first offset) is kept for divergence checks.
//! - [`Durability::Always`]: an append returns only when its records are synced
//!   (`fdatasync`); concurrent appenders stage their records and share one write and one sync
//!   (group commit: the syncer wakes exactly the appenders its sync covered, and elects one of
//!   the rest to run the next sync). [`Durability::Interval`]:
//!   a machine crash loses at most the interval. [`Durability::Never`]: the page cache only; a
//!   process crash loses nothing acknowledged, a machine crash may.
//! - A failed sync poisons the log: later appends fail with [`Error::Poisoned`] until it is
//!   reopened, because a retried sync can report success for pages the kernel dropped. Under
//!   `Always` a failed write of a group of appenders' records poisons it too; under `Never` and
//!   `Interval` a failed write (a full disk) is an [`Error::Io`] for that append alone, and the
//!   log stays usable.
//! - Readers see records once they are written, which under `Always` can be just before they
//!   are synced: a machine crash can still take back what a reader saw but no appender was told
//!   was durable. (The replication layer exposes only committed records to consumers.)
//! - Under `Never`, sealed segments are not synced either: after a machine crash (not a process
//!   crash) the log may report [`Error::Corrupt`] on opening, not only lose its newest records.
//! - Every record is framed with its length and CRC-32C. Recovery cuts a torn or damaged tail;
//!   damage followed by valid records is [`Error::Corrupt`], with the file and byte position.
//! - One writer at a time (appends from several threads are serialised); readers never block
//!   it. The group-commit hand-off and the tail wake-up are model-checked with loom.
//!
//! # Costs
//!
//! Appends are one `write` per batch (plus the shared sync under `Always`); a read seeks with a
//! sparse index (one entry per 4 KiB of frames) and scans at most that far; opening scans only
//! the tail segment when the sealed segments' indexes are intact. A log that syncs writes zeros
//! 4 MiB ahead of its appends ([`LogConfig::preallocate`]), so all but one sync per 4 MiB write
//! data only, not the file's growth; a queued appender spins (yielding the processor) for up to two syncs' time
//! before it sleeps, and a syncer waits up to one sync's time for appenders about to stage
//! records, so that one full sync replaces two half-full ones.
//!
//! # Status
//!
//! The replication protocol on top of this log (ack levels, in-sync replicas, fencing,
//! failover) is the next part of the crate.
//!
//! # Frame format
//!
//! All integers little-endian:
//!
//! | field | size | meaning |
//! |---|---|---|
//! | length | 4 | bytes after this field and the checksum |
//! | crc | 4 | CRC-32C (Castagnoli) of those bytes |
//! | offset | 8 | the record's offset |
//! | epoch | 8 | the leader epoch that wrote it |
//! | timestamp | 8 | milliseconds since the Unix epoch, as the writer saw them |
//! | key length | 4 | `u32::MAX` for no key |
//! | key | key length | |
//! | payload | the rest | |
//!
//! The file log needs a Unix platform (positional reads and writes). The minimum supported Rust
//! version is 1.88. The crate has no `unsafe` code.
#![forbid(unsafe_code)]
#![cfg(unix)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod commit;
mod error;
mod frame;
mod log;
mod notify;
mod record;
pub mod replica;
mod sync;

pub use error::{Error, FrameError};
pub use frame::{
    FRAME_HEADER_LEN, Frames, MAX_FRAME_BODY, RecordRef, decode, decode_ref, encode, frames,
};
pub use log::memory::MemoryLog;
pub use log::storage::{Appended, Durability, Entry, LogStorage, Tail};
pub use log::{FileLog, LogConfig, RecordBatch, Recovery, SegmentInfo};
pub use record::{Epoch, Offset, Record};

/// The README's examples, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
