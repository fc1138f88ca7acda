//! A ring shared between threads: wait-free reads while a writer builds the next version.

use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

use crate::error::Error;
use crate::plan::Rebalance;
use crate::ring::HashRing;

/// A handle to the current version of a ring, for many reader threads and occasional writers.
///
/// Readers load the current ring through an atomic pointer ([`arc_swap`]): they never take a
/// lock, never wait for a writer, and always see a complete ring. A writer clones the current
/// ring, applies its change to the clone and swaps it in; writers are serialised among
/// themselves so no change is lost. Readers that still hold an older version keep it alive
/// until they drop it.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use shardkit_hashring::{HashRing, SharedRing};
///
/// let shared = Arc::new(SharedRing::new(HashRing::builder().nodes(["a", "b"]).build()?));
/// let reader = {
///     let shared = Arc::clone(&shared);
///     std::thread::spawn(move || shared.read(|ring| ring.get("key").copied()))
/// };
/// let plan = shared.add("c")?;
/// assert!(plan.iter().all(|m| *m.to() == "c"));
/// assert!(reader.join().unwrap().is_some());
/// assert_eq!(shared.snapshot().len(), 3);
/// # Ok::<(), shardkit_hashring::Error>(())
/// ```
#[derive(Debug)]
pub struct SharedRing<N> {
    current: ArcSwap<HashRing<N>>,
    writer: Mutex<()>,
}

impl<N: Hash + Eq + Clone> SharedRing<N> {
    /// Shares `ring`.
    pub fn new(ring: HashRing<N>) -> Self {
        Self {
            current: ArcSwap::from_pointee(ring),
            writer: Mutex::new(()),
        }
    }

    /// Runs `f` on the current ring without taking a lock (`arc_swap`'s fast path does not touch
    /// the reference count either; a thread holding many guards at once falls back to it).
    #[inline]
    pub fn read<R>(&self, f: impl FnOnce(&HashRing<N>) -> R) -> R {
        f(&self.current.load())
    }

    /// The current ring, kept alive for as long as the caller holds it.
    pub fn snapshot(&self) -> Arc<HashRing<N>> {
        self.current.load_full()
    }

    /// Applies `change` to a copy of the current ring and publishes the copy if `change`
    /// succeeds; on error nothing is published. Concurrent updates run one after another.
    ///
    /// # Errors
    ///
    /// Whatever `change` returns.
    pub fn update<T, E>(
        &self,
        change: impl FnOnce(&mut HashRing<N>) -> Result<T, E>,
    ) -> Result<T, E> {
        // The mutex guards no data, only the order of writers, so a poisoned lock is harmless.
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = HashRing::clone(&self.current.load());
        let out = change(&mut next)?;
        self.current.store(Arc::new(next));
        Ok(out)
    }

    /// Adds a node of weight 1 and publishes the new ring.
    ///
    /// # Errors
    ///
    /// As [`HashRing::add`].
    pub fn add(&self, node: N) -> Result<Rebalance<N>, Error> {
        self.update(|ring| ring.add(node))
    }

    /// Adds a weighted node and publishes the new ring.
    ///
    /// # Errors
    ///
    /// As [`HashRing::add_weighted`].
    pub fn add_weighted(&self, node: N, weight: u32) -> Result<Rebalance<N>, Error> {
        self.update(|ring| ring.add_weighted(node, weight))
    }

    /// Removes a node and publishes the new ring.
    ///
    /// # Errors
    ///
    /// As [`HashRing::remove`].
    pub fn remove<Q>(&self, node: &Q) -> Result<Rebalance<N>, Error>
    where
        N: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.update(|ring| ring.remove(node))
    }

    /// Changes a node's weight and publishes the new ring.
    ///
    /// # Errors
    ///
    /// As [`HashRing::set_weight`].
    pub fn set_weight<Q>(&self, node: &Q, weight: u32) -> Result<Rebalance<N>, Error>
    where
        N: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.update(|ring| ring.set_weight(node, weight))
    }

    /// The node owning `key` in the current ring, cloned out.
    pub fn get<K: Hash + ?Sized>(&self, key: &K) -> Option<N> {
        self.read(|ring| ring.get(key).cloned())
    }
}
