//! Single-flight loading on the cache: `get_or_insert_with` and friends (see [`crate::flight`]
//! for the hand-off between the caller that loads and those that wait).

use std::any::Any;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use crate::Cache;
use crate::flight::{Flight, Landing, Leader};

/// A key being loaded, with its flight (a `Flight<V, E>` for the loader's error type `E`).
pub(crate) struct Pending<K> {
    hash: u64,
    key: K,
    flight: Arc<dyn Any + Send + Sync>,
}

/// The loads in flight of one shard.
pub(crate) type Flights<K> = parking_lot::Mutex<Vec<Pending<K>>>;

/// Takes a flight out of the pending list when its leader is done (or unwinds, or its future
/// is dropped).
struct Deregister<'a, K> {
    flights: &'a Flights<K>,
    flight: Arc<dyn Any + Send + Sync>,
}

impl<K> Drop for Deregister<'_, K> {
    fn drop(&mut self) {
        self.flights
            .lock()
            .retain(|p| !Arc::ptr_eq(&p.flight, &self.flight));
    }
}

/// A caller's next step toward a key's value.
enum Step<V, E> {
    /// It is cached.
    Hit(V),
    /// Another caller is loading it: wait for its flight.
    Wait(Arc<Flight<V, E>>),
    /// This caller loads it.
    Lead(Arc<Flight<V, E>>),
}

