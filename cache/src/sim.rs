//! Hit-ratio simulation on access traces: this cache next to exact LRU and Belady's optimal
//! policy (OPT), so a cache can be sized on real access logs. Behind the `sim` feature; the
//! `shardkit cache sim` command is built on it.
//!
//! The cache is simulated as [`Cache::new`] builds it on the machine running the simulation
//! (its default shard count), or with the shards [`SimOptions`] gives, and hashes with a fixed
//! seed, so a simulation repeats exactly. A short trace's ratio moves with the seed (each
//! cache seeds its hasher anew in use); [`SimOptions::seed`] shows by how much.
//!
//! ```
//! use shardkit_cache::sim::{SimOptions, Simulation, read_trace};
//!
//! let keys = read_trace("1\n2\n1\n3\n1\n2\n".as_bytes())?;
//! let sim = Simulation::new(&keys);
//! let result = sim.run(2);
//! assert_eq!((result.accesses, sim.distinct()), (6, 3));
//! assert!(result.opt >= result.lru && result.opt >= result.cache);
//! // The same cache in one shard, hashing with another seed.
//! let one_shard = sim.run_with(2, &SimOptions::default().shards(1).seed(7))?;
//! assert_eq!(one_shard.shards, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, Read};

use crate::{BuildError, Cache};

/// The longest line a trace may have, in bytes: a key has at most 20 digits, so this leaves
/// room for any whitespace around it while a file that is not a trace (no line breaks) fails
/// at once instead of being read whole.
const MAX_LINE: usize = 4096;

/// How much of a bad line an error quotes.
const QUOTED: usize = 64;

/// Why a trace could not be read.
#[derive(Debug)]
#[non_exhaustive]
pub enum TraceError {
    /// Reading failed.
    Io(std::io::Error),
    /// A line is not an unsigned decimal key (up to `u64::MAX`, digits only).
    BadLine {
        /// The line's number, from 1.
        line: usize,
        /// Its text, trimmed, up to its first 64 characters (bytes that are not UTF-8 shown as
        /// `U+FFFD`).
        text: String,
    },
    /// A line is longer than 4,096 bytes with its line break: not a trace of keys (it is not
    /// read further).
    LongLine {
        /// The line's number, from 1.
        line: usize,
    },
}

impl std::fmt::Display for TraceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "reading the trace: {e}"),
            Self::BadLine { line, text } => {
                write!(f, "line {line}: {text:?} is not an unsigned decimal key")
            }
            Self::LongLine { line } => {
                write!(f, "line {line} is longer than {MAX_LINE} bytes: not a key")
            }
        }
    }
}

impl std::error::Error for TraceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::BadLine { .. } | Self::LongLine { .. } => None,
        }
    }
}

/// Reads a trace: one access per line, the key as an unsigned decimal integer. ASCII whitespace
/// around a key (a `\r` before the line break included) and blank lines are skipped, and so is
/// a UTF-8 byte-order mark before the first line. Decompress first if it is compressed.
///
/// # Errors
///
/// [`TraceError`] for a read failure, a line that is not a key (bytes that are not UTF-8, a
/// sign, a key past `u64::MAX`), or a line of more than 4,096 bytes with its line break.
pub fn read_trace(mut reader: impl BufRead) -> Result<Vec<u64>, TraceError> {
    let mut keys = Vec::new();
    let mut buf = Vec::new();
    for line in 1.. {
        buf.clear();
        let read = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(TraceError::Io)?;
        if read == 0 {
            break;
        }
        if buf.len() > MAX_LINE {
            return Err(TraceError::LongLine { line });
        }
        let mut text = buf.trim_ascii();
        if line == 1 {
            text = text
                .strip_prefix("\u{feff}".as_bytes())
                .map_or(text, <[u8]>::trim_ascii);
        }
        if text.is_empty() {
            continue;
        }
        let Some(key) = parse_key(text) else {
            let text = String::from_utf8_lossy(text).chars().take(QUOTED).collect();
            return Err(TraceError::BadLine { line, text });
        };
        keys.push(key);
    }
    Ok(keys)
}

