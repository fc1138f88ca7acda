//! The bytes on the wire: every packet is a checksummed frame, validated field by field
//! before anything in it is trusted.
//!
//! Frame: `length u32 | crc32c u32 | body`, little-endian, `length` counting the body; the
//! body is `version u8 | records u32 | kind u8 | fields | record frames`. Records travel last,
//! in the log's own frame format, each with its own checksum; `records` counts their bytes,
//! and the packet's checksum covers the body before them, so no byte is checksummed twice
//! (a follower appends the frames as they came, and the leader read them from its log as they
//! are stored). With an authentication key (`TcpConfig::auth`), `version` has its top bit set
//! and the packet is followed by a 16-byte tag, and a node opens every connection it accepts
//! with a [`Packet::Challenge`] (untagged), whose nonce the tags on that connection cover.

use std::time::Duration;

use super::WriteError;
use super::message::{Message, SnapshotResume};
use super::status::{FollowerStatus, ReplicaStatus};
use super::types::{AckLevel, NodeId, Position, ProducerSeq, Role};
use super::write::{Write, Written};
use crate::batch::RecordBatch;
use crate::error::FrameError;
use crate::record::{Epoch, Offset};

/// The wire format's version: a peer speaking another is refused.
pub const WIRE_VERSION: u8 = 4;

/// The version byte of a packet followed by an authentication tag: [`WIRE_VERSION`] with its
/// top bit set, so that a side without a key refuses the first packet of a side with one
/// (a node's challenge, a connector's hello) and the other way round, instead of acting on
/// it. (A connector with a key, facing a node without, waits for a challenge that never
/// comes: its connection attempt times out.)
pub(crate) const TAGGED_VERSION: u8 = WIRE_VERSION | 0x80;

/// The largest packet body accepted by default (64 MiB, a fetch answer's worth).
pub const MAX_PACKET: usize = 64 << 20;

/// The most bytes a packet carrying records or a snapshot's part takes besides them: a
/// replica whose packets may carry at most `max_body` bytes sends records and parts of at most
/// `max_body - MAX_HEAD` ([`Replica::limit_packets`](super::Replica::limit_packets)).
pub(crate) const MAX_HEAD: usize = 128;

/// One packet: a protocol message between nodes, or a client's request or its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Packet {
    /// A protocol message from node `from`.
    Protocol {
        /// The sender.
        from: NodeId,
        /// The message.
        message: Message,
    },
    /// A client's write.
    Write {
        /// Pairs the answer with the request.
        request: u64,
        /// The write.
        write: Write,
    },
    /// The answer to a write: acknowledged, or why not.
    WriteResult {
        /// The request answered.
        request: u64,
        /// The outcome.
        result: Result<Written, RemoteWriteError>,
    },
    /// A client asks for the node's status.
    StatusRequest {
        /// Pairs the answer with the request.
        request: u64,
    },
    /// The node's status.
    Status {
        /// The request answered.
        request: u64,
        /// The status.
        status: ReplicaStatus,
    },
    /// Nothing: sent on an otherwise quiet connection from one node to another, so that the
    /// receiver can tell a quiet peer from a dead one ([`TcpConfig::idle_timeout`]).
    ///
    /// [`TcpConfig::idle_timeout`]: super::TcpConfig::idle_timeout
    Keepalive,
    /// Sent by a node with a key ([`TcpConfig::auth`]) first on every connection it accepts,
    /// without a tag: the side that connected tags its packets on this connection with
    /// `nonce`, so that no packet recorded on one connection verifies on another
    /// ([`AuthKey`]).
    ///
    /// [`TcpConfig::auth`]: super::TcpConfig::auth
    /// [`AuthKey`]: super::AuthKey
    Challenge {
        /// Random bytes, fresh for each connection.
        nonce: [u8; 16],
    },
    /// The first packet of the side that connected, with a key, tagged: its own nonce, which
    /// the node's answers on the connection are tagged with too (so a client cannot be shown
    /// answers recorded on another connection), and the node it means to reach (a peer's
    /// link; `None` from a client), which any other node refuses.
    Hello {
        /// Random bytes, fresh for each connection.
        nonce: [u8; 16],
        /// The node meant.
        to: Option<NodeId>,
    },
}

