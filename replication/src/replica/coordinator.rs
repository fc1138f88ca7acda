//! Failure detection and failover: who leads, and choosing a new leader when it stops
//! answering.

use std::collections::BTreeMap;
use std::time::Duration;

use super::message::Message;
use super::types::{NodeId, Position, Role};
use crate::record::Epoch;

/// Decides who leads: watches the replicas' heartbeats and runs failovers. Sans-IO, like
/// [`Replica`](super::Replica): the driver delivers messages and time and sends the outbox.
///
/// A correct coordinator only promotes, in epoch `e`, the most up-to-date replica (by
/// [`Position`]) among a majority of the replica set that promised `e` (answered
/// [`Message::Prepare`]). That is what makes every write acknowledged at
/// [`AckLevel::Quorum`](super::AckLevel::Quorum) survive the failover: the majority that
/// promised and the majority that held the write share a replica, and the winner is at least
/// as up to date as it.
///
/// A [`Message::Follow`] that answers a replica's [`Message::Heartbeat`] must carry the
/// heartbeat's `incarnation`: a replica that lost its disk follows no other (see
/// [`ReplicaConfig::incarnation`](super::ReplicaConfig::incarnation)).
pub trait Coordinator {
    /// Handles a replica's message.
    fn handle(&mut self, now: Duration, from: NodeId, message: Message);

    /// Advances time: detects a silent leader, moves a failover along.
    fn tick(&mut self, now: Duration);

    /// Messages to send, as `(destination, message)`.
    fn take_outbox(&mut self) -> Vec<(NodeId, Message)>;

    /// The current leader and its epoch, once a failover has chosen one.
    fn leader(&self) -> Option<(NodeId, Epoch)>;

    /// Starts a failover now (an operator's request, or a planned leader change).
    fn fail_over(&mut self, now: Duration);
}

/// A [`Coordinator`] for one process or one machine: the leader holds a lease renewed by its
/// heartbeats; when it lapses, the coordinator asks every replica to promise a new epoch,
/// and promotes the most up-to-date of the first majority to answer (after a short window for
/// the others).
///
/// It keeps its state in memory: run one per replica set. A restarted coordinator may try an
/// epoch the replicas already passed, or the one they are in; they refuse it (a replica
/// promises its current epoch again only in the run that first promised it, while no leader
/// of it is known), say which epoch they know, and it goes above that.
#[derive(Debug)]
pub struct LeaseCoordinator {
    members: Vec<NodeId>,
    lease: Duration,
    collect_window: Duration,
    election_timeout: Duration,
    /// The newest epoch this coordinator started or heard of: the next election goes above it.
    epoch: Epoch,
    /// The current leader and the epoch it was elected in (which heartbeats and refusals
    /// never change: followers are sent to the leader in its own epoch).
    leader: Option<(NodeId, Epoch)>,
    /// When the current leader was chosen.
    decided_at: Duration,
    last_heard: BTreeMap<NodeId, Duration>,
    election: Option<Election>,
    outbox: Vec<(NodeId, Message)>,
    failovers: u64,
}

#[derive(Debug)]
struct Election {
    epoch: Epoch,
    started: Duration,
    majority_at: Option<Duration>,
    promised: BTreeMap<NodeId, Position>,
}

impl LeaseCoordinator {
    /// A coordinator for `members`, with a leader lease of `lease` (several heartbeat
    /// intervals: a shorter lease fails over sooner and more often by mistake).
    pub fn new(members: impl IntoIterator<Item = NodeId>, lease: Duration) -> Self {
        let mut members: Vec<NodeId> = members.into_iter().collect();
        members.sort_unstable();
        members.dedup();
        Self {
            members,
            lease,
            collect_window: lease / 4,
            election_timeout: lease * 4,
            epoch: Epoch::new(0),
            leader: None,
            decided_at: Duration::ZERO,
            last_heard: BTreeMap::new(),
            election: None,
            outbox: Vec::new(),
            failovers: 0,
        }
    }

    /// How many failovers chose a leader so far.
    pub fn failovers(&self) -> u64 {
        self.failovers
    }

    fn majority(&self) -> usize {
        self.members.len() / 2 + 1
    }

    fn start_election(&mut self, now: Duration) {
        // Saturating: an epoch at the top (a peer's hostile frame can raise replicas there,
        // peers being unauthenticated) stops failovers, but must not panic the coordinator.
        self.epoch = Epoch::new(self.epoch.get().saturating_add(1));
        self.leader = None;
        self.election = Some(Election {
            epoch: self.epoch,
            started: now,
            majority_at: None,
            promised: BTreeMap::new(),
        });
        for &m in &self.members {
            self.outbox
                .push((m, Message::Prepare { epoch: self.epoch }));
        }
    }

