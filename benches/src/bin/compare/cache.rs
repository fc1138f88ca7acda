//! The cache suite: hit ratios on the real traces in `../shared/traces` and on synthetic streams,
//! for our cache (default configuration), moka, quick_cache and mini-moka, with exact LRU and
//! Belady's OPT beside each row. Workloads are defined in `benches/README.md`.

use std::fmt::Write as _;
use std::io::{BufReader, Read as _};
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use shardkit_benches::caches::{
    BenchCache, MiniMoka, Moka, MokaHeldToCapacity, MutexLru, QuickCache, Shardkit,
    compute_throughput, moka_excess, scramble, throughput, zipf_stream,
};
use shardkit_benches::machine::{FAR_NS, between_probes};
use shardkit_benches::stats::median;
use shardkit_cache::sim::{Simulation, read_trace};

/// Arguments of the cache suite.
#[derive(Debug, Args)]
pub(crate) struct CacheArgs {
    /// The directory of `*.trace.gz` files.
    #[arg(long, default_value = "../shared/traces")]
    traces: PathBuf,
    /// Accesses in each synthetic stream.
    #[arg(long, default_value_t = 10_000_000)]
    ops: usize,
    /// Keys the synthetic streams draw from.
    #[arg(long, default_value_t = 1_000_000)]
    keyspace: u64,
    /// Rounds per throughput measurement; tables show the median.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Operations per thread per throughput round.
    #[arg(long, default_value_t = 2_000_000)]
    thread_ops: usize,
    /// Runs per cache on each stream of at most `--short-stream` accesses; the hit-ratio table
    /// shows the median. Every run builds the cache anew, with its own randomly seeded hasher,
    /// so a short trace's ratio moves between runs (measured: up to 4 points for moka).
    #[arg(long, default_value_t = 5)]
    hit_runs: usize,
    /// The longest stream (in accesses) that gets `--hit-runs` runs; longer streams run once:
    /// they vary less between runs and cost the most time.
    #[arg(long, default_value_t = 1_000_000)]
    short_stream: usize,
    /// Tables to produce (default: all): `hit`, `throughput`, `compute`, `memory`.
    #[arg(long, num_args = 1..)]
    only: Vec<String>,
}

impl CacheArgs {
    fn wants(&self, table: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|t| t == table)
    }
}

/// Capacity of the throughput and hit-path workloads.
const CAPACITY: usize = 100_000;

/// Calls `visit` with the index of each of `caches` caches once per round, starting one later
/// each round, so no cache always runs first or after the same neighbour.
fn in_rotation(caches: usize, rounds: usize, mut visit: impl FnMut(usize)) {
    for round in 0..rounds {
        for i in 0..caches {
            visit((i + round) % caches);
        }
    }
}

/// One measurement of each of `caches` caches, in rotating order each round; medians in
/// index order.
fn interleaved(caches: usize, rounds: usize, mut one: impl FnMut(usize) -> f64) -> Vec<f64> {
    let mut samples = vec![Vec::new(); caches];
    in_rotation(caches, rounds, |c| samples[c].push(one(c)));
    samples.iter_mut().map(|s| median(s)).collect()
}

/// Two-thread samples per cache in index order, each with whether the two cores were far
/// apart at either end of it.
struct Probed {
    rates: Vec<Vec<f64>>,
    far: Vec<Vec<bool>>,
}

/// As [`interleaved`], for two threads, with a round-trip probe before and after every
/// sample: the table keeps the medians of all samples, and the probes say how many were
/// taken with the cores far apart, which can move a two-thread ratio more than the caches
/// differ.
fn interleaved_probed(caches: usize, rounds: usize, mut one: impl FnMut(usize) -> f64) -> Probed {
    let mut probed = Probed {
        rates: vec![Vec::new(); caches],
        far: vec![Vec::new(); caches],
    };
    in_rotation(caches, rounds, |c| {
        let (rate, far) = between_probes(|| one(c));
        probed.rates[c].push(rate);
        probed.far[c].push(far);
    });
    probed
}

