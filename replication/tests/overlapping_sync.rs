//! A sync that runs while the replica goes on (`sync_ticket`, then `synced`) vouches only for
//! the records it could have covered: if the log was cut meanwhile, the records written past
//! the cut are new ones the sync may have missed, and the replica must not count them as on
//! its disk (promoted next, it would count them toward its writes' ack levels).

use std::sync::Arc;
use std::time::Duration;

use shardkit_replication::replica::{
    FollowerAck, MemoryReplicaStore, Message, NodeId, Replica, ReplicaConfig,
};
use shardkit_replication::{Epoch, LogStorage, MemoryLog, Offset, Record, RecordBatch};

type Follower = Replica<Arc<MemoryLog>>;

fn follower() -> Follower {
    let mut config = ReplicaConfig::new(NodeId::new(2), (1..=3).map(NodeId::new));
    config.bootstrap = true;
    // Acking on receipt, a follower keeps fetching while its syncs run.
    config.follower_ack = FollowerAck::Received;
    Replica::open(
        config,
        Arc::new(MemoryLog::new()),
        Box::new(MemoryReplicaStore::new()),
    )
    .expect("open")
}

/// The id of the fetch the follower sent to `leader`.
fn fetch_to(replica: &mut Follower, leader: NodeId) -> Option<u64> {
    replica
        .take_outbox()
        .into_iter()
        .find_map(|(to, m)| match m {
            Message::Fetch { id, .. } if to == leader => Some(id),
            _ => None,
        })
}

fn records(epoch: u64, offsets: std::ops::Range<u64>) -> RecordBatch {
    let records: Vec<Record> = offsets
        .map(|o| Record::new(Offset::new(o), Epoch::new(epoch), 0, vec![0, o as u8]))
        .collect();
    RecordBatch::from_records(&records).expect("consecutive small records")
}

#[test]
fn a_sync_that_overlapped_a_cut_does_not_vouch_for_records_written_after_it() {
    let now = Duration::from_secs(1);
    let (first, second) = (NodeId::new(1), NodeId::new(3));
    let mut f = follower();

    // Epoch 6: copy four records from the first leader, and start a sync of them.
    f.follow(now, Epoch::new(6), Some(first)).expect("follow");
    let id = fetch_to(&mut f, first).expect("a fetch");
    let answer = Message::Records {
        epoch: Epoch::new(6),
        id,
        records: records(6, 0..4),
        commit: Offset::new(0),
    };
    f.handle(now, first, answer).expect("records");
    let before_cut = f.sync_ticket();
    assert_eq!(before_cut.end(), Offset::new(4));

    // Epoch 7 kept only two of them: the follower cuts the other two and copies three new
    // records in their place, all before the first sync ends.
    f.follow(now, Epoch::new(7), Some(second)).expect("follow");
    let id = fetch_to(&mut f, second).expect("a fetch");
    let diverging = Message::Diverging {
        epoch: Epoch::new(7),
        id,
        epoch_end: Some((Epoch::new(6), Offset::new(2))),
    };
    f.handle(now, second, diverging).expect("diverging");
    let id = fetch_to(&mut f, second).expect("a fetch after the cut");
    let answer = Message::Records {
        epoch: Epoch::new(7),
        id,
        records: records(7, 2..5),
        commit: Offset::new(0),
    };
    f.handle(now, second, answer).expect("records");
    assert_eq!(f.log().end_offset(), Offset::new(5));

    // The first sync ends: records 2 and 3 it covered are gone, and it says nothing about
    // their replacements.
    f.synced(now, before_cut);
    assert!(
        f.status(now).flushed <= Offset::new(2),
        "a sync from before the cut counted as covering {:?}",
        f.status(now).flushed
    );

    // A sync taken after the cut covers everything and is reported.
    assert!(f.needs_sync());
    let after_cut = f.sync_ticket();
    f.synced(now, after_cut);
    assert_eq!(f.status(now).flushed, Offset::new(5));
    assert!(!f.needs_sync());
}
