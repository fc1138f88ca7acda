//! What a log under `Durability::Never` owes an owner that syncs it (a replica): a sync covers
//! the records of segments sealed since the last one.

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
    assert_eq!(lock(&log.inner.sealed_unsynced).len(), 2);
    log.sync().expect("sync");
    assert!(
        lock(&log.inner.sealed_unsynced).is_empty(),
        "sealed segments were left for a later sync"
    );
}
