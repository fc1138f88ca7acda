//! The file log: appends, reads across segments, reopening, truncation, retention, the epoch
//! history, and recovery from torn writes and bit rot.

mod crash_copy;

use std::path::Path;

use crash_copy::copy_log_files;
use shardkit_replication::{
    Durability, Entry, Epoch, Error, FileLog, LogConfig, LogStorage, Offset, Record, SegmentInfo,
};

/// Small segments so a few hundred records span many of them.
fn config() -> LogConfig {
    LogConfig::default()
        .segment_bytes(4096)
        .durability(Durability::Never)
}

fn payload(i: u64) -> Vec<u8> {
    format!("record {i} {}", "x".repeat((i % 37) as usize)).into_bytes()
}

fn fill(dir: &Path, n: u64) {
    let log = FileLog::open(dir, config()).unwrap();
    for i in 0..n {
        let p = payload(i);
        log.append(Epoch::new(1 + i / 100), &[Entry::new(&p)])
            .unwrap();
    }
}

fn all(log: &FileLog) -> Vec<Record> {
    let mut out = Vec::new();
    let mut next = log.start_offset();
    while next < log.end_offset() {
        let batch = log.read(next, 2000).unwrap();
        next = Offset::new(batch.last().unwrap().offset.get() + 1);
        out.extend(batch);
    }
    out
}

fn check_prefix(log: &FileLog, n: u64) {
    let records = all(log);
    assert_eq!(records.len() as u64, n);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.offset, Offset::new(i as u64));
        assert_eq!(r.payload, payload(i as u64));
    }
}

#[test]
fn appends_survive_reopening_and_span_segments() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 300);
    let log = FileLog::open(dir.path(), config()).unwrap();
    assert!(
        log.segments().len() > 3,
        "{} segments",
        log.segments().len()
    );
    assert_eq!(log.recovery().truncated_bytes, 0);
    check_prefix(&log, 300);
    // Seeks into the middle of every segment find the right record.
    for from in [0, 1, 57, 150, 151, 299] {
        assert_eq!(
            log.read(Offset::new(from), 1).unwrap()[0].offset,
            Offset::new(from)
        );
    }
    assert_eq!(
        log.epochs(),
        vec![
            (Epoch::new(1), Offset::new(0)),
            (Epoch::new(2), Offset::new(100)),
            (Epoch::new(3), Offset::new(200))
        ]
    );
    assert!(log.verify().unwrap().is_empty());
    assert!(matches!(
        log.read(Offset::new(301), 10),
        Err(Error::OffsetOutOfRange { .. })
    ));
    assert!(log.read(Offset::new(300), 10).unwrap().is_empty());
}

#[test]
fn byte_limits_always_return_at_least_one_record() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 50);
    let log = FileLog::open(dir.path(), config()).unwrap();
    assert_eq!(log.read(Offset::new(10), 1).unwrap().len(), 1);
    let some = log.read(Offset::new(10), 300).unwrap();
    assert!(some.len() > 1 && some.len() < 40, "{}", some.len());
}

#[test]
fn stale_epochs_and_gaps_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::open(dir.path(), config()).unwrap();
    log.append(Epoch::new(5), &[Entry::new(b"a")]).unwrap();
    assert!(matches!(
        log.append(Epoch::new(4), &[Entry::new(b"b")]),
        Err(Error::StaleEpoch { current: 5, got: 4 })
    ));
    let gap = Record::new(Offset::new(3), Epoch::new(5), 0, b"c".to_vec());
    assert!(matches!(
        log.append_records(&[gap]),
        Err(Error::NotContiguous {
            expected: 1,
            got: 3
        })
    ));
    let next = Record::new(Offset::new(1), Epoch::new(6), 0, b"c".to_vec());
    log.append_records(&[next]).unwrap();
    assert_eq!(log.end_offset(), Offset::new(2));
}

