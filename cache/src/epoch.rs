//! Epoch-based reclamation whose pins cost a reader no fence instruction and no atomic
//! read-modify-write (where `membarrier(2)` is available).
//!
//! An entry or table the cache unlinks may still be in use by a reader that loaded it, so it is
//! freed only once every thread pinned at the time has unpinned. This is the scheme of
//! crossbeam-epoch (Fraser's epochs: a thread pins by publishing the global epoch it saw; the
//! epoch advances once every pinned thread has seen it; what was unlinked before an advance
//! from epoch `e` is freed once the epoch reaches `e + 2`), with one change where readers pay:
//! crossbeam's pin orders its published epoch before the reader's loads with a full fence (a
//! locked compare-and-swap on x86), which measured a third of a cache hit's time
//! (`cache-profile shardkit hits`: 51 against 71 million gets per second on one thread, 64
//! against 97 on two, with and without it). Here the fence is asymmetric: a reader's pin is a
//! plain store and a compiler fence, and the rare thread advancing the epoch issues
//! `membarrier(2)` (`MEMBARRIER_CMD_PRIVATE_EXPEDITED`), which makes every running thread of
//! the process execute a full barrier before it returns, the design of Linux's membarrier-based
//! RCU and of folly's asymmetric fences. Deferred work is sealed with an epoch by the advance
//! that follows its hand-over, before that advance's barrier, so that it is known to have been
//! unlinked before the barrier (see `Collector::try_advance` for the argument). Where
//! `membarrier` is missing (other systems, old kernels, or a refused registration), both
//! sides use full fences, as crossbeam does; the loom models check the scheme in that form.
//!
//! A thread's deferred work gathers in its bag (up to 64 entries' worth) before it is handed
//! over; reclaiming is done by writers, after their write, unpinned and outside every lock
//! ([`collect`]), never by readers: a hit never frees, so it never runs a user's destructor.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicBool, AtomicUsize, Mutex, fence, lock};

/// Work deferred until no pinned thread can hold what it frees.
type Deferred = Box<dyn FnOnce() + Send>;

/// Units of deferred work (entries, or a table as many) after which a [`collect`] advances the
/// epoch. Each advance is a `membarrier` call, which interrupts every other running thread of
/// the process (a microsecond or two on each), so it is spread over many retirements; what
/// waits meanwhile is about three advances' worth of entries (it is sealed at the next
/// advance, and freed two later), plus what threads hold in their bags. Under loom, small, so
/// the models reach the advances and hand-overs the cache makes.
#[cfg(not(shardkit_loom))]
pub(crate) const ADVANCE_AFTER: usize = 1024;
#[cfg(shardkit_loom)]
pub(crate) const ADVANCE_AFTER: usize = 2;

/// Deferred functions, or units, a thread gathers before it hands them to the collector (a
/// lock): a shard of fewer than 128 entries defers each entry it evicts on its own.
#[cfg(not(shardkit_loom))]
const BAG: usize = 64;
#[cfg(shardkit_loom)]
const BAG: usize = 2;

/// Deferred work handed to the collector: not yet sealed, and sealed with an epoch.
#[derive(Default)]
struct Garbage {
    /// Handed over since the last advance began.
    unsealed: Vec<Deferred>,
    /// Sealed by an advance with the epoch it left: everything in it was unlinked before that
    /// advance's barrier, so it is freed once the epoch is two past the seal.
    sealed: Vec<(usize, Deferred)>,
}

impl Garbage {
    fn is_empty(&self) -> bool {
        self.unsealed.is_empty() && self.sealed.is_empty()
    }
}

/// A thread's published state: 0 when not pinned, else `epoch << 1 | 1`.
#[derive(Debug, Default)]
struct Slot {
    /// Padded: its thread writes it on every pin, and no other thread should pay for that.
    state: CachePadded<AtomicUsize>,
    /// Held by a live thread; a slot let go is reused by the next thread to register.
    taken: AtomicBool,
}

