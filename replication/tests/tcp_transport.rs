//! The TCP transport carries packets of every size intact and in order: record frames are
//! written from where they lie and read into a buffer that grows to the packet. Silent
//! incoming connections are closed, but quiet links (keepalives) and clients' are not. Sends
//! never wait for a slow peer. With a key, only its holders are heard, a recorded packet or
//! answer sent again is refused, a link is heard only by the node it means, and a sender that
//! has not shown the key gets no large packet buffered.

use std::collections::HashMap;
use std::io::{Read, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shardkit_replication::replica::{
    AckLevel, AuthKey, MAX_PACKET, Message, NodeId, Packet, TcpClient, TcpConfig, TcpTransport,
    Transport, Write, Written, decode_packet, encode_packet,
};
use shardkit_replication::{Epoch, Offset, Record, RecordBatch};

fn records(from: u64, n: u64, size: usize) -> Message {
    let records: Vec<Record> = (from..from + n)
        .map(|i| Record::new(Offset::new(i), Epoch::new(1), 0, vec![i as u8; size]))
        .collect();
    Message::Records {
        epoch: Epoch::new(1),
        id: from,
        records: RecordBatch::from_records(&records).expect("consecutive records"),
        commit: Offset::new(from),
    }
}

#[test]
fn small_large_and_empty_packets_arrive_intact_and_in_order() {
    let (a, b) = (NodeId::new(1), NodeId::new(2));
    let mut bound = TcpTransport::bind_loopback(&[a, b], TcpConfig::default()).expect("binding");
    let sender = bound.transports.remove(&a).expect("bound");
    let receiver = bound.transports.remove(&b).expect("bound");
    assert_eq!(receiver.local_addr(), bound.addrs[&b]);
    let sent = vec![
        records(0, 3, 10),
        records(3, 0, 0),
        // About 3 MiB: many times the receiver's first buffer.
        records(3, 3000, 1000),
        Message::NotLeader {
            epoch: Epoch::new(1),
            leader: None,
        },
        records(3003, 200, 100),
    ];
    sender.send_batch(
        sent.iter()
            .map(|m| {
                (
                    b,
                    Packet::Protocol {
                        from: a,
                        message: m.clone(),
                    },
                )
            })
            .collect(),
    );
    for expected in &sent {
        let inbound = receiver
            .inbox()
            .recv_timeout(Duration::from_secs(10))
            .expect("every packet arrives");
        match inbound.packet {
            Packet::Protocol { from, message } => {
                assert_eq!(from, a);
                assert_eq!(&message, expected);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Idle timeouts short enough for a test, with keepalives well inside them.
fn short_idle() -> TcpConfig {
    TcpConfig {
        keepalive_interval: Duration::from_millis(50),
        idle_timeout: Duration::from_secs(1),
        ..TcpConfig::default()
    }
}

/// An incoming connection that sends nothing is closed after the idle timeout: a peer host
/// that lost power never closes its connections, and each would keep a thread for good.
#[test]
fn a_silent_incoming_connection_is_closed() {
    let id = NodeId::new(1);
    let bound = TcpTransport::bind_loopback(&[id], short_idle()).expect("binding");
    let mut silent = TcpStream::connect(bound.addrs[&id]).expect("connect");
    silent
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    // A deadlock detector, not a timing: the transport closes it after a second.
    let mut byte = [0u8; 1];
    let read = silent.read(&mut byte);
    assert!(matches!(read, Ok(0)), "still open: {read:?}");
}

/// A link that carries nothing for longer than the idle timeout stays open (keepalives),
/// so the next packet on it arrives, without a reconnection.
#[test]
fn a_quiet_link_between_peers_stays_open() {
    let (a, b) = (NodeId::new(1), NodeId::new(2));
    let mut bound = TcpTransport::bind_loopback(&[a, b], short_idle()).expect("binding");
    let sender = bound.transports.remove(&a).expect("bound");
    let receiver = bound.transports.remove(&b).expect("bound");
    let prepare = |epoch| Packet::Protocol {
        from: a,
        message: Message::Prepare {
            epoch: Epoch::new(epoch),
        },
    };
    for epoch in 1..=2 {
        sender.send(b, prepare(epoch));
        let inbound = receiver
            .inbox()
            .recv_timeout(Duration::from_secs(10))
            .expect("the packet arrives");
        assert_eq!(inbound.packet, prepare(epoch));
        // Quiet for 2.5 idle timeouts.
        std::thread::sleep(Duration::from_millis(2500));
    }
    assert_eq!(sender.stats().connects.load(Ordering::Relaxed), 1);
    assert!(receiver.inbox().is_empty(), "keepalives are not delivered");
}

/// A client's connection may stay quiet between requests past the idle timeout: clients send
/// no keepalives.
#[test]
fn a_clients_connection_outlives_the_idle_timeout() {
    let id = NodeId::new(1);
    let mut bound = TcpTransport::bind_loopback(&[id], short_idle()).expect("binding");
    answer_writes(Arc::new(bound.transports.remove(&id).expect("bound")));
    let mut client = TcpClient::connect(bound.addrs[&id], Duration::from_secs(5)).expect("connect");
    for _ in 0..2 {
        let answer = write(&mut client, Duration::from_secs(10)).expect("answered");
        assert!(matches!(answer, Packet::WriteResult { result: Ok(_), .. }));
        std::thread::sleep(Duration::from_millis(2500));
    }
}

/// Answers every write `node` receives as written at offset 7, on a thread of its own.
fn answer_writes(node: Arc<TcpTransport>) {
    std::thread::spawn(move || {
        while let Ok(inbound) = node.inbox().recv() {
            if let Packet::Write { request, .. } = inbound.packet {
                inbound.reply.send(Packet::WriteResult {
                    request,
                    result: Ok(Written {
                        offset: Offset::new(7),
                        duplicate: false,
                    }),
                });
            }
        }
    });
}

/// One write through `client`, and its answer within `timeout`.
fn write(client: &mut TcpClient, timeout: Duration) -> std::io::Result<Packet> {
    client.call(
        |request| Packet::Write {
            request,
            write: Write::new(b"x".to_vec(), AckLevel::Leader),
        },
        timeout,
    )
}

/// With keys, members and clients holding theirs talk as usual; a sender without one, even
/// claiming a member's id, is refused before its packet is decoded: it cannot, say, push the
/// replicas to the last epoch. Nor can a client, with the clients' key.
#[test]
fn with_a_key_only_its_holders_are_heard() {
    let (a, b) = (NodeId::new(1), NodeId::new(2));
    let key = AuthKey::new(b"sixteen or more bytes of secret").unwrap();
    let client_key = AuthKey::new(b"the clients' own sixteen bytes").unwrap();
    let with_key = TcpConfig {
        auth: Some(key.clone()),
        client_auth: Some(client_key.clone()),
        ..TcpConfig::default()
    };
    let mut bound = TcpTransport::bind_loopback(&[a, b], with_key).expect("binding");
    let sender = bound.transports.remove(&a).expect("bound");
    let receiver = Arc::new(bound.transports.remove(&b).expect("bound"));
    let packet = |epoch| Packet::Protocol {
        from: a,
        message: Message::Prepare {
            epoch: Epoch::new(epoch),
        },
    };
    let records = Packet::Protocol {
        from: a,
        message: records(0, 100, 100),
    };
    sender.send_batch(vec![(b, packet(1)), (b, records.clone())]);
    for expected in [packet(1), records] {
        let inbound = receiver
            .inbox()
            .recv_timeout(Duration::from_secs(10))
            .expect("an authenticated packet arrives");
        assert_eq!(inbound.packet, expected);
    }

    // Node a's id with a key of its own: tagged packets, the wrong tag.
    let any_port: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let peers = HashMap::from([(b, bound.addrs[&b])]);
    let wrong_key = TcpConfig {
        auth: Some(AuthKey::new(b"not the replica set's key").unwrap()),
        ..TcpConfig::default()
    };
    let impostor = TcpTransport::bind(a, any_port, &peers, wrong_key).expect("bind");
    impostor.send(b, packet(u64::MAX));
    let deadline = Instant::now() + Duration::from_secs(20);
    while receiver.stats().rejected_frames.load(Ordering::Relaxed) == 0 {
        assert!(
            Instant::now() < deadline,
            "the impostor's packet was not refused"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(receiver.inbox().is_empty(), "the impostor was heard");

    // Clients: with the clients' key answered, without a key not, and with it but posing as
    // a member, cut off.
    let addr = bound.addrs[&b];
    let rejected = || receiver.stats().rejected_frames.load(Ordering::Relaxed);
    let before = rejected();
    let connect = || TcpClient::connect(addr, Duration::from_secs(5)).expect("connect");
    let posing = connect()
        .with_auth(client_key.clone())
        .call(|_| packet(u64::MAX), Duration::from_secs(10));
    assert!(posing.is_err(), "the posing client got an answer");
    assert_eq!(rejected(), before + 1);
    assert!(receiver.inbox().is_empty(), "the posing client was heard");
    answer_writes(Arc::clone(&receiver));
    let answer = write(
        &mut connect().with_auth(client_key),
        Duration::from_secs(10),
    );
    assert!(matches!(
        answer,
        Ok(Packet::WriteResult { result: Ok(_), .. })
    ));
    let before = rejected();
    let unanswered = write(&mut connect(), Duration::from_secs(10));
    assert!(unanswered.is_err(), "a client without the key was answered");
    // The client gives up on the node's challenge, which it cannot read, before the node has
    // refused its write.
    let deadline = Instant::now() + Duration::from_secs(20);
    while rejected() == before {
        assert!(
            Instant::now() < deadline,
            "the keyless write was not refused"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // With the members' key, where clients have their own: refused, since the answer would
    // carry the clients' tag.
    let before = rejected();
    let members_key = write(&mut connect().with_auth(key), Duration::from_secs(10));
    assert!(
        members_key.is_err(),
        "a client with the members' key was answered"
    );
    assert_eq!(rejected(), before + 1);
}

/// Settings that would close healthy quiet links, or overflow the keepalive clock, are refused;
/// so are a clients' key without the members', one equal to it, packets too small to carry a
/// snapshot's part, and no connections at all.
#[test]
fn settings_that_cannot_work_are_refused() {
    let id = NodeId::new(1);
    let cases = [
        (Duration::ZERO, Duration::from_secs(10)),
        (Duration::from_secs(1), Duration::from_millis(2999)),
        (Duration::from_secs(1), Duration::from_secs(2 * 24 * 3600)),
        (Duration::MAX, Duration::MAX),
    ];
    for (keepalive_interval, idle_timeout) in cases {
        let config = TcpConfig {
            keepalive_interval,
            idle_timeout,
            ..TcpConfig::default()
        };
        let bound = TcpTransport::bind_loopback(&[id], config);
        assert!(
            matches!(&bound, Err(e) if e.kind() == std::io::ErrorKind::InvalidInput),
            "{keepalive_interval:?} {idle_timeout:?}: {bound:?}"
        );
    }
    let key = || Some(AuthKey::new(b"sixteen or more bytes of secret").unwrap());
    let too_small = TcpConfig {
        max_packet: (4 << 10) - 1,
        ..TcpConfig::default()
    };
    let no_connections = TcpConfig {
        max_connections: 0,
        ..TcpConfig::default()
    };
    let keys = [None, key()].map(|auth| TcpConfig {
        auth,
        client_auth: key(),
        ..TcpConfig::default()
    });
    for config in keys.into_iter().chain([too_small, no_connections]) {
        let bound = TcpTransport::bind_loopback(&[id], config);
        assert!(
            matches!(&bound, Err(e) if e.kind() == std::io::ErrorKind::InvalidInput),
            "{bound:?}"
        );
    }
    // Two places are kept for each peer's link, which would leave none for clients.
    let crowded = TcpConfig {
        max_connections: 2,
        ..TcpConfig::default()
    };
    let bound = TcpTransport::bind_loopback(&[id, NodeId::new(2)], crowded);
    assert!(
        matches!(&bound, Err(e) if e.kind() == std::io::ErrorKind::InvalidInput),
        "{bound:?}"
    );
}

/// A peer that stops reading holds up neither the sender nor the other peers of the same
/// batch: what its socket does not take waits in its link's queue.
#[test]
fn a_peer_that_stops_reading_holds_up_no_one() {
    let (a, stuck, healthy) = (NodeId::new(1), NodeId::new(2), NodeId::new(3));
    // Writes that block would block for a minute: far past the waits below.
    let config = TcpConfig {
        write_timeout: Duration::from_secs(60),
        ..TcpConfig::default()
    };
    let any_port: SocketAddr = "127.0.0.1:0".parse().unwrap();
    // Accepts connections (the kernel does) and never reads them.
    let silent = TcpListener::bind(any_port).unwrap();
    let nowhere: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let receiver = TcpTransport::bind(
        healthy,
        any_port,
        &HashMap::from([(a, nowhere)]),
        config.clone(),
    )
    .expect("binding");
    let peers = HashMap::from([
        (stuck, silent.local_addr().unwrap()),
        (healthy, receiver.local_addr()),
    ]);
    let sender = TcpTransport::bind(a, any_port, &peers, config).expect("binding");
    // Both links connected, so the big packet goes to the socket, not a connecting queue.
    let deadline = Instant::now() + Duration::from_secs(20);
    while sender.stats().connects.load(Ordering::Relaxed) < 2 {
        assert!(Instant::now() < deadline, "links did not connect");
        std::thread::sleep(Duration::from_millis(5));
    }
    // 60 MB: many times what the stuck peer's socket buffers hold.
    let big = Packet::Protocol {
        from: a,
        message: records(0, 60_000, 1000),
    };
    let small = Packet::Protocol {
        from: a,
        message: records(0, 1, 10),
    };
    let (sent, returned) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            sender.send_batch(vec![(stuck, big), (healthy, small.clone())]);
            sent.send(()).unwrap();
        });
        // Deadlock detectors, not timings.
        returned
            .recv_timeout(Duration::from_secs(20))
            .expect("the send returned");
        let inbound = receiver
            .inbox()
            .recv_timeout(Duration::from_secs(20))
            .expect("the healthy peer got its packet");
        assert_eq!(inbound.packet, small);
    });
    drop(silent);
}

/// A peer that stalls and then reads again gets whole packets, in order: the rest of a packet
/// its socket took part of, then the packets queued behind it (some dropped while the queue
/// was full), then what is sent afterwards.
#[test]
fn a_peer_that_stalls_then_reads_gets_whole_packets_in_order() {
    let (a, b) = (NodeId::new(1), NodeId::new(2));
    let any_port: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let listener = TcpListener::bind(any_port).unwrap();
    let peers = HashMap::from([(b, listener.local_addr().unwrap())]);
    let sender = TcpTransport::bind(a, any_port, &peers, TcpConfig::default()).expect("binding");
    let (mut conn, _) = listener.accept().expect("the link connects");
    // 10 MB while the peer reads nothing: more than its socket and the link's queue hold.
    let sent: Vec<Packet> = (0..200)
        .map(|i| Packet::Protocol {
            from: a,
            message: records(i * 50, 50, 1000),
        })
        .collect();
    for p in &sent {
        sender.send(b, p.clone());
    }
    let last = Packet::Protocol {
        from: a,
        message: Message::Prepare {
            epoch: Epoch::new(9),
        },
    };
    let got = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            conn.set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            let (mut buf, mut got) = (Vec::new(), Vec::new());
            let mut chunk = vec![0u8; 1 << 16];
            while got.last() != Some(&last) {
                let n = conn.read(&mut chunk).expect("the rest arrives");
                assert!(n > 0, "the link closed");
                buf.extend_from_slice(&chunk[..n]);
                while let Ok((packet, used)) = decode_packet(&buf, MAX_PACKET) {
                    buf.drain(..used);
                    if packet != Packet::Keepalive {
                        got.push(packet);
                    }
                }
            }
            got
        });
        // Sent once the stall is over and the queue has drained.
        std::thread::sleep(Duration::from_millis(500));
        sender.send(b, last.clone());
        reader.join().unwrap()
    });
    // Every packet whole (checksummed) and in the order sent.
    let mut expected = sent.iter();
    for p in &got[..got.len() - 1] {
        assert!(expected.any(|e| e == p), "a packet out of order or damaged");
    }
    assert!(got.len() > 1, "nothing arrived from the stall");
}

fn keyed() -> TcpConfig {
    TcpConfig {
        auth: Some(AuthKey::new(b"sixteen or more bytes of secret").unwrap()),
        ..TcpConfig::default()
    }
}

/// A relay on the path to a node: forwards both ways and records, per connection, what each
/// side sent. It can send bytes of its own to the node on the latest connection.
#[derive(Default)]
struct Tap {
    /// Per connection: what the side that connected sent, and what the node sent back.
    recorded: Mutex<Vec<[Vec<u8>; 2]>>,
    /// The latest connection to the node.
    upstream: Mutex<Option<TcpStream>>,
}

impl Tap {
    /// Listens on a fresh port and relays each connection to `to`.
    fn start(to: SocketAddr) -> (Arc<Self>, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let tap = Arc::new(Tap::default());
        let relay = Arc::clone(&tap);
        std::thread::spawn(move || {
            for downstream in listener.incoming() {
                let Ok(downstream) = downstream else { return };
                let Ok(upstream) = TcpStream::connect(to) else {
                    continue;
                };
                let index = {
                    let mut recorded = relay.recorded.lock().unwrap();
                    recorded.push([Vec::new(), Vec::new()]);
                    recorded.len() - 1
                };
                *relay.upstream.lock().unwrap() = upstream.try_clone().ok();
                let pipes = [
                    (
                        downstream.try_clone().unwrap(),
                        upstream.try_clone().unwrap(),
                    ),
                    (upstream, downstream),
                ];
                for (side, (from, into)) in pipes.into_iter().enumerate() {
                    let relay = Arc::clone(&relay);
                    std::thread::spawn(move || {
                        copy(from, into, |bytes| {
                            relay.recorded.lock().unwrap()[index][side].extend_from_slice(bytes);
                        });
                    });
                }
            }
        });
        (tap, addr)
    }

    /// What side 0 (the connector) or 1 (the node) sent on `connection`.
    fn recorded(&self, connection: usize, side: usize) -> Vec<u8> {
        self.recorded.lock().unwrap()[connection][side].clone()
    }

    fn inject(&self, bytes: &[u8]) {
        let upstream = self.upstream.lock().unwrap();
        upstream
            .as_ref()
            .expect("connected")
            .write_all(bytes)
            .expect("inject");
    }
}

/// Copies `from` to `into` until either closes, showing `seen` each chunk first.
fn copy(mut from: TcpStream, mut into: TcpStream, seen: impl Fn(&[u8])) {
    let mut buf = [0u8; 64 << 10];
    while let Ok(n @ 1..) = from.read(&mut buf) {
        seen(&buf[..n]);
        if into.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = into.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

fn prepare(from: NodeId, epoch: u64) -> Packet {
    Packet::Protocol {
        from,
        message: Message::Prepare {
            epoch: Epoch::new(epoch),
        },
    }
}

/// Waits (a deadlock detector, not a timing) until `done`.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reads the challenge a node with a key opens a connection with.
fn read_challenge(stream: &mut TcpStream) {
    let mut header = [0u8; 8];
    stream
        .read_exact(&mut header)
        .expect("a challenge's header");
    let len = u32::from_le_bytes(header[..4].try_into().unwrap()) as usize;
    stream.read_exact(&mut vec![0; len]).expect("a challenge");
}

/// Node `b`, keyed, with `a` for a peer (never reached).
fn keyed_node(a: NodeId, b: NodeId) -> TcpTransport {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    TcpTransport::bind(b, any, &HashMap::from([(a, any)]), keyed()).expect("bind")
}

/// Node `a`, keyed, reaching its peer `b` at `at`.
fn keyed_link(a: NodeId, b: NodeId, at: SocketAddr) -> TcpTransport {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    TcpTransport::bind(a, any, &HashMap::from([(b, at)]), keyed()).expect("bind")
}

#[test]
fn recorded_packets_sent_again_are_refused() {
    let (a, b) = (NodeId::new(1), NodeId::new(2));
    let receiver = keyed_node(a, b);
    let (tap, tap_addr) = Tap::start(receiver.local_addr());
    let sender = keyed_link(a, b, tap_addr);
    let rejected = || receiver.stats().rejected_frames.load(Ordering::Relaxed);
    let receive = || {
        receiver
            .inbox()
            .recv_timeout(Duration::from_secs(30))
            .expect("a packet arrives")
            .packet
    };
    // More than the 64 KiB a connection's first packet may carry: the link opens with its
    // small hello.
    let large = Packet::Protocol {
        from: a,
        message: records(0, 1000, 200),
    };
    sender.send_batch(vec![(b, large.clone()), (b, prepare(a, 1))]);
    assert_eq!(receive(), large);
    assert_eq!(receive(), prepare(a, 1));
    let recorded = tap.recorded(0, 0);

    // On a connection of its own, with another challenge.
    let mut replay = TcpStream::connect(receiver.local_addr()).expect("connect");
    replay
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    read_challenge(&mut replay);
    replay.write_all(&recorded).expect("replay");
    wait_until("the replay on a new connection was not refused", || {
        rejected() == 1
    });
    assert!(
        matches!(replay.read(&mut [0; 1]), Ok(0) | Err(_)),
        "the replaying connection stays open"
    );
    assert!(receiver.inbox().is_empty(), "the replay was heard");

    // Again on the connection it was recorded on, after its hello (a second hello would be
    // refused as such, whatever its tag): closed, and the link connects again.
    let hello_len = 8 + u32::from_le_bytes(recorded[..4].try_into().unwrap()) as usize + 16;
    tap.inject(&recorded[hello_len..]);
    wait_until("the replay on its own connection was not refused", || {
        rejected() == 2
    });
    assert!(receiver.inbox().is_empty(), "the replay was heard");
    let mut epoch = 2;
    loop {
        sender.send(b, prepare(a, epoch));
        match receiver.inbox().recv_timeout(Duration::from_millis(200)) {
            Ok(inbound) => {
                assert_eq!(inbound.packet, prepare(a, epoch));
                break;
            }
            Err(_) => epoch += 1,
        }
        assert!(epoch < 150, "the link never came back");
    }
    assert!(
        tap.recorded.lock().unwrap().len() >= 2,
        "not a new connection"
    );
    assert_eq!(rejected(), 2);
}

/// A peer's link brought to another node (an address mixed up, or a relay on the path) is
/// refused there: its hello names the node it means.
#[test]
fn a_link_is_heard_only_by_the_node_it_means() {
    let (a, b, c) = (NodeId::new(1), NodeId::new(2), NodeId::new(3));
    let other = keyed_node(a, c);
    let sender = keyed_link(a, b, other.local_addr());
    sender.send(b, prepare(a, 1));
    wait_until("the misdirected link was not refused", || {
        other.stats().rejected_frames.load(Ordering::Relaxed) > 0
    });
    assert!(other.inbox().is_empty(), "a packet for b was heard by c");
}

/// Answers recorded on one client's connection and shown to another client (by someone on
/// the path posing as the node) do not verify: they are tagged with the first client's nonce.
#[test]
fn recorded_answers_are_refused_by_another_client() {
    let (a, b) = (NodeId::new(1), NodeId::new(2));
    let node = Arc::new(keyed_node(a, b));
    answer_writes(Arc::clone(&node));
    let (tap, tap_addr) = Tap::start(node.local_addr());
    let key = keyed().auth.unwrap();
    let connect = |addr| {
        TcpClient::connect(addr, Duration::from_secs(5))
            .expect("connect")
            .with_auth(key.clone())
    };
    let answered = write(&mut connect(tap_addr), Duration::from_secs(10));
    assert!(matches!(
        answered,
        Ok(Packet::WriteResult { result: Ok(_), .. })
    ));
    // The node's side of that connection, its challenge and answer, to the next client.
    let recorded = tap.recorded(0, 1);
    let impostor = TcpListener::bind("127.0.0.1:0").expect("bind");
    let impostor_addr = impostor.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut conn, _) = impostor.accept().expect("accept");
        conn.write_all(&recorded).expect("replay");
        std::thread::sleep(Duration::from_secs(30));
    });
    let fooled = write(&mut connect(impostor_addr), Duration::from_secs(10));
    let err = fooled.expect_err("a recorded answer was taken");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
}

