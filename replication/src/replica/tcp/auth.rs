//! Authenticated packets: with a key shared by a replica set's members (and, unless they have
//! a key of their own, its clients), every packet carries an HMAC-SHA256 tag (its first 16
//! bytes) after it, checked before the packet is decoded (its length header is read first,
//! and the whole packet buffered). A peer without the key cannot be taken for a member: it
//! cannot, say, raise the replicas' epoch and so stop failovers.
//!
//! Tags are bound to their connection: a node opens every connection it accepts with a
//! [`Packet::Challenge`] carrying a fresh random nonce, and the side that connected opens with
//! a [`Packet::Hello`] carrying one of its own and the node it means to reach. Each tag covers
//! the packet's direction, its number on the connection and the nonces: the node's for what
//! the connector sends, both for the node's answers. A recorded packet sent again (on another
//! connection, twice on one, out of order, or back to its sender) does not verify, nor does a
//! recorded answer shown to another client, and a peer's link brought to another node is
//! refused there.

use std::io::Read;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, FrameError};
use crate::replica::types::NodeId;
use crate::replica::wire::{
    Packet, TAGGED_VERSION, decode_packet, decode_packet_as, encode_packet_head, packet_len,
};

/// Bytes of the tag after each packet.
pub(crate) const TAG_LEN: usize = 16;

/// Bytes of a connection's nonce.
pub(crate) const NONCE_LEN: usize = 16;

/// The largest body of a connection's first packet with a key: the side that connected opens
/// with a small one (its [`Packet::Hello`]), so a sender without the key gets no more than this
/// buffered (and the reader's first buffer, 64 KiB, never grows) before it is found out.
pub(crate) const FIRST_PACKET_MAX: usize = (64 << 10) - 8 - TAG_LEN;

/// A key that authenticates a replica set's packets ([`TcpConfig::auth`] for its members,
/// [`TcpConfig::client_auth`] for its clients).
///
/// Every member (node and coordinator) needs the members' key; a packet without a valid tag
/// drops its connection. Whoever holds it is trusted as a member, so give clients a key of
/// their own ([`TcpConfig::client_auth`]): with it they can write and ask for status, but not
/// speak the protocol. The tag proves that a key holder sent the packet's bytes on this
/// connection, in this order, and (for a peer's packets) meant them for the node receiving
/// them: a recorded packet sent again, on this connection or another, is refused, as is an
/// answer recorded for another client (tags cover nonces both sides choose for each
/// connection, and the packet's number on it). It does not prove which member sent a
/// packet, and it hides nothing: use a private network or a tunnel for that.
///
/// ```
/// use shardkit_replication::replica::{AuthKey, TcpConfig};
///
/// let key = AuthKey::new(b"a secret of at least sixteen bytes")?;
/// let config = TcpConfig {
///     auth: Some(key),
///     ..TcpConfig::default()
/// };
/// # let _ = config;
/// # Ok::<(), shardkit_replication::Error>(())
/// ```
///
/// [`TcpConfig::auth`]: super::TcpConfig::auth
/// [`TcpConfig::client_auth`]: super::TcpConfig::client_auth
#[derive(Clone)]
pub struct AuthKey(Hmac<Sha256>);

impl std::fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthKey(..)")
    }
}

impl AuthKey {
    /// The fewest bytes a key may have.
    pub const MIN_LEN: usize = 16;

    /// A key from `secret` (random bytes, the more the better).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a secret shorter than [`MIN_LEN`](Self::MIN_LEN).
    pub fn new(secret: &[u8]) -> Result<Self, Error> {
        let short = Error::InvalidConfig {
            reason: "an authentication key needs at least 16 bytes",
        };
        if secret.len() < Self::MIN_LEN {
            return Err(short);
        }
        Hmac::new_from_slice(secret).map(Self).map_err(|_| short)
    }

    /// Whether `other` is the same key.
    pub(crate) fn same_as(&self, other: &AuthKey) -> bool {
        self.0.clone().finalize() == other.0.clone().finalize()
    }
}

/// Which way a packet travels on a connection. Each way has its own tags, so a packet cannot
/// be sent back to the side that sent it.
#[derive(Debug, Clone, Copy)]
enum Direction {
    /// From the side that connected (a peer's link, a client) to the node that accepted.
    ToAcceptor = 1,
    /// From the node that accepted: its answers to a client.
    FromAcceptor = 2,
}