    fn decide(&mut self, now: Duration) {
        let Some(election) = self.election.take() else {
            return;
        };
        // Most up to date wins; ties go to the lowest id, deterministically.
        let Some((&winner, _)) = election
            .promised
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        else {
            return;
        };
        self.leader = Some((winner, election.epoch));
        self.decided_at = now;
        self.failovers += 1;
        self.last_heard.insert(winner, now);
        self.outbox.push((
            winner,
            Message::Promote {
                epoch: election.epoch,
            },
        ));
        for &m in &self.members {
            if m != winner {
                self.outbox.push((
                    m,
                    Message::Follow {
                        epoch: election.epoch,
                        leader: winner,
                        incarnation: None,
                    },
                ));
            }
        }
    }
}

impl Coordinator for LeaseCoordinator {
    fn handle(&mut self, now: Duration, from: NodeId, message: Message) {
        if !self.members.contains(&from) {
            return;
        }
        match message {
            Message::Heartbeat {
                epoch,
                role,
                leader,
                incarnation,
                ..
            } => {
                // Only a failover this coordinator ran names a leader: a restarted
                // coordinator must not take a paused old leader's word for it.
                self.epoch = self.epoch.max(epoch);
                self.last_heard.insert(from, now);
                if self.election.is_some() {
                    return;
                }
                let Some((current, led)) = self.leader else {
                    return;
                };
                if from == current {
                    let leads = role == Role::Leader && epoch == led;
                    // A heartbeat sent before the winner took its promotion says "follower":
                    // the new leader gets one lease to report in. After that, a leader that
                    // does not lead restarted, lost its disk or stepped down: fail over. (The
                    // promotion is never sent twice: a replica leads an epoch at most once.)
                    if !leads && now >= self.decided_at + self.lease {
                        self.start_election(now);
                    }
                } else if epoch > led {
                    // A replica past the leader's epoch can never follow it (an operator's
                    // promotion, or an election this coordinator forgot): elect above it.
                    self.start_election(now);
                } else if epoch < led || leader != Some(current) {
                    self.outbox.push((
                        from,
                        Message::Follow {
                            epoch: led,
                            leader: current,
                            incarnation: Some(incarnation),
                        },
                    ));
                }
            }
            Message::Prepared { epoch, position } => {
                let majority = self.majority();
                let all = self.members.len();
                if let Some(e) = &mut self.election
                    && e.epoch == epoch
                {
                    e.promised.insert(from, position);
                    if e.promised.len() >= majority && e.majority_at.is_none() {
                        e.majority_at = Some(now);
                    }
                    if e.promised.len() == all {
                        self.decide(now);
                    }
                }
            }
            Message::NotLeader { epoch, leader } => {
                // A replica refused a promise (it knows a newer epoch: go above it) or a
                // promotion (the chosen leader cannot lead: choose again). Not a refusal: the
                // chosen leader answering a Promote that overtook its Prepare (it is still
                // in an older epoch, and the Prepare is on its way), or a duplicate Prepare
                // that reached it after it began to lead (it names itself).
                let blocked = self.election.as_ref().is_some_and(|e| epoch >= e.epoch);
                let leader_refused = self.election.is_none()
                    && self
                        .leader
                        .is_some_and(|(l, e)| l == from && epoch >= e && leader != Some(from));
                self.epoch = self.epoch.max(epoch);
                // Refusals of an older election's messages are stale: ignoring them keeps one
                // refusal from restarting every election after it.
                if blocked || leader_refused {
                    self.start_election(now);
                }
            }
            _ => {}
        }
    }

    fn tick(&mut self, now: Duration) {
        if let Some(e) = &self.election {
            match e.majority_at {
                // A majority promised: the election completes, however long that took (a
                // restart would throw the promises away, and under load every round could be
                // late the same way).
                Some(t) if now >= t + self.collect_window => self.decide(now),
                Some(_) => {}
                None if now >= e.started + self.election_timeout => self.start_election(now),
                None => {}
            }
            return;
        }
        let lapsed = match self.leader {
            None => true,
            Some((l, _)) => self
                .last_heard
                .get(&l)
                .is_none_or(|&t| now.saturating_sub(t) > self.lease),
        };
        if lapsed {
            self.start_election(now);
        }
    }

    fn take_outbox(&mut self) -> Vec<(NodeId, Message)> {
        std::mem::take(&mut self.outbox)
    }

    fn leader(&self) -> Option<(NodeId, Epoch)> {
        self.leader
    }

    fn fail_over(&mut self, now: Duration) {
        self.start_election(now);
    }
}
