//! Replicas as running nodes: over the in-memory network and over loopback TCP, with a
//! coordinator failing over, read-your-writes on followers, subscriptions, refusals that
//! never weaken an ack level, and hostile bytes on the wire.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardkit_replication::replica::{
    AckLevel, CoordinatorNode, LeaseCoordinator, MemoryNetwork, MemoryReplicaStore, Node, NodeId,
    Packet, RemoteWriteError, Replica, ReplicaConfig, Role, TcpClient, TcpConfig, TcpTransport,
    Transport, Write, WriteError,
};
use shardkit_replication::{Epoch, LogStorage, MemoryLog, Offset};

const COORDINATOR: NodeId = NodeId::new(0);

fn ids(n: u64) -> Vec<NodeId> {
    (1..=n).map(NodeId::new).collect()
}

fn config(id: NodeId, members: &[NodeId]) -> ReplicaConfig {
    let mut c = ReplicaConfig::new(id, members.iter().copied());
    c.bootstrap = true;
    c.coordinator = Some(COORDINATOR);
    c.heartbeat_interval = Duration::from_millis(20);
    c.fetch_wait = Duration::from_millis(50);
    c.fetch_timeout = Duration::from_millis(200);
    c.max_lag_time = Duration::from_millis(500);
    c
}

