//! The frames a file log wrote last, kept in memory: a leader's followers fetch what it has
//! just appended, and serving that from memory skips reading the file back and checking
//! checksums this process computed a moment ago.

use crate::batch::RecordBatch;
use crate::frame::FRAME_HEADER_LEN;

/// Consecutive frames from offset `first` on, in one buffer.
#[derive(Debug, Default)]
struct Generation {
    first: u64,
    bytes: Vec<u8>,
    /// Where each frame starts in `bytes`.
    starts: Vec<usize>,
}

impl Generation {
    /// One past the last offset held, `None` when empty.
    fn end(&self) -> Option<u64> {
        (!self.starts.is_empty()).then(|| self.first + self.starts.len() as u64)
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.starts.clear();
    }

    /// As [`RecentFrames::read`], from this generation alone.
    fn read(&self, from: u64, end: u64, max_bytes: usize, batch: &mut RecordBatch) -> bool {
        let Some(held_end) = self.end().map(|e| e.min(end)) else {
            return false;
        };
        if from < self.first || from >= held_end {
            return false;
        }
        let first = (from - self.first) as usize;
        let last = (held_end - self.first) as usize;
        let start = self.starts[first];
        let frame_end = |i: usize| self.starts.get(i + 1).copied().unwrap_or(self.bytes.len());
        // At least one frame; then as many as fit.
        let mut stop = first + 1;
        while stop < last && frame_end(stop) - start <= max_bytes {
            stop += 1;
        }
        batch.bytes.clear();
        batch
            .bytes
            .extend_from_slice(&self.bytes[start..frame_end(stop - 1)]);
        batch.bodies.clear();
        batch.bodies.extend((first..stop).map(|i| {
            let at = self.starts[i] - start;
            (
                at + FRAME_HEADER_LEN,
                frame_end(i) - self.starts[i] - FRAME_HEADER_LEN,
            )
        }));
        true
    }
}

/// The latest frames a log appended itself, in two generations: once the current one holds
/// `keep` bytes it becomes the previous one, whose buffer is reused, so no byte is copied
/// twice and between `keep` and twice as many bytes stay readable.
#[derive(Debug, Default)]
pub(super) struct RecentFrames {
    current: Generation,
    previous: Generation,
    keep: usize,
}

impl RecentFrames {
    pub(super) fn new(keep: usize) -> Self {
        Self {
            keep,
            ..Self::default()
        }
    }

    /// Notes frames just written to the file: `frames`, starting at `starts`, holding the
    /// records from offset `first` on.
    pub(super) fn extend(&mut self, first: u64, frames: &[u8], starts: &[u64]) {
        if self.keep == 0 || starts.is_empty() {
            return;
        }
        if self.current.end().or(self.previous.end()) != Some(first) {
            self.clear();
            self.current.first = first;
        } else if self.current.bytes.len() >= self.keep {
            std::mem::swap(&mut self.current, &mut self.previous);
            self.current.clear();
            self.current.first = first;
        }
        let base = self.current.bytes.len();
        self.current.bytes.extend_from_slice(frames);
        self.current
            .starts
            .extend(starts.iter().map(|&s| base + s as usize));
    }

    /// Forgets everything (the log was cut or reset, or appended frames not kept).
    pub(super) fn clear(&mut self) {
        self.current.clear();
        self.previous.clear();
    }

    /// Fills `batch` with kept records from `from` on and before `end`, within `max_bytes`
    /// of frames but at least one; `false` if `from` is not kept.
    pub(super) fn read(
        &self,
        from: u64,
        end: u64,
        max_bytes: usize,
        batch: &mut RecordBatch,
    ) -> bool {
        self.current.read(from, end, max_bytes, batch)
            || self.previous.read(from, end, max_bytes, batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Epoch, Offset, Record};

    /// Frames of records `from..to`, with 20-byte payloads, and their starts.
    fn frames(from: u64, to: u64) -> (Vec<u8>, Vec<u64>) {
        let (mut bytes, mut starts) = (Vec::new(), Vec::new());
        for i in from..to {
            starts.push(bytes.len() as u64);
            crate::encode(
                &Record::new(Offset::new(i), Epoch::new(1), 0, vec![i as u8; 20]),
                &mut bytes,
            )
            .unwrap();
        }
        (bytes, starts)
    }

    fn offsets(batch: &RecordBatch) -> Vec<u64> {
        batch.iter().map(|r| r.offset.get()).collect()
    }

    #[test]
    fn serves_what_it_keeps_within_the_limits_and_nothing_else() {
        let one = frames(0, 1).0.len();
        let mut recent = RecentFrames::new(10 * one);
        let (bytes, starts) = frames(5, 10);
        recent.extend(5, &bytes, &starts);
        let (bytes, starts) = frames(10, 12);
        recent.extend(10, &bytes, &starts);
        let mut batch = RecordBatch::new();
        assert!(recent.read(7, 12, 1 << 20, &mut batch));
        assert_eq!(offsets(&batch), [7, 8, 9, 10, 11]);
        // What a file read of the same records would give, checksums and all.
        assert_eq!(
            RecordBatch::from_frames(batch.frames().to_vec()).unwrap(),
            batch
        );
        assert!(recent.read(7, 9, 1 << 20, &mut batch));
        assert_eq!(offsets(&batch), [7, 8], "never past the log's end");
        assert!(recent.read(6, 12, 2 * one + 1, &mut batch));
        assert_eq!(offsets(&batch), [6, 7]);
        assert!(recent.read(6, 12, 1, &mut batch));
        assert_eq!(offsets(&batch), [6], "at least one record");
        assert!(!recent.read(4, 12, 1 << 20, &mut batch));
        assert!(!recent.read(12, 13, 1 << 20, &mut batch));
        // A gap (the log was cut and written again elsewhere) starts afresh.
        let (bytes, starts) = frames(3, 4);
        recent.extend(3, &bytes, &starts);
        assert!(!recent.read(5, 12, 1 << 20, &mut batch));
        assert!(recent.read(3, 4, 1 << 20, &mut batch));
        assert_eq!(offsets(&batch), [3]);
    }

    #[test]
    fn keeps_between_one_and_two_limits_of_the_latest_frames() {
        let one = frames(0, 1).0.len();
        let mut recent = RecentFrames::new(4 * one);
        for i in 0..20 {
            let (bytes, starts) = frames(i, i + 1);
            recent.extend(i, &bytes, &starts);
            assert!(recent.current.bytes.len() + recent.previous.bytes.len() <= 8 * one);
        }
        // Generations 12..16 and 16..20: a read returns records of one generation.
        let mut batch = RecordBatch::new();
        assert!(recent.read(13, 20, 1 << 20, &mut batch));
        assert_eq!(offsets(&batch), [13, 14, 15]);
        assert!(recent.read(16, 20, 1 << 20, &mut batch));
        assert_eq!(offsets(&batch), [16, 17, 18, 19]);
        assert!(!recent.read(11, 20, 1 << 20, &mut batch));
        let mut off = RecentFrames::new(0);
        let (bytes, starts) = frames(0, 2);
        off.extend(0, &bytes, &starts);
        assert!(!off.read(0, 2, 1 << 20, &mut batch));
    }
}
