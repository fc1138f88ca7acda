//! Full resync: a follower whose position the leader's log no longer holds installs a
//! snapshot of the user's state and continues from the snapshot's offset. The state travels
//! in parts, so a snapshot of any size fits the transport's packets (while a part does).

use std::time::Duration;

use super::store::ProducerEntry;
use crate::error::Error;
use crate::record::{Epoch, Offset};

/// The user's state built from committed records, as far as replication needs it: to take a
/// snapshot on the leader and install it on a follower that fell behind the leader's retained
/// log. The user applies committed records to the state (from
/// [`Replica::read_committed`](super::Replica::read_committed)) as usual.
///
/// The leader sends a snapshot in parts of at most
/// [`fetch_max_bytes`](super::ReplicaConfig::fetch_max_bytes) (or what fits the transport's
/// packets) and keeps it meanwhile, shared by
/// every follower fetching it, until nobody has asked for a part for two fetch timeouts
/// (`2 × (fetch_wait + fetch_timeout)`, the leader's settings), and meanwhile
/// [`Replica::compact`](super::Replica::compact) keeps the records after it; the follower
/// installs it once it holds every part. So for a while the leader holds a copy of the
/// state's bytes, and so does the follower.
///
/// ```
/// use shardkit_replication::Offset;
/// use shardkit_replication::replica::{Snapshot, StateMachine};
///
/// /// A counter of committed writes.
/// #[derive(Default)]
/// struct Counter { applied_to: u64, writes: u64 }
///
/// impl StateMachine for Counter {
///     fn snapshot(&mut self) -> Result<Snapshot, shardkit_replication::Error> {
///         Ok(Snapshot { offset: Offset::new(self.applied_to), data: self.writes.to_le_bytes().to_vec() })
///     }
///     fn install(&mut self, snapshot: &Snapshot) -> Result<(), shardkit_replication::Error> {
///         let bytes: [u8; 8] = snapshot.data.as_slice().try_into().map_err(|_| {
///             shardkit_replication::Error::InvalidConfig { reason: "bad counter snapshot" }
///         })?;
///         self.writes = u64::from_le_bytes(bytes);
///         self.applied_to = snapshot.offset.get();
///         Ok(())
///     }
/// }
/// ```
pub trait StateMachine: Send {
    /// The state with every committed record before the returned offset applied (and none
    /// after it): the offset must be one the replica reported as committed, and the state
    /// must survive a restart of the replica if the log was compacted past it.
    ///
    /// # Errors
    ///
    /// Whatever taking it can fail with; the follower asks again later.
    fn snapshot(&mut self) -> Result<Snapshot, Error>;

    /// Replaces the state with `snapshot`'s.
    ///
    /// # Errors
    ///
    /// Whatever installing it can fail with (the replica's log is left as it was).
    fn install(&mut self, snapshot: &Snapshot) -> Result<(), Error>;
}

/// A state machine's state as of an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Every committed record before this offset is reflected in `data`, none after.
    pub offset: Offset,
    /// The state, in the user's format.
    pub data: Vec<u8>,
}

/// A snapshot the leader hands out in parts. Kept while followers ask for it, so that each
/// gets the parts of one snapshot, and followers fetching at the same time share it instead
/// of each taking (and so invalidating the other's) a new one.
#[derive(Debug)]
pub(crate) struct ServedSnapshot {
    /// Names it in its parts; never reused in a run of the replica.
    pub(crate) id: u64,
    pub(crate) offset: Offset,
    pub(crate) last_epoch: Epoch,
    /// What travels: the state, then the producers (see [`Message::InstallSnapshot`]).
    ///
    /// [`Message::InstallSnapshot`]: super::Message::InstallSnapshot
    pub(crate) bytes: Vec<u8>,
    /// When a part was last asked for: one nobody asks for is dropped (it may be large).
    pub(crate) last_asked: Duration,
}

