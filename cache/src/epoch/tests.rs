//! Unit tests of the epochs, each on a collector of its own.

use std::sync::atomic::AtomicUsize;

use super::*;

/// Two threads' registrations (a reader's and a writer's) with a collector of the test's
/// own: the process's is shared with every other test of the binary, whose writes would
/// run (and see the panics of) this test's deferred work.
fn reader_and_writer() -> (&'static Collector, Local, Local) {
    let collector: &'static Collector = Box::leak(Box::new(Collector::new()));
    let reader = Local::registered_with(collector);
    (collector, reader, Local::registered_with(collector))
}

/// Hands over, from `writer`, work that counts its runs; the count.
fn counted_work(writer: &Local) -> Arc<AtomicUsize> {
    let ran = Arc::new(AtomicUsize::new(0));
    let counted = ran.clone();
    writer.defer(
        1,
        Box::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        }),
    );
    writer.hand_over();
    ran
}

/// Deferred work waits for every pin taken before it was handed over, and no longer.
#[test]
fn deferred_work_waits_for_earlier_pins_only() {
    let (collector, reader, writer) = reader_and_writer();
    reader.enter();
    let ran = counted_work(&writer);
    for _ in 0..4 {
        collector.collect(true);
    }
    assert_eq!(ran.load(Ordering::SeqCst), 0, "freed under an earlier pin");
    reader.leave();
    collector.collect(true);
    assert_eq!(ran.load(Ordering::SeqCst), 1, "not freed once unpinned");
}

/// A pin taken after the advance that sealed some work cannot hold what it frees (it was
/// unlinked before that advance), so it does not hold it back: two advances on, it is
/// freed, the pin still held.
#[test]
fn pins_taken_after_the_seal_do_not_hold_the_work_back() {
    let (collector, reader, writer) = reader_and_writer();
    let ran = counted_work(&writer);
    let sealed = collector.try_advance() - 1;
    reader.enter();
    collector.collect(true);
    assert_eq!(collector.epoch.load(Ordering::Relaxed), sealed + 2);
    assert_eq!(ran.load(Ordering::SeqCst), 1, "held back by a later pin");
    reader.leave();
}

/// On Linux the pins take the asymmetric path: `membarrier` is registered. (Fails where a
/// seccomp filter or an old kernel refuses it; the cache then fences on every pin.)
#[cfg(target_os = "linux")]
#[test]
fn pins_on_linux_use_membarrier() {
    assert!(collector().asymmetric, "membarrier could not be registered");
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
    let (collector, _, writer) = reader_and_writer();
    let ran = Arc::new(AtomicUsize::new(0));
    for i in 0..3 {
        let counted = ran.clone();
        writer.defer(
            1,
            Box::new(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                assert!(i != 1, "a value's drop panics");
            }),
        );
    }
    writer.hand_over();
    let outcome = catch_unwind(AssertUnwindSafe(|| collector.collect(true)));
    assert!(outcome.is_err(), "the panic was swallowed");
    assert_eq!(ran.load(Ordering::SeqCst), 3);
}

/// A value that is never freed during the stress test, only marked retired by its deferred
/// work: a reader that finds the mark on a value it loaded while pinned has caught the epochs
/// running deferred work too early, without the undefined behaviour of reading freed memory.
struct Marked {
    retired: std::sync::atomic::AtomicBool,
}

/// A pointer to a retired value, on its way to the list freed at the end.
struct Retired(*mut Marked);

// SAFETY: the values are plain atomics, and each pointer is owned by one list at a time.
unsafe impl Send for Retired {}

