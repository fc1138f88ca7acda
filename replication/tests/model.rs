//! Any sequence of appends, truncations, retention, reopenings and crashes leaves the file log
//! holding exactly what a simple in-memory model says (retention may keep a little more: it
//! drops whole segments only), with and without syncing (and so preallocation).

mod crash_copy;

use crash_copy::copy_log_files;
use proptest::prelude::*;
use shardkit_replication::{
    Durability, Entry, Epoch, FileLog, LogConfig, LogStorage, MemoryLog, Offset, Record,
};

#[derive(Debug, Clone)]
enum Op {
    Append {
        sizes: Vec<usize>,
        new_epoch: bool,
    },
    Truncate(prop::sample::Index),
    DropBefore(prop::sample::Index),
    Reopen,
    /// Opens the log again from its files as they were before it was closed, as after a
    /// killed process.
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (prop::collection::vec(0usize..300, 1..8), any::<bool>()).prop_map(|(sizes, new_epoch)| Op::Append { sizes, new_epoch }),
        1 => any::<prop::sample::Index>().prop_map(Op::Truncate),
        1 => any::<prop::sample::Index>().prop_map(Op::DropBefore),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
    ]
}

fn config(synced: bool) -> LogConfig {
    LogConfig::default()
        .segment_bytes(2048)
        .durability(if synced {
            Durability::Always
        } else {
            Durability::Never
        })
}

fn read_all(log: &dyn LogStorage, from: Offset) -> Vec<Record> {
    let mut out = Vec::new();
    let mut next = from;
    while next < log.end_offset() {
        let batch = log.read(next, 1500).unwrap();
        next = Offset::new(batch.last().unwrap().offset.get() + 1);
        out.extend(batch);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(debug_assertions) { 24 } else { 200 }))]

    #[test]
    fn file_log_matches_the_model(ops in prop::collection::vec(op(), 1..40), synced in any::<bool>()) {
        let config = config(synced);
        let mut dir = tempfile::tempdir().unwrap();
        let mut log = FileLog::open(dir.path(), config).unwrap();
        let model = MemoryLog::new();
        let mut epoch = 1;
        let mut counter = 0u64;
        for op in &ops {
            match op {
                Op::Append { sizes, new_epoch } => {
                    epoch += u64::from(*new_epoch);
                    let payloads: Vec<Vec<u8>> = sizes.iter().map(|&n| { counter += 1; vec![(counter % 251) as u8; n] }).collect();
                    let entries: Vec<Entry<'_>> = payloads.iter().map(|p| Entry::new(p)).collect();
                    let a = log.append(Epoch::new(epoch), &entries).unwrap();
                    let b = model.append(Epoch::new(epoch), &entries).unwrap();
                    prop_assert_eq!(a.first(), b.first());
                }
                Op::Truncate(i) => {
                    let (start, end) = (log.start_offset().get(), log.end_offset().get());
                    let at = start + i.index((end - start + 1) as usize) as u64;
                    log.truncate_from(Offset::new(at)).unwrap();
                    model.truncate_from(Offset::new(at)).unwrap();
                }
                Op::DropBefore(i) => {
                    let (start, end) = (log.start_offset().get(), log.end_offset().get());
                    let at = start + i.index((end - start + 1) as usize) as u64;
                    log.drop_before(Offset::new(at)).unwrap();
                    prop_assert!(log.start_offset().get() <= at);
                }
                Op::Reopen => {
                    drop(log);
                    log = FileLog::open(dir.path(), config).unwrap();
                    prop_assert_eq!(log.recovery().truncated_bytes, 0);
                }
                Op::Crash => {
                    // The files as a killed process leaves them (no final sync, no trimming of
                    // preallocated zeros), copied while the log is still open. Every append
                    // completed its write, so nothing is torn: the zeros are not damage.
                    let crashed = tempfile::tempdir().unwrap();
                    copy_log_files(dir.path(), crashed.path());
                    drop(log);
                    dir = crashed;
                    log = FileLog::open(dir.path(), config).unwrap();
                    prop_assert_eq!(log.recovery().truncated_bytes, 0);
                    prop_assert_eq!(log.recovery().dropped_records, 0);
                }
            }
            prop_assert_eq!(log.end_offset(), model.end_offset());
            let start = log.start_offset();
            let ours = read_all(&log, start);
            let theirs: Vec<Record> = read_all(&model, Offset::new(0)).into_iter().skip(start.get() as usize).collect();
            prop_assert_eq!(ours.len(), theirs.len());
            for (a, b) in ours.iter().zip(&theirs) {
                prop_assert_eq!((a.offset, a.epoch, &a.payload), (b.offset, b.epoch, &b.payload));
            }
            let model_epochs: Vec<_> = model.epochs();
            prop_assert_eq!(log.epochs(), model_epochs);
        }
        prop_assert!(log.verify().unwrap().is_empty());
    }
}
