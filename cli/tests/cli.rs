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
    // Each as the first word of a line of the command list (a bare search for "node" would
    // also find it in the other commands' descriptions).
    let listed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("  ")?.split_whitespace().next())
        .collect();
    for cmd in [
        "demo",
        "tour",
        "node",
        "coordinators",
        "ring",
        "log",
        "cache",
        "page",
    ] {
        assert!(listed.contains(&cmd), "help lacks {cmd}: {text}");
    }
}

/// `log verify`, `dump` and `stats` look at a copy: they change nothing, report a tail that
/// opening would cut (verify fails on it), and refuse a directory with no log in it.
#[test]
fn log_inspection_changes_nothing_and_reports_a_damaged_tail() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let log_arg = log.to_str().unwrap();
    let o = shardkit(&["log", "append", log_arg, "--records", "20", "--size", "50"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(shardkit(&["log", "verify", log_arg]).status.success());
    // One byte of the last record flipped.
    let segment = segment_file(&log);
    let mut bytes = std::fs::read(&segment).unwrap();
    let end = bytes.iter().rposition(|&b| b != 0).unwrap();
    bytes[end - 2] ^= 0x10;
    std::fs::write(&segment, &bytes).unwrap();
    let files_before: Vec<_> = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    for _ in 0..2 {
        let o = shardkit(&["log", "verify", log_arg]);
        assert!(!o.status.success(), "verify passed a damaged tail");
        assert!(stdout(&o).contains("torn or damaged"), "{}", stdout(&o));
    }
    let o = shardkit(&["log", "dump", log_arg]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 19);
    assert!(stderr(&o).contains("torn or damaged"), "{}", stderr(&o));
    assert!(shardkit(&["log", "stats", log_arg]).status.success());
    assert_eq!(
        std::fs::read(&segment).unwrap(),
        bytes,
        "inspecting changed the log"
    );
    let files_after: Vec<_> = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files_before, files_after);

    let empty = tempfile::tempdir().unwrap();
    for cmd in ["verify", "dump", "stats"] {
        let o = shardkit(&["log", cmd, empty.path().to_str().unwrap()]);
        assert!(
            !o.status.success(),
            "{cmd} took an empty directory for a log"
        );
        assert!(stderr(&o).contains("no log segments"), "{}", stderr(&o));
    }
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
}

/// The (first) segment file of the log in `dir`.
fn segment_file(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "log"))
        .unwrap()
}

/// Damage to a record the log synced (`log append` syncs each), below its last synced
/// sector: opening the log refuses it, and inspection says so, showing the records before it.
#[test]
fn log_inspection_reports_damage_to_synced_records() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let log_arg = log.to_str().unwrap();
    let o = shardkit(&["log", "append", log_arg, "--records", "5", "--size", "1000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let segment = segment_file(&log);
    // A clean close leaves the records alone in the file; each frame is a header of 8
    // bytes, 28 of fixed fields and the payload. The last record's offset field flipped.
    let mut bytes = std::fs::read(&segment).unwrap();
    let last = bytes.len() - (8 + 28 + 1000);
    bytes[last + 8] ^= 0x10;
    std::fs::write(&segment, &bytes).unwrap();
    let o = shardkit(&["log", "verify", log_arg]);
    assert!(!o.status.success(), "verify passed damaged synced records");
    assert!(
        stdout(&o).contains("opening the log fails"),
        "{}",
        stdout(&o)
    );
    let o = shardkit(&["log", "dump", log_arg]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 4);
    assert!(
        stderr(&o).contains("opening the log fails"),
        "{}",
        stderr(&o)
    );
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
    // Bytes that are not UTF-8 (a file compressed with something other than gzip, say) are a
    // bad line too, with its number.
    std::fs::write(&bad, b"1\n2\n\xff\xfe\x00\n").unwrap();
    let o = shardkit(&["cache", "sim", "--trace", bad.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("line 3"), "{}", stderr(&o));
}

#[test]
fn cache_sim_repeats_exactly_and_checks_its_options() {
    let dir = tempfile::tempdir().unwrap();
    let mut x = 1u64;
    let text: String = (0..20_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("{}\n", (x % 2_000).min(x % 113 * 7))
        })
        .collect();
    let trace = dir.path().join("mixed.trace");
    std::fs::write(&trace, text).unwrap();
    let sim = |extra: &[&str]| {
        let mut args = vec!["cache", "sim", "--trace", trace.to_str().unwrap()];
        args.extend_from_slice(extra);
        shardkit(&args)
    };
    // The default capacities, each with the shard count a cache of it gets, and the same
    // figures on a second run (the hasher's seed is fixed).
    let first = sim(&[]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(stdout(&first), stdout(&sim(&[])));
    let rows: Vec<Vec<String>> = stdout(&first)
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect();
    assert_eq!(rows.len(), 3, "{}", stdout(&first));
    // 725 distinct keys: capacities of 181, 362 and 543, one shard each on any machine.
    assert!(
        stdout(&first).contains("725 distinct keys"),
        "{}",
        stdout(&first)
    );
    assert!(rows.iter().all(|r| r[4] == "1"), "{rows:?}");
    // Shards and seed as asked.
    let one = sim(&["--capacity", "1000", "--shards", "1", "--seed", "9"]);
    assert!(one.status.success(), "{}", stderr(&one));
    let row = stdout(&one).lines().last().unwrap().to_string();
    assert_eq!(row.split_whitespace().last(), Some("1"), "{row}");
    // Bad options are errors that say what is wrong, not panics.
    let o = sim(&["--shards", "3"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--shards"), "{}", stderr(&o));
    assert_eq!(stdout(&o), "", "rows printed before the error");
    let o = sim(&["--capacity", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--capacity"), "{}", stderr(&o));
    // A reader that closes before the table is written (`| head`, or here before anything
    // is read): the command still succeeds, with no panic.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_shardkit"))
        .args(["cache", "sim", "--trace", trace.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}

#[path = "../src/ports.rs"]
mod ports;

/// A node started with `--exit-with-parent` (as `shardkit demo` starts its nodes) stops when
/// its standard input closes, so a demo that is killed leaves no node running.
#[test]
fn a_node_exits_when_its_parent_goes() {
    let dir = tempfile::tempdir().unwrap();
    // Three members (a cluster's least), of which only node 1 runs: enough for it to serve.
    let base = ports::free_port_run(60, u64::from(std::process::id())).unwrap();
    let members: Vec<String> = (0..3u16)
        .flat_map(|i| {
            [
                "--member".to_string(),
                format!("{}=127.0.0.1:{}", i + 1, base + 20 * i),
            ]
        })
        .collect();
    let mut node = std::process::Command::new(env!("CARGO_BIN_EXE_shardkit"))
        .args(["node", "--id", "1", "--slots", "1", "--exit-with-parent"])
        .arg("--data-dir")
        .arg(dir.path().join("node-1"))
        .args(&members)
        .args(["--coordinators", &format!("127.0.0.1:{}", base + 59)])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(node.try_wait().unwrap().is_none(), "the node did not start");
    drop(node.stdin.take());
    // A deadlock detector, not a timing: the node exits as soon as it reads the end.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while node.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = node.kill();
            panic!("the node outlived its parent's pipe");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // It stopped for that reason, not another.
    let mut said = String::new();
    std::io::Read::read_to_string(&mut node.stderr.take().unwrap(), &mut said).unwrap();
    assert!(
        said.contains("the process that started this node is gone"),
        "{said}"
    );
}