/// The medians of one table row, for the caches `names` (by index) on `threads` threads (1 or
/// 2): two-thread samples are probed for far cores, with a note for the row pushed to `notes`.
fn row_medians(
    names: &[&str],
    threads: usize,
    rounds: usize,
    label: &str,
    notes: &mut Vec<String>,
    one: impl FnMut(usize) -> f64,
) -> Vec<f64> {
    if threads == 1 {
        return interleaved(names.len(), rounds, one);
    }
    let mut probed = interleaved_probed(names.len(), rounds, one);
    notes.push(distance_note(label, names, &probed));
    probed.rates.iter_mut().map(|s| median(s)).collect()
}

/// A row's cells: each cache's rate, then ours (the first) against the second.
fn rate_cells(rates: &[f64]) -> String {
    let cells: Vec<String> = rates.iter().map(|r| format!("{r:.2}")).collect();
    format!("{} | {:.2}x", cells.join(" | "), rates[0] / rates[1])
}

/// A line on a two-thread row: how many samples each of `names` had on far cores, and ours
/// (the first) against the second on near cores alone, when both have at least three such
/// samples.
fn distance_note(label: &str, names: &[&str], probed: &Probed) -> String {
    let counts: Vec<String> = names
        .iter()
        .zip(&probed.far)
        .map(|(name, far)| {
            let n = far.iter().filter(|&&f| f).count();
            format!("{name} {n} of {}", far.len())
        })
        .collect();
    let near = |c: usize| -> Vec<f64> {
        probed.rates[c]
            .iter()
            .zip(&probed.far[c])
            .filter(|&(_, &far)| !far)
            .map(|(&r, _)| r)
            .collect()
    };
    let (mut ours, mut theirs) = (near(0), near(1));
    let alone = if ours.len() >= 3 && theirs.len() >= 3 {
        format!(
            "on near cores alone, ours / {} = {:.2}x ({} and {} samples)",
            names[1],
            median(&mut ours) / median(&mut theirs),
            ours.len(),
            theirs.len()
        )
    } else {
        "too few samples on near cores to compare them alone".to_string()
    };
    format!(
        "- {label}, 2 threads: samples with far cores: {}; {alone}.",
        counts.join(", ")
    )
}

const NAMES: [&str; 5] = [
    Shardkit::NAME,
    QuickCache::NAME,
    MutexLru::NAME,
    MiniMoka::NAME,
    Moka::NAME,
];

/// moka and mini-moka, 2.5 to 30 times slower than the others (an order of magnitude on most
/// rows), replay the first `1 / SLOW_SHARE` of each stream: they took four fifths of the
/// suite's time, and that far off, their rates need no more precision. Warm-ups are the same
/// for all.
const SLOW_SHARE: usize = 4;

/// The first `1 / SLOW_SHARE` of each of `streams`.
fn slow_share(streams: &[Vec<u64>]) -> Vec<Vec<u64>> {
    streams
        .iter()
        .map(|s| s[..s.len() / SLOW_SHARE].to_vec())
        .collect()
}

/// A throughput sample of cache `c` of [`NAMES`]; `short` are `streams` cut for the slow
/// peers ([`SLOW_SHARE`]).
fn run_one(
    c: usize,
    warm: &[u64],
    (streams, short): (&[Vec<u64>], &[Vec<u64>]),
    get_only: bool,
) -> f64 {
    match c {
        0 => throughput::<Shardkit>(CAPACITY, warm, streams, get_only),
        1 => throughput::<QuickCache>(CAPACITY, warm, streams, get_only),
        2 => throughput::<MutexLru>(CAPACITY, warm, streams, get_only),
        3 => throughput::<MiniMoka>(CAPACITY, warm, short, get_only),
        _ => throughput::<Moka>(CAPACITY, warm, short, get_only),
    }
}

