//! What recovery does with a log whose last append was torn by a crash: keep every complete
//! record, drop the incomplete tail, and report how much was dropped.
//!
//! `cargo run --example recover_tail -p shardkit-replication`

use shardkit_replication::{Epoch, FrameError, Offset, Record, encode, frames};

fn main() -> Result<(), FrameError> {
    let mut log = Vec::new();
    for i in 0..100 {
        encode(
            &Record::new(Offset::new(i), Epoch::new(1), 0, vec![b'.'; 64]),
            &mut log,
        )?;
    }
    log.truncate(log.len() - 20); // the crash: the last record is half written

    let mut reader = frames(&log);
    let records = reader.by_ref().filter_map(Result::ok).count();
    let valid = reader.position();
    assert!(matches!(
        reader.error(),
        Some(FrameError::Incomplete { .. })
    ));
    println!(
        "kept {records} records ({valid} bytes); dropped a torn tail of {} bytes",
        log.len() - valid
    );
    Ok(())
}
