//! A concurrent in-memory cache for hot reads: lock-free reads, and an adaptive W-TinyLFU policy
//! that keeps what is re-used rather than what was merely seen last.
//!
//! ```
//! use shardkit_cache::{Cache, RemovalCause};
//!
//! let cache = Cache::new(10_000);
//! cache.insert(42_u64, "answer".to_string());
//! assert_eq!(cache.get(&42).as_deref(), Some("answer"));
//! assert_eq!(cache.remove(&42).as_deref(), Some("answer"));
//! assert!(cache.get(&42).is_none());
//!
//! // Bounded by weight, with a listener told about every entry that leaves.
//! let evicted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
//! let seen = evicted.clone();
//! let cache = Cache::builder()
//!     .max_weight(1 << 20, |_key: &u64, value: &Vec<u8>| value.len() as u32)
//!     .eviction_listener(move |_, _, cause| {
//!         if cause == RemovalCause::Size {
//!             seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
//!         }
//!     })
//!     .build()?;
//! for k in 0..100 {
//!     cache.insert(k, vec![0; 64 << 10]);
//! }
//! assert!(cache.weighted_size() <= 1 << 20);
//! assert!(evicted.load(std::sync::atomic::Ordering::Relaxed) >= 84);
//! # Ok::<(), shardkit_cache::BuildError>(())
//! ```
//!
//! # The policy
//!
//! What a cache keeps decides its hit ratio. Recency alone (LRU) lets one large scan flush the
//! working set; frequency alone holds on to yesterday's favourites. W-TinyLFU (Einziger,
//! Friedman and Manes, 2017; Caffeine's policy) puts new entries in a small LRU-like *window*,
//! and admits an entry leaving it to the *main* space only if a [`FrequencySketch`] says it is
//! more popular than main's eviction victim. Main is split into *probation* and *protected*
//! segments, so entries re-used after admission outlast those that were not. The window's share
//! is tuned while the cache runs, from small *ghosts* of recently turned-away and evicted keys
//! (ARC's idea): a miss on a key the window turned away grows the window, a miss on a key main
//! evicted (or a probation entry re-used just before its eviction) shrinks it, so it grows when
//! recency pays (a shifting hot set) and shrinks when frequency does (a skewed stable set, a
//! loop longer than the cache).
//!
//! LRU order is approximated CLOCK-style: a read only bumps the entry's small hit counter, and
//! the policy looks at the counters when entries reach the head of their queue (giving re-used
//! ones a second chance and folding their hits into the sketch), so reads never move anything.
//!
//! # Concurrency
//!
//! The cache is split into shards, each a hash table (open addressing over atomic pointers to
//! immutable entries, seven to a 64-byte bucket with their one-byte hash tags, so a probe reads
//! one cache line of the table) and a mutex over the shard's policy. A read hashes the key,
//! pins the epoch, probes the table, checks the entry was not removed, bumps its hit counter
//! (no write once saturated) and a hit count on the thread's stripe, and clones the value: no
//! lock, no allocation, no atomic read-modify-write, and (on Linux) no fence instruction. A write
//! takes its shard's mutex, stores into the table with atomic stores, runs the policy and
//! unlinks what it evicts; unlinked entries and outgrown tables are freed once no reader can
//! hold them.
//!
//! Reclamation is epoch-based (Fraser's scheme, as in crossbeam-epoch), with one change where
//! reads pay: a pin publishes the epoch with a plain store and a compiler fence, and the
//! writer that advances the epoch (about once per thousand entries freed) makes every running
//! thread of the process execute a full barrier with `membarrier(2)`, which orders like a
//! fence on each side. Crossbeam's pin, a locked compare-and-swap, took a third of a hit's
//! time. Where `membarrier` is missing (systems other than Linux, old kernels), pins fence.
//!
//! A shard of 128 entries or more hands what it unlinks over in batches (of up to 256, at
//! most a sixty-fourth of its entries, and in a cache bounded by weight at most a
//! sixty-fourth of its weight), and once they are freed their memory goes back to the shard
//! for new entries, so a miss that evicts neither allocates nor frees an entry. Smaller
//! shards hand each entry over at once and free it. A batch
//! waits in its shard until it is full, then in the writing thread's bag until that holds 64
//! entries' worth (or the thread exits); what was handed over is freed by later writes of any
//! cache in the process, three epochs on, or by [`Cache::run_pending_tasks`] or dropping the
//! cache; an entry that was removed, replaced or expired is handed over once the policy's
//! queue passes it, or once such entries are half their queue or weigh more than a quarter of
//! the shard's capacity and half the queue's live entries (or at `run_pending_tasks`).
//! Destructors of keys and values never run under a shard's lock, and never on the read path.
//! Listeners run after the mutex is released. The epochs (a thread's exit, and the reuse of
//! its registration by the next thread, included), the read path against a writer
//! (publication, replacement, removal, eviction, reclamation) and the single-flight hand-off
//! are model-checked with loom.
//!
//! Two limits follow from the epochs. A thread stays pinned while the cache runs user code
//! inside a call: a `compute` function, a `retain` predicate, a weigher, an [`Expiry`], a
//! listener. Memory that any cache of the process releases meanwhile waits to be freed, so
//! keep such code short. And a child process forked from a process with several threads must
//! only `exec` (as for most multithreaded code): a thread pinned, or a lock held, at the fork
//! stays so in the child.
//!
//! The keys' `Hash`, `Eq` and `Borrow` are the exception to "user code runs outside the
//! locks": a write compares keys under its shard's lock, as any hash map's insert does. They
//! must not use the cache (a write to the same shard would wait for itself), and an `Eq` that
//! panics in a write leaves the entry being inserted unfreed (the shard stays sound).
//!
//! # Expiry
//!
//! [`CacheBuilder::time_to_live`], [`CacheBuilder::time_to_idle`] or a per-entry [`Expiry`]
//! give entries deadlines. A read compares the deadline with the clock, so an expired entry is
//! never returned, however long ago anything reclaimed memory; each write reclaims a few
//! expired entries from each policy queue as it goes (no background thread, nothing for the
//! user to drive), and [`Cache::run_pending_tasks`] reclaims all of them at once if wanted.
//! The listener hears [`RemovalCause::Expired`].
//!
//! # Loading
//!
//! [`Cache::get_or_insert_with`] and [`Cache::try_get_or_insert_with`] load a missing key once
//! however many callers ask at the same time: one runs its loader, the others wait for its
//! value (or its error). A loader that panics releases the waiters, who load again. With the
//! `async` feature, `get_or_insert_async` and `try_get_or_insert_async` do the same with a
//! future on any runtime; a loading future that is dropped (a timeout, a cancelled task)
//! releases its waiters too. Each has a `_by_ref` variant
//! ([`Cache::get_or_insert_with_by_ref`]) that takes a borrowed key (a `&str` for a `String`
//! key) and clones it only to cache what it loads.
//!
//! # Read-modify-write
//!
//! [`Cache::compute`] decides a key's fate from its current value, atomically: put a new
//! value, remove the key, or keep it as it is. Its function runs outside the shard's lock,
//! and its answer is written only if the key still holds the entry the function was shown,
//! under the lock; otherwise the function runs again on the new one (a compare-and-swap, as
//! `AtomicU64::fetch_update` loops). No update is lost, and the function may use the cache.
//! This protocol, against a concurrent `compute` and a concurrent removal, is model-checked
//! with loom too.
//!
//! # Resizing
//!
//! [`Cache::set_capacity`] changes the bound while the cache is in use. A shrink evicts down to
//! it before returning, shard by shard under each shard's lock, and the listener hears each
//! entry after that shard's lock is released. The evictions a resize forces teach the policy
//! nothing: they move no window share and leave no ghosts, and the frequency sketch folds its
//! halves together, keeping its counts. The capacity is read under each shard's lock, so of
//! resizes made at once, the one stored last holds on every shard.
//!
//! # Costs
//!
//! About 75 bytes per `u64` to `u64` entry (measured; the payload is 16): the entry itself
//! (key, value, hash, deadline and eight bytes of state), its table slot and tag (tables stay at
//! most three quarters full), its place in a policy queue, and 8 bytes of frequency sketch.
//! [`Cache::memory_used`] gives the estimate for a cache in use.
//!
//! The minimum supported Rust version is 1.88.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cache;
mod entry;
mod epoch;
mod expiry;
mod flight;
mod ghost;
mod loading;
mod policy;
mod prefetch;
mod reclaim;
mod shard;
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub mod sim;
mod sketch;
mod sync;
mod table;
mod window;

pub use cache::{
    BuildError, Cache, CacheBuilder, CacheStats, Compute, DefaultHashBuilder, RemovalCause,
};
pub use expiry::{Clock, Expiry, SystemClock};
pub use sketch::FrequencySketch;

/// The README's examples, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
