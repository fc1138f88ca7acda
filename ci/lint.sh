#!/usr/bin/env bash
# Formatting and clippy, warnings denied.
set -euo pipefail
cargo fmt --all --check
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
