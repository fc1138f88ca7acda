//! Recovery on open: rebuilding sparse indexes by scanning, cutting a torn or damaged tail
//! (telling it from preallocated zeros, from damage in the middle of the log and from damage
//! to what the synced mark vouches for), and counting what was cut.

use crate::error::{Error, FrameError};
use crate::frame::frame_len;

use super::Recovery;
use super::segment::{self, Segment};

/// Scans a whole segment, building its sparse index; returns it with where the scan stopped.
fn index_by_scan(
    seg: &Segment,
    len: u64,
    interval: u64,
) -> Result<(segment::Meta, segment::ScanEnd), Error> {
    let mut meta = segment::Meta {
        next: seg.base,
        ..Default::default()
    };
    let end = seg.scan(0, seg.base, len, |pos, r| {
        Segment::maybe_index(&mut meta, seg.base, r.offset.get(), pos, interval);
        true
    })?;
    Ok((meta, end))
}

/// Recovers a sealed segment: trusts a valid index covering the file, otherwise rescans it;
/// any bad frame in a sealed segment is corruption in the middle of the log. (Zeros after its
/// last frame are preallocated space a crash kept the seal from cutting.)
pub(super) fn recover_sealed(
    seg: &Segment,
    len: u64,
    next_base: u64,
    interval: u64,
    recovery: &mut Recovery,
) -> Result<(), Error> {
    if let Some(index) = seg.load_index(len) {
        let mut meta = seg.meta_mut();
        meta.last_indexed = index.last().map(|&(_, p)| u64::from(p));
        meta.index = index;
        meta.len = len;
        meta.allocated = len;
        meta.next = next_base;
        return Ok(());
    }
    let (mut meta, end) = index_by_scan(seg, len, interval)?;
    if let Some((position, reason)) = end.bad
        && seg.data_end(position, len)?.0 > position
    {
        return Err(Error::Corrupt {
            path: seg.path.clone(),
            position,
            reason,
        });
    }
    if end.next != next_base {
        let reason = FrameError::Malformed {
            reason: "segment does not end where the next one starts",
        };
        return Err(Error::Corrupt {
            path: seg.path.clone(),
            position: end.pos,
            reason,
        });
    }
    meta.len = end.pos;
    meta.allocated = len;
    meta.next = end.next;
    *seg.meta_mut() = meta;
    seg.trim()?;
    seg.store_index(true)?;
    recovery.rebuilt_indexes += 1;
    Ok(())
}

/// Recovers the tail segment: scans every frame, cuts a torn or damaged tail, and reports
/// damage followed by valid records as corruption, as it does anything wrong before `synced`
/// (the bytes the synced mark vouches for, to the last whole sector: a torn write cannot reach
/// them). Zeros after the
/// last frame are preallocated space, kept for the appends to come.
pub(super) fn recover_tail(
    seg: &Segment,
    len: u64,
    interval: u64,
    synced: u64,
    recovery: &mut Recovery,
) -> Result<(), Error> {
    let (mut meta, end) = index_by_scan(seg, len, interval)?;
    // The sector holding the synced end was rewritten by the next append, unsynced: on a disk
    // whose sector writes are not atomic, a crash can garble it, synced bytes included.
    let synced = synced / SECTOR * SECTOR;
    if end.pos < synced {
        // Synced records damaged, or gone (zeros, or a file shorter than was synced).
        let reason = end.bad.map_or(
            FrameError::Malformed {
                reason: "the segment ends before its synced length",
            },
            |(_, reason)| reason,
        );
        return Err(Error::Corrupt {
            path: seg.path.clone(),
            position: end.pos,
            reason,
        });
    }
    meta.len = end.pos;
    meta.allocated = len;
    meta.next = end.next;
    if let Some((position, reason)) = end.bad {
        let (data_end, bytes) = seg.data_end(position, len)?;
        let data = (data_end - position) as usize;
        if data > 0 {
            if let Some(next_valid) = Segment::valid_frame_after(&bytes, data, end.next)
                && !has_unwritten_sector(position, &bytes[..next_valid])
            {
                return Err(Error::Corrupt {
                    path: seg.path.clone(),
                    position,
                    reason,
                });
            }
            // The damaged frame reaches as far as its header says (zeros may end a torn one).
            let frame_end = match frame_len(&bytes) {
                // Not even a whole header left: all of it is the torn frame.
                None => bytes.len(),
                Some(n)
                    if n > crate::FRAME_HEADER_LEN
                        && n <= crate::FRAME_HEADER_LEN + crate::MAX_FRAME_BODY =>
                {
                    n.min(bytes.len())
                }
                Some(_) => data,
            };
            let damaged = data.max(frame_end);
            recovery.truncated_bytes += damaged as u64;
            recovery.dropped_records += count_frames(&bytes[..damaged], data, end.next);
            seg.file
                .set_len(position)
                .map_err(Error::io("truncate", &seg.path))?;
            seg.file.sync_all().map_err(Error::io("sync", &seg.path))?;
            meta.allocated = position;
        }
    }
    *seg.meta_mut() = meta;
    Ok(())
}

/// How many records a damaged tail holds (at least one): the frames found by following length
/// fields, and past a zero or impossible one by the next frame that decodes before `data` (the
/// end of its non-zero bytes), as after a sector that never reached the disk; or, if more, the
/// offsets up to the last frame found, which counts records whose frames were lost whole.
fn count_frames(bytes: &[u8], data: usize, next: u64) -> u64 {
    let mut frames = 0;
    let mut last_offset = None;
    let mut at = 0;
    while at < bytes.len() {
        frames += 1;
        if let Ok((r, _)) = crate::decode_ref(&bytes[at..]) {
            last_offset = Some(r.offset.get());
        }
        match frame_len(&bytes[at..]) {
            Some(n) if n > crate::FRAME_HEADER_LEN => at += n,
            _ => match Segment::valid_frame_after(&bytes[at..], data.saturating_sub(at), next) {
                Some(q) => at += q,
                None => break,
            },
        }
    }
    let by_offset = last_offset.map_or(0, |o| (o + 1).saturating_sub(next));
    frames.max(by_offset)
}

/// Sectors: the unit a disk writes atomically, and so the unit of a torn write's holes.
const SECTOR: u64 = 512;

/// Whether `damaged` (the file from `position` on) holds a whole sector of zeros: preallocated
/// space the last, unsynced write never got to disk, while later pages of that same write did
/// (page writeback has no order). Records after such a hole were never acknowledged (a sync
/// would have written the hole too), so the tail is torn, not corrupt; bit rot in acknowledged
/// records does not look like this.
fn has_unwritten_sector(position: u64, damaged: &[u8]) -> bool {
    let first = position.div_ceil(SECTOR) * SECTOR;
    let end = position + damaged.len() as u64;
    (first..end)
        .step_by(SECTOR as usize)
        .take_while(|s| s + SECTOR <= end)
        .any(|s| {
            let at = (s - position) as usize;
            damaged[at..at + SECTOR as usize].iter().all(|&b| b == 0)
        })
}