/// The tags of one direction of one connection: each packet's covers the connection's nonces,
/// the direction and the packet's number on it.
#[derive(Clone)]
pub(crate) struct Session {
    /// The key's MAC with the direction and nonce taken in.
    mac: Hmac<Sha256>,
    /// The number of the next packet.
    next: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// What the side that connected sends: it covers the node's nonce.
    pub(crate) fn to_acceptor(key: &AuthKey, acceptor: &[u8; NONCE_LEN]) -> Self {
        Self::new(key, Direction::ToAcceptor, &[acceptor])
    }

    /// What the node sends back: it covers both nonces.
    pub(crate) fn from_acceptor(
        key: &AuthKey,
        acceptor: &[u8; NONCE_LEN],
        connector: &[u8; NONCE_LEN],
    ) -> Self {
        Self::new(key, Direction::FromAcceptor, &[acceptor, connector])
    }

    fn new(key: &AuthKey, direction: Direction, nonces: &[&[u8; NONCE_LEN]]) -> Self {
        let mut mac = key.0.clone();
        mac.update(&[direction as u8]);
        nonces.iter().for_each(|n| mac.update(*n));
        Self { mac, next: 0 }
    }

    /// The MAC of the next packet, whose bytes are `parts`, one after another.
    fn next_mac(&self, parts: &[&[u8]]) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(&self.next.to_le_bytes());
        parts.iter().for_each(|p| mac.update(p));
        mac
    }

    /// The next packet's tag.
    pub(crate) fn tag(&mut self, parts: &[&[u8]]) -> [u8; TAG_LEN] {
        let mut tag = [0; TAG_LEN];
        tag.copy_from_slice(&self.next_mac(parts).finalize().into_bytes()[..TAG_LEN]);
        self.next += 1;
        tag
    }

    /// Whether `buf` (a whole packet of `len` bytes, then its tag) carries the next packet's
    /// tag; it is not counted yet.
    fn tags(&self, buf: &[u8], len: usize) -> bool {
        self.next_mac(&[&buf[..len]])
            .verify_truncated_left(&buf[len..len + TAG_LEN])
            .is_ok()
    }

    /// Gives up the next packet's number: it was sent, or dropped before any byte was.
    pub(crate) fn count(&mut self) {
        self.next += 1;
    }

    /// The number the next packet gets, to give back with [`Self::rewind`].
    pub(crate) fn mark(&self) -> u64 {
        self.next
    }

    /// Takes back the numbers given since `mark`: their packets were dropped unsent.
    pub(crate) fn rewind(&mut self, mark: u64) {
        self.next = mark;
    }
}

/// What a node checks one accepted connection's packets with.
pub(crate) struct Incoming {
    members: Session,
    clients: Option<Session>,
}

impl Incoming {
    /// Checks packets sent on the connection with `nonce`.
    pub(crate) fn new(
        members: &AuthKey,
        clients: Option<&AuthKey>,
        nonce: &[u8; NONCE_LEN],
    ) -> Self {
        let session = |key| Session::to_acceptor(key, nonce);
        Self {
            members: session(members),
            clients: clients.map(session),
        }
    }

    /// Who tagged the next packet (`len` bytes at the start of `buf`, then its tag), if
    /// anyone with a key did; counts it.
    fn verify(&mut self, buf: &[u8], len: usize) -> Option<Sender> {
        let sender = if self.members.tags(buf, len) {
            Sender::Member
        } else if self.clients.as_ref().is_some_and(|c| c.tags(buf, len)) {
            Sender::Client
        } else {
            return None;
        };
        self.members.count();
        self.clients.as_mut().map(Session::count);
        Some(sender)
    }
}

/// Who tagged a packet a node received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sender {
    /// A member, or anyone when the set has no key.
    Member,
    /// A client, with the clients' key.
    Client,
}

/// Decodes the packet at the start of `buf` as a node does: checked with the connection's
/// sessions if the node has a key; says whose tag it carried.
pub(crate) fn decode_received(
    incoming: Option<&mut Incoming>,
    buf: &[u8],
    max_body: usize,
) -> Result<(Packet, usize, Sender), FrameError> {
    match incoming {
        None => decode_packet(buf, max_body).map(|(p, used)| (p, used, Sender::Member)),
        Some(incoming) => decode_tagged(buf, max_body, |len| incoming.verify(buf, len)),
    }
}

