//! The log suite: our file log against this machine's raw limits measured in the same run on
//! the same filesystem (buffered writes, `fdatasync` per record and per batch, sequential reads),
//! and against `okaywal` and `commitlog`. Workloads are defined in `benches/README.md`.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use shardkit_benches::stats::median;
use shardkit_replication::{Durability, Entry, Epoch, FileLog, LogConfig, LogStorage, Offset};

/// Arguments of the log suite.
#[derive(Debug, Args)]
pub(crate) struct LogArgs {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// Rounds per measurement; tables show the median.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Directory to measure in (default: a temporary directory on the system's temp filesystem).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Appending threads for the group-commit table.
    #[arg(long, default_value_t = 32)]
    threads: usize,
}

const RECORD: usize = 100;
/// Our frame of a 100-byte unkeyed record: 8 header + 28 fixed fields + payload.
const FRAME: usize = 136;

fn io<T>(r: std::io::Result<T>) -> Result<T, String> {
    r.map_err(|e| e.to_string())
}

/// Runs `f` (which reports units done) until `budget` passes; returns units per second.
fn rate(budget: Duration, mut f: impl FnMut() -> Result<u64, String>) -> Result<f64, String> {
    let t = Instant::now();
    let mut units = 0;
    while t.elapsed() < budget {
        units += f()?;
    }
    Ok(units as f64 / t.elapsed().as_secs_f64())
}

