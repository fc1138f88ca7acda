//! Hit-ratio simulation on access traces: this cache next to exact LRU and Belady's optimal
//! policy (OPT), so a cache can be sized on real access logs. Behind the `sim` feature; the
//! `shardkit cache sim` command is built on it.
//!
//! ```
//! use shardkit_cache::sim::{Simulation, read_trace};
//!
//! let keys = read_trace("1\n2\n1\n3\n1\n2\n".as_bytes())?;
//! let result = Simulation::new(&keys).run(2);
//! assert_eq!(result.accesses, 6);
//! assert!(result.opt >= result.lru && result.opt >= result.cache);
//! # Ok::<(), shardkit_cache::sim::TraceError>(())
//! ```

use std::collections::{BTreeSet, HashMap};
use std::io::BufRead;

use crate::Cache;

/// Why a trace could not be read.
#[derive(Debug)]
#[non_exhaustive]
pub enum TraceError {
    /// Reading failed.
    Io(std::io::Error),
    /// A line is not an unsigned decimal key.
    BadLine {
        /// The line's number, from 1.
        line: usize,
        /// Its text.
        text: String,
    },
}

impl std::fmt::Display for TraceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "reading the trace: {e}"),
            Self::BadLine { line, text } => {
                write!(f, "line {line}: {text:?} is not an unsigned decimal key")
            }
        }
    }
}

impl std::error::Error for TraceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::BadLine { .. } => None,
        }
    }
}

/// Reads a trace: one access per line, the key as an unsigned decimal integer (blank lines are
/// skipped). Decompress first if it is compressed.
///
/// # Errors
///
/// [`TraceError`] for a read failure or a line that is not a key.
pub fn read_trace(reader: impl BufRead) -> Result<Vec<u64>, TraceError> {
    let mut keys = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(TraceError::Io)?;
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        keys.push(text.parse().map_err(|_| TraceError::BadLine {
            line: i + 1,
            text: text.to_string(),
        })?);
    }
    Ok(keys)
}

/// Hit ratios of one capacity on one trace.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct SimResult {
    /// The capacity, in entries.
    pub capacity: usize,
    /// Accesses in the trace.
    pub accesses: usize,
    /// This crate's [`Cache`] (one shard, so the whole capacity shares one policy).
    pub cache: f64,
    /// Exact LRU.
    pub lru: f64,
    /// Belady's optimal policy with bypass: the upper bound for any policy.
    pub opt: f64,
}

/// A trace prepared for simulation at several capacities (OPT's next-use table is computed
/// once).
#[derive(Debug)]
pub struct Simulation<'a> {
    keys: &'a [u64],
    next_use: Vec<usize>,
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
        Self { keys, next_use }
    }

    /// Every access is a `get`; a miss inserts the key.
    pub fn run(&self, capacity: usize) -> SimResult {
        SimResult {
            capacity,
            accesses: self.keys.len(),
            cache: self.ratio(cache_hits(self.keys, capacity)),
            lru: self.lru(capacity),
            opt: self.opt(capacity),
        }
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

fn cache_hits(keys: &[u64], capacity: usize) -> usize {
    let cache = Cache::builder()
        .max_capacity(capacity as u64)
        .shards(1)
        .build()
        .expect("a capacity and one shard are a valid configuration");
    keys.iter()
        .filter(|&&k| {
            let hit = cache.get(&k).is_some();
            if !hit {
                cache.insert(k, ());
            }
            hit
        })
        .count()
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
    }

    #[test]
    fn opt_bounds_every_policy() {
        let mut x = 7u64;
        let keys: Vec<u64> = (0..20_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 1_000).min(x % 97 * 3)
            })
            .collect();
        let sim = Simulation::new(&keys);
        for cap in [1, 10, 100, 500] {
            let r = sim.run(cap);
            assert!(r.opt >= r.lru && r.opt >= r.cache, "{r:?}");
        }
    }
}
