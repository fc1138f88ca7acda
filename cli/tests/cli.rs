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
    for cmd in ["demo", "ring", "page"] {
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
fn demo_tours_every_crate() {
    let o = shardkit(&["demo", "--keys", "20000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for section in [
        "shardkit-hashring",
        "shardkit-replication",
        "shardkit-cache",
        "shardkit-pagination",
    ] {
        assert!(text.contains(section), "demo lacks {section}");
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
