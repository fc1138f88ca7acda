//! `shardkit tour`: each crate on its own, every figure computed as it runs. (`shardkit demo`
//! runs them together as a service.)

use std::time::Instant;

use clap::Args;
use shardkit_cache::FrequencySketch;
use shardkit_hashring::{HashRing, stable_hash};
use std::collections::BTreeMap;

use shardkit_pagination::{ColumnType, CursorCodec, PageRequest, PageSize, Sort, paginate};
use shardkit_replication::{Entry, Epoch, FileLog, LogConfig, LogStorage, Offset, Record};

use crate::ring::load_report;

/// Arguments of `shardkit tour`.
#[derive(Debug, Args)]
pub(crate) struct TourArgs {
    /// Nodes in the demo ring.
    #[arg(long, default_value_t = 5)]
    nodes: u32,
    /// Keys routed through the ring.
    #[arg(long, default_value_t = 200_000)]
    keys: u64,
    /// Seed of the generated workload.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

pub(crate) fn run(args: &TourArgs) -> Result<(), String> {
    if args.nodes == 0 || args.keys == 0 {
        return Err("the tour needs at least one node and one key".into());
    }
    println!("shardkit {} tour\n", env!("CARGO_PKG_VERSION"));
    ring_tour(args)?;
    replication_tour()?;
    failover_tour()?;
    cache_tour(args.seed);
    pagination_tour()?;
    println!("\nAll checks above held.");
    Ok(())
}

fn check(ok: bool, what: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("tour check failed: {what}"))
    }
}

fn ring_tour(args: &TourArgs) -> Result<(), String> {
    println!(
        "== shardkit-hashring: route {} keys over {} nodes ==",
        args.keys, args.nodes
    );
    let names: Vec<String> = (1..=args.nodes).map(|i| format!("node-{i}")).collect();
    let mut ring = HashRing::builder()
        .nodes(names)
        .build()
        .map_err(|e| e.to_string())?;
    print!("{}", load_report(&ring, args.keys));

    let key = "user:1001";
    let prefs: Vec<&String> = ring.replicas(key, 3).collect();
    println!("preference list of {key:?}: {prefs:?} (owner first, then replica holders)");

    let before = ring.clone();
    let newcomer = format!("node-{}", args.nodes + 1);
    let plan = ring.add(newcomer.clone()).map_err(|e| e.to_string())?;
    let keys: Vec<String> = (0..args.keys).map(|i| format!("key-{i}")).collect();
    let moved: Vec<&String> = keys
        .iter()
        .filter(|k| before.get(*k) != ring.get(*k))
        .collect();
    let to_newcomer = moved.iter().all(|k| ring.get(*k) == Some(&newcomer));
    println!(
        "add {newcomer}: {} keys moved ({:.2}%, ideal {:.2}%), all to {newcomer}: {to_newcomer}; \
         the plan lists {} hash ranges covering {:.2}% of the hash space",
        moved.len(),
        100.0 * moved.len() as f64 / args.keys as f64,
        100.0 / f64::from(args.nodes + 1),
        plan.len(),
        100.0 * plan.moved_fraction()
    );
    check(to_newcomer, "keys moved only to the new node")?;
    let covered = moved.iter().all(|k| plan.find(ring.hash_key(*k)).is_some());
    check(covered, "every moved key lies in a planned range")?;
    println!();
    Ok(())
}