/// Bytes per producer entry as a snapshot carries it.
const PRODUCER_BYTES: usize = 24;

impl ServedSnapshot {
    /// `snapshot` with the producers' latest writes before its offset, ready to send.
    pub(crate) fn new(
        id: u64,
        snapshot: Snapshot,
        last_epoch: Epoch,
        producers: &[ProducerEntry],
    ) -> Self {
        let mut bytes = snapshot.data;
        bytes.reserve_exact(producers.len() * PRODUCER_BYTES + 8);
        for &(producer, seq, offset) in producers {
            for field in [producer, seq, offset.get()] {
                bytes.extend_from_slice(&field.to_le_bytes());
            }
        }
        bytes.extend_from_slice(&(producers.len() as u64).to_le_bytes());
        Self {
            id,
            offset: snapshot.offset,
            last_epoch,
            bytes,
            last_asked: Duration::ZERO,
        }
    }

    /// The part from byte `from`, at most `max` bytes long (at least one while any remain);
    /// `None` if `from` is past the end.
    pub(crate) fn part(&self, from: u64, max: usize) -> Option<&[u8]> {
        let from = usize::try_from(from)
            .ok()
            .filter(|&f| f <= self.bytes.len())?;
        let end = from.saturating_add(max.max(1)).min(self.bytes.len());
        Some(&self.bytes[from..end])
    }
}

/// Splits a received snapshot into the state and the producers' latest writes; `None` if the
/// bytes do not end in a producer list.
pub(crate) fn split_producers(mut bytes: Vec<u8>) -> Option<(Vec<u8>, Vec<ProducerEntry>)> {
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let count_at = bytes.len().checked_sub(8)?;
    let count = usize::try_from(u64_at(count_at)).ok()?;
    let state_len = count
        .checked_mul(PRODUCER_BYTES)
        .and_then(|n| count_at.checked_sub(n))?;
    let producers = (0..count)
        .map(|i| {
            let at = state_len + i * PRODUCER_BYTES;
            (u64_at(at), u64_at(at + 8), Offset::new(u64_at(at + 16)))
        })
        .collect();
    bytes.truncate(state_len);
    Some((bytes, producers))
}

/// A snapshot a follower is receiving, part by part.
#[derive(Debug)]
pub(crate) struct PartialSnapshot {
    id: u64,
    offset: Offset,
    len: u64,
    data: Vec<u8>,
}

impl PartialSnapshot {
    /// What the follower asks for next.
    pub(crate) fn resume(&self) -> super::message::SnapshotResume {
        super::message::SnapshotResume {
            snapshot: self.id,
            from: self.data.len() as u64,
        }
    }

