//! The leader's half: accepting writes, serving fetches, tracking each follower, the in-sync
//! set and the commit offset.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use super::core::{Replica, RoleState, epoch_at};
use super::envelope;
use super::error::WriteError;
use super::message::{Message, SnapshotResume};
use super::pending::PendingWrites;
use super::snapshot::ServedSnapshot;
use super::status::FollowerStatus;
use super::types::{AckLevel, NodeId, ReplicaConfig};
use super::write::{Completion, Write, WriteId, Written};
use crate::batch::RecordBatch;
use crate::error::Error;
use crate::log::storage::{Entry, LogStorage};
use crate::record::{Epoch, Offset};

/// What the leader knows of one follower.
#[derive(Debug)]
pub(crate) struct Progress {
    /// The follower's log end, as its last matching fetch said.
    end: Offset,
    /// What the follower holds by its ack mode.
    acked: Offset,
    /// The last time the follower had fetched everything the leader had sent it.
    caught_up_at: Duration,
    /// The leader's end when it last answered this follower.
    sent_end: Offset,
    last_fetch: Option<Duration>,
    /// A fetch held until there is something to send.
    parked: Option<Parked>,
}

#[derive(Debug, Clone, Copy)]
struct Parked {
    id: u64,
    from: Offset,
    deadline: Duration,
}

pub(crate) struct LeaderState {
    /// The offset of this epoch's marker: the commit offset moves past it only by counting
    /// copies of this epoch's records (Raft's rule against committing an older leader's
    /// records by counting alone).
    epoch_start: Offset,
    followers: BTreeMap<NodeId, Progress>,
    pending: PendingWrites,
    /// `(log end, bytes appended so far)` after each append, for lag in bytes.
    appended_bytes: VecDeque<(Offset, u64)>,
    total_bytes: u64,
    /// The snapshot being handed out to followers behind the retained log, if any (boxed: it
    /// is rare, and the role's state stays small).
    snapshot: Option<Box<ServedSnapshot>>,
}

impl LeaderState {
    pub(crate) fn new(epoch_start: Offset, config: &ReplicaConfig, now: Duration) -> Self {
        let followers = config
            .members
            .iter()
            .filter(|&&m| m != config.id)
            .map(|&m| {
                (
                    m,
                    Progress {
                        end: Offset::new(0),
                        acked: Offset::new(0),
                        // A new leader gives each follower one lag period to show up.
                        caught_up_at: now,
                        sent_end: Offset::new(0),
                        last_fetch: None,
                        parked: None,
                    },
                )
            })
            .collect();
        Self {
            epoch_start,
            followers,
            pending: PendingWrites::default(),
            appended_bytes: VecDeque::new(),
            total_bytes: 0,
            snapshot: None,
        }
    }

    pub(crate) fn note_appended(&mut self, end: Offset, bytes: u64) {
        self.total_bytes += bytes;
        self.appended_bytes.push_back((end, self.total_bytes));
        // Lag in bytes is reported to the append batch; a bounded history is enough.
        if self.appended_bytes.len() > 4096 {
            self.appended_bytes.pop_front();
        }
    }

    fn bytes_at(&self, offset: Offset) -> u64 {
        let i = self
            .appended_bytes
            .partition_point(|&(end, _)| end <= offset);
        match i.checked_sub(1) {
            Some(i) => self.appended_bytes[i].1,
            None => 0,
        }
    }

    fn in_sync(&self, p: &Progress, config: &ReplicaConfig, end: Offset, now: Duration) -> bool {
        let lag = end.get().saturating_sub(p.end.get());
        let behind_for = now.saturating_sub(p.caught_up_at);
        let records_ok = p.last_fetch.is_none() || lag <= config.max_lag_records;
        records_ok && behind_for <= config.max_lag_time
    }

    /// Replicas in sync, the leader included.
    fn in_sync_count(&self, config: &ReplicaConfig, end: Offset, now: Duration) -> usize {
        1 + self
            .followers
            .values()
            .filter(|p| self.in_sync(p, config, end, now))
            .count()
    }

