#!/usr/bin/env bash
# Loom models: every crate with a tests/loom.rs is model-checked under --cfg shardkit_loom, in
# release mode and its own target directory (so the main build cache is not invalidated), with
# a bounded number of preemptions.
set -euo pipefail
export RUSTFLAGS="--cfg shardkit_loom"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}"
ran=0
for crate in hashring replication cache pagination; do
  if [ -f "$crate/tests/loom.rs" ]; then
    cargo test --locked --release --target-dir target-loom -p "shardkit-$crate" --test loom
    ran=$((ran + 1))
  fi
done
if [ "$ran" -eq 0 ]; then
  echo "no crate has loom models yet (shardkit-hashring's shared ring uses arc-swap, checked by its stress test)"
fi
