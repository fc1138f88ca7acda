//! Consecutive records kept as their checksummed frames: what a log read returns, what a
//! fetch answer carries and what a follower appends, with no record decoded into owned
//! parts or framed again on the way.

use crate::error::FrameError;
use crate::frame::{FRAME_HEADER_LEN, RecordRef, decode_ref, encode, fields};
use crate::record::{Offset, Record};

/// Records at consecutive offsets, held as their frames (the layout in the crate docs) in one
/// buffer, every checksum verified when the frames came from a file or a peer. Iterating borrows the records without copying; the frames
/// themselves ([`frames`](Self::frames)) go to a socket or a log as they are.
///
/// From [`FileLog::read_batch`](crate::FileLog::read_batch), [`LogStorage::read_batch`](crate::LogStorage::read_batch),
/// [`from_records`](Self::from_records) or [`from_frames`](Self::from_frames).
///
/// # Examples
///
/// ```
/// use shardkit_replication::{Epoch, Offset, Record, RecordBatch};
///
/// let records: Vec<Record> = (5..8)
///     .map(|i| Record::new(Offset::new(i), Epoch::new(1), 0, vec![i as u8]))
///     .collect();
/// let batch = RecordBatch::from_records(&records)?;
/// // The frames are all a receiver needs: it checks them again before trusting them.
/// let received = RecordBatch::from_frames(batch.frames().to_vec())?;
/// assert_eq!(received.first_offset(), Some(Offset::new(5)));
/// assert_eq!(received.to_records(), records);
/// # Ok::<(), shardkit_replication::FrameError>(())
/// ```
#[derive(Clone, Default)]
pub struct RecordBatch {
    /// The frames, possibly after bytes that belong to no record of the batch (a log read
    /// starts at an index entry, before the first wanted record).
    pub(crate) bytes: Vec<u8>,
    /// Each record's frame body as `(start, len)` in `bytes`; the frames follow each other.
    pub(crate) bodies: Vec<(usize, usize)>,
}

impl RecordBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Frames `records`, which must sit at consecutive offsets.
    ///
    /// # Errors
    ///
    /// [`FrameError::TooLarge`] for a record over the frame limit, and
    /// [`FrameError::Malformed`] if the offsets are not consecutive.
    pub fn from_records(records: &[Record]) -> Result<Self, FrameError> {
        let mut batch = Self::new();
        for r in records {
            if batch
                .last_offset()
                .is_some_and(|last| last.get().checked_add(1) != Some(r.offset.get()))
            {
                return Err(not_consecutive());
            }
            let start = batch.bytes.len();
            encode(r, &mut batch.bytes)?;
            batch.bodies.push((
                start + FRAME_HEADER_LEN,
                batch.bytes.len() - start - FRAME_HEADER_LEN,
            ));
        }
        Ok(batch)
    }

    /// Takes frames received from elsewhere, trusting nothing: every frame must be whole, its
    /// checksum right, and the offsets consecutive.
    ///
    /// # Errors
    ///
    /// The first [`FrameError`] of a frame (see [`decode`](crate::decode)), or
    /// [`FrameError::Malformed`] for offsets that are not consecutive.
    pub fn from_frames(bytes: Vec<u8>) -> Result<Self, FrameError> {
        let mut bodies = Vec::new();
        let mut at = 0;
        let mut next: Option<u64> = None;
        while at < bytes.len() {
            let (record, used) = decode_ref(&bytes[at..])?;
            if next.is_some_and(|n| n != record.offset.get()) {
                return Err(not_consecutive());
            }
            next = record.offset.get().checked_add(1);
            if next.is_none() && at + used < bytes.len() {
                return Err(not_consecutive());
            }
            bodies.push((at + FRAME_HEADER_LEN, used - FRAME_HEADER_LEN));
            at += used;
        }
        Ok(Self { bytes, bodies })
    }

    /// The records, in offset order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = RecordRef<'_>> + '_ {
        (0..self.bodies.len()).map(|i| self.record(i))
    }

    /// The `i`-th record, if the batch holds that many.
    pub fn get(&self, i: usize) -> Option<RecordRef<'_>> {
        (i < self.bodies.len()).then(|| self.record(i))
    }

    /// The `i`-th record; `i` must be below [`len`](Self::len).
    pub(crate) fn record(&self, i: usize) -> RecordRef<'_> {
        let (at, len) = self.bodies[i];
        fields(&self.bytes[at..at + len]).expect("every body was checked when the batch was built")
    }

    /// How many records the batch holds.
    pub fn len(&self) -> usize {
        self.bodies.len()
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.bodies.is_empty()
    }

    /// The first record's offset, `None` for an empty batch.
    pub fn first_offset(&self) -> Option<Offset> {
        self.get(0).map(|r| r.offset)
    }

    /// The last record's offset, `None` for an empty batch.
    pub fn last_offset(&self) -> Option<Offset> {
        self.len()
            .checked_sub(1)
            .and_then(|i| self.get(i))
            .map(|r| r.offset)
    }

    /// The records' frames, one after another: what a log stores and a fetch answer carries.
    pub fn frames(&self) -> &[u8] {
        match (self.bodies.first(), self.bodies.last()) {
            (Some(&(first, _)), Some(&(last, len))) => {
                &self.bytes[first - FRAME_HEADER_LEN..last + len]
            }
            _ => &[],
        }
    }

    /// The `i`-th record's frame.
    pub(crate) fn frame(&self, i: usize) -> &[u8] {
        let (at, len) = self.bodies[i];
        &self.bytes[at - FRAME_HEADER_LEN..at + len]
    }

    /// The bytes of the records' frames.
    pub fn framed_bytes(&self) -> usize {
        self.frames().len()
    }

    /// Owned copies of the records.
    pub fn to_records(&self) -> Vec<Record> {
        self.iter().map(|r| r.to_record()).collect()
    }
}

