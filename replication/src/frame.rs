//! The checksummed frame records are stored and shipped in (layout in the crate docs).

use crate::error::FrameError;
use crate::record::{Epoch, Offset, Record};

/// Bytes before the body: length and checksum.
pub const FRAME_HEADER_LEN: usize = 8;

/// The largest frame body accepted, 64 MiB: a length beyond it is garbage, not a record.
pub const MAX_FRAME_BODY: usize = 64 << 20;

/// Fixed-size body fields: offset, epoch, timestamp, key length.
const FIXED_BODY: usize = 8 + 8 + 8 + 4;

/// Key length stored for "no key".
const NO_KEY: u32 = u32::MAX;

/// Appends `record`'s frame to `out`.
///
/// # Errors
///
/// [`FrameError::TooLarge`] if the body would exceed [`MAX_FRAME_BODY`]; `out` is unchanged.
pub fn encode(record: &Record, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let parts = FrameParts {
        offset: record.offset,
        epoch: record.epoch,
        timestamp_ms: record.timestamp_ms,
        key: record.key.as_deref(),
        payload: &record.payload,
    };
    encode_parts(&parts, out)
}

/// A record's fields, borrowed: what the log frames when it appends without copying payloads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameParts<'a> {
    pub(crate) offset: Offset,
    pub(crate) epoch: Epoch,
    pub(crate) timestamp_ms: u64,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) payload: &'a [u8],
}

/// [`encode`] from borrowed parts.
pub(crate) fn encode_parts(record: &FrameParts<'_>, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let key_len = record.key.map_or(0, <[u8]>::len);
    let body = FIXED_BODY + key_len + record.payload.len();
    if body > MAX_FRAME_BODY {
        return Err(FrameError::TooLarge { len: body as u64 });
    }
    out.reserve(FRAME_HEADER_LEN + body);
    let start = out.len();
    out.extend_from_slice(&(body as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&record.offset.get().to_le_bytes());
    out.extend_from_slice(&record.epoch.get().to_le_bytes());
    out.extend_from_slice(&record.timestamp_ms.to_le_bytes());
    match record.key {
        Some(key) => {
            out.extend_from_slice(&(key.len() as u32).to_le_bytes());
            out.extend_from_slice(key);
        }
        None => out.extend_from_slice(&NO_KEY.to_le_bytes()),
    }
    out.extend_from_slice(record.payload);
    let crc = crc32c::crc32c(&out[start + FRAME_HEADER_LEN..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// The length of the frame starting at `buf`, read from its header without checking it, or
/// `None` if `buf` is shorter than a header.
pub(crate) fn frame_len(buf: &[u8]) -> Option<usize> {
    (buf.len() >= FRAME_HEADER_LEN).then(|| FRAME_HEADER_LEN + u32_at(buf, 0) as usize)
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    let mut bytes = [0; 8];
    bytes.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(bytes)
}

/// A record borrowed from the buffer it was decoded from: no copy of key or payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Where the record sits in the log.
    pub offset: Offset,
    /// The leader epoch that wrote it.
    pub epoch: Epoch,
    /// Milliseconds since the Unix epoch, as the writer saw them.
    pub timestamp_ms: u64,
    /// The key, if any.
    pub key: Option<&'a [u8]>,
    /// The payload.
    pub payload: &'a [u8],
}

impl RecordRef<'_> {
    /// An owned copy.
    pub fn to_record(&self) -> Record {
        Record {
            offset: self.offset,
            epoch: self.epoch,
            timestamp_ms: self.timestamp_ms,
            key: self.key.map(<[u8]>::to_vec),
            payload: self.payload.to_vec(),
        }
    }
}

/// Decodes the frame at the start of `buf`, returning the record and the bytes it took.
///
/// Never panics, whatever `buf` holds.
///
/// # Errors
///
/// [`FrameError::Incomplete`] if `buf` ends inside the frame, [`FrameError::TooLarge`] for a
/// length beyond [`MAX_FRAME_BODY`], [`FrameError::ChecksumMismatch`] for damaged bytes, and
/// [`FrameError::Malformed`] for fields that do not fit the frame.
pub fn decode(buf: &[u8]) -> Result<(Record, usize), FrameError> {
    decode_ref(buf).map(|(r, used)| (r.to_record(), used))
}

/// [`decode`] without copying: the record borrows `buf`.
///
/// # Errors
///
/// As [`decode`].
pub fn decode_ref(buf: &[u8]) -> Result<(RecordRef<'_>, usize), FrameError> {
    if buf.len() < FRAME_HEADER_LEN {
        return Err(FrameError::Incomplete {
            needed: FRAME_HEADER_LEN,
            available: buf.len(),
        });
    }
    let body_len = u32_at(buf, 0) as usize;
    if body_len > MAX_FRAME_BODY {
        return Err(FrameError::TooLarge {
            len: body_len as u64,
        });
    }
    let total = FRAME_HEADER_LEN + body_len;
    if buf.len() < total {
        return Err(FrameError::Incomplete {
            needed: total,
            available: buf.len(),
        });
    }
    let body = &buf[FRAME_HEADER_LEN..total];
    let stored = u32_at(buf, 4);
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(FrameError::ChecksumMismatch { stored, computed });
    }
    Ok((fields(body)?, total))
}

/// The fields of a frame body whose checksum has been verified.
pub(crate) fn fields(body: &[u8]) -> Result<RecordRef<'_>, FrameError> {
    if body.len() < FIXED_BODY {
        return Err(FrameError::Malformed {
            reason: "body shorter than its fixed fields",
        });
    }
    let key_len = u32_at(body, 24);
    let (key, payload) = if key_len == NO_KEY {
        (None, &body[FIXED_BODY..])
    } else {
        let end = FIXED_BODY
            .checked_add(key_len as usize)
            .filter(|&end| end <= body.len())
            .ok_or(FrameError::Malformed {
                reason: "key longer than the frame",
            })?;
        (Some(&body[FIXED_BODY..end]), &body[end..])
    };
    Ok(RecordRef {
        offset: Offset::new(u64_at(body, 0)),
        epoch: Epoch::new(u64_at(body, 8)),
        timestamp_ms: u64_at(body, 16),
        key,
        payload,
    })
}

