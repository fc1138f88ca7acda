//! The `shardkit` binary as a user runs it: help, version, errors, and each command's output.

use std::process::{Command, Output};

fn shardkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shardkit"))
        .args(args)
        .output()
        .expect("run shardkit")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_lists_the_commands() {
    let o = shardkit(&["--help"]);
    assert!(o.status.success());
    let text = stdout(&o);
    for cmd in ["demo", "tour", "node", "ring", "page", "log"] {
        assert!(text.contains(cmd), "help lacks {cmd}: {text}");
    }
}

#[test]
fn version_is_the_package_version() {
    let o = shardkit(&["--version"]);
    assert!(o.status.success());
    assert_eq!(
        stdout(&o).trim(),
        format!("shardkit {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn unknown_commands_fail_clearly() {
    let o = shardkit(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unrecognized subcommand 'frobnicate'"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn ring_reports_balance_and_movement() {
    let o = shardkit(&[
        "ring", "--nodes", "a,b,c:2", "--keys", "20000", "--add", "d", "--ranges", "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("4 nodes, 800 points, 20000 keys"), "{text}");
    assert!(text.contains("ideal 20.00%"), "{text}");
    assert!(text.contains("-> d"), "{text}");
    assert!(text.contains("max/mean"), "{text}");
}

#[test]
fn ring_rejects_bad_input_without_panicking() {
    for args in [
        &["ring", "--nodes", "a,a"][..],
        &["ring", "--nodes", "a:0"],
        &["ring", "--nodes", "a:x"],
        &["ring", "--nodes", "a", "--remove", "zz"],
        &["ring", "--nodes", "a", "--remove", "a"],
        &["ring", "--nodes", "a", "--bounded", "0.5"],
    ] {
        let o = shardkit(args);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(!stderr(&o).contains("panicked"), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("error"), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn tour_shows_every_crate() {
    let o = shardkit(&["tour", "--keys", "20000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for section in [
        "shardkit-hashring",
        "shardkit-replication",
        "shardkit-cache",
        "shardkit-pagination",
    ] {
        assert!(text.contains(section), "the tour lacks {section}");
    }
    assert!(text.contains("All checks above held."));
}

#[test]
fn page_demo_walks_and_compares() {
    let o = shardkit(&[
        "page", "demo", "--rows", "5000", "--size", "50", "--shards", "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains(
            "one collection: 100 pages, 5000 rows, every row exactly once and in order: true"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "merged shards: 100 pages, 5000 rows, every row exactly once and in order: true"
        ),
        "{text}"
    );
    assert!(text.contains("signature is invalid"), "{text}");
}

#[test]
fn cache_sim_reads_plain_and_gzip_traces_and_reports_every_policy() {
    let dir = tempfile::tempdir().unwrap();
    // A loop over 10 keys, longer than a cache of 5: LRU never hits, OPT keeps 5 of them.
    let text: String = (0..200).map(|i| format!("{}\n", i % 10)).collect();
    let plain = dir.path().join("loop.trace");
    std::fs::write(&plain, &text).unwrap();
    let gzip = |text: &str| {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut encoder, text.as_bytes()).unwrap();
        encoder.finish().unwrap()
    };
    let gz = dir.path().join("loop.trace.gz");
    std::fs::write(&gz, gzip(&text)).unwrap();
    // Two gzip members, as rotated logs concatenated: both are read.
    let (first, second) = text.split_at(text.len() / 2);
    let members = dir.path().join("members.trace.gz");
    std::fs::write(&members, [gzip(first), gzip(second)].concat()).unwrap();
    for trace in [&plain, &gz, &members] {
        let o = shardkit(&[
            "cache",
            "sim",
            "--trace",
            trace.to_str().unwrap(),
            "--capacity",
            "5",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let out = stdout(&o);
        assert!(out.contains("200 accesses, 10 distinct keys"), "{out}");
        let row: Vec<&str> = out.lines().last().unwrap().split_whitespace().collect();
        assert_eq!(row[0], "5");
        assert_eq!(row[2], "0.0000", "LRU on a loop: {out}");
        let opt: f64 = row[3].parse().unwrap();
        assert!(opt > 0.4, "{out}");
    }
    // A capacity far beyond the trace is a cache that never evicts, not an allocation.
    let o = shardkit(&[
        "cache",
        "sim",
        "--trace",
        plain.to_str().unwrap(),
        "--capacity",
        "18446744073709551615",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bad = dir.path().join("bad.trace");
    std::fs::write(&bad, "1\nnot a key\n").unwrap();
    let o = shardkit(&["cache", "sim", "--trace", bad.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("line 2"), "{}", stderr(&o));
}
