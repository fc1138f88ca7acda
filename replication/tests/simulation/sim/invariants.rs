//! The invariants, checked after every step and once the network has healed.

use shardkit_replication::LogStorage;
use shardkit_replication::Offset;
use shardkit_replication::replica::{Committed, NodeId, Replica, Role};

use super::clients::{payload_of, producer_of};
use super::{AckedWrite, Sim};
use crate::disk::SimDisk;

impl Sim {
    /// Every leader at an epoch at least as new as an acknowledged write's holds it.
    pub(super) fn check_leaders_hold(&self, writes: &[AckedWrite]) {
        for (&id, node) in &self.nodes {
            let Some(r) = &node.replica else { continue };
            if r.role() != Role::Leader {
                continue;
            }
            for w in writes.iter().filter(|w| w.epoch <= r.epoch()) {
                let expected = payload_of(w.producer);
                let held = if w.offset < r.log().start_offset() {
                    // Compacted: the user's state holds it.
                    let state = node.state.lock().unwrap();
                    state
                        .records
                        .iter()
                        .any(|(o, p)| *o == w.offset && p.ends_with(expected.as_slice()))
                } else {
                    r.log()
                        .read(w.offset, 1)
                        .ok()
                        .and_then(|v| v.into_iter().next())
                        .is_some_and(|rec| rec.payload.ends_with(expected.as_slice()))
                };
                if !held {
                    self.fail(&format!(
                        "leader {id} (epoch {}) lacks the acknowledged write {:?}",
                        r.epoch(),
                        w
                    ));
                }
            }
        }
    }

    pub(super) fn check(&mut self) {
        let mut new_leaders = false;
        let mut newly_committed: Vec<(NodeId, Vec<Committed>)> = Vec::new();
        for (&id, node) in self.nodes.iter_mut() {
            let Some(r) = &node.replica else { continue };
            if r.role() == Role::Leader && node.seen_leadership != Some(r.epoch()) {
                node.seen_leadership = Some(r.epoch());
                new_leaders = true;
                if self.tracing {
                    println!(
                        "{:>9.3?} {id} leads epoch {} at {:?}, log end {}",
                        self.now,
                        r.epoch(),
                        r.position(),
                        r.log().end_offset()
                    );
                }
            }
            let commit = r.commit_offset();
            if commit < node.checked {
                let msg = format!(
                    "{id}'s commit offset went back from {} to {commit}",
                    node.checked
                );
                self.fail(&msg);
            }
            if commit > r.log().end_offset() {
                self.fail(&format!("{id}'s commit offset is beyond its log"));
            }
            if commit > node.checked {
                let mut got = Vec::new();
                // Below the log's start the records came in a snapshot (checked at the end).
                let mut at = node.checked.max(r.log().start_offset());
                while at < commit {
                    let raw = r.log().read(at, 1 << 16).unwrap();
                    let Some(last) = raw.last() else { break };
                    let next = Offset::new(last.offset.get() + 1);
                    for rec in raw {
                        if rec.offset < commit {
                            got.push(Committed {
                                offset: rec.offset,
                                epoch: rec.epoch,
                                timestamp_ms: 0,
                                key: None,
                                payload: rec.payload,
                                producer: None,
                            });
                        }
                    }
                    at = next;
                }
                if self.tracing {
                    println!(
                        "{:>9.3?} {id} commits {}..{commit} (epoch {}, {:?})",
                        self.now,
                        node.checked,
                        r.epoch(),
                        r.role()
                    );
                }
                node.checked = commit;
                let mut state = node.state.lock().unwrap();
                for rec in &got {
                    if rec.offset >= state.applied_to && rec.payload.first() != Some(&2) {
                        state.records.push((rec.offset, rec.payload.clone()));
                    }
                }
                state.applied_to = state.applied_to.max(commit);
                drop(state);
                newly_committed.push((id, got));
            }
        }
        for (id, records) in newly_committed {
            for rec in records {
                match self.history.get(&rec.offset) {
                    Some((epoch, payload)) if (*epoch, payload) != (rec.epoch, &rec.payload) => {
                        self.fail(&format!(
                            "log matching broken at committed offset {}: {id} has epoch {} where another replica committed epoch {}",
                            rec.offset, rec.epoch, epoch
                        ));
                    }
                    Some(_) => {}
                    None => {
                        if let Some(p) = producer_of(&rec.payload)
                            && let Some(other) =
                                self.applied.insert((p.producer, p.seq), rec.offset)
                            && other != rec.offset
                        {
                            self.fail(&format!(
                                "idempotent write {p:?} applied twice, at {other} and {}",
                                rec.offset
                            ));
                        }
                        self.history.insert(rec.offset, (rec.epoch, rec.payload));
                    }
                }
            }
        }
        if new_leaders {
            let acked = self.acked.clone();
            self.check_leaders_hold(&acked);
        }
    }
    pub(super) fn check_converged(&self) {
        let leaders: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.replica.as_ref().is_some_and(|r| r.role() == Role::Leader))
            .map(|(&id, _)| id)
            .collect();
        let Some(&leader) = leaders
            .iter()
            .max_by_key(|&&id| self.nodes[&id].replica.as_ref().unwrap().epoch())
        else {
            self.fail("no leader after the network healed");
        };
        let lead = self.nodes[&leader].replica.as_ref().unwrap();
        let end = lead.log().end_offset();
        // What every user's state must be: the committed data records, in order.
        let reference: Vec<(Offset, Vec<u8>)> = self
            .history
            .range(..end)
            .filter(|(_, (_, payload))| payload.first() != Some(&2))
            .map(|(&offset, (_, payload))| (offset, payload.clone()))
            .collect();
        if let Some(gap) = (0..end.get()).find(|&o| !self.history.contains_key(&Offset::new(o))) {
            self.fail(&format!(
                "the committed history has a gap at {gap} (end {end})"
            ));
        }
        let start = self
            .nodes
            .values()
            .map(|n| n.replica.as_ref().unwrap().log().start_offset())
            .max()
            .unwrap();
        let tail = |r: &Replica<SimDisk>| r.log().read(start, usize::MAX).unwrap_or_default();
        let lead_tail = tail(lead);
        for (&id, node) in &self.nodes {
            let r = node.replica.as_ref().unwrap();
            if r.commit_offset() != end || r.log().end_offset() != end {
                self.fail(&format!(
                    "{id} did not converge: commit {} end {} against leader {leader}'s end {end}",
                    r.commit_offset(),
                    r.log().end_offset()
                ));
            }
            if tail(r) != lead_tail {
                self.fail(&format!("{id}'s log differs from leader {leader}'s"));
            }
            let state = node.state.lock().unwrap();
            if state.records != reference {
                self.fail(&format!(
                    "{id}'s state ({} records) differs from the committed history ({})",
                    state.records.len(),
                    reference.len()
                ));
            }
        }
        for w in &self.acked {
            let held = reference.iter().any(|(offset, payload)| {
                *offset == w.offset && payload.ends_with(payload_of(w.producer).as_slice())
            });
            if !held {
                self.fail(&format!(
                    "acknowledged write {w:?} is missing after convergence"
                ));
            }
        }
    }
}