    /// Adds the part of snapshot `id` (at `offset`, `len` bytes in all) that starts at `at`
    /// to what `partial` holds: a first part starts a new snapshot. Returns the whole snapshot
    /// once every byte arrived. A part that does not continue what is held (another
    /// snapshot, a gap, more bytes than announced) empties `partial`, so the next request
    /// starts over.
    pub(crate) fn receive(
        partial: &mut Option<Self>,
        id: u64,
        offset: Offset,
        len: u64,
        at: u64,
        data: Vec<u8>,
    ) -> Option<Vec<u8>> {
        if at == 0 {
            *partial = Some(Self {
                id,
                offset,
                len,
                data: Vec::new(),
            });
        }
        let continues = partial.as_ref().is_some_and(|p| {
            (p.id, p.offset, p.len) == (id, offset, len)
                && p.data.len() as u64 == at
                && at
                    .checked_add(data.len() as u64)
                    .is_some_and(|end| end <= len)
        });
        let Some(p) = partial.as_mut().filter(|_| continues) else {
            *partial = None;
            return None;
        };
        // The first part's buffer is the part itself (no copy); later ones are appended, so
        // memory follows the bytes received, not the length announced.
        if p.data.is_empty() {
            p.data = data;
        } else {
            p.data.extend_from_slice(&data);
        }
        if p.data.len() as u64 == p.len {
            partial.take().map(|p| p.data)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(
        partial: &mut Option<PartialSnapshot>,
        id: u64,
        at: u64,
        data: &[u8],
    ) -> Option<Vec<u8>> {
        PartialSnapshot::receive(partial, id, Offset::new(7), 6, at, data.to_vec())
    }

    #[test]
    fn parts_in_order_make_the_whole_state() {
        let mut partial = None;
        assert_eq!(part(&mut partial, 1, 0, b"ab"), None);
        assert_eq!(
            partial
                .as_ref()
                .map(PartialSnapshot::resume)
                .map(|r| r.from),
            Some(2)
        );
        assert_eq!(part(&mut partial, 1, 2, b"cd"), None);
        assert_eq!(part(&mut partial, 1, 4, b"ef"), Some(b"abcdef".to_vec()));
        assert!(partial.is_none());
    }

    #[test]
    fn a_part_that_does_not_continue_the_held_bytes_starts_over() {
        for (id, at, data) in [
            (2, 2, &b"cd"[..]), // another snapshot
            (1, 3, b"d"),       // a gap
            (1, 2, b"cdefg"),   // past the announced length
        ] {
            let mut partial = None;
            part(&mut partial, 1, 0, b"ab");
            assert_eq!(part(&mut partial, id, at, data), None);
            assert!(partial.is_none(), "{id} {at}");
        }
        // A part with nothing held before it is refused too.
        let mut partial = None;
        assert_eq!(part(&mut partial, 1, 2, b"cd"), None);
        // A first part starts again, whatever was held.
        part(&mut partial, 1, 0, b"ab");
        assert_eq!(
            part(&mut partial, 3, 0, b"abcdef"),
            Some(b"abcdef".to_vec())
        );
    }

    #[test]
    fn an_empty_state_is_whole_at_once() {
        let mut partial = None;
        assert_eq!(
            PartialSnapshot::receive(&mut partial, 1, Offset::new(0), 0, 0, Vec::new()),
            Some(Vec::new())
        );
    }

    #[test]
    fn served_parts_are_bounded_and_cover_the_snapshot() {
        let snapshot = Snapshot {
            offset: Offset::new(0),
            data: b"abcde".to_vec(),
        };
        let served = ServedSnapshot::new(1, snapshot, Epoch::new(0), &[]);
        assert_eq!(served.bytes.len(), 5 + 8);
        assert_eq!(served.part(0, 2), Some(&b"ab"[..]));
        assert_eq!(served.part(12, 2).map(<[u8]>::len), Some(1));
        assert_eq!(served.part(13, 2), Some(&b""[..]));
        assert_eq!(served.part(14, 2), None);
        assert_eq!(served.part(0, 0), Some(&b"a"[..]));
        assert_eq!(served.part(u64::MAX, 2), None);
    }

    #[test]
    fn the_producers_travel_after_the_state_and_come_apart_again() {
        let producers = [(1, 2, Offset::new(3)), (u64::MAX, 0, Offset::new(u64::MAX))];
        for state in [Vec::new(), b"state".to_vec()] {
            let snapshot = Snapshot {
                offset: Offset::new(9),
                data: state.clone(),
            };
            let served = ServedSnapshot::new(1, snapshot, Epoch::new(2), &producers);
            assert_eq!(
                split_producers(served.bytes),
                Some((state, producers.to_vec()))
            );
        }
        // Too short for a count, or a count larger than the bytes before it.
        assert_eq!(split_producers(vec![0; 7]), None);
        let mut claims_two = vec![0; 24];
        claims_two.extend_from_slice(&2u64.to_le_bytes());
        assert_eq!(split_producers(claims_two), None);
        let mut claims_huge = vec![0; 24];
        claims_huge.extend_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(split_producers(claims_huge), None);
    }
}
