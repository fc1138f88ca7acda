//! Epoch-based reclamation whose pins cost a reader no fence and no atomic read-modify-write.
//!
//! An entry or table the cache unlinks may still be in use by a reader that loaded it, so it is
//! freed only once every thread pinned at the time has unpinned. This is the scheme of
//! crossbeam-epoch (Fraser's epochs: a thread pins by publishing the global epoch it saw; the
//! epoch advances once every pinned thread has seen it; what was retired in epoch `e` is freed
//! once the epoch reaches `e + 2`), with one change where readers pay: crossbeam's pin orders
//! its published epoch before the reader's loads with a full fence (a locked
//! compare-and-swap on x86), which measured a third of a cache hit's time (`cache-profile
//! shardkit hits`: 51 against 71 million gets per second on one thread, 64 against 97 on two,
//! with and without it). Here the fence is asymmetric: a reader's pin is a plain store and a
//! compiler fence, and the rare thread advancing the epoch issues `membarrier(2)`
//! (`MEMBARRIER_CMD_PRIVATE_EXPEDITED`), which makes every running thread of the process
//! execute a full barrier before it returns. The pair orders like two full fences (the design
//! of Linux's membarrier-based RCU and of folly's asymmetric fences). Where `membarrier` is
//! missing (other systems, old kernels, or a refused registration), both sides use full
//! fences, as crossbeam does.
//!
//! Reclaiming is done by writers, after they release their shard's lock ([`collect`]), never
//! by readers: a hit never frees, so it never runs a user's destructor either.

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
/// waits meanwhile is at most about two advances' worth of entries.
pub(crate) const ADVANCE_AFTER: usize = 1024;

/// Deferred functions, or units, a thread gathers before it hands them to the collector (a
/// lock): a cache bounded by weight defers each entry it evicts on its own.
const BAG: usize = 64;

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
    /// Deferred work, with the epoch it was retired in.
    garbage: CachePadded<Mutex<Vec<(usize, Deferred)>>>,
    /// Units deferred toward the next advance.
    waiting: CachePadded<AtomicUsize>,
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
            garbage: CachePadded::new(Mutex::new(Vec::new())),
            waiting: CachePadded::new(AtomicUsize::new(0)),
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
        // Orders the unlinking of what the bag frees before the epoch is read: a thread that
        // pins in a later epoch cannot load it. (A bag is sealed with the epoch of its
        // hand-over, not of each deferral: never earlier, so at worst it waits longer.)
        fence(Ordering::SeqCst);
        let epoch = self.epoch.load(Ordering::Relaxed);
        lock(&self.garbage).extend(bag.into_iter().map(|f| (epoch, f)));
        self.waiting.fetch_add(units, Ordering::Relaxed);
    }

    /// Advances the epoch if every pinned thread has seen the current one; the epoch after.
    fn try_advance(&self) -> usize {
        let slots = lock(&self.slots);
        let epoch = self.epoch.load(Ordering::Relaxed);
        if !self.heavy() {
            return epoch;
        }
        let pinned = (epoch << 1) | 1;
        if slots.iter().any(|s| {
            let state = s.state.load(Ordering::Relaxed);
            state & 1 == 1 && state != pinned
        }) {
            return epoch;
        }
        // Synchronises with the unpins (release stores) of the threads seen unpinned, so their
        // reads happen before anything freed because of this advance.
        fence(Ordering::Acquire);
        self.epoch.store(epoch + 1, Ordering::Release);
        epoch + 1
    }

    /// Advances the epoch for the work waiting, unless another writer just took it on; the
    /// epoch after. If the epoch cannot move (a thread is still pinned in the previous one),
    /// the work stays counted, so the next collection tries again.
    fn advance_for_waiting(&self) -> usize {
        let taken = self.waiting.swap(0, Ordering::Relaxed);
        let epoch = self.epoch.load(Ordering::Relaxed);
        if taken < ADVANCE_AFTER {
            self.waiting.fetch_add(taken, Ordering::Relaxed);
            return epoch;
        }
        let after = self.try_advance();
        if after == epoch {
            self.waiting.fetch_add(taken, Ordering::Relaxed);
        }
        after
    }

    /// Advances the epoch if enough work waits (with `force`: twice, so that what was retired
    /// before the call is freed if no thread is pinned), then runs the work that no pinned
    /// thread can still need, outside every lock: it drops users' keys and values. If one
    /// panics, the rest still run and the first panic is resumed after them.
    #[cold]
    #[inline(never)]
    fn collect_slow(&self, force: bool) {
        let epoch = if force {
            self.try_advance();
            self.try_advance()
        } else if self.waiting.load(Ordering::Relaxed) >= ADVANCE_AFTER {
            self.advance_for_waiting()
        } else {
            self.epoch.load(Ordering::Relaxed)
        };
        if !force && self.collected.load(Ordering::Relaxed) == epoch {
            return;
        }
        let ready: Vec<Deferred> = {
            let mut garbage = lock(&self.garbage);
            self.collected.store(epoch, Ordering::Relaxed);
            if garbage.is_empty() {
                return;
            }
            let mut ready = Vec::new();
            let mut kept = Vec::with_capacity(garbage.len());
            for (retired, f) in garbage.drain(..) {
                if retired + 2 <= epoch {
                    ready.push(f);
                } else {
                    kept.push((retired, f));
                }
            }
            *garbage = kept;
            ready
        };
        let mut panic: Option<Box<dyn Any + Send>> = None;
        for f in ready {
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

    /// Registers the process for private expedited barriers; whether it may use them.
    pub(super) fn register() -> bool {
        membarrier(MembarrierCommand::RegisterPrivateExpedited).is_ok()
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
        let collector = collector();
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
            self.slot.state.store((epoch << 1) | 1, Ordering::Relaxed);
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
        self.hand_over();
        self.slot.state.store(0, Ordering::Release);
        self.slot.taken.store(false, Ordering::Release);
    }
}

/// Numbers threads in the order they first use a cache.
fn next_thread() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
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
/// dropped. Pins nest. It dereferences to crossbeam-epoch's unprotected guard, which only
/// types the loads of the tables' `crossbeam_epoch::Atomic` pointers: the protection is this
/// pin's, and nothing may be deferred through that guard (`clippy.toml` forbids it).
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

    /// The pinning thread's number (see [`Local`]).
    #[inline]
    pub(crate) fn thread(&self) -> usize {
        self.local().thread
    }

    /// Runs `f` once no thread pinned now can still hold what it frees (`units` entries'
    /// worth). It runs in a later [`collect`], outside the caller's locks. Out of line: it is
    /// called once per batch of entries, from the policy's eviction loop, which it would
    /// otherwise crowd (measured: inlined, it cost each evicting insert 60 instructions).
    #[inline(never)]
    pub(crate) fn defer(&self, units: usize, f: impl FnOnce() + Send + 'static) {
        self.local().defer(units, Box::new(f));
    }

    /// [`collect`], through this thread's registration. Call with no lock held.
    #[inline]
    pub(crate) fn collect(&self) {
        self.local().collector.collect(false);
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
        // thread pinned when it was retired has unpinned (see `Pin::defer_drop`).
        drop(unsafe { Box::from_raw(self.0) });
    }
}

