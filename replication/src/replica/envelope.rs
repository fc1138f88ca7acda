//! What the replication layer adds to each record's payload: whether it is a leader's epoch
//! marker, and the producer id and sequence of an idempotent write.
//!
//! Layout: one tag byte (`0` plain, `1` idempotent, `2` epoch marker); for `1`, the producer id
//! and sequence as two little-endian `u64`s; then the user's payload.

use super::types::ProducerSeq;

const PLAIN: u8 = 0;
const IDEMPOTENT: u8 = 1;
const MARKER: u8 = 2;

/// A decoded payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Envelope<'a> {
    /// A user write.
    Data {
        producer: Option<ProducerSeq>,
        payload: &'a [u8],
    },
    /// The first record of a leader's epoch: lets the leader commit what earlier epochs left.
    Marker,
}

/// Encodes a user write's payload.
#[cfg(test)]
pub(crate) fn encode_data(producer: Option<ProducerSeq>, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 17);
    encode_data_into(producer, payload, &mut out);
    out
}

/// The bytes a user write's record takes in the log, framed.
pub(crate) fn framed_len(
    producer: Option<ProducerSeq>,
    key: Option<&[u8]>,
    payload: &[u8],
) -> usize {
    // The tag byte, and the producer id and sequence of an idempotent write.
    let envelope = 1 + producer.map_or(0, |_| 16);
    crate::log::memory::framed_len(key, payload) + envelope
}

/// Appends a user write's encoded payload to `out`: a batch's payloads share one buffer.
pub(crate) fn encode_data_into(producer: Option<ProducerSeq>, payload: &[u8], out: &mut Vec<u8>) {
    match producer {
        None => out.push(PLAIN),
        Some(p) => {
            out.push(IDEMPOTENT);
            out.extend_from_slice(&p.producer.to_le_bytes());
            out.extend_from_slice(&p.seq.to_le_bytes());
        }
    }
    out.extend_from_slice(payload);
}

/// The payload of an epoch marker.
pub(crate) fn marker() -> Vec<u8> {
    vec![MARKER]
}

/// Decodes a payload; `None` if it was not written by this layer.
pub(crate) fn decode(payload: &[u8]) -> Option<Envelope<'_>> {
    let (&tag, rest) = payload.split_first()?;
    match tag {
        PLAIN => Some(Envelope::Data {
            producer: None,
            payload: rest,
        }),
        IDEMPOTENT => {
            let producer = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
            let seq = u64::from_le_bytes(rest.get(8..16)?.try_into().ok()?);
            Some(Envelope::Data {
                producer: Some(ProducerSeq { producer, seq }),
                payload: &rest[16..],
            })
        }
        MARKER if rest.is_empty() => Some(Envelope::Marker),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_kind() {
        let p = ProducerSeq {
            producer: 7,
            seq: 9,
        };
        let idem = encode_data(Some(p), b"hi");
        assert_eq!(
            decode(&idem),
            Some(Envelope::Data {
                producer: Some(p),
                payload: b"hi"
            })
        );
        let plain = encode_data(None, b"");
        assert_eq!(
            decode(&plain),
            Some(Envelope::Data {
                producer: None,
                payload: b""
            })
        );
        assert_eq!(decode(&marker()), Some(Envelope::Marker));
    }

    #[test]
    fn framed_len_counts_the_encoded_envelope() {
        let p = ProducerSeq {
            producer: 7,
            seq: 9,
        };
        for producer in [None, Some(p)] {
            for key in [None, Some(&b"key"[..])] {
                let encoded = encode_data(producer, b"payload");
                assert_eq!(
                    framed_len(producer, key, b"payload"),
                    crate::log::memory::framed_len(key, &encoded)
                );
            }
        }
    }

    #[test]
    fn rejects_foreign_payloads() {
        assert_eq!(decode(b""), None);
        assert_eq!(decode(&[9, 1, 2]), None);
        assert_eq!(decode(&[IDEMPOTENT, 1, 2, 3]), None);
        assert_eq!(decode(&[MARKER, 0]), None);
    }
}