/// A client's request too large to send fails alone: the client's next request on the same
/// connection is answered (its packets stay numbered as the node counts them). Its first
/// request may be larger than the 64 KiB a connection's first packet may carry.
#[test]
fn a_client_survives_a_request_too_large_to_send() {
    let (a, b) = (NodeId::new(1), NodeId::new(2));
    let node = Arc::new(keyed_node(a, b));
    answer_writes(Arc::clone(&node));
    let mut client = TcpClient::connect(node.local_addr(), Duration::from_secs(5))
        .expect("connect")
        .with_auth(keyed().auth.unwrap());
    let huge = |request| Packet::Write {
        request,
        write: Write::new(vec![0; MAX_PACKET], AckLevel::Leader),
    };
    let refused = client.call(huge, Duration::from_secs(10));
    assert_eq!(
        refused.expect_err("sent").kind(),
        std::io::ErrorKind::InvalidInput
    );
    let large = |request| Packet::Write {
        request,
        write: Write::new(vec![1; 200 << 10], AckLevel::Leader),
    };
    let answered = client.call(large, Duration::from_secs(10));
    assert!(
        matches!(answered, Ok(Packet::WriteResult { result: Ok(_), .. })),
        "{answered:?}"
    );
    assert!(matches!(
        write(&mut client, Duration::from_secs(10)),
        Ok(Packet::WriteResult { result: Ok(_), .. })
    ));
}

