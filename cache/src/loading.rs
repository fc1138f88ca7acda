//! Single-flight loading on the cache: `get_or_insert_with` and friends (see [`crate::flight`]
//! for the hand-off between the caller that loads and those that wait).

use std::any::Any;
use std::borrow::{Borrow, Cow};
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use crate::flight::{Flight, Landing, Leader};
use crate::{Cache, CacheStats, Compute};

/// A key being loaded, with its flight (a `Flight<V, E>` for the loader's error type `E`).
pub(crate) struct Pending<K> {
    hash: u64,
    key: K,
    flight: Arc<dyn Any + Send + Sync>,
    /// Set when the key is removed (or the cache cleared) while it loads, as the flight leaves
    /// the pending list: what the load returns is then not cached. It may have been read
    /// before the removal (a database row the remover just changed), and caching it after
    /// would undo the removal until it is evicted (memcached's leases guard against the
    /// same).
    invalidated: Arc<AtomicBool>,
    /// The thread of a leader that blocks for its load (not an asynchronous one): a caller on
    /// that thread, in the load itself or in a listener it set off, would wait for itself.
    blocking_leader: Option<ThreadId>,
}

/// The loads in flight of one shard.
pub(crate) type Flights<K> = parking_lot::Mutex<Vec<Pending<K>>>;

thread_local! {
    /// The flights whose asynchronous loads this thread is polling right now (addresses of
    /// their `Arc`s): a caller in such a load asking for the load's own key, blocking or not,
    /// would wait for a load that cannot go on while it waits. A blocking leader is told by
    /// its thread ([`Pending::blocking_leader`]); an asynchronous one moves between threads,
    /// so it is marked only while polled.
    static POLLING_LOADS: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The address that stands for `flight` in [`POLLING_LOADS`].
fn flight_id(flight: &Arc<dyn Any + Send + Sync>) -> usize {
    Arc::as_ptr(flight).cast::<()>() as usize
}

/// Whether this thread is polling `flight`'s load.
fn polling_here(flight: &Arc<dyn Any + Send + Sync>) -> bool {
    let id = flight_id(flight);
    POLLING_LOADS.with(|loads| loads.borrow().contains(&id))
}

/// Polls `load` with `flight` marked in [`POLLING_LOADS`] during each poll.
#[cfg(feature = "async")]
async fn polled_as<T>(flight: Arc<dyn Any + Send + Sync>, load: impl Future<Output = T>) -> T {
    /// Unmarks the flight when the poll returns or unwinds.
    struct Polling;
    impl Drop for Polling {
        fn drop(&mut self) {
            POLLING_LOADS.with(|loads| loads.borrow_mut().pop());
        }
    }
    let id = flight_id(&flight);
    let mut load = std::pin::pin!(load);
    std::future::poll_fn(move |cx| {
        POLLING_LOADS.with(|loads| loads.borrow_mut().push(id));
        let _polling = Polling;
        load.as_mut().poll(cx)
    })
    .await
}

/// Takes a flight out of the pending list when its leader is done (or unwinds, or its future
/// is dropped).
struct Deregister<'a, K> {
    flights: &'a Flights<K>,
    flight: Arc<dyn Any + Send + Sync>,
}

impl<K> Drop for Deregister<'_, K> {
    fn drop(&mut self) {
        drop(take_out(self.flights, |p| {
            Arc::ptr_eq(&p.flight, &self.flight)
        }));
    }
}

/// Takes out of `flights` the loads `doomed` picks; returns them, to be dropped once the lock
/// is let go (their keys' destructors are the user's).
fn take_out<K>(
    flights: &Flights<K>,
    mut doomed: impl FnMut(&Pending<K>) -> bool,
) -> Vec<Pending<K>> {
    let mut flights = flights.lock();
    let mut gone = Vec::new();
    let mut i = 0;
    while i < flights.len() {
        if doomed(&flights[i]) {
            gone.push(flights.swap_remove(i));
        } else {
            i += 1;
        }
    }
    gone
}

