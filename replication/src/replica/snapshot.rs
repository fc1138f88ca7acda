//! Full resync: a follower whose position the leader's log no longer holds installs a
//! snapshot of the user's state and continues from the snapshot's offset.

use crate::error::Error;
use crate::record::Offset;

/// The user's state built from committed records, as far as replication needs it: to take a
/// snapshot on the leader and install it on a follower that fell behind the leader's retained
/// log. The user applies committed records to the state (from
/// [`Replica::read_committed`](super::Replica::read_committed)) as usual.
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
