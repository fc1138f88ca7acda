//! A concurrent in-memory cache for hot reads, built around a frequency-aware admission policy.
//!
//! A cache in front of a database keeps the hottest data in memory; what it keeps decides its
//! hit ratio. Recency alone (LRU) lets one large scan flush the working set; the TinyLFU family
//! of policies (Einziger, Friedman and Manes, 2017; Caffeine's W-TinyLFU) admits a new entry only
//! if it is accessed more often than the entry it would evict, which needs a compact estimate of
//! every key's recent access frequency. [`FrequencySketch`] is that estimate: a count-min sketch
//! with 4-bit counters that halves itself periodically, so old popularity fades.
//!
//! ```
//! use shardkit_cache::FrequencySketch;
//!
//! let mut sketch = FrequencySketch::new(1_000);
//! let (hot, cold) = (0x1234_u64, 0x9876_u64);
//! for _ in 0..10 {
//!     sketch.increment(hot);
//! }
//! sketch.increment(cold);
//! assert!(sketch.frequency(hot) > sketch.frequency(cold));
//! // An admission decision: keep the hot entry rather than admit the cold one.
//! assert!(!sketch.admit(cold, hot));
//! ```
//!
//! # Status
//!
//! This release ships the frequency sketch. The cache itself (lock-free reads, adaptive
//! W-TinyLFU eviction, expiry, single-flight loading, listeners and stats) is being built on it.
//!
//! # Costs
//!
//! A sketch for `capacity` entries takes 8 bytes per 16 counters, about one byte per entry
//! (the counter table has a power of two at least `capacity` counters, times 4 rows spread over
//! one table). `increment` and `frequency` touch four counters: O(1), no allocation.
//!
//! The minimum supported Rust version is 1.88. The crate has no `unsafe` code.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod sketch;

pub use sketch::FrequencySketch;

/// The README's examples, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