/// `text` as an unsigned decimal key: digits only (`u64::from_str` would take a `+`).
fn parse_key(text: &[u8]) -> Option<u64> {
    if !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// Hit ratios of one capacity on one trace.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct SimResult {
    /// The capacity, in entries.
    pub capacity: usize,
    /// Accesses in the trace.
    pub accesses: usize,
    /// This crate's [`Cache`], built as the run asked (see [`Simulation::run_with`]).
    pub cache: f64,
    /// The shards the cache had.
    pub shards: usize,
    /// Exact LRU.
    pub lru: f64,
    /// Belady's optimal policy with bypass: the upper bound for any policy.
    pub opt: f64,
}

/// How a simulation builds the cache: [`Default`] is [`Cache::new`]'s shard count with seed 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SimOptions {
    /// The shard count (see [`CacheBuilder::shards`](crate::CacheBuilder::shards)); `None`
    /// for the default a cache of the capacity gets on this machine.
    pub shards: Option<usize>,
    /// The seed of the cache's hasher.
    pub seed: u64,
}

impl SimOptions {
    /// With `shards` shards (a power of two).
    #[must_use]
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// With the cache's hasher seeded by `seed`.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

/// A trace prepared for simulation at several capacities (OPT's next-use table is computed
/// once).
#[derive(Debug)]
pub struct Simulation<'a> {
    keys: &'a [u64],
    next_use: Vec<usize>,
    distinct: usize,
}

impl<'a> Simulation<'a> {
    /// Prepares `keys`.
    pub fn new(keys: &'a [u64]) -> Self {
        let mut next_use = vec![usize::MAX; keys.len()];
        let mut seen: HashMap<u64, usize> = HashMap::new();
        for (i, &k) in keys.iter().enumerate().rev() {
            if let Some(&j) = seen.get(&k) {
                next_use[i] = j;
            }
            seen.insert(k, i);
        }
        Self {
            keys,
            next_use,
            distinct: seen.len(),
        }
    }

    /// The trace's distinct keys.
    pub fn distinct(&self) -> usize {
        self.distinct
    }

    /// Hit ratios at `capacity` entries, the cache built as [`Cache::new`] builds it (see
    /// [`SimOptions`]'s default). Every access is a `get`; a miss inserts the key.
    pub fn run(&self, capacity: usize) -> SimResult {
        self.run_with(capacity, &SimOptions::default())
            .expect("the default shard count is a valid one")
    }

    /// [`run`](Self::run) with the cache built as `options` say.
    ///
    /// # Errors
    ///
    /// [`BuildError::InvalidShards`] for a shard count that is not a power of two up to 2^16.
    pub fn run_with(&self, capacity: usize, options: &SimOptions) -> Result<SimResult, BuildError> {
        let shards = options
            .shards
            .unwrap_or_else(|| crate::cache::default_shards(capacity as u64));
        let hits = cache_hits(self.keys, capacity, shards, options.seed)?;
        Ok(SimResult {
            capacity,
            accesses: self.keys.len(),
            cache: self.ratio(hits),
            shards,
            lru: self.lru(capacity),
            opt: self.opt(capacity),
        })
    }

    /// Exact LRU's hit ratio at `capacity` entries alone ([`SimResult::lru`]), for callers
    /// that compare their own caches with the bounds and need not replay this crate's.
    ///
    /// ```
    /// let keys = [1, 2, 1, 3, 1, 2];
    /// let sim = shardkit_cache::sim::Simulation::new(&keys);
    /// assert_eq!(sim.lru(2), 2.0 / 6.0); // the second and third 1
    /// ```
    pub fn lru(&self, capacity: usize) -> f64 {
        self.ratio(lru_hits(self.keys, capacity))
    }

    /// Belady's OPT's hit ratio at `capacity` entries alone ([`SimResult::opt`]).
    ///
    /// ```
    /// let keys = [1, 2, 1, 3, 1, 2];
    /// let sim = shardkit_cache::sim::Simulation::new(&keys);
    /// assert_eq!(sim.opt(2), 3.0 / 6.0); // keeps 1 and 2, passing 3 by
    /// ```
    pub fn opt(&self, capacity: usize) -> f64 {
        self.ratio(self.opt_hits(capacity))
    }

    /// `hits` as a share of the trace's accesses.
    fn ratio(&self, hits: usize) -> f64 {
        hits as f64 / self.keys.len().max(1) as f64
    }

