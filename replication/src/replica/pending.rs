//! The leader's writes waiting for their ack level, kept so that a batch of writes costs a
//! few queue pushes and a commit that covers them a few pops.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use super::types::AckLevel;
use super::write::WriteId;
use crate::record::Offset;

/// One waiting write.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    offset: Offset,
    id: WriteId,
    deadline: Duration,
}

/// Writes waiting for their ack level.
///
/// A level's condition holds for every offset below some bound (the flushed or commit
/// offset, or the in-sync followers' least), so a level's waiting writes complete in offset
/// order. New writes arrive in offset order too: each level keeps its own in a queue, and
/// completing is popping from the front. A retried write of an idempotent producer waits at
/// its first copy's offset, out of that order; those few sit in an ordered map beside.
#[derive(Debug, Default)]
pub(crate) struct PendingWrites {
    /// Per [`AckLevel`], in its declaration order: new writes, offsets ascending.
    fresh: [VecDeque<Waiting>; 4],
    /// Retried writes: `(offset, id) → (level, deadline)`.
    duplicates: BTreeMap<(Offset, WriteId), (AckLevel, Duration)>,
}

fn level(ack: AckLevel) -> usize {
    match ack {
        AckLevel::None => 0,
        AckLevel::Leader => 1,
        AckLevel::Quorum => 2,
        AckLevel::All => 3,
    }
}

const LEVELS: [AckLevel; 4] = [
    AckLevel::None,
    AckLevel::Leader,
    AckLevel::Quorum,
    AckLevel::All,
];

impl PendingWrites {
    /// A new write at `offset`, past every new write before it.
    pub(crate) fn push(&mut self, offset: Offset, id: WriteId, ack: AckLevel, deadline: Duration) {
        let queue = &mut self.fresh[level(ack)];
        debug_assert!(queue.back().is_none_or(|w| w.offset < offset));
        queue.push_back(Waiting {
            offset,
            id,
            deadline,
        });
    }

    /// A retried write, answered with its first copy at `offset`.
    pub(crate) fn push_duplicate(
        &mut self,
        offset: Offset,
        id: WriteId,
        ack: AckLevel,
        deadline: Duration,
    ) {
        self.duplicates.insert((offset, id), (ack, deadline));
    }

    /// Removes the writes whose level `reached(level, offset)` says is reached, calling
    /// `done(offset, id, duplicate)` for each. `reached` must hold, for each level, for every
    /// offset below some bound and for none at or above it.
    pub(crate) fn complete(
        &mut self,
        reached: impl Fn(AckLevel, Offset) -> bool,
        mut done: impl FnMut(Offset, WriteId, bool),
    ) {
        for (queue, ack) in self.fresh.iter_mut().zip(LEVELS) {
            while let Some(w) = queue.front().filter(|w| reached(ack, w.offset)) {
                done(w.offset, w.id, false);
                queue.pop_front();
            }
        }
        self.duplicates.retain(|&(offset, id), &mut (ack, _)| {
            let reached = reached(ack, offset);
            if reached {
                done(offset, id, true);
            }
            !reached
        });
    }

    /// Removes the writes whose deadline has passed, calling `expired(offset, id)` for each.
    pub(crate) fn expire(&mut self, now: Duration, mut expired: impl FnMut(Offset, WriteId)) {
        for queue in &mut self.fresh {
            queue.retain(|w| {
                let late = now >= w.deadline;
                if late {
                    expired(w.offset, w.id);
                }
                !late
            });
        }
        self.duplicates.retain(|&(offset, id), &mut (_, deadline)| {
            let late = now >= deadline;
            if late {
                expired(offset, id);
            }
            !late
        });
    }

    /// Removes every write, calling `each(offset, id)`.
    pub(crate) fn drain(&mut self, mut each: impl FnMut(Offset, WriteId)) {
        for queue in &mut self.fresh {
            queue.drain(..).for_each(|w| each(w.offset, w.id));
        }
        std::mem::take(&mut self.duplicates)
            .into_keys()
            .for_each(|(offset, id)| each(offset, id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(n: u64) -> Offset {
        Offset::new(n)
    }

    #[test]
    fn each_level_completes_up_to_its_own_bound() {
        let mut p = PendingWrites::default();
        let far = Duration::from_secs(60);
        for n in 0..6 {
            let ack = if n % 2 == 0 {
                AckLevel::Quorum
            } else {
                AckLevel::Leader
            };
            p.push(o(n), WriteId(n), ack, far);
        }
        p.push_duplicate(o(1), WriteId(6), AckLevel::Quorum, far);
        let mut done = Vec::new();
        // Quorum reached below 3, leader durability below 5.
        let bounds = |ack: AckLevel, offset: Offset| match ack {
            AckLevel::Quorum => offset < o(3),
            _ => offset < o(5),
        };
        p.complete(bounds, |offset, id, dup| {
            done.push((offset.get(), id.0, dup))
        });
        done.sort_unstable();
        assert_eq!(
            done,
            [
                (0, 0, false),
                (1, 1, false),
                (1, 6, true),
                (2, 2, false),
                (3, 3, false)
            ]
        );
        let mut rest = Vec::new();
        p.drain(|offset, id| rest.push((offset.get(), id.0)));
        rest.sort_unstable();
        assert_eq!(rest, [(4, 4), (5, 5)]);
    }

    #[test]
    fn only_late_writes_expire() {
        let mut p = PendingWrites::default();
        p.push(o(0), WriteId(0), AckLevel::All, Duration::from_secs(5));
        p.push(o(1), WriteId(1), AckLevel::All, Duration::from_secs(1));
        p.push_duplicate(o(0), WriteId(2), AckLevel::All, Duration::from_secs(1));
        let mut late = Vec::new();
        p.expire(Duration::from_secs(2), |offset, id| {
            late.push((offset.get(), id.0))
        });
        late.sort_unstable();
        assert_eq!(late, [(0, 2), (1, 1)]);
        let mut rest = Vec::new();
        p.drain(|offset, id| rest.push((offset.get(), id.0)));
        assert_eq!(rest, [(0, 0)]);
    }
}