/// The process's (under loom: the model execution's) epoch, registered threads and deferred
/// work.
pub(crate) struct Collector {
    epoch: CachePadded<AtomicUsize>,
    /// Whether `membarrier` is registered for this process: pins then use only a compiler
    /// fence. Fixed when the collector is created, before any thread pins with it.
    asymmetric: bool,
    /// Every thread's slot. Locked to register and to advance the epoch, so advances are
    /// serialised and the epoch never moves back.
    slots: CachePadded<Mutex<Vec<Arc<Slot>>>>,
    /// Deferred work.
    garbage: CachePadded<Mutex<Garbage>>,
    /// Units deferred toward the next advance.
    waiting: CachePadded<AtomicUsize>,
    /// The units waiting at which a collection next tries to advance: [`ADVANCE_AFTER`], or,
    /// after an advance a pinned thread stopped, [`ADVANCE_AFTER`] more than were waiting
    /// then. A thread pinned for long (a slow eviction listener) so costs a scan of the slots,
    /// under their lock, per [`ADVANCE_AFTER`] units handed over, not one per write.
    next_try: CachePadded<AtomicUsize>,
    /// Advances tried, for tests.
    #[cfg(test)]
    tries: std::sync::atomic::AtomicUsize,
    /// The epoch at the last look for freeable work: until the epoch moves past it, there is
    /// none, and a collection costs two loads.
    collected: CachePadded<AtomicUsize>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("epoch", &self.epoch.load(Ordering::Relaxed))
            .field("asymmetric", &self.asymmetric)
            .finish_non_exhaustive()
    }
}

impl Collector {
    fn new() -> Self {
        Self {
            epoch: CachePadded::new(AtomicUsize::new(0)),
            asymmetric: barrier::register(),
            slots: CachePadded::new(Mutex::new(Vec::new())),
            garbage: CachePadded::new(Mutex::new(Garbage::default())),
            waiting: CachePadded::new(AtomicUsize::new(0)),
            next_try: CachePadded::new(AtomicUsize::new(ADVANCE_AFTER)),
            #[cfg(test)]
            tries: std::sync::atomic::AtomicUsize::new(0),
            collected: CachePadded::new(AtomicUsize::new(0)),
        }
    }

    fn register(&self) -> Arc<Slot> {
        let mut slots = lock(&self.slots);
        let free = slots.iter().find(|s| {
            s.taken
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        });
        if let Some(slot) = free {
            return slot.clone();
        }
        let slot = Arc::new(Slot::default());
        slot.taken.store(true, Ordering::Relaxed);
        slots.push(slot.clone());
        slot
    }

    /// The reader's half of the fence pair.
    #[inline]
    fn light(&self) {
        if self.asymmetric {
            std::sync::atomic::compiler_fence(Ordering::SeqCst);
        } else {
            fence(Ordering::SeqCst);
        }
    }

    /// The advancing thread's half: a full barrier on every running thread of the process.
    /// False if that could not be had: readers pinned with only a compiler fence, and
    /// `membarrier` failed after it was registered (it is not expected to). The epoch must
    /// not advance then: garbage waits, rather than risk being freed under a reader.
    fn heavy(&self) -> bool {
        fence(Ordering::SeqCst);
        !self.asymmetric || barrier::all_threads()
    }

    /// Takes a thread's deferred functions (`units` entries' worth, toward the next advance
    /// of the epoch): each runs once every thread pinned now has unpinned.
    fn push_bag(&self, bag: Vec<Deferred>, units: usize) {
        // Unsealed: the next advance seals it, under this lock, so what the bag frees was
        // unlinked before that advance's barrier.
        lock(&self.garbage).unsealed.extend(bag);
        self.waiting.fetch_add(units, Ordering::Relaxed);
    }