    pub(crate) fn follower_status(
        &self,
        config: &ReplicaConfig,
        end: Offset,
        now: Duration,
    ) -> Vec<FollowerStatus> {
        self.followers
            .iter()
            .map(|(&id, p)| FollowerStatus {
                id,
                end: p.end,
                acked: p.acked,
                lag_records: end.get().saturating_sub(p.end.get()),
                lag_bytes: self.total_bytes.saturating_sub(self.bytes_at(p.end)),
                lag_time: now.saturating_sub(p.caught_up_at),
                in_sync: self.in_sync(p, config, end, now),
                last_fetch_ago: p.last_fetch.map(|t| now.saturating_sub(t)),
            })
            .collect()
    }
}

impl<S: LogStorage> Replica<S> {
    /// Accepts a write on the leader. An `Ok` is not an acknowledgement: the write's
    /// [`Completion`] says when it reached its level (at once for [`AckLevel::None`]).
    ///
    /// # Errors
    ///
    /// Refusals that leave nothing written: [`WriteError::NotLeader`],
    /// [`WriteError::NotEnoughReplicas`], [`WriteError::TooLarge`], [`WriteError::Storage`].
    pub fn write(&mut self, now: Duration, write: Write) -> Result<WriteId, WriteError> {
        self.write_batch(now, vec![write])
            .pop()
            .unwrap_or(Err(WriteError::NotLeader {
                leader: None,
                epoch: self.epoch,
            }))
    }

    /// Accepts several writes with one append (and later one sync): the way to group-commit.
    /// Returns one result per write, in order, as [`write`](Self::write) does.
    pub fn write_batch(
        &mut self,
        now: Duration,
        writes: Vec<Write>,
    ) -> Vec<Result<WriteId, WriteError>> {
        let max_record = self.max_record();
        let epoch = self.epoch;
        let config = &self.config;
        let end = self.log.end_offset();
        let RoleState::Leader(leader) = &mut self.role else {
            let leader = self.leader();
            return writes
                .iter()
                .map(|_| Err(WriteError::NotLeader { leader, epoch }))
                .collect();
        };
        let in_sync = leader.in_sync_count(config, end, now);
        let mut results = Vec::with_capacity(writes.len());
        // The encoded payloads, one after another, and where each ends.
        let (mut payloads, mut ends) = (Vec::new(), Vec::new());
        let mut fresh = Vec::new(); // (index in results, write)
        // Retries whose first copy is in this batch: they wait only once the batch is in.
        let mut retries = Vec::new();
        for write in writes {
            let strong = matches!(write.ack, AckLevel::Quorum | AckLevel::All);
            if strong && in_sync < config.min_in_sync_replicas {
                results.push(Err(WriteError::NotEnoughReplicas {
                    in_sync,
                    required: config.min_in_sync_replicas,
                }));
                continue;
            }
            let id = WriteId(self.next_write_id);
            self.next_write_id += 1;
            // Saturating: `Duration::MAX` is a caller's "no timeout".
            let deadline = now.saturating_add(write.timeout);
            let previous = write
                .producer
                .and_then(|p| self.producers.last(p.producer).map(|l| (p, l)));
            if let Some((p, last)) = previous
                && p.seq <= last.seq
            {
                if last.offset >= end {
                    retries.push((results.len(), last.offset, id, write.ack, deadline));
                } else {
                    leader
                        .pending
                        .push_duplicate(last.offset, id, write.ack, deadline);
                }
                results.push(Ok(id));
                continue;
            }
            // After the retries: one of a record written under a larger limit is answered.
            let len = envelope::framed_len(write.producer, write.key.as_deref(), &write.payload);
            if len > max_record {
                results.push(Err(WriteError::TooLarge {
                    len,
                    max: max_record,
                }));
                continue;
            }
            let offset = Offset::new(end.get() + ends.len() as u64);
            if let Some(p) = write.producer {
                self.producers.observe_write(p, offset);
            }
            envelope::encode_data_into(write.producer, &write.payload, &mut payloads);
            ends.push(payloads.len());
            fresh.push((results.len(), id, offset, write));
            results.push(Ok(id));
        }
        if fresh.is_empty() {
            self.advance_commit(now);
            return results;
        }
        let starts = std::iter::once(0).chain(ends.iter().copied());
        let entries: Vec<Entry<'_>> = fresh
            .iter()
            .zip(starts.zip(&ends))
            .map(|((_, _, _, w), (start, &end))| Entry {
                key: w.key.as_deref(),
                payload: &payloads[start..end],
            })
            .collect();
        match self.log.append(epoch, &entries) {
            Ok(_) => {
                let bytes: usize = entries
                    .iter()
                    .map(|e| crate::log::memory::framed_len(e.key, e.payload))
                    .sum();
                let RoleState::Leader(leader) = &mut self.role else {
                    unreachable!("the role cannot change during a write")
                };
                leader.note_appended(self.log.end_offset(), bytes as u64);
                for (_, id, offset, write) in fresh {
                    leader
                        .pending
                        .push(offset, id, write.ack, now.saturating_add(write.timeout));
                }
                for (_, offset, id, ack, deadline) in retries {
                    leader.pending.push_duplicate(offset, id, ack, deadline);
                }
                self.serve_parked(now);
                self.advance_commit(now);
            }
            Err(e) => {
                self.producers.truncate_from(end);
                let e = std::sync::Arc::new(e);
                let failed = fresh.iter().map(|f| f.0).chain(retries.iter().map(|r| r.0));
                for i in failed {
                    results[i] = Err(WriteError::Storage(e.clone()));
                }
            }
        }
        results
    }

