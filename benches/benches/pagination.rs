//! Criterion benches of the pagination workloads in `benches/README.md`: cursor encode and
//! decode (signed, and encrypted), and one keyset page against one offset page at depth.
//! `cargo bench -p shardkit-benches --bench pagination`.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_main};
use shardkit_pagination::{ColumnType, CursorCodec, PageRequest, PageSize, Sort, Value, paginate};

fn cursor(c: &mut Criterion) {
    let sort = Sort::builder()
        .desc("created_at", ColumnType::Timestamp)
        .unique_asc("id", ColumnType::Uint)
        .build()
        .expect("valid sort");
    let signing =
        || CursorCodec::builder(sort.clone()).signing_key(1, b"benchmark-signing-key-32-bytes!!");
    let key = [
        Value::Timestamp(1_764_000_000_123_456),
        Value::Uint(98_765_432),
    ];
    for (name, codec) in [
        ("cursor_signed_2col", signing().build()),
        ("cursor_encrypted_2col", signing().encrypt().build()),
    ] {
        let codec = codec.expect("valid codec");
        let query = codec.bind(b"status=open&owner=42");
        let token = query.encode(&key).expect("encodes");
        let mut group = c.benchmark_group(name);
        group.bench_function("encode", |b| b.iter(|| query.encode(black_box(&key))));
        group.bench_function("decode_verify", |b| {
            b.iter(|| query.decode(black_box(token.as_str())))
        });
        group.finish();
    }
}

fn depth(c: &mut Criterion) {
    let items = 1_000_000u64;
    let data: BTreeMap<u64, u64> = (0..items).map(|k| (k, k)).collect();
    let sort = Sort::builder()
        .unique_asc("id", ColumnType::Uint)
        .build()
        .expect("valid sort");
    let codec = CursorCodec::builder(sort).build().expect("valid codec");
    let query = codec.bind(b"");
    let sizes = PageSize::new(100, 100).expect("valid sizes");
    let deep = items - 1_000;
    let after = query
        .encode(&[Value::Uint(deep - 1)])
        .expect("encodes")
        .to_string();
    let req =
        PageRequest::from_relay(Some(100), Some(after), None, None, sizes).expect("valid request");
    let mut group = c.benchmark_group("page_at_offset_999000");
    group.bench_function("keyset", |b| {
        b.iter(|| paginate(&data, &query, black_box(&req)).map(|p| p.edges.len()))
    });
    group.bench_function("offset", |b| {
        b.iter(|| data.iter().skip(black_box(deep as usize)).take(101).count())
    });
    group.finish();
}

/// `criterion_group!` defines an undocumented public function.
mod harness {
    #![allow(missing_docs)]
    use super::{cursor, depth};
    criterion::criterion_group!(benches, cursor, depth);
}

criterion_main!(harness::benches);
