#!/usr/bin/env bash
# Benches and examples must always compile, even when nobody runs them.
# The benches are compiled with the release profile and every feature, as ci/test.sh's second
# build is, so that build's artifacts serve again; the bench profile's thin LTO and single
# codegen unit (what `cargo bench` uses to measure) would rebuild all ~240 crates, which took
# 5 to 6 minutes of this job on a 2-core machine and checks nothing more about the code.
set -euo pipefail
cargo bench --workspace --no-run --locked --all-features --profile release
cargo build --workspace --examples --locked
