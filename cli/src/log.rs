//! `shardkit log`: write, inspect, verify and measure a durable log directory; run replicas.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand, ValueEnum};
use shardkit_replication::{Durability, Entry, Epoch, FileLog, LogConfig, LogStorage, Offset};

/// `shardkit log` commands.
#[derive(Debug, Subcommand)]
pub(crate) enum LogCommand {
    /// Append generated records, printing each offset as soon as it is acknowledged.
    Append(AppendArgs),
    /// Print records, one line each, starting with the offset. Like `verify` and `stats`, it
    /// reads a temporary copy of the log (room for one is needed), so the log is never
    /// changed. A copy that a running writer changed while it was taken, and that looks torn
    /// or damaged, is taken again (five tries in all); under steady writes its last write
    /// may still look torn, so stop the writer first to be sure.
    Dump(DumpArgs),
    /// Check every checksum and index entry; exits non-zero on corruption, or on a torn tail
    /// that opening the log would cut.
    Verify(DirArgs),
    /// Segments, records, bytes and epochs.
    Stats(DirArgs),
    /// Append rate by durability policy and record size, in a temporary directory.
    Bench(BenchArgs),
    /// Run a replica over TCP; it leads a new replica set unless a coordinator decides.
    Serve(crate::replicate::ServeArgs),
    /// Run a replica over TCP that follows the first other member unless a coordinator decides.
    Follow(crate::replicate::ServeArgs),
    /// Run the lease coordinator that detects a dead leader and fails over.
    Coordinate(crate::replicate::CoordinateArgs),
    /// Show a replica's offsets, commit point, epoch and each follower's lag.
    Status(crate::replicate::StatusArgs),
    /// Write records to a replica set over TCP, printing `seq offset` per acknowledgement.
    Write(crate::replicate::WriteArgs),
}

/// When appends are acknowledged.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum SyncPolicy {
    /// After the records are synced to disk (group commit).
    Always,
    /// Once the records are in the page cache.
    Never,
    /// After writing; a background thread syncs every 100 ms.
    Interval,
}

impl SyncPolicy {
    fn durability(self) -> Durability {
        match self {
            SyncPolicy::Always => Durability::Always,
            SyncPolicy::Never => Durability::Never,
            SyncPolicy::Interval => Durability::Interval(Duration::from_millis(100)),
        }
    }
}

/// Arguments of `shardkit log append`.
#[derive(Debug, Args)]
pub(crate) struct AppendArgs {
    /// The log directory.
    dir: PathBuf,
    /// When an append counts as acknowledged.
    #[arg(long, value_enum, default_value_t = SyncPolicy::Always)]
    sync: SyncPolicy,
    /// How many records to append, one per append call.
    #[arg(long, default_value_t = 1000)]
    records: u64,
    /// Payload bytes per record.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// The leader epoch to write with.
    #[arg(long, default_value_t = 1)]
    epoch: u64,
}

/// Arguments naming a log directory.
#[derive(Debug, Args)]
pub(crate) struct DirArgs {
    /// The log directory.
    dir: PathBuf,
}

/// Arguments of `shardkit log dump`.
#[derive(Debug, Args)]
pub(crate) struct DumpArgs {
    /// The log directory.
    dir: PathBuf,
    /// The first offset to print (default: the log's start).
    #[arg(long)]
    from: Option<u64>,
    /// How many records to print at most.
    #[arg(long)]
    count: Option<u64>,
}

/// Arguments of `shardkit log bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
}

/// The payload `shardkit log append` writes at `offset`: checkable after a crash.
pub(crate) fn generated_payload(offset: u64, size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| ((offset + i as u64) % 251) as u8)
        .collect()
}

/// A log opened for looking at: a copy of the one in a directory, so that looking never
/// changes it (opening runs recovery, which cuts a torn or damaged tail and rebuilds indexes).
struct Inspected {
    log: FileLog,
    /// Why opening the log itself fails, if it does: damage to records its synced mark
    /// vouches for. `log` is then the copy opened without the mark, with the damage cut.
    refused: Option<String>,
    /// Where the copy lives; removed on drop.
    _copy: tempfile::TempDir,
}

