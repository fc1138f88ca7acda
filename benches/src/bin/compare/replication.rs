//! `compare replication`: the replicated log over loopback TCP against this machine's own
//! limits, measured in the same run: loopback bandwidth for the same framing, the loopback
//! round trip and the `fdatasync` time.

use std::collections::VecDeque;
use std::io::{Read, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use shardkit_benches::machine::{FAR_NS, between_probes};
use shardkit_benches::stats::median;
use shardkit_replication::replica::{
    AckLevel, AuthKey, FileReplicaStore, FollowerAck, Message, Node, NodeId, Packet, Replica,
    ReplicaConfig, TcpConfig, TcpTransport, Write, encode_packet,
};
use shardkit_replication::{
    Durability, Entry, Epoch, FileLog, LogConfig, LogStorage, Offset, Record, RecordBatch,
};

/// Arguments of `compare replication`.
#[derive(Debug, Args)]
pub(crate) struct ReplicationArgs {
    /// Rounds per measurement; the report gives medians.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds per throughput round.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Writes per latency round.
    #[arg(long, default_value_t = 1000)]
    samples: usize,
    /// Records the follower is behind in the catch-up measurement.
    #[arg(long, default_value_t = 1_000_000)]
    behind: u64,
}

const RECORD: usize = 100;

/// A batch of `n` records as a fetch answer carries them, framed as on the wire.
fn records_packet(n: usize) -> Vec<u8> {
    let records: Vec<Record> = (0..n)
        .map(|i| Record::new(Offset::new(i as u64), Epoch::new(1), 0, vec![7; RECORD + 1]))
        .collect();
    let records = RecordBatch::from_records(&records).expect("small consecutive records");
    let mut out = Vec::new();
    encode_packet(
        &Packet::Protocol {
            from: NodeId::new(1),
            message: Message::Records {
                epoch: Epoch::new(1),
                id: 0,
                records,
                commit: Offset::new(0),
            },
        },
        &mut out,
    )
    .expect("a small packet encodes");
    out
}

/// Bytes per second a loopback connection carries, writing 1 MiB fetch answers.
fn loopback_bandwidth(seconds: f64) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let reader = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        total
    });
    let packet = records_packet((1 << 20) / (RECORD + 50));
    let mut s = TcpStream::connect(addr).expect("connect");
    let _ = s.set_nodelay(true);
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < seconds {
        s.write_all(&packet).expect("write");
    }
    drop(s);
    let total = reader.join().expect("reader");
    total as f64 / start.elapsed().as_secs_f64()
}

/// The framed bytes one replicated 100-byte record takes on the wire.
fn framed_record_bytes() -> f64 {
    let n = 1000;
    records_packet(n).len() as f64 / n as f64
}

/// Median round trip of a 64-byte ping over loopback, in microseconds.
fn loopback_rtt(samples: usize) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let echo = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let _ = s.set_nodelay(true);
        let mut buf = [0u8; 64];
        while s.read_exact(&mut buf).is_ok() {
            if s.write_all(&buf).is_err() {
                break;
            }
        }
    });
    let mut s = TcpStream::connect(addr).expect("connect");
    let _ = s.set_nodelay(true);
    let mut buf = [0u8; 64];
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        s.write_all(&buf).expect("ping");
        s.read_exact(&mut buf).expect("pong");
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(s);
    let _ = echo.join();
    median(&mut times)
}

/// Median time of a 100-byte append plus `fdatasync` in a preallocated file, in
/// microseconds, on the disk the logs use, with `files` files synced at once by as many
/// threads (the three replicas of the cluster below share this disk, so their syncs overlap).
fn fdatasync_time(dir: &std::path::Path, samples: usize, files: usize) -> f64 {
    use std::os::unix::fs::FileExt as _;
    let threads: Vec<_> = (0..files)
        .map(|i| {
            let path = dir.join(format!("sync-probe-{i}"));
            std::thread::spawn(move || {
                let f = std::fs::File::create(&path).expect("probe file");
                f.set_len(4 << 20).expect("preallocate");
                f.sync_all().expect("sync");
                let mut times = Vec::with_capacity(samples);
                for i in 0..samples {
                    let t = Instant::now();
                    f.write_at(&[1; RECORD], (i * RECORD) as u64)
                        .expect("write");
                    f.sync_data().expect("fdatasync");
                    times.push(t.elapsed().as_secs_f64() * 1e6);
                }
                let _ = std::fs::remove_file(path);
                times
            })
        })
        .collect();
    let mut times: Vec<f64> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("probe thread"))
        .collect();
    median(&mut times)
}