/// A [`WriteError`] as a remote client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteWriteError {
    /// [`WriteError::NotLeader`].
    NotLeader {
        /// The leader the node knows.
        leader: Option<NodeId>,
        /// The node's epoch.
        epoch: Epoch,
    },
    /// [`WriteError::NotEnoughReplicas`].
    NotEnoughReplicas {
        /// Replicas in sync.
        in_sync: u64,
        /// The minimum.
        required: u64,
    },
    /// [`WriteError::Timeout`]: the fate is unknown.
    Timeout {
        /// The write's offset.
        offset: Offset,
    },
    /// [`WriteError::LeadershipLost`]: the fate is unknown.
    LeadershipLost {
        /// The write's offset.
        offset: Offset,
    },
    /// [`WriteError::Storage`]: nothing was written.
    Storage {
        /// The log's error, as text.
        reason: String,
    },
    /// [`WriteError::TooLarge`]: nothing was written.
    TooLarge {
        /// The bytes the record would take.
        len: u64,
        /// The most a record may take.
        max: u64,
    },
}

impl RemoteWriteError {
    /// Whether the write may have been applied (retry it with the same producer sequence).
    pub fn is_fate_unknown(&self) -> bool {
        matches!(
            self,
            RemoteWriteError::Timeout { .. } | RemoteWriteError::LeadershipLost { .. }
        )
    }
}

impl From<&WriteError> for RemoteWriteError {
    fn from(e: &WriteError) -> Self {
        match e {
            WriteError::NotLeader { leader, epoch } => RemoteWriteError::NotLeader {
                leader: *leader,
                epoch: *epoch,
            },
            WriteError::NotEnoughReplicas { in_sync, required } => {
                RemoteWriteError::NotEnoughReplicas {
                    in_sync: *in_sync as u64,
                    required: *required as u64,
                }
            }
            WriteError::Timeout { offset } => RemoteWriteError::Timeout { offset: *offset },
            WriteError::LeadershipLost { offset } => {
                RemoteWriteError::LeadershipLost { offset: *offset }
            }
            WriteError::Storage(e) => RemoteWriteError::Storage {
                reason: e.to_string(),
            },
            WriteError::TooLarge { len, max } => RemoteWriteError::TooLarge {
                len: *len as u64,
                max: *max as u64,
            },
        }
    }
}

impl std::fmt::Display for RemoteWriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoteWriteError::NotLeader { leader, epoch } => {
                write!(f, "not the leader (epoch {epoch}, leader {leader:?})")
            }
            RemoteWriteError::NotEnoughReplicas { in_sync, required } => {
                write!(f, "only {in_sync} replicas in sync, {required} required")
            }
            RemoteWriteError::Timeout { offset } => {
                write!(f, "timed out at offset {offset}; fate unknown")
            }
            RemoteWriteError::LeadershipLost { offset } => {
                write!(f, "leadership lost at offset {offset}; fate unknown")
            }
            RemoteWriteError::Storage { reason } => write!(f, "the leader's log failed: {reason}"),
            RemoteWriteError::TooLarge { len, max } => write!(
                f,
                "the record would take {len} bytes, over the {max} a packet carries; nothing was written"
            ),
        }
    }
}

impl std::error::Error for RemoteWriteError {}

/// Appends `packet`'s frame to `out`.
///
/// # Errors
///
/// [`FrameError::TooLarge`] if the body would exceed [`MAX_PACKET`] (or a record its own
/// limit); `out` is unchanged then.
pub fn encode_packet(packet: &Packet, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let frames = encode_packet_head(packet, out, WIRE_VERSION)?;
    out.extend_from_slice(frames);
    Ok(())
}

/// Appends `packet`'s frame to `out` with `version` ([`WIRE_VERSION`], or [`TAGGED_VERSION`]
/// when a tag follows), but for the record frames it ends with, which it returns: they follow
/// as they are (a transport writes them from where they lie).
///
/// # Errors
///
/// As [`encode_packet`].
pub(crate) fn encode_packet_head<'p>(
    packet: &'p Packet,
    out: &mut Vec<u8>,
    version: u8,
) -> Result<&'p [u8], FrameError> {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    let mut e = Encoder(out);
    e.u8(version);
    e.0.extend_from_slice(&[0; 4]);
    let frames = match encode_body(packet, &mut e) {
        Ok(frames) => frames,
        Err(err) => {
            out.truncate(start);
            return Err(err);
        }
    };
    let body = out.len() - start - 8 + frames.len();
    if body > MAX_PACKET {
        out.truncate(start);
        return Err(FrameError::TooLarge { len: body as u64 });
    }
    // Within MAX_PACKET, so within u32.
    out[start + 9..start + 13].copy_from_slice(&(frames.len() as u32).to_le_bytes());
    let crc = crc32c::crc32c(&out[start + 8..]);
    out[start..start + 4].copy_from_slice(&(body as u32).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(frames)
}

