//! Each ack level completes a write when, and only when, its level is reached: at once for
//! `None`, after the leader's sync for `Leader`, after a majority holds it for `Quorum`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use shardkit_replication::replica::{
    AckLevel, MemoryReplicaStore, Message, NodeId, Replica, ReplicaConfig, Write, WriteError,
    WriteId,
};
use shardkit_replication::{Epoch, Error, MemoryLog, Offset};

mod support;
use support::{DiskHooks, HookedLog};

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

/// A disk whose appends fail while `failing` is set.
#[derive(Default)]
struct FailingAppends {
    failing: AtomicBool,
}

impl DiskHooks for FailingAppends {
    fn sync(&self, _log: &MemoryLog) -> Result<(), Error> {
        Ok(())
    }
    fn append(&self) -> Result<(), Error> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(Error::Poisoned {
                reason: "the test's disk failed".into(),
            });
        }
        Ok(())
    }
}

/// A retry whose first copy was in the same failed append fails with it: it must not wait at
/// an offset the next append fills with another record, and be acknowledged as that record.
#[test]
fn a_retry_fails_with_the_append_its_first_copy_was_in() {
    let now = Duration::from_millis(1);
    let log = Arc::new(HookedLog::<FailingAppends>::default());
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
    log.hooks.failing.store(true, Ordering::SeqCst);
    let first = Write::new(b"a".to_vec(), AckLevel::None).idempotent(7, 0);
    let results = r.write_batch(now, vec![first.clone(), first]);
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(WriteError::Storage(_)))),
        "{results:?}"
    );
    log.hooks.failing.store(false, Ordering::SeqCst);
    let other = r
        .write(now, Write::new(b"b".to_vec(), AckLevel::None))
        .expect("accepted");
    let done: Vec<WriteId> = r.take_completions().into_iter().map(|c| c.id).collect();
    assert_eq!(done, [other]);
}

/// A leader promoted again (an operator's newer epoch) answers its earlier epoch's waiting
/// writes, as losing leadership does: replaced with its role, they would wait for ever.
#[test]
fn a_leader_promoted_again_answers_its_waiting_writes() {
    let now = Duration::from_millis(1);
    let mut r = leader();
    let id = r
        .write(now, Write::new(b"x".to_vec(), AckLevel::Quorum))
        .expect("accepted");
    assert!(r.take_completions().is_empty(), "no follower holds it yet");
    r.promote(now, Epoch::new(2)).expect("a newer epoch");
    let answered = r.take_completions();
    assert!(
        answered
            .iter()
            .any(|c| c.id == id && matches!(c.result, Err(WriteError::LeadershipLost { .. }))),
        "{answered:?}"
    );
}

/// A timeout of `Duration::MAX` means "no timeout", not an overflow that stops the node.
#[test]
fn a_write_may_wait_without_a_timeout() {
    let now = Duration::from_millis(1);
    let mut r = leader();
    let write = Write::new(b"x".to_vec(), AckLevel::Quorum).with_timeout(Duration::MAX);
    r.write(now, write).expect("accepted");
    r.tick(Duration::from_secs(3600)).expect("tick");
    assert!(r.take_completions().is_empty(), "timed out: {:?}", r.role());
}
