//! The README's main job: `shardkit demo` starts the key-value service as real processes,
//! kills a node with SIGKILL mid-workload, restarts it, adds a node (moving and migrating the
//! slots whose replica sets change), and exits non-zero if any
//! acknowledged write is lost, a read misses the reader's own write, the paged scan is wrong,
//! or the replicas do not converge. Three short seeds (each a different chaos schedule).

use std::process::Command;

#[test]
fn three_seeds_lose_no_acknowledged_write() {
    for seed in [1u64, 2, 3] {
        let out = Command::new(env!("CARGO_BIN_EXE_shardkit"))
            .args(["demo", "--duration", "4", "--keys", "2000", "--slots", "8"])
            .args(["--seed", &seed.to_string()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "seed {seed} failed:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for line in [
            "chaos: killed node",
            "chaos: restarted node",
            "replicas converged: yes",
            // Preceded by its count's comma, so "10 lost" cannot pass for "0 lost".
            ", 0 lost or wrong, 0 stale reads",
            "; 0 problems",
            "joined;",
        ] {
            assert!(text.contains(line), "seed {seed}: no {line:?} in\n{text}");
        }
        // The nodes' caches report what they hold through `/status`.
        let cache = text
            .lines()
            .find(|l| l.starts_with("read cache:"))
            .unwrap_or_else(|| panic!("seed {seed}: no cache line in\n{text}"));
        let held: Vec<f64> = cache
            .split("; ")
            .nth(1)
            .map(|p| p.split(' ').filter_map(|w| w.parse().ok()).collect())
            .unwrap_or_default();
        assert!(
            held.len() == 2 && held.iter().all(|&n| n > 0.0),
            "seed {seed}: no entries or memory in {cache:?}"
        );
    }
}