fn throughput_table(args: &CacheArgs, out: &mut String) {
    let _ = writeln!(
        out,
        "## Cache throughput

Reproduce: `cargo run --release -p shardkit-benches --bin compare -- cache --only throughput --rounds {}`. Capacity {CAPACITY}; keys from Zipf over {} keys; each thread replays its own {} operations after a warm-up (moka and mini-moka, 2.5 to 30 times slower, the first {}); million operations per second, median of {} rounds with the caches interleaved.
",
        args.rounds,
        args.keyspace,
        args.thread_ops,
        args.thread_ops / SLOW_SHARE,
        args.rounds
    );
    let mut notes = Vec::new();
    let _ = writeln!(
        out,
        "| workload | threads | {} | ours / quick_cache |
|---|---:|{}---:|",
        NAMES.join(" | "),
        "---:|".repeat(NAMES.len())
    );
    for (label, s, get_only) in [
        ("get, insert on a miss, Zipf 0.99", 0.99, false),
        ("get, insert on a miss, Zipf 0.7", 0.7, false),
        (
            "hits only: 50,000 keys resident, Zipf 0.99 gets",
            0.99,
            true,
        ),
    ] {
        let keyspace = if get_only { 50_000 } else { args.keyspace };
        let warm = if get_only {
            (0..keyspace).map(scramble).collect()
        } else {
            zipf_stream(1_000_000, keyspace, s, 99, 0)
        };
        for threads in [1usize, 2] {
            eprintln!("throughput: {label}, {threads} threads");
            let streams: Vec<Vec<u64>> = (0..threads)
                .map(|t| zipf_stream(args.thread_ops, keyspace, s, 10 + t as u64, 0))
                .collect();
            let short = slow_share(&streams);
            let rates = row_medians(&NAMES, threads, args.rounds, label, &mut notes, |c| {
                run_one(c, &warm, (&streams, &short), get_only)
            });
            let _ = writeln!(out, "| {label} | {threads} | {} |", rate_cells(&rates));
        }
    }
    let _ = writeln!(
        out,
        "\nOn two threads, how far apart the two cores are can move a figure more than the caches differ: a cache line's round trip between them (`shardkit_benches::machine::line_round_trip_ns`) measured 41-53 ns on this VM at times and 355-515 ns at others, in spells of seconds to a minute or more, and on far cores the two-thread get-or-insert of ours and quick_cache ran at about a quarter of its rate on near ones. Each two-thread sample is bracketed by such a probe; a sample with either probe at or over {FAR_NS:.0} ns counts as taken on far cores (a spell can begin or end within a sample, so the split is approximate):\n"
    );
    for note in notes {
        let _ = writeln!(out, "{note}");
    }
    let _ = writeln!(out);
}

/// The caches with a call that updates one key atomically (see
/// [`shardkit_benches::caches::BenchCompute`]); quick_cache second, as the peer ours is
/// compared with (the faster of the two that have one).
const COMPUTE_NAMES: [&str; 4] = [Shardkit::NAME, QuickCache::NAME, Moka::NAME, MutexLru::NAME];

/// An atomic-update sample of cache `c` of [`COMPUTE_NAMES`]; moka replays `short`
/// ([`SLOW_SHARE`]).
fn compute_one(c: usize, warm: &[u64], (streams, short): (&[Vec<u64>], &[Vec<u64>])) -> f64 {
    match c {
        0 => compute_throughput::<Shardkit>(CAPACITY, warm, streams),
        1 => compute_throughput::<QuickCache>(CAPACITY, warm, streams),
        2 => compute_throughput::<Moka>(CAPACITY, warm, short),
        _ => compute_throughput::<MutexLru>(CAPACITY, warm, streams),
    }
}

