//! What a log under `Durability::Never` owes an owner that syncs it (a replica): a sync covers
//! the records of segments sealed since the last one, and the files of the segments it no
//! longer has are let go. And a reset a crash cuts short leaves a history true to what is left.

use std::sync::atomic::Ordering;

use super::*;

fn never(dir: &Path) -> FileLog {
    let mut config = LogConfig::default().durability(Durability::Never);
    config.segment_bytes = 4096;
    FileLog::open(dir, config).expect("open")
}

/// Appends 100-byte records until the log has rolled to a new segment.
fn append_until_rolled(log: &FileLog) {
    let payload = [7u8; 100];
    let segments = log.inner.segments().len();
    while log.inner.segments().len() == segments {
        log.append(Epoch::new(1), &[Entry::new(&payload)])
            .expect("append");
    }
}

#[test]
fn a_sync_covers_the_segments_sealed_since_the_last_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = never(dir.path());
    append_until_rolled(&log);
    append_until_rolled(&log);
    assert_eq!(lock(&log.inner.unsynced).sealed.len(), 2);
    log.sync().expect("sync");
    assert_eq!(log.inner.sealed_syncs.load(Ordering::Relaxed), 2);
    assert!(lock(&log.inner.unsynced).sealed.is_empty());
    // Already synced: the next sync has no sealed segment to sync again.
    append_until_rolled(&log);
    log.sync().expect("sync");
    assert_eq!(log.inner.sealed_syncs.load(Ordering::Relaxed), 3);
}

#[test]
fn segments_dropped_before_a_sync_are_let_go() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = never(dir.path());
    append_until_rolled(&log);
    append_until_rolled(&log);
    log.drop_before(log.end_offset()).expect("drop");
    append_until_rolled(&log);
    let unsynced = lock(&log.inner.unsynced);
    assert_eq!(
        unsynced.sealed.len(),
        1,
        "deleted segments are still held open"
    );
    assert!(unsynced.directory);
}

/// A reset that a crash stops part-way leaves the log's history true to the records left:
/// their epochs are still known after reopening.
#[test]
fn a_reset_cut_short_keeps_the_history_of_the_records_left() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = never(dir.path());
    let payload = [7u8; 100];
    for epoch in [1, 2] {
        for _ in 0..100 {
            log.append(Epoch::new(epoch), &[Entry::new(&payload)])
                .expect("append");
        }
    }
    log.sync().expect("sync");
    assert!(log.inner.segments().len() > 2);
    let before = log.epochs();
    // The newest segment deleted, then the crash.
    log.inner.reset_deletions.store(1, Ordering::Relaxed);
    assert!(log.reset(Offset::new(1_000), Epoch::new(5)).is_err());
    // The crash: the log is never closed, and the next process finds its files as they are
    // (copied: the leaked log still holds its directory).
    let after = tempfile::tempdir().expect("temp dir");
    for file in std::fs::read_dir(dir.path()).expect("list") {
        let path = file.expect("entry").path();
        let name = path.file_name().expect("a file name");
        // Not the lock file: closing a copy's descriptor of it would end the leaked log's lock.
        if name != "lock" {
            std::fs::copy(&path, after.path().join(name)).expect("copy");
        }
    }
    std::mem::forget(log);
    let reopened = never(after.path());
    let end = reopened.end_offset();
    assert!(end.get() > 100, "more than epoch 1's records are left");
    assert!(end.get() < 200, "the newest segment is gone");
    assert_eq!(reopened.epochs(), before);
    for record in reopened.read(Offset::new(0), 1 << 20).expect("read") {
        let expected = if record.offset.get() < 100 { 1 } else { 2 };
        assert_eq!(record.epoch, Epoch::new(expected));
    }
}