fn replication_tour() -> Result<(), String> {
    println!("== shardkit-replication: a durable, checksummed log ==");
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let err = |e: shardkit_replication::Error| e.to_string();
    let config = LogConfig::default().segment_bytes(64 << 10);
    let log = FileLog::open(dir.path(), config).map_err(err)?;
    let payloads: Vec<Vec<u8>> = (0..2_000u32)
        .map(|i| format!("event {i}").into_bytes())
        .collect();
    let t = Instant::now();
    for chunk in payloads.chunks(100) {
        let entries: Vec<Entry<'_>> = chunk.iter().map(|p| Entry::new(p)).collect();
        log.append(Epoch::new(1), &entries).map_err(err)?;
    }
    println!(
        "appended {} records in batches of 100 with Durability::Always (each batch synced before append returned) in {:.1} ms; {} segments",
        log.end_offset(),
        t.elapsed().as_secs_f64() * 1e3,
        log.segments().len()
    );
    let tail = log
        .segments()
        .last()
        .map(|s| s.path.clone())
        .ok_or("the log has no segment")?;
    drop(log);

    // A crash in the middle of a next append: its record only partly on disk.
    let mut frame = Vec::new();
    let torn = Record::new(Offset::new(2_000), Epoch::new(1), 0, b"event 2000".to_vec());
    shardkit_replication::encode(&torn, &mut frame).map_err(|e| e.to_string())?;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&tail)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &frame[..frame.len() / 2]))
        .map_err(|e| e.to_string())?;
    let log = FileLog::open(dir.path(), config).map_err(err)?;
    let r = log.recovery();
    println!(
        "after a torn write: recovery cut {} bytes ({} record), the log ends at offset {}",
        r.truncated_bytes,
        r.dropped_records,
        log.end_offset()
    );
    check(
        log.end_offset() == Offset::new(2_000) && r.dropped_records == 1,
        "recovery cut the torn record and kept every acknowledged one",
    )?;
    let problems = log.verify().map_err(err)?;
    println!(
        "verify: {} problems in {} segments",
        problems.len(),
        log.segments().len()
    );
    check(problems.is_empty(), "the recovered log verifies")?;
    let last = log.read(Offset::new(1_999), 1 << 10).map_err(err)?;
    let text = String::from_utf8_lossy(&last[0].payload).into_owned();
    println!("record 1999 reads back as {text:?}\n");
    check(text == "event 1999", "records read back intact")
}