    /// Advances the epoch if every pinned thread has seen the current one; the epoch after.
    ///
    /// Why a reader cannot lose what it loaded: what an advance seals with epoch `e` was
    /// unlinked before the advance's barrier, which every thread of the process executes at
    /// some point of its program. A reader whose pin comes after that point loads after it
    /// too, so it sees the unlink and cannot load what was sealed. A reader whose pin came
    /// before it published its epoch before the barrier, so the scan after the barrier sees
    /// it: pinned in an older epoch, it stops this advance; pinned in `e`, it stops the next
    /// one, and sealed work is freed only two advances on, so after it unpinned. (Sealing at
    /// the advance, not at the hand-over, is what makes "unlinked before the barrier" hold: a
    /// hand-over that reads the epoch while an advance is under way may see it already
    /// moved, and loads may pass loads on weakly ordered processors.)
    fn try_advance(&self) -> usize {
        #[cfg(test)]
        self.tries
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let slots = lock(&self.slots);
        let epoch = self.epoch.load(Ordering::Relaxed);
        let pinned = (epoch << 1) | 1;
        let lagging = |slots: &[Arc<Slot>]| {
            slots.iter().any(|s| {
                let state = s.state.load(Ordering::Relaxed);
                state & 1 == 1 && state != pinned
            })
        };
        // A thread pinned in an older epoch stops the advance in any case: seen before the
        // barrier, it saves the `membarrier` (a stale view only makes this advance wait).
        if lagging(&slots) {
            return epoch;
        }
        {
            let mut garbage = lock(&self.garbage);
            let sealed = std::mem::take(&mut garbage.unsealed);
            garbage
                .sealed
                .extend(sealed.into_iter().map(|f| (epoch, f)));
        }
        if !self.heavy() || lagging(&slots) {
            return epoch;
        }
        // Synchronises with the unpins (release stores) of the threads seen unpinned, so their
        // reads happen before anything freed because of this advance (collectors load the
        // epoch with acquire).
        fence(Ordering::Acquire);
        self.epoch.store(epoch + 1, Ordering::Release);
        self.next_try.store(ADVANCE_AFTER, Ordering::Relaxed);
        epoch + 1
    }

    /// Advances the epoch for the work waiting, unless another writer just took it on; the
    /// epoch after. If the epoch cannot move (a thread is still pinned in the previous one),
    /// the work stays counted, and a collection tries again once [`ADVANCE_AFTER`] more units
    /// wait (see `next_try`).
    fn advance_for_waiting(&self) -> usize {
        let taken = self.waiting.swap(0, Ordering::Relaxed);
        let epoch = self.epoch.load(Ordering::Acquire);
        if taken < self.next_try.load(Ordering::Relaxed) {
            self.waiting.fetch_add(taken, Ordering::Relaxed);
            return epoch;
        }
        let after = self.try_advance();
        if after == epoch {
            self.waiting.fetch_add(taken, Ordering::Relaxed);
            self.next_try
                .store(taken.saturating_add(ADVANCE_AFTER), Ordering::Relaxed);
        }
        after
    }

    /// See [`collect`]. Most calls find nothing to do, in three loads.
    #[inline]
    fn collect(&self, force: bool) {
        if force
            || self.waiting.load(Ordering::Relaxed) >= self.next_try.load(Ordering::Relaxed)
            || self.collected.load(Ordering::Relaxed) != self.epoch.load(Ordering::Relaxed)
        {
            self.collect_slow(force);
        }
    }

