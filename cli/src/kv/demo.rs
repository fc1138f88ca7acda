//! `shardkit demo`: starts a sharded, replicated, cached key-value service on this machine
//! (node processes on loopback), runs a Zipf workload against it, kills a node with SIGKILL
//! and restarts it, then reads back every acknowledged write and reports.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use clap::Args;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};

use super::client::{Client, Leaders, ReadOutcome, WriteOutcome};
use super::cluster::Cluster;

/// Arguments of `shardkit demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Node processes to start.
    #[arg(long, default_value_t = 5)]
    nodes: u32,
    /// Seconds of workload.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Seed of the workload and of the chaos schedule (runs are reproducible).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Run without killing a node.
    #[arg(long)]
    no_chaos: bool,
    /// Leave the cluster running after the report, until Ctrl-C.
    #[arg(long)]
    keep: bool,
    /// Keep the nodes' data here instead of a temporary directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Slots the key space is divided into.
    #[arg(long, default_value_t = 16)]
    slots: u32,
    /// Distinct keys in the workload.
    #[arg(long, default_value_t = 20_000)]
    keys: u64,
    /// Client threads.
    #[arg(long, default_value_t = 4)]
    clients: u64,
    /// A node's ring weight, as ID=WEIGHT (repeat the flag; the others weigh 1).
    #[arg(long = "weight")]
    weights: Vec<String>,
}

/// Each node's ring weight, from `--weight ID=WEIGHT` flags.
fn node_weights(nodes: u32, flags: &[String]) -> Result<Vec<u32>, String> {
    let mut weights = vec![1; nodes as usize];
    for f in flags {
        let parsed = f
            .split_once('=')
            .and_then(|(id, w)| Some((id.parse::<usize>().ok()?, w.parse::<u32>().ok()?)));
        match parsed {
            Some((id, w)) if (1..=nodes as usize).contains(&id) && w > 0 => weights[id - 1] = w,
            _ => {
                return Err(format!(
                    "--weight {f:?}: expected ID=WEIGHT with 1 <= ID <= {nodes}"
                ));
            }
        }
    }
    Ok(weights)
}

/// What a key must hold: its last acknowledged state, and writes after it whose fate is
/// unknown (any of which may have been applied).
#[derive(Debug, Default, Clone)]
struct Expected {
    /// `None` until a write is acknowledged; then the value (`None` for a delete).
    acked: Option<Option<Vec<u8>>>,
    offset: u64,
    maybe: Vec<Option<Vec<u8>>>,
}

impl Expected {
    fn allows(&self, found: Option<&[u8]>) -> bool {
        let matches = |v: &Option<Vec<u8>>| v.as_deref() == found;
        match &self.acked {
            Some(acked) => matches(acked) || self.maybe.iter().any(matches),
            // Never acknowledged: absent, or any attempted value.
            None => found.is_none() || self.maybe.iter().any(matches),
        }
    }
}

#[derive(Debug, Default)]
struct ThreadReport {
    reads: Vec<u32>,
    writes: Vec<u32>,
    acked: u64,
    unknown: u64,
    stale_reads: Vec<String>,
    expected: BTreeMap<String, Expected>,
}

/// Prints a line above the progress bar (or plainly when there is no terminal).
fn say(bar: &indicatif::ProgressBar, line: &str) {
    bar.suspend(|| println!("{line}"));
}

fn percentile(samples: &mut [u32], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_unstable();
    let i = ((samples.len() as f64 * p) as usize).min(samples.len() - 1);
    f64::from(samples[i]) / 1000.0
}

