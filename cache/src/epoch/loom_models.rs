//! Loom models of the epochs: readers' pins against writers that unlink, defer the free of
//! what they unlinked, and collect. Under loom both halves of the fence pair are full fences
//! (see [`super::barrier`]), and the advance and bag thresholds are 2, so the models reach every
//! path the cache takes: sealing at an advance, advancing for waiting work, forced
//! collection, bag hand-overs.

use loom::cell::UnsafeCell;
use loom::sync::atomic::AtomicPtr;

use super::*;

/// A value whose drop writes to it (freeing it while a reader reads it is a data race loom
/// reports) and counts itself.
struct Node {
    value: UnsafeCell<u64>,
    freed: Arc<AtomicUsize>,
}

impl Drop for Node {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: nobody else holds the value (loom checks that claim).
        self.value.with_mut(|v| unsafe { *v = 0 });
        self.freed.fetch_add(1, Ordering::Relaxed);
    }
}

fn node(v: u64, freed: &Arc<AtomicUsize>) -> *mut Node {
    Box::into_raw(Box::new(Node {
        value: UnsafeCell::new(v),
        freed: freed.clone(),
    }))
}

fn read(slot: &AtomicPtr<Node>) -> u64 {
    read_under(&pin(), slot)
}

/// Reads the slot's value under `_pin`.
fn read_under(_pin: &Pin, slot: &AtomicPtr<Node>) -> u64 {
    let p = slot.load(Ordering::Acquire);
    // SAFETY: loaded while pinned: freed only after this pin is dropped.
    let node = unsafe { &*p };
    // SAFETY: a shared read; writes happen only in `drop`, which loom checks is not
    // concurrent with it.
    node.value.with(|v| unsafe { *v })
}

/// Replaces the slot's value by a new one `v`, deferring the old one's free.
fn replace(slot: &AtomicPtr<Node>, v: u64, freed: &Arc<AtomicUsize>) {
    replace_under(&pin(), slot, v, freed);
}

/// [`replace`] under `pin`.
fn replace_under(pin: &Pin, slot: &AtomicPtr<Node>, v: u64, freed: &Arc<AtomicUsize>) {
    let old = slot.swap(node(v, freed), Ordering::AcqRel);
    // SAFETY: unlinked above, retired once, a `Box`'s.
    unsafe { pin.defer_drop(1, old) };
}

/// Frees the last value, once nothing else can: what every model ends with.
fn free_last(slot: &AtomicPtr<Node>) {
    // SAFETY: the last value, unlinked by nobody, and every thread has joined.
    drop(unsafe { Box::from_raw(slot.load(Ordering::Relaxed)) });
}

/// A model: a writer thread runs `write` on a slot that starts with the value 1, while
/// this thread runs `read`; once both are done, the slot holds `last`, and a forced
/// collection, with nothing pinned, has freed every one of the `replaced` values.
fn model(
    write: fn(&AtomicPtr<Node>, &Arc<AtomicUsize>),
    read_side: fn(&AtomicPtr<Node>),
    last: u64,
    replaced: usize,
) {
    loom::model(move || {
        let freed = Arc::new(AtomicUsize::new(0));
        let slot = Arc::new(AtomicPtr::new(node(1, &freed)));
        let writer = {
            let (slot, freed) = (slot.clone(), freed.clone());
            loom::thread::spawn(move || write(&slot, &freed))
        };
        read_side(&slot);
        writer.join().unwrap();
        assert_eq!(read(&slot), last);
        collect(true);
        assert_eq!(
            freed.load(Ordering::Relaxed),
            replaced,
            "a replaced value was never freed"
        );
        free_last(&slot);
    });
}

#[test]
fn loom_a_pinned_reader_keeps_what_it_loaded_alive() {
    model(
        |slot, freed| {
            replace(slot, 2, freed);
            collect(true);
        },
        |slot| assert!(matches!(read(slot), 1 | 2)),
        2,
        1,
    );
}

