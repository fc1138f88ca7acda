//! The lease coordinator's answers to heartbeats: which incarnation and which epoch a
//! `Follow` names.

use std::time::Duration;

use shardkit_replication::replica::{
    Coordinator, LeaseCoordinator, Message, NodeId, Position, Role,
};
use shardkit_replication::{Epoch, Offset};

/// A coordinator of three replicas that has elected a leader (all promised at once);
/// returns it with the time, the leader, its epoch and the election's broadcast.
fn elected() -> (
    LeaseCoordinator,
    Duration,
    NodeId,
    Epoch,
    Vec<(NodeId, Message)>,
) {
    let members: Vec<NodeId> = (1..=3).map(NodeId::new).collect();
    let mut coordinator = LeaseCoordinator::new(members.clone(), Duration::from_millis(100));
    coordinator.tick(Duration::from_millis(1));
    let epoch = match coordinator.take_outbox().first() {
        Some((_, Message::Prepare { epoch })) => *epoch,
        other => panic!("expected an election, got {other:?}"),
    };
    let now = Duration::from_millis(2);
    for &m in &members {
        let position = Position::default();
        coordinator.handle(now, m, Message::Prepared { epoch, position });
    }
    let broadcast = coordinator.take_outbox();
    let (leader, led) = coordinator.leader().expect("a leader");
    assert_eq!(led, epoch);
    (coordinator, now, leader, epoch, broadcast)
}

fn heartbeat(epoch: Epoch, incarnation: u64) -> Message {
    Message::Heartbeat {
        epoch,
        role: Role::Follower,
        leader: None,
        position: Position::default(),
        commit: Offset::new(0),
        incarnation,
    }
}

fn follower_of(leader: NodeId) -> NodeId {
    (1..=3)
        .map(NodeId::new)
        .find(|&m| m != leader)
        .expect("a follower")
}

/// Its answer to a heartbeat names the heartbeat's incarnation, and its broadcast after an
/// election names none.
#[test]
fn the_coordinator_echoes_the_incarnation_of_the_heartbeat_it_answers() {
    let (mut coordinator, mut now, leader, epoch, broadcast) = elected();
    assert!(
        broadcast
            .iter()
            .filter_map(|(_, m)| match m {
                Message::Follow { incarnation, .. } => Some(*incarnation),
                _ => None,
            })
            .eq([None, None])
    );
    now += Duration::from_millis(1);
    let wiped = follower_of(leader);
    coordinator.handle(now, wiped, heartbeat(Epoch::new(0), 77));
    let answer = coordinator.take_outbox();
    assert!(
        matches!(
            answer.as_slice(),
            [(to, Message::Follow { epoch: e, leader: l, incarnation: Some(77) })]
                if *to == wiped && *e == epoch && *l == leader
        ),
        "{answer:?}"
    );
}

/// A refusal naming a newer epoch (a stale one, from an earlier election) raises the epoch the
/// next election starts above, but not the leader's: a follower sent to the leader in a newer
/// epoch than its own would fetch with it and make the live leader step down.
#[test]
fn followers_are_sent_to_the_leader_in_the_epoch_it_was_elected_in() {
    let (mut coordinator, mut now, leader, epoch, _) = elected();
    let follower = follower_of(leader);
    now += Duration::from_millis(1);
    let newer = Epoch::new(epoch.get() + 3);
    coordinator.handle(
        now,
        follower,
        Message::NotLeader {
            epoch: newer,
            leader: None,
        },
    );
    assert_eq!(coordinator.leader(), Some((leader, epoch)));
    coordinator.handle(now, follower, heartbeat(Epoch::new(0), 5));
    let answer = coordinator.take_outbox();
    assert!(
        matches!(
            answer.as_slice(),
            [(_, Message::Follow { epoch: e, leader: l, .. })] if *e == epoch && *l == leader
        ),
        "{answer:?}"
    );
    // The next election goes above every epoch heard of.
    coordinator.fail_over(now);
    let prepare = coordinator.take_outbox();
    assert!(
        prepare
            .iter()
            .all(|(_, m)| matches!(m, Message::Prepare { epoch: e } if *e > newer)),
        "{prepare:?}"
    );
}

/// The chosen leader's `NotLeader` starts a new election only when it refuses the epoch it
/// was chosen for: not when its Promote overtook its Prepare (it is still in an older epoch),
/// nor when a duplicate Prepare reaches it after it began to lead (it names itself).
#[test]
fn only_a_real_refusal_by_the_chosen_leader_starts_another_election() {
    let (mut coordinator, mut now, leader, epoch, _) = elected();
    let older = Epoch::new(epoch.get() - 1);
    now += Duration::from_millis(1);
    for spurious in [
        Message::NotLeader {
            epoch: older,
            leader: None,
        },
        Message::NotLeader {
            epoch,
            leader: Some(leader),
        },
    ] {
        coordinator.handle(now, leader, spurious);
        assert_eq!(coordinator.leader(), Some((leader, epoch)));
        assert!(coordinator.take_outbox().is_empty());
    }
    coordinator.handle(
        now,
        leader,
        Message::NotLeader {
            epoch,
            leader: None,
        },
    );
    assert_eq!(coordinator.leader(), None, "a real refusal is acted on");
    assert!(
        coordinator
            .take_outbox()
            .iter()
            .any(|(_, m)| matches!(m, Message::Prepare { epoch: e } if *e > epoch))
    );
}
