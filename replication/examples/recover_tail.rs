//! What recovery does with a log whose last append was torn by a crash: keep every complete
//! record, drop the incomplete tail, and report how much was dropped.
//!
//! `cargo run --example recover_tail -p shardkit-replication`

use shardkit_replication::{Epoch, FrameError, Offset, Record, decode, encode};

fn main() -> Result<(), FrameError> {
    let mut log = Vec::new();
    for i in 0..100 {
        encode(
            &Record::new(Offset::new(i), Epoch::new(1), 0, vec![b'.'; 64]),
            &mut log,
        )?;
    }
    log.truncate(log.len() - 20); // the crash: the last record is half written

    let mut valid = 0;
    let mut records = 0;
    let outcome = loop {
        match decode(&log[valid..]) {
            Ok((_, used)) => {
                valid += used;
                records += 1;
            }
            Err(e) => break e,
        }
    };
    assert!(matches!(outcome, FrameError::Incomplete { .. }));
    println!(
        "kept {records} records ({valid} bytes); dropped a torn tail of {} bytes: {outcome}",
        log.len() - valid
    );
    Ok(())
}