    pub(crate) fn on_fetch(
        &mut self,
        now: Duration,
        from_node: NodeId,
        id: u64,
        from: Offset,
        last_epoch: Epoch,
        acked: Offset,
    ) -> Result<(), Error> {
        let epoch = self.epoch;
        let end = self.log.end_offset();
        let start = self.log.start_offset();
        let history = self.log.epochs();
        let matches = from == Offset::new(0)
            || (from <= end && epoch_at(&history, Offset::new(from.get() - 1)) == Some(last_epoch));
        let RoleState::Leader(leader) = &mut self.role else {
            return Ok(());
        };
        let Some(progress) = leader.followers.get_mut(&from_node) else {
            return Ok(());
        };
        progress.last_fetch = Some(now);
        progress.parked = None;
        if from < start {
            // Below the retained log nothing can be checked or sent: a snapshot replaces it.
            self.outbox
                .push((from_node, Message::OutOfRange { epoch, id, start }));
            return Ok(());
        }
        if !matches {
            let epoch_end = history
                .iter()
                .enumerate()
                .rev()
                .find(|(_, (e, _))| *e <= last_epoch)
                .map(|(i, &(e, _))| {
                    let end_of = history.get(i + 1).map_or(end, |&(_, first)| first);
                    (e, end_of)
                });
            let message = match epoch_end {
                // The follower's epoch predates what this log remembers (it restarted from a
                // snapshot): only a snapshot can settle where the logs part.
                None if start > Offset::new(0) => Message::OutOfRange { epoch, id, start },
                _ => Message::Diverging {
                    epoch,
                    id,
                    epoch_end,
                },
            };
            self.outbox.push((from_node, message));
            return Ok(());
        }
        if from >= progress.sent_end {
            progress.caught_up_at = now;
        }
        progress.end = from;
        progress.acked = acked.min(from);
        if from < end {
            self.send_records(from_node, id, from)?;
        } else {
            progress.parked = Some(Parked {
                id,
                from,
                deadline: now.saturating_add(self.config.fetch_wait),
            });
        }
        self.advance_commit(now);
        Ok(())
    }

