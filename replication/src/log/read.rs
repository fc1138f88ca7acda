//! Reading the file log: batches of records read in one piece, checksums verified (or, for
//! what the log appended itself lately, taken from memory), borrowed without copying.

use super::segment::Segment;
use super::{FileLog, lock};
use crate::batch::RecordBatch;
use crate::error::{Error, FrameError};
use crate::frame::{decode_ref, frame_len};
use crate::record::Offset;

impl FileLog {
    /// Reads records from `from` on, as one read from the segment holding `from`: at least one
    /// record if any exists before the log's end, stopping before `max_bytes` of frames would be
    /// exceeded or at the segment's end. Checksums are verified; nothing is copied per record.
    /// Records this log appended itself lately come from memory instead (see
    /// [`LogConfig::recent_bytes`](crate::LogConfig::recent_bytes)): frames it framed and
    /// checksummed itself, possibly from more than one segment.
    ///
    /// # Examples
    ///
    /// ```
    /// use shardkit_replication::{Entry, Epoch, FileLog, LogConfig, LogStorage, Offset};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let log = FileLog::open(dir.path(), LogConfig::default())?;
    /// log.append(Epoch::new(1), &[Entry::new(b"a"), Entry::new(b"b"), Entry::new(b"c")])?;
    /// let batch = log.read_batch(Offset::new(1), 1 << 20)?;
    /// let payloads: Vec<&[u8]> = batch.iter().map(|r| r.payload).collect();
    /// assert_eq!(payloads, [b"b", b"c"]);
    /// # Ok::<(), shardkit_replication::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::OffsetOutOfRange`], [`Error::Corrupt`] for a damaged record, [`Error::Io`].
    pub fn read_batch(&self, from: Offset, max_bytes: usize) -> Result<RecordBatch, Error> {
        let mut batch = RecordBatch::default();
        self.read_batch_into(from, max_bytes, &mut batch)?;
        Ok(batch)
    }

    /// [`read_batch`](Self::read_batch) into an existing batch, reusing its buffer: a reader
    /// looping over the log allocates nothing per batch.
    ///
    /// # Errors
    ///
    /// As [`read_batch`](Self::read_batch).
    pub fn read_batch_into(
        &self,
        from: Offset,
        max_bytes: usize,
        batch: &mut RecordBatch,
    ) -> Result<(), Error> {
        batch.bodies.clear();
        let end = self.inner.tail.end();
        let segments = self.inner.segments();
        if segments.is_empty() {
            // Only after a reset that failed part-way, which poisoned the log.
            let reason = self.inner.commit.failure().unwrap_or_default();
            return Err(Error::Poisoned { reason });
        }
        let start = segments.first().map_or(0, |s| s.base);
        if from.get() < start || from.get() > end {
            return Err(Error::OffsetOutOfRange {
                requested: from.get(),
                start,
                end,
            });
        }
        if from.get() == end {
            batch.bytes.clear();
            return Ok(());
        }
        if lock(&self.inner.recent).read(from.get(), end, max_bytes, batch) {
            return Ok(());
        }
        let seg = &segments[segments
            .partition_point(|s| s.base <= from.get())
            .saturating_sub(1)];
        let (pos, mut next) = seg.seek(from.get());
        let seg_len = seg.meta().len;
        // Frames between the index entry and `from`, then `max_bytes` of wanted frames.
        let seg_rest = seg_len.saturating_sub(pos);
        let window = (max_bytes as u64)
            .saturating_add(self.inner.config.index_interval)
            .min(seg_rest) as usize;
        // Shrinking keeps the old bytes (about to be overwritten): only growth is zeroed.
        batch.bytes.truncate(window);
        batch.bytes.resize(window, 0);
        read_exact_at(seg, &mut batch.bytes, pos)?;
        let mut at = 0;
        let mut wanted_bytes = 0;
        while next < end && (at as u64) < seg_rest {
            let need = frame_len(&batch.bytes[at..]).unwrap_or(crate::FRAME_HEADER_LEN);
            if batch.bytes.len() - at < need {
                if !batch.bodies.is_empty() {
                    break;
                }
                if (at + need) as u64 > seg_rest {
                    // A length field (damaged, say) that runs past the segment's records.
                    let position = pos + at as u64;
                    let reason = "frame runs past the end of its segment";
                    return self.nothing_read(end, seg, position, reason, batch);
                }
                // Nothing wanted yet and the window ends inside a frame or its header (a frame
                // larger than the window, or index entries further apart than expected): read
                // on, then look at the frame again with its whole header.
                let have = batch.bytes.len();
                batch.bytes.resize(at + need, 0);
                read_exact_at(seg, &mut batch.bytes[have..], pos + have as u64)?;
                continue;
            }
            let corrupt = |reason| Error::Corrupt {
                path: seg.path.clone(),
                position: pos + at as u64,
                reason,
            };
            let (record, used) = decode_ref(&batch.bytes[at..]).map_err(corrupt)?;
            if record.offset.get() != next {
                return Err(corrupt(FrameError::Malformed {
                    reason: "record offset out of sequence",
                }));
            }
            if next >= from.get() {
                if wanted_bytes + used > max_bytes && !batch.bodies.is_empty() {
                    break;
                }
                wanted_bytes += used;
                batch
                    .bodies
                    .push((at + crate::FRAME_HEADER_LEN, used - crate::FRAME_HEADER_LEN));
            }
            at += used;
            next += 1;
        }
        if batch.bodies.is_empty() {
            // `from` is below the log's end, so its record is in this segment: ending without
            // reaching it means records are missing.
            let reason = "segment ends before the record asked for";
            return self.nothing_read(end, seg, pos + at as u64, reason, batch);
        }
        Ok(())
    }

    /// A read of a record below the log's `end` (as read when it began) that found none, for
    /// `reason` at `position` of `seg`: an empty batch if the log was cut or reset since (the
    /// record is gone, as before such a change), else [`Error::Corrupt`]: an empty answer
    /// would read as "nothing more", for ever.
    fn nothing_read(
        &self,
        end: u64,
        seg: &Segment,
        position: u64,
        reason: &'static str,
        batch: &mut RecordBatch,
    ) -> Result<(), Error> {
        if self.inner.tail.end() != end {
            batch.bytes.clear();
            return Ok(());
        }
        Err(Error::Corrupt {
            path: seg.path.clone(),
            position,
            reason: FrameError::Malformed { reason },
        })
    }
}

fn read_exact_at(seg: &Segment, buf: &mut [u8], pos: u64) -> Result<(), Error> {
    std::os::unix::fs::FileExt::read_exact_at(&seg.file, buf, pos)
        .map_err(Error::io("read", &seg.path))
}