fn start(
    id: NodeId,
    members: &[NodeId],
    transport: impl Transport + 'static,
    tune: impl FnOnce(&mut ReplicaConfig),
) -> Node<MemoryLog> {
    let mut c = config(id, members);
    tune(&mut c);
    let replica = Replica::open(
        c,
        Arc::new(MemoryLog::new()),
        Box::new(MemoryReplicaStore::new()),
    )
    .unwrap();
    Node::start(replica, transport)
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Three replicas without a coordinator: node 1 leads epoch 1, the others follow it.
fn manual_set(tune: impl Fn(&mut ReplicaConfig)) -> (MemoryNetwork, Vec<Node<MemoryLog>>) {
    let net = MemoryNetwork::new();
    let members = ids(3);
    let nodes: Vec<Node<MemoryLog>> = members
        .iter()
        .map(|&id| {
            start(id, &members, net.join(id), |c| {
                c.coordinator = None;
                tune(c);
            })
        })
        .collect();
    nodes[0].promote(Epoch::new(1)).unwrap();
    for n in &nodes[1..] {
        n.follow(Epoch::new(1), members[0]).unwrap();
    }
    (net, nodes)
}

fn leader_of(nodes: &[Option<Node<MemoryLog>>]) -> usize {
    let mut found = None;
    wait_until("a leader", Duration::from_secs(10), || {
        found = nodes.iter().position(|n| {
            n.as_ref()
                .and_then(|n| n.status().ok())
                .is_some_and(|s| s.role == Role::Leader)
        });
        found.is_some()
    });
    found.unwrap()
}

/// Writes `seq` of `producer` until some node acknowledges it, retrying the same sequence
/// on every node in turn, as an idempotent client does across a failover.
fn write_retrying(nodes: &[Option<Node<MemoryLog>>], producer: u64, seq: u64) -> Offset {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for n in nodes.iter().flatten() {
            let w = Write::new(format!("{producer}:{seq}").into_bytes(), AckLevel::Quorum)
                .idempotent(producer, seq)
                .with_timeout(Duration::from_millis(500));
            if let Ok(written) = n.write(w) {
                return written.offset;
            }
        }
        assert!(Instant::now() < deadline, "write {seq} never acknowledged");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_failover_keeps_every_acknowledged_write_and_applies_retries_once() {
    let net = MemoryNetwork::new();
    let members = ids(3);
    let _coordinator = CoordinatorNode::start(
        COORDINATOR,
        LeaseCoordinator::new(members.clone(), Duration::from_millis(200)),
        net.join(COORDINATOR),
    );
    let mut nodes: Vec<Option<Node<MemoryLog>>> = members
        .iter()
        .map(|&id| Some(start(id, &members, net.join(id), |_| {})))
        .collect();
    let first = leader_of(&nodes);
    let mut acked = Vec::new();
    for seq in 0..50 {
        acked.push(write_retrying(&nodes, 7, seq));
    }
    // The leader dies; a follower takes over and writes go on.
    nodes[first] = None;
    for seq in 50..100 {
        acked.push(write_retrying(&nodes, 7, seq));
    }
    let second = leader_of(&nodes);
    assert_ne!(second, first);
    // A retry of an acknowledged write is answered with its original offset, not applied.
    let leader = nodes[second].as_ref().unwrap();
    let again = leader
        .write(Write::new(b"7:99".to_vec(), AckLevel::Quorum).idempotent(7, 99))
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.offset, acked[99]);
    // Every acknowledged write is committed, once, on every survivor.
    for n in nodes.iter().flatten() {
        assert!(n.wait_for_commit(acked[99], Duration::from_secs(5)));
        let mut sub = n.subscribe(Offset::new(0));
        let mut seen = Vec::new();
        while sub.position() < n.commit_offset() {
            seen.extend(sub.next_batch(Duration::from_secs(1)).unwrap());
        }
        let payloads: Vec<String> = seen
            .iter()
            .map(|r| String::from_utf8(r.payload.clone()).unwrap())
            .collect();
        let expected: Vec<String> = (0..100).map(|s| format!("7:{s}")).collect();
        assert_eq!(payloads, expected, "on {}", n.id());
    }
}

#[test]
fn followers_serve_their_readers_writes_and_subscriptions_tail() {
    let (_net, nodes) = manual_set(|_| {});
    let mut tail = nodes[2].subscribe(Offset::new(0));
    for i in 0..20u32 {
        let w = nodes[0]
            .write(Write::new(i.to_le_bytes().to_vec(), AckLevel::Quorum))
            .unwrap();
        // Read-your-writes on a follower: wait for the write's offset, then read it.
        assert!(nodes[1].wait_for_commit(w.offset, Duration::from_secs(5)));
        let got = nodes[1].read_committed(w.offset, 1 << 10).unwrap();
        assert_eq!(got[0].payload, i.to_le_bytes());
    }
    let mut seen = Vec::new();
    while seen.len() < 20 {
        let batch = tail.next_batch(Duration::from_secs(5)).unwrap();
        assert!(
            !batch.is_empty(),
            "the subscription stalled at {}",
            seen.len()
        );
        seen.extend(batch);
    }
    assert!(seen.windows(2).all(|w| w[0].offset < w[1].offset));
    // Reading beyond what is committed is an error, not a wait or a guess.
    let beyond = Offset::new(nodes[1].commit_offset().get() + 5);
    assert!(nodes[1].read_committed(beyond, 1 << 10).is_err());
}

#[test]
fn ack_levels_are_refused_or_time_out_but_never_weakened() {
    let (net, nodes) = manual_set(|c| c.min_in_sync_replicas = 3);
    let members = ids(3);
    nodes[0]
        .write(Write::new(b"all".to_vec(), AckLevel::All))
        .unwrap();
    // Cut follower 3 off: after the lag time it leaves the in-sync set.
    net.set_link(members[2], members[0], false);
    net.set_link(members[0], members[2], false);
    // While it still counts as in sync, an `All` write waits for it and times out: its fate
    // is unknown, and it is not acknowledged at a lower level instead.
    let err = nodes[0]
        .write(Write::new(b"x".to_vec(), AckLevel::All).with_timeout(Duration::from_millis(100)))
        .unwrap_err();
    assert!(matches!(err, WriteError::Timeout { .. }), "{err}");
    assert!(err.is_fate_unknown());
    wait_until(
        "follower 3 to leave the in-sync set",
        Duration::from_secs(5),
        || {
            let s = nodes[0].status().unwrap();
            s.followers.iter().any(|f| f.id == members[2] && !f.in_sync)
        },
    );
    // Below min_in_sync_replicas, quorum and all writes are refused: nothing is written.
    let before = nodes[0].log().end_offset();
    for ack in [AckLevel::Quorum, AckLevel::All] {
        let err = nodes[0].write(Write::new(b"y".to_vec(), ack)).unwrap_err();
        assert!(
            matches!(
                err,
                WriteError::NotEnoughReplicas {
                    in_sync: 2,
                    required: 3
                }
            ),
            "{err}"
        );
        assert!(!err.is_fate_unknown());
    }
    assert_eq!(nodes[0].log().end_offset(), before);
    // Weaker levels still work; the follower rejoins once caught up.
    nodes[0]
        .write(Write::new(b"z".to_vec(), AckLevel::Leader))
        .unwrap();
    net.set_link(members[2], members[0], true);
    net.set_link(members[0], members[2], true);
    wait_until("follower 3 to rejoin", Duration::from_secs(5), || {
        let s = nodes[0].status().unwrap();
        s.followers.iter().all(|f| f.in_sync)
    });
    nodes[0]
        .write(Write::new(b"all again".to_vec(), AckLevel::All))
        .unwrap();
}

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[test]
fn replicas_over_loopback_tcp_survive_hostile_bytes() {
    let members = ids(3);
    let mut addrs: HashMap<NodeId, SocketAddr> =
        members.iter().map(|&id| (id, free_addr())).collect();
    addrs.insert(COORDINATOR, free_addr());
    // Every address is bound before any node starts connecting: an outgoing connection's
    // ephemeral port could otherwise take an address a later node was given.
    let mut transports: HashMap<NodeId, TcpTransport> = addrs
        .keys()
        .map(|&id| {
            let t = TcpTransport::bind(id, addrs[&id], &addrs, TcpConfig::default()).unwrap();
            (id, t)
        })
        .collect();
    let mut transport = |id: NodeId| transports.remove(&id).expect("bound above");
    let _coordinator = CoordinatorNode::start(
        COORDINATOR,
        LeaseCoordinator::new(members.clone(), Duration::from_millis(300)),
        transport(COORDINATOR),
    );
    let nodes: Vec<Option<Node<MemoryLog>>> = members
        .iter()
        .map(|&id| Some(start(id, &members, transport(id), |_| {})))
        .collect();
    let leader = leader_of(&nodes);
    let leader_addr = addrs[&members[leader]];
    // Garbage, a torn frame and a damaged frame: each connection is dropped, the node lives.
    for bytes in [b"GET / HTTP/1.1\r\n\r\n".to_vec(), vec![0xff; 64], {
        let mut p = Vec::new();
        shardkit_replication::replica::encode_packet(&Packet::StatusRequest { request: 1 }, &mut p)
            .unwrap();
        p[9] ^= 0x40;
        p
    }] {
        let mut s = TcpStream::connect(leader_addr).unwrap();
        s.write_all(&bytes).unwrap();
        s.flush().unwrap();
    }
    // A client writes over TCP and reads the status back.
    let mut client = TcpClient::connect(leader_addr, Duration::from_secs(2)).unwrap();
    let mut last = None;
    for i in 0..100u64 {
        let answer = client
            .call(
                |request| Packet::Write {
                    request,
                    write: Write::new(i.to_le_bytes().to_vec(), AckLevel::Quorum).idempotent(1, i),
                },
                Duration::from_secs(5),
            )
            .unwrap();
        match answer {
            Packet::WriteResult { result: Ok(w), .. } => last = Some(w.offset),
            other => panic!("write {i}: {other:?}"),
        }
    }
    let status = match client
        .call(
            |request| Packet::StatusRequest { request },
            Duration::from_secs(5),
        )
        .unwrap()
    {
        Packet::Status { status, .. } => status,
        other => panic!("{other:?}"),
    };
    assert_eq!(status.role, Role::Leader);
    assert!(status.commit > last.unwrap());
    // A write to a follower is refused with the leader's id.
    let follower = (leader + 1) % 3;
    let mut to_follower =
        TcpClient::connect(addrs[&members[follower]], Duration::from_secs(2)).unwrap();
    let refused = to_follower
        .call(
            |request| Packet::Write {
                request,
                write: Write::new(b"no".to_vec(), AckLevel::Quorum),
            },
            Duration::from_secs(5),
        )
        .unwrap();
    assert!(matches!(
        refused,
        Packet::WriteResult {
            result: Err(RemoteWriteError::NotLeader { leader: Some(l), .. }),
            ..
        } if l == members[leader]
    ));
    for n in nodes.iter().flatten() {
        assert!(n.wait_for_commit(last.unwrap(), Duration::from_secs(5)));
    }
}
