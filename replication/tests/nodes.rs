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
    let nodes = manual_set_over(|id| net.join(id), tune);
    (net, nodes)
}

/// [`manual_set`] over the transports `transport` gives each node.
fn manual_set_over<T: Transport + 'static>(
    mut transport: impl FnMut(NodeId) -> T,
    tune: impl Fn(&mut ReplicaConfig),
) -> Vec<Node<MemoryLog>> {
    let members = ids(3);
    let nodes: Vec<Node<MemoryLog>> = members
        .iter()
        .map(|&id| {
            start(id, &members, transport(id), |c| {
                c.coordinator = None;
                tune(c);
            })
        })
        .collect();
    nodes[0].promote(Epoch::new(1)).unwrap();
    for n in &nodes[1..] {
        n.follow(Epoch::new(1), members[0]).unwrap();
    }
    nodes
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

/// A subscription whose next committed records are only a leader's epoch marker keeps
/// waiting for data instead of returning an empty batch before its timeout.
#[test]
fn a_subscription_waits_past_epoch_markers_for_data() {
    let (_net, nodes) = manual_set(|_| {});
    wait_until("the epoch marker committed", Duration::from_secs(5), || {
        nodes[2].commit_offset() >= Offset::new(1)
    });
    let mut tail = nodes[2].subscribe(Offset::new(0));
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(50));
            nodes[0]
                .write(Write::new(b"data".to_vec(), AckLevel::Quorum))
                .unwrap();
        });
        let batch = tail.next_batch(Duration::from_secs(10)).unwrap();
        assert_eq!(batch.len(), 1, "{batch:?}");
        assert_eq!(batch[0].payload, b"data");
    });
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

/// Messages fit the transport's packets: an append larger than a packet reaches the
/// followers in several fetch answers, whatever `fetch_max_bytes` says, and a record no packet
/// can carry is refused up front (written, it would stall every follower at it for good).
#[test]
fn writes_and_fetches_fit_the_transports_packets() {
    let members = ids(3);
    let small = TcpConfig {
        max_packet: 64 << 10,
        ..TcpConfig::default()
    };
    let mut bound = TcpTransport::bind_loopback(&members, small).expect("binding");
    let nodes = manual_set_over(|id| bound.transports.remove(&id).expect("bound"), |_| {});
    // 256 KiB in one append: four packets' worth, within the default fetch_max_bytes (1 MiB).
    let writes = (0..256)
        .map(|_| Write::new(vec![1; 1024], AckLevel::All))
        .collect();
    for outcome in nodes[0].write_batch(writes) {
        outcome.expect("acknowledged by all");
    }
    let payload = 64 << 10;
    let refused = nodes[0].write(Write::new(vec![2; payload], AckLevel::All));
    let Err(WriteError::TooLarge { len, max }) = refused else {
        panic!("a record larger than a packet was not refused: {refused:?}");
    };
    assert!(len > max && max < payload, "{len} {max}");
    // The largest record that fits is carried.
    let largest = payload - (len - max);
    let written = nodes[0]
        .write(Write::new(vec![3; largest], AckLevel::All))
        .expect("the largest record that fits");
    for n in &nodes {
        wait_until(
            "every replica has every record",
            Duration::from_secs(20),
            || n.log().end_offset() > written.offset,
        );
    }
}

/// TCP transports for `members` and the coordinator, every address bound before any node
/// starts connecting (see [`TcpTransport::bind_loopback`]).
fn tcp_transports(
    members: &[NodeId],
) -> (HashMap<NodeId, SocketAddr>, HashMap<NodeId, TcpTransport>) {
    let mut ids = members.to_vec();
    ids.push(COORDINATOR);
    let bound = TcpTransport::bind_loopback(&ids, TcpConfig::default()).expect("binding");
    (bound.addrs, bound.transports)
}

