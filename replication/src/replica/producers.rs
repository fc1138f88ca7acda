//! The last sequence number each idempotent producer wrote, kept by every replica as records
//! reach its log, so that a new leader can tell a retried write from a new one.

use std::collections::HashMap;

use super::envelope::{self, Envelope};
use super::store::{ProducerEntry, ReplicaStore, StoredProducers};
use super::types::ProducerSeq;
use crate::error::Error;
use crate::log::storage::LogStorage;
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
    /// Each write observed at `complete_from` or later: its offset, its producer, and that
    /// producer's previous write.
    undo: std::collections::VecDeque<(Offset, u64, Option<LastWrite>)>,
    complete_from: Offset,
    /// The last answer replayed for an offset older than the history (see
    /// [`remember`](Self::remember)).
    replayed: Option<(Offset, StoredProducers)>,
}

impl ProducerTable {
    /// `producer`'s latest write.
    pub(crate) fn last(&self, producer: u64) -> Option<LastWrite> {
        self.last.get(&producer).copied()
    }

    /// Each producer's last write before `offset`, or `None` when that needs history this
    /// table no longer has (writes from before the commit offset it last learned; see
    /// [`Replica::producers_before`](super::core::Replica::producers_before)). What
    /// compaction stores and a snapshot carries: a producer whose latest write is at
    /// `offset` or later must keep its earlier one, since the later records may still be cut
    /// (simulation seed 60,695,171: a snapshot that left such a producer out let a retry of
    /// its acknowledged write be applied twice after a failover).
    pub(crate) fn before(&self, offset: Offset) -> Option<StoredProducers> {
        if offset < self.complete_from {
            return self
                .replayed
                .as_ref()
                .filter(|(at, _)| *at == offset)
                .map(|(_, stored)| stored.clone());
        }
        let mut last = self.last.clone();
        let cut = self.undo.iter().rev().take_while(|u| u.0 >= offset);
        undo_writes(&mut last, cut);
        Some(StoredProducers {
            upto: offset,
            entries: sorted(&last),
        })
    }

    /// The table as of `upto`: the producers stored when compaction or a snapshot dropped
    /// records, then the writes of `log`'s records from the offset stored with them (or the
    /// log's start, if later) to `upto`. A log that ends before the stored offset (a crash
    /// between storing a snapshot's producers and resetting the log) adds nothing: its records
    /// are older than what was stored. Such a replica is behind a committed snapshot, so it
    /// fetches before any coordinator would make it lead.
    pub(crate) fn replay<S: LogStorage + ?Sized>(
        log: &S,
        store: &mut dyn ReplicaStore,
        upto: Offset,
    ) -> Result<Self, Error> {
        let mut table = Self::default();
        let stored = store.load_producers()?;
        let start = log.start_offset().max(stored.upto);
        table.install(&stored.entries, start);
        let mut at = start;
        while at < upto.min(log.end_offset()) {
            let batch = log.read_batch(at, 1 << 20)?;
            let Some(last) = batch.last_offset() else {
                break;
            };
            at = Offset::new(last.get() + 1);
            batch
                .iter()
                .take_while(|r| r.offset < upto)
                .for_each(|r| table.observe(r.offset, r.payload));
        }
        Ok(table)
    }

    /// The producers' last writes before `offset`, replayed from `store` and `log` (for an
    /// offset older than a table's history). They count the records before `offset`, or
    /// before the stored producers' own offset when that is later: what was stored cannot be
    /// taken apart again, so the answer says how far it reaches, and compaction stores it
    /// with that offset.
    pub(crate) fn replay_before<S: LogStorage + ?Sized>(
        log: &S,
        store: &mut dyn ReplicaStore,
        offset: Offset,
    ) -> Result<StoredProducers, Error> {
        let table = Self::replay(log, store, offset)?;
        Ok(StoredProducers {
            upto: offset.max(table.complete_from),
            entries: table.all(),
        })
    }

    /// Keeps `stored`, replayed for `offset` ([`replay_before`](Self::replay_before)), for
    /// [`before`](Self::before) to answer again: a snapshot at the same offset is asked for
    /// by every follower behind it, once per fetch timeout, and compaction usually cuts there
    /// too. The answer cannot go stale: it is older than the history kept, so its records are
    /// committed.
    pub(crate) fn remember(&mut self, offset: Offset, stored: StoredProducers) {
        self.replayed = Some((offset, stored));
    }

