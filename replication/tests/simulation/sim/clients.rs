//! Idempotent clients: each sends one write at a time and retries it, with the same
//! sequence number, when the answer is lost or late.

use std::time::Duration;

use shardkit_replication::replica::{AckLevel, NodeId, ProducerSeq, Write, WriteError};

use super::network::{Outcome, Payload};
use super::{AckedWrite, Sim};

impl Sim {
    pub(super) fn on_response(&mut self, ci: usize, from: NodeId, req: u64, outcome: Outcome) {
        let client = &mut self.clients[ci];
        let Some((want, _, level)) = client.outstanding else {
            return;
        };
        if want != req {
            return;
        }
        client.outstanding = None;
        match outcome {
            Outcome::Acked(w, epoch) => {
                let producer = ProducerSeq {
                    producer: client.producer,
                    seq: client.seq,
                };
                client.seq += 1;
                if matches!(level, AckLevel::Quorum | AckLevel::All) {
                    let acked = AckedWrite {
                        producer,
                        offset: w.offset,
                        epoch,
                    };
                    self.acked.push(acked);
                    self.trace(|| format!("acked {acked:?} by {from}"));
                    self.check_leaders_hold(&[acked]);
                }
            }
            Outcome::NotLeader(leader) => {
                let members = self.members.clone();
                let client = &mut self.clients[ci];
                client.target =
                    leader.unwrap_or_else(|| members[(from.get() as usize) % members.len()]);
            }
            Outcome::Refused | Outcome::Unknown => {}
        }
    }

    pub(super) fn drive_clients(&mut self) {
        for ci in 0..self.clients.len() {
            let now = self.now;
            let client = &self.clients[ci];
            let resend = match client.outstanding {
                None => true,
                // A lost request or answer: try again, with the same sequence number.
                Some((_, sent, _)) => now.saturating_sub(sent) > Duration::from_millis(400),
            };
            let finishing = self.now >= self.chaos_end;
            if !resend || !self.rng.chance(300_000) || (finishing && client.outstanding.is_none()) {
                continue;
            }
            let level = self.rng.pick(&[
                AckLevel::Quorum,
                AckLevel::Quorum,
                AckLevel::All,
                AckLevel::Leader,
                AckLevel::None,
            ]);
            let target = if client.outstanding.is_some() && self.rng.chance(500_000) {
                self.rng.pick(&self.members.clone())
            } else {
                client.target
            };
            let client = &mut self.clients[ci];
            client.target = target;
            let req = client.next_req;
            client.next_req += 1;
            client.outstanding = Some((req, now, level));
            let write = Write::new(
                format!("p{}s{}", client.producer, client.seq).into_bytes(),
                level,
            )
            .idempotent(client.producer, client.seq)
            .with_timeout(Duration::from_millis(300));
            let from = client.id;
            self.send(from, target, Payload::Request { req, write });
        }
    }
}

pub(super) fn refusal(e: &WriteError) -> Outcome {
    match e {
        WriteError::NotLeader { leader, .. } => Outcome::NotLeader(*leader),
        e if e.is_fate_unknown() => Outcome::Unknown,
        _ => Outcome::Refused,
    }
}

pub(super) fn payload_of(p: ProducerSeq) -> Vec<u8> {
    format!("p{}s{}", p.producer, p.seq).into_bytes()
}

/// The producer of a replicated record's payload (tag 1: producer and sequence follow).
pub(super) fn producer_of(payload: &[u8]) -> Option<ProducerSeq> {
    if payload.first() != Some(&1) || payload.len() < 17 {
        return None;
    }
    Some(ProducerSeq {
        producer: u64::from_le_bytes(payload[1..9].try_into().unwrap()),
        seq: u64::from_le_bytes(payload[9..17].try_into().unwrap()),
    })
}
