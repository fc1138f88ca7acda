//! The pagination suite: what a page costs by depth with keyset and with offset paging, what a
//! signed cursor costs to encode and decode, and what merging shards costs. Workloads are
//! defined in `benches/README.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Instant;

use clap::Args;
use shardkit_benches::stats::median;
use shardkit_pagination::{
    BoundCodec, ColumnType, CursorCodec, Merged, PageRequest, PageSize, Sort, Value, paginate,
};

/// Arguments of the page suite.
#[derive(Debug, Args)]
pub(crate) struct PageArgs {
    /// Items in the collection.
    #[arg(long, default_value_t = 10_000_000)]
    items: u64,
    /// Items per page.
    #[arg(long, default_value_t = 100)]
    size: u32,
    /// Repetitions per measurement; tables show the median.
    #[arg(long, default_value_t = 15)]
    rounds: usize,
    /// Shards for the merged-paging table.
    #[arg(long, default_value_t = 16)]
    shards: u64,
}

fn id_sort() -> Result<Sort, String> {
    Sort::builder()
        .unique_asc("id", ColumnType::Uint)
        .build()
        .map_err(|e| e.to_string())
}

/// Median microseconds of `f` over `rounds` runs.
fn time_us(rounds: usize, mut f: impl FnMut()) -> f64 {
    let mut samples: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    median(&mut samples)
}

/// The request for page `page` (0-based) of a walk: a cursor at the item before it.
fn request_at(query: &BoundCodec<'_>, page: u64, size: u32) -> Result<PageRequest, String> {
    let sizes = PageSize::new(size, size).map_err(|e| e.to_string())?;
    let after = match page {
        0 => None,
        p => Some(
            query
                .encode(&[Value::Uint(p * u64::from(size) - 1)])
                .map_err(|e| e.to_string())?
                .to_string(),
        ),
    };
    PageRequest::from_relay(Some(i64::from(size)), after, None, None, sizes)
        .map_err(|e| e.to_string())
}

fn depth_table(args: &PageArgs, out: &mut String) -> Result<(), String> {
    let t = Instant::now();
    let data: BTreeMap<u64, u64> = (0..args.items).map(|k| (k, k ^ 0x5555)).collect();
    let built = t.elapsed().as_secs_f64();
    let codec = CursorCodec::builder(id_sort()?)
        .signing_key(1, b"benchmark-signing-key")
        .build()
        .map_err(|e| e.to_string())?;
    let query = codec.bind(b"");
    let last_page = args.items / u64::from(args.size) - 1;
    let mut depths: Vec<u64> = vec![0, 9, 99, 999, 9_999, 99_999];
    depths.retain(|&d| d < last_page);
    depths.push(last_page.min(98_999));
    depths.sort_unstable();
    depths.dedup();
    let _ = writeln!(
        out,
        "### Page cost by depth: {} items in a `BTreeMap`, {} per page (median us of {} runs, {} for offset paging, whose deep pages take long; built in {built:.1} s)\n",
        args.items,
        args.size,
        args.rounds,
        args.rounds.min(5)
    );
    let _ = writeln!(
        out,
        "Keyset: `paginate` with a signed cursor (decode, range scan of size + 1, a one-item probe back, {} cursors encoded). Offset: `iter().skip(offset).take(size + 1)`, what `LIMIT n OFFSET k` does.\n",
        args.size
    );
    let _ = writeln!(
        out,
        "| page | offset | keyset us | keyset vs page 1 | offset us | offset vs page 1 |\n|---|---|---|---|---|---|"
    );
    let (mut keyset_first, mut offset_first) = (0.0, 0.0);
    for &page in &depths {
        let req = request_at(&query, page, args.size)?;
        let mut failed = None;
        let keyset = time_us(args.rounds, || match paginate(&data, &query, &req) {
            Ok(p) => {
                black_box(p);
            }
            Err(e) => failed = Some(e.to_string()),
        });
        if let Some(e) = failed {
            return Err(e);
        }
        let offset = page * u64::from(args.size);
        let offset_us = time_us(args.rounds.min(5), || {
            black_box(
                data.iter()
                    .skip(offset as usize)
                    .take(args.size as usize + 1)
                    .count(),
            );
        });
        if page == 0 {
            (keyset_first, offset_first) = (keyset, offset_us);
        }
        let _ = writeln!(
            out,
            "| {} | {offset} | {keyset:.1} | {:.2}x | {offset_us:.1} | {:.0}x |",
            page + 1,
            keyset / keyset_first,
            offset_us / offset_first
        );
    }
    let _ = writeln!(out);
    Ok(())
}

/// Encodes (and decodes) per timed run of the cursor table.
const CURSOR_OPS: u32 = 100_000;

