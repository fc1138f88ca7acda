//! Loom models of the read path against a writer: publication of entries through the table,
//! replacement, removal and eviction, and the epoch-deferred reclamation of what they unlink
//! (the epochs, and crossbeam-epoch's atomic pointers, run on loom in these models).

use loom::sync::Arc;

use super::*;

pub(super) fn insert(shard: &Shard<u64, u64>, key: u64, value: u64) {
    let guard = &crate::sync::pin();
    let mut out = Notices::new(false);
    shard.insert(Entry::new(key, key, value, 1), None, &mut out, guard);
}

pub(super) fn remove(shard: &Shard<u64, u64>, key: u64) {
    let guard = &crate::sync::pin();
    shard.remove(key, &key, guard);
}

/// Key `key`'s value, checking the entry found is the key's (also for `compute`'s models).
pub(super) fn get(shard: &Shard<u64, u64>, key: u64) -> Option<u64> {
    let pin = &crate::sync::pin();
    shard.get(key, &key, None, pin).map(|e| {
        assert_eq!(e.key, key, "an entry is only ever found under its own key");
        e.value
    })
}

#[test]
fn loom_readers_see_whole_entries_in_order() {
    loom::model(|| {
        let shard = Arc::new(Shard::new(4, 4, false, WindowShare::for_shards(4, 1)));
        let writer = {
            let shard = shard.clone();
            loom::thread::spawn(move || {
                insert(&shard, 1, 10);
                insert(&shard, 1, 20);
            })
        };
        // Reads never go back in time: once 20 is seen, 10 is not.
        let first = get(&shard, 1);
        let second = get(&shard, 1);
        assert!(matches!(first, None | Some(10) | Some(20)));
        if first == Some(20) {
            assert_eq!(second, Some(20));
        }
        if first == Some(10) {
            assert!(matches!(second, Some(10) | Some(20)));
        }
        writer.join().unwrap();
        assert_eq!(get(&shard, 1), Some(20));
    });
}

#[test]
fn loom_removed_and_evicted_entries_are_never_returned_after() {
    loom::model(|| {
        // Room for one entry: inserting key 2 evicts one of the two.
        let shard = Arc::new(Shard::new(1, 1, false, WindowShare::for_shards(1, 1)));
        insert(&shard, 1, 10);
        let writer = {
            let shard = shard.clone();
            loom::thread::spawn(move || {
                insert(&shard, 2, 20);
                let guard = &crate::sync::pin();
                shard.remove(1, &1u64, guard);
            })
        };
        let seen = get(&shard, 1);
        assert!(matches!(seen, None | Some(10)));
        writer.join().unwrap();
        assert_eq!(get(&shard, 1), None, "removed before this read began");
        assert!(shard.len() <= 1);
    });
}

/// A reader looking for a key that sits past a full bucket while the writer removes a
/// key in that bucket and inserts another into the tombstone it left: the reader finds
/// the key throughout (a removal that left a never-used slot instead of a tombstone
/// would end the reader's walk before it).
#[test]
fn loom_a_removal_never_hides_the_keys_past_it() {
    loom::model(|| {
        // Small keys' hashes (the keys themselves) all have the first bucket of the
        // shard's table as home: keys 1 to 7 fill it, and 17 goes to the next bucket.
        let shard = Arc::new(Shard::new(8, 8, false, WindowShare::for_shards(8, 1)));
        for key in 1..=7 {
            insert(&shard, key, key * 10);
        }
        insert(&shard, 17, 170);
        let writer = {
            let shard = shard.clone();
            loom::thread::spawn(move || {
                let guard = crate::sync::pin();
                shard.remove(1, &1u64, &guard);
                drop(guard);
                insert(&shard, 33, 330);
            })
        };
        // Reads before and after a yield: loom's bounded search otherwise never lets the
        // writer's removal run before the reader's first read.
        for _ in 0..2 {
            assert_eq!(get(&shard, 17), Some(170));
            loom::thread::yield_now();
        }
        writer.join().unwrap();
        assert_eq!(get(&shard, 17), Some(170));
        assert_eq!(get(&shard, 33), Some(330));
        assert_eq!(get(&shard, 1), None);
    });
}

