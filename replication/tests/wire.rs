//! The wire format: every packet round-trips, and hostile bytes (torn, flipped, oversized,
//! garbage) are refused with a typed error, never a panic.

use std::time::Duration;

use proptest::prelude::*;
use shardkit_replication::replica::{
    AckLevel, FollowerStatus, MAX_PACKET, Message, NodeId, Packet, Position, RemoteWriteError,
    ReplicaStatus, Role, SnapshotResume, WIRE_VERSION, Write, Written, decode_packet,
    encode_packet,
};
use shardkit_replication::{Epoch, FrameError, Offset, Record, RecordBatch};

fn every_kind() -> Vec<Packet> {
    let e = Epoch::new(7);
    let o = Offset::new;
    let records = RecordBatch::from_records(&[
        Record::new(o(10), e, 1, b"a".to_vec()).with_key(b"k".to_vec()),
        Record::new(o(11), e, 2, vec![0; 300]),
    ])
    .expect("consecutive small records");
    let messages = vec![
        Message::Fetch {
            epoch: e,
            id: 1,
            from: o(10),
            last_epoch: Epoch::new(6),
            acked: o(9),
        },
        Message::Records {
            epoch: e,
            id: 1,
            records,
            commit: o(9),
        },
        Message::Records {
            epoch: e,
            id: 2,
            records: RecordBatch::new(),
            commit: o(12),
        },
        Message::Diverging {
            epoch: e,
            id: 3,
            epoch_end: Some((Epoch::new(5), o(8))),
        },
        Message::Diverging {
            epoch: e,
            id: 3,
            epoch_end: None,
        },
        Message::OutOfRange {
            epoch: e,
            id: 4,
            start: o(100),
        },
        Message::FetchSnapshot {
            epoch: e,
            id: 5,
            resume: None,
        },
        Message::FetchSnapshot {
            epoch: e,
            id: 5,
            resume: Some(SnapshotResume {
                snapshot: 9,
                from: 1 << 20,
            }),
        },
        Message::InstallSnapshot {
            epoch: e,
            id: 5,
            snapshot: 9,
            offset: o(100),
            last_epoch: Epoch::new(6),
            len: 12,
            at: 7,
            data: b"state".to_vec(),
        },
        Message::NotLeader {
            epoch: e,
            leader: Some(NodeId::new(2)),
        },
        Message::Heartbeat {
            epoch: e,
            role: Role::Leader,
            leader: None,
            position: Position {
                last_epoch: e,
                end: o(12),
            },
            commit: o(11),
            incarnation: 0xfeed_f00d,
        },
        Message::Prepare { epoch: e },
        Message::Prepared {
            epoch: e,
            position: Position::default(),
        },
        Message::Promote { epoch: e },
        Message::Follow {
            epoch: e,
            leader: NodeId::new(3),
            incarnation: Some(0xfeed_f00d),
        },
        Message::Follow {
            epoch: e,
            leader: NodeId::new(3),
            incarnation: None,
        },
    ];
    let mut packets: Vec<Packet> = messages
        .into_iter()
        .map(|message| Packet::Protocol {
            from: NodeId::new(1),
            message,
        })
        .collect();
    packets.push(Packet::Write {
        request: 9,
        write: Write::new(b"payload".to_vec(), AckLevel::All)
            .with_key(b"key".to_vec())
            .idempotent(77, 3)
            .with_timeout(Duration::from_millis(1500)),
    });
    packets.push(Packet::Write {
        request: 10,
        write: Write::new(Vec::new(), AckLevel::None),
    });
    let outcomes = [
        Ok(Written {
            offset: o(5),
            duplicate: true,
        }),
        Err(RemoteWriteError::NotLeader {
            leader: Some(NodeId::new(2)),
            epoch: e,
        }),
        Err(RemoteWriteError::NotEnoughReplicas {
            in_sync: 1,
            required: 2,
        }),
        Err(RemoteWriteError::Timeout { offset: o(4) }),
        Err(RemoteWriteError::LeadershipLost { offset: o(4) }),
        Err(RemoteWriteError::Storage {
            reason: "disk full".into(),
        }),
        Err(RemoteWriteError::TooLarge { len: 70, max: 60 }),
    ];
    for result in outcomes {
        packets.push(Packet::WriteResult { request: 9, result });
    }
    packets.push(Packet::StatusRequest { request: 11 });
    packets.push(Packet::Keepalive);
    packets.push(Packet::Challenge {
        nonce: std::array::from_fn(|i| i as u8),
    });
    for to in [None, Some(NodeId::new(3))] {
        packets.push(Packet::Hello { nonce: [7; 16], to });
    }
    packets.push(Packet::Status {
        request: 11,
        status: ReplicaStatus {
            id: NodeId::new(1),
            role: Role::Leader,
            epoch: e,
            leader: Some(NodeId::new(1)),
            start: o(0),
            end: o(12),
            flushed: o(12),
            commit: o(11),
            followers: vec![FollowerStatus {
                id: NodeId::new(2),
                end: o(11),
                acked: o(11),
                lag_records: 1,
                lag_bytes: 60,
                lag_time: Duration::from_millis(3),
                in_sync: true,
                last_fetch_ago: Some(Duration::from_millis(1)),
            }],
        },
    });
    packets
}

