//! Each ack level completes a write when, and only when, its level is reached: at once for
//! `None`, after the leader's sync for `Leader`, after a majority holds it for `Quorum`.

use std::sync::Arc;
use std::time::Duration;

use shardkit_replication::replica::{
    AckLevel, MemoryReplicaStore, Message, NodeId, Replica, ReplicaConfig, Write, WriteError,
    WriteId,
};
use shardkit_replication::{Appended, Entry, Epoch, Error, LogStorage, MemoryLog, Offset, Record};

fn leader() -> Replica<Arc<MemoryLog>> {
    let mut config = ReplicaConfig::new(NodeId::new(1), (1..=3).map(NodeId::new));
    config.bootstrap = true;
    config.min_in_sync_replicas = 1;
    let mut replica = Replica::open(
        config,
        Arc::new(MemoryLog::new()),
        Box::new(MemoryReplicaStore::new()),
    )
    .expect("open");
    replica
        .promote(Duration::ZERO, Epoch::new(1))
        .expect("promote");
    replica
        .flush(Duration::ZERO)
        .expect("sync the epoch marker");
    replica.take_outbox();
    replica.take_completions();
    replica
}

fn completed(replica: &mut Replica<Arc<MemoryLog>>) -> Vec<WriteId> {
    replica
        .take_completions()
        .into_iter()
        .map(|c| {
            c.result.expect("acknowledged");
            c.id
        })
        .collect()
}

#[test]
fn each_level_completes_when_it_is_reached() {
    let now = Duration::from_millis(1);
    let mut r = leader();
    let ids: Vec<WriteId> = [AckLevel::Quorum, AckLevel::Leader, AckLevel::None]
        .into_iter()
        .map(|ack| {
            r.write(now, Write::new(b"x".to_vec(), ack))
                .expect("accepted")
        })
        .collect();
    // Appended, not synced: only the write that asked for nothing more is done.
    assert_eq!(completed(&mut r), [ids[2]]);
    r.flush(now).expect("sync");
    assert_eq!(completed(&mut r), [ids[1]]);
    // A follower that holds everything makes the majority for the quorum write.
    let end = Offset::new(4);
    r.handle(
        now,
        NodeId::new(2),
        Message::Fetch {
            epoch: Epoch::new(1),
            id: 1,
            from: end,
            last_epoch: Epoch::new(1),
            acked: end,
        },
    )
    .expect("fetch");
    assert_eq!(completed(&mut r), [ids[0]]);
}

/// A log whose appends fail while `failing` is set.
#[derive(Default)]
struct FailingLog {
    inner: MemoryLog,
    failing: std::sync::atomic::AtomicBool,
}

impl LogStorage for FailingLog {
    fn append(&self, epoch: Epoch, entries: &[Entry<'_>]) -> Result<Appended, Error> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Poisoned {
                reason: "the test's disk failed".into(),
            });
        }
        self.inner.append(epoch, entries)
    }
    fn append_records(&self, records: &[Record]) -> Result<Appended, Error> {
        self.inner.append_records(records)
    }
    fn read(&self, from: Offset, max_bytes: usize) -> Result<Vec<Record>, Error> {
        self.inner.read(from, max_bytes)
    }
    fn start_offset(&self) -> Offset {
        self.inner.start_offset()
    }
    fn end_offset(&self) -> Offset {
        self.inner.end_offset()
    }
    fn wait_beyond(&self, offset: Offset, timeout: Duration) -> Offset {
        self.inner.wait_beyond(offset, timeout)
    }
    fn truncate_from(&self, offset: Offset) -> Result<(), Error> {
        self.inner.truncate_from(offset)
    }
    fn drop_before(&self, offset: Offset) -> Result<(), Error> {
        self.inner.drop_before(offset)
    }
    fn reset(&self, start: Offset, epoch: Epoch) -> Result<(), Error> {
        self.inner.reset(start, epoch)
    }
    fn sync(&self) -> Result<(), Error> {
        self.inner.sync()
    }
    fn epochs(&self) -> Vec<(Epoch, Offset)> {
        self.inner.epochs()
    }
}

/// A retry whose first copy was in the same failed append fails with it: it must not wait at
/// an offset the next append fills with another record, and be acknowledged as that record.
#[test]
fn a_retry_fails_with_the_append_its_first_copy_was_in() {
    let now = Duration::from_millis(1);
    let log = Arc::new(FailingLog::default());
    let mut config = ReplicaConfig::new(NodeId::new(1), [NodeId::new(1)]);
    config.bootstrap = true;
    let mut r = Replica::open(
        config,
        Arc::clone(&log),
        Box::new(MemoryReplicaStore::new()),
    )
    .expect("open");
    r.promote(Duration::ZERO, Epoch::new(1)).expect("promote");
    r.take_completions();
    log.failing.store(true, std::sync::atomic::Ordering::SeqCst);
    let first = Write::new(b"a".to_vec(), AckLevel::None).idempotent(7, 0);
    let results = r.write_batch(now, vec![first.clone(), first]);
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(WriteError::Storage(_)))),
        "{results:?}"
    );
    log.failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let other = r
        .write(now, Write::new(b"b".to_vec(), AckLevel::None))
        .expect("accepted");
    let done: Vec<WriteId> = r.take_completions().into_iter().map(|c| c.id).collect();
    assert_eq!(done, [other]);
}