/// A client whose call failed part-way (here its handshake: a node without a key sends no
/// challenge) refuses later calls instead of sending on a connection in an unknown state.
#[test]
fn a_client_whose_call_failed_part_way_refuses_later_calls() {
    let id = NodeId::new(1);
    let bound = TcpTransport::bind_loopback(&[id], TcpConfig::default()).expect("binding");
    let mut client = TcpClient::connect(bound.addrs[&id], Duration::from_secs(5))
        .expect("connect")
        .with_auth(keyed().auth.unwrap());
    let timed_out = write(&mut client, Duration::from_millis(200)).expect_err("answered");
    assert!(
        matches!(
            timed_out.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{timed_out}"
    );
    let refused = write(&mut client, Duration::from_secs(10)).expect_err("answered");
    assert_eq!(refused.kind(), std::io::ErrorKind::NotConnected);
}

/// A sender without the key cannot make a node buffer a large packet: before a connection's
/// first authenticated packet, one over 64 KiB is refused from its header.
#[test]
fn a_large_first_packet_is_refused_from_its_header() {
    let id = NodeId::new(1);
    let bound = TcpTransport::bind_loopback(&[id], keyed()).expect("binding");
    let node = &bound.transports[&id];
    let mut stranger = TcpStream::connect(bound.addrs[&id]).expect("connect");
    stranger
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    read_challenge(&mut stranger);
    // The header of a 1 MiB packet, and only a few bytes of its body.
    let mut header = (1u32 << 20).to_le_bytes().to_vec();
    header.extend_from_slice(&[0; 4]);
    header.extend_from_slice(&[0x84; 16]);
    stranger.write_all(&header).expect("send");
    wait_until("the large first packet was not refused", || {
        node.stats().rejected_frames.load(Ordering::Relaxed) == 1
    });
    assert!(matches!(stranger.read(&mut [0; 1]), Ok(0) | Err(_)));
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// With a key, a connection that has not sent its hello within the idle timeout is closed,
/// however its bytes trickle in: a sender without the key cannot hold it, and its thread.
#[test]
fn a_connection_trickling_bytes_before_its_hello_is_closed() {
    let id = NodeId::new(1);
    let config = TcpConfig {
        auth: keyed().auth,
        ..short_idle()
    };
    let bound = TcpTransport::bind_loopback(&[id], config).expect("binding");
    let mut stranger = TcpStream::connect(bound.addrs[&id]).expect("connect");
    stranger
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    read_challenge(&mut stranger);
    // A 1,000-byte packet announced, then its bytes one at a time, each well within the idle
    // timeout (a second) of the last.
    let mut header = 1000u32.to_le_bytes().to_vec();
    header.extend_from_slice(&[0; 4]);
    stranger.write_all(&header).expect("send");
    stranger
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let started = Instant::now();
    let closed = loop {
        match stranger.read(&mut [0; 1]) {
            Err(e) if is_timeout(&e) => {
                if started.elapsed() > Duration::from_secs(20) {
                    break false;
                }
                if stranger.write_all(&[0x84]).is_err() {
                    break true;
                }
            }
            _ => break true,
        }
    };
    assert!(closed, "still open after 20 s of trickling");
}

/// Whether `stream`'s connection is closed within `limit`, trickling one `byte` every 200 ms
/// (if it is `Some`) while it waits.
fn closed_within(stream: &mut TcpStream, limit: Duration, byte: Option<u8>) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let started = Instant::now();
    loop {
        match stream.read(&mut [0; 1]) {
            Err(e) if is_timeout(&e) => {
                if started.elapsed() > limit {
                    return false;
                }
                if let Some(b) = byte
                    && stream.write_all(&[b]).is_err()
                {
                    return true;
                }
            }
            _ => return true,
        }
    }
}

/// A sender that trickles a packet's bytes, each well within the idle timeout of the last, is
/// closed once the packet is overdue: it cannot hold a connection's place and thread for as
/// long as it goes on.
#[test]
fn a_sender_trickling_a_packets_bytes_is_closed() {
    let id = NodeId::new(1);
    let bound = TcpTransport::bind_loopback(&[id], short_idle()).expect("binding");
    let node = &bound.transports[&id];
    let mut stranger = TcpStream::connect(bound.addrs[&id]).expect("connect");
    // A 1,000-byte packet announced: due within the idle timeout (a second) and 15 ms.
    let mut header = 1000u32.to_le_bytes().to_vec();
    header.extend_from_slice(&[0; 4]);
    stranger.write_all(&header).expect("send");
    assert!(
        closed_within(&mut stranger, Duration::from_secs(20), Some(0x84)),
        "still open after 20 s of trickling"
    );
    wait_until("the stalled packet was not counted", || {
        node.stats().stalled_packets.load(Ordering::Relaxed) == 1
    });
    assert_eq!(node.stats().rejected_frames.load(Ordering::Relaxed), 0);
}

/// A client's connection may be quiet between requests for good, but not in the middle of a
/// packet: one that stops there is closed after the idle timeout, as a silent peer's is,
/// though its request still awaits an answer (nothing answers here, so any byte read would
/// be the close).
#[test]
fn a_client_silent_in_the_middle_of_a_packet_is_closed() {
    let id = NodeId::new(1);
    let bound = TcpTransport::bind_loopback(&[id], short_idle()).expect("binding");
    let node = &bound.transports[&id];
    let mut client = TcpStream::connect(bound.addrs[&id]).expect("connect");
    let mut request = Vec::new();
    encode_packet(&Packet::StatusRequest { request: 1 }, &mut request).expect("encodes");
    client.write_all(&request).expect("send");
    // Quiet between requests, past the idle timeout (a second): still open.
    assert!(!closed_within(
        &mut client,
        Duration::from_millis(2500),
        None
    ));
    // Half of the next request, then silence.
    client
        .write_all(&request[..request.len() / 2])
        .expect("send");
    assert!(
        closed_within(&mut client, Duration::from_secs(20), None),
        "still open 20 s into a half-sent packet"
    );
    assert_eq!(node.stats().stalled_packets.load(Ordering::Relaxed), 1);
}

/// Connections past `max_connections` are closed at once, and served again once one ends.
#[test]
fn connections_past_the_limit_are_closed_at_once() {
    let id = NodeId::new(1);
    let config = TcpConfig {
        max_connections: 2,
        ..TcpConfig::default()
    };
    let bound = TcpTransport::bind_loopback(&[id], config).expect("binding");
    let node = &bound.transports[&id];
    let connect = || {
        let s = TcpStream::connect(bound.addrs[&id]).expect("connect");
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        s
    };
    // Open: the node neither closes it nor sends anything.
    let open = |mut s: &TcpStream| matches!(s.read(&mut [0; 1]), Err(e) if is_timeout(&e));
    let (first, second) = (connect(), connect());
    // Accepted in order: the first two are counted before the third is, which is closed (a
    // deadlock detector, not a timing: it waits up to 30 s for the close).
    let mut third = connect();
    third
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    assert!(
        matches!(third.read(&mut [0; 1]), Ok(0)),
        "a third connection was served"
    );
    assert_eq!(node.stats().refused_connections.load(Ordering::Relaxed), 1);
    assert!(open(&first) && open(&second));
    drop(first);
    wait_until("no connection was served after one ended", || {
        open(&connect())
    });
}

/// Node 1, whose one peer (node 2) is not listening, with `config`; every write it receives
/// is answered with `answer(request)`, and every protocol packet's sender is sent to the
/// receiver returned.
fn node_with_an_absent_peer(
    config: TcpConfig,
    answer: fn(u64) -> Packet,
) -> (Arc<TcpTransport>, std::sync::mpsc::Receiver<NodeId>) {
    let peer = SocketAddr::from(([127, 0, 0, 1], 1));
    let node = Arc::new(
        TcpTransport::bind(
            NodeId::new(1),
            SocketAddr::from(([127, 0, 0, 1], 0)),
            &HashMap::from([(NodeId::new(2), peer)]),
            config,
        )
        .expect("binding"),
    );
    let (heard_tx, heard) = std::sync::mpsc::channel();
    let serving = Arc::clone(&node);
    std::thread::spawn(move || {
        while let Ok(inbound) = serving.inbox().recv() {
            match inbound.packet {
                Packet::Write { request, .. } => inbound.reply.send(answer(request)),
                Packet::Protocol { from, .. } => {
                    let _ = heard_tx.send(from);
                }
                _ => {}
            }
        }
    });
    (node, heard)
}

fn written(request: u64) -> Packet {
    Packet::WriteResult {
        request,
        result: Ok(Written {
            offset: Offset::new(7),
            duplicate: false,
        }),
    }
}

/// Clients that keep their connections open cannot shut a peer out: two places per peer are
/// kept for links, and a client's first request past the rest closes its connection.
#[test]
fn clients_holding_every_place_leave_room_for_the_peers_links() {
    let (a, b) = (NodeId::new(1), NodeId::new(2));
    let config = TcpConfig {
        max_connections: 4,
        ..TcpConfig::default()
    };
    let (node, heard) = node_with_an_absent_peer(config, written);
    let addr = node.local_addr();
    let connect = || TcpClient::connect(addr, Duration::from_secs(5)).expect("connect");
    let timeout = Duration::from_secs(10);
    // 4 places, 2 of them the peer's: two clients are served and keep their connections.
    let mut held = [connect(), connect()];
    for client in &mut held {
        let answer = write(client, timeout).expect("answered");
        assert!(matches!(answer, Packet::WriteResult { result: Ok(_), .. }));
    }
    for _ in 0..2 {
        let refused = write(&mut connect(), timeout);
        assert!(
            matches!(&refused, Err(e) if !is_timeout(e)),
            "a third client was served: {refused:?}"
        );
    }
    assert_eq!(node.stats().refused_clients.load(Ordering::Relaxed), 2);
    // The peer's link still gets in, and is heard. (Sent until heard: a link accepted while
    // a refused client's connection still counted would be closed, and its packet lost.)
    let peer = TcpTransport::bind(
        b,
        SocketAddr::from(([127, 0, 0, 1], 0)),
        &HashMap::from([(a, addr)]),
        TcpConfig::default(),
    )
    .expect("binding");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        peer.send_batch(vec![(a, prepare(b, 1))]);
        match heard.recv_timeout(Duration::from_millis(100)) {
            Ok(from) => break assert_eq!(from, b),
            Err(_) => assert!(Instant::now() < deadline, "the peer was never heard"),
        }
    }
    // The held clients are still served.
    for client in &mut held {
        assert!(write(client, timeout).is_ok());
    }
}