/// Records per second through the least work any leader-follower log with file logs does on
/// this machine, with no protocol around it: the leader frames batches of 1024 records
/// (checksums included), appends them to its file and sends them to two followers; each
/// follower reads them, verifies every checksum, appends them to its own file and acknowledges
/// the batch with 8 bytes; 8 batches are in flight. Nothing is synced. The ceiling a replicated
/// log can approach here (acking on receipt; acking on flush adds syncs), measured in the same
/// run as the rest.
fn bare_pipeline(dir: &std::path::Path, seconds: f64) -> f64 {
    const BATCH: usize = 1024;
    const WINDOW: u64 = 8;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let followers: Vec<_> = (0..2)
        .map(|i| {
            let path = dir.join(format!("bare-follower-{i}"));
            let stream = TcpStream::connect(addr).expect("connect");
            std::thread::spawn(move || follow_bare(stream, &path))
        })
        .collect();
    let mut links: Vec<TcpStream> = (0..2)
        .map(|_| {
            let (s, _) = listener.accept().expect("accept");
            let _ = s.set_nodelay(true);
            s
        })
        .collect();
    let mut log = std::fs::File::create(dir.join("bare-leader")).expect("leader file");
    let mut record = Record::new(Offset::new(0), Epoch::new(1), 0, vec![7u8; RECORD + 1]);
    let mut frames = Vec::with_capacity(BATCH * (RECORD + 64));
    let (mut sent, mut acked) = (0u64, [0u64; 2]);
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < seconds {
        while sent < acked.iter().min().expect("two followers") + WINDOW {
            frames.clear();
            frames.extend_from_slice(&(BATCH as u64).to_le_bytes()); // room for the length
            for i in 0..BATCH {
                record.offset = Offset::new(sent * BATCH as u64 + i as u64);
                shardkit_replication::encode(&record, &mut frames).expect("a small record");
            }
            let len = (frames.len() - 8) as u64;
            frames[..8].copy_from_slice(&len.to_le_bytes());
            log.write_all(&frames[8..]).expect("leader append");
            for link in &mut links {
                link.write_all(&frames).expect("send");
            }
            sent += 1;
        }
        for (link, acked) in links.iter_mut().zip(&mut acked) {
            let mut ack = [0u8; 8];
            link.read_exact(&mut ack).expect("ack");
            *acked = u64::from_le_bytes(ack);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    drop(links);
    for f in followers {
        f.join().expect("follower");
    }
    for name in ["bare-leader", "bare-follower-0", "bare-follower-1"] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    (acked.iter().min().expect("two followers") * BATCH as u64) as f64 / elapsed
}

/// A bare follower: batch by batch, verify, append, acknowledge.
fn follow_bare(mut stream: TcpStream, path: &std::path::Path) {
    let _ = stream.set_nodelay(true);
    let mut log = std::fs::File::create(path).expect("follower file");
    let mut batch = Vec::new();
    let mut batches = 0u64;
    let mut len = [0u8; 8];
    while stream.read_exact(&mut len).is_ok() {
        batch.resize(u64::from_le_bytes(len) as usize, 0);
        // The leader closes its links when time is up, possibly mid-batch (with acks unread,
        // which makes the close a reset): the end, not a failure.
        if stream.read_exact(&mut batch).is_err() {
            break;
        }
        let mut at = 0;
        while at < batch.len() {
            let (_, used) = shardkit_replication::decode_ref(&batch[at..]).expect("a valid frame");
            at += used;
        }
        log.write_all(&batch).expect("follower append");
        batches += 1;
        if stream.write_all(&batches.to_le_bytes()).is_err() {
            break;
        }
    }
}

/// Three replicas on loopback TCP with file logs: node 1 leads, 2 and 3 follow.
struct Cluster {
    nodes: Vec<Node<FileLog>>,
    _dirs: Vec<tempfile::TempDir>,
}

fn cluster(ack: FollowerAck, members: u64, prefill: u64, tcp: TcpConfig) -> Cluster {
    let ids: Vec<NodeId> = (1..=members).map(NodeId::new).collect();
    let mut bound = TcpTransport::bind_loopback(&ids, tcp).expect("bind");
    let mut dirs = Vec::new();
    let mut nodes = Vec::new();
    for &id in &ids {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = FileLog::open(
            dir.path(),
            LogConfig::default().durability(Durability::Never),
        )
        .expect("open log");
        if id == ids[0] && prefill > 0 {
            // The leader's history, written directly: what a lagging follower must copy.
            // A plain write's payload: the replication layer's tag byte, then the data.
            let mut payload = vec![0u8];
            payload.extend_from_slice(&[7; RECORD]);
            let entries = vec![Entry::new(&payload); 10_000];
            while log.end_offset().get() < prefill {
                log.append(Epoch::new(1), &entries).expect("prefill");
            }
            log.sync().expect("sync");
        }
        let mut config = ReplicaConfig::new(id, ids.iter().copied());
        config.bootstrap = true;
        config.follower_ack = ack;
        let replica = Replica::open(
            config,
            Arc::new(log),
            Box::new(FileReplicaStore::new(dir.path())),
        )
        .expect("open replica");
        let transport = bound.transports.remove(&id).expect("bound above");
        nodes.push(Node::start(replica, transport));
        dirs.push(dir);
    }
    nodes[0].promote(Epoch::new(2)).expect("promote");
    for n in &nodes[1..] {
        n.follow(Epoch::new(2), ids[0]).expect("follow");
    }
    Cluster { nodes, _dirs: dirs }
}

/// A transport whose packets are authenticated with a shared key.
fn authenticated() -> TcpConfig {
    TcpConfig {
        auth: Some(AuthKey::new(b"the benchmark's replica set key").expect("a long key")),
        ..TcpConfig::default()
    }
}

/// Quorum-acknowledged records per second with many writes in flight: one at a time
/// (`write_async`, a window of 8192) or in producer batches of 1024 (`write_batch_async`, 8
/// batches in flight).
fn throughput(ack: FollowerAck, batched: bool, tcp: TcpConfig, seconds: f64) -> f64 {
    let c = cluster(ack, 3, 0, tcp);
    let leader = &c.nodes[0];
    let payload = vec![7u8; RECORD];
    // Warm up: the followers connect and catch up.
    leader
        .write(Write::new(payload.clone(), AckLevel::Quorum))
        .expect("first write");
    let write = || Write::new(payload.clone(), AckLevel::Quorum);
    let mut acked = 0u64;
    let start = Instant::now();
    if batched {
        let (batch, window) = (1024, 8);
        let mut in_flight = VecDeque::with_capacity(window);
        while start.elapsed().as_secs_f64() < seconds {
            while in_flight.len() < window {
                in_flight
                    .push_back(leader.write_batch_async((0..batch).map(|_| write()).collect()));
            }
            if let Some(rx) = in_flight.pop_front() {
                for outcome in rx.recv().expect("outcomes") {
                    outcome.expect("acknowledged");
                    acked += 1;
                }
            }
        }
    } else {
        let window = 8192;
        let mut in_flight = VecDeque::with_capacity(window);
        while start.elapsed().as_secs_f64() < seconds {
            while in_flight.len() < window {
                in_flight.push_back(leader.write_async(write()));
            }
            if let Some(rx) = in_flight.pop_front() {
                rx.recv().expect("outcome").expect("acknowledged");
                acked += 1;
            }
        }
    }
    acked as f64 / start.elapsed().as_secs_f64()
}

/// Latencies (µs) of quorum-acknowledged single writes, one in flight: `(p50, p99)`.
fn latency(ack: FollowerAck, samples: usize) -> (f64, f64) {
    let c = cluster(ack, 3, 0, TcpConfig::default());
    let leader = &c.nodes[0];
    let payload = vec![7u8; RECORD];
    for _ in 0..20 {
        leader
            .write(Write::new(payload.clone(), AckLevel::Quorum))
            .expect("warm-up write");
    }
    let mut times: Vec<f64> = (0..samples)
        .map(|_| {
            let t = Instant::now();
            leader
                .write(Write::new(payload.clone(), AckLevel::Quorum))
                .expect("write");
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let p99 = times[(times.len() * 99 / 100).min(times.len() - 1)];
    (median(&mut times), p99)
}

/// Records per second a follower `behind` records behind copies until it holds the
/// leader's whole log.
fn catch_up(behind: u64) -> f64 {
    let c = cluster(FollowerAck::Flushed, 2, behind, TcpConfig::default());
    let target = c.nodes[0].log().end_offset();
    let start = Instant::now();
    while c.nodes[1].log().end_offset() < target {
        std::thread::sleep(Duration::from_millis(2));
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "catch-up stalled"
        );
    }
    target.get() as f64 / start.elapsed().as_secs_f64()
}

pub(crate) fn run(args: &ReplicationArgs, report: &mut String) -> Result<(), String> {
    use std::fmt::Write as _;
    let rounds = args.rounds.max(1);
    let probe_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let per_record = framed_record_bytes();
    let (mut bw, mut rtt, mut sync) = (Vec::new(), Vec::new(), Vec::new());
    let mut sync3 = Vec::new();
    let (mut tp_recv, mut tp_flush) = (Vec::new(), Vec::new());
    let (mut tpb_recv, mut tpb_flush) = (Vec::new(), Vec::new());
    let mut tpb_auth = Vec::new();
    let (mut lat_recv, mut lat_flush) = (Vec::new(), Vec::new());
    let (mut catch, mut bare) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        eprintln!("round {}/{rounds}", round + 1);
        bw.push(loopback_bandwidth(args.seconds.min(1.0)));
        rtt.push(loopback_rtt(args.samples));
        sync.push(fdatasync_time(probe_dir.path(), args.samples.min(500), 1));
        sync3.push(fdatasync_time(probe_dir.path(), args.samples.min(500), 3));
        bare.push(bare_pipeline(probe_dir.path(), args.seconds));
        let plain = TcpConfig::default;
        tp_recv.push(throughput(
            FollowerAck::Received,
            false,
            plain(),
            args.seconds,
        ));
        tp_flush.push(throughput(
            FollowerAck::Flushed,
            false,
            plain(),
            args.seconds,
        ));
        tpb_recv.push(throughput(
            FollowerAck::Received,
            true,
            plain(),
            args.seconds,
        ));
        tpb_flush.push(throughput(
            FollowerAck::Flushed,
            true,
            plain(),
            args.seconds,
        ));
        tpb_auth.push(throughput(
            FollowerAck::Received,
            true,
            authenticated(),
            args.seconds,
        ));
        // The two latencies hang on threads waking each other across the two cores, so each is
        // taken between probes of how far apart the cores are.
        lat_recv.push(between_probes(|| {
            latency(FollowerAck::Received, args.samples)
        }));
        lat_flush.push(between_probes(|| {
            latency(FollowerAck::Flushed, args.samples)
        }));
        catch.push(catch_up(args.behind));
    }
    let bw = median(&mut bw);
    let rtt = median(&mut rtt);
    let sync = median(&mut sync);
    let sync3 = median(&mut sync3);
    let bw_records = bw / per_record;
    let pct = |records: f64| 100.0 * records * per_record / bw;
    let _ = writeln!(
        report,
        "## Replication over loopback TCP: 3 replicas (1 leader, 2 followers), file logs, 100-byte records\n"
    );
    let _ = writeln!(
        report,
        "Medians of {rounds} rounds (`compare replication --rounds {rounds}`).\n"
    );
    let _ = writeln!(report, "| this machine, same run | value |\n|---|---|");
    let _ = writeln!(
        report,
        "| loopback bandwidth, same framing ({per_record:.0} bytes per record) | {:.0} MB/s = {:.2} M records/s |",
        bw / 1e6,
        bw_records / 1e6
    );
    let _ = writeln!(report, "| loopback round trip (64 bytes) | {rtt:.1} µs |");
    let _ = writeln!(report, "| fdatasync of a 100-byte append | {sync:.0} µs |");
    let _ = writeln!(
        report,
        "| the same, 3 files synced at once (as the 3 replicas on this disk do) | {sync3:.0} µs |"
    );
    let bare = median(&mut bare);
    let _ = writeln!(
        report,
        "| the least work replication does, without a protocol: frame, append, send to 2 followers that verify and append (`bare_pipeline`) | {:.2} M records/s = {:.1}% of the loopback bandwidth |\n",
        bare / 1e6,
        pct(bare)
    );
    let _ = writeln!(
        report,
        "| quorum writes | records/s | share of loopback bandwidth | share of the bare pipeline |\n|---|---|---|---|"
    );
    for (name, samples) in [
        (
            "one per call, 8192 in flight, followers ack on receipt",
            &mut tp_recv,
        ),
        (
            "one per call, 8192 in flight, followers ack on flush",
            &mut tp_flush,
        ),
        (
            "batches of 1024, 8 in flight, followers ack on receipt",
            &mut tpb_recv,
        ),
        (
            "batches of 1024, 8 in flight, followers ack on flush",
            &mut tpb_flush,
        ),
        (
            "batches of 1024, 8 in flight, followers ack on receipt, packets authenticated (HMAC-SHA256, `TcpConfig::auth`)",
            &mut tpb_auth,
        ),
    ] {
        let m = median(samples);
        let _ = writeln!(
            report,
            "| {name} | {m:.0} | {:.1}% | {:.0}% |",
            pct(m),
            100.0 * m / bare
        );
    }
    let _ = writeln!(
        report,
        "\n| one quorum write in flight | p50 | p99 | p50 against the machine | against (round trip + 3 overlapping fdatasyncs) |\n|---|---|---|---|---|"
    );
    let p = |v: &mut Vec<((f64, f64), bool)>| {
        let mut a: Vec<f64> = v.iter().map(|x| x.0.0).collect();
        let mut b: Vec<f64> = v.iter().map(|x| x.0.1).collect();
        (median(&mut a), median(&mut b))
    };
    let (r50, r99) = p(&mut lat_recv);
    let (f50, f99) = p(&mut lat_flush);
    let _ = writeln!(
        report,
        "| followers ack on receipt | {r50:.0} µs | {r99:.0} µs | {:.1}x the round trip | |",
        r50 / rtt
    );
    let _ = writeln!(
        report,
        "| followers ack on flush | {f50:.0} µs | {f99:.0} µs | {:.2}x (round trip + one fdatasync) | {:.2}x |",
        f50 / (rtt + sync),
        f50 / (rtt + sync3)
    );
    // Each round's p50, marked where the cores were far apart.
    let rounds_of = |v: &[((f64, f64), bool)]| -> String {
        let each: Vec<String> = v
            .iter()
            .map(|&((p50, _), far)| format!("{p50:.0}{}", if far { " (far)" } else { "" }))
            .collect();
        each.join(", ")
    };
    let _ = writeln!(
        report,
        "
Each round's p50 in µs, marked (far) where a probe of the two cores' distance before or after it (`shardkit_benches::machine::between_probes`) read {FAR_NS:.0} ns or more: on receipt {}; on flush {}.",
        rounds_of(&lat_recv),
        rounds_of(&lat_flush)
    );
    let c = median(&mut catch);
    let _ = writeln!(
        report,
        "\nCatch-up of a follower {} records behind: {c:.0} records/s ({:.1}% of the loopback bandwidth).",
        args.behind,
        pct(c)
    );
    Ok(())
}
