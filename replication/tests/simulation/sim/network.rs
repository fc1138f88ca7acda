//! The network: messages in flight, delivered in time order, lost, delayed, duplicated
//! and cut as the faults say.

use shardkit_replication::Epoch;
use shardkit_replication::replica::{
    Coordinator, Message, NodeId, Packet, Write, Written, encode_packet,
};
use std::time::Duration;

use super::clients::refusal;
use super::{COORDINATOR, Sim};

#[derive(Debug, Clone)]
pub(super) enum Payload {
    Protocol(Message),
    Request { req: u64, write: Write },
    Response { req: u64, outcome: Outcome },
}

#[derive(Debug, Clone)]
pub(super) enum Outcome {
    Acked(Written, Epoch),
    NotLeader(Option<NodeId>),
    Refused,
    Unknown,
}

#[derive(Debug)]
pub(super) struct InFlight {
    at: Duration,
    seq: u64,
    from: NodeId,
    to: NodeId,
    payload: Payload,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq)) // a min-heap
    }
}

impl Sim {
    pub(super) fn send(&mut self, from: NodeId, to: NodeId, payload: Payload) {
        if let (Some(limit), Payload::Protocol(message)) = (self.packet_limit, &payload) {
            let mut bytes = Vec::new();
            let packet = Packet::Protocol {
                from,
                message: message.clone(),
            };
            let body = encode_packet(&packet, &mut bytes).map(|()| bytes.len() - 8);
            if !body.as_ref().is_ok_and(|&body| body <= limit) {
                self.fail(&format!(
                    "{from} sent {to} a message of {body:?} bytes, over the packet limit of {limit}"
                ));
            }
        }
        if self.cut.contains(&(from, to)) || self.rng.chance(self.loss) {
            return;
        }
        let copies = if self.rng.chance(10_000) { 2 } else { 1 };
        for _ in 0..copies {
            let mut delay = Duration::from_micros(200 + self.rng.below(3_000));
            if self.rng.chance(20_000) {
                delay += Duration::from_millis(self.rng.below(300));
            }
            self.net_seq += 1;
            self.net.push(InFlight {
                at: self.now + delay,
                seq: self.net_seq,
                from,
                to,
                payload: payload.clone(),
            });
        }
    }
    pub(super) fn deliver(&mut self) {
        // A bounded network: a protocol bug that multiplies messages (a refusal answered by
        // a refusal) shows up here rather than as a hang.
        if self.net.len() > 50_000 {
            self.fail(&format!(
                "{} messages in flight: a message storm",
                self.net.len()
            ));
        }
        while self.net.peek().is_some_and(|m| m.at <= self.now) {
            let m = self.net.pop().unwrap();
            if m.to == COORDINATOR {
                if let Payload::Protocol(msg) = m.payload {
                    if matches!(msg, Message::Prepared { .. } | Message::NotLeader { .. }) {
                        self.trace(|| format!("coordinator hears {msg:?} from {}", m.from));
                    }
                    self.coordinator.handle(self.now, m.from, msg);
                }
                continue;
            }
            if let Some(ci) = self.clients.iter().position(|c| c.id == m.to) {
                if let Payload::Response { req, outcome } = m.payload {
                    self.on_response(ci, m.from, req, outcome);
                }
                continue;
            }
            if !self.nodes.contains_key(&m.to) {
                continue;
            }
            if self.nodes[&m.to].replica.is_none() {
                continue; // a crashed node loses what it is sent
            }
            if self.now < self.nodes[&m.to].paused_until {
                // A paused process reads its socket later.
                let mut m = m;
                m.at = self.nodes[&m.to].paused_until;
                self.net.push(m);
                continue;
            }
            let now = self.now;
            let seed = self.seed;
            let node = self.nodes.get_mut(&m.to).unwrap();
            let replica = node.replica.as_mut().unwrap();
            match m.payload {
                Payload::Protocol(msg) => {
                    if self.tracing
                        && matches!(
                            msg,
                            Message::Promote { .. }
                                | Message::Follow { .. }
                                | Message::Prepare { .. }
                        )
                    {
                        println!(
                            "{now:>9.3?} {} gets {msg:?} from {} at epoch {} eligible {}",
                            m.to,
                            m.from,
                            replica.epoch(),
                            replica.is_eligible()
                        );
                    }
                    if let Message::InstallSnapshot { len, at, data, .. } = &msg
                        && *at > 0
                        && *at + data.len() as u64 == *len
                    {
                        self.multi_part_snapshots += 1;
                    }
                    if let Err(e) = replica.handle(now, m.from, msg) {
                        panic!("seed {seed}: {} failed handling a message: {e}", m.to);
                    }
                }
                Payload::Request { req, write } => match replica.write(now, write) {
                    Ok(id) => {
                        node.waiting.insert(id, (m.from, req));
                    }
                    Err(e) => {
                        let outcome = refusal(&e);
                        self.send(m.to, m.from, Payload::Response { req, outcome });
                    }
                },
                Payload::Response { .. } => {}
            }
        }
    }
}