/// Atomic updates of one key (a counter per key), at 1 and 2 threads.
fn compute_table(args: &CacheArgs, out: &mut String) {
    let _ = writeln!(
        out,
        "## Atomic update of one key

Reproduce: `cargo run --release -p shardkit-benches --bin compare -- cache --only compute --rounds {}`. Each operation adds one to the count of a key drawn from Zipf 0.99 over {} keys (starting it at 1 when absent) in a cache of {CAPACITY} entries, after a warm-up of 1,000,000 such updates: ours with `compute` (a new entry per update, read lock-free), quick_cache with `entry` (in place, under its shard's write lock; an absent key through its placeholder guard), moka with `entry(key).and_compute_with`, the mutex baseline holding its lock across its get and put (mini-moka has no such call). Each thread replays its own {} operations (moka the first {}); million operations per second, median of {} rounds with the caches interleaved; two-thread samples are probed for far cores as in the throughput table.

| threads | {} | ours / quick_cache |
|---:|{}---:|",
        args.rounds,
        args.keyspace,
        args.thread_ops,
        args.thread_ops / SLOW_SHARE,
        args.rounds,
        COMPUTE_NAMES.join(" | "),
        "---:|".repeat(COMPUTE_NAMES.len())
    );
    let warm = zipf_stream(1_000_000, args.keyspace, 0.99, 99, 0);
    let mut notes = Vec::new();
    for threads in [1usize, 2] {
        eprintln!("compute: {threads} threads");
        let streams: Vec<Vec<u64>> = (0..threads)
            .map(|t| zipf_stream(args.thread_ops, args.keyspace, 0.99, 10 + t as u64, 0))
            .collect();
        let short = slow_share(&streams);
        let rates = row_medians(
            &COMPUTE_NAMES,
            threads,
            args.rounds,
            "add one",
            &mut notes,
            |c| compute_one(c, &warm, (&streams, &short)),
        );
        let _ = writeln!(out, "| {threads} | {} |", rate_cells(&rates));
    }
    let _ = writeln!(out);
    for note in notes {
        let _ = writeln!(out, "{note}");
    }
    let _ = writeln!(out);
}

/// The `cache-memory` binary next to this one, rebuilt first when run through `cargo run` (it
/// has its own counting allocator, so it is a separate binary, and `cargo run --bin compare`
/// alone would leave it measuring old code). Run otherwise, it is used as found, with a warning.
fn memory_binary() -> Result<std::path::PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin = exe.with_file_name("cache-memory");
    if let Some(cargo) = std::env::var_os("CARGO") {
        // The profile this binary was built with is the name of its directory.
        let profile = exe
            .parent()
            .and_then(|d| d.file_name())
            .and_then(|p| p.to_str())
            .map(|p| if p == "debug" { "dev" } else { p })
            .ok_or_else(|| format!("no build profile in {}", exe.display()))?;
        let status = std::process::Command::new(cargo)
            .args(["build", "--profile", profile, "-p", "shardkit-benches"])
            .args(["--bin", "cache-memory"])
            .status()
            .map_err(|e| format!("building cache-memory: {e}"))?;
        if !status.success() {
            return Err(format!("building cache-memory: {status}"));
        }
    } else {
        eprintln!(
            "measuring with {} as built; if the cache changed since, rebuild it with `cargo build --release -p shardkit-benches`",
            bin.display()
        );
    }
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!(
            "{} is missing: build it with `cargo build --release -p shardkit-benches`",
            bin.display()
        ))
    }
}

/// Runs `cache-memory` for one cache; `(bytes per entry after the first million, at steady
/// state)`.
fn memory_of(bin: &std::path::Path, name: &str) -> Result<(f64, f64), String> {
    let output = std::process::Command::new(bin)
        .arg(name)
        .output()
        .map_err(|e| {
            format!(
                "{}: {e} (build it with `cargo build --release -p shardkit-benches`)",
                bin.display()
            )
        })?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut fields = text.split_whitespace().map(str::parse::<f64>);
    match (fields.next(), fields.next()) {
        (Some(Ok(fill)), Some(Ok(steady))) => Ok((fill, steady)),
        _ => Err(format!("cache-memory {name}: unexpected output {text:?}")),
    }
}

/// The memory table, measured with the `cache-memory` binary `bin` (see [`memory_binary`]).
fn memory_table(bin: &std::path::Path, out: &mut String) -> Result<(), String> {
    let _ = writeln!(
        out,
        "## Cache memory

Reproduce: `cargo run --release -p shardkit-benches --bin compare -- cache --only memory`. Capacity 1,000,000 `u64` to `u64` entries; live heap bytes (a counting allocator, one process per cache) per resident entry after inserting 1,000,000 distinct keys, and after 2,000,000 more (steady state, with evictions). The payload is 16 bytes.
"
    );
    let _ = writeln!(
        out,
        "| cache | bytes/entry, filled | bytes/entry, steady state |
|---|---:|---:|"
    );
    for name in NAMES {
        eprintln!("memory: {name}");
        let (fill, steady) = memory_of(bin, name)?;
        let _ = writeln!(out, "| {name} | {fill:.1} | {steady:.1} |");
    }
    let _ = writeln!(out);
    Ok(())
}

