//! Each ack level completes a write when, and only when, its level is reached: at once for
//! `None`, after the leader's sync for `Leader`, after a majority holds it for `Quorum`.

use std::sync::Arc;
use std::time::Duration;

use shardkit_replication::replica::{
    AckLevel, MemoryReplicaStore, Message, NodeId, Replica, ReplicaConfig, Write, WriteId,
};
use shardkit_replication::{Epoch, MemoryLog, Offset};

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
