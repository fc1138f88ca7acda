//! Group commit: appenders that need durability share one sync of the file.
//!
//! Each appender stages its records, then waits until the log is durable up to its own end. The
//! first waiter to find no sync in progress becomes the syncer: it writes and syncs everything
//! staged so far (its records and any that other appenders staged meanwhile) with one `write`
//! and one `fdatasync`, publishes the new durable point, and wakes the others; those already
//! covered return without a sync of their own. A
//! failed sync poisons the log: every waiter, and every later append, gets the failure, because
//! the kernel may have dropped the dirty pages and a retry would report success for lost data.

use crate::sync::{Condvar, Mutex, lock, wait};

/// The shared state of the protocol.
#[derive(Debug, Default)]
struct State {
    /// The end of what appenders have written (an offset; monotonic).
    written: u64,
    /// The end of what is known durable.
    durable: u64,
    /// Whether a syncer is at work.
    syncing: bool,
    /// Set forever by a failed sync, with its message.
    failed: Option<String>,
    /// Bumped by every truncation: a sync that started before one says nothing about the log
    /// after it, and waiters for truncated offsets must not be told their records are durable.
    generation: u64,
    /// Where the latest truncation cut the log.
    truncated_at: u64,
}

/// Why a wait for durability ended without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WaitError {
    /// A sync failed (now or earlier): the log is poisoned.
    Failed(String),
    /// A truncation removed the waited-for records before they became durable.
    Truncated { at: u64 },
}

/// The group-commit hand-off between appenders; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    changed: Condvar,
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
            changed: Condvar::new(),
        }
    }

    /// Records that everything below `end` has been written (not yet synced).
    pub(crate) fn written(&self, end: u64) {
        let mut s = lock(&self.state);
        s.written = s.written.max(end);
    }

    /// The failure that poisoned the log, if any.
    pub(crate) fn failure(&self) -> Option<String> {
        lock(&self.state).failed.clone()
    }

    /// Poisons the log: every waiter and later append fails with `reason`.
    pub(crate) fn poison(&self, reason: String) {
        let mut s = lock(&self.state);
        s.failed.get_or_insert(reason);
        self.changed.notify_all();
    }

    /// Lowers the written and durable points after a truncation to `end`, and tells waiters
    /// for offsets at or after `end` that their records are gone.
    pub(crate) fn truncated(&self, end: u64) {
        let mut s = lock(&self.state);
        s.written = s.written.min(end);
        s.durable = s.durable.min(end);
        s.generation += 1;
        s.truncated_at = end;
        self.changed.notify_all();
    }

    /// Returns once everything below `target` is durable, calling `sync` as the syncer when no
    /// sync already covers it; `sync` makes everything staged so far durable and returns the end
    /// of what is now durable.
    ///
    /// # Errors
    ///
    /// The message of the failed sync that poisoned the log, whoever ran it.
    pub(crate) fn wait_durable(
        &self,
        target: u64,
        sync: impl Fn() -> std::io::Result<u64>,
    ) -> Result<(), WaitError> {
        let mut s = lock(&self.state);
        let generation = s.generation;
        loop {
            if let Some(e) = &s.failed {
                return Err(WaitError::Failed(e.clone()));
            }
            if s.generation != generation && target > s.truncated_at {
                return Err(WaitError::Truncated { at: s.truncated_at });
            }
            if s.durable >= target {
                return Ok(());
            }
            if s.syncing {
                s = wait(&self.changed, s);
                continue;
            }
            s.syncing = true;
            let started = s.generation;
            drop(s);
            let result = sync();
            s = lock(&self.state);
            s.syncing = false;
            match result {
                // A truncation during the sync may have cut what it made durable.
                Ok(end) if s.generation == started => s.durable = s.durable.max(end),
                Ok(_) => {}
                Err(e) => s.failed = Some(e.to_string()),
            }
            self.changed.notify_all();
        }
    }

    /// Syncs if anything written is not yet durable (the `Interval` policy's timer).
    ///
    /// # Errors
    ///
    /// As [`wait_durable`](Self::wait_durable).
    pub(crate) fn sync_pending(
        &self,
        sync: impl Fn() -> std::io::Result<u64>,
    ) -> Result<(), WaitError> {
        let target = lock(&self.state).written;
        self.wait_durable(target, sync)
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
                    commit.written(i);
                    commit
                        .wait_durable(i, || {
                            syncs.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(2));
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
        assert!(syncs.load(Ordering::SeqCst) <= 16);
        assert_eq!(lock(&commit.state).durable, 16);
    }

    #[test]
    fn a_truncation_during_a_wait_fails_the_cut_appends() {
        let commit = Arc::new(GroupCommit::new(0));
        commit.written(10);
        let waiter = {
            let commit = Arc::clone(&commit);
            std::thread::spawn(move || {
                commit.wait_durable(10, || {
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
    fn a_failed_sync_poisons_every_later_wait() {
        let commit = GroupCommit::new(0);
        commit.written(5);
        let err = commit
            .wait_durable(5, || Err(std::io::Error::other("EIO")))
            .unwrap_err();
        assert!(matches!(err, WaitError::Failed(m) if m.contains("EIO")));
        // A later sync that would succeed is never attempted: the failure stays.
        commit.written(6);
        assert!(commit.wait_durable(6, || Ok(6)).is_err());
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
        commit.written(i);
        commit
            .wait_durable(i, || {
                syncs.fetch_add(1, Ordering::SeqCst);
                let staged = written.load(Ordering::SeqCst);
                disk.fetch_max(staged, Ordering::SeqCst);
                Ok(staged)
            })
            .unwrap();
        // The guarantee: an append returns only once it is on disk.
        assert!(disk.load(Ordering::SeqCst) >= i);
    }

    #[test]
    fn loom_every_appender_returns_only_when_durable() {
        loom::model(|| {
            let commit = Arc::new(GroupCommit::new(0));
            let written = Arc::new(AtomicU64::new(0));
            let disk = Arc::new(AtomicU64::new(0));
            let syncs = Arc::new(AtomicU64::new(0));
            let threads: Vec<_> = (1..=2)
                .map(|i| {
                    let (c, w, d, s) =
                        (commit.clone(), written.clone(), disk.clone(), syncs.clone());
                    loom::thread::spawn(move || appender(c, w, d, s, i))
                })
                .collect();
            appender(
                commit.clone(),
                written.clone(),
                disk.clone(),
                syncs.clone(),
                3,
            );
            for t in threads {
                t.join().unwrap();
            }
            // Three appenders never need more than three syncs, and usually share them.
            assert!(syncs.load(Ordering::SeqCst) <= 3);
        });
    }

    #[test]
    fn loom_a_failed_sync_reaches_every_waiter() {
        loom::model(|| {
            let commit = Arc::new(GroupCommit::new(0));
            let other = {
                let commit = commit.clone();
                loom::thread::spawn(move || {
                    commit.written(1);
                    commit.wait_durable(1, || Err(std::io::Error::other("EIO")))
                })
            };
            commit.written(2);
            let mine = commit.wait_durable(2, || Err(std::io::Error::other("EIO")));
            assert!(mine.is_err());
            assert!(other.join().unwrap().is_err());
        });
    }
}
