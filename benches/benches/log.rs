//! Criterion benches of the log's CPU-side costs (the disk-bound workloads are in
//! `compare log`, which measures them against this machine's raw limits): framing a record,
//! decoding and verifying one, and reading 1 MiB of a log from the page cache with
//! `read_batch_into`. `cargo bench -p shardkit-benches --bench log`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_main};
use shardkit_replication::{
    Durability, Entry, Epoch, FileLog, LogConfig, LogStorage, Offset, Record, RecordBatch,
    decode_ref, encode,
};

fn frame(c: &mut Criterion) {
    let record = Record::new(
        Offset::new(1 << 40),
        Epoch::new(7),
        1_764_000_000_000,
        vec![0x5a; 100],
    );
    let mut framed = Vec::new();
    encode(&record, &mut framed).expect("a small record frames");
    let mut group = c.benchmark_group("frame_100_byte_record");
    group.throughput(Throughput::Bytes(framed.len() as u64));
    let mut out = Vec::with_capacity(framed.len());
    group.bench_function("encode", |b| {
        b.iter(|| {
            out.clear();
            encode(black_box(&record), &mut out)
        })
    });
    group.bench_function("decode_verify", |b| {
        b.iter(|| decode_ref(black_box(&framed)).map(|(r, _)| r.payload.len()))
    });
    group.finish();
}

fn read(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = FileLog::open(
        dir.path(),
        LogConfig::default().durability(Durability::Never),
    )
    .expect("opens");
    let payload = [0x5a; 100];
    let entries = vec![Entry::new(&payload); 1024];
    while log.end_offset().get() < 256 * 1024 {
        log.append(Epoch::new(1), &entries).expect("appends");
    }
    let end = log.end_offset().get();
    let mut batch = RecordBatch::default();
    log.read_batch_into(Offset::new(0), 1 << 20, &mut batch)
        .expect("reads");
    let mut group = c.benchmark_group("read_1_mib_page_cache");
    group.throughput(Throughput::Bytes(batch.framed_bytes() as u64));
    let mut at = 0;
    group.bench_function("read_batch_into", |b| {
        b.iter(|| {
            // Walk the log so every batch starts where an index entry does not.
            at = (at + 7919) % (end - batch.len() as u64);
            log.read_batch_into(Offset::new(at), 1 << 20, &mut batch)
                .map(|()| batch.iter().map(|r| r.payload.len()).sum::<usize>())
        })
    });
    group.finish();
}

/// `criterion_group!` defines an undocumented public function.
mod harness {
    #![allow(missing_docs)]
    use super::{frame, read};
    criterion::criterion_group!(benches, frame, read);
}

criterion_main!(harness::benches);