#[test]
fn replicas_over_loopback_tcp_survive_hostile_bytes() {
    let members = ids(3);
    let (addrs, mut transports) = tcp_transports(&members);
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
    // Garbage (a length past any packet), a frame whose records length runs past it, and one
    // whose checksum fails: the node closes each connection itself (a read here sees the
    // end), and lives.
    let status = || {
        let mut p = Vec::new();
        shardkit_replication::replica::encode_packet(&Packet::StatusRequest { request: 1 }, &mut p)
            .unwrap();
        p
    };
    let mut runs_past = status();
    runs_past[9] ^= 0x40;
    let mut bad_checksum = status();
    *bad_checksum.last_mut().unwrap() ^= 1;
    for bytes in [
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        vec![0xff; 64],
        runs_past,
        bad_checksum,
    ] {
        let mut s = TcpStream::connect(leader_addr).unwrap();
        s.write_all(&bytes).unwrap();
        s.flush().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut answer = [0u8; 64];
        let read = std::io::Read::read(&mut s, &mut answer);
        assert!(
            matches!(read, Ok(0))
                || read
                    .as_ref()
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "the node kept a connection that sent {bytes:?}: {read:?}"
        );
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

/// Eight threads write to the leader over loopback TCP at once, blocking, asynchronously and
/// in batches, while another asks for status and reads followers: with the replica run by
/// whichever thread brings work, every write is acknowledged exactly once, at its own offset,
/// and every replica ends up holding all of them.
#[test]
fn concurrent_writers_over_tcp_are_each_acknowledged_once_and_replicated() {
    const PER_THREAD: u64 = 200;
    let (_, mut transports) = tcp_transports(&ids(3));
    let nodes = manual_set_over(|id| transports.remove(&id).expect("bound above"), |_| {});
    let leader = &nodes[0];
    let written = std::sync::Mutex::new(Vec::new());
    let payload = |producer: u64, seq: u64| format!("{producer}:{seq}").into_bytes();
    // A generous timeout: this checks what is acknowledged, not how fast, on a loaded machine.
    let write = |producer: u64, seq: u64| {
        Write::new(payload(producer, seq), AckLevel::Quorum)
            .idempotent(producer, seq)
            .with_timeout(Duration::from_secs(60))
    };
    std::thread::scope(|s| {
        for producer in 0..8u64 {
            let written = &written;
            s.spawn(move || {
                let mut acked = Vec::new();
                match producer % 3 {
                    0 => {
                        for seq in 0..PER_THREAD {
                            acked.push((leader.write(write(producer, seq)).unwrap(), seq));
                        }
                    }
                    1 => {
                        let pending: Vec<_> = (0..PER_THREAD)
                            .map(|seq| (leader.write_async(write(producer, seq)), seq))
                            .collect();
                        for (rx, seq) in pending {
                            acked.push((rx.recv().unwrap().unwrap(), seq));
                        }
                    }
                    _ => {
                        for chunk in (0..PER_THREAD).collect::<Vec<_>>().chunks(25) {
                            let outcomes = leader
                                .write_batch(chunk.iter().map(|&q| write(producer, q)).collect());
                            for (outcome, &seq) in outcomes.into_iter().zip(chunk) {
                                acked.push((outcome.unwrap(), seq));
                            }
                        }
                    }
                }
                written
                    .lock()
                    .unwrap()
                    .extend(acked.into_iter().map(|(w, seq)| {
                        assert!(!w.duplicate, "write {producer}:{seq} applied twice");
                        (w.offset, payload(producer, seq))
                    }));
            });
        }
        s.spawn(|| {
            for _ in 0..200 {
                assert_eq!(leader.status().unwrap().role, Role::Leader);
                let _ = nodes[1].read_committed(Offset::new(0), 1 << 16).unwrap();
            }
        });
    });
    let written = written.into_inner().unwrap();
    assert_eq!(written.len() as u64, 8 * PER_THREAD);
    let last = written.iter().map(|(o, _)| *o).max().unwrap();
    for node in &nodes {
        assert!(node.wait_for_commit(last, Duration::from_secs(20)));
        let held: HashMap<Offset, Vec<u8>> = node
            .read_committed(Offset::new(0), usize::MAX)
            .unwrap()
            .into_iter()
            .map(|r| (r.offset, r.payload))
            .collect();
        for (offset, payload) in &written {
            assert_eq!(
                held.get(offset),
                Some(payload),
                "{:?} lost at {offset:?}",
                node.id()
            );
        }
        assert_eq!(
            held.len(),
            written.len(),
            "{:?} holds other records",
            node.id()
        );
    }
}

/// A node stopped through a shared handle while eight threads write to it: every writer
/// hears back (acknowledged, or `LeadershipLost`), none is left waiting, and nothing touches
/// the log once `stop` has returned.
#[test]
fn a_node_stopped_under_load_answers_every_writer_and_lets_go_of_its_log() {
    let (_, mut transports) = tcp_transports(&ids(3));
    let mut nodes = manual_set_over(|id| transports.remove(&id).expect("bound above"), |_| {});
    let leader = Arc::new(nodes.remove(0));
    let (done, finished) = std::sync::mpsc::channel();
    let first_ack = Arc::new(std::sync::Barrier::new(2));
    for producer in 0..8u64 {
        let (leader, done) = (Arc::clone(&leader), done.clone());
        let first_ack = (producer == 0).then(|| Arc::clone(&first_ack));
        std::thread::spawn(move || {
            let mut acked = 0u64;
            for seq in 0.. {
                let w = Write::new(vec![1; 100], AckLevel::Quorum).idempotent(producer, seq);
                let outcome = if producer % 2 == 0 {
                    leader.write(w)
                } else {
                    leader
                        .write_async(w)
                        .recv()
                        .unwrap_or(Err(WriteError::LeadershipLost {
                            offset: Offset::new(0),
                        }))
                };
                match outcome {
                    Ok(_) => acked += 1,
                    Err(WriteError::LeadershipLost { .. }) => break,
                    Err(e) => panic!("writer {producer}: {e}"),
                }
                if acked == 1
                    && let Some(b) = &first_ack
                {
                    b.wait();
                }
            }
            done.send(acked).unwrap();
        });
    }
    // Stopped once writes are flowing (writer 0 had one acknowledged).
    first_ack.wait();
    std::thread::sleep(Duration::from_millis(50));
    leader.stop();
    let end = leader.log().end_offset();
    let acked: u64 = (0..8)
        .map(|_| {
            finished
                .recv_timeout(Duration::from_secs(20))
                .expect("a writer was left waiting")
        })
        .sum();
    assert!(acked > 0, "no write was acknowledged before the stop");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        leader.log().end_offset(),
        end,
        "the log grew after stop returned"
    );
    assert!(leader.status().is_err());
}