    /// Advances the epoch if enough work waits (with `force`: three times, so that what was
    /// handed over before the call is freed if no thread is pinned), then runs the work that
    /// no pinned thread can still need, outside every lock: it drops users' keys and values.
    /// If one panics, the rest still run and the first panic is resumed after them.
    #[cold]
    #[inline(never)]
    fn collect_slow(&self, force: bool) {
        let epoch = if force {
            if lock(&self.garbage).is_empty() {
                return;
            }
            // Seals what waits, then frees it: three advances if no thread is pinned.
            let mut epoch = 0;
            for _ in 0..3 {
                epoch = self.try_advance();
            }
            epoch
        } else if self.waiting.load(Ordering::Relaxed) >= self.next_try.load(Ordering::Relaxed) {
            self.advance_for_waiting()
        } else {
            // Acquire: synchronises with the advance that stored it (see `try_advance`).
            self.epoch.load(Ordering::Acquire)
        };
        if !force && self.collected.load(Ordering::Relaxed) == epoch {
            return;
        }
        let ready: Vec<(usize, Deferred)> = {
            let mut garbage = lock(&self.garbage);
            self.collected.fetch_max(epoch, Ordering::Relaxed);
            let (ready, kept) = std::mem::take(&mut garbage.sealed)
                .into_iter()
                .partition(|(sealed, _)| sealed + 2 <= epoch);
            garbage.sealed = kept;
            ready
        };
        let mut panic: Option<Box<dyn Any + Send>> = None;
        for (_, f) in ready {
            if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
                panic.get_or_insert(p);
            }
        }
        if let Some(p) = panic {
            resume_unwind(p);
        }
    }
}

/// `membarrier(2)`, where the system has it.
#[cfg(all(target_os = "linux", not(shardkit_loom)))]
mod barrier {
    use rustix::thread::{MembarrierCommand, membarrier};

    /// Registers the process for private expedited barriers; whether it may use them. One
    /// barrier is issued too: a kernel or seccomp filter that accepts the registration but
    /// refuses the barrier would otherwise leave readers pinning without fences and every
    /// advance failing, so that nothing would ever be freed.
    pub(super) fn register() -> bool {
        membarrier(MembarrierCommand::RegisterPrivateExpedited).is_ok() && all_threads()
    }

    /// A full barrier on every running thread of the process; false if the call failed.
    pub(super) fn all_threads() -> bool {
        membarrier(MembarrierCommand::PrivateExpedited).is_ok()
    }
}

/// No process-wide barrier: both sides fence (under loom, the models check the scheme with
/// those full fences, which the asymmetric pair stands in for).
#[cfg(not(all(target_os = "linux", not(shardkit_loom))))]
mod barrier {
    pub(super) fn register() -> bool {
        false
    }

    pub(super) fn all_threads() -> bool {
        false
    }
}

/// A thread's registration: its slot, how deeply it is pinned, and what it deferred and has
/// not handed to the collector yet.
pub(crate) struct Local {
    collector: &'static Collector,
    slot: Arc<Slot>,
    depth: Cell<usize>,
    bag: RefCell<Vec<Deferred>>,
    bag_units: Cell<usize>,
    /// Threads are numbered in the order they first use a cache (read, write or drop one).
    thread: usize,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local")
            .field("depth", &self.depth.get())
            .field("thread", &self.thread)
            .finish_non_exhaustive()
    }
}

impl Local {
    fn new() -> Self {
        Self::registered_with(collector())
    }

    fn registered_with(collector: &'static Collector) -> Self {
        Self {
            collector,
            slot: collector.register(),
            depth: Cell::new(0),
            bag: RefCell::new(Vec::new()),
            bag_units: Cell::new(0),
            thread: next_thread(),
        }
    }

    fn defer(&self, units: usize, f: Deferred) {
        let full = {
            let mut bag = self.bag.borrow_mut();
            bag.push(f);
            self.bag_units.set(self.bag_units.get() + units);
            bag.len() >= BAG || self.bag_units.get() >= BAG
        };
        if full {
            self.hand_over();
        }
    }

    /// Hands the bag to the collector.
    fn hand_over(&self) {
        let bag = std::mem::take(&mut *self.bag.borrow_mut());
        if !bag.is_empty() {
            self.collector.push_bag(bag, self.bag_units.replace(0));
        }
    }

    #[inline]
    fn enter(&self) {
        let depth = self.depth.get();
        if depth == 0 {
            let epoch = self.collector.epoch.load(Ordering::Relaxed);
            // Release, which is a plain store on x86 (and no fence on ARM): formally, an advance
            // that reads this pin but not the unpin before it must still synchronise with the
            // reads this thread made while pinned earlier.
            self.slot.state.store((epoch << 1) | 1, Ordering::Release);
            self.collector.light();
        }
        self.depth.set(depth + 1);
    }