/// The median of `n` samples, each taken after the kernel has written back every dirty page, so
/// no measurement pays for the writeback of the one before it.
fn rounds(n: usize, mut f: impl FnMut(usize) -> Result<f64, String>) -> Result<f64, String> {
    let mut samples = (0..n)
        .map(|i| {
            settle();
            f(i)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(median(&mut samples))
}

/// Flushes every dirty page system-wide (`sync(1)`); a missing `sync` command only costs noise.
fn settle() {
    let _ = std::process::Command::new("sync").status();
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Scratch {
    root: PathBuf,
    next: usize,
}

impl Scratch {
    /// A fresh directory; the previous one is deleted first, so gigabytes written by earlier
    /// measurements do not weigh on later ones.
    fn dir(&mut self) -> Result<PathBuf, String> {
        let _ = std::fs::remove_dir_all(self.root.join(format!("run-{}", self.next)));
        self.next += 1;
        let d = self.root.join(format!("run-{}", self.next));
        io(std::fs::create_dir_all(&d))?;
        Ok(d)
    }
}

fn file_log(dir: &Path, durability: Durability) -> Result<FileLog, String> {
    FileLog::open(dir, LogConfig::default().durability(durability)).map_err(|e| e.to_string())
}

pub(crate) fn run(args: &LogArgs, out: &mut String) -> Result<(), String> {
    let tmp = tempfile::tempdir_in(args.dir.clone().unwrap_or_else(std::env::temp_dir))
        .map_err(|e| e.to_string())?;
    let mut scratch = Scratch {
        root: tmp.path().to_path_buf(),
        next: 0,
    };
    let budget = Duration::from_secs_f64(args.seconds);
    let n = args.rounds.max(1);
    let payload = vec![0x5a_u8; RECORD];

    // Raw limits of this filesystem, measured now.
    let raw_write = rounds(n, |_| {
        let mut f = io(File::create(scratch.dir()?.join("raw")))?;
        let chunk = vec![1u8; RECORD * 64];
        rate(budget, || {
            io(f.write_all(&chunk)).map(|()| chunk.len() as u64)
        })
    })?;
    let mut raw_sync_latencies = Vec::new();
    let raw_sync = rounds(n, |_| {
        let mut f = io(File::create(scratch.dir()?.join("raw")))?;
        rate(budget, || {
            let t = Instant::now();
            io(f.write_all(&payload))?;
            io(f.sync_data())?;
            raw_sync_latencies.push(t.elapsed().as_secs_f64() * 1e6);
            Ok(1)
        })
    })?;
    // The same into space written with zeros beforehand, as our log preallocates it.
    let mut raw_prealloc_latencies = Vec::new();
    let raw_prealloc = rounds(n, |_| {
        let mut f = io(File::create(scratch.dir()?.join("raw")))?;
        io(f.write_all(&vec![0u8; 64 << 20]))?;
        io(f.sync_all())?;
        io(f.rewind())?;
        rate(budget, || {
            let t = Instant::now();
            io(f.write_all(&payload))?;
            io(f.sync_data())?;
            raw_prealloc_latencies.push(t.elapsed().as_secs_f64() * 1e6);
            Ok(1)
        })
    })?;
    let raw_batch = rounds(n, |_| {
        let mut f = io(File::create(scratch.dir()?.join("raw")))?;
        let batch = vec![2u8; FRAME * 1024];
        rate(budget, || {
            io(f.write_all(&batch))?;
            io(f.sync_data())?;
            Ok(1024)
        })
    })?;

    // Ours.
    let never = rounds(n, |_| {
        let log = file_log(&scratch.dir()?, Durability::Never)?;
        let entries = vec![Entry::new(&payload); 64];
        rate(budget, || {
            log.append(Epoch::new(1), &entries)
                .map(|a| a.count() * RECORD as u64)
                .map_err(|e| e.to_string())
        })
    })?;
    let always_batch = rounds(n, |_| {
        let log = file_log(&scratch.dir()?, Durability::Always)?;
        let entries = vec![Entry::new(&payload); 1024];
        rate(budget, || {
            log.append(Epoch::new(1), &entries)
                .map(|a| a.count())
                .map_err(|e| e.to_string())
        })
    })?;
    let threads = args.threads;
    let group = rounds(n, |_| {
        let log = Arc::new(file_log(&scratch.dir()?, Durability::Always)?);
        concurrent(threads, budget, |_| {
            let log = Arc::clone(&log);
            let payload = payload.clone();
            move || {
                log.append(Epoch::new(1), &[Entry::new(&payload)])
                    .map(|_| 1)
                    .map_err(|e| e.to_string())
            }
        })
    })?;
    let mut latencies = Vec::new();
    {
        let log = file_log(&scratch.dir()?, Durability::Always)?;
        rate(budget * n as u32, || {
            let t = Instant::now();
            log.append(Epoch::new(1), &[Entry::new(&payload)])
                .map_err(|e| e.to_string())?;
            latencies.push(t.elapsed().as_secs_f64() * 1e6);
            Ok(1)
        })?;
    }
    let read = read_rates(&mut scratch, n, &payload)?;

    // Peers.
    let okaywal_group = rounds(n, |_| {
        let wal = okaywal::WriteAheadLog::recover(scratch.dir()?, okaywal::LogVoid)
            .map_err(|e| e.to_string())?;
        concurrent(threads, budget, |_| {
            let wal = wal.clone();
            let payload = payload.clone();
            move || {
                let mut entry = wal.begin_entry().map_err(|e| e.to_string())?;
                entry.write_chunk(&payload).map_err(|e| e.to_string())?;
                entry.commit().map(|_| 1).map_err(|e| e.to_string())
            }
        })
    })?;
    let commitlog_never = rounds(n, |_| {
        let mut log = commitlog::CommitLog::new(commitlog::LogOptions::new(scratch.dir()?))
            .map_err(|e| e.to_string())?;
        rate(budget, || {
            let mut buf = commitlog::message::MessageBuf::default();
            for _ in 0..64 {
                buf.push(&payload).map_err(|e| format!("{e:?}"))?;
            }
            log.append(&mut buf)
                .map(|_| 64 * RECORD as u64)
                .map_err(|e| format!("{e:?}"))
        })
    })?;
    let commitlog_always = rounds(n, |_| {
        let mut log = commitlog::CommitLog::new(commitlog::LogOptions::new(scratch.dir()?))
            .map_err(|e| e.to_string())?;
        rate(budget, || {
            let mut buf = commitlog::message::MessageBuf::default();
            for _ in 0..1024 {
                buf.push(&payload).map_err(|e| format!("{e:?}"))?;
            }
            log.append(&mut buf).map_err(|e| format!("{e:?}"))?;
            log.flush().map(|()| 1024).map_err(|e| e.to_string())
        })
    })?;

    raw_sync_latencies.sort_by(f64::total_cmp);
    raw_prealloc_latencies.sort_by(f64::total_cmp);
    latencies.sort_by(f64::total_cmp);
    let mb = |b: f64| b / 1e6;
    let _ = writeln!(out, "## Durable log\n");
    let _ = writeln!(
        out,
        "Reproduce: `cargo run --release -p shardkit-benches --bin compare -- log --seconds {} --rounds {} --threads {}` (medians of {n} rounds of {}s; 100-byte records)\n",
        args.seconds, args.rounds, args.threads, args.seconds
    );
    let _ = writeln!(
        out,
        "### This filesystem's raw limits, measured in the same run\n"
    );
    let _ = writeln!(out, "| raw operation | rate |\n|---|---|");
    let _ = writeln!(
        out,
        "| buffered `write` of 6,400-byte chunks | {:.0} MB/s |",
        mb(raw_write)
    );
    let _ = writeln!(
        out,
        "| `write` 100 bytes + `fdatasync`, one thread | {raw_sync:.0} /s (p50 {:.0} us, p99 {:.0} us) |",
        percentile(&raw_sync_latencies, 0.5),
        percentile(&raw_sync_latencies, 0.99)
    );
    let _ = writeln!(
        out,
        "| the same into preallocated space (zeros written and synced first) | {raw_prealloc:.0} /s (p50 {:.0} us, p99 {:.0} us) |",
        percentile(&raw_prealloc_latencies, 0.5),
        percentile(&raw_prealloc_latencies, 0.99)
    );
    let _ = writeln!(
        out,
        "| `write` 1,024 x 136 bytes + `fdatasync` | {raw_batch:.0} records/s |"
    );
    let _ = writeln!(
        out,
        "| sequential `read` of the log's files from the device (cache dropped) | {:.0} MB/s |",
        mb(read.cold_raw)
    );
    let _ = writeln!(
        out,
        "| sequential `read` of the log's files from the page cache | {:.0} MB/s |\n",
        mb(read.warm_raw)
    );
    let _ = writeln!(
        out,
        "### shardkit-replication `FileLog` against them and the peers\n"
    );
    let _ = writeln!(
        out,
        "| workload | shardkit | vs raw | okaywal 0.3 | commitlog 0.2 |\n|---|---|---|---|---|"
    );
    let _ = writeln!(
        out,
        "| `Never`, batches of 64 (payload MB/s) | {:.0} | {:.0}% of buffered write | - | {:.0} (no sync either) |",
        mb(never),
        100.0 * never / raw_write,
        mb(commitlog_never)
    );
    let _ = writeln!(
        out,
        "| `Always`, batches of 1,024 (records/s) | {always_batch:.0} | {:.0}% of write+fdatasync per batch | - | {commitlog_always:.0} (append + `flush`, which syncs) |",
        100.0 * always_batch / raw_batch
    );
    let _ = writeln!(
        out,
        "| `Always`, {threads} threads x 1 record (records/s) | {group:.0} | {:.1}x one thread's write+fdatasync loop ({:.1}x the loop into preallocated space) | {okaywal_group:.0} (we are {:.1}x) | - |",
        group / raw_sync,
        group / raw_prealloc,
        group / okaywal_group
    );
    let _ = writeln!(
        out,
        "| `Always`, 1 record, latency p50 / p99 (us) | {:.0} / {:.0} | {:.2}x / {:.2}x raw fdatasync ({:.2}x / {:.2}x into preallocated space) | - | - |",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 0.5) / percentile(&raw_sync_latencies, 0.5),
        percentile(&latencies, 0.99) / percentile(&raw_sync_latencies, 0.99),
        percentile(&latencies, 0.5) / percentile(&raw_prealloc_latencies, 0.5),
        percentile(&latencies, 0.99) / percentile(&raw_prealloc_latencies, 0.99)
    );
    let _ = writeln!(
        out,
        "| read the whole log with `read_batch_into`, from the device (framed MB/s) | {:.0} | {:.0}% of sequential read from the device | - | - |",
        mb(read.cold_ours),
        100.0 * read.cold_ours / read.cold_raw
    );
    let _ = writeln!(
        out,
        "| read the whole log with `read_batch_into`, from the page cache (framed MB/s) | {:.0} | {:.0}% of sequential read from the page cache | - | - |\n",
        mb(read.warm_ours),
        100.0 * read.warm_ours / read.warm_raw
    );
    Ok(())
}

/// Records per second with `threads` threads each running the closure `make(t)` returns in a
/// loop for `budget`.
fn concurrent<F, M>(threads: usize, budget: Duration, make: M) -> Result<f64, String>
where
    M: Fn(usize) -> F,
    F: FnMut() -> Result<u64, String> + Send + 'static,
{
    let t = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let mut op = make(i);
            std::thread::spawn(move || -> Result<u64, String> {
                let mut n = 0;
                while t.elapsed() < budget {
                    n += op()?;
                }
                Ok(n)
            })
        })
        .collect();
    let mut total = 0;
    for h in handles {
        total += h
            .join()
            .map_err(|_| "an appending thread panicked".to_string())??;
    }
    Ok(total as f64 / t.elapsed().as_secs_f64())
}

