//! Authenticated packets: with a key shared by a replica set's nodes and clients, every packet
//! carries an HMAC-SHA256 tag (its first 16 bytes) after it, checked before anything in the
//! packet is read. A peer without the key cannot be taken for a member: it cannot, say, raise
//! the replicas' epoch and so stop failovers.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, FrameError};
use crate::replica::wire::{Packet, decode_packet, packet_len};

/// Bytes of the tag after each packet.
pub(crate) const TAG_LEN: usize = 16;

/// A key that authenticates a replica set's packets ([`TcpConfig::auth`]).
///
/// Every node and client of the set needs the same key: a packet without a valid tag drops its
/// connection. The tag proves who sent a packet, not that it is new (a recorded packet can be
/// sent again; epochs fence off old leaders' messages), and hides nothing (use a private
/// network or a tunnel for that).
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

    /// Decodes the packet at the start of `buf` once its tag, after it, checks out; returns it
    /// with the bytes it and its tag took. As [`decode_packet`], with a wrong tag
    /// [`FrameError::Malformed`].
    pub(crate) fn decode(
        &self,
        buf: &[u8],
        max_body: usize,
    ) -> Result<(Packet, usize), FrameError> {
        let len = packet_len(buf, max_body)?;
        let needed = len + TAG_LEN;
        if buf.len() < needed {
            return Err(FrameError::Incomplete {
                needed,
                available: buf.len(),
            });
        }
        let mut mac = self.0.clone();
        mac.update(&buf[..len]);
        if mac.verify_truncated_left(&buf[len..needed]).is_err() {
            return Err(FrameError::Malformed {
                reason: "the packet's authentication tag does not match",
            });
        }
        let (packet, _) = decode_packet(&buf[..len], max_body)?;
        Ok((packet, needed))
    }
}

/// Decodes the packet at the start of `buf`, checking its tag first if there is a key.
pub(crate) fn decode(
    auth: Option<&AuthKey>,
    buf: &[u8],
    max_body: usize,
) -> Result<(Packet, usize), FrameError> {
    match auth {
        Some(key) => key.decode(buf, max_body),
        None => decode_packet(buf, max_body),
    }
}

/// Appends the packet's encoding to `out`, with its tag if there is a key.
pub(crate) fn encode(
    auth: Option<&AuthKey>,
    packet: &Packet,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let start = out.len();
    crate::replica::wire::encode_packet(packet, out)?;
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
            key.decode(&bytes, MAX_PACKET).unwrap(),
            (packet(), bytes.len())
        );
        for i in 0..bytes.len() {
            let mut changed = bytes.clone();
            changed[i] ^= 1;
            assert!(key.decode(&changed, MAX_PACKET).is_err(), "byte {i}");
        }
        // Short of its tag: wait for more.
        assert!(matches!(
            key.decode(&bytes[..bytes.len() - 1], MAX_PACKET),
            Err(FrameError::Incomplete { .. })
        ));
    }

    #[test]
    fn another_key_or_none_is_refused() {
        let key = AuthKey::new(&[1; 16]).unwrap();
        let other = AuthKey::new(&[2; 16]).unwrap();
        let mut tagged = Vec::new();
        encode(Some(&other), &packet(), &mut tagged).unwrap();
        assert!(key.decode(&tagged, MAX_PACKET).is_err());
        let mut untagged = Vec::new();
        encode(None, &packet(), &mut untagged).unwrap();
        untagged.extend_from_slice(&[0; TAG_LEN]);
        assert!(key.decode(&untagged, MAX_PACKET).is_err());
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