/// Whether `name` is a segment file's: its base offset in digits, then `.log`.
fn is_segment(name: &str) -> bool {
    name.strip_suffix(".log")
        .is_some_and(|base| !base.is_empty() && base.bytes().all(|b| b.is_ascii_digit()))
}

/// The file in which a log records how far its tail was synced (see `FileLog`'s docs).
const SYNCED_MARK: &str = "synced";

/// The file whose lock keeps a log to one writer. Not copied: the copy has its own, and
/// copying it from inside the writer's process would end the writer's lock (an `fcntl` lock
/// ends when its process closes any descriptor of the file).
const LOCK_FILE: &str = "lock";

/// How many times a copy is taken in all, when the log changed while one was taken and that
/// copy looks torn or damaged, or could not be taken.
const COPY_TRIES: usize = 5;

/// Opens a copy of the log in `dir` (its files, into a temporary directory). Refuses a
/// directory that holds no segment, rather than make an empty log of it.
fn inspect(dir: &Path) -> Result<Inspected, String> {
    inspect_with(dir, &mut || {})
}

/// [`inspect`], calling `after_mark` once the synced mark is copied, before the segments (a
/// test's way to change the log then).
///
/// A log being written can change while it is copied: a truncation (a follower cutting a
/// divergent suffix) lowers the mark before it cuts the segment, so a copy holding the mark
/// from before it and the segment from after it looks as if synced records were lost; a
/// compaction or a reset can remove segments between listing and copying them; an append can
/// be half copied. So a copy that looks torn or damaged, or could not be taken, is taken
/// again if the directory changed meanwhile ([`DirState`]), up to [`COPY_TRIES`] times in all;
/// the last try's result stands.
fn inspect_with(dir: &Path, after_mark: &mut dyn FnMut()) -> Result<Inspected, String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a log directory", dir.display()));
    }
    for _ in 1..COPY_TRIES {
        let before = DirState::of(dir);
        let inspected = copy_and_open(dir, after_mark);
        let sound = matches!(&inspected, Ok(i) if torn_tail(i).is_none());
        if sound || DirState::of(dir) == before {
            return inspected;
        }
    }
    copy_and_open(dir, after_mark)
}

/// What changes in a log directory when its writer changes the log: each file's name, length
/// and modification time, and the synced mark's bytes (rewritten in place, sometimes within
/// one tick of the file system's clock).
#[derive(Debug, PartialEq, Eq)]
struct DirState {
    files: Vec<(std::ffi::OsString, u64, Option<std::time::SystemTime>)>,
    mark: Option<Vec<u8>>,
}

impl DirState {
    fn of(dir: &Path) -> Self {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let meta = entry.metadata().ok()?;
                Some((entry.file_name(), meta.len(), meta.modified().ok()))
            })
            .collect();
        files.sort();
        Self {
            files,
            mark: std::fs::read(dir.join(SYNCED_MARK)).ok(),
        }
    }
}

/// Copies the log in `dir` into a temporary directory (see [`copy_log`]) and opens the copy.
fn copy_and_open(dir: &Path, after_mark: &mut dyn FnMut()) -> Result<Inspected, String> {
    let copy = tempfile::tempdir().map_err(|e| format!("a temporary copy: {e}"))?;
    copy_log(dir, copy.path(), after_mark)?;
    open_copy(copy)
}