/// Takes the loads `doomed` picks out of `flights` and marks them invalidated (see
/// [`Pending::invalidated`]).
fn invalidate<K>(flights: &Flights<K>, doomed: impl FnMut(&Pending<K>) -> bool) {
    for p in take_out(flights, doomed) {
        p.invalidated.store(true, Ordering::Release);
    }
}

/// Loads counted for [`Cache::stats`] (when the builder asked for them).
#[derive(Debug, Default)]
pub(crate) struct LoadStats {
    successes: AtomicU64,
    failures: AtomicU64,
    nanos: AtomicU64,
}

impl LoadStats {
    /// Counts one load that started at `started`; `ok` if it returned a value.
    fn count(&self, started: Instant, ok: bool) {
        let counter = if ok { &self.successes } else { &self.failures };
        counter.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The load counts, as stats with no reads.
    pub(crate) fn snapshot(&self) -> CacheStats {
        CacheStats {
            load_successes: self.successes.load(Ordering::Relaxed),
            load_failures: self.failures.load(Ordering::Relaxed),
            total_load_time: Duration::from_nanos(self.nanos.load(Ordering::Relaxed)),
            ..CacheStats::default()
        }
    }
}

/// Times one load for [`LoadStats`], if they are kept. Dropped without
/// [`finish`](Self::finish), as when the load panics or its future is dropped midway, it counts
/// the load as failed.
struct LoadTimer<'a>(Option<(&'a LoadStats, Instant)>);

impl LoadTimer<'_> {
    /// Counts the load's result.
    fn finish<T, E>(mut self, result: &Result<T, E>) {
        if let Some((stats, started)) = self.0.take() {
            stats.count(started, result.is_ok());
        }
    }
}

impl Drop for LoadTimer<'_> {
    fn drop(&mut self) {
        if let Some((stats, started)) = self.0 {
            stats.count(started, false);
        }
    }
}

/// A caller's next step toward a key's value.
enum Step<V, E> {
    /// It is cached.
    Hit(V),
    /// Another caller is loading it: wait for its flight.
    Wait(Arc<Flight<V, E>>),
    /// This caller loads it; the flag says whether the key was removed meanwhile.
    Lead(Arc<Flight<V, E>>, Arc<AtomicBool>),
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
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
{
    /// Invalidates the loads of `key` in flight (see [`Pending::invalidated`]): called by a
    /// removal before it takes the shard's lock.
    pub(crate) fn invalidate_loads<Q>(&self, hash: u64, key: &Q)
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let flights = &self.flights[self.shard_index(hash)];
        invalidate(flights, |p| p.hash == hash && p.key.borrow() == key);
    }

    /// Invalidates every load in flight: called by a clear before it removes anything.
    pub(crate) fn invalidate_all_loads(&self) {
        for flights in &*self.flights {
            invalidate(flights, |_| true);
        }
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
    /// retry (one of them loading); nobody is left waiting. If another write gives the key a
    /// value while `load` runs (an [`insert`](Self::insert), a [`compute`](Self::compute)),
    /// that value stays and every caller gets it: the load does not overwrite it. If the key
    /// is [removed](Self::remove) (or the cache [cleared](Self::clear), or a
    /// [`compute`](Self::compute) answers [`Remove`](Compute::Remove)) while `load` runs, what
    /// it returns is not cached, as it may predate the removal, and callers from then on load
    /// afresh. A `load` that asks for its own key on its own thread (or a listener it sets off
    /// that does) loads it again, on its own, rather than wait for itself; one that waits for
    /// another thread that asks for it (or for another key whose load asks for this one)
    /// deadlocks, as it would with a lock.
    ///
    /// Callers share a load only if their loads have the same error type: this one's is
    /// [`Infallible`](std::convert::Infallible), and a
    /// [`try_get_or_insert_with`](Self::try_get_or_insert_with) caller with another error
    /// type missing the key at the same time runs its own load.
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
        infallible(self.load_blocking(Cow::<K>::Owned(key), || Ok(load())))
    }