/// The first break in `records`' offsets, as an error.
pub(crate) fn first_gap(records: &[Record]) -> crate::Error {
    let (expected, got) = records
        .windows(2)
        .map(|w| (w[0].offset.get().saturating_add(1), w[1].offset.get()))
        .find(|(expected, got)| expected != got)
        .unwrap_or((0, 0));
    crate::Error::NotContiguous { expected, got }
}

fn not_consecutive() -> FrameError {
    FrameError::Malformed {
        reason: "records are not consecutive",
    }
}

/// Two batches are equal when they hold the same frames.
impl PartialEq for RecordBatch {
    fn eq(&self, other: &Self) -> bool {
        self.frames() == other.frames()
    }
}

impl Eq for RecordBatch {}

/// Shows the offsets and sizes, not the bytes.
impl std::fmt::Debug for RecordBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordBatch")
            .field("first_offset", &self.first_offset())
            .field("len", &self.len())
            .field("framed_bytes", &self.framed_bytes())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Epoch;

    fn records(from: u64, n: u64) -> Vec<Record> {
        (from..from + n)
            .map(|i| {
                Record::new(
                    Offset::new(i),
                    Epoch::new(2),
                    9,
                    vec![i as u8; i as usize % 7],
                )
            })
            .collect()
    }

    #[test]
    fn frames_round_trip_and_keep_their_order() {
        let batch = RecordBatch::from_records(&records(3, 10)).unwrap();
        let back = RecordBatch::from_frames(batch.frames().to_vec()).unwrap();
        assert_eq!(back, batch);
        assert_eq!(back.to_records(), records(3, 10));
        assert_eq!(
            (back.first_offset(), back.last_offset()),
            (Some(Offset::new(3)), Some(Offset::new(12)))
        );
        let whole: usize = (0..back.len()).map(|i| back.frame(i).len()).sum();
        assert_eq!(whole, back.framed_bytes());
    }

    #[test]
    fn gaps_damage_and_torn_ends_are_refused() {
        let mut gap = records(0, 3);
        gap[2].offset = Offset::new(5);
        assert!(matches!(
            RecordBatch::from_records(&gap),
            Err(FrameError::Malformed { .. })
        ));
        let first = RecordBatch::from_records(&records(0, 2)).unwrap();
        let later = RecordBatch::from_records(&records(4, 1)).unwrap();
        let mut joined = first.frames().to_vec();
        joined.extend_from_slice(later.frames());
        assert!(matches!(
            RecordBatch::from_frames(joined),
            Err(FrameError::Malformed { .. })
        ));
        let good = first.frames().to_vec();
        for cut in (1..good.len()).filter(|&cut| cut != first.frame(0).len()) {
            assert!(
                RecordBatch::from_frames(good[..cut].to_vec()).is_err(),
                "cut {cut}"
            );
        }
        let mut flipped = good.clone();
        flipped[good.len() - 1] ^= 1;
        assert!(matches!(
            RecordBatch::from_frames(flipped),
            Err(FrameError::ChecksumMismatch { .. })
        ));
    }

    #[test]
    fn the_last_offset_cannot_wrap() {
        let at_max = [Record::new(Offset::new(u64::MAX), Epoch::new(1), 0, vec![])];
        let one = RecordBatch::from_records(&at_max).unwrap();
        let mut two = one.frames().to_vec();
        two.extend_from_slice(one.frames());
        assert!(RecordBatch::from_frames(two).is_err());
    }
}
