//! The follower's half: fetching from the leader, cutting a divergent suffix, learning the
//! commit offset.

use std::time::Duration;

use super::core::{Replica, RoleState, epoch_at};
use super::message::Message;
use super::snapshot::{PartialSnapshot, split_producers};
use super::store::StoredProducers;
use super::types::{FollowerAck, NodeId};
use crate::error::Error;
use crate::log::storage::LogStorage;
use crate::record::{Epoch, Offset};

#[derive(Debug)]
pub(crate) struct FollowerState {
    pub(crate) leader: Option<NodeId>,
    /// The fetch awaiting an answer: its id and when it left.
    inflight: Option<(u64, Duration)>,
    /// The acknowledged offset the last fetch reported: a flush past it is reported at once.
    reported_acked: Offset,
    /// The leader dropped the records this follower needs: it asks for a snapshot.
    needs_snapshot: bool,
    /// The parts of a snapshot received so far.
    receiving: Option<PartialSnapshot>,
}

impl FollowerState {
    pub(crate) fn new(leader: Option<NodeId>) -> Self {
        Self {
            leader,
            inflight: None,
            reported_acked: Offset::new(0),
            needs_snapshot: false,
            receiving: None,
        }
    }
}

impl<S: LogStorage> Replica<S> {
    fn follower_state(&mut self) -> Option<&mut FollowerState> {
        match &mut self.role {
            RoleState::Follower(f) => Some(f),
            RoleState::Leader(_) => None,
        }
    }

    /// What this follower counts as held, by its ack mode.
    fn acked(&self) -> Offset {
        match self.config.follower_ack {
            FollowerAck::Received => self.log.end_offset(),
            FollowerAck::Flushed => self.flushed.min(self.log.end_offset()),
        }
    }

    fn send_fetch(&mut self, now: Duration) {
        let from = self.log.end_offset();
        let last_epoch = from
            .get()
            .checked_sub(1)
            .and_then(|last| epoch_at(&self.log.epochs(), Offset::new(last)))
            .unwrap_or(Epoch::new(0));
        let acked = self.acked();
        let epoch = self.epoch;
        // Never reused in a run, and each run starts elsewhere: a late answer to an earlier
        // fetch (this run's, or a previous run's) cannot pass for the answer to this one.
        let id = self.next_id;
        let RoleState::Follower(f) = &mut self.role else {
            return;
        };
        let Some(leader) = f.leader else { return };
        self.next_id = id.wrapping_add(1);
        f.inflight = Some((id, now));
        f.reported_acked = acked;
        let message = if f.needs_snapshot {
            Message::FetchSnapshot {
                epoch,
                id,
                resume: f.receiving.as_ref().map(PartialSnapshot::resume),
            }
        } else {
            Message::Fetch {
                epoch,
                id,
                from,
                last_epoch,
                acked,
            }
        };
        self.outbox.push((leader, message));
    }

    pub(crate) fn follower_tick(&mut self, now: Duration) -> Result<(), Error> {
        let patience = self.config.fetch_wait + self.config.fetch_timeout;
        // Records waiting for a sync are reported by `flush`, with the synced offset.
        let syncing = self.config.follower_ack == FollowerAck::Flushed
            && self.flushed < self.log.end_offset();
        let Some(f) = self.follower_state() else {
            return Ok(());
        };
        let due = match f.inflight {
            None => !syncing,
            Some((_, sent)) => now.saturating_sub(sent) >= patience,
        };
        if due {
            self.send_fetch(now);
        }
        Ok(())
    }

    pub(crate) fn follower_flushed(&mut self, now: Duration) {
        let acked = self.acked();
        let Some(f) = self.follower_state() else {
            return;
        };
        // A sync moved the acknowledged offset: tell the leader now (this fetch replaces one
        // it may be holding), not when its long poll ends.
        if f.leader.is_some() && acked > f.reported_acked {
            self.send_fetch(now);
        }
    }