#[test]
fn every_packet_kind_round_trips() {
    let mut stream = Vec::new();
    for p in every_kind() {
        encode_packet(&p, &mut stream).unwrap();
    }
    let mut at = 0;
    for expected in every_kind() {
        let (p, used) = decode_packet(&stream[at..], MAX_PACKET).unwrap();
        assert_eq!(p, expected);
        at += used;
    }
    assert_eq!(at, stream.len());
}

#[test]
fn a_torn_packet_asks_for_more_at_every_cut() {
    for p in every_kind() {
        let mut buf = Vec::new();
        encode_packet(&p, &mut buf).unwrap();
        for cut in 0..buf.len() {
            assert!(
                matches!(
                    decode_packet(&buf[..cut], MAX_PACKET),
                    Err(FrameError::Incomplete { .. })
                ),
                "{p:?} cut at {cut}"
            );
        }
    }
}

#[test]
fn every_flipped_bit_is_refused() {
    for p in every_kind() {
        let mut buf = Vec::new();
        encode_packet(&p, &mut buf).unwrap();
        for bit in 0..buf.len() * 8 {
            let mut bad = buf.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            // A flip in the length may ask for more bytes; anywhere else it is an error.
            match decode_packet(&bad, MAX_PACKET) {
                Err(_) => {}
                Ok(_) => panic!("{p:?}: flipped bit {bit} accepted"),
            }
        }
    }
}