    /// Every producer's latest write.
    pub(crate) fn all(&self) -> Vec<ProducerEntry> {
        sorted(&self.last)
    }

    /// Starts again from `entries`, the producers' last writes before `from`.
    pub(crate) fn install(&mut self, entries: &[ProducerEntry], from: Offset) {
        self.undo.clear();
        self.replayed = None;
        self.complete_from = from;
        self.last = entries
            .iter()
            .map(|&(p, seq, offset)| (p, LastWrite { seq, offset }))
            .collect();
    }

    /// Notes the write a record at `offset` carries, if it is an idempotent producer's.
    pub(crate) fn observe(&mut self, offset: Offset, payload: &[u8]) {
        if let Some(Envelope::Data {
            producer: Some(p), ..
        }) = envelope::decode(payload)
        {
            self.observe_write(p, offset);
        }
    }

    /// Notes `p`'s write at `offset`.
    pub(crate) fn observe_write(&mut self, p: ProducerSeq, offset: Offset) {
        let previous = self
            .last
            .insert(p.producer, LastWrite { seq: p.seq, offset });
        self.undo.push_back((offset, p.producer, previous));
    }

    /// Forgets how to undo writes before `commit`: they can no longer be cut.
    pub(crate) fn committed(&mut self, commit: Offset) {
        while self.undo.front().is_some_and(|u| u.0 < commit) {
            self.undo.pop_front();
        }
        self.complete_from = self.complete_from.max(commit);
    }

    /// Undoes the writes at `offset` and after (their records were cut).
    pub(crate) fn truncate_from(&mut self, offset: Offset) {
        let kept = self.undo.partition_point(|u| u.0 < offset);
        let cut = self.undo.split_off(kept);
        undo_writes(&mut self.last, cut.iter().rev());
    }
}

/// Puts back in `last` each producer's write from before `undone`, newest undone first.
fn undo_writes<'a>(
    last: &mut HashMap<u64, LastWrite>,
    undone: impl Iterator<Item = &'a (Offset, u64, Option<LastWrite>)>,
) {
    for &(_, producer, previous) in undone {
        match previous {
            Some(p) => last.insert(producer, p),
            None => last.remove(&producer),
        };
    }
}

