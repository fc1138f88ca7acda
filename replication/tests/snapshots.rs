//! Full resync: a snapshot travels in parts, so one larger than the transport's packets
//! still reaches a follower; followers fetching at once share the snapshot being served, and
//! compaction keeps the records after it while it is.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shardkit_replication::replica::{
    AckLevel, AuthKey, MemoryReplicaStore, Message, Node, NodeId, Replica, ReplicaConfig, Snapshot,
    SnapshotResume, StateMachine, TcpConfig, TcpTransport, Write,
};
use shardkit_replication::{Epoch, Error, LogStorage, MemoryLog, Offset};

/// A state the test sets directly: whatever snapshot it was last given.
struct Held(Arc<Mutex<Snapshot>>);

impl StateMachine for Held {
    fn snapshot(&mut self) -> Result<Snapshot, Error> {
        Ok(self.0.lock().unwrap().clone())
    }

    fn install(&mut self, snapshot: &Snapshot) -> Result<(), Error> {
        *self.0.lock().unwrap() = snapshot.clone();
        Ok(())
    }
}

fn held(offset: u64, data: &[u8]) -> Arc<Mutex<Snapshot>> {
    Arc::new(Mutex::new(Snapshot {
        offset: Offset::new(offset),
        data: data.to_vec(),
    }))
}

fn replica(id: NodeId, tune: impl FnOnce(&mut ReplicaConfig)) -> Replica<Arc<MemoryLog>> {
    let mut config = ReplicaConfig::new(id, (1..=3).map(NodeId::new));
    config.bootstrap = true;
    tune(&mut config);
    Replica::open(
        config,
        Arc::new(MemoryLog::new()),
        Box::new(MemoryReplicaStore::new()),
    )
    .expect("open")
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_snapshot_larger_than_a_packet_reaches_a_follower_in_parts() {
    // Nodes take packets of at most 64 KiB; the state is 1 MiB, and `fetch_max_bytes` the
    // default 1 MiB: the nodes fit parts to their packets. (Authenticated: every message kind
    // a set sends goes through the tags.)
    let members: Vec<NodeId> = (1..=3).map(NodeId::new).collect();
    let tcp = TcpConfig {
        max_packet: 64 << 10,
        auth: Some(AuthKey::new(b"the replica set's shared secret").unwrap()),
        ..TcpConfig::default()
    };
    let mut bound = TcpTransport::bind_loopback(&members, tcp).expect("binding");
    let states: Vec<_> = (0..3).map(|_| held(0, b"")).collect();
    let mut start_node = |i: usize| {
        let mut replica = replica(members[i], |c| {
            c.fetch_wait = Duration::from_millis(50);
            c.fetch_timeout = Duration::from_millis(200);
        });
        replica.set_state_machine(Box::new(Held(Arc::clone(&states[i]))));
        let transport = bound.transports.remove(&members[i]).expect("bound above");
        Node::start(replica, transport)
    };
    let leader = start_node(0);
    let follower = start_node(1);
    leader.promote(Epoch::new(1)).unwrap();
    follower.follow(Epoch::new(1), members[0]).unwrap();
    for seq in 0..100 {
        let w = Write::new(vec![7; 100], AckLevel::Quorum).idempotent(1, seq);
        leader.write(w).unwrap();
    }
    // The leader's state as of its commit offset, and its log dropped below it.
    let commit = leader.status().unwrap().commit;
    let data: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    *states[0].lock().unwrap() = Snapshot {
        offset: commit,
        data: data.clone(),
    };
    assert_eq!(leader.compact().unwrap(), commit);

    // A third replica with an empty log can only catch up from the snapshot.
    let late = start_node(2);
    late.follow(Epoch::new(1), members[0]).unwrap();
    wait_until("the snapshot installed", || {
        states[2].lock().unwrap().data == data
    });
    assert_eq!(states[2].lock().unwrap().offset, commit);
    let w = Write::new(b"after".to_vec(), AckLevel::All).idempotent(1, 100);
    let after = leader.write(w).unwrap().offset;
    wait_until("the late replica caught up", || {
        late.log().end_offset() > after
    });
    let status = late.status().unwrap();
    assert_eq!(
        status.start, commit,
        "its log starts where the snapshot ends"
    );
}

/// `(snapshot, offset, at, part)` of each snapshot part in `replica`'s outbox.
fn parts(replica: &mut Replica<Arc<MemoryLog>>) -> Vec<(u64, Offset, u64, Vec<u8>)> {
    replica
        .take_outbox()
        .into_iter()
        .filter_map(|(_, m)| match m {
            Message::InstallSnapshot {
                snapshot,
                offset,
                at,
                data,
                ..
            } => Some((snapshot, offset, at, data)),
            _ => None,
        })
        .collect()
}

#[test]
fn followers_share_the_snapshot_being_served_and_compaction_keeps_it_continuable() {
    let now = Duration::from_secs(1);
    let (one, two, three) = (NodeId::new(1), NodeId::new(2), NodeId::new(3));
    let mut leader = replica(one, |c| c.fetch_max_bytes = 4);
    let state = held(0, b"");
    leader.set_state_machine(Box::new(Held(Arc::clone(&state))));
    leader.promote(now, Epoch::new(1)).unwrap();
    for _ in 0..10 {
        leader
            .write(now, Write::new(b"x".to_vec(), AckLevel::None))
            .unwrap();
    }
    leader.flush(now).unwrap();
    // Follower 2 holds everything: the commit offset reaches the end.
    let end = leader.log().end_offset();
    let fetch = Message::Fetch {
        epoch: Epoch::new(1),
        id: 1,
        from: end,
        last_epoch: Epoch::new(1),
        acked: end,
    };
    leader.handle(now, two, fetch).unwrap();
    *state.lock().unwrap() = Snapshot {
        offset: Offset::new(5),
        data: b"0123456789".to_vec(),
    };
    assert_eq!(leader.compact().unwrap(), Offset::new(5));
    leader.take_outbox();

    let ask = |id, resume| Message::FetchSnapshot {
        epoch: Epoch::new(1),
        id,
        resume,
    };
    leader.handle(now, three, ask(1, None)).unwrap();
    let first = parts(&mut leader);
    let [(served, offset, 0, part)] = first.as_slice() else {
        panic!("one first part: {first:?}");
    };
    assert_eq!((*offset, part.as_slice()), (Offset::new(5), &b"0123"[..]));

    // The state machine moves on; compaction stops at the snapshot being served.
    *state.lock().unwrap() = Snapshot {
        offset: Offset::new(9),
        data: b"later".to_vec(),
    };
    assert_eq!(leader.compact().unwrap(), Offset::new(5));
    // Follower 3 gets its next part of the same snapshot, and follower 2, asking afresh,
    // gets that snapshot too.
    let resume = SnapshotResume {
        snapshot: *served,
        from: 4,
    };
    leader.handle(now, three, ask(2, Some(resume))).unwrap();
    leader.handle(now, two, ask(3, None)).unwrap();
    let next = parts(&mut leader);
    assert_eq!(
        next,
        [
            (*served, Offset::new(5), 4, b"4567".to_vec()),
            (*served, Offset::new(5), 0, b"0123".to_vec()),
        ]
    );

    // Unasked for two fetch timeouts, it is dropped, and compaction goes on.
    let config = ReplicaConfig::new(one, [one]);
    let idle = 2 * (config.fetch_wait + config.fetch_timeout);
    leader.tick(now + idle + Duration::from_millis(1)).unwrap();
    assert_eq!(leader.compact().unwrap(), Offset::new(9));
}