#[test]
fn truncation_drops_a_suffix_and_its_epochs() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 300);
    {
        let log = FileLog::open(dir.path(), config()).unwrap();
        log.truncate_from(Offset::new(150)).unwrap();
        assert_eq!(log.end_offset(), Offset::new(150));
        assert_eq!(
            log.epochs(),
            vec![
                (Epoch::new(1), Offset::new(0)),
                (Epoch::new(2), Offset::new(100))
            ]
        );
        check_prefix(&log, 150);
        // The log continues from the cut.
        let p = payload(150);
        assert_eq!(
            log.append(Epoch::new(7), &[Entry::new(&p)])
                .unwrap()
                .first(),
            Offset::new(150)
        );
    }
    let log = FileLog::open(dir.path(), config()).unwrap();
    check_prefix(&log, 151);
    assert_eq!(
        log.epochs().last(),
        Some(&(Epoch::new(7), Offset::new(150)))
    );
}

#[test]
fn retention_drops_whole_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 300);
    let log = FileLog::open(dir.path(), config()).unwrap();
    let before = log.segments().len();
    log.drop_before(Offset::new(120)).unwrap();
    let start = log.start_offset().get();
    assert!(start > 0 && start <= 120, "start {start}");
    assert!(matches!(
        log.read(Offset::new(0), 10),
        Err(Error::OffsetOutOfRange { .. })
    ));
    assert_eq!(
        log.read(Offset::new(start), 1).unwrap()[0].payload,
        payload(start)
    );
    let deleted = log.apply_retention(Some(8192), None).unwrap();
    assert!(deleted > 0 && log.segments().len() < before);
    assert_eq!(log.end_offset(), Offset::new(300));
}

/// The segment files, oldest first.
fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

#[test]
fn a_torn_tail_is_cut_at_every_byte_position() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 40);
    let tail = segment_files(dir.path()).pop().unwrap();
    let bytes = std::fs::read(&tail).unwrap();
    // From the file's name: opening the log would sync it, and its synced mark would then
    // (rightly) vouch for every byte cut below.
    let tail_base: u64 = tail.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let in_tail = 40 - tail_base;
    // Frame boundaries of the tail segment.
    let mut ends = vec![0usize];
    while *ends.last().unwrap() < bytes.len() {
        let at = *ends.last().unwrap();
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        ends.push(at + 8 + len);
    }
    assert_eq!(ends.len() as u64 - 1, in_tail);
    let start = ends[ends.len().saturating_sub(4)];
    for cut in start..bytes.len() {
        let copy = tempfile::tempdir().unwrap();
        copy_log_files(dir.path(), copy.path());
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(copy.path().join(tail.file_name().unwrap()))
            .unwrap();
        f.set_len(cut as u64).unwrap();
        let log = FileLog::open(copy.path(), config()).unwrap();
        let whole = ends.iter().filter(|&&e| e <= cut).count() as u64 - 1;
        check_prefix(&log, tail_base + whole);
        let kept = ends[whole as usize];
        assert_eq!(
            log.recovery().truncated_bytes,
            (cut - kept) as u64,
            "cut at {cut}"
        );
        assert_eq!(log.recovery().dropped_records, u64::from(cut > kept));
    }
}

fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x10;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn bit_rot_in_the_tail_record_is_cut_and_in_the_middle_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 40);
    let files = segment_files(dir.path());
    let tail = files.last().unwrap().clone();
    let len = std::fs::metadata(&tail).unwrap().len() as usize;

    // The last record damaged: it is cut, nothing before it is lost.
    let copy = tempfile::tempdir().unwrap();
    copy_log_files(dir.path(), copy.path());
    flip(&copy.path().join(tail.file_name().unwrap()), len - 3);
    let log = FileLog::open(copy.path(), config()).unwrap();
    check_prefix(&log, 39);
    assert_eq!(log.recovery().dropped_records, 1);
    drop(log);

    // A record in the middle of the tail segment damaged: an error naming file and position.
    let copy = tempfile::tempdir().unwrap();
    copy_log_files(dir.path(), copy.path());
    flip(&copy.path().join(tail.file_name().unwrap()), 20);
    match FileLog::open(copy.path(), config()) {
        Err(Error::Corrupt { path, position, .. }) => {
            assert_eq!(path.file_name(), tail.file_name());
            assert_eq!(position, 0);
        }
        other => panic!("expected corruption, got {other:?}"),
    }

    // A sealed segment damaged, its index gone: opening rescans it and reports the damage.
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 200);
    let files = segment_files(dir.path());
    assert!(files.len() > 2);
    let copy = tempfile::tempdir().unwrap();
    copy_log_files(dir.path(), copy.path());
    let first = copy.path().join(files[0].file_name().unwrap());
    flip(&first, 30);
    std::fs::remove_file(first.with_extension("index")).unwrap();
    assert!(matches!(
        FileLog::open(copy.path(), config()),
        Err(Error::Corrupt { .. })
    ));

    // With its index intact, the damage is found when the record is read, never skipped.
    let copy = tempfile::tempdir().unwrap();
    copy_log_files(dir.path(), copy.path());
    flip(&copy.path().join(files[0].file_name().unwrap()), 30);
    let log = FileLog::open(copy.path(), config()).unwrap();
    assert!(matches!(
        log.read(Offset::new(0), 1 << 20),
        Err(Error::Corrupt { .. })
    ));
    assert!(!log.verify().unwrap().is_empty());
    drop(log);

    // A length field damaged so the frame runs past its segment: an error too, not an empty
    // batch (which a reader would take for "nothing more", for ever).
    let copy = tempfile::tempdir().unwrap();
    copy_log_files(dir.path(), copy.path());
    flip(&copy.path().join(files[0].file_name().unwrap()), 2);
    let log = FileLog::open(copy.path(), config()).unwrap();
    let read = log.read(Offset::new(0), 1 << 20);
    assert!(matches!(read, Err(Error::Corrupt { .. })), "{read:?}");
}