/// `last` as stored entries, in producer order.
fn sorted(last: &HashMap<u64, LastWrite>) -> Vec<ProducerEntry> {
    let mut out: Vec<ProducerEntry> = last.iter().map(|(&p, w)| (p, w.seq, w.offset)).collect();
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(producer: u64, seq: u64) -> Vec<u8> {
        envelope::encode_data(Some(ProducerSeq { producer, seq }), b"x")
    }

    /// A store holding `entries` as the producers' writes before `upto`.
    fn store_of(upto: u64, entries: &[ProducerEntry]) -> super::super::store::MemoryReplicaStore {
        let mut store = super::super::store::MemoryReplicaStore::new();
        store
            .store_producers(&StoredProducers {
                upto: Offset::new(upto),
                entries: entries.to_vec(),
            })
            .unwrap();
        store
    }

    /// A log of `payloads`, from offset 0.
    fn log_of(payloads: &[Vec<u8>]) -> crate::log::memory::MemoryLog {
        use crate::log::storage::{Entry, LogStorage};
        let log = crate::log::memory::MemoryLog::new();
        for p in payloads {
            let entry = Entry {
                key: None,
                payload: p,
            };
            log.append(crate::record::Epoch::new(1), &[entry]).unwrap();
        }
        log
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

    /// Producer 1 writes at 0 and 2, producer 2 at 1.
    fn three_writes() -> ProducerTable {
        let mut t = ProducerTable::default();
        t.observe(Offset::new(0), &write(1, 0));
        t.observe(Offset::new(1), &write(2, 0));
        t.observe(Offset::new(2), &write(1, 1));
        t
    }

    #[test]
    fn before_keeps_a_producers_earlier_write_when_its_latest_is_later() {
        let o = Offset::new;
        let mut t = three_writes();
        let before = |t: &ProducerTable, at| t.before(at).map(|s| s.entries);
        assert_eq!(before(&t, o(2)), Some(vec![(1, 0, o(0)), (2, 0, o(1))]));
        assert_eq!(before(&t, o(1)), Some(vec![(1, 0, o(0))]));
        assert_eq!(before(&t, o(3)), Some(t.all()));
        // Once 2 is committed, the undo history before it is gone: only `replay` can say.
        t.committed(o(2));
        assert_eq!(before(&t, o(2)), Some(vec![(1, 0, o(0)), (2, 0, o(1))]));
        assert_eq!(before(&t, o(1)), None);
    }

    /// A follower that installed a snapshot at 10 and crashed before resetting its log: the
    /// store has producer 1's write at 8, the log still its older write at 1.
    #[test]
    fn records_before_the_stored_offset_are_not_counted_again() {
        let o = Offset::new;
        let log = log_of(&[write(2, 0), write(1, 2), write(2, 1)]);
        let stored = StoredProducers {
            upto: o(10),
            entries: vec![(1, 5, o(8)), (2, 3, o(9))],
        };
        let mut store = store_of(10, &stored.entries);
        let table = ProducerTable::replay(&log, &mut store, log.end_offset()).unwrap();
        assert_eq!(
            table.all(),
            stored.entries,
            "the old log's writes are older"
        );
        // Compaction to 2 must not store these as the writes before 2: a restart would then
        // count the record at 2 on top of them.
        assert_eq!(
            ProducerTable::replay_before(&log, &mut store, o(2)).unwrap(),
            stored,
            "what was stored at 10 still counts the records before 10"
        );
    }

    /// Producers stored at 2 over a log that still holds records from 0 (a file log drops
    /// whole segments): the records before 2 are counted already, those from 2 are not.
    #[test]
    fn replay_counts_the_log_from_the_stored_offset() {
        let o = Offset::new;
        let log = log_of(&[write(2, 0), write(1, 2), write(2, 1)]);
        let mut store = store_of(2, &[(1, 5, o(1))]);
        let table = ProducerTable::replay(&log, &mut store, log.end_offset()).unwrap();
        assert_eq!(table.all(), [(1, 5, o(1)), (2, 1, o(2))]);
    }

    /// A file written before the offset was stored reads as offset 0, and a compacted log
    /// starts later: replay starts at the log's start.
    #[test]
    fn replay_of_producers_stored_without_an_offset_starts_at_the_log() {
        let o = Offset::new;
        let log = log_of(&[write(1, 0), write(4, 7), write(1, 1), write(2, 0)]);
        log.drop_before(o(2)).unwrap();
        let mut store = store_of(0, &[(1, 0, o(0)), (4, 7, o(1))]);
        let table = ProducerTable::replay(&log, &mut store, log.end_offset()).unwrap();
        assert_eq!(table.all(), [(1, 1, o(2)), (2, 0, o(3)), (4, 7, o(1))]);
    }

    #[test]
    fn replay_rebuilds_the_table_before_an_offset_from_the_store_and_the_log() {
        let o = Offset::new;
        let log = log_of(&[
            write(1, 0),
            write(4, 7),
            write(1, 1),
            write(2, 0),
            write(1, 2),
            write(3, 0),
        ]);
        // Compacted to 2: the log keeps 2 on, the store the producers' writes before it.
        let mut store = store_of(2, &[(1, 0, o(0)), (4, 7, o(1))]);
        log.drop_before(o(2)).unwrap();
        // Producer 1 wrote on both sides of 4: its write before 4 counts.
        let table = ProducerTable::replay(&log, &mut store, o(4)).unwrap();
        assert_eq!(
            table.all(),
            [(1, 1, o(2)), (2, 0, o(3)), (4, 7, o(1))],
            "the stored writes, then the log's before offset 4"
        );
        let mut whole = ProducerTable::replay(&log, &mut store, log.end_offset()).unwrap();
        assert_eq!(whole.before(o(4)).map(|s| s.entries), Some(table.all()));
        // Committed past 4, the whole table no longer knows; it answers what it was told.
        whole.committed(o(6));
        assert_eq!(whole.before(o(4)), None);
        let replayed = ProducerTable::replay_before(&log, &mut store, o(4)).unwrap();
        assert_eq!(replayed.upto, o(4));
        assert_eq!(replayed.entries, table.all());
        whole.remember(o(4), replayed.clone());
        assert_eq!(whole.before(o(4)), Some(replayed));
        assert_eq!(whole.before(o(3)), None, "only for the offset it was told");
        whole.install(&[], o(6));
        assert_eq!(whole.before(o(4)), None, "a new start forgets it");
    }
}
