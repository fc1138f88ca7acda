//! Group commit: appenders that need durability share one sync of the file.
//!
//! Each appender stages its records, then waits until the log is durable up to its own end. An
//! appender that finds no sync in progress becomes the syncer: it writes and syncs everything
//! staged so far (its records and any that other appenders staged meanwhile) with one `write`
//! and one `fdatasync`. The others queue. When the sync ends, the syncer decides each queued
//! appender's outcome and wakes exactly those it concerns: the ones its sync covered, and one
//! not covered, elected to run the next sync. No appender wakes only to sleep again, one whose
//! records are durable returns without taking the lock again, and no appender is left waiting
//! for a sync nobody runs (a sync that panics fails the log, like one that errs). (Woken through
//! a condition variable, thirty appenders would instead pass its mutex from one to the next: a
//! chain of context switches as long as a sync.)
//!
//! Two heuristics, both bounded by the recent time of a sync and both only ever delaying:
//! - A queued appender yields the processor in a loop for up to two syncs' time before it parks,
//!   so the common wake-up is a flag it reads rather than a futex wake-up (several microseconds
//!   of the syncer's time per appender on a virtual machine). Yielding runs any other ready
//!   thread, so the spinning only uses time nothing else wanted.
//! - A syncer first waits, for up to one sync's time, until every appender inside an append has
//!   staged its records: appenders woken by the last sync are back a few microseconds later, and
//!   waiting for them makes one full sync instead of two half-full ones. A lone appender never
//!   waits.
//!
//! A failed sync poisons the log: every waiter, and every later append, gets the failure,
//! because the kernel may have dropped the dirty pages and a retry would report success for
//! lost data.

use std::time::{Duration, Instant};

use crate::sync::{
    Arc, AtomicU8, AtomicU64, AtomicUsize, Budget, Mutex, Ordering, Thread, current_thread, lock,
    park, yield_now,
};

/// The longest a queued appender spins before it parks, and a syncer gathers.
const MAX_SPIN: Duration = Duration::from_millis(2);

/// A queued appender's outcome, set by whoever wakes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Outcome {
    /// Not decided yet: keep waiting (the initial value; never returned by a wait).
    Waiting,
    /// Its records are durable.
    Durable,
    /// It is elected to run the next sync.
    Sync,
    /// The log failed, or a truncation cut its records: look at the state.
    Ended,
}

/// A queued appender.
#[derive(Debug)]
struct Waiter {
    /// The end of its records.
    target: u64,
    outcome: AtomicU8,
    thread: Thread,
}

impl Waiter {
    /// Sets the outcome; the caller unparks the thread after releasing the state lock.
    fn decide(&self, outcome: Outcome) {
        self.outcome.store(outcome as u8, Ordering::Release);
    }

    /// Spins for up to `spin`, then parks, until an outcome is set.
    fn wait(&self, spin: Duration) -> Outcome {
        let mut budget = Budget::new(spin);
        loop {
            match self.outcome.load(Ordering::Acquire) {
                0 if budget.left() => yield_now(),
                0 => park(),
                1 => return Outcome::Durable,
                2 => return Outcome::Sync,
                _ => return Outcome::Ended,
            }
        }
    }
}

/// The shared state of the protocol.
#[derive(Debug, Default)]
struct State {
    /// The end of what appenders have written (an offset; monotonic but for truncations).
    written: u64,
    /// The end of what is known durable.
    durable: u64,
    /// Whether a syncer is at work, or elected and about to be.
    syncing: bool,
    /// Set by a truncation during a sync: that sync's result says nothing about the new log.
    voided: bool,
    /// Set forever by a failed sync, with its message.
    failed: Option<String>,
    /// Bumped by every truncation.
    generation: u64,
    /// The cut of every truncation since generation `cuts_from`, in order (forgotten whenever a
    /// truncation finds no appender waiting, since no wait can ask about older ones then).
    cuts: Vec<u64>,
    cuts_from: u64,
    /// Appenders parked until a sync covers them.
    queue: Vec<Arc<Waiter>>,
}

impl State {
    /// The lowest cut of the truncations since `generation`, if any: records at or after it
    /// written before then are gone, even if the log has grown back past them since.
    fn cut_since(&self, generation: u64) -> Option<u64> {
        let skip = generation.saturating_sub(self.cuts_from) as usize;
        self.cuts.get(skip..).and_then(|c| c.iter().copied().min())
    }
}