/// Median nanoseconds to encode `key` and to decode its cursor through `query`, and the
/// cursor's length.
fn cursor_costs(
    args: &PageArgs,
    query: &BoundCodec<'_>,
    key: &[Value],
) -> Result<(f64, f64, usize), String> {
    let token = query.encode(key).map_err(|e| e.to_string())?;
    let n = CURSOR_OPS;
    let mut errors = 0;
    let encode = time_us(args.rounds, || {
        for _ in 0..n {
            errors += usize::from(query.encode(black_box(key)).is_err());
        }
    }) * 1e3
        / f64::from(n);
    let decode = time_us(args.rounds, || {
        for _ in 0..n {
            errors += usize::from(query.decode(black_box(token.as_str())).is_err());
        }
    }) * 1e3
        / f64::from(n);
    if errors > 0 {
        return Err(format!("{errors} cursor round trips failed"));
    }
    Ok((encode, decode, token.as_str().len()))
}

fn codec_table(args: &PageArgs, out: &mut String) -> Result<(), String> {
    let sort = Sort::builder()
        .desc("created_at", ColumnType::Timestamp)
        .unique_asc("id", ColumnType::Uint)
        .build()
        .map_err(|e| e.to_string())?;
    let signing =
        || CursorCodec::builder(sort.clone()).signing_key(1, b"benchmark-signing-key-32-bytes!!");
    let signed = signing().build().map_err(|e| e.to_string())?;
    let encrypted = signing().encrypt().build().map_err(|e| e.to_string())?;
    let key = [
        Value::Timestamp(1_764_000_000_123_456),
        Value::Uint(98_765_432),
    ];
    let _ = writeln!(
        out,
        "### Two-column cursor (timestamp, id), query-bound (median of {} runs of {CURSOR_OPS})\n",
        args.rounds
    );
    let _ = writeln!(
        out,
        "| cursor | encode ns | decode + verify ns | together ns | token length |\n|---|---|---|---|---|"
    );
    for (name, codec) in [
        ("signed (HMAC-SHA256)", &signed),
        ("encrypted (AES-SIV, `encrypt`)", &encrypted),
    ] {
        let (encode, decode, len) = cursor_costs(args, &codec.bind(b"status=open&owner=42"), &key)?;
        let _ = writeln!(
            out,
            "| {name} | {encode:.0} | {decode:.0} | {:.0} | {len} chars |",
            encode + decode
        );
    }
    out.push('\n');
    Ok(())
}

fn merged_table(args: &PageArgs, out: &mut String) -> Result<(), String> {
    let total = args.items.min(1_000_000);
    let sort = id_sort()?;
    let single: BTreeMap<u64, u64> = (0..total).map(|k| (k, k)).collect();
    let mut shards = vec![BTreeMap::new(); args.shards as usize];
    for k in 0..total {
        // Spread keys the way a hash ring would: no shard holds a contiguous run.
        shards[(k.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize % args.shards as usize]
            .insert(k, k);
    }
    let merged = Merged::new(shards, sort.clone());
    let codec = CursorCodec::builder(sort)
        .build()
        .map_err(|e| e.to_string())?;
    let query = codec.bind(b"");
    let _ = writeln!(
        out,
        "### Merged paging: {total} items in 1 shard vs {} shards, {} per page (median us of {} runs)\n",
        args.shards, args.size, args.rounds
    );
    let _ = writeln!(
        out,
        "| page | one shard us | {} shards merged us | ratio |\n|---|---|---|---|",
        args.shards
    );
    for page in [0, 99, 4_999] {
        if page * u64::from(args.size) >= total {
            continue;
        }
        let req = request_at(&query, page, args.size)?;
        let one = time_us(args.rounds, || {
            black_box(
                paginate(&single, &query, &req)
                    .map(|p| p.edges.len())
                    .unwrap_or(0),
            );
        });
        let many = time_us(args.rounds, || {
            black_box(
                paginate(&merged, &query, &req)
                    .map(|p| p.edges.len())
                    .unwrap_or(0),
            );
        });
        let _ = writeln!(
            out,
            "| {} | {one:.1} | {many:.1} | {:.2}x |",
            page + 1,
            many / one
        );
    }
    let _ = writeln!(out);
    Ok(())
}

pub(crate) fn run(args: &PageArgs, out: &mut String) -> Result<(), String> {
    if args.items < u64::from(args.size) * 2
        || args.size == 0
        || args.rounds == 0
        || args.shards == 0
    {
        return Err("need --items >= 2 x --size, and --size, --rounds, --shards >= 1".into());
    }
    let _ = writeln!(out, "## Pagination\n");
    let _ = writeln!(
        out,
        "Reproduce: `cargo run --release -p shardkit-benches --bin compare -- page --items {} --size {} --rounds {} --shards {}`\n",
        args.items, args.size, args.rounds, args.shards
    );
    codec_table(args, out)?;
    merged_table(args, out)?;
    depth_table(args, out)?;
    Ok(())
}