/// The length of the packet starting at `buf`, header included, from its header alone.
///
/// # Errors
///
/// [`FrameError::Incomplete`] if `buf` is shorter than a header, [`FrameError::TooLarge`] for
/// a body over `max_body`.
pub(crate) fn packet_len(buf: &[u8], max_body: usize) -> Result<usize, FrameError> {
    if buf.len() < 8 {
        return Err(FrameError::Incomplete {
            needed: 8,
            available: buf.len(),
        });
    }
    let len = u32::from_le_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
    if len > max_body {
        return Err(FrameError::TooLarge { len: len as u64 });
    }
    Ok(8 + len)
}

/// Decodes one packet from the front of `buf`; returns it and the bytes it took.
///
/// # Errors
///
/// [`FrameError::Incomplete`] when `buf` holds only part of the frame (read more),
/// [`FrameError::TooLarge`] for a length over `max_body`, [`FrameError::ChecksumMismatch`]
/// for damaged bytes, and [`FrameError::Malformed`] for a wrong version, an unknown kind or
/// fields that do not add up. After any error but `Incomplete`, the stream cannot be trusted.
pub fn decode_packet(buf: &[u8], max_body: usize) -> Result<(Packet, usize), FrameError> {
    decode_packet_as(buf, max_body, WIRE_VERSION)
}

/// [`decode_packet`] of a packet written with `version`.
pub(crate) fn decode_packet_as(
    buf: &[u8],
    max_body: usize,
    version: u8,
) -> Result<(Packet, usize), FrameError> {
    let whole = packet_len(buf, max_body)?;
    if buf.len() < whole {
        return Err(FrameError::Incomplete {
            needed: whole,
            available: buf.len(),
        });
    }
    let len = whole - 8;
    let stored = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    let body = &buf[8..8 + len];
    // The version decides the layout, so it is read first; a damaged one is refused too.
    if body.first() != Some(&version) {
        return Err(malformed(if body.first() == Some(&TAGGED_VERSION) {
            "an authenticated packet, and this side has no key"
        } else {
            "unsupported wire version"
        }));
    }
    if body.len() < 5 {
        return Err(malformed("a field runs past the packet's end"));
    }
    let frames_len = u32::from_le_bytes(body[1..5].try_into().expect("4 bytes")) as usize;
    // A damaged length moves the checksummed range, and so fails the checksum below.
    let Some(checked_len) = len.checked_sub(frames_len).filter(|&c| c >= 5) else {
        return Err(malformed("the records run past the packet"));
    };
    let (checked, frames) = body.split_at(checked_len);
    let computed = crc32c::crc32c(checked);
    if stored != computed {
        return Err(FrameError::ChecksumMismatch { stored, computed });
    }
    let mut d = Decoder {
        fields: &checked[5..],
        frames: Some(frames),
    };
    let packet = decode_body(&mut d)?;
    if !d.fields.is_empty() {
        return Err(malformed("bytes after the packet's fields"));
    }
    if d.frames.is_some_and(|f| !f.is_empty()) {
        return Err(malformed("records in a packet that carries none"));
    }
    Ok((packet, 8 + len))
}

fn malformed(reason: &'static str) -> FrameError {
    FrameError::Malformed { reason }
}

struct Encoder<'a>(&'a mut Vec<u8>);

impl Encoder<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }
    fn bytes(&mut self, v: &[u8]) {
        self.u64(v.len() as u64);
        self.0.extend_from_slice(v);
    }
    fn opt_u64(&mut self, v: Option<u64>) {
        match v {
            Some(v) => {
                self.u8(1);
                self.u64(v);
            }
            None => self.u8(0),
        }
    }
    fn duration(&mut self, d: Duration) {
        self.u64(d.as_micros().min(u128::from(u64::MAX)) as u64);
    }
    fn position(&mut self, p: Position) {
        self.u64(p.last_epoch.get());
        self.u64(p.end.get());
    }
}

