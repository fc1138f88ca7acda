//! A replica that lost its disk follows only the leader the coordinator names in answer to one
//! of its own heartbeats (a `Follow` sent to its earlier run may name a leader whose epoch that
//! run promised to ignore), and counts as eligible again only once its copy is synced. (The
//! coordinator's side is in `coordinator.rs`.)

use std::sync::Arc;
use std::time::Duration;

use shardkit_replication::replica::{
    MemoryReplicaStore, Message, NodeId, Replica, ReplicaConfig, Role,
};
use shardkit_replication::{Epoch, MemoryLog, Offset, Record, RecordBatch};

const COORDINATOR: NodeId = NodeId::new(9);
const LEADER: NodeId = NodeId::new(1);

fn replica(bootstrap: bool) -> Replica<Arc<MemoryLog>> {
    let mut config = ReplicaConfig::new(NodeId::new(2), (1..=3).map(NodeId::new));
    config.coordinator = Some(COORDINATOR);
    config.bootstrap = bootstrap;
    config.incarnation = Some(42);
    Replica::open(
        config,
        Arc::new(MemoryLog::new()),
        Box::new(MemoryReplicaStore::new()),
    )
    .expect("open")
}

fn follow(epoch: u64, incarnation: Option<u64>) -> Message {
    Message::Follow {
        epoch: Epoch::new(epoch),
        leader: LEADER,
        incarnation,
    }
}

/// The incarnation of the replica's own heartbeats.
fn heartbeat_incarnation(replica: &mut Replica<Arc<MemoryLog>>) -> u64 {
    replica.tick(Duration::from_secs(1)).expect("tick");
    replica
        .take_outbox()
        .into_iter()
        .find_map(|(to, m)| match m {
            Message::Heartbeat { incarnation, .. } if to == COORDINATOR => Some(incarnation),
            _ => None,
        })
        .expect("a heartbeat to the coordinator")
}

#[test]
fn a_replica_that_lost_its_disk_follows_only_answers_to_its_own_heartbeats() {
    let mut wiped = replica(false);
    assert!(!wiped.is_eligible());
    let now = Duration::from_secs(1);
    for stale in [None, Some(7)] {
        wiped
            .handle(now, COORDINATOR, follow(6, stale))
            .expect("handle");
        assert_eq!(
            wiped.leader(),
            None,
            "followed a Follow answering {stale:?}"
        );
    }
    let own = heartbeat_incarnation(&mut wiped);
    assert_eq!(own, 42);
    wiped
        .handle(now, COORDINATOR, follow(6, Some(own)))
        .expect("handle");
    assert_eq!(wiped.leader(), Some(LEADER));
    assert_eq!(wiped.role(), Role::Follower);
}

#[test]
fn an_eligible_replica_follows_the_coordinators_broadcast() {
    let mut replica = replica(true);
    assert!(replica.is_eligible());
    let now = Duration::from_secs(1);
    replica
        .handle(now, COORDINATOR, follow(6, None))
        .expect("handle");
    assert_eq!(replica.leader(), Some(NodeId::new(1)));
}

/// A replica that lost its disk is stored as eligible only once what it copied is synced: a
/// machine crash in between would bring it back eligible and empty, and a failover could count
/// its empty log against writes a majority acknowledged.
#[test]
fn a_rejoining_replica_syncs_its_copy_before_it_counts_as_eligible() {
    let mut wiped = replica(false);
    let now = Duration::from_secs(1);
    let own = heartbeat_incarnation(&mut wiped);
    wiped
        .handle(now, COORDINATOR, follow(6, Some(own)))
        .expect("handle");
    let id = wiped
        .take_outbox()
        .into_iter()
        .find_map(|(to, m)| match m {
            Message::Fetch { id, .. } if to == LEADER => Some(id),
            _ => None,
        })
        .expect("a fetch to the leader");
    // The leader's log: its epoch-6 marker and one write, both committed.
    let epoch = Epoch::new(6);
    let records = RecordBatch::from_records(&[
        Record::new(Offset::new(0), epoch, 0, vec![2]),
        Record::new(Offset::new(1), epoch, 0, vec![0, 7]),
    ])
    .expect("consecutive small records");
    let commit = Offset::new(2);
    let answer = Message::Records {
        epoch,
        id,
        records,
        commit,
    };
    wiped.handle(now, LEADER, answer).expect("handle");
    assert!(wiped.is_eligible());
    assert_eq!(wiped.status(now).flushed, commit);
}