/// Copies the log files of `dir` into `copy`, the synced mark first (copied after a segment
/// that a running writer then appended to and synced, it would vouch for bytes the copy
/// lacks), then calls `after_mark`.
fn copy_log(dir: &Path, copy: &Path, after_mark: &mut dyn FnMut()) -> Result<(), String> {
    let describe = |e: std::io::Error| format!("{}: {e}", dir.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(describe)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(describe)?;
    let is_mark = |path: &Path| path.file_name() == Some(std::ffi::OsStr::new(SYNCED_MARK));
    files.sort_by_key(|path| !is_mark(path));
    let mut segments = 0;
    for path in files {
        let Some(name) = path.file_name() else {
            continue;
        };
        if !path.is_file() || name == LOCK_FILE {
            continue;
        }
        segments += usize::from(is_segment(&name.to_string_lossy()));
        std::fs::copy(&path, copy.join(name))
            .map_err(|e| format!("copying {}: {e}", path.display()))?;
        if is_mark(&path) {
            after_mark();
        }
    }
    if segments == 0 {
        return Err(format!("{} holds no log segments", dir.display()));
    }
    Ok(())
}

/// Opens the copy of a log; see [`Inspected`].
fn open_copy(copy: tempfile::TempDir) -> Result<Inspected, String> {
    let config = LogConfig::default().durability(Durability::Never);
    let (log, refused) = match FileLog::open(copy.path(), config) {
        Ok(log) => (log, None),
        // Synced records damaged: the log refuses to open. Without the mark, recovery cuts
        // the damage as it would a torn write, and shows what lies before it.
        Err(refused @ shardkit_replication::Error::Corrupt { .. }) => {
            let mark = copy.path().join(SYNCED_MARK);
            let log = std::fs::remove_file(&mark)
                .ok()
                .and_then(|()| FileLog::open(copy.path(), config).ok())
                .ok_or_else(|| refused.to_string())?;
            (log, Some(refused.to_string()))
        }
        Err(e) => return Err(e.to_string()),
    };
    Ok(Inspected {
        log,
        refused,
        _copy: copy,
    })
}

/// What opening the log would cut from its tail, or why it would fail, if anything.
fn torn_tail(inspected: &Inspected) -> Option<String> {
    let r = inspected.log.recovery();
    if let Some(refused) = &inspected.refused {
        return Some(format!(
            "the tail is torn or damaged: opening the log fails, since records it synced are \
             damaged or missing ({refused}); without its synced mark (the file `synced`), \
             opening would cut {} bytes ({} records), acknowledged ones among them",
            r.truncated_bytes, r.dropped_records
        ));
    }
    (r.truncated_bytes > 0).then(|| {
        format!(
            "the tail is torn or damaged: opening the log cuts {} bytes ({} records) (after a \
             crash, the last write, never acknowledged; otherwise, damage)",
            r.truncated_bytes, r.dropped_records
        )
    })
}

pub(crate) fn run(cmd: &LogCommand) -> Result<(), String> {
    match cmd {
        LogCommand::Append(args) => append(args),
        LogCommand::Dump(args) => dump(args),
        LogCommand::Verify(args) => verify(args),
        LogCommand::Stats(args) => stats(args),
        LogCommand::Bench(args) => bench(args),
        LogCommand::Serve(args) => crate::replicate::serve(args, true),
        LogCommand::Follow(args) => crate::replicate::serve(args, false),
        LogCommand::Coordinate(args) => crate::replicate::coordinate(args),
        LogCommand::Status(args) => crate::replicate::status(args),
        LogCommand::Write(args) => crate::replicate::write(args),
    }
}

fn append(args: &AppendArgs) -> Result<(), String> {
    let log = FileLog::open(
        &args.dir,
        LogConfig::default().durability(args.sync.durability()),
    )
    .map_err(|e| e.to_string())?;
    let recovery = log.recovery();
    if recovery.truncated_bytes > 0 {
        eprintln!(
            "recovered: cut a torn tail of {} bytes ({} records)",
            recovery.truncated_bytes, recovery.dropped_records
        );
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for _ in 0..args.records {
        let payload = generated_payload(log.end_offset().get(), args.size);
        let appended = log
            .append(Epoch::new(args.epoch), &[Entry::new(&payload)])
            .map_err(|e| e.to_string())?;
        // One line per acknowledgement, flushed at once, so a crash test knows what was acked.
        writeln!(out, "{}", appended.first())
            .and_then(|()| out.flush())
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn dump(args: &DumpArgs) -> Result<(), String> {
    let inspected = inspect(&args.dir)?;
    let log = &inspected.log;
    if let Some(torn) = torn_tail(&inspected) {
        eprintln!("{torn} (not shown)");
    }
    let mut next = Offset::new(args.from.unwrap_or(log.start_offset().get()));
    let mut left = args.count.unwrap_or(u64::MAX);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    while left > 0 && next < log.end_offset() {
        for r in log.read(next, 1 << 20).map_err(|e| e.to_string())? {
            if left == 0 {
                break;
            }
            let key = r.key.as_deref().map_or_else(
                || "-".to_string(),
                |k| String::from_utf8_lossy(k).into_owned(),
            );
            let head = &r.payload[..r.payload.len().min(32)];
            let preview = match std::str::from_utf8(head) {
                Ok(text) if !text.chars().any(char::is_control) => format!("\"{text}\""),
                _ => head.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            };
            let written = writeln!(
                out,
                "{} epoch={} ts={} key={key} len={} payload={preview}",
                r.offset,
                r.epoch,
                r.timestamp_ms,
                r.payload.len()
            );
            if written.is_err() {
                return Ok(()); // the reader went away (a pipe to `head`)
            }
            next = Offset::new(r.offset.get() + 1);
            left -= 1;
        }
    }
    Ok(())
}

fn verify(args: &DirArgs) -> Result<(), String> {
    let inspected = inspect(&args.dir)?;
    let log = &inspected.log;
    let mut problems: Vec<String> = torn_tail(&inspected).into_iter().collect();
    problems.extend(
        log.verify()
            .map_err(|e| e.to_string())?
            .iter()
            .map(ToString::to_string),
    );
    if problems.is_empty() {
        println!(
            "ok: {} segments, offsets {}..{}, every checksum and index entry verified",
            log.segments().len(),
            log.start_offset(),
            log.end_offset()
        );
        Ok(())
    } else {
        for p in &problems {
            println!("{p}");
        }
        Err(format!("{} problems found", problems.len()))
    }
}

fn stats(args: &DirArgs) -> Result<(), String> {
    let inspected = inspect(&args.dir)?;
    let log = &inspected.log;
    if let Some(torn) = torn_tail(&inspected) {
        eprintln!("{torn} (not counted)");
    }
    let segments = log.segments();
    let bytes: u64 = segments.iter().map(|s| s.bytes).sum();
    println!(
        "offsets {}..{} ({} records), {} bytes in {} segments",
        log.start_offset(),
        log.end_offset(),
        log.end_offset().get() - log.start_offset().get(),
        bytes,
        segments.len()
    );
    for s in &segments {
        // The copy's file, named as in the directory given.
        let path = s
            .path
            .file_name()
            .map_or_else(|| s.path.clone(), |n| args.dir.join(n));
        println!(
            "  {}  offsets {}..{}  {} bytes",
            path.display(),
            s.base,
            s.end,
            s.bytes
        );
    }
    for (epoch, first) in log.epochs() {
        println!("  epoch {epoch} from offset {first}");
    }
    Ok(())
}

fn bench(args: &BenchArgs) -> Result<(), String> {
    if !(args.seconds.is_finite() && args.seconds <= 3600.0) {
        return Err("--seconds must be a number of seconds, at most 3600".into());
    }
    let budget = Duration::from_secs_f64(args.seconds.max(0.05));
    println!(
        "{:<8} {:>8} {:>7} {:>14} {:>10}",
        "sync", "record", "batch", "records/s", "MB/s"
    );
    for (policy, batch) in [
        (SyncPolicy::Never, 64),
        (SyncPolicy::Always, 1),
        (SyncPolicy::Always, 1024),
    ] {
        for size in [100usize, 1000] {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let log = FileLog::open(
                dir.path(),
                LogConfig::default().durability(policy.durability()),
            )
            .map_err(|e| e.to_string())?;
            let payload = vec![7u8; size];
            let entries = vec![Entry::new(&payload); batch];
            let t = Instant::now();
            let mut n = 0u64;
            while t.elapsed() < budget {
                n += log
                    .append(Epoch::new(1), &entries)
                    .map_err(|e| e.to_string())?
                    .count();
            }
            let secs = t.elapsed().as_secs_f64();
            println!(
                "{:<8} {size:>8} {batch:>7} {:>14.0} {:>10.1}",
                format!("{policy:?}").to_lowercase(),
                n as f64 / secs,
                (n as f64 * size as f64) / secs / 1e6
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log of 100 synced records in a fresh directory.
    fn synced_log() -> (tempfile::TempDir, FileLog) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let log = FileLog::open(dir.path(), LogConfig::default()).expect("open");
        for offset in 0..100 {
            log.append(
                Epoch::new(1),
                &[Entry::new(&generated_payload(offset, 100))],
            )
            .expect("append");
        }
        (dir, log)
    }

    /// A log nobody writes is copied once.
    #[test]
    fn a_quiet_log_is_copied_once() {
        let (dir, _log) = synced_log();
        let mut copies = 0;
        let inspected = inspect_with(dir.path(), &mut || copies += 1).expect("inspect");
        assert_eq!(copies, 1);
        assert_eq!(torn_tail(&inspected), None);
        assert_eq!(inspected.log.end_offset(), Offset::new(100));
    }

    /// A truncation by the log's writer while the log is copied, between its synced mark and
    /// its segments, is not shown as damage: the copy is taken again.
    #[test]
    fn a_truncation_during_the_copy_is_not_taken_for_damage() {
        let (dir, log) = synced_log();
        let mut copies = 0;
        let inspected = inspect_with(dir.path(), &mut || {
            copies += 1;
            if copies == 1 {
                log.truncate_from(Offset::new(50)).expect("truncate");
            }
        })
        .expect("inspect");
        assert_eq!(copies, 2);
        assert_eq!(torn_tail(&inspected), None);
        assert_eq!(inspected.log.end_offset(), Offset::new(50));
        assert!(inspected.log.verify().expect("verify").is_empty());
    }

    /// Damage that stays is reported, however many copies are taken: here, inside the log,
    /// where opening fails even without the synced mark, while a writer appends during every
    /// copy.
    #[test]
    fn damage_that_stays_is_reported() {
        use std::io::{Read as _, Seek as _, SeekFrom};
        let (dir, log) = synced_log();
        let segment = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").path())
            .find(|p| is_segment(&p.file_name().unwrap_or_default().to_string_lossy()))
            .expect("a segment");
        // A bit flipped past 80 records' payloads, inside the 100 records.
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&segment)
            .expect("open segment");
        let at = SeekFrom::Start(80 * 100);
        let mut byte = [0u8];
        file.seek(at)
            .and_then(|_| file.read_exact(&mut byte))
            .expect("read");
        byte[0] ^= 1;
        file.seek(at)
            .and_then(|_| file.write_all(&byte))
            .expect("write");
        let checksum = |inspected: &Result<Inspected, String>| {
            let mismatch = |e: &String| e.contains("frame checksum mismatch");
            inspected.as_ref().err().is_some_and(mismatch)
        };
        // Quiet: one copy says it.
        let mut copies = 0;
        let inspected = inspect_with(dir.path(), &mut || copies += 1);
        assert!(
            checksum(&inspected),
            "{:?}",
            inspected.map(|i| torn_tail(&i))
        );
        assert_eq!(copies, 1);
        // Written to: every try says it.
        let mut copies = 0;
        let inspected = inspect_with(dir.path(), &mut || {
            copies += 1;
            log.append(Epoch::new(1), &[Entry::new(b"more")])
                .expect("append");
        });
        assert!(
            checksum(&inspected),
            "{:?}",
            inspected.map(|i| torn_tail(&i))
        );
        assert_eq!(copies, COPY_TRIES);
    }
}