/// A reader of two keys while the writer's insert rebuilds the table: every entry moves
/// to a new table built unseen and then published, and the reader finds both keys in
/// whichever table it loads.
#[test]
fn loom_a_rebuild_keeps_every_key_visible() {
    loom::model(|| {
        let shard = Arc::new(Shard::new(4, 4, false, WindowShare::for_shards(4, 1)));
        insert(&shard, 1, 10);
        insert(&shard, 2, 20);
        // The count the writer rebuilds by says the table is nearly used up (real
        // tombstones would take a dozen more operations under the model): the next insert
        // rebuilds it.
        lock(&shard.writer).tombstones = 4 * MIN_SLOTS;
        let writer = {
            let shard = shard.clone();
            loom::thread::spawn(move || insert(&shard, 3, 30))
        };
        for _ in 0..2 {
            assert_eq!(get(&shard, 1), Some(10));
            assert_eq!(get(&shard, 2), Some(20));
            loom::thread::yield_now();
        }
        writer.join().unwrap();
        assert_eq!(
            lock(&shard.writer).tombstones,
            0,
            "the insert rebuilt the table"
        );
        assert_eq!(get(&shard, 3), Some(30));
    });
}

/// A reader while the writer's insert rebuilds the table and another thread runs the
/// collector: a table a rebuild replaced is freed only once no reader can still walk it, which
/// the table's loom cell checks against the reader's walk (the model fails if the old table is
/// freed at once instead of deferred). Not found within the preemption bound of `ci/loom.sh`:
/// deferring the old table before taking it out of the shard, where an advance between the two
/// could seal it, a reader pin the next epoch and load it, and two more advances free it under
/// that reader. `rebuild` takes it out first.
#[test]
fn loom_a_replaced_table_is_not_freed_under_a_reader() {
    loom::model(|| {
        let shard = Arc::new(Shard::new(4, 4, false, WindowShare::for_shards(4, 1)));
        insert(&shard, 1, 10);
        // As in `loom_a_rebuild_keeps_every_key_visible`: the next insert rebuilds.
        lock(&shard.writer).tombstones = 4 * MIN_SLOTS;
        let writer = {
            let shard = shard.clone();
            loom::thread::spawn(move || insert(&shard, 2, 20))
        };
        let collector = loom::thread::spawn(|| {
            for _ in 0..3 {
                crate::sync::flush();
            }
        });
        assert_eq!(get(&shard, 1), Some(10));
        writer.join().unwrap();
        collector.join().unwrap();
    });
}

/// A writer evicting from a shard with room for one entry (sized for `entries`, which
/// sets how it hands evicted entries over), letting the collector run, and inserting
/// again, against a reader of the keys it evicts: the reader sees each key's own entry
/// whole, never another built in its memory after it was freed or recycled.
fn evictions_under_a_reader(entries: usize) {
    loom::model(move || {
        let shard = Arc::new(Shard::new(1, entries, false, WindowShare::for_shards(1, 1)));
        insert(&shard, 1, 10);
        let writer = {
            let shard = shard.clone();
            loom::thread::spawn(move || {
                insert(&shard, 2, 20);
                insert(&shard, 3, 30);
                // Collections with nothing pinned here: two epochs on, an entry no reader
                // holds is freed (or its memory returned to the shard).
                for _ in 0..3 {
                    crate::sync::flush();
                }
                insert(&shard, 4, 40);
            })
        };
        // Keys 2 and 3 are the likely evictions (admission keeps the older key 1).
        assert!(matches!(get(&shard, 2), None | Some(20)));
        assert!(matches!(get(&shard, 3), None | Some(30)));
        writer.join().unwrap();
    });
}

#[test]
fn loom_batched_recycling_is_not_reused_under_a_reader() {
    // Batches of two: the insert that fills one hands it over, the flushes free it, and
    // the entries' memory comes back for the next ones.
    evictions_under_a_reader(128);
}

#[test]
fn loom_freed_memory_is_not_reused_under_a_reader() {
    // So small a shard hands each evicted entry over on its own, to be freed: its memory
    // is the allocator's to give the next entry.
    evictions_under_a_reader(1);
}