#[test]
fn a_missing_index_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 200);
    for f in segment_files(dir.path()) {
        let _ = std::fs::remove_file(f.with_extension("index"));
    }
    let log = FileLog::open(dir.path(), config()).unwrap();
    assert!(log.recovery().rebuilt_indexes > 0);
    check_prefix(&log, 200);
    assert!(log.verify().unwrap().is_empty());
}

#[test]
fn io_failures_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    match FileLog::open(file.join("log"), config()) {
        Err(e @ Error::Io { .. }) => assert!(e.to_string().contains("not-a-dir"), "{e}"),
        other => panic!("expected an I/O error, got {other:?}"),
    }
    assert!(matches!(
        FileLog::open(dir.path(), LogConfig::default().segment_bytes(10)),
        Err(Error::InvalidConfig { .. })
    ));
}

#[test]
fn always_durability_with_concurrent_appenders() {
    let dir = tempfile::tempdir().unwrap();
    let log = std::sync::Arc::new(FileLog::open(dir.path(), LogConfig::default()).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let log = std::sync::Arc::clone(&log);
            std::thread::spawn(move || {
                (0..50)
                    .map(|i| {
                        log.append(Epoch::new(1), &[Entry::new(format!("{t}-{i}").as_bytes())])
                            .unwrap()
                            .first()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut offsets: Vec<Offset> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    offsets.sort();
    assert_eq!(offsets, (0..400).map(Offset::new).collect::<Vec<_>>());
    drop(log);
    let log = FileLog::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(all(&log).len(), 400);
}

#[test]
fn reads_near_window_edges_and_empty_appends() {
    let dir = tempfile::tempdir().unwrap();
    // No recent frames kept in memory: every read goes to the file, through its windows.
    let log = FileLog::open(dir.path(), config().recent_bytes(0)).unwrap();
    // 93-byte frames: headers straddle every window edge sooner or later.
    let payload = [9u8; 57];
    for _ in 0..120 {
        log.append(Epoch::new(1), &[Entry::new(&payload)]).unwrap();
    }
    assert_eq!(log.append(Epoch::new(1), &[]).unwrap().count(), 0);
    assert_eq!(log.end_offset(), Offset::new(120));
    for from in 0..120 {
        for max in 0..4 {
            let got = log.read(Offset::new(from), max).unwrap();
            assert_eq!(got.len(), 1, "read({from}, {max})");
            assert_eq!(got[0].offset, Offset::new(from));
        }
    }
}

#[test]
fn preallocated_zeros_are_not_damage_and_a_torn_write_into_them_is_cut_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::default().durability(Durability::Always);
    let log = FileLog::open(dir.path(), config).unwrap();
    for i in 0..20 {
        log.append(Epoch::new(1), &[Entry::new(&payload(i))])
            .unwrap();
    }
    // A crash: no clean close, so the zeros written ahead of the appends stay.
    let (dir, seg) = crash(log, dir.path());
    assert!(std::fs::metadata(&seg.path).unwrap().len() > seg.bytes);

    let log = FileLog::open(dir.path(), config).unwrap();
    assert_eq!(log.recovery().truncated_bytes, 0);
    assert_eq!(log.recovery().dropped_records, 0);
    check_prefix(&log, 20);
    log.append(Epoch::new(1), &[Entry::new(&payload(20))])
        .unwrap();
    let (dir, seg) = crash(log, dir.path());

    // A torn write into the zeros: the first half of a frame, the rest of it still zeros.
    let mut frame = Vec::new();
    shardkit_replication::encode(
        &Record::new(Offset::new(21), Epoch::new(1), 0, payload(21)),
        &mut frame,
    )
    .unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&seg.path)
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &frame[..frame.len() / 2], seg.bytes).unwrap();
    drop(f);
    let log = FileLog::open(dir.path(), config).unwrap();
    assert_eq!(log.recovery().truncated_bytes, frame.len() as u64);
    assert_eq!(log.recovery().dropped_records, 1);
    check_prefix(&log, 21);

    // A clean close leaves no zeros behind.
    drop(log);
    assert_eq!(std::fs::metadata(&seg.path).unwrap().len(), seg.bytes);
}

#[test]
fn logs_that_do_not_sync_or_opt_out_do_not_preallocate() {
    for config in [
        LogConfig::default().durability(Durability::Never),
        LogConfig::default().preallocate(false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::open(dir.path(), config).unwrap();
        log.append(Epoch::new(1), &[Entry::new(b"x")]).unwrap();
        let (_crashed, seg) = crash(log, dir.path());
        assert_eq!(std::fs::metadata(&seg.path).unwrap().len(), seg.bytes);
    }
}

/// A replica runs its log under `Durability::Never` and syncs it itself: once it has, appends
/// preallocate, so its syncs need not commit the file's growth.
#[test]
fn a_log_its_owner_syncs_preallocates_under_durability_never() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::open(
        dir.path(),
        LogConfig::default().durability(Durability::Never),
    )
    .unwrap();
    log.append(Epoch::new(1), &[Entry::new(b"x")]).unwrap();
    log.sync().unwrap();
    log.append(Epoch::new(1), &[Entry::new(b"y")]).unwrap();
    let seg = log.segments().pop().unwrap();
    let on_disk = std::fs::metadata(&seg.path).unwrap().len();
    assert!(
        on_disk > seg.bytes,
        "{on_disk} bytes for {} of records",
        seg.bytes
    );
    // The zeros are not records: a crash here recovers exactly the two records.
    let (dir, _) = crash(log, dir.path());
    let log = FileLog::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.end_offset(), Offset::new(2));
}

#[test]
fn an_unsynced_write_with_a_sector_missing_is_torn_not_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    // Synced by its owner (a replica's way), so the write below is not.
    let config = LogConfig::default().durability(Durability::Never);
    let log = FileLog::open(dir.path(), config).unwrap();
    for i in 0..5 {
        log.append(Epoch::new(1), &[Entry::new(&payload(i))])
            .unwrap();
    }
    log.sync().unwrap();
    let before = log.segments().pop().unwrap().bytes;
    // One write of 40 records spanning several sectors, as a batch of group commit would be.
    let batch: Vec<Vec<u8>> = (5..45).map(|i| vec![b'a' + (i % 26) as u8; 200]).collect();
    let entries: Vec<Entry<'_>> = batch.iter().map(|p| Entry::new(p)).collect();
    log.append(Epoch::new(1), &entries).unwrap();
    let (dir, seg) = crash(log, dir.path());
    // Power fails before the sync completes: one sector of the write never reaches the disk
    // (it still reads as the preallocated zeros) while later ones do.
    let hole = (before / 512 + 3) * 512;
    assert!(hole + 512 < seg.bytes);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&seg.path)
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0; 512], hole).unwrap();
    drop(f);

    let log = FileLog::open(dir.path(), config).unwrap();
    let kept = log.end_offset().get();
    assert!((5..45).contains(&kept), "kept {kept}");
    assert!(
        log.recovery().dropped_records >= 45 - kept,
        "{:?} kept {kept}",
        log.recovery()
    );
    let records = all(&log);
    assert_eq!(records.len() as u64, kept);
    for r in &records[5..] {
        assert_eq!(r.payload, batch[r.offset.get() as usize - 5]);
    }
}