struct Decoder<'a> {
    /// The checksummed fields not read yet.
    fields: &'a [u8],
    /// The record frames after the fields, until a field takes them.
    frames: Option<&'a [u8]>,
}

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.fields.len() < n {
            return Err(malformed("a field runs past the packet's end"));
        }
        let (head, rest) = self.fields.split_at(n);
        self.fields = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, FrameError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn bool(&mut self) -> Result<bool, FrameError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(malformed("a flag is neither 0 nor 1")),
        }
    }
    fn len(&mut self) -> Result<usize, FrameError> {
        let n = self.u64()?;
        // A count can never exceed the bytes left: refuse before allocating for it.
        if n > self.fields.len() as u64 {
            return Err(malformed("a length exceeds the packet"));
        }
        Ok(n as usize)
    }
    fn bytes(&mut self) -> Result<Vec<u8>, FrameError> {
        let n = self.len()?;
        Ok(self.take(n)?.to_vec())
    }
    fn opt_u64(&mut self) -> Result<Option<u64>, FrameError> {
        Ok(if self.bool()? {
            Some(self.u64()?)
        } else {
            None
        })
    }
    fn epoch(&mut self) -> Result<Epoch, FrameError> {
        self.u64().map(Epoch::new)
    }
    fn offset(&mut self) -> Result<Offset, FrameError> {
        self.u64().map(Offset::new)
    }
    fn node(&mut self) -> Result<NodeId, FrameError> {
        self.u64().map(NodeId::new)
    }
    fn duration(&mut self) -> Result<Duration, FrameError> {
        self.u64().map(Duration::from_micros)
    }
    fn position(&mut self) -> Result<Position, FrameError> {
        Ok(Position {
            last_epoch: self.epoch()?,
            end: self.offset()?,
        })
    }
    fn role(&mut self) -> Result<Role, FrameError> {
        match self.u8()? {
            0 => Ok(Role::Follower),
            1 => Ok(Role::Leader),
            _ => Err(malformed("unknown role")),
        }
    }
    /// The record frames, each checked against its own checksum.
    fn records(&mut self) -> Result<RecordBatch, FrameError> {
        RecordBatch::from_frames(self.frames.take().unwrap_or_default().to_vec()).map_err(|e| {
            match e {
                // The packet is whole: a frame that runs past it is damage, not a reason to
                // wait for more bytes.
                FrameError::Incomplete { .. } => malformed("a record frame runs past the packet"),
                e => e,
            }
        })
    }
}

fn role_code(role: Role) -> u8 {
    match role {
        Role::Follower => 0,
        Role::Leader => 1,
    }
}

fn ack_code(ack: AckLevel) -> u8 {
    match ack {
        AckLevel::None => 0,
        AckLevel::Leader => 1,
        AckLevel::Quorum => 2,
        AckLevel::All => 3,
    }
}

// Kinds of packets (protocol messages first).
const FETCH: u8 = 1;
const RECORDS: u8 = 2;
const DIVERGING: u8 = 3;
const OUT_OF_RANGE: u8 = 4;
const FETCH_SNAPSHOT: u8 = 5;
const INSTALL_SNAPSHOT: u8 = 6;
const NOT_LEADER: u8 = 7;
const HEARTBEAT: u8 = 8;
const PREPARE: u8 = 9;
const PREPARED: u8 = 10;
const PROMOTE: u8 = 11;
const FOLLOW: u8 = 12;
const WRITE: u8 = 32;
const WRITE_RESULT: u8 = 33;
const STATUS_REQUEST: u8 = 34;
const STATUS: u8 = 35;
const KEEPALIVE: u8 = 48;
const CHALLENGE: u8 = 49;
const HELLO: u8 = 50;

