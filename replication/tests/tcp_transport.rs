//! The TCP transport carries packets of every size intact and in order: record frames are
//! written from where they lie and read into a buffer that grows to the packet.

use std::time::Duration;

use shardkit_replication::replica::{Message, NodeId, Packet, TcpConfig, TcpTransport, Transport};
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