    /// [`get_or_insert_with`](Self::get_or_insert_with) for a borrowed key (a `&str` for a
    /// `String` key): the key is cloned into an owned one only if it is loaded, not on a hit.
    ///
    /// # Examples
    ///
    /// ```
    /// let cache: shardkit_cache::Cache<String, usize> = shardkit_cache::Cache::new(100);
    /// assert_eq!(cache.get_or_insert_with_by_ref("user:42", || 7), 7);
    /// assert_eq!(cache.get("user:42"), Some(7));
    /// ```
    pub fn get_or_insert_with_by_ref<Q>(&self, key: &Q, load: impl FnOnce() -> V) -> V
    where
        K: Borrow<Q>,
        Q: ToOwned<Owned = K> + Hash + Eq + ?Sized,
    {
        infallible(self.load_blocking(Cow::Borrowed(key), || Ok(load())))
    }

    /// [`get_or_insert_with`](Self::get_or_insert_with) with a fallible `load`. Nothing is
    /// cached when it fails. Callers share a load only if their loads have the same error type
    /// `E`.
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
        self.load_blocking(Cow::<K>::Owned(key), load)
    }

    /// [`try_get_or_insert_with`](Self::try_get_or_insert_with) for a borrowed key, cloned
    /// into an owned one only if it is loaded.
    ///
    /// # Errors
    ///
    /// As [`try_get_or_insert_with`](Self::try_get_or_insert_with).
    pub fn try_get_or_insert_with_by_ref<Q, E>(
        &self,
        key: &Q,
        load: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, Arc<E>>
    where
        K: Borrow<Q>,
        Q: ToOwned<Owned = K> + Hash + Eq + ?Sized,
        E: Send + Sync + 'static,
    {
        self.load_blocking(Cow::Borrowed(key), load)
    }

    /// The blocking loads, for an owned or a borrowed key.
    fn load_blocking<Q, E>(
        &self,
        key: Cow<'_, Q>,
        load: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, Arc<E>>
    where
        K: Borrow<Q>,
        Q: ToOwned<Owned = K> + Hash + Eq + ?Sized,
        E: Send + Sync + 'static,
    {
        let hash = self.hash(&*key);
        let mut load = Some(load);
        loop {
            let (flight, invalidated) = match self.step::<Q, E>(hash, &key, true) {
                Step::Hit(v) => return Ok(v),
                Step::Wait(flight) => match outcome(flight.wait()) {
                    Some(result) => return result,
                    None => continue,
                },
                Step::Lead(flight, invalidated) => (flight, invalidated),
            };
            let (leader, deregister) = match self.lead(hash, &*key, &flight) {
                Ok(guards) => guards,
                Err(cached) => return cached,
            };
            let load = load.take().expect("a caller leads at most one flight");
            let timer = self.load_timer();
            let loaded = load();
            timer.finish(&loaded);
            return self.land(key.into_owned(), loaded, &invalidated, leader, deregister);
        }
    }

    /// [`get_or_insert_with`](Self::get_or_insert_with) with an asynchronous `load`, on any
    /// runtime. Waiting callers yield instead of blocking. If the loading caller's future is
    /// dropped before it finishes (a timeout, a cancelled task), the waiters retry, one of them
    /// loading. A loading future that is kept but no longer polled holds its waiters until it
    /// is dropped, so drop futures you stop driving. A load that asks for its own key (from
    /// its own polls, with this call or the blocking one) loads it again rather than wait for
    /// itself; a waiting caller's future dropped early leaves nothing behind.
    #[cfg(feature = "async")]
    #[cfg_attr(docsrs, doc(cfg(feature = "async")))]
    pub async fn get_or_insert_async(&self, key: K, load: impl Future<Output = V>) -> V {
        infallible(
            self.load_async(Cow::<K>::Owned(key), async { Ok(load.await) })
                .await,
        )
    }

    /// [`get_or_insert_async`](Self::get_or_insert_async) for a borrowed key, cloned into an
    /// owned one only if it is loaded.
    #[cfg(feature = "async")]
    #[cfg_attr(docsrs, doc(cfg(feature = "async")))]
    pub async fn get_or_insert_async_by_ref<Q>(&self, key: &Q, load: impl Future<Output = V>) -> V
    where
        K: Borrow<Q>,
        Q: ToOwned<Owned = K> + Hash + Eq + ?Sized,
    {
        infallible(
            self.load_async(Cow::Borrowed(key), async { Ok(load.await) })
                .await,
        )
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
        self.load_async(Cow::<K>::Owned(key), load).await
    }

    /// [`try_get_or_insert_async`](Self::try_get_or_insert_async) for a borrowed key, cloned
    /// into an owned one only if it is loaded.
    ///
    /// # Errors
    ///
    /// As [`try_get_or_insert_with`](Self::try_get_or_insert_with).
    #[cfg(feature = "async")]
    #[cfg_attr(docsrs, doc(cfg(feature = "async")))]
    pub async fn try_get_or_insert_async_by_ref<Q, E>(
        &self,
        key: &Q,
        load: impl Future<Output = Result<V, E>>,
    ) -> Result<V, Arc<E>>
    where
        K: Borrow<Q>,
        Q: ToOwned<Owned = K> + Hash + Eq + ?Sized,
        E: Send + Sync + 'static,
    {
        self.load_async(Cow::Borrowed(key), load).await
    }

    /// The asynchronous loads, for an owned or a borrowed key.
    #[cfg(feature = "async")]
    async fn load_async<Q, E>(
        &self,
        key: Cow<'_, Q>,
        load: impl Future<Output = Result<V, E>>,
    ) -> Result<V, Arc<E>>
    where
        K: Borrow<Q>,
        Q: ToOwned<Owned = K> + Hash + Eq + ?Sized,
        E: Send + Sync + 'static,
    {
        let hash = self.hash(&*key);
        let mut load = Some(load);
        loop {
            let (flight, invalidated) = match self.step::<Q, E>(hash, &key, false) {
                Step::Hit(v) => return Ok(v),
                Step::Wait(flight) => match outcome(flight.landed().await) {
                    Some(result) => return result,
                    None => continue,
                },
                Step::Lead(flight, invalidated) => (flight, invalidated),
            };
            let (leader, deregister) = match self.lead(hash, &*key, &flight) {
                Ok(guards) => guards,
                Err(cached) => return cached,
            };
            let load = load.take().expect("a caller leads at most one flight");
            let timer = self.load_timer();
            let loaded = polled_as(Arc::clone(&flight) as _, load).await;
            timer.finish(&loaded);
            return self.land(key.into_owned(), loaded, &invalidated, leader, deregister);
        }
    }

    /// Times a load, if loads are counted (no clock read otherwise).
    fn load_timer(&self) -> LoadTimer<'_> {
        LoadTimer(self.loads.as_ref().map(|stats| (stats, Instant::now())))
    }

    /// The cached value, or else joins `key`'s flight, or else starts one. A flight of another
    /// error type for the key is left alone (this caller loads on its own), and so is a flight
    /// whose blocking leader is this thread, or whose asynchronous load this thread is polling:
    /// the caller is then inside that load (or a listener it set off, or an executor it blocks
    /// on), and waiting would wait for itself for ever; it loads the key again instead. A
    /// caller that `blocks` is marked as its flight's leader by its thread.
    fn step<Q, E>(&self, hash: u64, key: &Q, blocks: bool) -> Step<V, E>
    where
        K: Borrow<Q>,
        Q: ToOwned<Owned = K> + Hash + Eq + ?Sized,
        E: Send + Sync + 'static,
    {
        if let Some(v) = self.get_hashed(hash, key) {
            return Step::Hit(v);
        }
        let this_thread = std::thread::current().id();
        let mut pending = self.flights[self.shard_index(hash)].lock();
        let joined = pending
            .iter()
            .filter(|p| p.hash == hash && p.key.borrow() == key && p.flight.is::<Flight<V, E>>())
            .find(|p| p.blocking_leader != Some(this_thread) && !polling_here(&p.flight))
            .and_then(|p| Arc::clone(&p.flight).downcast::<Flight<V, E>>().ok());
        if let Some(flight) = joined {
            return Step::Wait(flight);
        }
        let flight = Arc::new(Flight::new());
        let invalidated = Arc::new(AtomicBool::new(false));
        pending.push(Pending {
            hash,
            key: key.to_owned(),
            flight: Arc::clone(&flight) as Arc<dyn Any + Send + Sync>,
            invalidated: Arc::clone(&invalidated),
            blocking_leader: blocks.then_some(this_thread),
        });
        Step::Lead(flight, invalidated)
    }

    /// The guards of a leader: whatever happens to it, its flight lands and leaves `pending`
    /// (drops run in reverse, so it leaves `pending` first). Unless the key was written since
    /// this caller's miss: the flight then lands at once with that value, as it is cached, and
    /// that is the caller's answer (`Err`). Put again, it would start a new lifetime, or come
    /// back after expiring or being evicted or removed meanwhile, with no load to justify it.
    #[allow(clippy::type_complexity)] // the guards, or the answer
    fn lead<'a, Q, E>(
        &'a self,
        hash: u64,
        key: &Q,
        flight: &'a Arc<Flight<V, E>>,
    ) -> Result<(Leader<'a, V, E>, Deregister<'a, K>), Result<V, Arc<E>>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        E: Send + Sync + 'static,
    {
        let leader = Leader::new(flight);
        let deregister = Deregister {
            flights: &self.flights[self.shard_index(hash)],
            flight: Arc::clone(flight) as Arc<dyn Any + Send + Sync>,
        };
        match self.peek_value(hash, key) {
            Some(v) => Err(finish(Landing::Loaded(v), leader, deregister)),
            None => Ok((leader, deregister)),
        }
    }

    /// Caches what the leader loaded (unless the key was removed meanwhile: `invalidated`),
    /// then lands its flight with it.
    fn land<E>(
        &self,
        key: K,
        loaded: Result<V, E>,
        invalidated: &AtomicBool,
        leader: Leader<'_, V, E>,
        deregister: Deregister<'_, K>,
    ) -> Result<V, Arc<E>> {
        let finish = |landing| finish(landing, leader, deregister);
        match loaded {
            // Cached only if the key is still absent. A value written while the load ran (an
            // `insert`, a `compute`) stays, and is what the callers get: overwriting it would
            // lose that write (a counter's increment, say). The flight lands before the
            // listener hears of what the write evicted (see `compute_then`).
            // A removal sets `invalidated` before it takes the shard's lock to remove, and the
            // flag is read under that lock as the value is put: either the put comes first
            // (and the removal then removes it) or the value is not cached.
            Ok(v) => self.compute_then(
                key,
                |current| match current {
                    Some(_) => Compute::Keep,
                    None => Compute::Put(v.clone()),
                },
                || !invalidated.load(Ordering::Acquire),
                |cached| {
                    let cached = cached.expect("compute returns the value it put or kept");
                    finish(Landing::Loaded(cached))
                },
            ),
            Err(e) => finish(Landing::Failed(Arc::new(e))),
        }
    }
}

/// Lands a leader's flight with `landing` (after taking it out of the pending list, so a caller
/// arriving after the landing starts a flight of its own), and gives the leader the result.
fn finish<V: Clone, E>(
    landing: Landing<V, E>,
    leader: Leader<'_, V, E>,
    deregister: Deregister<'_, impl Sized>,
) -> Result<V, Arc<E>> {
    drop(deregister);
    let result = match &landing {
        Landing::Loaded(v) => Ok(v.clone()),
        Landing::Failed(e) => Err(Arc::clone(e)),
        Landing::Abandoned => unreachable!("a leader lands what it loaded"),
    };
    leader.land(landing);
    result
}

/// The value of a load that cannot fail.
fn infallible<V>(result: Result<V, Arc<std::convert::Infallible>>) -> V {
    match result {
        Ok(v) => v,
        Err(e) => match *e {},
    }
}