    /// Answers a follower that needs a snapshot with the next part of the one being served,
    /// taken afresh when none is or the log no longer continues it.
    ///
    /// While one is served, compaction keeps the records after its offset (see
    /// [`Self::served_snapshot_offset`]): a transfer slower than compaction would otherwise
    /// start over for ever.
    pub(crate) fn on_fetch_snapshot(
        &mut self,
        now: Duration,
        to: NodeId,
        id: u64,
        resume: Option<SnapshotResume>,
    ) -> Result<(), Error> {
        let start = self.log.start_offset();
        let part_bytes = self.carried_bytes();
        let RoleState::Leader(leader) = &mut self.role else {
            return Ok(());
        };
        if leader.snapshot.as_ref().is_none_or(|s| s.offset < start) {
            leader.snapshot = None;
            let Some(fresh) = self.take_snapshot()? else {
                return Ok(()); // the follower asks again; a later snapshot may do
            };
            if let RoleState::Leader(leader) = &mut self.role {
                leader.snapshot = Some(Box::new(fresh));
            }
        }
        let RoleState::Leader(LeaderState {
            snapshot: Some(served),
            ..
        }) = &mut self.role
        else {
            return Ok(());
        };
        // A follower holding part of another snapshot (an older one, or one taken before
        // this leader's restart) starts this one from its first byte.
        let from = resume
            .filter(|r| r.snapshot == served.id && r.from <= served.bytes.len() as u64)
            .map_or(0, |r| r.from);
        served.last_asked = now;
        let data = served.part(from, part_bytes).unwrap_or_default().to_vec();
        self.outbox.push((
            to,
            Message::InstallSnapshot {
                epoch: self.epoch,
                id,
                snapshot: served.id,
                offset: served.offset,
                last_epoch: served.last_epoch,
                len: served.bytes.len() as u64,
                at: from,
                data,
            },
        ));
        Ok(())
    }

    /// The offset of the snapshot being served to followers, if any.
    pub(crate) fn served_snapshot_offset(&self) -> Option<Offset> {
        match &self.role {
            RoleState::Leader(LeaderState {
                snapshot: Some(s), ..
            }) => Some(s.offset),
            _ => None,
        }
    }

    /// A snapshot to serve: the state machine's, or without one, an empty state at the log's
    /// start; `None` if the log does not continue it.
    fn take_snapshot(&mut self) -> Result<Option<ServedSnapshot>, Error> {
        let start = self.log.start_offset();
        let snapshot = match &mut self.state_machine {
            Some(sm) => sm.snapshot()?,
            None => super::snapshot::Snapshot {
                offset: start,
                data: Vec::new(),
            },
        };
        // Only a snapshot the log continues can be installed. (It holds only committed
        // records by the state machine's contract, which this leader may not know yet to be
        // committed: after a restart it learns the commit offset anew.)
        if snapshot.offset < start || snapshot.offset > self.log.end_offset() {
            return Ok(None);
        }
        let producers = self.producers_before(snapshot.offset)?.entries;
        let last_epoch = snapshot
            .offset
            .get()
            .checked_sub(1)
            .and_then(|last| epoch_at(&self.log.epochs(), Offset::new(last)))
            .unwrap_or_default();
        let id = self.next_id;
        self.next_id = id.wrapping_add(1);
        Ok(Some(ServedSnapshot::new(
            id, snapshot, last_epoch, &producers,
        )))
    }

    fn send_records(&mut self, to: NodeId, id: u64, from: Offset) -> Result<(), Error> {
        let records = if from < self.log.end_offset() {
            self.log.read_batch(from, self.carried_bytes())?
        } else {
            RecordBatch::new()
        };
        let end = self.log.end_offset();
        if let RoleState::Leader(leader) = &mut self.role
            && let Some(p) = leader.followers.get_mut(&to)
        {
            p.sent_end = end;
        }
        self.outbox.push((
            to,
            Message::Records {
                epoch: self.epoch,
                id,
                records,
                commit: self.commit,
            },
        ));
        Ok(())
    }