    /// Belady's OPT with bypass: on a miss, a key used again before the farthest resident one
    /// replaces it; otherwise it is not cached at all.
    fn opt_hits(&self, capacity: usize) -> usize {
        let mut resident: HashMap<u64, usize> = HashMap::new();
        // (next use, key), farthest last.
        let mut by_next: BTreeSet<(usize, u64)> = BTreeSet::new();
        let mut hits = 0;
        for (i, &k) in self.keys.iter().enumerate() {
            let next = self.next_use[i];
            if let Some(old) = resident.get_mut(&k) {
                hits += 1;
                by_next.remove(&(*old, k));
                *old = next;
                by_next.insert((next, k));
                continue;
            }
            if capacity == 0 || next == usize::MAX {
                continue;
            }
            if resident.len() == capacity {
                let &(farthest, victim) = by_next.last().expect("a full cache has entries");
                if farthest <= next {
                    continue;
                }
                by_next.remove(&(farthest, victim));
                resident.remove(&victim);
            }
            resident.insert(k, next);
            by_next.insert((next, k));
        }
        hits
    }
}

/// Our cache's hits on `keys`.
fn cache_hits(
    keys: &[u64],
    capacity: usize,
    shards: usize,
    seed: u64,
) -> Result<usize, BuildError> {
    let cache = Cache::builder()
        .max_capacity(capacity as u64)
        .shards(shards)
        .hasher(foldhash::fast::FixedState::with_seed(seed))
        .build()?;
    Ok(keys
        .iter()
        .filter(|&&k| {
            let hit = cache.get(&k).is_some();
            if !hit {
                cache.insert(k, ());
            }
            hit
        })
        .count())
}

