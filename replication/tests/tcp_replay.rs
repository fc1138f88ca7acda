//! With a key, a packet recorded on the network path and sent again is refused, whether on a
//! connection of its own or again on the one it was recorded on; and a sender that has not
//! shown the key gets no large packet buffered.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shardkit_replication::replica::{
    AuthKey, Message, NodeId, Packet, TcpConfig, TcpTransport, Transport,
};
use shardkit_replication::{Epoch, Offset, Record, RecordBatch};

fn keyed() -> TcpConfig {
    TcpConfig {
        auth: Some(AuthKey::new(b"sixteen or more bytes of secret").unwrap()),
        ..TcpConfig::default()
    }
}

/// A relay on the path from a node's link to its peer: forwards both ways and records what
/// the link sends on each connection. It can send bytes of its own on the latest one.
#[derive(Default)]
struct Tap {
    /// Per connection, in order, what the connecting side sent.
    recorded: Mutex<Vec<Vec<u8>>>,
    /// The latest connection to the peer.
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
                    recorded.push(Vec::new());
                    recorded.len() - 1
                };
                *relay.upstream.lock().unwrap() = upstream.try_clone().ok();
                let (down, up) = (
                    downstream.try_clone().unwrap(),
                    upstream.try_clone().unwrap(),
                );
                std::thread::spawn(move || copy(upstream, down, |_| {}));
                let relay = Arc::clone(&relay);
                std::thread::spawn(move || {
                    copy(downstream, up, |bytes| {
                        relay.recorded.lock().unwrap()[index].extend_from_slice(bytes);
                    });
                });
            }
        });
        (tap, addr)
    }

    fn recorded(&self, connection: usize) -> Vec<u8> {
        self.recorded.lock().unwrap()[connection].clone()
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

/// Copies `from` to `to` until either closes, showing `seen` each chunk first.
fn copy(mut from: TcpStream, mut to: TcpStream, seen: impl Fn(&[u8])) {
    let mut buf = [0u8; 64 << 10];
    while let Ok(n @ 1..) = from.read(&mut buf) {
        seen(&buf[..n]);
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
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

fn records(from: NodeId) -> Packet {
    let records: Vec<Record> = (0..50)
        .map(|i| Record::new(Offset::new(i), Epoch::new(1), 0, vec![i as u8; 100]))
        .collect();
    Packet::Protocol {
        from,
        message: Message::Records {
            epoch: Epoch::new(1),
            id: 0,
            records: RecordBatch::from_records(&records).expect("consecutive records"),
            commit: Offset::new(0),
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

#[test]
fn recorded_packets_sent_again_are_refused() {
    let (a, b) = (NodeId::new(1), NodeId::new(2));
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let no_peers = HashMap::from([(a, any)]);
    let receiver = TcpTransport::bind(b, any, &no_peers, keyed()).expect("bind");
    let (tap, tap_addr) = Tap::start(receiver.local_addr());
    let sender = TcpTransport::bind(a, any, &HashMap::from([(b, tap_addr)]), keyed()).unwrap();
    let rejected = || receiver.stats().rejected_frames.load(Ordering::Relaxed);
    let receive = || {
        receiver
            .inbox()
            .recv_timeout(Duration::from_secs(30))
            .expect("a packet arrives")
            .packet
    };

    sender.send_batch(vec![(b, prepare(a, 1)), (b, records(a))]);
    assert_eq!(receive(), prepare(a, 1));
    assert_eq!(receive(), records(a));
    let recorded = tap.recorded(0);

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

    // Again on the connection it was recorded on: closed, and the link connects again.
    tap.inject(&recorded);
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
