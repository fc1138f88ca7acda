//! What a log under `Durability::Never` owes an owner that syncs it (a replica): a sync covers
//! the records of segments sealed since the last one, and the files of the segments it no
//! longer has are let go.

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
