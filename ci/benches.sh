#!/usr/bin/env bash
# Benches and examples must always compile, even when nobody runs them.
set -euo pipefail
cargo bench --workspace --no-run --locked
cargo build --workspace --examples --locked