/// Decodes the packet at the start of `buf`, checking its tag first if there is a session;
/// returns it with the bytes it (and its tag) took. As [`decode_packet`], with a missing or
/// wrong tag [`FrameError::Malformed`].
pub(crate) fn decode(
    session: Option<&mut Session>,
    buf: &[u8],
    max_body: usize,
) -> Result<(Packet, usize), FrameError> {
    let Some(session) = session else {
        return decode_packet(buf, max_body);
    };
    let verify = |len| {
        let tagged = session.tags(buf, len);
        if tagged {
            session.count();
        }
        tagged.then_some(Sender::Member)
    };
    decode_tagged(buf, max_body, verify).map(|(packet, used, _)| (packet, used))
}

/// Decodes a tagged packet at the start of `buf` once `verify`, given its length, says who
/// tagged it.
fn decode_tagged(
    buf: &[u8],
    max_body: usize,
    verify: impl FnOnce(usize) -> Option<Sender>,
) -> Result<(Packet, usize, Sender), FrameError> {
    let len = packet_len(buf, max_body)?;
    // A packet without a tag is refused at once, not when the next packet's first bytes
    // arrive to be taken for its tag.
    if buf.get(8).is_some_and(|&v| v != TAGGED_VERSION) {
        return Err(FrameError::Malformed {
            reason: "a packet without an authentication tag",
        });
    }
    let needed = len + TAG_LEN;
    if buf.len() < needed {
        return Err(FrameError::Incomplete {
            needed,
            available: buf.len(),
        });
    }
    let Some(sender) = verify(len) else {
        return Err(FrameError::Malformed {
            reason: "the packet's authentication tag does not match",
        });
    };
    let (packet, _) = decode_packet_as(&buf[..len], max_body, TAGGED_VERSION)?;
    Ok((packet, needed, sender))
}

/// The version byte packets carry, tagged or not.
pub(crate) fn version(tagged: bool) -> u8 {
    if tagged {
        TAGGED_VERSION
    } else {
        crate::replica::wire::WIRE_VERSION
    }
}

/// Appends the packet's encoding to `out`, with its tag if there is a session.
pub(crate) fn encode(
    session: Option<&mut Session>,
    packet: &Packet,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let start = out.len();
    let frames = encode_packet_head(packet, out, version(session.is_some()))?;
    out.extend_from_slice(frames);
    if let Some(session) = session {
        let tag = session.tag(&[&out[start..]]);
        out.extend_from_slice(&tag);
    }
    Ok(())
}

