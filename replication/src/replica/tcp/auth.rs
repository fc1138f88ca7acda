//! Authenticated packets: with a key shared by a replica set's members (and, unless they have
//! a key of their own, its clients), every packet carries an HMAC-SHA256 tag (its first 16
//! bytes) after it, checked before the packet is decoded (its length header is read first,
//! and the whole packet buffered). A peer without the key cannot be taken for a member: it
//! cannot, say, raise the replicas' epoch and so stop failovers.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, FrameError};
use crate::replica::wire::{
    Packet, TAGGED_VERSION, decode_packet, decode_packet_as, encode_packet_head, packet_len,
};

/// Bytes of the tag after each packet.
pub(crate) const TAG_LEN: usize = 16;

/// A key that authenticates a replica set's packets ([`TcpConfig::auth`] for its members,
/// [`TcpConfig::client_auth`] for its clients).
///
/// Every member (node and coordinator) needs the members' key; a packet without a valid tag
/// drops its connection. Whoever holds it is trusted as a member, so give clients a key of
/// their own ([`TcpConfig::client_auth`]): with it they can write and ask for status, but not
/// speak the protocol. The tag proves that a key holder sent the packet's bytes, nothing
/// more: not which member, not to whom, not that it is new (someone on the network path can
/// send a recorded packet again, to the same node or another; epochs fence off old leaders'
/// messages). It hides nothing: use a private network or a tunnel for that.
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

    /// The tag of a packet whose bytes are `parts`, one after another.
    pub(crate) fn tag(&self, parts: &[&[u8]]) -> [u8; TAG_LEN] {
        let mut mac = self.0.clone();
        parts.iter().for_each(|p| mac.update(p));
        let mut tag = [0; TAG_LEN];
        tag.copy_from_slice(&mac.finalize().into_bytes()[..TAG_LEN]);
        tag
    }

    /// Whether `buf` (a whole packet of `len` bytes, then its tag) carries this key's tag.
    fn tags(&self, buf: &[u8], len: usize) -> bool {
        let mut mac = self.0.clone();
        mac.update(&buf[..len]);
        mac.verify_truncated_left(&buf[len..len + TAG_LEN]).is_ok()
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

/// Decodes the packet at the start of `buf` as a node does: with the members' key if there is
/// one, else the clients'; says whose tag it carried.
pub(crate) fn decode_received(
    members: Option<&AuthKey>,
    clients: Option<&AuthKey>,
    buf: &[u8],
    max_body: usize,
) -> Result<(Packet, usize, Sender), FrameError> {
    let Some(members) = members else {
        return decode_packet(buf, max_body).map(|(p, used)| (p, used, Sender::Member));
    };
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
    let sender = if members.tags(buf, len) {
        Sender::Member
    } else if clients.is_some_and(|c| c.tags(buf, len)) {
        Sender::Client
    } else {
        return Err(FrameError::Malformed {
            reason: "the packet's authentication tag does not match",
        });
    };
    let (packet, _) = decode_packet_as(&buf[..len], max_body, TAGGED_VERSION)?;
    Ok((packet, needed, sender))
}

/// Decodes the packet at the start of `buf`, checking its tag first if there is a key;
/// returns it with the bytes it (and its tag) took. As [`decode_packet`], with a missing or
/// wrong tag [`FrameError::Malformed`].
pub(crate) fn decode(
    auth: Option<&AuthKey>,
    buf: &[u8],
    max_body: usize,
) -> Result<(Packet, usize), FrameError> {
    decode_received(auth, None, buf, max_body).map(|(packet, used, _)| (packet, used))
}

/// The version byte packets carry with `auth`.
pub(crate) fn version(auth: Option<&AuthKey>) -> u8 {
    match auth {
        Some(_) => TAGGED_VERSION,
        None => crate::replica::wire::WIRE_VERSION,
    }
}

/// Appends the packet's encoding to `out`, with its tag if there is a key.
pub(crate) fn encode(
    auth: Option<&AuthKey>,
    packet: &Packet,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let start = out.len();
    let frames = encode_packet_head(packet, out, version(auth))?;
    out.extend_from_slice(frames);
    if let Some(key) = auth {
        let tag = key.tag(&[&out[start..]]);
        out.extend_from_slice(&tag);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::wire::MAX_PACKET;

    fn packet() -> Packet {
        Packet::StatusRequest { request: 7 }
    }

    #[test]
    fn tagged_packets_decode_and_every_changed_byte_is_refused() {
        let key = AuthKey::new(&[1; 16]).unwrap();
        let mut bytes = Vec::new();
        encode(Some(&key), &packet(), &mut bytes).unwrap();
        assert_eq!(
            decode(Some(&key), &bytes, MAX_PACKET).unwrap(),
            (packet(), bytes.len())
        );
        for i in 0..bytes.len() {
            let mut changed = bytes.clone();
            changed[i] ^= 1;
            assert!(
                decode(Some(&key), &changed, MAX_PACKET).is_err(),
                "byte {i}"
            );
        }
        // Short of its tag: wait for more.
        assert!(matches!(
            decode(Some(&key), &bytes[..bytes.len() - 1], MAX_PACKET),
            Err(FrameError::Incomplete { .. })
        ));
    }

    #[test]
    fn another_key_or_none_is_refused() {
        let key = AuthKey::new(&[1; 16]).unwrap();
        let other = AuthKey::new(&[2; 16]).unwrap();
        let mut tagged = Vec::new();
        encode(Some(&other), &packet(), &mut tagged).unwrap();
        assert!(decode(Some(&key), &tagged, MAX_PACKET).is_err());
        let mut untagged = Vec::new();
        encode(None, &packet(), &mut untagged).unwrap();
        untagged.extend_from_slice(&[0; TAG_LEN]);
        assert!(decode(Some(&key), &untagged, MAX_PACKET).is_err());
    }

    #[test]
    fn a_side_without_the_other_sides_key_refuses_the_first_packet() {
        let key = AuthKey::new(&[1; 16]).unwrap();
        let mut untagged = Vec::new();
        encode(None, &packet(), &mut untagged).unwrap();
        // No bytes after it: refused at once, not waiting for a tag.
        assert!(matches!(
            decode(Some(&key), &untagged, MAX_PACKET),
            Err(FrameError::Malformed { .. })
        ));
        let mut tagged = Vec::new();
        encode(Some(&key), &packet(), &mut tagged).unwrap();
        assert!(matches!(
            decode_packet(&tagged, MAX_PACKET),
            Err(FrameError::Malformed {
                reason: "an authenticated packet, and this side has no key"
            })
        ));
    }

    #[test]
    fn the_clients_key_is_told_from_the_members() {
        let (members, clients) = (
            AuthKey::new(&[1; 16]).unwrap(),
            AuthKey::new(&[2; 16]).unwrap(),
        );
        for (key, sender) in [(&members, Sender::Member), (&clients, Sender::Client)] {
            let mut bytes = Vec::new();
            encode(Some(key), &packet(), &mut bytes).unwrap();
            let (_, used, got) =
                decode_received(Some(&members), Some(&clients), &bytes, MAX_PACKET).unwrap();
            assert_eq!((used, got), (bytes.len(), sender));
        }
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(matches!(
            AuthKey::new(&[1; 15]),
            Err(Error::InvalidConfig { .. })
        ));
        assert_eq!(
            format!("{:?}", AuthKey::new(&[1; 16]).unwrap()),
            "AuthKey(..)"
        );
    }
}