/// Fetch ids start from the run's incarnation: a late answer to a fetch of the replica's
/// previous run cannot pass for the answer to the new run's first fetch.
#[test]
fn a_late_answer_to_a_previous_runs_fetch_is_ignored() {
    let now = Duration::from_secs(1);
    let first_fetch = |incarnation: u64| {
        let mut config = ReplicaConfig::new(NodeId::new(2), (1..=3).map(NodeId::new));
        config.bootstrap = true;
        config.incarnation = Some(incarnation);
        let mut replica = Replica::open(
            config,
            Arc::new(MemoryLog::new()),
            Box::new(MemoryReplicaStore::new()),
        )
        .expect("open");
        replica
            .follow(now, Epoch::new(6), Some(LEADER))
            .expect("follow");
        let id = replica
            .take_outbox()
            .into_iter()
            .find_map(|(_, m)| match m {
                Message::Fetch { id, .. } => Some(id),
                _ => None,
            })
            .expect("a fetch");
        (replica, id)
    };
    let (_, old) = first_fetch(1 << 40);
    let (mut restarted, new) = first_fetch(2 << 40);
    assert_ne!(old, new);
    let late = Message::Records {
        epoch: Epoch::new(6),
        id: old,
        records: RecordBatch::from_records(&[Record::new(
            Offset::new(0),
            Epoch::new(6),
            0,
            vec![2],
        )])
        .expect("one small record"),
        commit: Offset::new(0),
    };
    restarted.handle(now, LEADER, late).expect("handle");
    assert_eq!(restarted.status(now).end, Offset::new(0));
}

/// What the replica answered `message` with, to the coordinator.
fn answer(replica: &mut Replica<Arc<MemoryLog>>, message: Message) -> Vec<Message> {
    replica
        .handle(Duration::from_secs(1), COORDINATOR, message)
        .expect("handle");
    replica
        .take_outbox()
        .into_iter()
        .filter(|(to, _)| *to == COORDINATOR)
        .map(|(_, m)| m)
        .collect()
}

/// A replica promises an epoch again only in the run that promised it, while no leader of it is
/// known: after a restart it cannot tell whether that epoch had a leader, and a coordinator
/// that restarted too (counting from zero again) would otherwise elect a second leader in it.
#[test]
fn a_restarted_replica_never_promises_its_current_epoch_again() {
    let mut config = ReplicaConfig::new(NodeId::new(2), (1..=3).map(NodeId::new));
    config.coordinator = Some(COORDINATOR);
    config.bootstrap = true;
    let (log, store) = (Arc::new(MemoryLog::new()), MemoryReplicaStore::new());
    let open =
        || Replica::open(config.clone(), Arc::clone(&log), Box::new(store.clone())).expect("open");
    let prepare = |epoch| Message::Prepare {
        epoch: Epoch::new(epoch),
    };
    let promised = |answers: &[Message], epoch| {
        answers
            .iter()
            .any(|m| matches!(m, Message::Prepared { epoch: e, .. } if *e == Epoch::new(epoch)))
    };
    let mut first = open();
    assert!(promised(&answer(&mut first, prepare(1)), 1));
    // The coordinator asking again in the same run (its message or the answer was lost).
    assert!(promised(&answer(&mut first, prepare(1)), 1));
    answer(&mut first, follow(1, None));
    assert_eq!(first.leader(), Some(LEADER));
    drop(first);

    let mut restarted = open();
    assert_eq!(restarted.leader(), None);
    let refused = answer(&mut restarted, prepare(1));
    assert!(
        !promised(&refused, 1),
        "promised epoch 1 again: {refused:?}"
    );
    assert!(
        refused
            .iter()
            .any(|m| matches!(m, Message::NotLeader { epoch, .. } if *epoch == Epoch::new(1))),
        "{refused:?}"
    );
    let refused = answer(
        &mut restarted,
        Message::Promote {
            epoch: Epoch::new(1),
        },
    );
    assert_eq!(restarted.role(), Role::Follower, "led epoch 1: {refused:?}");
    // A newer epoch is promised as ever.
    assert!(promised(&answer(&mut restarted, prepare(2)), 2));
}