/// What a waiter makes of its flight's landing: the result, or `None` to try again.
fn outcome<V, E>(landing: Landing<V, E>) -> Option<Result<V, Arc<E>>> {
    match landing {
        Landing::Loaded(v) => Some(Ok(v)),
        Landing::Failed(e) => Some(Err(e)),
        Landing::Abandoned => None,
    }
}

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
{
    /// `key`'s value, loading it with `load` and caching it on a miss. Of many callers missing
    /// the same key at once, one runs its `load` and the others wait for that value (single
    /// flight). If the loading caller's `load` panics, the panic is its own and the waiters
    /// retry (one of them loading); nobody is left waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let cache = shardkit_cache::Cache::new(100);
    /// let v = cache.get_or_insert_with("k".to_string(), || 42);
    /// assert_eq!(v, 42);
    /// assert_eq!(cache.get_or_insert_with("k".to_string(), || unreachable!()), 42);
    /// ```
    pub fn get_or_insert_with(&self, key: K, load: impl FnOnce() -> V) -> V {
        match self.try_get_or_insert_with(key, || Ok::<V, std::convert::Infallible>(load())) {
            Ok(v) => v,
            Err(e) => match *e {},
        }
    }

    /// [`get_or_insert_with`](Self::get_or_insert_with) with a fallible `load`. Nothing is
    /// cached when it fails.
    ///
    /// # Errors
    ///
    /// The error of the `load` that ran: this caller's, or, for the callers that waited for it,
    /// the loading caller's (the same `Arc`), so a failing backend is asked once, not once per
    /// waiter.
    pub fn try_get_or_insert_with<E>(
        &self,
        key: K,
        load: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, Arc<E>>
    where
        E: Send + Sync + 'static,
    {
        let hash = self.hasher.hash_one(&key);
        let mut load = Some(load);
        loop {
            let flight = match self.step::<E>(hash, &key) {
                Step::Hit(v) => return Ok(v),
                Step::Wait(flight) => match outcome(flight.wait()) {
                    Some(result) => return result,
                    None => continue,
                },
                Step::Lead(flight) => flight,
            };
            let (leader, deregister) = self.lead(hash, &flight);
            let load = load.take().expect("a caller leads at most one flight");
            let loaded = self.peek_value(hash, &key).map_or_else(load, Ok);
            return self.land(key, loaded, leader, deregister);
        }
    }

    /// [`get_or_insert_with`](Self::get_or_insert_with) with an asynchronous `load`, on any
    /// runtime. Waiting callers yield instead of blocking. If the loading caller's future is
    /// dropped before it finishes (a timeout, a cancelled task), the waiters retry, one of them
    /// loading: a load nobody drives never holds the others up.
    #[cfg(feature = "async")]
    #[cfg_attr(docsrs, doc(cfg(feature = "async")))]
    pub async fn get_or_insert_async(&self, key: K, load: impl Future<Output = V>) -> V {
        let load = async { Ok::<V, std::convert::Infallible>(load.await) };
        match self.try_get_or_insert_async(key, load).await {
            Ok(v) => v,
            Err(e) => match *e {},
        }
    }

    /// [`get_or_insert_async`](Self::get_or_insert_async) with a fallible `load`.
    ///
    /// # Errors
    ///
    /// As [`try_get_or_insert_with`](Self::try_get_or_insert_with).
    #[cfg(feature = "async")]
    #[cfg_attr(docsrs, doc(cfg(feature = "async")))]
    pub async fn try_get_or_insert_async<E>(
        &self,
        key: K,
        load: impl Future<Output = Result<V, E>>,
    ) -> Result<V, Arc<E>>
    where
        E: Send + Sync + 'static,
    {
        let hash = self.hasher.hash_one(&key);
        let mut load = Some(load);
        loop {
            let flight = match self.step::<E>(hash, &key) {
                Step::Hit(v) => return Ok(v),
                Step::Wait(flight) => match outcome(flight.landed().await) {
                    Some(result) => return result,
                    None => continue,
                },
                Step::Lead(flight) => flight,
            };
            let (leader, deregister) = self.lead(hash, &flight);
            let loaded = match self.peek_value(hash, &key) {
                Some(v) => Ok(v),
                None => {
                    let load = load.take().expect("a caller leads at most one flight");
                    load.await
                }
            };
            return self.land(key, loaded, leader, deregister);
        }
    }

    /// The cached value, or else joins `key`'s flight, or else starts one (a flight of another
    /// error type for the key is left alone: this caller then loads on its own).
    fn step<E: Send + Sync + 'static>(&self, hash: u64, key: &K) -> Step<V, E> {
        if let Some(v) = self.get(key) {
            return Step::Hit(v);
        }
        let mut pending = self.flights[self.shard_index(hash)].lock();
        let joined = pending
            .iter()
            .find(|p| p.hash == hash && p.key == *key)
            .and_then(|p| Arc::clone(&p.flight).downcast::<Flight<V, E>>().ok());
        if let Some(flight) = joined {
            return Step::Wait(flight);
        }
        let flight = Arc::new(Flight::new());
        pending.push(Pending {
            hash,
            key: key.clone(),
            flight: Arc::clone(&flight) as Arc<dyn Any + Send + Sync>,
        });
        Step::Lead(flight)
    }

    /// The guards of a leader: whatever happens to it, its flight lands and leaves `pending`
    /// (drops run in reverse, so it leaves `pending` first).
    fn lead<'a, E: Send + Sync + 'static>(
        &'a self,
        hash: u64,
        flight: &'a Arc<Flight<V, E>>,
    ) -> (Leader<'a, V, E>, Deregister<'a, K>) {
        let leader = Leader::new(flight);
        let deregister = Deregister {
            flights: &self.flights[self.shard_index(hash)],
            flight: Arc::clone(flight) as Arc<dyn Any + Send + Sync>,
        };
        (leader, deregister)
    }

    /// Caches what the leader loaded, then lands its flight with it.
    fn land<E>(
        &self,
        key: K,
        loaded: Result<V, E>,
        leader: Leader<'_, V, E>,
        deregister: Deregister<'_, K>,
    ) -> Result<V, Arc<E>> {
        let landing = match loaded {
            Ok(v) => {
                self.insert(key, v.clone());
                Landing::Loaded(v)
            }
            Err(e) => Landing::Failed(Arc::new(e)),
        };
        drop(deregister);
        let result = match &landing {
            Landing::Loaded(v) => Ok(v.clone()),
            Landing::Failed(e) => Err(Arc::clone(e)),
            Landing::Abandoned => unreachable!("a leader lands what it loaded"),
        };
        leader.land(landing);
        result
    }
}
