#!/usr/bin/env bash
# API docs must build without a single warning (broken links, missing docs).
set -euo pipefail
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --locked
