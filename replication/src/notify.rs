//! Tail notification: readers wait for the log to grow past an offset; the writer publishes.

use std::time::{Duration, Instant};

use crate::sync::{Condvar, Mutex, lock, wait_timeout};

/// The log's published end, with a condition variable for readers waiting on it.
#[derive(Debug, Default)]
pub(crate) struct Tail {
    end: Mutex<u64>,
    grew: Condvar,
}

impl Tail {
    pub(crate) fn new(end: u64) -> Self {
        Self {
            end: Mutex::new(end),
            grew: Condvar::new(),
        }
    }

    /// The published end.
    pub(crate) fn end(&self) -> u64 {
        *lock(&self.end)
    }

    /// Publishes a new end (after an append, or lower after a truncation) and wakes readers.
    pub(crate) fn publish(&self, end: u64) {
        *lock(&self.end) = end;
        self.grew.notify_all();
    }

    /// Waits until the end exceeds `offset` or `timeout` passes; returns the end.
    pub(crate) fn wait_beyond(&self, offset: u64, timeout: Duration) -> u64 {
        let deadline = crate::sync::deadline_after(timeout);
        let mut end = lock(&self.end);
        while *end <= offset {
            let Some(left) = deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
            else {
                break;
            };
            end = wait_timeout(&self.grew, end, left);
        }
        *end
    }
}

/// Loom model of the wake-up: a waiting reader always sees a publication.
#[cfg(all(test, shardkit_loom))]
mod loom_models {
    use loom::sync::Arc;

    use super::*;

    #[test]
    fn loom_readers_wake_for_every_publication() {
        loom::model(|| {
            let tail = Arc::new(Tail::new(0));
            let reader = {
                let tail = tail.clone();
                loom::thread::spawn(move || tail.wait_beyond(0, Duration::from_secs(3600)))
            };
            tail.publish(1);
            tail.publish(2);
            // Loom never times a wait out, so a lost wake-up would be reported as a deadlock.
            assert!(reader.join().unwrap() >= 1);
        });
    }
}