    #[inline]
    fn leave(&self) {
        let depth = self.depth.get() - 1;
        self.depth.set(depth);
        if depth == 0 {
            // Release: this thread's reads of what it loaded happen before an advance that
            // sees it unpinned.
            self.slot.state.store(0, Ordering::Release);
        }
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        // A registration is dropped unpinned (a pin borrows it, and lives within one cache
        // call), so its last unpin has cleared the slot's state already. The slot is given up
        // with a release store, which the next owner's acquiring claim pairs with: that clear
        // then comes before the next owner's pin. A store that could land after the pin (a
        // second clear here, after giving the slot up, or the slot given up with a relaxed
        // store) would leave the next owner pinned unseen, and an advance would free what it
        // reads: the loom model
        // `loom_an_exiting_threads_last_stores_never_unpin_the_next_owner_of_its_slot` fails
        // either way.
        debug_assert_eq!(self.depth.get(), 0, "a registration dropped while pinned");
        self.hand_over();
        self.slot.taken.store(false, Ordering::Release);
    }
}

/// Numbers threads in the order they first use a cache.
#[cfg(not(shardkit_loom))]
fn next_thread() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[cfg(shardkit_loom)]
loom::lazy_static! {
    /// Thread numbers per execution, so each execution gives a thread the same stripe. (Std's
    /// atomic: numbering is not part of any protocol the models check.)
    static ref NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
}

/// Numbers threads in the order they first use a cache, in this model execution.
#[cfg(shardkit_loom)]
fn next_thread() -> usize {
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[cfg(not(shardkit_loom))]
fn collector() -> &'static Collector {
    static COLLECTOR: std::sync::OnceLock<Collector> = std::sync::OnceLock::new();
    COLLECTOR.get_or_init(Collector::new)
}

#[cfg(not(shardkit_loom))]
std::thread_local! {
    static LOCAL: Local = Local::new();
}

#[cfg(shardkit_loom)]
loom::lazy_static! {
    /// A collector per loom execution.
    static ref COLLECTOR: Collector = Collector::new();
}

#[cfg(shardkit_loom)]
fn collector() -> &'static Collector {
    &COLLECTOR
}

#[cfg(shardkit_loom)]
loom::thread_local! {
    static LOCAL: Local = Local::new();
}

/// This thread pinned: what it loads from the cache's tables stays allocated until the pin is
/// dropped. Pins nest. Its [`guard`](Self::guard) is crossbeam-epoch's unprotected guard,
/// which only types the loads of the tables' `crossbeam_epoch::Atomic` pointers: the
/// protection is this pin's. The tables take a `&Pin`, not a guard, so no load can go
/// unpinned; nothing may be deferred through that guard (`clippy.toml` forbids it).
#[derive(Debug)]
pub(crate) struct Pin {
    local: NonNull<Local>,
    /// A registration made for this pin alone (the thread's own is gone: it is exiting).
    owned: bool,
    /// Not `Send`: it is the pinning thread's state.
    _thread: PhantomData<*mut ()>,
}

/// Pins the current thread.
#[inline]
pub(crate) fn pin() -> Pin {
    match LOCAL.try_with(|local| {
        local.enter();
        NonNull::from(local)
    }) {
        Ok(local) => Pin {
            local,
            owned: false,
            _thread: PhantomData,
        },
        Err(_) => pin_exiting(),
    }
}

/// Pins with a registration of its own: the thread's is gone (it is exiting, and a destructor
/// uses a cache). Kept out of line so every pin does not carry it.
#[cold]
#[inline(never)]
fn pin_exiting() -> Pin {
    let local = Box::new(Local::new());
    local.enter();
    Pin {
        local: NonNull::from(Box::leak(local)),
        owned: true,
        _thread: PhantomData,
    }
}