/// Encodes the packet's fields; returns the record frames that follow them.
fn encode_body<'p>(packet: &'p Packet, e: &mut Encoder<'_>) -> Result<&'p [u8], FrameError> {
    match packet {
        Packet::Protocol { from, message } => return encode_message(from.get(), message, e),
        Packet::Write { request, write } => {
            e.u8(WRITE);
            e.u64(*request);
            e.u8(ack_code(write.ack));
            e.opt_u64(write.producer.map(|p| p.producer));
            e.u64(write.producer.map_or(0, |p| p.seq));
            e.duration(write.timeout);
            e.bool(write.key.is_some());
            e.bytes(write.key.as_deref().unwrap_or_default());
            e.bytes(&write.payload);
        }
        Packet::WriteResult { request, result } => {
            e.u8(WRITE_RESULT);
            e.u64(*request);
            match result {
                Ok(w) => {
                    e.u8(0);
                    e.u64(w.offset.get());
                    e.bool(w.duplicate);
                }
                Err(RemoteWriteError::NotLeader { leader, epoch }) => {
                    e.u8(1);
                    e.opt_u64(leader.map(NodeId::get));
                    e.u64(epoch.get());
                }
                Err(RemoteWriteError::NotEnoughReplicas { in_sync, required }) => {
                    e.u8(2);
                    e.u64(*in_sync);
                    e.u64(*required);
                }
                Err(RemoteWriteError::Timeout { offset }) => {
                    e.u8(3);
                    e.u64(offset.get());
                }
                Err(RemoteWriteError::LeadershipLost { offset }) => {
                    e.u8(4);
                    e.u64(offset.get());
                }
                Err(RemoteWriteError::Storage { reason }) => {
                    e.u8(5);
                    e.bytes(reason.as_bytes());
                }
                Err(RemoteWriteError::TooLarge { len, max }) => {
                    e.u8(6);
                    e.u64(*len);
                    e.u64(*max);
                }
            }
        }
        Packet::StatusRequest { request } => {
            e.u8(STATUS_REQUEST);
            e.u64(*request);
        }
        Packet::Keepalive => e.u8(KEEPALIVE),
        Packet::Challenge { nonce } => {
            e.u8(CHALLENGE);
            e.0.extend_from_slice(nonce);
        }
        Packet::Hello { nonce, to } => {
            e.u8(HELLO);
            e.0.extend_from_slice(nonce);
            e.opt_u64(to.map(NodeId::get));
        }
        Packet::Status { request, status } => {
            e.u8(STATUS);
            e.u64(*request);
            e.u64(status.id.get());
            e.u8(role_code(status.role));
            e.u64(status.epoch.get());
            e.opt_u64(status.leader.map(NodeId::get));
            for o in [status.start, status.end, status.flushed, status.commit] {
                e.u64(o.get());
            }
            e.u64(status.followers.len() as u64);
            for f in &status.followers {
                e.u64(f.id.get());
                e.u64(f.end.get());
                e.u64(f.acked.get());
                e.u64(f.lag_records);
                e.u64(f.lag_bytes);
                e.duration(f.lag_time);
                e.bool(f.in_sync);
                e.opt_u64(f.last_fetch_ago.map(|d| d.as_micros() as u64));
            }
        }
    }
    Ok(&[])
}

/// As [`encode_body`], for a protocol message.
fn encode_message<'p>(
    from: u64,
    message: &'p Message,
    e: &mut Encoder<'_>,
) -> Result<&'p [u8], FrameError> {
    let kind = match message {
        Message::Fetch { .. } => FETCH,
        Message::Records { .. } => RECORDS,
        Message::Diverging { .. } => DIVERGING,
        Message::OutOfRange { .. } => OUT_OF_RANGE,
        Message::FetchSnapshot { .. } => FETCH_SNAPSHOT,
        Message::InstallSnapshot { .. } => INSTALL_SNAPSHOT,
        Message::NotLeader { .. } => NOT_LEADER,
        Message::Heartbeat { .. } => HEARTBEAT,
        Message::Prepare { .. } => PREPARE,
        Message::Prepared { .. } => PREPARED,
        Message::Promote { .. } => PROMOTE,
        Message::Follow { .. } => FOLLOW,
    };
    e.u8(kind);
    e.u64(from);
    e.u64(message.epoch().get());
    match message {
        Message::Fetch {
            id,
            from,
            last_epoch,
            acked,
            ..
        } => {
            e.u64(*id);
            e.u64(from.get());
            e.u64(last_epoch.get());
            e.u64(acked.get());
        }
        Message::Records {
            id,
            records,
            commit,
            ..
        } => {
            e.u64(*id);
            e.u64(commit.get());
            return Ok(records.frames());
        }
        Message::Diverging { id, epoch_end, .. } => {
            e.u64(*id);
            e.opt_u64(epoch_end.map(|(ep, _)| ep.get()));
            e.u64(epoch_end.map_or(0, |(_, end)| end.get()));
        }
        Message::OutOfRange { id, start, .. } => {
            e.u64(*id);
            e.u64(start.get());
        }
        Message::FetchSnapshot { id, resume, .. } => {
            e.u64(*id);
            e.opt_u64(resume.map(|r| r.snapshot));
            e.u64(resume.map_or(0, |r| r.from));
        }
        Message::InstallSnapshot {
            id,
            snapshot,
            offset,
            last_epoch,
            len,
            at,
            data,
            ..
        } => {
            e.u64(*id);
            e.u64(*snapshot);
            e.u64(offset.get());
            e.u64(last_epoch.get());
            e.u64(*len);
            e.u64(*at);
            e.bytes(data);
        }
        Message::NotLeader { leader, .. } => e.opt_u64(leader.map(NodeId::get)),
        Message::Heartbeat {
            role,
            leader,
            position,
            commit,
            incarnation,
            ..
        } => {
            e.u8(role_code(*role));
            e.opt_u64(leader.map(NodeId::get));
            e.position(*position);
            e.u64(commit.get());
            e.u64(*incarnation);
        }
        Message::Prepare { .. } | Message::Promote { .. } => {}
        Message::Prepared { position, .. } => e.position(*position),
        Message::Follow {
            leader,
            incarnation,
            ..
        } => {
            e.u64(leader.get());
            e.opt_u64(*incarnation);
        }
    }
    Ok(&[])
}