/// A client that sends requests but does not take its answers loses its connection once an
/// answer cannot be written, and with it its place: it cannot hold places by leaving its
/// answers unread.
#[test]
fn a_client_that_leaves_its_answers_unread_loses_its_place() {
    let config = TcpConfig {
        // One place for clients.
        max_connections: 3,
        write_timeout: Duration::from_millis(200),
        ..TcpConfig::default()
    };
    // The stalled client's requests are numbered from here, and answered with about a
    // megabyte each: a few fill the sockets' buffers.
    const STALLED: u64 = 1 << 40;
    let (node, _) = node_with_an_absent_peer(config, |request| {
        if request < STALLED {
            return written(request);
        }
        Packet::Protocol {
            from: NodeId::new(1),
            message: records(0, 1000, 1000),
        }
    });
    let addr = node.local_addr();
    let stalled = TcpStream::connect(addr).expect("connect");
    let mut requests = Vec::new();
    for request in STALLED..STALLED + 16 {
        let write = Write::new(b"x".to_vec(), AckLevel::Leader);
        encode_packet(&Packet::Write { request, write }, &mut requests).expect("encode");
    }
    (&stalled).write_all(&requests).expect("requests sent");
    // Once the node gives up writing to it, the connection is closed: a write to it fails.
    // (Probed with keepalives, which get no answer: more requests would pile up answers.)
    let mut keepalive = Vec::new();
    encode_packet(&Packet::Keepalive, &mut keepalive).expect("encode");
    stalled
        .set_write_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    wait_until("the stalled client's connection stayed open", || {
        (&stalled).write_all(&keepalive).is_err()
    });
    // And its place is free again.
    wait_until(
        "no client was served after the stalled one's connection ended",
        || {
            TcpClient::connect(addr, Duration::from_secs(5))
                .is_ok_and(|mut client| write(&mut client, Duration::from_secs(10)).is_ok())
        },
    );
}