    /// Answers held fetches that now have records to receive.
    fn serve_parked(&mut self, now: Duration) {
        let end = self.log.end_offset();
        let RoleState::Leader(leader) = &mut self.role else {
            return;
        };
        let ready: Vec<(NodeId, Parked)> = leader
            .followers
            .iter_mut()
            .filter_map(|(&id, p)| {
                let ready = p.parked.is_some_and(|k| k.from < end || now >= k.deadline);
                if ready {
                    p.parked.take().map(|k| (id, k))
                } else {
                    None
                }
            })
            .collect();
        for (to, parked) in ready {
            // A read error here is the log's problem; the follower will fetch again.
            let _ = self.send_records(to, parked.id, parked.from);
        }
    }

    /// Moves the commit offset to what a majority holds, and completes the writes that
    /// reached their level.
    pub(crate) fn advance_commit(&mut self, now: Duration) {
        let flushed = self.flushed;
        let end = self.log.end_offset();
        let quorum = self.config.quorum();
        let min_isr = self.config.min_in_sync_replicas;
        let config = self.config.clone();
        let RoleState::Leader(leader) = &mut self.role else {
            return;
        };
        let mut held: Vec<Offset> = leader.followers.values().map(|p| p.acked).collect();
        held.push(flushed);
        held.sort_unstable_by(|a, b| b.cmp(a));
        let majority_holds = held[quorum - 1];
        let mut commit = self.commit;
        if majority_holds > leader.epoch_start && majority_holds > commit {
            commit = majority_holds;
        }
        let in_sync_acked = leader
            .followers
            .values()
            .filter(|p| leader.in_sync(p, &config, end, now))
            .map(|p| p.acked)
            .min()
            .unwrap_or(end)
            .min(flushed);
        let enough_in_sync = leader.in_sync_count(&config, end, now) >= min_isr;
        let completions = &mut self.completions;
        leader.pending.complete(
            |ack, offset| match ack {
                AckLevel::None => true,
                AckLevel::Leader => offset < flushed,
                AckLevel::Quorum => offset < commit,
                AckLevel::All => offset < commit && offset < in_sync_acked && enough_in_sync,
            },
            |offset, id, duplicate| {
                completions.push(Completion {
                    id,
                    result: Ok(Written { offset, duplicate }),
                })
            },
        );
        if commit > self.commit {
            self.commit = commit;
            self.producers.committed(commit);
            // Followers learn the new commit offset now, not at their next long-poll expiry.
            let RoleState::Leader(leader) = &mut self.role else {
                return;
            };
            let held: Vec<(NodeId, Parked)> = leader
                .followers
                .iter_mut()
                .filter_map(|(&id, p)| p.parked.take().map(|k| (id, k)))
                .collect();
            for (to, parked) in held {
                let _ = self.send_records(to, parked.id, parked.from);
            }
        }
    }

    pub(crate) fn leader_tick(&mut self, now: Duration) -> Result<(), Error> {
        self.serve_parked(now);
        let RoleState::Leader(leader) = &mut self.role else {
            return Ok(());
        };
        let completions = &mut self.completions;
        leader.pending.expire(now, |offset, id| {
            completions.push(Completion {
                id,
                result: Err(WriteError::Timeout { offset }),
            })
        });
        // A snapshot nobody asked for in two of a follower's fetch timeouts is done with.
        let patience = self.config.fetch_wait + self.config.fetch_timeout;
        if leader
            .snapshot
            .as_ref()
            .is_some_and(|s| now.saturating_sub(s.last_asked) > patience.saturating_mul(2))
        {
            leader.snapshot = None;
        }
        // A follower leaving the in-sync set can complete `All` writes.
        self.advance_commit(now);
        Ok(())
    }

    /// Ends a leadership: every waiting write's fate is unknown.
    pub(crate) fn step_down(&mut self) {
        if let RoleState::Leader(leader) = &mut self.role {
            let completions = &mut self.completions;
            leader.pending.drain(|offset, id| {
                completions.push(Completion {
                    id,
                    result: Err(WriteError::LeadershipLost { offset }),
                })
            });
        }
    }
}