impl std::ops::Deref for Pin {
    type Target = crossbeam_epoch::Guard;

    fn deref(&self) -> &crossbeam_epoch::Guard {
        // SAFETY: the unprotected guard only types loads here (see the type's docs); what they
        // load is kept alive by this pin, and the guard's own deferral is never used.
        unsafe { crossbeam_epoch::unprotected() }
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

impl Pin {
    #[cold]
    #[inline(never)]
    fn free_owned(&mut self) {
        // SAFETY: made by `Box::leak` in `pin_exiting` for this pin alone, and no longer used.
        drop(unsafe { Box::from_raw(self.local.as_ptr()) });
    }
}

/// Frees what is safe to free, advancing the epoch if enough waits; with `force`, hands over
/// this thread's deferred work and advances the epoch twice in any case. Call with no lock
/// held: the deferred work drops users' keys and values.
pub(crate) fn collect(force: bool) {
    if force {
        // Through a pin, the one way to this thread's registration (it costs a store and a
        // fence; the thread is not pinned for the collection itself).
        pin().local().hand_over();
    }
    collector().collect(force);
}

impl Collector {
    /// See [`collect`]. Most calls find nothing to do, in three loads.
    #[inline]
    fn collect(&self, force: bool) {
        if force
            || self.waiting.load(Ordering::Relaxed) >= ADVANCE_AFTER
            || self.collected.load(Ordering::Relaxed) != self.epoch.load(Ordering::Relaxed)
        {
            self.collect_slow(force);
        }
    }
}

#[cfg(all(test, not(shardkit_loom)))]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Deferred work waits for every pin taken before it, on any thread, and no longer.
    #[test]
    fn deferred_work_waits_for_earlier_pins_only() {
        let ran = Arc::new(AtomicUsize::new(0));
        let (pinned, release) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
        std::thread::scope(|s| {
            s.spawn(|| {
                let _pin = pin();
                pinned.wait();
                release.wait();
            });
            pinned.wait();
            let counted = ran.clone();
            pin().defer(1, move || {
                counted.fetch_add(1, Ordering::SeqCst);
            });
            for _ in 0..4 {
                collect(true);
            }
            assert_eq!(ran.load(Ordering::SeqCst), 0, "freed under an earlier pin");
            release.wait();
        });
        // Other tests' threads may be pinned for a moment: retry, as a writer would.
        for _ in 0..10_000 {
            collect(true);
            if ran.load(Ordering::SeqCst) == 1 {
                break;
            }
            std::thread::yield_now();
        }
        assert_eq!(ran.load(Ordering::SeqCst), 1, "never freed once unpinned");
    }

    /// A pin taken inside another is the same pin: the thread stays pinned until the outer one
    /// goes.
    #[test]
    fn nested_pins_keep_the_thread_pinned_until_the_outermost_is_dropped() {
        let outer = pin();
        let epoch = |p: &Pin| p.local().slot.state.load(Ordering::Relaxed);
        let state = epoch(&outer);
        assert_eq!(state & 1, 1);
        drop(pin());
        assert_eq!(
            epoch(&outer),
            state,
            "an inner pin's drop unpinned the thread"
        );
        drop(outer);
        LOCAL.with(|l| assert_eq!(l.slot.state.load(Ordering::Relaxed), 0));
    }

    /// A panicking deferred function does not keep the others from running, and its panic
    /// reaches the collecting caller.
    #[test]
    fn a_panicking_deferred_function_lets_the_others_run() {
        let ran = Arc::new(AtomicUsize::new(0));
        for i in 0..3 {
            let counted = ran.clone();
            pin().defer(1, move || {
                counted.fetch_add(1, Ordering::SeqCst);
                assert!(i != 1, "a value's drop panics");
            });
        }
        let mut panicked = false;
        for _ in 0..10_000 {
            panicked |= catch_unwind(|| collect(true)).is_err();
            if ran.load(Ordering::SeqCst) == 3 {
                break;
            }
            std::thread::yield_now();
        }
        assert_eq!(ran.load(Ordering::SeqCst), 3);
        assert!(panicked, "the panic was swallowed");
    }
}

/// Loom models of the epochs: a reader's pin against a writer that unlinks, defers the free of
/// what it unlinked, and collects. Under loom both halves of the fence pair are full fences
/// (see [`barrier`]), so the models check the protocol the asymmetric pair stands in for.
#[cfg(all(test, shardkit_loom))]
mod loom_models {
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::AtomicPtr;