/// One client thread: Zipf over its share of the keys (key `i` belongs to thread
/// `i % clients`, so each key has one writer and its expected state is exact).
fn client_loop(
    mut client: Client,
    thread: u64,
    args_keys: u64,
    clients: u64,
    seed: u64,
    stop: &AtomicBool,
    ops: &AtomicU64,
) -> ThreadReport {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ (thread + 1).wrapping_mul(0x9E37));
    let zipf = Zipf::new(args_keys, 0.99).expect("a valid Zipf distribution");
    let layout = client_layout(&client);
    let mut report = ThreadReport::default();
    while !stop.load(Ordering::Relaxed) {
        let drawn = zipf.sample(&mut rng) as u64 - 1;
        let index = drawn - drawn % clients + thread;
        if index >= args_keys {
            continue;
        }
        let key = format!("key-{index:06}");
        let t = Instant::now();
        let roll = rng.gen_range(0..100);
        if roll < 25 {
            let value = (roll >= 2).then(|| format!("{key}={}", rng.r#gen::<u32>()).into_bytes());
            let outcome = client.write(&key, value.as_deref(), Duration::from_secs(10));
            let e = report.expected.entry(key).or_default();
            match outcome {
                WriteOutcome::Acked(offset) => {
                    e.acked = Some(value);
                    e.offset = offset;
                    e.maybe.clear();
                    report.acked += 1;
                }
                WriteOutcome::Unknown => {
                    e.maybe.push(value);
                    report.unknown += 1;
                }
            }
            report.writes.push(t.elapsed().as_micros() as u32);
        } else {
            // Read your writes, from any replica of the slot.
            let holders = layout.holders(layout.slot_of(&key));
            let holder = holders[rng.gen_range(0..holders.len())];
            let after = report.expected.get(&key).map(|e| e.offset);
            match client.read(&key, holder, after) {
                ReadOutcome::Value(v) => check_read(&mut report, &key, Some(&v)),
                ReadOutcome::Absent => check_read(&mut report, &key, None),
                ReadOutcome::Unavailable => continue,
            }
            report.reads.push(t.elapsed().as_micros() as u32);
        }
        ops.fetch_add(1, Ordering::Relaxed);
    }
    report
}

fn client_layout(client: &Client) -> super::layout::Layout {
    client.layout().clone()
}

fn check_read(report: &mut ThreadReport, key: &str, found: Option<&[u8]>) {
    let none = Expected::default();
    let expected = report.expected.get(key).unwrap_or(&none);
    if !expected.allows(found) {
        report.stale_reads.push(format!(
            "{key}: read {:?}, expected {:?}",
            found.map(String::from_utf8_lossy),
            expected.acked
        ));
    }
}

pub(crate) fn run(args: &DemoArgs) -> Result<(), String> {
    if args.nodes < 3 || args.slots == 0 || args.keys == 0 || args.clients == 0 {
        return Err("the demo needs at least 3 nodes, 1 slot, 1 key and 1 client".into());
    }
    // Every node takes a port per slot, and every client a thread: beyond these, ports and
    // threads run out (and the port arithmetic would overflow) long before anything useful.
    if args.nodes > 64 || args.slots > 256 || args.clients > 1_024 {
        return Err("the demo runs at most 64 nodes, 256 slots and 1,024 clients".into());
    }
    let temp;
    let dir = match &args.data_dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
            d.clone()
        }
        None => {
            temp = tempfile::tempdir().map_err(|e| e.to_string())?;
            temp.path().to_path_buf()
        }
    };
    println!(
        "shardkit demo: {} nodes, {} slots x 3 replicas, {} keys, {} s, seed {}",
        args.nodes, args.slots, args.keys, args.duration, args.seed
    );
    let started = Instant::now();
    let weights = node_weights(args.nodes, &args.weights)?;
    let mut cluster = Cluster::start(&weights, args.slots, &dir, args.seed)?;
    let elected = cluster.wait_for_leaders(Duration::from_secs(30))?;
    println!(
        "every slot elected a leader {:.0} ms after start",
        elected.as_secs_f64() * 1e3
    );
    for m in cluster.layout.members() {
        let held = (0..args.slots)
            .filter(|&slot| cluster.layout.holders(slot).contains(&m.id))
            .count();
        println!(
            "  node {} at http://{} (ring weight {}, holds {held} slots; try: curl http://{}/status)",
            m.id, m.addr, m.weight, m.addr
        );
    }
    let leaders: Leaders = Arc::new(RwLock::new(Vec::new()));
    let refresh = |cluster: &Cluster, leaders: &Leaders| {
        let addrs = cluster
            .leaders()
            .into_iter()
            .map(|l| l.and_then(|n| cluster.layout.http_addr(n)))
            .collect();
        if let Ok(mut l) = leaders.write() {
            *l = addrs;
        }
    };
    refresh(&cluster, &leaders);
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..args.clients)
        .map(|t| {
            let client = Client::new(cluster.layout.clone(), Arc::clone(&leaders), t + 1);
            let (stop, ops) = (Arc::clone(&stop), Arc::clone(&ops));
            let (keys, clients, seed) = (args.keys, args.clients, args.seed);
            std::thread::spawn(move || client_loop(client, t, keys, clients, seed, &stop, &ops))
        })
        .collect();

    // The chaos monkey's schedule, from the seed: kill a leader at 35%, restart it at 70%.
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let run_for = Duration::from_secs(args.duration);
    let kill_at = run_for.mul_f64(0.35);
    let restart_at = run_for.mul_f64(0.7);
    let bar = indicatif::ProgressBar::new(args.duration);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} s  {msg}")
            .map_err(|e| e.to_string())?,
    );
    let work_start = Instant::now();
    let mut victim = None;
    let mut failover = None;
    let mut restarted = false;
    // Past the run's end too if the victim is still down: on a loaded machine the failover
    // can outlast the run, and every run should see the victim rejoin.
    while work_start.elapsed() < run_for || (victim.is_some() && !restarted) {
        std::thread::sleep(Duration::from_millis(20));
        refresh(&cluster, &leaders);
        let now = work_start.elapsed();
        bar.set_position(now.as_secs());
        bar.set_message(format!("{} ops", ops.load(Ordering::Relaxed)));
        if !args.no_chaos && victim.is_none() && now >= kill_at {
            let leading: Vec<u64> = cluster.leaders().into_iter().flatten().collect();
            let id = leading[rng.gen_range(0..leading.len())];
            let led = leading.iter().filter(|&&n| n == id).count();
            cluster.kill(id);
            say(
                &bar,
                &format!(
                    "chaos: killed node {id} with SIGKILL at {:.1} s (it led {led} slots)",
                    now.as_secs_f64()
                ),
            );
            victim = Some(id);
            failover = Some(cluster.wait_for_leaders(Duration::from_secs(30))?);
            say(
                &bar,
                &format!(
                    "failover: every slot led by a running node {:.0} ms later",
                    failover.unwrap_or_default().as_secs_f64() * 1e3
                ),
            );
        }
        if let Some(id) = victim
            && !restarted
            && now >= restart_at
        {
            cluster.spawn(id)?;
            restarted = true;
            say(
                &bar,
                &format!(
                    "chaos: restarted node {id} at {:.1} s; it catches up",
                    now.as_secs_f64()
                ),
            );
        }
    }
    bar.finish_and_clear();
    stop.store(true, Ordering::Relaxed);
    let reports: Vec<ThreadReport> = workers
        .into_iter()
        .map(|w| w.join().map_err(|_| "a client thread panicked".to_string()))
        .collect::<Result<_, _>>()?;
    let elapsed = work_start.elapsed().as_secs_f64();

    // Convergence: every replica of every slot commits its leader's whole log.
    let checker = Client::new(cluster.layout.clone(), Arc::clone(&leaders), 0);
    // The workload's cache statistics, before the scale-out restarts the nodes.
    let (hits, misses, entries, memory) =
        cluster
            .running()
            .iter()
            .fold((0u64, 0u64, 0u64, 0u64), |(h, m, e, b), &id| {
                let s = checker.status(id);
                let get = |f: &str| s.as_ref().and_then(|s| s["cache"][f].as_u64()).unwrap_or(0);
                (
                    h + get("hits"),
                    m + get("misses"),
                    e + get("entries"),
                    b + get("memory_bytes"),
                )
            });
    let first = wait_converged(&cluster, &checker, Duration::from_secs(30));
    if let Err(behind) = &first {
        println!("not converged after the workload: {behind}");
    }
    let mut converged = first.is_ok();

    // Scale out: a node joins; only the slots whose replica set changes move, and their data
    // is copied to the new replica set before every node restarts with the new member list.
    let grown = cluster.grown_layout()?;
    let (moved, placements) = cluster.layout.moves(&grown);
    let ideal = f64::from(3 * args.slots) / f64::from(args.nodes + 1);
    let t = Instant::now();
    let mut exported = Vec::new();
    for &slot in &moved {
        exported.push((slot, checker.slot_items(slot)?));
    }
    let added = cluster.grow(grown)?;
    cluster.wait_for_leaders(Duration::from_secs(30))?;
    refresh(&cluster, &leaders);
    let mut migrator = Client::new(cluster.layout.clone(), Arc::clone(&leaders), 1_000_000);
    let mut migrated = 0u64;
    for (slot, items) in &exported {
        for (key, value) in items {
            match migrator.write(key, Some(value.as_bytes()), Duration::from_secs(10)) {
                WriteOutcome::Acked(_) => migrated += 1,
                WriteOutcome::Unknown => {
                    return Err(format!(
                        "migrating {key} of slot {slot} was not acknowledged"
                    ));
                }
            }
        }
    }
    let grow_time = t.elapsed();
    let checker = Client::new(cluster.layout.clone(), Arc::clone(&leaders), 0);
    let final_ends = wait_converged(&cluster, &checker, Duration::from_secs(30));
    if let Err(behind) = &final_ends {
        println!("not converged after the scale-out: {behind}");
    }
    converged &= final_ends.is_ok();
    let final_ends = final_ends.unwrap_or_default();

    // Verification: every key holds its last acknowledged write (or a later write whose fate
    // was unknown), read from its slot's leader.
    let mut expected = BTreeMap::new();
    let (mut reads, mut writes, mut acked, mut unknown) = (Vec::new(), Vec::new(), 0, 0);
    let mut stale = Vec::new();
    for r in reports {
        reads.extend(r.reads);
        writes.extend(r.writes);
        acked += r.acked;
        unknown += r.unknown;
        stale.extend(r.stale_reads);
        expected.extend(r.expected);
    }
    refresh(&cluster, &leaders);
    let mut lost = Vec::new();
    for (key, e) in &expected {
        let slot = cluster.layout.slot_of(key);
        let leader = cluster.leaders()[slot as usize].unwrap_or(cluster.layout.holders(slot)[0]);
        // Offsets changed where data migrated: read once the slot's last record is applied.
        let after = final_ends
            .get(&u64::from(slot))
            .and_then(|end| end.checked_sub(1));
        let found = match checker.read(key, leader, after) {
            ReadOutcome::Value(v) => Some(v),
            ReadOutcome::Absent => None,
            ReadOutcome::Unavailable => {
                lost.push(format!("{key}: unreadable"));
                continue;
            }
        };
        if !e.allows(found.as_deref()) {
            lost.push(format!(
                "{key}: holds {:?}, acknowledged {:?}",
                found.map(|v| String::from_utf8_lossy(&v).into_owned()),
                e.acked
            ));
        }
    }
    // The paged scan: every live key exactly once, in order, across all slots.
    let scan = checker.scan_all(cluster.running()[0], 500);
    let mut scan_problems = Vec::new();
    let scanned_pages = match &scan {
        Ok((items, pages)) => {
            if !items.windows(2).all(|w| w[0].0 < w[1].0) {
                scan_problems.push("the scan returned keys out of order or twice".to_string());
            }
            let scanned: BTreeMap<&str, &str> = items
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            for (key, e) in &expected {
                let found = scanned.get(key.as_str()).map(|v| v.as_bytes());
                if !e.allows(found) {
                    scan_problems.push(format!(
                        "{key}: the scan shows {:?}",
                        found.map(String::from_utf8_lossy)
                    ));
                }
            }
            *pages
        }
        Err(e) => {
            scan_problems.push(format!("the scan failed: {e}"));
            0
        }
    };

    let total = reads.len() + writes.len();
    println!("\n== report ==");
    println!(
        "operations: {total} in {elapsed:.1} s = {:.0} ops/s ({} reads, {} writes: {acked} acknowledged at quorum, {unknown} of unknown fate)",
        total as f64 / elapsed,
        reads.len(),
        writes.len()
    );
    println!(
        "latency: reads p50 {:.2} ms p99 {:.2} ms; writes p50 {:.2} ms p99 {:.2} ms",
        percentile(&mut reads, 0.5),
        percentile(&mut reads, 0.99),
        percentile(&mut writes, 0.5),
        percentile(&mut writes, 0.99)
    );
    println!(
        "read cache: {:.1}% hits ({hits} hits, {misses} misses across nodes); {entries} entries in {:.1} MiB (memory_used)",
        100.0 * hits as f64 / (hits + misses).max(1) as f64,
        memory as f64 / (1 << 20) as f64
    );
    match failover {
        Some(f) => println!(
            "failover: {:.0} ms from SIGKILL to every slot led by a running node",
            f.as_secs_f64() * 1e3
        ),
        None => println!("failover: no chaos this run"),
    }
    println!(
        "scale-out: node {added} joined; {} of {} slots changed replica sets, {placements} replica placements moved (ideal {ideal:.1}: 3 x {} slots / {} nodes); {migrated} keys migrated in {:.1} s, restart included",
        moved.len(),
        args.slots,
        args.slots,
        args.nodes + 1,
        grow_time.as_secs_f64()
    );
    println!(
        "replicas converged: {}",
        if converged { "yes" } else { "NO" }
    );
    println!(
        "verification: {} keys checked, {} lost or wrong, {} stale reads (read-your-writes violations)",
        expected.len(),
        lost.len(),
        stale.len()
    );
    println!(
        "paged scan: {} keys in {scanned_pages} pages of up to 500, merged across {} slots with one signed cursor; {} problems",
        scan.as_ref().map_or(0, |(items, _)| items.len()),
        args.slots,
        scan_problems.len()
    );
    for l in lost.iter().chain(&stale).chain(&scan_problems).take(10) {
        println!("  {l}");
    }
    println!("total run time {:.1} s", started.elapsed().as_secs_f64());
    let ok = lost.is_empty() && stale.is_empty() && scan_problems.is_empty() && converged;
    if args.keep {
        println!("\n--keep: the cluster keeps running; Ctrl-C stops it");
        loop {
            std::thread::sleep(Duration::from_secs(1));
            refresh(&cluster, &leaders);
        }
    }
    cluster.stop();
    if ok {
        Ok(())
    } else {
        Err("verification failed: see the report above".into())
    }
}

