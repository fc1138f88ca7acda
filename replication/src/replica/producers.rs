//! The last sequence number each idempotent producer wrote, kept by every replica as records
//! reach its log, so that a new leader can tell a retried write from a new one.

use std::collections::HashMap;

use super::envelope::{self, Envelope};
use super::store::ProducerEntry;
use super::types::ProducerSeq;
use crate::record::Offset;

/// A producer's latest write in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LastWrite {
    pub(crate) seq: u64,
    pub(crate) offset: Offset,
}

/// Producers' latest writes, with an undo log for records not yet committed (a follower may
/// have to cut them).
#[derive(Debug, Default)]
pub(crate) struct ProducerTable {
    last: HashMap<u64, LastWrite>,
    /// For each uncommitted idempotent record: its offset, producer and what it replaced.
    undo: std::collections::VecDeque<(Offset, u64, Option<LastWrite>)>,
}

impl ProducerTable {
    /// The producer's latest write.
    pub(crate) fn last(&self, producer: u64) -> Option<LastWrite> {
        self.last.get(&producer).copied()
    }

    /// Producers' latest writes before `offset`, for a snapshot.
    pub(crate) fn before(&self, offset: Offset) -> Vec<ProducerEntry> {
        let mut out: Vec<ProducerEntry> = self
            .last
            .iter()
            .filter(|(_, w)| w.offset < offset)
            .map(|(&p, w)| (p, w.seq, w.offset))
            .collect();
        out.sort_unstable();
        out
    }

    /// Replaces the table with a snapshot's.
    pub(crate) fn install(&mut self, entries: &[ProducerEntry]) {
        self.undo.clear();
        self.last = entries
            .iter()
            .map(|&(p, seq, offset)| (p, LastWrite { seq, offset }))
            .collect();
    }

    /// Notes a record that reached the log.
    pub(crate) fn observe(&mut self, offset: Offset, payload: &[u8]) {
        if let Some(Envelope::Data {
            producer: Some(p), ..
        }) = envelope::decode(payload)
        {
            self.observe_write(p, offset);
        }
    }

    pub(crate) fn observe_write(&mut self, p: ProducerSeq, offset: Offset) {
        let previous = self
            .last
            .insert(p.producer, LastWrite { seq: p.seq, offset });
        self.undo.push_back((offset, p.producer, previous));
    }

    /// Records below `commit` can no longer be cut: forgets how to undo them.
    pub(crate) fn committed(&mut self, commit: Offset) {
        while self.undo.front().is_some_and(|u| u.0 < commit) {
            self.undo.pop_front();
        }
    }

    /// Undoes every record at or after `offset` (the log was cut there).
    pub(crate) fn truncate_from(&mut self, offset: Offset) {
        while let Some(&(at, producer, previous)) = self.undo.back() {
            if at < offset {
                break;
            }
            self.undo.pop_back();
            match previous {
                Some(p) => self.last.insert(producer, p),
                None => self.last.remove(&producer),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(producer: u64, seq: u64) -> Vec<u8> {
        envelope::encode_data(Some(ProducerSeq { producer, seq }), b"x")
    }

    #[test]
    fn truncation_restores_the_previous_write() {
        let mut t = ProducerTable::default();
        t.observe(Offset::new(0), &write(1, 0));
        t.observe(Offset::new(1), &write(1, 1));
        t.observe(Offset::new(2), &write(2, 0));
        t.committed(Offset::new(1));
        t.truncate_from(Offset::new(1));
        assert_eq!(
            t.last(1),
            Some(LastWrite {
                seq: 0,
                offset: Offset::new(0)
            })
        );
        assert_eq!(t.last(2), None);
    }
}