/// Set for a copy of this test binary that only tries to open the log in its directory.
const OPEN_PROBE: &str = "SHARDKIT_TEST_OPEN_PROBE";

#[test]
fn a_second_log_on_one_directory_is_refused_in_the_same_process_too() {
    if let Some(dir) = std::env::var_os(OPEN_PROBE) {
        // The copy in another process: exit 3 if refused as in use.
        match FileLog::open(&dir, config()) {
            Err(Error::InUse { .. }) => std::process::exit(3),
            other => panic!("opened from another process: {other:?}"),
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let link = tempfile::tempdir().unwrap();
    let link = link.path().join("the same log");
    std::os::unix::fs::symlink(dir.path(), &link).unwrap();
    let log = FileLog::open(dir.path(), config()).unwrap();
    log.append(Epoch::new(1), &[Entry::new(b"kept")]).unwrap();
    for path in [dir.path().to_path_buf(), dir.path().join("."), link.clone()] {
        let second = FileLog::open(&path, config());
        assert!(matches!(second, Err(Error::InUse { .. })), "{second:?}");
    }
    // The refused opens left the first log's lock whole: another process is refused too.
    let probe = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_second_log_on_one_directory_is_refused_in_the_same_process_too",
        ])
        .env(OPEN_PROBE, dir.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&probe.stdout);
    assert_eq!(probe.status.code(), Some(3), "{said}");
    // Once the first is closed, the directory opens, by any path.
    drop(log);
    let log = FileLog::open(&link, config()).unwrap();
    assert_eq!(
        log.read(Offset::new(0), 1 << 20).unwrap()[0].payload,
        b"kept"
    );
}