    use super::*;

    /// A value whose drop writes to it: freeing it while a reader reads it is a data race
    /// loom reports.
    struct Node(UnsafeCell<u64>);

    impl Drop for Node {
        fn drop(&mut self) {
            // SAFETY: `&mut self`: nobody else holds the value (loom checks that claim).
            self.0.with_mut(|v| unsafe { *v = 0 });
        }
    }

    fn node(v: u64) -> *mut Node {
        Box::into_raw(Box::new(Node(UnsafeCell::new(v))))
    }

    fn read(slot: &AtomicPtr<Node>) -> u64 {
        let _pin = pin();
        let p = slot.load(Ordering::Acquire);
        // SAFETY: loaded while pinned: freed only after this pin is dropped.
        unsafe { (*p).0.with(|v| *v) }
    }

    #[test]
    fn loom_a_pinned_reader_keeps_what_it_loaded_alive() {
        loom::model(|| {
            let slot = Arc::new(AtomicPtr::new(node(1)));
            let writer = {
                let slot = slot.clone();
                loom::thread::spawn(move || {
                    let pin = pin();
                    let old = slot.swap(node(2), Ordering::AcqRel);
                    // SAFETY: unlinked above, retired once, a `Box`'s.
                    unsafe { pin.defer_drop(1, old) };
                    drop(pin);
                    collect(true);
                })
            };
            assert!(matches!(read(&slot), 1 | 2));
            writer.join().unwrap();
            assert_eq!(read(&slot), 2);
            collect(true);
            // SAFETY: the last value, unlinked by nobody: freed here.
            drop(unsafe { Box::from_raw(slot.load(Ordering::Relaxed)) });
        });
    }

    #[test]
    fn loom_a_reader_pinned_in_an_older_epoch_holds_back_two_advances() {
        loom::model(|| {
            let slot = Arc::new(AtomicPtr::new(node(1)));
            let writer = {
                let slot = slot.clone();
                loom::thread::spawn(move || {
                    for v in 2..4 {
                        let pin = pin();
                        let old = slot.swap(node(v), Ordering::AcqRel);
                        // SAFETY: unlinked above, retired once, a `Box`'s.
                        unsafe { pin.defer_drop(1, old) };
                        drop(pin);
                        collect(true);
                    }
                })
            };
            assert!(matches!(read(&slot), 1..=3));
            writer.join().unwrap();
            collect(true);
            // SAFETY: the last value, unlinked by nobody: freed here.
            drop(unsafe { Box::from_raw(slot.load(Ordering::Relaxed)) });
        });
    }
}
