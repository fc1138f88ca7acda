//! Run-to-completion hand-off: whichever thread brings work runs it, unless another thread is
//! already running, which then runs it too.
//!
//! A node's inputs come from many threads (socket readers, callers, the timer). Handing each
//! to one dedicated thread costs a wake-up per message, and on a virtual machine a wake-up is
//! tens of microseconds: several per replicated write. Instead the thread that queued an input
//! calls [`Pump::run`]: if no thread is running, it becomes the runner and drains every
//! queue; if one is, that runner does another round, which sees the input, before it stops.
//! No input is left queued with nobody to run it (a runner that gives up after its rounds
//! says so, and its caller hands the rest to another thread), and at most one thread runs at
//! a time.
//!
//! One atomic holds both facts, so the guarantee needs no fences between a queue and a lock:
//! `RUNNING` (a thread is running) and `DIRTY` (work arrived since the runner last looked).

use crate::sync::{AtomicU8, Ordering};

const RUNNING: u8 = 1;
const DIRTY: u8 = 2;

/// Who runs queued work; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Pump {
    state: AtomicU8,
}

/// What [`Pump::run`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ran {
    /// This thread ran the work until none was left.
    Done,
    /// Another thread was running: it will see the work.
    Elsewhere,
    /// This thread stopped after `rounds` rounds with work still arriving; the caller must
    /// make sure it runs (another thread's `run`).
    Yielded,
}

impl Pump {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Call after queueing work (or to poll): runs `round` until a round starts with no new
    /// work behind it, unless another thread is running. `round` must drain every queue it
    /// is responsible for. Stops after `max_rounds` rounds (returning [`Ran::Yielded`]), so
    /// a caller is never kept running others' work for ever.
    pub(crate) fn run(&self, max_rounds: usize, mut round: impl FnMut()) -> Ran {
        // AcqRel: the runner's clearing swap reads this, and with it the queued work.
        if self.state.fetch_or(RUNNING | DIRTY, Ordering::AcqRel) & RUNNING != 0 {
            return Ran::Elsewhere;
        }
        // Whatever happens in `round`, the next caller must find the pump free: a panic
        // that left it running would leave every later input queued for ever.
        let guard = Release(self);
        for _ in 0..max_rounds.max(1) {
            // Work queued before this swap is seen by this round; work queued after it sets
            // DIRTY again, which the exchange below sees.
            self.state.swap(RUNNING, Ordering::AcqRel);
            round();
            if self
                .state
                .compare_exchange(RUNNING, 0, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                std::mem::forget(guard);
                return Ran::Done;
            }
        }
        drop(guard);
        Ran::Yielded
    }

    /// Asks the running thread (the caller, inside `round`) for another round: it left work
    /// queued.
    pub(crate) fn again(&self) {
        self.state.fetch_or(DIRTY, Ordering::AcqRel);
    }
}

/// Frees the pump when dropped (on unwinding, or when the runner yields).
struct Release<'a>(&'a Pump);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.0.state.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_caller_runs_its_work_once() {
        let pump = Pump::new();
        let mut rounds = 0;
        assert_eq!(pump.run(4, || rounds += 1), Ran::Done);
        assert_eq!(rounds, 1);
    }

    #[test]
    fn work_queued_during_a_round_gets_another_round() {
        let pump = Pump::new();
        let mut rounds = 0;
        let ran = pump.run(8, || {
            rounds += 1;
            if rounds < 3 {
                // Another thread's input arriving mid-round.
                assert_eq!(pump.run(8, || unreachable!()), Ran::Elsewhere);
            }
        });
        assert_eq!(ran, Ran::Done);
        assert_eq!(rounds, 3);
    }

    #[test]
    fn a_runner_yields_after_its_rounds_and_frees_the_pump() {
        let pump = Pump::new();
        let ran = pump.run(2, || {
            let _ = pump.run(1, || unreachable!());
        });
        assert_eq!(ran, Ran::Yielded);
        let mut ran_again = false;
        assert_eq!(pump.run(1, || ran_again = true), Ran::Done);
        assert!(ran_again);
    }

    #[test]
    fn a_panicking_round_frees_the_pump() {
        let pump = Pump::new();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pump.run(1, || panic!("a bug in the round"));
        }));
        assert!(panicked.is_err());
        let mut ran = false;
        assert_eq!(pump.run(1, || ran = true), Ran::Done);
        assert!(ran);
    }
}

/// Loom models: no queued input is left without a runner, and rounds never overlap.
#[cfg(all(test, shardkit_loom))]
mod loom_models {
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicBool;

    use super::*;

    /// Two producers' inputs and the runner's view of them, all relaxed: only the pump
    /// orders them.
    #[derive(Default)]
    struct Inputs {
        put: [AtomicBool; 2],
        taken: [AtomicBool; 2],
        inside: AtomicBool,
    }

    impl Inputs {
        /// A round: take every input put so far.
        fn drain(&self) {
            assert!(
                !self.inside.swap(true, Ordering::Relaxed),
                "rounds overlapped"
            );
            for i in 0..2 {
                if self.put[i].load(Ordering::Relaxed) {
                    self.taken[i].store(true, Ordering::Relaxed);
                }
            }
            self.inside.store(false, Ordering::Relaxed);
        }
    }

    /// Two producers each put an input and hand it to the pump with `hand_on`; once both
    /// returned, every input must have been taken (joining orders the last round before the
    /// checks): none was left queued.
    fn model(hand_on: fn(&Pump, &Inputs)) {
        loom::model(move || {
            let pump = Arc::new(Pump::new());
            let inputs = Arc::new(Inputs::default());
            let threads: Vec<_> = (0..2)
                .map(|i| {
                    let (pump, inputs) = (pump.clone(), inputs.clone());
                    loom::thread::spawn(move || {
                        inputs.put[i].store(true, Ordering::Relaxed);
                        hand_on(&pump, &inputs);
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            for i in 0..2 {
                assert!(
                    inputs.taken[i].load(Ordering::Relaxed),
                    "input {i} was lost"
                );
            }
        });
    }

    #[test]
    fn loom_every_queued_input_is_run_and_runners_never_overlap() {
        model(|pump, inputs| {
            let ran = pump.run(usize::MAX, || inputs.drain());
            assert_ne!(ran, Ran::Yielded);
        });
    }

    /// A runner that yields after one round hands on: here its caller runs again, as the
    /// engine's callers wake the node's thread to.
    #[test]
    fn loom_a_runner_that_yields_leaves_nothing_behind() {
        model(|pump, inputs| while pump.run(1, || inputs.drain()) == Ran::Yielded {});
    }
}