/// The median hit ratio of `runs` caches built anew, each replaying `keys`.
fn hit_ratio<C: BenchCache>(keys: &[u64], capacity: usize, runs: usize) -> f64 {
    let mut ratios: Vec<f64> = (0..runs.max(1))
        .map(|_| {
            let cache = C::with_capacity(capacity);
            let hits = keys.iter().filter(|&&k| cache.access(k)).count();
            hits as f64 / keys.len() as f64
        })
        .collect();
    median(&mut ratios)
}

/// One row of the hit-ratio table.
struct Row {
    trace: String,
    capacity: usize,
    ours: f64,
    peers: [f64; 3],
    /// moka never holding more than the capacity ([`MokaHeldToCapacity`]).
    moka_held: f64,
    lru: f64,
    opt: f64,
}

impl Row {
    /// The best of moka, quick_cache and mini-moka.
    fn best_peer(&self) -> f64 {
        self.peers.iter().copied().fold(f64::MIN, f64::max)
    }

    /// The best of moka and quick_cache, the two peers the hit-ratio targets compare with.
    fn best_of_two(&self) -> f64 {
        self.peers[0].max(self.peers[1])
    }

    /// The better of quick_cache and moka held to the capacity: the two at the same peak
    /// number of entries as ours.
    fn best_of_two_held(&self) -> f64 {
        self.moka_held.max(self.peers[1])
    }
}

/// Ours minus `best`, in points, over `rows`: `(mean, worst, rows more than 0.5 below)`.
fn margins(rows: &[Row], best: impl Fn(&Row) -> f64) -> (f64, f64, usize) {
    let deltas: Vec<f64> = rows.iter().map(|r| 100.0 * (r.ours - best(r))).collect();
    let mean = deltas.iter().sum::<f64>() / deltas.len().max(1) as f64;
    let worst = deltas.iter().copied().fold(f64::MAX, f64::min);
    (mean, worst, deltas.iter().filter(|&&d| d < -0.5).count())
}

fn measure(args: &CacheArgs, trace: &str, keys: &[u64], capacities: &[usize]) -> Vec<Row> {
    let sim = Simulation::new(keys);
    let runs = if keys.len() <= args.short_stream {
        args.hit_runs
    } else {
        1
    };
    // Replay-major, so the slowest replays of every capacity start first.
    let jobs: Vec<(usize, Replay)> = Replay::ALL
        .iter()
        .flat_map(|&r| capacities.iter().map(move |&c| (c, r)))
        .collect();
    let ratios = on_every_core(&jobs, |&(capacity, replay)| match replay {
        Replay::Ours => hit_ratio::<Shardkit>(keys, capacity, runs),
        Replay::Moka => hit_ratio::<Moka>(keys, capacity, runs),
        Replay::MokaHeld => hit_ratio::<MokaHeldToCapacity>(keys, capacity, runs),
        Replay::QuickCache => hit_ratio::<QuickCache>(keys, capacity, runs),
        Replay::MiniMoka => hit_ratio::<MiniMoka>(keys, capacity, runs),
        Replay::Lru => sim.lru(capacity),
        Replay::Opt => sim.opt(capacity),
    });
    capacities
        .iter()
        .enumerate()
        .map(|(i, &capacity)| {
            let r = |replay: Replay| ratios[replay as usize * capacities.len() + i];
            Row {
                trace: trace.to_string(),
                capacity,
                ours: r(Replay::Ours),
                peers: [r(Replay::Moka), r(Replay::QuickCache), r(Replay::MiniMoka)],
                moka_held: r(Replay::MokaHeld),
                lru: r(Replay::Lru),
                opt: r(Replay::Opt),
            }
        })
        .collect()
}

/// One replay of a stream at one capacity for the hit-ratio table. Its discriminant is its
/// index in [`Replay::ALL`] (checked below).
#[derive(Debug, Clone, Copy)]
enum Replay {
    Opt,
    Moka,
    MokaHeld,
    MiniMoka,
    Ours,
    QuickCache,
    Lru,
}

impl Replay {
    /// Every replay, each at its discriminant's index; the slowest first, so the last jobs
    /// to start are short and the threads finish together.
    const ALL: [Self; 7] = [
        Self::Opt,
        Self::Moka,
        Self::MokaHeld,
        Self::MiniMoka,
        Self::Ours,
        Self::QuickCache,
        Self::Lru,
    ];
}