/// Three replicas over loopback TCP with a lease coordinator: quorum writes, the leader
/// stopped mid-stream, a failover, idempotent retries, and every acknowledged write checked.
fn failover_tour() -> Result<(), String> {
    use shardkit_replication::MemoryLog;
    use shardkit_replication::replica::{
        AckLevel, CoordinatorNode, LeaseCoordinator, MemoryReplicaStore, Node, NodeId, Replica,
        ReplicaConfig, TcpConfig, TcpTransport, Write,
    };
    use std::sync::Arc;
    use std::time::Duration;

    println!("== shardkit-replication: 3 replicas on loopback TCP, a leader failing ==");
    let ids = [NodeId::new(1), NodeId::new(2), NodeId::new(3)];
    let coordinator = NodeId::new(0);
    let all = [ids[0], ids[1], ids[2], coordinator];
    let mut bound =
        TcpTransport::bind_loopback(&all, TcpConfig::default()).map_err(|e| e.to_string())?;
    let mut transport = |id: NodeId| {
        bound
            .transports
            .remove(&id)
            .ok_or_else(|| format!("no transport bound for node {id}"))
    };
    let _coordinator = CoordinatorNode::start(
        coordinator,
        LeaseCoordinator::new(ids, Duration::from_millis(300)),
        transport(coordinator)?,
    );
    let mut nodes: Vec<Option<Node<MemoryLog>>> = Vec::new();
    for id in ids {
        let mut config = ReplicaConfig::new(id, ids);
        config.coordinator = Some(coordinator);
        config.bootstrap = true;
        let store = Box::new(MemoryReplicaStore::new());
        let replica =
            Replica::open(config, Arc::new(MemoryLog::new()), store).map_err(|e| e.to_string())?;
        nodes.push(Some(Node::start(replica, transport(id)?)));
    }
    // An idempotent client: retries the same sequence number on every replica until one
    // acknowledges it at quorum.
    let write = |nodes: &[Option<Node<MemoryLog>>], seq: u64| -> Result<(usize, u64), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            for (i, n) in nodes.iter().enumerate() {
                let Some(n) = n else { continue };
                let w = Write::new(format!("payment {seq}").into_bytes(), AckLevel::Quorum)
                    .idempotent(1, seq)
                    .with_timeout(Duration::from_millis(500));
                if let Ok(done) = n.write(w) {
                    return Ok((i, done.offset.get()));
                }
            }
            if Instant::now() > deadline {
                return Err(format!("write {seq} was never acknowledged"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let mut acked = Vec::new();
    let mut leader = 0;
    for seq in 0..500 {
        let (at, offset) = write(&nodes, seq)?;
        leader = at;
        acked.push(offset);
    }
    println!(
        "500 writes acknowledged at quorum by replica {}",
        ids[leader]
    );
    nodes[leader] = None; // the leader stops without warning
    let t = Instant::now();
    let (new_leader, offset) = write(&nodes, 500)?;
    acked.push(offset);
    println!(
        "leader {} stopped; replica {} took over, first write acknowledged {:.0} ms later",
        ids[leader],
        ids[new_leader],
        t.elapsed().as_secs_f64() * 1e3
    );
    for seq in 501..1000 {
        acked.push(write(&nodes, seq)?.1);
    }
    // A retry of an acknowledged write is not applied twice.
    let (_, again) = write(&nodes, 999)?;
    check(again == acked[999], "a retried write keeps its offset")?;
    let mut survivors = 0;
    for n in nodes.iter().flatten() {
        check(
            n.wait_for_commit(Offset::new(acked[999]), Duration::from_secs(10)),
            "survivors commit every write",
        )?;
        let mut sub = n.subscribe(Offset::new(0));
        let mut seen = 0u64;
        while sub.position() < n.commit_offset() {
            let batch = sub
                .next_batch(Duration::from_secs(1))
                .map_err(|e| e.to_string())?;
            for r in batch {
                check(
                    r.payload == format!("payment {seen}").into_bytes(),
                    "committed writes in order, once each",
                )?;
                seen += 1;
            }
        }
        check(seen == 1000, "every acknowledged write on every survivor")?;
        survivors += 1;
    }
    println!(
        "all 1000 acknowledged writes present, in order and once each, on the {survivors} surviving replicas\n"
    );
    Ok(())
}

fn cache_tour(seed: u64) {
    println!("== shardkit-cache: TinyLFU frequency sketch ==");
    let mut sketch = FrequencySketch::new(10_000);
    // A skewed stream: key k is drawn with probability about proportional to 1/(k+1).
    let mut state = seed | 1;
    for _ in 0..50_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let u = (state >> 11) as f64 / (1u64 << 53) as f64;
        let k = (10_000f64.powf(u) - 1.0) as u64;
        sketch.increment(stable_hash(0, &k));
    }
    for k in [0u64, 100, 1_000, 3_000, 9_000] {
        println!(
            "estimated frequency of key {k:>5}: {:>2}",
            sketch.frequency(stable_hash(0, &k))
        );
    }
    let admit = sketch.admit(stable_hash(0, &9_000u64), stable_hash(0, &0u64));
    println!("admit cold key 9000 over hot key 0? {admit}\n");
}

/// Relay's `first`, `after`, `last` and `before` query arguments.
type RelayArgs<'a> = (Option<i64>, Option<&'a str>, Option<i64>, Option<&'a str>);

fn pagination_tour() -> Result<(), String> {
    println!("== shardkit-pagination: page requests ==");
    let sizes = PageSize::new(20, 100).map_err(|e| e.to_string())?;
    let cases: [(&str, RelayArgs<'_>); 4] = [
        ("?first=500&after=c1", (Some(500), Some("c1"), None, None)),
        ("?last=10&before=c9", (None, None, Some(10), Some("c9"))),
        ("?first=0", (Some(0), None, None, None)),
        ("?first=5&last=5", (Some(5), None, Some(5), None)),
    ];
    for (query, (first, after, last, before)) in cases {
        let req = PageRequest::from_relay(
            first,
            after.map(Into::into),
            last,
            before.map(Into::into),
            sizes,
        );
        match req {
            Ok(r) => println!(
                "{query:<22} -> {:?} page of {} from {:?}",
                r.direction(),
                r.size(),
                r.cursor()
            ),
            Err(e) => println!("{query:<22} -> 400 Bad Request: {e}"),
        }
    }
    let rows: BTreeMap<u64, u64> = (0..1_000u64).map(|k| (k, k * k)).collect();
    let sort = Sort::builder()
        .unique_asc("id", ColumnType::Uint)
        .build()
        .map_err(|e| e.to_string())?;
    let codec = CursorCodec::builder(sort)
        .signing_key(1, b"demo-signing-key!")
        .build()
        .map_err(|e| e.to_string())?;
    let query = codec.bind(b"");
    let mut req =
        PageRequest::from_relay(Some(100), None, None, None, sizes).map_err(|e| e.to_string())?;
    let (mut pages, mut total) = (0, 0);
    loop {
        let page = paginate(&rows, &query, &req).map_err(|e| e.to_string())?;
        pages += 1;
        total += page.edges.len();
        let Some(next) = page.next_cursor() else {
            break;
        };
        req = PageRequest::from_relay(Some(100), Some(next.to_string()), None, None, sizes)
            .map_err(|e| e.to_string())?;
    }
    println!(
        "keyset walk of 1000 rows: {pages} pages, {total} rows, each page ending with a signed cursor"
    );
    check(
        total == 1_000 && pages == 10,
        "the keyset walk returned every row once",
    )
}
