//! Crash safety with real processes: `shardkit log append --sync always` is killed with SIGKILL
//! at random moments, and every offset it acknowledged must be in the reopened log, intact and in
//! order. Also a write that fails (file size limit, as a full disk fails) is a typed error that
//! loses nothing acknowledged, and a log another process has open is refused.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use shardkit_replication::{Error, FileLog, LogConfig, LogStorage, Offset};

const SIZE: usize = 64;

fn payload(offset: u64) -> Vec<u8> {
    (0..SIZE)
        .map(|i| ((offset + i as u64) % 251) as u8)
        .collect()
}

/// Checks that the log holds dense offsets from 0 with the generated payloads, covering at
/// least every acknowledged offset.
fn check(dir: &Path, acked: Option<u64>) -> u64 {
    let log = FileLog::open(dir, LogConfig::default()).unwrap();
    let end = log.end_offset().get();
    if let Some(a) = acked {
        assert!(
            end > a,
            "acknowledged offset {a} lost: the log ends at {end}"
        );
    }
    let mut next = 0;
    while next < end {
        for r in log.read(Offset::new(next), 1 << 20).unwrap() {
            assert_eq!(r.offset.get(), next);
            assert_eq!(r.payload, payload(next), "record {next} damaged");
            next += 1;
        }
    }
    end
}

#[test]
fn sigkill_never_loses_an_acknowledged_append() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("log");
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut acked: Option<u64> = None;
    for round in 0..20 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let wait_for = 1 + rng % 120;
        let mut child = Command::new(env!("CARGO_BIN_EXE_shardkit"))
            .args(["log", "append"])
            .arg(&log_dir)
            .args([
                "--sync",
                "always",
                "--records",
                "1000000",
                "--size",
                &SIZE.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut acked_this_round = false;
        for _ in 0..wait_for {
            match lines.next() {
                Some(Ok(line)) => {
                    acked = Some(line.trim().parse().unwrap());
                    acked_this_round = true;
                }
                _ => break,
            }
        }
        // SIGKILL: no destructors, no flush; whatever was mid-write is torn.
        child.kill().unwrap();
        child.wait().unwrap();
        // Lines the child printed before dying were acknowledged too.
        for line in lines.map_while(Result::ok) {
            acked = Some(line.trim().parse().unwrap());
            acked_this_round = true;
        }
        let end = check(&log_dir, acked);
        assert!(acked_this_round, "round {round} acknowledged nothing");
        assert!(end > acked.unwrap());
    }
}

#[test]
fn a_failed_write_is_a_typed_error_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("log");
    // A 32 KiB file size limit makes writes past it fail with EFBIG, as a full disk fails
    // with ENOSPC; SIGXFSZ is ignored so the write returns the error instead of killing us.
    let script = format!(
        "trap '' XFSZ; ulimit -f 64; exec '{}' log append '{}' --sync always --records 100000 --size {SIZE}",
        env!("CARGO_BIN_EXE_shardkit"),
        log_dir.display()
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("append to") && stderr.contains("too large"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let acked = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .map(|l| l.parse::<u64>().unwrap());
    let end = check(&log_dir, acked);
    assert!(end > 100, "only {end} records fit in 32 KiB?");
    // The log is consistent and usable again once the limit is gone.
    let status = Command::new(env!("CARGO_BIN_EXE_shardkit"))
        .args(["log", "verify"])
        .arg(&log_dir)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
}

/// A log one process has open is refused to another (it would write the same files), by the
/// library and by the CLI, and opens once that process is gone.
#[test]
fn a_log_open_in_another_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("log");
    let append = |records: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_shardkit"));
        command
            .args(["log", "append"])
            .arg(&log_dir)
            .args(["--sync", "always", "--records", records, "--size"])
            .arg(SIZE.to_string());
        command
    };
    let mut holder = append("1000000")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(holder.stdout.take().unwrap()).lines();
    let first = lines.next();
    let opened = FileLog::open(&log_dir, LogConfig::default());
    let second = append("1").output().unwrap();
    holder.kill().unwrap();
    holder.wait().unwrap();
    let Some(Ok(first)) = first else {
        panic!("the holder appended nothing");
    };
    assert!(matches!(opened, Err(Error::InUse { .. })), "{opened:?}");
    assert!(!second.status.success(), "a second appender ran");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("is already open"), "{stderr}");
    check(&log_dir, Some(first.trim().parse().unwrap()));
}