/// Read rates over the same 272 MB of records, in bytes per second: ours and raw `read`s, from
/// the page cache ("warm") and from the device ("cold": each file's cached pages are dropped
/// with `posix_fadvise(DONTNEED)` before every round, so both read the disk).
struct ReadRates {
    warm_ours: f64,
    warm_raw: f64,
    cold_ours: f64,
    cold_raw: f64,
}

fn read_rates(scratch: &mut Scratch, n: usize, payload: &[u8]) -> Result<ReadRates, String> {
    let dir = scratch.dir()?;
    let log = file_log(&dir, Durability::Never)?;
    let entries = vec![Entry::new(payload); 1024];
    while log.end_offset().get() < 2_000_000 {
        log.append(Epoch::new(1), &entries)
            .map_err(|e| e.to_string())?;
    }
    log.sync().map_err(|e| e.to_string())?;
    let files: Vec<PathBuf> = log.segments().iter().map(|s| s.path.clone()).collect();
    for path in &files {
        // Only clean pages can be dropped from the cache.
        io(File::open(path).and_then(|f| f.sync_all()))?;
    }
    let bytes: u64 = log.segments().iter().map(|s| s.bytes).sum();
    let drop_cache = |cold: bool| -> Result<(), String> {
        for path in files.iter().filter(|_| cold) {
            let f = io(File::open(path))?;
            io(rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).map_err(Into::into))?;
        }
        Ok(())
    };
    let ours = |cold: bool| {
        rounds(n, |_| {
            drop_cache(cold)?;
            let t = Instant::now();
            let mut next = Offset::new(0);
            let mut checksum = 0u64;
            let mut batch = shardkit_replication::RecordBatch::default();
            while next < log.end_offset() {
                log.read_batch_into(next, 1 << 20, &mut batch)
                    .map_err(|e| e.to_string())?;
                for r in batch.iter() {
                    checksum = checksum.wrapping_add(u64::from(r.payload[0]));
                    next = Offset::new(r.offset.get() + 1);
                }
            }
            std::hint::black_box(checksum);
            Ok(bytes as f64 / t.elapsed().as_secs_f64())
        })
    };
    let raw = |cold: bool| {
        rounds(n, |_| {
            drop_cache(cold)?;
            let t = Instant::now();
            let mut buf = vec![0u8; 1 << 20];
            let mut total = 0u64;
            for path in &files {
                let mut f = io(File::open(path))?;
                loop {
                    let got = io(f.read(&mut buf))?;
                    if got == 0 {
                        break;
                    }
                    total += got as u64;
                }
            }
            Ok(total as f64 / t.elapsed().as_secs_f64())
        })
    };
    Ok(ReadRates {
        warm_ours: ours(false)?,
        warm_raw: raw(false)?,
        cold_ours: ours(true)?,
        cold_raw: raw(true)?,
    })
}