/// Reads the frames of `buf` in order, stopping after the first error: what a reader replaying a
/// log, or recovery scanning a log's tail, does.
///
/// # Examples
///
/// ```
/// use shardkit_replication::{Epoch, FrameError, Offset, Record, encode, frames};
///
/// let mut log = Vec::new();
/// for i in 0..3 {
///     encode(&Record::new(Offset::new(i), Epoch::new(1), 0, vec![7; 10]), &mut log)?;
/// }
/// log.truncate(log.len() - 1); // a torn last append
///
/// let mut reader = frames(&log);
/// assert_eq!(reader.by_ref().filter_map(Result::ok).count(), 2);
/// assert!(matches!(reader.error(), Some(FrameError::Incomplete { .. })));
/// assert_eq!(log.len() - reader.position(), 45); // the torn bytes to truncate
/// # Ok::<(), FrameError>(())
/// ```
pub fn frames(buf: &[u8]) -> Frames<'_> {
    Frames {
        buf,
        position: 0,
        error: None,
    }
}

/// Iterator over the frames of a buffer, from [`frames`].
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    buf: &'a [u8],
    position: usize,
    error: Option<FrameError>,
}

impl Frames<'_> {
    /// Bytes of complete, valid frames read so far: where a torn or damaged tail starts once the
    /// iterator has stopped.
    pub fn position(&self) -> usize {
        self.position
    }

    /// The error that stopped the iterator, if one did.
    pub fn error(&self) -> Option<&FrameError> {
        self.error.as_ref()
    }
}

impl Iterator for Frames<'_> {
    type Item = Result<Record, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.error.is_some() || self.position == self.buf.len() {
            return None;
        }
        match decode(&self.buf[self.position..]) {
            Ok((record, used)) => {
                self.position += used;
                Some(Ok(record))
            }
            Err(e) => {
                self.error = Some(e.clone());
                Some(Err(e))
            }
        }
    }
}

impl std::iter::FusedIterator for Frames<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let record =
            Record::new(Offset::new(1), Epoch::new(3), 99, vec![7; 40]).with_key(b"k".to_vec());
        let mut buf = Vec::new();
        encode(&record, &mut buf).unwrap();
        buf
    }

    #[test]
    fn every_truncation_is_incomplete() {
        let buf = sample();
        for cut in 0..buf.len() {
            assert!(
                matches!(decode(&buf[..cut]), Err(FrameError::Incomplete { .. })),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn every_bit_flip_in_the_body_is_caught() {
        let buf = sample();
        for byte in 4..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[byte] ^= 1 << bit;
                assert!(
                    decode(&bad).is_err(),
                    "flip at byte {byte} bit {bit} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut state = 0x1234_5678_9abc_def0u64;
        for len in 0..2000 {
            let buf: Vec<u8> = (0..len % 97)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let _ = decode(&buf);
        }
        let mut huge = vec![0xff; 16];
        huge[3] = 0x7f;
        assert!(matches!(decode(&huge), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn keys_and_empty_payloads_round_trip() {
        for key in [None, Some(vec![]), Some(b"abc".to_vec())] {
            let mut r = Record::new(Offset::new(u64::MAX), Epoch::new(0), 0, vec![]);
            r.key = key;
            let mut buf = Vec::new();
            encode(&r, &mut buf).unwrap();
            assert_eq!(decode(&buf).unwrap(), (r, buf.len()));
        }
    }
}