fn decode_body(d: &mut Decoder<'_>) -> Result<Packet, FrameError> {
    let kind = d.u8()?;
    Ok(match kind {
        FETCH..=FOLLOW => {
            let from = d.node()?;
            let epoch = d.epoch()?;
            Packet::Protocol {
                from,
                message: decode_message(kind, epoch, d)?,
            }
        }
        WRITE => {
            let request = d.u64()?;
            let ack = match d.u8()? {
                0 => AckLevel::None,
                1 => AckLevel::Leader,
                2 => AckLevel::Quorum,
                3 => AckLevel::All,
                _ => return Err(malformed("unknown ack level")),
            };
            let producer = d.opt_u64()?;
            let seq = d.u64()?;
            let timeout = d.duration()?;
            let has_key = d.bool()?;
            let key = d.bytes()?;
            let payload = d.bytes()?;
            Packet::Write {
                request,
                write: Write {
                    key: has_key.then_some(key),
                    payload,
                    ack,
                    producer: producer.map(|producer| ProducerSeq { producer, seq }),
                    timeout,
                },
            }
        }
        WRITE_RESULT => {
            let request = d.u64()?;
            let result = match d.u8()? {
                0 => Ok(Written {
                    offset: d.offset()?,
                    duplicate: d.bool()?,
                }),
                1 => Err(RemoteWriteError::NotLeader {
                    leader: d.opt_u64()?.map(NodeId::new),
                    epoch: d.epoch()?,
                }),
                2 => Err(RemoteWriteError::NotEnoughReplicas {
                    in_sync: d.u64()?,
                    required: d.u64()?,
                }),
                3 => Err(RemoteWriteError::Timeout {
                    offset: d.offset()?,
                }),
                4 => Err(RemoteWriteError::LeadershipLost {
                    offset: d.offset()?,
                }),
                5 => Err(RemoteWriteError::Storage {
                    reason: String::from_utf8_lossy(&d.bytes()?).into_owned(),
                }),
                6 => Err(RemoteWriteError::TooLarge {
                    len: d.u64()?,
                    max: d.u64()?,
                }),
                _ => return Err(malformed("unknown write outcome")),
            };
            Packet::WriteResult { request, result }
        }
        STATUS_REQUEST => Packet::StatusRequest { request: d.u64()? },
        KEEPALIVE => Packet::Keepalive,
        CHALLENGE => Packet::Challenge {
            nonce: d.take(16)?.try_into().expect("16 bytes"),
        },
        HELLO => Packet::Hello {
            nonce: d.take(16)?.try_into().expect("16 bytes"),
            to: d.opt_u64()?.map(NodeId::new),
        },
        STATUS => {
            let request = d.u64()?;
            let id = d.node()?;
            let role = d.role()?;
            let epoch = d.epoch()?;
            let leader = d.opt_u64()?.map(NodeId::new);
            let (start, end, flushed, commit) =
                (d.offset()?, d.offset()?, d.offset()?, d.offset()?);
            let n = d.len()?;
            let mut followers = Vec::with_capacity(n.min(64));
            for _ in 0..n {
                followers.push(FollowerStatus {
                    id: d.node()?,
                    end: d.offset()?,
                    acked: d.offset()?,
                    lag_records: d.u64()?,
                    lag_bytes: d.u64()?,
                    lag_time: d.duration()?,
                    in_sync: d.bool()?,
                    last_fetch_ago: d.opt_u64()?.map(Duration::from_micros),
                });
            }
            Packet::Status {
                request,
                status: ReplicaStatus {
                    id,
                    role,
                    epoch,
                    leader,
                    start,
                    end,
                    flushed,
                    commit,
                    followers,
                },
            }
        }
        _ => return Err(malformed("unknown packet kind")),
    })
}