/// Why a wait for durability ended without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WaitError {
    /// A sync failed (now or earlier): the log is poisoned.
    Failed(String),
    /// A truncation removed the waited-for records before they became durable.
    Truncated { at: u64 },
}

/// Records written and not yet known durable, dated by the truncation generation, so a wait
/// can tell whether a truncation since cut them. From [`GroupCommit::written_awaiting`]; every one must
/// be passed to [`GroupCommit::wait_durable`].
#[derive(Debug)]
#[must_use = "every write must be waited for"]
pub(crate) struct Written {
    end: u64,
    generation: u64,
}

/// The group-commit hand-off between appenders; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    /// Appenders between `written` and the end of their wait.
    active: AtomicUsize,
    /// Appenders in the queue (a copy of its length, for the syncer's gathering).
    queued: AtomicUsize,
    /// A moving average of how long a sync takes, in nanoseconds.
    sync_nanos: AtomicU64,
}

fn wake(woken: Vec<Arc<Waiter>>) {
    for w in woken {
        w.thread.unpark();
    }
}

impl GroupCommit {
    /// A protocol whose first `durable` offsets are already durable (after recovery).
    pub(crate) fn new(durable: u64) -> Self {
        Self {
            state: Mutex::new(State {
                written: durable,
                durable,
                ..State::default()
            }),
            ..Self::default()
        }
    }

    /// Records that everything below `end` has been written (not yet synced).
    pub(crate) fn written(&self, end: u64) {
        let mut s = lock(&self.state);
        s.written = s.written.max(end);
    }

    /// [`written`](Self::written), by an appender that will wait for its records to be durable.
    /// Called under the log's writer lock, as truncations are, so the result dates the records
    /// exactly.
    pub(crate) fn written_awaiting(&self, end: u64) -> Written {
        let mut s = lock(&self.state);
        s.written = s.written.max(end);
        self.enter(&s, end)
    }

    fn enter(&self, s: &State, end: u64) -> Written {
        self.active.fetch_add(1, Ordering::AcqRel);
        Written {
            end,
            generation: s.generation,
        }
    }

    /// The failure that poisoned the log, if any.
    pub(crate) fn failure(&self) -> Option<String> {
        lock(&self.state).failed.clone()
    }

    /// Poisons the log: every waiter and later append fails with `reason`.
    pub(crate) fn poison(&self, reason: String) {
        let mut woken = Vec::new();
        let mut s = lock(&self.state);
        s.failed.get_or_insert(reason);
        self.settle(&mut s, Outcome::Ended, &mut woken, |_| true);
        drop(s);
        wake(woken);
    }

    /// After the log was emptied and restarted at `start`: every waiter's records are gone,
    /// and everything before `start` counts as durable.
    pub(crate) fn restarted_at(&self, start: u64) {
        self.truncated(0);
        let mut s = lock(&self.state);
        s.written = start;
        s.durable = start;
    }

    /// Lowers the written and durable points after a truncation to `end`, and tells waiters
    /// for offsets after `end` that their records are gone.
    pub(crate) fn truncated(&self, end: u64) {
        let mut woken = Vec::new();
        let mut s = lock(&self.state);
        s.written = s.written.min(end);
        s.durable = s.durable.min(end);
        if self.active.load(Ordering::Acquire) == 0 {
            s.cuts.clear();
            s.cuts_from = s.generation;
        }
        s.cuts.push(end);
        s.generation += 1;
        s.voided |= s.syncing;
        self.settle(&mut s, Outcome::Ended, &mut woken, |w| w.target > end);
        drop(s);
        wake(woken);
    }

    /// Removes the queued appenders `which` selects, deciding `outcome` for them, into `woken`.
    fn settle(
        &self,
        s: &mut State,
        outcome: Outcome,
        woken: &mut Vec<Arc<Waiter>>,
        which: impl Fn(&Waiter) -> bool,
    ) {
        s.queue.retain(|w| {
            if which(w) {
                w.decide(outcome);
                woken.push(Arc::clone(w));
                false
            } else {
                true
            }
        });
        self.queued.store(s.queue.len(), Ordering::Release);
    }