/// The `Interval` syncer holds the log while it syncs; a log dropped meanwhile must still be
/// gone, its directory free, when `drop` returns. With a 1 ms interval the syncer is often
/// mid-sync at the drop.
#[test]
fn a_log_syncing_on_an_interval_can_be_reopened_as_soon_as_it_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        LogConfig::default().durability(Durability::Interval(std::time::Duration::from_millis(1)));
    for i in 0..600u64 {
        let log =
            FileLog::open(dir.path(), config).unwrap_or_else(|e| panic!("reopening {i}: {e}"));
        assert_eq!(log.end_offset(), Offset::new(i));
        log.append(Epoch::new(1), &[Entry::new(b"x")]).unwrap();
        std::thread::sleep(std::time::Duration::from_micros(i % 7 * 150));
    }
}

#[test]
fn reset_restarts_the_log_empty_at_an_offset_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::default().segment_bytes(4096);
    let log = FileLog::open(dir.path(), config).unwrap();
    for _ in 0..200 {
        log.append(Epoch::new(2), &[Entry::new(&[7; 40])]).unwrap();
    }
    assert!(log.segments().len() > 1);
    log.reset(Offset::new(1000), Epoch::new(3)).unwrap();
    assert_eq!(log.start_offset(), Offset::new(1000));
    assert_eq!(log.end_offset(), Offset::new(1000));
    assert_eq!(log.epochs(), vec![(Epoch::new(3), Offset::new(999))]);
    let copied = Record::new(Offset::new(1000), Epoch::new(4), 1, b"after".to_vec());
    log.append_records(std::slice::from_ref(&copied)).unwrap();
    drop(log);
    let log = FileLog::open(dir.path(), config).unwrap();
    assert_eq!(log.start_offset(), Offset::new(1000));
    assert_eq!(log.read(Offset::new(1000), 1 << 20).unwrap(), vec![copied]);
    assert_eq!(log.segments().len(), 1);
    assert!(matches!(
        log.read(Offset::new(10), 1 << 20),
        Err(Error::OffsetOutOfRange { .. })
    ));
}

/// Frames of 2 KiB of zeros: any stretch of them holds a whole aligned 512-byte sector of
/// zeros, the mark of a torn write when no synced mark vouches for it.
fn zeros_payload() -> Vec<u8> {
    vec![0; 2048]
}

/// One segment for everything below.
fn one_segment() -> LogConfig {
    config().segment_bytes(1 << 20)
}

/// Appends `n` records of zeros to `log`.
fn append_zeros(log: &FileLog, epoch: u64, n: u64) {
    for _ in 0..n {
        log.append(Epoch::new(epoch), &[Entry::new(&zeros_payload())])
            .unwrap();
    }
}