/// Waits until, on every running node, every slot has committed and applied its leader's
/// whole log; returns each slot's log end then, or what was still behind on timeout.
fn wait_converged(
    cluster: &Cluster,
    client: &Client,
    timeout: Duration,
) -> Result<BTreeMap<u64, u64>, String> {
    let deadline = Instant::now() + timeout;
    let mut behind = String::new();
    while Instant::now() < deadline {
        let mut ends: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
        let mut replicas: Vec<(u64, u64, u64, u64)> = Vec::new();
        let mut missing = Vec::new();
        for id in cluster.running() {
            let Some(s) = client.status(id) else {
                missing.push(id);
                continue;
            };
            for slot in s["slots"].as_array().into_iter().flatten() {
                let field = |name: &str| slot[name].as_u64().unwrap_or(u64::MAX);
                let n = field("slot");
                if slot["role"] == "Leader" {
                    ends.insert(n, (id, field("end")));
                }
                replicas.push((n, id, field("commit"), field("applied")));
            }
        }
        let lagging: Vec<String> = replicas
            .iter()
            .filter(|(n, _, commit, applied)| {
                ends.get(n)
                    .is_none_or(|(_, end)| end != commit || commit != applied)
            })
            .map(|(n, id, commit, applied)| {
                format!(
                    "slot {n} on node {id}: commit {commit}, applied {applied}, leader {:?}",
                    ends.get(n)
                )
            })
            .collect();
        if missing.is_empty()
            && lagging.is_empty()
            && ends.len() == cluster.layout.slot_count() as usize
        {
            return Ok(ends.into_iter().map(|(n, (_, end))| (n, end)).collect());
        }
        behind = format!(
            "{} slots with a leader; nodes not answering {missing:?}; behind: {}",
            ends.len(),
            lagging.join("; ")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(behind)
}