    /// Returns once the records `written` describes are durable, calling `sync` as the syncer
    /// when no sync already covers them; `sync` makes everything staged so far durable and
    /// returns the end of what is now durable.
    ///
    /// # Errors
    ///
    /// The message of the failed sync that poisoned the log, whoever ran it, or the truncation
    /// that cut the records first.
    pub(crate) fn wait_durable(
        &self,
        written: Written,
        sync: impl Fn() -> std::io::Result<u64>,
    ) -> Result<(), WaitError> {
        /// Leaves the active count however the wait ends, a panic included.
        struct Leave<'a>(&'a AtomicUsize);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let _leave = Leave(&self.active);
        self.wait(&written, sync)
    }

    fn wait(
        &self,
        written: &Written,
        sync: impl Fn() -> std::io::Result<u64>,
    ) -> Result<(), WaitError> {
        let target = written.end;
        let mut s = lock(&self.state);
        loop {
            if let Some(e) = &s.failed {
                return Err(WaitError::Failed(e.clone()));
            }
            if let Some(at) = s.cut_since(written.generation).filter(|&at| target > at) {
                return Err(WaitError::Truncated { at });
            }
            if s.durable >= target {
                return Ok(());
            }
            if s.syncing {
                let me = Arc::new(Waiter {
                    target,
                    outcome: AtomicU8::new(Outcome::Waiting as u8),
                    thread: current_thread(),
                });
                s.queue.push(Arc::clone(&me));
                self.queued.store(s.queue.len(), Ordering::Release);
                drop(s);
                let outcome = me.wait(self.sync_estimate().saturating_mul(2).min(MAX_SPIN));
                if outcome == Outcome::Durable {
                    // Decided by the syncer with the state in hand: no need to look again.
                    return Ok(());
                }
                s = lock(&self.state);
                if outcome != Outcome::Sync {
                    continue;
                }
                // Elected, with `syncing` kept set on our behalf; but the log may have failed
                // since (a failed truncation), and a failed log is never synced again.
                if s.failed.is_some() {
                    let woken = self.sync_ended(&mut s, Ok(0));
                    drop(s);
                    wake(woken);
                    s = lock(&self.state);
                    continue;
                }
                drop(s);
            } else {
                s.syncing = true;
                drop(s);
            }
            self.gather();
            let started = Instant::now();
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&sync));
            self.observe_sync(started.elapsed());
            s = lock(&self.state);
            let panicked = result.is_err();
            let result = result.unwrap_or_else(|_| Err(std::io::Error::other("the sync panicked")));
            let woken = self.sync_ended(&mut s, result);
            drop(s);
            wake(woken);
            if panicked {
                // Everyone else now fails with the log; the panic goes on to our caller.
                std::panic::resume_unwind(Box::new("the sync panicked"));
            }
            s = lock(&self.state);
        }
    }

    /// The recent time of a sync (zero before the first).
    fn sync_estimate(&self) -> Duration {
        Duration::from_nanos(self.sync_nanos.load(Ordering::Relaxed))
    }

    /// Folds a sync's duration into the moving average (weight 1/8).
    fn observe_sync(&self, took: Duration) {
        let sample = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let old = self.sync_nanos.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            old - old / 8 + sample / 8
        };
        self.sync_nanos.store(new, Ordering::Relaxed);
    }

    /// The syncer's wait for appenders about to stage records; see the module docs.
    fn gather(&self) {
        let mut budget = Budget::new(self.sync_estimate().min(MAX_SPIN));
        while self.queued.load(Ordering::Acquire) + 1 < self.active.load(Ordering::Acquire)
            && budget.left()
        {
            yield_now();
        }
    }

    /// Publishes a sync's result and decides the queued appenders' outcomes; returns those to
    /// wake, the next syncer first (every record staged meanwhile waits on it).
    fn sync_ended(&self, s: &mut State, result: std::io::Result<u64>) -> Vec<Arc<Waiter>> {
        let mut woken = Vec::new();
        match result {
            Ok(end) if !s.voided => s.durable = s.durable.max(end),
            Ok(_) => {}
            Err(e) => {
                s.failed.get_or_insert(e.to_string());
            }
        }
        s.voided = false;
        s.syncing = false;
        if s.failed.is_some() {
            self.settle(s, Outcome::Ended, &mut woken, |_| true);
            return woken;
        }
        let durable = s.durable;
        if let Some(next) = s.queue.iter().position(|w| w.target > durable) {
            let next = s.queue.swap_remove(next);
            next.decide(Outcome::Sync);
            s.syncing = true;
            woken.push(next);
        }
        self.settle(s, Outcome::Durable, &mut woken, |w| w.target <= durable);
        woken
    }

    /// Syncs if anything written is not yet durable (the `Interval` policy's timer, closing).
    ///
    /// # Errors
    ///
    /// As [`wait_durable`](Self::wait_durable).
    pub(crate) fn sync_pending(
        &self,
        sync: impl Fn() -> std::io::Result<u64>,
    ) -> Result<(), WaitError> {
        let written = {
            let s = lock(&self.state);
            self.enter(&s, s.written)
        };
        self.wait_durable(written, sync)
    }
}

