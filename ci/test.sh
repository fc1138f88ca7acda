#!/usr/bin/env bash
# The README's test command, with the lock file enforced. Prints cargo test's summary lines.
# The property tests also run with every feature on, in release mode for more cases per second.
set -euo pipefail
cargo test --workspace --locked
cargo test --workspace --all-features --release --locked
