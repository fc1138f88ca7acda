#!/usr/bin/env bash
# Loom models of every custom synchronisation protocol, run under --cfg shardkit_loom, in
# release mode and their own target directory (so the main build cache stays valid), with a
# bounded number of preemptions. Crate-private protocols have their models next to them
# (`loom_` tests in src/); public ones in tests/loom.rs.
set -euo pipefail
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}"
ran=0
for crate in hashring replication cache pagination; do
  # crossbeam_loom runs crossbeam-epoch's atomic pointers (the cache's table slots) on loom;
  # it breaks crossbeam-channel, which the replication crate uses, so it is the cache's only
  # (with its own target directory, so the two flag sets do not rebuild each other's deps).
  flags="--cfg shardkit_loom"
  dir=target-loom
  features=()
  if [ "$crate" = cache ]; then
    flags="$flags --cfg crossbeam_loom"
    dir=target-loom-crossbeam
    # The asynchronous waiters' hand-off is modelled too.
    features=(--features async)
  fi
  if grep -rqs "cfg(all(test, shardkit_loom))" "$crate/src"; then
    RUSTFLAGS="$flags" cargo test --locked --release --target-dir "$dir" -p "shardkit-$crate" ${features[@]+"${features[@]}"} --lib loom_
    ran=$((ran + 1))
  fi
  if [ -f "$crate/tests/loom.rs" ]; then
    RUSTFLAGS="$flags" cargo test --locked --release --target-dir "$dir" -p "shardkit-$crate" ${features[@]+"${features[@]}"} --test loom
    ran=$((ran + 1))
  fi
done
echo "loom models ran for $ran target(s)"