const _: () = {
    let mut i = 0;
    while i < Replay::ALL.len() {
        assert!(Replay::ALL[i] as usize == i, "Replay::ALL out of order");
        i += 1;
    }
};

/// `f` of each of `jobs`, in order, computed by one thread per core taking the next job as
/// it finishes one. For hit ratios, which do not depend on timing, unlike the throughput
/// tables, which run one cache at a time.
fn on_every_core<J: Sync>(jobs: &[J], f: impl Fn(&J) -> f64 + Sync) -> Vec<f64> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::OnceLock<f64>> =
        jobs.iter().map(|_| std::sync::OnceLock::new()).collect();
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.min(jobs.len()))
            .map(|_| {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else { break };
                        let _ = results[i].set(f(job));
                    }
                })
            })
            .collect();
        for worker in workers {
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
    results
        .into_iter()
        .map(|r| r.into_inner().expect("every job ran"))
        .collect()
}

fn load(path: &PathBuf) -> Result<Vec<u64>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(BufReader::new(file))
        .read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    read_trace(text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
}

/// Synthetic streams: Zipf 0.99 and 0.7; Zipf 0.99 where 30% of accesses are scans of keys
/// never seen again; Zipf 0.99 whose whole key set is replaced every 10% of the stream.
fn synthetic(args: &CacheArgs) -> Vec<(String, Vec<u64>)> {
    let (n, k) = (args.ops, args.keyspace);
    let mut scan = Vec::with_capacity(n);
    let hot = zipf_stream(n, k, 0.99, 3, 0);
    let mut next_scan = 1u64 << 40;
    for block in hot.chunks(350_000) {
        scan.extend_from_slice(block);
        scan.extend((0..150_000).map(|i| scramble(next_scan + i)));
        next_scan += 150_000;
    }
    scan.truncate(n);
    let phase = (n / 10).max(1);
    let shift: Vec<u64> = (0..n.div_ceil(phase))
        .flat_map(|p| zipf_stream(phase, k, 0.99, 4 + p as u64, (p as u64 + 1) << 32))
        .take(n)
        .collect();
    vec![
        ("zipf 0.99".into(), zipf_stream(n, k, 0.99, 1, 0)),
        ("zipf 0.7".into(), zipf_stream(n, k, 0.7, 2, 0)),
        ("scan 30%".into(), scan),
        ("shifting hot set".into(), shift),
    ]
}