fn decode_message(kind: u8, epoch: Epoch, d: &mut Decoder<'_>) -> Result<Message, FrameError> {
    Ok(match kind {
        FETCH => Message::Fetch {
            epoch,
            id: d.u64()?,
            from: d.offset()?,
            last_epoch: d.epoch()?,
            acked: d.offset()?,
        },
        RECORDS => {
            let id = d.u64()?;
            let commit = d.offset()?;
            Message::Records {
                epoch,
                id,
                records: d.records()?,
                commit,
            }
        }
        DIVERGING => {
            let id = d.u64()?;
            let e = d.opt_u64()?;
            let end = d.offset()?;
            Message::Diverging {
                epoch,
                id,
                epoch_end: e.map(|e| (Epoch::new(e), end)),
            }
        }
        OUT_OF_RANGE => Message::OutOfRange {
            epoch,
            id: d.u64()?,
            start: d.offset()?,
        },
        FETCH_SNAPSHOT => {
            let id = d.u64()?;
            let snapshot = d.opt_u64()?;
            let from = d.u64()?;
            Message::FetchSnapshot {
                epoch,
                id,
                resume: snapshot.map(|snapshot| SnapshotResume { snapshot, from }),
            }
        }
        INSTALL_SNAPSHOT => {
            let id = d.u64()?;
            let snapshot = d.u64()?;
            let offset = d.offset()?;
            let last_epoch = d.epoch()?;
            Message::InstallSnapshot {
                epoch,
                id,
                snapshot,
                offset,
                last_epoch,
                len: d.u64()?,
                at: d.u64()?,
                data: d.bytes()?,
            }
        }
        NOT_LEADER => Message::NotLeader {
            epoch,
            leader: d.opt_u64()?.map(NodeId::new),
        },
        HEARTBEAT => Message::Heartbeat {
            epoch,
            role: d.role()?,
            leader: d.opt_u64()?.map(NodeId::new),
            position: d.position()?,
            commit: d.offset()?,
            incarnation: d.u64()?,
        },
        PREPARE => Message::Prepare { epoch },
        PREPARED => Message::Prepared {
            epoch,
            position: d.position()?,
        },
        PROMOTE => Message::Promote { epoch },
        _ => Message::Follow {
            epoch,
            leader: d.node()?,
            incarnation: d.opt_u64()?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    /// At their largest, the heads of the packets that carry records or a snapshot's part fit
    /// in [`MAX_HEAD`], so fitting what they carry to `max_body - MAX_HEAD` fits the packets.
    #[test]
    fn the_heads_of_packets_carrying_records_or_parts_fit_max_head() {
        let (epoch, offset) = (Epoch::new(u64::MAX), Offset::new(u64::MAX - 1));
        let record = Record::new(offset, epoch, u64::MAX, vec![0; 1000]);
        let records = Message::Records {
            epoch,
            id: u64::MAX,
            records: RecordBatch::from_records(&[record]).expect("one record"),
            commit: offset,
        };
        let part = Message::InstallSnapshot {
            epoch,
            id: u64::MAX,
            snapshot: u64::MAX,
            offset,
            last_epoch: epoch,
            len: u64::MAX,
            at: u64::MAX,
            data: vec![0; 1000],
        };
        for (message, in_fields) in [(records, 0), (part, 1000)] {
            let packet = Packet::Protocol {
                from: NodeId::new(u64::MAX),
                message,
            };
            let mut out = Vec::new();
            encode_packet_head(&packet, &mut out, TAGGED_VERSION).expect("encodes");
            let head = out.len() - 8 - in_fields;
            assert!(head <= MAX_HEAD, "a head of {head} bytes: {packet:?}");
        }
    }
}