    /// Takes the answer to this follower's fetch (the caller checked it comes from the
    /// leader of the current epoch).
    pub(crate) fn on_fetch_answer(&mut self, now: Duration, message: Message) -> Result<(), Error> {
        let answered = match &message {
            Message::Records { id, .. }
            | Message::Diverging { id, .. }
            | Message::OutOfRange { id, .. }
            | Message::InstallSnapshot { id, .. } => *id,
            _ => return Ok(()),
        };
        let Some(f) = self.follower_state() else {
            return Ok(());
        };
        if f.inflight.map(|(id, _)| id) != Some(answered) {
            return Ok(()); // a late, duplicated or superseded answer
        }
        f.inflight = None;
        match message {
            Message::Records {
                records, commit, ..
            } => {
                let end = self.log.end_offset();
                if let Some(first) = records.first_offset() {
                    if first != end {
                        return Ok(());
                    }
                    self.log.append_batch(&records)?;
                    records
                        .iter()
                        .for_each(|r| self.producers.observe(r.offset, r.payload));
                }
                // The answer vouches for the whole log up to its end: it matched the leader's.
                let verified = self.log.end_offset();
                // Caught up with a commit offset that covers every acknowledged write: one
                // past the current leader's epoch marker (a leader holds all of them before
                // its marker, and commits past it only with a majority).
                let marker = self
                    .log
                    .epochs()
                    .iter()
                    .find(|&&(e, _)| e == self.epoch)
                    .map(|&(_, first)| first);
                if !self.eligible && verified >= commit && marker.is_some_and(|m| commit > m) {
                    self.became_eligible()?;
                }
                let learned = commit.min(verified);
                if learned > self.commit {
                    self.commit = learned;
                    self.producers.committed(learned);
                }
                // Acking on flush, the next fetch waits for the sync (see `follower_flushed`).
                if self.config.follower_ack == FollowerAck::Received || self.flushed >= verified {
                    self.send_fetch(now);
                }
            }
            Message::Diverging { epoch_end, .. } => {
                let end = self.log.end_offset();
                let history = self.log.epochs();
                let cut = match epoch_end {
                    None => self.log.start_offset(),
                    Some((epoch, leader_end)) => {
                        // Where this log's `epoch` ends: the start of its next newer epoch.
                        let own_end = history
                            .iter()
                            .find(|&&(e, _)| e > epoch)
                            .map_or(end, |&(_, first)| first);
                        leader_end.min(own_end)
                    }
                };
                let cut = cut.max(self.log.start_offset()).min(end);
                if cut < self.commit {
                    // Cutting committed records would break the protocol's guarantee: refuse,
                    // and keep asking (a correct leader never asks for it).
                    return Err(Error::CommittedCut {
                        commit: self.commit.get(),
                        cut: cut.get(),
                    });
                }
                if cut < end {
                    self.log.truncate_from(cut)?;
                    self.producers.truncate_from(cut);
                    self.flushed = self.flushed.min(cut);
                    self.cuts += 1;
                }
                self.send_fetch(now);
            }
            Message::OutOfRange { .. } => {
                if let Some(f) = self.follower_state() {
                    f.needs_snapshot = true;
                }
                self.send_fetch(now);
            }
            Message::InstallSnapshot {
                snapshot,
                offset,
                last_epoch,
                len,
                at,
                data,
                ..
            } => {
                let commit = self.commit;
                let Some(f) = self.follower_state() else {
                    return Ok(());
                };
                if offset < commit {
                    // This follower already has more than the snapshot: fetch normally.
                    f.needs_snapshot = false;
                    f.receiving = None;
                    self.send_fetch(now);
                    return Ok(());
                }
                let Some((data, producers)) =
                    PartialSnapshot::receive(&mut f.receiving, snapshot, offset, len, at, data)
                        .and_then(split_producers)
                else {
                    self.send_fetch(now); // the next part, or the first again
                    return Ok(());
                };
                if let Some(sm) = &mut self.state_machine {
                    sm.install(&super::snapshot::Snapshot { offset, data })?;
                }
                // Stored with their offset first: if the replica crashes before its log is
                // reset, the old records left in it are not counted again on restart.
                let stored = StoredProducers {
                    upto: offset,
                    entries: producers,
                };
                self.store.store_producers(&stored)?;
                self.log.reset(offset, last_epoch)?;
                self.producers.install(&stored.entries, offset);
                self.commit = offset;
                self.flushed = offset;
                self.cuts += 1;
                if let Some(f) = self.follower_state() {
                    f.needs_snapshot = false;
                }
                self.send_fetch(now);
            }
            _ => {}
        }
        Ok(())
    }
}