/// Writes that advance the epoch on their own (every two units) against a reader that
/// then collects without advancing: what it frees, it frees after the writes' advances,
/// and never what it or anyone still holds.
#[test]
fn loom_advances_for_waiting_work_and_collections_that_do_not_advance() {
    model(
        |slot, freed| {
            for v in 2..4 {
                replace(slot, v, freed);
                collect(false);
            }
            // Hands over what is left in this thread's bag (a thread's exit would too,
            // but loom runs thread-local destructors late).
            collect(true);
        },
        |slot| {
            assert!(matches!(read(slot), 1..=3));
            collect(false);
        },
        3,
        2,
    );
}

/// A thread that registers (with a registration of its own, as an exiting thread's destructor
/// does), pins, and reads the slot's value: 1 or 2.
fn spawn_registering_reader(slot: &Arc<AtomicPtr<Node>>) -> loom::thread::JoinHandle<()> {
    let slot = slot.clone();
    loom::thread::spawn(move || {
        let value = read_under(&pin_exiting(), &slot);
        assert!(matches!(value, 1 | 2), "read {value}");
    })
}

/// Joins `threads`, then checks that a forced collection, with nothing pinned, has freed the
/// one value replaced (what the exit models end with).
fn join_then_check_freed(
    threads: [loom::thread::JoinHandle<()>; 2],
    slot: &AtomicPtr<Node>,
    freed: &AtomicUsize,
) {
    for thread in threads {
        thread.join().unwrap();
    }
    collect(true);
    assert_eq!(
        freed.load(Ordering::Relaxed),
        1,
        "the replaced value was never freed"
    );
    free_last(slot);
}

/// A thread's exit: its registration hands its bag to the collector and gives up its slot,
/// which the next thread to register may take, while another thread pins and reads and a
/// third collects. Here the registrations are `pin_exiting`'s, made and dropped by the pin,
/// because loom runs thread-local destructors only after the model's threads have ended;
/// their drop is the same `Local::drop` a thread's exit runs. What the exiting thread retired
/// must be freed (its bag is not lost with it), and not while the reader, registered before or
/// after the exit (on the exiting thread's slot, in some executions), may still read it.
/// A reader that takes the slot does so after the exiting thread's retirement, so it cannot
/// load what was retired: that a late store by the exiting thread cannot erase the new
/// owner's pin is the next model's.
#[test]
fn loom_an_exiting_threads_retirements_are_freed_and_its_slot_reused_safely() {
    loom::model(|| {
        let freed = Arc::new(AtomicUsize::new(0));
        let slot = Arc::new(AtomicPtr::new(node(1, &freed)));
        let exiting = {
            let (slot, freed) = (slot.clone(), freed.clone());
            loom::thread::spawn(move || {
                let registration = pin_exiting();
                replace_under(&registration, &slot, 2, &freed);
                // The registration ends with the pin, its bag (one unit, under the loom
                // threshold of two) not yet handed over.
                drop(registration);
            })
        };
        let reader = spawn_registering_reader(&slot);
        collect(true);
        join_then_check_freed([exiting, reader], &slot, &freed);
    });
}

/// A thread's exit against the next thread to register, which takes the exiting thread's slot
/// in some executions: the clear of the slot's state by the exiting registration's last unpin
/// must come before the new owner's pin, or an advance would see the slot unpinned and free
/// what the new owner is reading. The reader reads while this thread unlinks the value and
/// forces collections; a free under its read is a write to the value's cell concurrent with
/// it, which loom reports as a causality violation (the assertions only check that the value
/// read is one of the two, and that the old one is freed in the end). It does so with the
/// slot given up by a relaxed store, or with a second clear of the state after the slot is
/// given up. (The registrations are `pin_exiting`'s, as in the model above.)
#[test]
fn loom_an_exiting_threads_last_stores_never_unpin_the_next_owner_of_its_slot() {
    loom::model(|| {
        let freed = Arc::new(AtomicUsize::new(0));
        let slot = Arc::new(AtomicPtr::new(node(1, &freed)));
        let exiting = loom::thread::spawn(|| drop(pin_exiting()));
        let reader = spawn_registering_reader(&slot);
        replace(&slot, 2, &freed);
        collect(true);
        join_then_check_freed([exiting, reader], &slot, &freed);
    });
}
