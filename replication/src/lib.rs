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
//! // Recover: reopening after a crash cuts a torn tail (see the guarantees for the one case
//! // where damage to an acknowledged record is taken for one).
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
//! - Every record is framed with its length and CRC-32C. A torn write can only hit bytes no
//!   sync covered (and the sector it shares with them), so the log keeps a **synced mark**: a
//!   small file (`synced`) saying how much of the tail segment was synced, rewritten after
//!   each sync without a sync of its own, and lowered (synced) before a truncation or a
//!   reset. Recovery reports damage to what the mark vouches for (up to its last whole
//!   512-byte sector), and damage in the middle of the log, as [`Error::Corrupt`] with the
//!   file and byte position; it cuts a torn tail after the mark and says so
//!   ([`FileLog::recovery`]). Past the mark, damage followed by valid records is taken for a
//!   torn write only if the damaged stretch holds a whole aligned 512-byte sector of zeros (a
//!   sector of the last, unsynced write never reached the disk while later ones did), and is
//!   cut with what follows it; otherwise it is corruption too. After a machine crash the mark
//!   may lag the last syncs (it reaches the disk with the page cache's writeback), so bit rot
//!   in records synced just before such a crash can still be cut: in the last record, or
//!   where the payload holds such a sector of zeros. Deleting `synced` makes recovery cut
//!   damage it would refuse, acknowledged records with it: a last resort. An older version
//!   of this crate ignores the mark: after one truncated or reset the log, delete `synced`
//!   before opening it with this one.
//! - One `FileLog` at a time: an open log holds an `fcntl` lock on a file `lock` in its
//!   directory (the file stays; the lock ends with the log or its process), and another
//!   process opening it gets [`Error::InUse`], as does a second `FileLog` on the directory in
//!   the same process (which the process's lock cannot tell apart; the crate keeps a list,
//!   by the lock file's device and inode, so another path to the directory is caught too).
//!   Versions of this crate before the lock take none.
//! - A failed sync of a segment being sealed poisons the log whatever the durability.
//! - One writer at a time (appends from several threads are serialised); readers never block
//!   it. The group-commit hand-off and the tail wake-up are model-checked with loom.
//!
//! # Costs
//!
//! Appends are one `write` per batch (plus the shared sync under `Always`, and after each sync
//! a 28-byte rewrite of the synced mark); a read seeks with a
//! sparse index (one entry per 4 KiB of frames) and scans at most that far; opening scans only
//! the tail segment when the sealed segments' indexes are intact. A log that syncs (under
//! `Never`, once its owner calls [`LogStorage::sync`]) writes zeros 4 MiB ahead of its appends
//! ([`LogConfig::preallocate`]), so all but one sync per 4 MiB write data only, not the file's
//! growth. The latest frames a log appended itself stay in memory
//! ([`LogConfig::recent_bytes`]) and serve reads of its tail. Replication moves records as
//! these frames ([`RecordBatch`]): a leader reads them, the wire carries them, and a follower
//! checks each checksum once and appends them unchanged. A queued appender spins (yielding the processor) for up to two syncs' time
//! before it sleeps, and a syncer waits up to one sync's time for appenders about to stage
//! records, so that one full sync replaces two half-full ones.
//!
//! # Replication
//!
//! [`replica`] builds leader-follower replication on this log. It is a **sans-IO** core:
//! [`replica::Replica`] (one replica) and [`replica::LeaseCoordinator`] (failure detection
//! and failover) take messages and time and return the messages to send, so the same code
//! runs in a deterministic simulator, in memory ([`replica::MemoryNetwork`]) and over TCP
//! ([`replica::TcpTransport`]); [`replica::Node`] runs a replica as a service with blocking
//! writes and reads. A node has a thread of its own for time and asynchronous submissions,
//! but work runs on the thread that brings it: the TCP transport's reader threads handle
//! what they receive (a leader answers its writers from the thread that read the
//! acknowledgement), a blocking call's caller runs its own call, and syncs run outside the
//! replica's lock, so the replica takes acknowledgements while its disk works.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use shardkit_replication::MemoryLog;
//! use shardkit_replication::replica::*;
//!
//! let net = MemoryNetwork::new();
//! let ids = [NodeId::new(1), NodeId::new(2), NodeId::new(3)];
//! let coordinator = NodeId::new(0);
//! let _c = CoordinatorNode::start(
//!     coordinator,
//!     LeaseCoordinator::new(ids, Duration::from_millis(200)),
//!     net.join(coordinator),
//! );
//! let nodes = ids.map(|id| {
//!     let mut config = ReplicaConfig::new(id, ids);
//!     config.coordinator = Some(coordinator);
//!     config.bootstrap = true; // a new replica set
//!     let store = Box::new(MemoryReplicaStore::new());
//!     let replica = Replica::open(config, Arc::new(MemoryLog::new()), store).unwrap();
//!     Node::start(replica, net.join(id))
//! });
//!
//! // The coordinator elects a leader; writes go to it (others answer `NotLeader`), and a
//! // client retries elsewhere, with the same producer sequence, until one acknowledges.
//! let write_somewhere = |w: Write| loop {
//!     if let Some(done) = nodes.iter().find_map(|n| n.write(w.clone()).ok()) {
//!         break done;
//!     }
//!     std::thread::sleep(Duration::from_millis(20));
//! };
//! let debit = Write::new(b"debit 10".to_vec(), AckLevel::Quorum).idempotent(7, 0);
//! let written = write_somewhere(debit.clone());
//! // A retry (after a timeout, say) is not applied twice.
//! let again = write_somewhere(debit);
//! assert!(again.duplicate);
//! assert_eq!(again.offset, written.offset);
//!
//! // Read your write on any replica: wait until it has committed the offset.
//! for n in &nodes {
//!     assert!(n.wait_for_commit(written.offset, Duration::from_secs(5)));
//!     assert_eq!(n.read_committed(written.offset, 1 << 20)?[0].payload, b"debit 10");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Roles and epochs
//!
//! One replica leads; the others follow it by **pulling** records from their log's end
//! (a fetch is also the follower's acknowledgement, and a follower that fell behind just
//! fetches from further back). Every leadership has an **epoch**, stamped on its records and
//! kept in the log's epoch history. A failover first asks the replicas to **promise** a new
//! epoch (persisted in a [`replica::ReplicaStore`] before answering): a replica that promised
//! ignores every older leader, which **fences off** a paused or partitioned old leader. A
//! replica promises its current epoch again only in the same run and while it knows no leader
//! of it, so no epoch ever gets two leaders, even from a coordinator that restarted. The
//! coordinator then promotes the most up-to-date replica (by last epoch, then log end) of the
//! first majority to promise. The new leader appends an epoch **marker**; a deposed leader
//! that comes back, or any follower whose log diverged, learns where its log parts from the
//! leader's (the end of its last common epoch, Kafka's KIP-101) and **truncates its divergent
//! suffix** before copying the rest. A follower behind the leader's retained log installs a
//! **snapshot** of the user's state ([`replica::StateMachine`]) and continues from there; the
//! state travels in parts of at most `fetch_max_bytes` (fewer if the transport's packets are
//! smaller, [`replica::Replica::limit_packets`]), so a snapshot of any size fits them.
//!
//! ## Ack levels and what they guarantee
//!
//! Each write picks its [`replica::AckLevel`]; an acknowledgement is never given at a lower
//! level than asked: a write that cannot reach its level in time fails with
//! [`replica::WriteError::Timeout`], its fate **unknown** (unlike MySQL semi-sync, which falls
//! back to asynchronous replication), and quorum or all writes are **refused** outright while
//! fewer than `min_in_sync_replicas` replicas are in sync (a new leader gives each follower
//! one `max_lag_time` to show up first).
//!
//! | level | acknowledged when | after the leader fails |
//! |---|---|---|
//! | `None` | appended to the leader's log, before any sync | can be lost: a failover may pick a replica that lacks it (the old leader cuts it when it rejoins), and a machine crash of the leader loses it |
//! | `Leader` | synced to the leader's disk | survives the leader crashing and coming back before a failover; a failover can lose it |
//! | `Quorum` | held by a majority of the replica set | **never lost**: present on every future leader |
//! | `All` | as `Quorum`, and held by every in-sync follower | never lost; every in-sync follower holds it, and serves it as committed once its next fetch tells it the commit offset ([`wait_for_commit`](replica::Node::wait_for_commit)) |
//!
//! A follower counts a record as held as its [`replica::FollowerAck`] says (PostgreSQL's
//! `synchronous_commit`): `Flushed` (`on`) once synced to its disk, so quorum writes survive
//! any crashes of any minority; `Received` (`remote_write`) once written to its log, so they
//! survive process crashes, but machines of a majority crashing at once can lose them.
//!
//! The **commit offset** (high watermark) is the end of the prefix held by a majority: the
//! leader advances it by counting only its own epoch's records (Raft's rule), followers learn
//! it with each fetch answer, and committed reads ([`replica::Replica::read_committed`],
//! [`replica::Node::subscribe`]) never show a record a failover could take back (MySQL's
//! `AFTER_SYNC`). Offsets seen by consumers of committed data only move forward.
//!
//! ## In-sync replicas
//!
//! A follower is in sync while it is at most `max_lag_records` behind and was last caught up
//! within `max_lag_time`; it leaves the set when it falls behind and rejoins when it catches
//! up. [`replica::ReplicaStatus`] reports each follower's lag in records, bytes and time.
//!
//! ## Idempotent producers
//!
//! A write with a producer id and sequence number ([`replica::Write::idempotent`]) is applied
//! once: every replica tracks each producer's latest sequence, so a retry after a timeout or a
//! failover is acknowledged with the original's offset instead of being written again. The
//! table survives restarts and compaction: when records are dropped (compaction, or a
//! snapshot installed on a follower), each producer's last write before the cut is stored
//! with the cut's offset ([`replica::StoredProducers`]), before the records go, and a
//! restart counts only the log's records from that offset on. So after a crash between the
//! two steps, the older records left in the log are not counted over the stored writes.
//!
//! ## What can be lost, and what cannot
//!
//! - Nothing acknowledged at `Quorum` or `All` is lost while a majority of replicas keeps its
//!   disks, whatever else crashes, pauses, partitions, duplicates or reorders (with followers
//!   acking `Received`, while no majority of machines crashes at once).
//! - A replica that lost its disk (or is new) rejoins without `bootstrap`: it may not promise
//!   an epoch until it has copied everything committed, so it cannot tip a failover to a
//!   replica that lacks acknowledged writes; and until then it follows only the leader the
//!   coordinator names in answer to one of its own heartbeats, so a message sent to it before
//!   it lost its disk cannot make it acknowledge an old leader's records (its forgotten
//!   promises may have deposed that leader). Losing the disks of a majority at once loses data,
//!   in this design as in any.
//! - The coordinator is single: while it is down no failover happens (nothing is lost; writes
//!   stop if the leader dies too). [`replica::LeaseCoordinator`] keeps its state in memory.
//!
//! These claims are checked by a deterministic simulation (`tests/simulation/`: thousands
//! of seeded runs with loss, delay, duplication, reordering, partitions, paused leaders,
//! crashes losing unsynced data, wiped disks, compaction and back-to-back failovers; set
//! `SHARDKIT_SIM_SEEDS` and `SHARDKIT_SIM_SEED_START` to run more), by node tests over memory
//! and TCP, and by a test that kills a leader process with SIGKILL mid-stream.
//!
//! ## Over the network
//!
//! [`replica::TcpTransport`] checks every packet (its length, checksum, version and fields)
//! before it acts on it, and drops the connection on the first bad one (a packet from an id
//! that is not a peer is skipped); [`replica::TcpStats`] counts both. Its limits
//! ([`replica::TcpConfig`]) bound what a peer can cost a node: the largest packet
//! (`max_packet`; a [`replica::Node`] fits its fetch answers and snapshot parts to it, and
//! refuses a record that could not travel with [`replica::WriteError::TooLarge`]), the
//! connections served at once (`max_connections`), and how long a connection may stay silent
//! (`idle_timeout`; peers' links send keepalives). A client's connection that has sent a
//! request has no idle timeout: TCP keepalive probes close it once its host is gone, but a
//! live host answers them. Clients may hold every place but two per peer, which are kept
//! for peers' links, so clients keeping connections open cannot stop replication; but
//! without a key anyone can pose as a peer, and so hold every place.
//!
//! Without a key, the transport trusts the network: anyone who can connect can pose as a
//! member. With one ([`replica::AuthKey`], `TcpConfig::auth`, and for clients
//! `TcpConfig::client_auth`), every packet after the node's opening challenge carries an
//! HMAC-SHA256 tag bound to its connection, its direction and its place on it, so a sender
//! without the key is not heard, nothing over 64 KiB is buffered for it, a recorded packet
//! or answer sent again is refused, and a peer's link is heard only by the node it means. A
//! tag does not say which member sent a packet, and nothing is encrypted: use a private
//! network or a tunnel for that. The CLI's `log` commands take the keys with
//! `--auth-key-file` and `--client-auth-key-file`.
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

mod batch;
mod commit;
mod error;
mod frame;
mod log;
mod notify;
mod pump;
mod record;
pub mod replica;
mod sync;

pub use batch::RecordBatch;
pub use error::{Error, FrameError};
pub use frame::{
    FRAME_HEADER_LEN, Frames, MAX_FRAME_BODY, RecordRef, decode, decode_ref, encode, frames,
};
pub use log::memory::MemoryLog;
pub use log::storage::{Appended, Durability, Entry, LogStorage, Tail};
pub use log::{FileLog, LogConfig, Recovery, SegmentInfo};
pub use record::{Epoch, Offset, Record};

/// The README's examples, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
