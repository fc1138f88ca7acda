#!/usr/bin/env bash
# Loom models of every custom synchronisation protocol, run under --cfg shardkit_loom, in
# release mode and their own target directory (so the main build cache stays valid), with a
# bounded number of preemptions. Crate-private protocols have their models next to them
# (`loom_` tests in src/); public ones in tests/loom.rs.
set -euo pipefail
# crossbeam_loom runs crossbeam-epoch itself on loom, for the cache's read-path models.
export RUSTFLAGS="--cfg shardkit_loom --cfg crossbeam_loom"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}"
ran=0
for crate in hashring replication cache pagination; do
  if grep -rqs "cfg(all(test, shardkit_loom))" "$crate/src"; then
    cargo test --locked --release --target-dir target-loom -p "shardkit-$crate" --lib loom_
    ran=$((ran + 1))
  fi
  if [ -f "$crate/tests/loom.rs" ]; then
    cargo test --locked --release --target-dir target-loom -p "shardkit-$crate" --test loom
    ran=$((ran + 1))
  fi
done
echo "loom models ran for $ran target(s)"