/// A fresh nonce for a connection.
///
/// # Errors
///
/// The system's random source failed.
pub(crate) fn nonce() -> std::io::Result<[u8; NONCE_LEN]> {
    let mut nonce = [0; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(std::io::Error::other)?;
    Ok(nonce)
}

/// The opening packet of a connection a node accepted with a key.
pub(crate) fn challenge(nonce: [u8; NONCE_LEN]) -> Vec<u8> {
    let mut out = Vec::new();
    let packet = Packet::Challenge { nonce };
    let frames =
        encode_packet_head(&packet, &mut out, TAGGED_VERSION).expect("a challenge is a few bytes");
    debug_assert!(frames.is_empty(), "a challenge carries no records");
    out
}

/// The connecting side's part of a keyed connection's opening, once the node's challenge is
/// read.
pub(crate) struct Opening {
    /// Tags what the connector sends.
    pub(crate) requests: Session,
    /// Checks what the node sends back.
    pub(crate) answers: Session,
    /// The connector's hello, tagged: its first packet.
    pub(crate) hello: Vec<u8>,
}

/// Reads the node's challenge from `stream` (the caller sets its read timeout) and makes the
/// connector's hello, naming `to` (a peer's link names the node it means; a client, none).
///
/// # Errors
///
/// As [`read_challenge`], and a failed random source.
pub(crate) fn open(
    stream: &mut impl Read,
    key: &AuthKey,
    to: Option<NodeId>,
) -> std::io::Result<Opening> {
    let node = read_challenge(stream)?;
    let mine = nonce()?;
    let mut requests = Session::to_acceptor(key, &node);
    let answers = Session::from_acceptor(key, &node, &mine);
    let mut hello = Vec::new();
    let packet = Packet::Hello { nonce: mine, to };
    encode(Some(&mut requests), &packet, &mut hello).expect("a hello is a few bytes");
    Ok(Opening {
        requests,
        answers,
        hello,
    })
}

/// Reads the [`Packet::Challenge`] a node with a key opens a connection with (the caller sets
/// the stream's read timeout), and nothing after it.
///
/// # Errors
///
/// The stream's, or [`std::io::ErrorKind::InvalidData`] for another packet (a node without a
/// key sends none: the read times out).
pub(crate) fn read_challenge(stream: &mut impl Read) -> std::io::Result<[u8; NONCE_LEN]> {
    let mut buf = vec![0; 8];
    stream.read_exact(&mut buf)?;
    let invalid = |e: FrameError| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let len = packet_len(&buf, 64).map_err(invalid)?;
    buf.resize(len, 0);
    stream.read_exact(&mut buf[8..])?;
    match decode_packet_as(&buf, 64, TAGGED_VERSION).map_err(invalid)? {
        (Packet::Challenge { nonce }, _) => Ok(nonce),
        _ => Err(invalid(FrameError::Malformed {
            reason: "a node with a key opens a connection with a challenge",
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::wire::MAX_PACKET;

    fn packet(request: u64) -> Packet {
        Packet::StatusRequest { request }
    }

    fn key(byte: u8) -> AuthKey {
        AuthKey::new(&[byte; 16]).unwrap()
    }

    /// The sending and the receiving side of one direction of a connection.
    fn sides(key: &AuthKey, nonce: u8, direction: Direction) -> (Session, Session) {
        let s = Session::new(key, direction, &[&[nonce; NONCE_LEN]]);
        (s.clone(), s)
    }

    fn encoded(session: Option<&mut Session>, request: u64) -> Vec<u8> {
        let mut bytes = Vec::new();
        encode(session, &packet(request), &mut bytes).unwrap();
        bytes
    }

    #[test]
    fn tagged_packets_decode_and_every_changed_byte_is_refused() {
        let (mut send, receive) = sides(&key(1), 0, Direction::ToAcceptor);
        let bytes = encoded(Some(&mut send), 7);
        let mut fresh = receive.clone();
        assert_eq!(
            decode(Some(&mut fresh), &bytes, MAX_PACKET).unwrap(),
            (packet(7), bytes.len())
        );
        for i in 0..bytes.len() {
            let mut changed = bytes.clone();
            changed[i] ^= 1;
            let mut fresh = receive.clone();
            assert!(
                decode(Some(&mut fresh), &changed, MAX_PACKET).is_err(),
                "byte {i}"
            );
        }
        // Short of its tag: wait for more.
        let mut fresh = receive.clone();
        assert!(matches!(
            decode(Some(&mut fresh), &bytes[..bytes.len() - 1], MAX_PACKET),
            Err(FrameError::Incomplete { .. })
        ));
    }

    #[test]
    fn a_packet_verifies_once_and_only_in_its_place() {
        let (mut send, mut receive) = sides(&key(1), 0, Direction::ToAcceptor);
        let first = encoded(Some(&mut send), 1);
        let second = encoded(Some(&mut send), 2);
        // Out of order.
        assert!(decode(Some(&mut receive.clone()), &second, MAX_PACKET).is_err());
        assert!(decode(Some(&mut receive), &first, MAX_PACKET).is_ok());
        // Again.
        assert!(decode(Some(&mut receive.clone()), &first, MAX_PACKET).is_err());
        assert!(decode(Some(&mut receive), &second, MAX_PACKET).is_ok());
    }

    #[test]
    fn another_connection_or_direction_refuses_a_packet() {
        let (mut send, _) = sides(&key(1), 0, Direction::ToAcceptor);
        let bytes = encoded(Some(&mut send), 1);
        let (_, mut other_nonce) = sides(&key(1), 1, Direction::ToAcceptor);
        assert!(decode(Some(&mut other_nonce), &bytes, MAX_PACKET).is_err());
        let (_, mut back) = sides(&key(1), 0, Direction::FromAcceptor);
        assert!(decode(Some(&mut back), &bytes, MAX_PACKET).is_err());
    }

    #[test]
    fn another_key_or_none_is_refused() {
        let (_, mut receive) = sides(&key(1), 0, Direction::ToAcceptor);
        let (mut other, _) = sides(&key(2), 0, Direction::ToAcceptor);
        let tagged = encoded(Some(&mut other), 1);
        assert!(decode(Some(&mut receive.clone()), &tagged, MAX_PACKET).is_err());
        let mut untagged = encoded(None, 1);
        untagged.extend_from_slice(&[0; TAG_LEN]);
        assert!(decode(Some(&mut receive), &untagged, MAX_PACKET).is_err());
    }

    #[test]
    fn a_side_without_the_other_sides_key_refuses_the_first_packet() {
        let (mut send, mut receive) = sides(&key(1), 0, Direction::ToAcceptor);
        let untagged = encoded(None, 1);
        // No bytes after it: refused at once, not waiting for a tag.
        assert!(matches!(
            decode(Some(&mut receive), &untagged, MAX_PACKET),
            Err(FrameError::Malformed { .. })
        ));
        let tagged = encoded(Some(&mut send), 1);
        assert!(matches!(
            decode_packet(&tagged, MAX_PACKET),
            Err(FrameError::Malformed {
                reason: "an authenticated packet, and this side has no key"
            })
        ));
    }

    #[test]
    fn the_clients_key_is_told_from_the_members_and_both_count_each_packet() {
        let (members, clients) = (key(1), key(2));
        let nonce = [9; NONCE_LEN];
        let mut incoming = Incoming::new(&members, Some(&clients), &nonce);
        let mut send_members = Session::to_acceptor(&members, &nonce);
        let mut send_clients = Session::to_acceptor(&clients, &nonce);
        // Whoever sent the last packet, the next is the connection's next.
        for (request, sender) in [
            (0, Sender::Member),
            (1, Sender::Client),
            (2, Sender::Member),
        ] {
            let bytes = match sender {
                Sender::Member => encoded(Some(&mut send_members), request),
                Sender::Client => encoded(Some(&mut send_clients), request),
            };
            let (got, used, by) = decode_received(Some(&mut incoming), &bytes, MAX_PACKET).unwrap();
            assert_eq!((got, used, by), (packet(request), bytes.len(), sender));
            // The other sender's session skips the number, as the connection does.
            match sender {
                Sender::Member => send_clients.count(),
                Sender::Client => send_members.count(),
            }
        }
    }

    #[test]
    fn answers_are_bound_to_both_sides_nonces() {
        let key = key(1);
        let (node, client, another) = ([1; NONCE_LEN], [2; NONCE_LEN], [3; NONCE_LEN]);
        let bytes = encoded(Some(&mut Session::from_acceptor(&key, &node, &client)), 1);
        let mut right = Session::from_acceptor(&key, &node, &client);
        assert!(decode(Some(&mut right), &bytes, MAX_PACKET).is_ok());
        let mut other = Session::from_acceptor(&key, &node, &another);
        assert!(decode(Some(&mut other), &bytes, MAX_PACKET).is_err());
    }

    #[test]
    fn a_challenge_is_read_whole_and_nothing_else_passes_for_one() {
        let nonce: [u8; NONCE_LEN] = std::array::from_fn(|i| i as u8);
        let mut bytes = challenge(nonce);
        bytes.extend_from_slice(b"after");
        let mut stream = &bytes[..];
        assert_eq!(read_challenge(&mut stream).unwrap(), nonce);
        assert_eq!(stream, b"after");
        let (mut send, _) = sides(&key(1), 0, Direction::FromAcceptor);
        for other in [encoded(None, 1), encoded(Some(&mut send), 1)] {
            let err = read_challenge(&mut &other[..]).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        }
    }

    #[test]
    fn short_keys_are_refused_and_keys_compare() {
        assert!(matches!(
            AuthKey::new(&[1; 15]),
            Err(Error::InvalidConfig { .. })
        ));
        assert_eq!(format!("{:?}", key(1)), "AuthKey(..)");
        assert!(key(1).same_as(&key(1)));
        assert!(!key(1).same_as(&key(2)));
    }
}