impl Pin {
    #[inline]
    fn local(&self) -> &Local {
        // SAFETY: `local` is this thread's registration, which outlives the pin: the thread's
        // own lives until the thread exits (a pin is never kept past the cache call that took
        // it, and is not `Send`), and an owned one is freed only by this pin's drop.
        unsafe { self.local.as_ref() }
    }

    /// The guard the tables' `crossbeam_epoch::Atomic` loads take, borrowed from this pin:
    /// crossbeam-epoch's unprotected guard, as a lifetime token (see the type's docs).
    #[inline]
    pub(crate) fn guard(&self) -> &crossbeam_epoch::Guard {
        // SAFETY: `unprotected` is unsafe because its guard protects nothing, so what is loaded
        // under it may be freed meanwhile. Here it is only a lifetime token for the loads (see
        // the type's docs): what they load stays allocated because this pin is held (the
        // epochs free nothing a pinned thread may have loaded), and nothing is deferred
        // through the guard.
        unsafe { crossbeam_epoch::unprotected() }
    }

    #[cold]
    #[inline(never)]
    fn free_owned(&mut self) {
        // SAFETY: made by `Box::leak` in `pin_exiting` for this pin alone, and no longer used.
        drop(unsafe { Box::from_raw(self.local.as_ptr()) });
    }

    /// The pinning thread's number (see [`Local`]).
    #[inline]
    pub(crate) fn thread(&self) -> usize {
        self.local().thread
    }

    /// Runs `f` once no thread pinned now can still hold what it frees (`units` entries'
    /// worth). It runs in a later [`collect`], outside the caller's locks. Out of line: it is
    /// called at most once per batch of entries, from the policy's eviction loop.
    #[inline(never)]
    pub(crate) fn defer(&self, units: usize, f: impl FnOnce() + Send + 'static) {
        self.local().defer(units, Box::new(f));
    }

    /// Drops the `Box` at `ptr` once no thread pinned now can still hold it (`units` entries'
    /// worth).
    ///
    /// # Safety
    ///
    /// `ptr` is a `Box`'s (from `Box::into_raw` or a `crossbeam_epoch::Owned`), no thread can
    /// reach it any more except through pointers loaded while pinned, and it is retired once.
    #[inline(never)]
    pub(crate) unsafe fn defer_drop<T: Send + 'static>(&self, units: usize, ptr: *mut T) {
        let retired = Retired(ptr);
        self.defer(units, move || retired.free());
    }
}

/// A `Box` on its way to being freed, on whichever thread collects it.
struct Retired<T>(*mut T);

// SAFETY: it owns its box (see `Pin::defer_drop`), so sending it sends a `T`.
unsafe impl<T: Send> Send for Retired<T> {}

impl<T> Retired<T> {
    fn free(self) {
        // SAFETY: a `Box`'s pointer, retired once, that no thread can hold any more: every
        // thread that could have loaded it has unpinned (see `Pin::defer_drop` and
        // `Collector::try_advance`).
        drop(unsafe { Box::from_raw(self.0) });
    }
}

impl Drop for Pin {
    #[inline]
    fn drop(&mut self) {
        self.local().leave();
        if self.owned {
            self.free_owned();
        }
    }
}

/// Frees what is safe to free, advancing the epoch if enough waits; with `force`, hands over
/// this thread's deferred work and advances the epoch three times if anything waits. Call
/// with no lock held and, best, unpinned (a thread pinned in an old epoch stops advances):
/// the deferred work drops users' keys and values, which may call back into a cache.
pub(crate) fn collect(force: bool) {
    if force {
        // This thread's bag (none if its registration is gone: the thread is exiting).
        let _ = LOCAL.try_with(Local::hand_over);
    }
    collector().collect(force);
}

#[cfg(all(test, not(shardkit_loom)))]
mod tests;

#[cfg(all(test, shardkit_loom))]
mod loom_models;
