//! `shardkit page demo`: walks a generated collection page by page with keyset paging, and
//! times pages at several depths against offset paging, on one collection and on shards merged.

use std::collections::BTreeMap;
use std::time::Instant;

use clap::{Args, Subcommand};
use shardkit_pagination::{
    BoundCodec, ColumnType, CursorCodec, Direction, Merged, PageRequest, PageSize, Sort, Source,
    paginate,
};

/// `shardkit page` commands.
#[derive(Debug, Subcommand)]
pub(crate) enum PageCommand {
    /// Walk a generated collection, timing keyset against offset paging by depth.
    Demo(DemoArgs),
}

/// Arguments of `shardkit page demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Rows in the collection.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Rows per page.
    #[arg(long, default_value_t = 100)]
    size: u32,
    /// Shards for the merged walk.
    #[arg(long, default_value_t = 4)]
    shards: u64,
}

pub(crate) fn run(cmd: &PageCommand) -> Result<(), String> {
    match cmd {
        PageCommand::Demo(args) => demo(args),
    }
}

/// Microseconds `f` takes (the best of three runs, so one interruption does not count).
fn micros<T>(mut f: impl FnMut() -> T) -> f64 {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64() * 1e6
        })
        .fold(f64::INFINITY, f64::min)
}

/// Walks every page of `source` forwards; returns the rows seen and the cursor before each page.
fn walk<S: Source<Item = (u64, u64)>>(
    source: &S,
    query: &BoundCodec<'_>,
    sizes: PageSize,
) -> Result<(Vec<u64>, Vec<Option<String>>), String> {
    let mut rows = Vec::new();
    let mut cursors = vec![None];
    loop {
        let after = cursors.last().cloned().flatten();
        let req =
            PageRequest::from_relay(None, after, None, None, sizes).map_err(|e| e.to_string())?;
        let page = paginate(source, query, &req).map_err(|e| e.to_string())?;
        rows.extend(page.items().map(|(k, _)| *k));
        match page.next_cursor() {
            Some(c) => cursors.push(Some(c.to_string())),
            None => return Ok((rows, cursors)),
        }
    }
}

/// Checks that a walk of `pages` pages returned rows `0..n` exactly once, in order.
fn verify(rows: &[u64], pages: usize, n: u64, what: &str) -> Result<(), String> {
    let in_order = rows.iter().copied().eq(0..n);
    println!(
        "{what}: {pages} pages, {} rows, every row exactly once and in order: {in_order}",
        rows.len()
    );
    if in_order {
        Ok(())
    } else {
        Err(format!("{what}: the walk lost, repeated or reordered rows"))
    }
}

fn timing_table<S: Source<Item = (u64, u64)>>(
    source: &S,
    query: &BoundCodec<'_>,
    sizes: PageSize,
    cursors: &[Option<String>],
    offset_page: impl Fn(usize) -> usize,
) -> Result<(), String> {
    println!(
        "{:>8} {:>10} {:>12} {:>12}",
        "page", "offset", "keyset us", "offset us"
    );
    let pages = cursors.len();
    let mut depths: Vec<usize> = [1, 10, 100, 1_000, 10_000, 100_000]
        .into_iter()
        .filter(|&p| p < pages)
        .collect();
    depths.push(pages);
    for page in depths {
        let req = PageRequest::from_relay(None, cursors[page - 1].clone(), None, None, sizes)
            .map_err(|e| e.to_string())?;
        let keyset = micros(|| paginate(source, query, &req).map(|p| p.edges.len()));
        let offset = (page - 1) * sizes.default_size() as usize;
        let by_offset = micros(|| offset_page(offset));
        println!("{page:>8} {offset:>10} {keyset:>12.1} {by_offset:>12.1}");
    }
    Ok(())
}

fn demo(args: &DemoArgs) -> Result<(), String> {
    if args.rows == 0 || args.size == 0 || args.shards == 0 {
        return Err("--rows, --size and --shards must be at least 1".into());
    }
    if args.shards > args.rows {
        return Err("--shards must be at most --rows".into());
    }
    let sizes = PageSize::new(args.size, args.size).map_err(|e| e.to_string())?;
    let sort = Sort::builder()
        .unique_asc("id", ColumnType::Uint)
        .build()
        .map_err(|e| e.to_string())?;
    let codec = CursorCodec::builder(sort.clone())
        .signing_key(1, b"shardkit-demo-signing-key")
        .build()
        .map_err(|e| e.to_string())?;
    let query = codec.bind(b"demo");
    let size = args.size as usize;

    println!(
        "== one collection of {} rows, {} per page ==",
        args.rows, args.size
    );
    let rows: BTreeMap<u64, u64> = (0..args.rows).map(|k| (k, k * 3)).collect();
    let t = Instant::now();
    let (seen, cursors) = walk(&rows, &query, sizes)?;
    println!(
        "keyset walk of every page took {:.2} s",
        t.elapsed().as_secs_f64()
    );
    verify(&seen, cursors.len(), args.rows, "one collection")?;
    timing_table(&rows, &query, sizes, &cursors, |offset| {
        rows.iter().skip(offset).take(size + 1).count()
    })?;

    println!(
        "\n== the same rows split over {} shards, merged ==",
        args.shards
    );
    let mut shards = vec![BTreeMap::new(); args.shards as usize];
    for (k, v) in &rows {
        shards[(k.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as usize % args.shards as usize]
            .insert(*k, *v);
    }
    let merged = Merged::new(shards, sort);
    let t = Instant::now();
    let (seen, cursors) = walk(&merged, &query, sizes)?;
    println!(
        "keyset walk of every page took {:.2} s",
        t.elapsed().as_secs_f64()
    );
    verify(&seen, cursors.len(), args.rows, "merged shards")?;
    timing_table(&merged, &query, sizes, &cursors, |offset| {
        merged
            .scan(None, Direction::Forward, offset + size + 1)
            .map_or(0, |v| v.len())
    })?;
    let example = cursors.get(1).cloned().flatten().unwrap_or_default();
    println!(
        "\na signed cursor: {example} ({} chars); a tampered one is refused:",
        example.len()
    );
    let mut tampered = example.clone().into_bytes();
    if let Some(c) = tampered.get_mut(example.len() / 2) {
        *c = if *c == b'A' { b'B' } else { b'A' };
    }
    let tampered = String::from_utf8(tampered).map_err(|e| e.to_string())?;
    if let Err(e) = query.decode(&tampered) {
        println!("  {e}");
    }
    Ok(())
}