/// A crash of `log`'s process, as the next process finds `dir`: the log is never closed,
/// and its files are copied as they are into a new directory for the test to go on in (the
/// leaked log still holds `dir`). Returns that directory and the log's tail segment in it.
fn crash(log: FileLog, dir: &Path) -> (tempfile::TempDir, SegmentInfo) {
    let mut tail = log.segments().pop().unwrap();
    let copy = tempfile::tempdir().unwrap();
    copy_log_files(dir, copy.path());
    std::mem::forget(log);
    tail.path = copy.path().join(tail.path.file_name().unwrap());
    (copy, tail)
}

#[test]
fn bit_rot_in_synced_records_is_an_error_even_where_it_looks_like_a_torn_write() {
    for damaged in [0, 1] {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::open(dir.path(), one_segment()).unwrap();
        append_zeros(&log, 1, 2);
        log.sync().unwrap();
        let (dir, tail) = crash(log, dir.path());
        // A record's offset field damaged. Before the second record, the stretch up to it
        // holds sectors of zeros, as a torn write's would; the second is the last record.
        let frame = tail.bytes as usize / 2;
        flip(&tail.path, damaged * frame + 8);
        match FileLog::open(dir.path(), one_segment()) {
            Err(Error::Corrupt { position, .. }) => {
                assert_eq!(position, (damaged * frame) as u64);
            }
            other => panic!("record {damaged}: expected corruption, got {other:?}"),
        }
        // Without the mark (a crash can lose it: it is never synced itself), the damage
        // looks like a torn write and is cut with what follows, as before marks.
        std::fs::remove_file(dir.path().join("synced")).unwrap();
        let log = FileLog::open(dir.path(), one_segment()).unwrap();
        assert_eq!(log.end_offset(), Offset::new(damaged as u64));
    }
}

#[test]
fn after_a_truncation_or_a_reset_unsynced_appends_can_be_torn_and_cut() {
    for reset in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::open(dir.path(), one_segment()).unwrap();
        append_zeros(&log, 1, 4);
        log.sync().unwrap();
        // Below the synced end again, then appended to without a sync.
        if reset {
            log.reset(Offset::new(0), Epoch::new(2)).unwrap();
        } else {
            log.truncate_from(Offset::new(1)).unwrap();
        }
        let kept = log.end_offset();
        append_zeros(&log, 2, 1);
        let (dir, tail) = crash(log, dir.path());
        // Torn: the last record's end never reached the disk.
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&tail.path)
            .unwrap();
        f.set_len(tail.bytes - 100).unwrap();
        let log = FileLog::open(dir.path(), one_segment()).unwrap();
        assert_eq!(log.recovery().dropped_records, 1, "reset {reset}");
        assert_eq!(log.end_offset(), kept, "reset {reset}");
    }
}

#[test]
fn appends_past_the_largest_offset_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file_log = FileLog::open(dir.path(), config()).unwrap();
    let memory_log = shardkit_replication::MemoryLog::new();
    let logs: [&dyn LogStorage; 2] = [&file_log, &memory_log];
    let last = Offset::new(u64::MAX - 1);
    for log in logs {
        // A reset just below the top, as a faulty leader's snapshot could ask for.
        log.reset(last, Epoch::new(1)).unwrap();
        assert_eq!(
            log.append(Epoch::new(1), &[Entry::new(b"last")])
                .unwrap()
                .first(),
            last
        );
        assert_eq!(log.end_offset(), Offset::new(u64::MAX));
        assert!(matches!(
            log.append(Epoch::new(1), &[Entry::new(b"one too many")]),
            Err(Error::OffsetOverflow {
                end: u64::MAX,
                count: 1
            })
        ));
        let beyond = Record::new(Offset::new(u64::MAX), Epoch::new(1), 0, b"x".to_vec());
        assert!(matches!(
            log.append_records(&[beyond]),
            Err(Error::OffsetOverflow { .. })
        ));
        assert_eq!(log.read(last, 1 << 10).unwrap()[0].payload, b"last");
    }
    drop(file_log);
    let log = FileLog::open(dir.path(), config()).unwrap();
    assert_eq!(log.end_offset(), Offset::new(u64::MAX));
    assert_eq!(log.read(last, 1 << 10).unwrap()[0].payload, b"last");
}