/// Readers and writers on real threads, with the fences this machine uses (on Linux, the
/// asymmetric pair with `membarrier`, which the loom models cannot express): writers replace
/// a shared value, defer marking the old one retired, and collect as writes do; readers pin,
/// load the value and check it is not marked. Every deferred mark must also have run once
/// everything is joined and collected. It catches an advance that ignores pinned threads, or
/// work freed one advance early, in every run; a missing barrier leaves a window too narrow
/// for it to catch (that is what the loom models and the argument in `try_advance` are for).
#[test]
fn readers_never_see_deferred_work_run_under_them() {
    const READERS: usize = 3;
    const WRITERS: usize = 2;
    const REPLACEMENTS: usize = 100_000;
    let collector: &'static Collector = Box::leak(Box::new(Collector::new()));
    let fresh = || {
        Box::into_raw(Box::new(Marked {
            retired: std::sync::atomic::AtomicBool::new(false),
        }))
    };
    let slot = std::sync::atomic::AtomicPtr::new(fresh());
    let graveyard = Arc::new(std::sync::Mutex::new(Vec::new()));
    let writing = std::sync::atomic::AtomicUsize::new(WRITERS);
    std::thread::scope(|s| {
        for _ in 0..WRITERS {
            s.spawn(|| {
                let local = Local::registered_with(collector);
                for _ in 0..REPLACEMENTS {
                    local.enter();
                    let old = Retired(slot.swap(fresh(), Ordering::AcqRel));
                    let graveyard = graveyard.clone();
                    local.defer(
                        1,
                        Box::new(move || {
                            let old = old;
                            // SAFETY: never freed before the end of the test.
                            unsafe { &*old.0 }.retired.store(true, Ordering::Release);
                            graveyard.lock().unwrap().push(old);
                        }),
                    );
                    local.leave();
                    collector.collect(false);
                }
                local.hand_over();
                writing.fetch_sub(1, Ordering::Release);
            });
        }
        for _ in 0..READERS {
            s.spawn(|| {
                let local = Local::registered_with(collector);
                while writing.load(Ordering::Acquire) > 0 {
                    local.enter();
                    let value = slot.load(Ordering::Acquire);
                    for _ in 0..8 {
                        // SAFETY: never freed before the end of the test.
                        let retired = unsafe { &*value }.retired.load(Ordering::Acquire);
                        assert!(!retired, "deferred work ran while a reader held its value");
                    }
                    local.leave();
                }
            });
        }
    });
    for _ in 0..2 {
        collector.collect(true);
    }
    let graveyard = std::mem::take(&mut *graveyard.lock().unwrap());
    assert_eq!(
        graveyard.len(),
        WRITERS * REPLACEMENTS,
        "deferred work never ran"
    );
    for retired in graveyard {
        // SAFETY: every thread has joined; each value was swapped out once.
        drop(unsafe { Box::from_raw(retired.0) });
    }
    // SAFETY: the last value, swapped out by nobody.
    drop(unsafe { Box::from_raw(slot.load(Ordering::Relaxed)) });
}

/// A thread pinned for long does not make every collection scan the slots again: after an
/// advance it stopped, the next is tried only once `ADVANCE_AFTER` more units wait. Once it
/// unpins, the work is freed.
#[test]
fn a_long_pin_costs_one_try_per_advance_after_units() {
    let (collector, reader, writer) = reader_and_writer();
    reader.enter();
    let before = collector.tries.load(Ordering::Relaxed);
    let rounds = 20 * ADVANCE_AFTER;
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..rounds {
        let counted = ran.clone();
        writer.defer(
            1,
            Box::new(move || {
                counted.fetch_add(1, Ordering::SeqCst);
            }),
        );
        writer.hand_over();
        collector.collect(false);
    }
    let tries = collector.tries.load(Ordering::Relaxed) - before;
    assert!(
        tries <= rounds / ADVANCE_AFTER + 1,
        "{tries} advances tried for {rounds} units under one pin"
    );
    assert_eq!(ran.load(Ordering::SeqCst), 0, "freed under the pin");
    reader.leave();
    collector.collect(true);
    assert_eq!(
        ran.load(Ordering::SeqCst),
        rounds,
        "not freed once unpinned"
    );
}