fn hit_table(args: &CacheArgs, out: &mut String) -> Result<(), String> {
    // Measured before the replays, none running beside it.
    let excess = moka_excess();
    let mut rows = Vec::new();
    let mut once = Vec::new();
    let mut measure_stream = |name: String, keys: &[u64], capacities: &[usize]| {
        eprintln!("hit ratios: {name}");
        rows.extend(measure(args, &name, keys, capacities));
        if keys.len() > args.short_stream {
            once.push(name);
        }
    };
    let mut names: Vec<PathBuf> = std::fs::read_dir(&args.traces)
        .map_err(|e| format!("{}: {e}", args.traces.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".trace.gz"))
        .collect();
    names.sort();
    for path in &names {
        let keys = load(path)?;
        let distinct = keys.iter().collect::<std::collections::HashSet<_>>().len();
        let capacities = if distinct > 40_000 {
            vec![1_000, 5_000, 10_000]
        } else {
            vec![distinct / 4, distinct / 2, distinct * 3 / 4]
        };
        let name = path
            .file_name()
            .map(|n| {
                n.to_string_lossy()
                    .trim_end_matches(".trace.gz")
                    .to_string()
            })
            .unwrap_or_default();
        measure_stream(name, &keys, &capacities);
    }
    let small = (args.keyspace / 100) as usize;
    for (name, keys) in synthetic(args) {
        measure_stream(name, &keys, &[small, small * 10]);
    }
    let _ = writeln!(
        out,
        "## Cache hit ratios\n\nReproduce: `cargo run --release -p shardkit-benches --bin compare -- cache` (synthetic streams: {} accesses over {} keys). Every access is a `get`, and a miss inserts the key; hits are counted over the whole stream. Ours runs in its default configuration (sharded). Each cache builds its own randomly seeded hasher, so ratios move between runs: on streams of at most {} accesses each cache's ratio is the median of {} runs; longer streams ({}) run once. Last columns: ours minus the best of moka, quick_cache and mini-moka, minus the best of moka and quick_cache, and minus the best of quick_cache and moka held to the capacity, in points.\n\nmoka queues inserts and applies them in batches, and a queued insert is readable at once, so between batches moka holds more entries than its capacity: up to {} more while one thread only inserts (`moka_excess`, measured before the replays: the most entries beyond a capacity of 1,000 that `iter` shows). Its reads run the batches too (every 64), so in these replays it holds fewer extra entries at its peak, the fewer the more accesses hit. Ours and the mutex LRU keep their bound at every insert; quick_cache rounds each shard's share of the capacity up, so it may hold one entry per shard more; mini-moka queues inserts as moka does, and is not held. The column \"moka held\" is moka built {} entries smaller, so that it never holds more than the capacity: it then holds less, well under the capacity at small capacities, so it is mostly a lower bound for moka (single runs vary with the hasher's seed), and moka as it runs mostly an upper one.\n",
        args.ops,
        args.keyspace,
        args.short_stream,
        args.hit_runs,
        once.join(", "),
        excess,
        excess
    );
    let _ = writeln!(
        out,
        "| trace | capacity | shardkit | moka | moka held | quick_cache | mini-moka | LRU | OPT | vs best peer | vs moka, quick_cache | vs moka held, quick_cache |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in &rows {
        let _ = writeln!(
            out,
            "| {} | {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:+.2} | {:+.2} | {:+.2} |",
            r.trace,
            r.capacity,
            r.ours,
            r.peers[0],
            r.moka_held,
            r.peers[1],
            r.peers[2],
            r.lru,
            r.opt,
            100.0 * (r.ours - r.best_peer()),
            100.0 * (r.ours - r.best_of_two()),
            100.0 * (r.ours - r.best_of_two_held())
        );
    }
    let (mean, worst, below) = margins(&rows, Row::best_peer);
    let (mean2, worst2, below2) = margins(&rows, Row::best_of_two);
    let (mean3, worst3, below3) = margins(&rows, Row::best_of_two_held);
    let below_lru = rows.iter().filter(|r| r.ours < r.lru - 0.005).count();
    let _ = writeln!(
        out,
        "\nOver {} cases, ours minus the best peer: {mean:+.2} points on average, {worst:+.2} at worst, {below} cases more than 0.5 below. Minus the best of moka and quick_cache: {mean2:+.2} on average, {worst2:+.2} at worst, {below2} cases more than 0.5 below. Minus the best of quick_cache and moka held to the capacity: {mean3:+.2} on average, {worst3:+.2} at worst, {below3} cases more than 0.5 below. Ours is more than 0.5 points below LRU in {below_lru} cases.\n",
        rows.len()
    );
    Ok(())
}

pub(crate) fn run(args: &CacheArgs, out: &mut String) -> Result<(), String> {
    let started = Instant::now();
    // Found (or built) first, so a missing binary fails the suite before its long tables.
    let memory_bin = if args.wants("memory") {
        Some(memory_binary()?)
    } else {
        None
    };
    // Each table's time, for the run time line.
    let mut stages = Vec::new();
    let mut stage = |name: &str, table: &mut dyn FnMut() -> Result<(), String>| {
        let began = Instant::now();
        let done = table();
        stages.push(format!("{name} {:.0} s", began.elapsed().as_secs_f64()));
        done
    };
    if args.wants("throughput") {
        stage("throughput", &mut || {
            throughput_table(args, out);
            Ok(())
        })?;
    }
    if args.wants("compute") {
        stage("atomic update", &mut || {
            compute_table(args, out);
            Ok(())
        })?;
    }
    if let Some(bin) = &memory_bin {
        stage("memory", &mut || memory_table(bin, out))?;
    }
    if args.wants("hit") {
        stage("hit ratios", &mut || hit_table(args, out))?;
    }
    let _ = writeln!(
        out,
        "Suite run time: {:.0} s ({}).\n",
        started.elapsed().as_secs_f64(),
        stages.join(", ")
    );
    Ok(())
}