#[cfg(all(test, not(shardkit_loom)))]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn concurrent_waiters_share_syncs() {
        let commit = Arc::new(GroupCommit::new(0));
        let syncs = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (1..=16u64)
            .map(|i| {
                let (commit, syncs) = (Arc::clone(&commit), Arc::clone(&syncs));
                std::thread::spawn(move || {
                    let written = commit.written_awaiting(i);
                    commit
                        .wait_durable(written, || {
                            syncs.fetch_add(1, Ordering::SeqCst);
                            // The sync lasts until every appender has written (a deadline,
                            // not a timing: it ends at once when they all have), so it covers
                            // them all and the rest must wait for it, not sync again.
                            let deadline = std::time::Instant::now() + Duration::from_secs(10);
                            while lock(&commit.state).written < 16
                                && std::time::Instant::now() < deadline
                            {
                                std::thread::yield_now();
                            }
                            Ok(lock(&commit.state).written)
                        })
                        .unwrap();
                    assert!(lock(&commit.state).durable >= i);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(syncs.load(Ordering::SeqCst), 1, "syncs were not shared");
        assert_eq!(lock(&commit.state).durable, 16);
    }

    #[test]
    fn a_truncation_during_a_wait_fails_the_cut_appends() {
        let commit = Arc::new(GroupCommit::new(0));
        let written = commit.written_awaiting(10);
        let waiter = {
            let commit = Arc::clone(&commit);
            std::thread::spawn(move || {
                commit.wait_durable(written, || {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    Ok(10)
                })
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(10));
        commit.truncated(5);
        assert_eq!(waiter.join().unwrap(), Err(WaitError::Truncated { at: 5 }));
        // The sync that straddled the truncation did not count as making anything durable.
        assert_eq!(lock(&commit.state).durable, 0);
    }

    #[test]
    fn a_cut_stays_a_cut_after_a_later_higher_truncation() {
        let commit = GroupCommit::new(0);
        let written = commit.written_awaiting(10);
        commit.truncated(5);
        // The log grows back past 10 with other records, and is cut again higher up.
        let others = commit.written_awaiting(30);
        commit.truncated(20);
        assert_eq!(
            commit.wait_durable(written, || Ok(20)),
            Err(WaitError::Truncated { at: 5 })
        );
        assert_eq!(
            commit.wait_durable(others, || Ok(20)),
            Err(WaitError::Truncated { at: 20 })
        );
    }

    #[test]
    fn a_panicking_sync_fails_the_waiters_and_the_log() {
        let commit = Arc::new(GroupCommit::new(0));
        let written = commit.written_awaiting(1);
        let syncer = {
            let commit = Arc::clone(&commit);
            std::thread::spawn(move || {
                commit.wait_durable(written, || {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    panic!("a bug in the sync")
                })
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(10));
        let written = commit.written_awaiting(2);
        let waited = commit.wait_durable(written, || Ok(2));
        assert!(matches!(waited, Err(WaitError::Failed(m)) if m.contains("panicked")));
        assert!(syncer.join().is_err());
        assert_eq!(commit.active.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_failed_sync_poisons_every_later_wait() {
        let commit = GroupCommit::new(0);
        let written = commit.written_awaiting(5);
        let err = commit
            .wait_durable(written, || Err(std::io::Error::other("EIO")))
            .unwrap_err();
        assert!(matches!(err, WaitError::Failed(m) if m.contains("EIO")));
        // A later sync that would succeed is never attempted: the failure stays.
        let written = commit.written_awaiting(6);
        assert!(commit.wait_durable(written, || Ok(6)).is_err());
        assert!(commit.failure().is_some());
    }
}

/// Loom models of the hand-off: every interleaving of two or three appenders.
#[cfg(all(test, shardkit_loom))]
mod loom_models {
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// Appender `i` writes up to `i` and waits; the fake sync makes durable what was written.
    fn appender(
        commit: Arc<GroupCommit>,
        written: Arc<AtomicU64>,
        disk: Arc<AtomicU64>,
        syncs: Arc<AtomicU64>,
        i: u64,
    ) {
        written.fetch_max(i, Ordering::SeqCst);
        let mine = commit.written_awaiting(i);
        commit
            .wait_durable(mine, || {
                syncs.fetch_add(1, Ordering::SeqCst);
                let staged = written.load(Ordering::SeqCst);
                disk.fetch_max(staged, Ordering::SeqCst);
                Ok(staged)
            })
            .unwrap();
        // The guarantee: an append returns only once it is on disk.
        assert!(disk.load(Ordering::SeqCst) >= i);
    }

    // The main thread only spawns and joins: loom mistakes a late `unpark` (std keeps it as a
    // token) for the wake-up of a thread blocked in `join`.
    #[test]
    fn loom_every_appender_returns_only_when_durable() {
        loom::model(|| {
            let commit = Arc::new(GroupCommit::new(0));
            let written = Arc::new(AtomicU64::new(0));
            let disk = Arc::new(AtomicU64::new(0));
            let syncs = Arc::new(AtomicU64::new(0));
            let threads: Vec<_> = (1..=3)
                .map(|i| {
                    let (c, w, d, s) =
                        (commit.clone(), written.clone(), disk.clone(), syncs.clone());
                    loom::thread::spawn(move || appender(c, w, d, s, i))
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            // Three appenders never need more than three syncs, and usually share them.
            assert!(syncs.load(Ordering::SeqCst) <= 3);
        });
    }

    /// Offsets 0 and 1 are written and wait to be durable, and so does offset 2, until a
    /// truncation to 2 cuts it while its appender waits or syncs; then the truncating writer
    /// appends a new offset 2. The cut record is acknowledged only by a sync that ran before
    /// the truncation, and the new one only by a sync that began after it was written: a sync
    /// in flight across the truncation started before the new record existed, so what it
    /// reports says nothing about it.
    #[test]
    fn loom_a_truncation_fails_exactly_the_cut_appends() {
        // Two preemptions: with three, the model's four threads take minutes, and two are
        // enough to run a sync across the truncation and the new append.
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(2);
        builder.check(|| {
            let commit = Arc::new(GroupCommit::new(0));
            let disk = Arc::new(AtomicU64::new(0));
            let kept = commit.written_awaiting(2);
            let cut = commit.written_awaiting(3);
            // An appender waiting for `written`, its sync making durable up to `end`.
            let wait = |written: Written, end: u64| {
                let (commit, disk) = (commit.clone(), disk.clone());
                loom::thread::spawn(move || {
                    commit.wait_durable(written, || {
                        disk.fetch_max(end, Ordering::SeqCst);
                        Ok(end)
                    })
                })
            };
            let cut = wait(cut, 3);
            let kept = wait(kept, 2);
            let rewrite = {
                let (commit, disk) = (commit.clone(), disk.clone());
                loom::thread::spawn(move || {
                    commit.truncated(2);
                    let new = commit.written_awaiting(3);
                    let synced_it = AtomicU64::new(0);
                    let result = commit.wait_durable(new, || {
                        synced_it.store(1, Ordering::SeqCst);
                        disk.fetch_max(3, Ordering::SeqCst);
                        Ok(3)
                    });
                    (result, synced_it.load(Ordering::SeqCst))
                })
            };
            assert_eq!(kept.join().unwrap(), Ok(()));
            assert!(disk.load(Ordering::SeqCst) >= 2);
            // The cut record: acknowledged before the truncation (its sync ran first), or
            // refused.
            match cut.join().unwrap() {
                Ok(()) => assert_eq!(disk.load(Ordering::SeqCst), 3),
                Err(e) => assert_eq!(e, WaitError::Truncated { at: 2 }),
            }
            // The new record: only its own sync can have covered it.
            let (result, synced_it) = rewrite.join().unwrap();
            assert_eq!(result, Ok(()));
            assert_eq!(
                synced_it, 1,
                "acknowledged by a sync from before it was written"
            );
        });
    }

    #[test]
    fn loom_a_failed_sync_reaches_every_waiter() {
        loom::model(|| {
            let commit = Arc::new(GroupCommit::new(0));
            let threads: Vec<_> = (1..=2)
                .map(|end| {
                    let commit = commit.clone();
                    loom::thread::spawn(move || {
                        let mine = commit.written_awaiting(end);
                        commit.wait_durable(mine, || Err(std::io::Error::other("EIO")))
                    })
                })
                .collect();
            for t in threads {
                assert!(t.join().unwrap().is_err());
            }
        });
    }
}