#[test]
fn oversized_wrong_version_and_unknown_kinds_are_typed_errors() {
    let mut huge = vec![0xff, 0xff, 0xff, 0x7f];
    huge.extend_from_slice(&[0; 8]);
    assert!(matches!(
        decode_packet(&huge, MAX_PACKET),
        Err(FrameError::TooLarge { .. })
    ));
    let framed = |body: &[u8]| {
        let mut out = (body.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
        out.extend_from_slice(body);
        out
    };
    let reason = |r| match r {
        Err(FrameError::Malformed { reason }) => reason,
        other => panic!("expected Malformed, got {other:?}"),
    };
    assert_eq!(
        reason(decode_packet(
            &framed(&[9, 34, 0, 0, 0, 0, 0, 0, 0, 0]),
            MAX_PACKET
        )),
        "unsupported wire version"
    );
    assert_eq!(
        reason(decode_packet(
            &framed(&[WIRE_VERSION, 0, 0, 0, 0, 200]),
            MAX_PACKET
        )),
        "unknown packet kind"
    );
    // A status request with a byte too many, and one with a field cut short.
    let mut extra = vec![WIRE_VERSION, 0, 0, 0, 0, 34];
    extra.extend_from_slice(&[0; 9]);
    assert_eq!(
        reason(decode_packet(&framed(&extra), MAX_PACKET)),
        "bytes after the packet's fields"
    );
    assert_eq!(
        reason(decode_packet(
            &framed(&[WIRE_VERSION, 0, 0, 0, 0, 34, 0, 0]),
            MAX_PACKET
        )),
        "a field runs past the packet's end"
    );
    // A count claiming more elements than bytes: refused before allocating. A status
    // (kind 35) answering request 1 from node 1, a follower in epoch 7 that knows no leader,
    // at offsets 0, with u64::MAX followers.
    let mut count = vec![WIRE_VERSION, 0, 0, 0, 0, 35];
    count.extend_from_slice(&1u64.to_le_bytes());
    count.extend_from_slice(&1u64.to_le_bytes());
    count.push(0);
    count.extend_from_slice(&7u64.to_le_bytes());
    count.push(0);
    for field in [0, 0, 0, 0, u64::MAX] {
        count.extend_from_slice(&u64::to_le_bytes(field));
    }
    assert_eq!(
        reason(decode_packet(&framed(&count), MAX_PACKET)),
        "a length exceeds the packet"
    );
}

#[test]
fn record_frames_are_checked_by_their_own_checksums_and_only_where_records_belong() {
    let framed = |body: &[u8], frames: &[u8]| {
        let mut out = ((body.len() + frames.len()) as u32).to_le_bytes().to_vec();
        out.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(frames);
        out
    };
    let reason = |r| match r {
        Err(FrameError::Malformed { reason }) => reason,
        other => panic!("expected Malformed, got {other:?}"),
    };
    let with_frames = |len: u32, rest: &[u8]| {
        let mut body = vec![WIRE_VERSION];
        body.extend_from_slice(&len.to_le_bytes());
        body.extend_from_slice(rest);
        body
    };
    // A status request (kind 34, request 0) followed by a record's frames.
    let record = Record::new(Offset::new(0), Epoch::new(1), 0, b"x".to_vec());
    let mut frame = Vec::new();
    shardkit_replication::encode(&record, &mut frame).unwrap();
    let status = with_frames(frame.len() as u32, &[34, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        reason(decode_packet(&framed(&status, &frame), MAX_PACKET)),
        "records in a packet that carries none"
    );
    // A records length beyond the packet.
    let over = with_frames(1000, &[34, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        reason(decode_packet(&framed(&over, &[]), MAX_PACKET)),
        "the records run past the packet"
    );
    // A records packet whose frames the packet checksum does not cover: a damaged frame is
    // still refused, by its own checksum.
    let mut packet = Vec::new();
    let records = RecordBatch::from_records(&[record]).unwrap();
    let message = Message::Records {
        epoch: Epoch::new(1),
        id: 1,
        records,
        commit: Offset::new(0),
    };
    encode_packet(
        &Packet::Protocol {
            from: NodeId::new(1),
            message,
        },
        &mut packet,
    )
    .unwrap();
    let mut flipped = packet.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert!(matches!(
        decode_packet(&flipped, MAX_PACKET),
        Err(FrameError::ChecksumMismatch { .. })
    ));
    // A frame whose length runs past the whole packet is damage, not a reason to read on (a
    // reader waiting for more would stall the connection).
    let frame_at = packet.len() - frame.len();
    packet[frame_at] = packet[frame_at].wrapping_add(1);
    assert_eq!(
        reason(decode_packet(&packet, MAX_PACKET)),
        "a record frame runs past the packet"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_packet(&bytes, MAX_PACKET);
    }

    /// Random bytes almost never get past the version and the first length field, so this
    /// damages valid packets of every kind (bytes overwritten, the body cut short, garbage
    /// appended) and fixes up their length and checksum: every field's decoder sees bad input.
    #[test]
    fn damaged_valid_packets_never_panic(
        kind in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
        tail in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let kinds = every_kind();
        let mut packet = Vec::new();
        encode_packet(&kinds[kind.index(kinds.len())], &mut packet).unwrap();
        let mut body = packet[8..].to_vec();
        for (at, byte) in &edits {
            if !body.is_empty() {
                let i = at.index(body.len());
                body[i] = *byte;
            }
        }
        body.truncate(cut.index(body.len() + 1));
        body.extend(&tail);
        // The checksum covers the fields, not the record frames at the end (they carry their
        // own), as the encoder computes it: the frames' length is in bytes 1..5.
        let frames_len = body
            .get(1..5)
            .map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap()) as usize);
        let checked = &body[..body.len().saturating_sub(frames_len)];
        let mut damaged = (body.len() as u32).to_le_bytes().to_vec();
        damaged.extend_from_slice(&crc32c::crc32c(checked).to_le_bytes());
        damaged.extend_from_slice(&body);
        let _ = decode_packet(&damaged, MAX_PACKET);
    }

    #[test]
    fn checksummed_garbage_never_panics(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut buf = (body.len() as u32).to_le_bytes().to_vec();
        buf.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
        buf.extend_from_slice(&body);
        let _ = decode_packet(&buf, MAX_PACKET);
    }
}