/// Exact LRU on an index-linked list.
fn lru_hits(keys: &[u64], capacity: usize) -> usize {
    const NIL: usize = usize::MAX;
    struct Node {
        key: u64,
        prev: usize,
        next: usize,
    }
    // Never more nodes than accesses: a capacity far beyond the trace reserves no more.
    let room = capacity.min(keys.len());
    let mut nodes: Vec<Node> = Vec::with_capacity(room);
    let mut index: HashMap<u64, usize> = HashMap::with_capacity(room);
    let (mut head, mut tail) = (NIL, NIL);
    let mut hits = 0;
    let unlink = |nodes: &mut Vec<Node>, head: &mut usize, tail: &mut usize, i: usize| {
        let (p, n) = (nodes[i].prev, nodes[i].next);
        if p == NIL {
            *head = n
        } else {
            nodes[p].next = n
        }
        if n == NIL {
            *tail = p
        } else {
            nodes[n].prev = p
        }
    };
    let push_front = |nodes: &mut Vec<Node>, head: &mut usize, tail: &mut usize, i: usize| {
        nodes[i].prev = NIL;
        nodes[i].next = *head;
        if *head == NIL {
            *tail = i
        } else {
            nodes[*head].prev = i
        }
        *head = i;
    };
    for &k in keys {
        if let Some(&i) = index.get(&k) {
            hits += 1;
            unlink(&mut nodes, &mut head, &mut tail, i);
            push_front(&mut nodes, &mut head, &mut tail, i);
            continue;
        }
        if capacity == 0 {
            continue;
        }
        let i = if nodes.len() < capacity {
            nodes.push(Node {
                key: k,
                prev: NIL,
                next: NIL,
            });
            nodes.len() - 1
        } else {
            let lru = tail;
            unlink(&mut nodes, &mut head, &mut tail, lru);
            index.remove(&nodes[lru].key);
            nodes[lru].key = k;
            lru
        };
        index.insert(k, i);
        push_front(&mut nodes, &mut head, &mut tail, i);
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_and_opt_on_a_known_trace() {
        // Capacity 2. LRU cycles through three keys and hits only the final repeat of 1. OPT
        // keeps 1 and 2 and never admits 3 (each time, both residents are used before it is,
        // and the second time it is never used again): hits at 1, 2, 1, 1.
        let keys = [1, 2, 3, 1, 2, 3, 1, 1];
        let sim = Simulation::new(&keys);
        assert_eq!(lru_hits(&keys, 2), 1);
        assert_eq!(sim.opt_hits(2), 4);
    }

    #[test]
    fn bad_lines_are_errors_with_their_number() {
        let err = read_trace("1\n\n2\nx3\n".as_bytes()).unwrap_err();
        assert!(matches!(err, TraceError::BadLine { line: 4, .. }), "{err}");
        for (trace, line) in [
            (&b"1\n+2\n"[..], 2),
            (b"1\n-2\n", 2),
            (b"18446744073709551616\n", 1),
            (b"1\n\xff\xfe\n", 2),
            (b"1\n2 3\n", 2),
        ] {
            let err = read_trace(trace).unwrap_err();
            assert!(
                matches!(err, TraceError::BadLine { line: l, .. } if l == line),
                "{trace:?}: {err}"
            );
        }
    }

    #[test]
    fn whitespace_line_ends_and_a_byte_order_mark_are_skipped() {
        let keys = read_trace("\u{feff}1\r\n  2 \r\n\r\n\t3\n18446744073709551615".as_bytes());
        assert_eq!(keys.unwrap(), [1, 2, 3, u64::MAX]);
    }

    #[test]
    fn a_line_too_long_is_an_error_read_no_further_than_it() {
        // Digits with no line break: not read whole.
        let mut endless = std::io::repeat(b'7').take(1 << 30);
        let err = read_trace(std::io::BufReader::new(&mut endless)).unwrap_err();
        assert!(matches!(err, TraceError::LongLine { line: 1 }), "{err}");
        assert!(endless.limit() > (1 << 30) - 2 * MAX_LINE as u64 - 8192);
        // A key padded to the limit, with its line break or as the last line, is read; one
        // byte more is too long, a key or not.
        let padded = |spaces: usize, end: &str| format!("1\n{}5{end}", " ".repeat(spaces));
        for (trace, keys) in [
            (padded(MAX_LINE - 2, "\n"), Some(vec![1, 5])),
            (padded(MAX_LINE - 1, ""), Some(vec![1, 5])),
            (padded(MAX_LINE - 1, "\n"), None),
            (padded(MAX_LINE, ""), None),
            (format!("1\n{}\n", " ".repeat(MAX_LINE)), None),
        ] {
            match (read_trace(trace.as_bytes()), keys) {
                (Ok(read), Some(keys)) => assert_eq!(read, keys),
                (Err(TraceError::LongLine { line: 2 }), None) => {}
                (other, _) => panic!("{} bytes: {other:?}", trace.len()),
            }
        }
        // A bad line is quoted only in part.
        let err = read_trace("x".repeat(1_000).as_bytes()).unwrap_err();
        let TraceError::BadLine { text, .. } = err else {
            panic!("{err}");
        };
        assert_eq!(text.len(), QUOTED);
    }

    /// `len` keys, each `key` of the next number of a xorshift seeded by `seed`.
    fn trace(seed: u64, len: usize, key: impl Fn(u64) -> u64) -> Vec<u64> {
        let mut x = seed;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                key(x)
            })
            .collect()
    }

    #[test]
    fn runs_repeat_and_take_their_shards() {
        let keys = trace(3, 30_000, |x| (x % 3_000).min(x % 101 * 40));
        let sim = Simulation::new(&keys);
        assert_eq!(
            sim.distinct(),
            keys.iter().collect::<std::collections::HashSet<_>>().len()
        );
        let first = sim.run(1_000);
        assert_eq!(first, sim.run(1_000), "a run repeats exactly");
        assert_eq!(first.shards, crate::cache::default_shards(1_000));
        let options = SimOptions::default().shards(4);
        let four = sim.run_with(1_000, &options).unwrap();
        assert_eq!(four.shards, 4);
        // Seeds give the cache different hashes, so (on this trace) different figures.
        let seeds: std::collections::HashSet<u64> = (0..8)
            .map(|seed| {
                let r = sim.run_with(1_000, &options.seed(seed)).unwrap();
                r.cache.to_bits()
            })
            .collect();
        assert!(seeds.len() > 1, "{seeds:?}");
        assert!(matches!(
            sim.run_with(1_000, &SimOptions::default().shards(3)),
            Err(BuildError::InvalidShards(3))
        ));
    }

    #[test]
    fn opt_bounds_every_policy() {
        let keys = trace(7, 20_000, |x| (x % 1_000).min(x % 97 * 3));
        let sim = Simulation::new(&keys);
        for cap in [1, 10, 100, 500] {
            let r = sim.run(cap);
            assert!(r.opt >= r.lru && r.opt >= r.cache, "{r:?}");
        }
    }
}
