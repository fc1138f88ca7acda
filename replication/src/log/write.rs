//! Writing the file log: staged frames into the active segment, rolling to a new segment
//! when it would overflow, and the group-commit syncer's write-and-sync.

use std::sync::{Arc, PoisonError};

use super::config::PREALLOCATE_CHUNK;
use super::segment::Segment;
use super::storage::Durability;
use super::synced::Mark;
use super::{Inner, Writer, lock};
use crate::error::Error;
use crate::record::Offset;

impl Inner {
    /// Writes the staged frames to the active segment (rolling first if it would overflow) and
    /// publishes them to readers. On failure the staged records are dropped, their offsets
    /// freed, and no partial frame stays in the file.
    pub(super) fn flush_locked(&self, w: &mut Writer) -> Result<(), Error> {
        if w.starts.is_empty() {
            return Ok(());
        }
        let first = w.staged_first;
        let end = first + w.starts.len() as u64;
        let result = self.write_batch(&w.staged, &w.starts, first);
        if result.is_ok() {
            let mut recent = lock(&self.recent);
            if w.staged_copies {
                // A follower's copies: its tail is rarely read, so it keeps none.
                recent.clear();
            } else {
                recent.extend(first, &w.staged, &w.starts);
            }
        }
        w.staged_copies = false;
        w.staged.clear();
        w.starts.clear();
        match result {
            Ok(()) => {
                w.staged_first = end;
                // Counted as written before readers can see them: a reader that sees these
                // records and then syncs must find its sync covering them.
                self.commit.written(end);
                self.tail.publish(end);
                Ok(())
            }
            Err(e) => {
                if self.config.durability == Durability::Always {
                    // Other appenders' records were in this write and they are waiting on it.
                    self.commit.poison(e.to_string());
                }
                w.next = first;
                let before = w.epochs.clone();
                w.epochs.truncate_from(Offset::new(first));
                if w.epochs != before {
                    let _ = w.epochs.store(&self.dir);
                }
                Err(e)
            }
        }
    }

    /// Writes everything staged and syncs it; returns the end of what is now durable. The
    /// group-commit syncer's action.
    pub(super) fn flush_and_sync(&self) -> std::io::Result<u64> {
        // Segments roll under the writer's lock: the active segment and the sealed ones taken
        // with it hold every record before `end`.
        let (end, active, unsynced, mark, generation) = {
            let mut w = lock(&self.writer);
            self.flush_locked(&mut w)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let unsynced = std::mem::take(&mut *lock(&self.unsynced));
            let active = self.active();
            let mark = Mark {
                base: active.base,
                position: active.meta().len,
            };
            (
                w.staged_first,
                active,
                unsynced,
                mark,
                self.synced.generation(),
            )
        };
        // Segments sealed under `Durability::Never` since the last sync; the others were synced
        // when they were sealed.
        for segment in &unsynced.sealed {
            segment.file.sync_data()?;
            #[cfg(test)]
            self.sealed_syncs
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if unsynced.directory {
            std::fs::File::open(&self.dir)?.sync_all()?;
        }
        active.file.sync_data()?;
        self.synced.synced(mark, generation);
        Ok(end)
    }

    /// Writes a batch of frames to the active segment, rolling first if it would overflow.
    pub(super) fn write_batch(&self, buf: &[u8], starts: &[u64], first: u64) -> Result<(), Error> {
        let inner = self;
        let mut active = inner.active();
        let len = active.meta().len;
        if len > 0 && len + buf.len() as u64 > inner.config.segment_bytes {
            active = self.roll(&active, first)?;
        }
        let (at, allocated) = {
            let meta = active.meta();
            (meta.len, meta.allocated)
        };
        let need = at + buf.len() as u64;
        if need > allocated
            && inner.config.preallocate
            && (inner.config.durability != Durability::Never
                || inner
                    .synced_by_owner
                    .load(std::sync::atomic::Ordering::Relaxed))
        {
            let cap = inner.config.segment_bytes.max(need);
            active.preallocate((allocated + PREALLOCATE_CHUNK).max(need).min(cap));
        }
        if let Err(e) = std::os::unix::fs::FileExt::write_all_at(&active.file, buf, at) {
            // Leave no partial frame behind; if even that fails, stop writing altogether.
            if let Err(undo) = active.file.set_len(at) {
                inner
                    .commit
                    .poison(format!("could not remove a partial append: {undo}"));
            }
            active.meta_mut().allocated = at;
            return Err(Error::io("append to", &active.path)(e));
        }
        let mut meta = active.meta_mut();
        for (i, start) in starts.iter().enumerate() {
            Segment::maybe_index(
                &mut meta,
                active.base,
                first + i as u64,
                at + start,
                inner.config.index_interval,
            );
        }
        meta.len = need;
        meta.allocated = meta.allocated.max(need);
        meta.next = first + starts.len() as u64;
        Ok(())
    }

    /// Seals `old` (synced, index stored) and starts a segment at `base`. A failure poisons
    /// the log, whatever its durability: a failed `fsync` may have dropped dirty pages that a
    /// later one would not report, and a half-made segment would fail every later roll.
    pub(super) fn roll(&self, old: &Arc<Segment>, base: u64) -> Result<Arc<Segment>, Error> {
        self.try_roll(old, base).inspect_err(|e| {
            self.commit.poison(format!("sealing a segment failed: {e}"));
        })
    }

    fn try_roll(&self, old: &Arc<Segment>, base: u64) -> Result<Arc<Segment>, Error> {
        let inner = self;
        old.trim()?;
        if inner.config.durability != Durability::Never {
            old.file.sync_data().map_err(Error::io("sync", &old.path))?;
        } else {
            // Never synced on its own, but its owner may sync the log: then this segment's
            // records count too, and the new segment's directory entry.
            let mut unsynced = lock(&inner.unsynced);
            unsynced.prune(&inner.segments());
            unsynced.sealed.push(Arc::clone(old));
            unsynced.directory = true;
        }
        let durable = inner.config.durability != Durability::Never;
        old.store_index(durable)?;
        let new = Arc::new(Segment::create(&inner.dir, base, durable)?);
        inner
            .segments
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&new));
        Ok(new)
    }
}
