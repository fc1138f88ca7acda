//! The foundation of a leader-follower (master-slave) replication log: typed offsets and
//! epochs, records, and the checksummed frame every record is stored and shipped in.
//!
//! A replicated log is an append-only sequence of records, each with a dense offset assigned by
//! the log and the leader epoch that wrote it. This crate frames each record with its length and
//! a CRC-32C, so a reader can tell a torn tail (the frame is incomplete: the writer crashed
//! mid-append) from corruption (the frame is complete but its checksum is wrong: bit rot or a
//! bad sector), which recovery must treat differently.
//!
//! ```
//! use shardkit_replication::{Epoch, FrameError, Offset, Record, decode, encode};
//!
//! let record = Record::new(Offset::new(7), Epoch::new(2), 1_700_000_000_000, b"hello".to_vec())
//!     .with_key(b"user:1".to_vec());
//! let mut buf = Vec::new();
//! encode(&record, &mut buf)?;
//!
//! let (decoded, used) = decode(&buf)?;
//! assert_eq!(decoded, record);
//! assert_eq!(used, buf.len());
//!
//! // A torn write is reported as incomplete, a flipped bit as corrupt.
//! assert!(matches!(decode(&buf[..buf.len() - 1]), Err(FrameError::Incomplete { .. })));
//! buf[20] ^= 0x01;
//! assert!(matches!(decode(&buf), Err(FrameError::ChecksumMismatch { .. })));
//! # Ok::<(), FrameError>(())
//! ```
//!
//! # Status
//!
//! This release ships the record model and its frame format. The segmented file log with group
//! commit and recovery, and the replication protocol (ack levels, in-sync set, epochs and
//! fencing, failover), are being built on them.
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
//! The minimum supported Rust version is 1.88. The crate has no `unsafe` code.
#![forbid(unsafe_code)]
#![cfg(unix)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod commit;
mod error;
mod frame;
mod log;
mod notify;
mod record;
mod sync;

pub use error::{Error, FrameError};
pub use frame::{FRAME_HEADER_LEN, Frames, MAX_FRAME_BODY, decode, encode, frames};
pub use log::memory::MemoryLog;
pub use log::storage::{Appended, Durability, Entry, LogStorage, Tail};
pub use log::{FileLog, LogConfig, Recovery, SegmentInfo};
pub use record::{Epoch, Offset, Record};

/// The README's examples, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
