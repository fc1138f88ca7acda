#!/usr/bin/env bash
# Runs many more seeds of the replication simulation than CI does, one process per core:
#
#   bash ci/sim-sweep.sh [SEEDS] [START]      (defaults: 1000000 seeds from a seed drawn at random)
#
# Not part of `.ci/run` (a million seeds take about 25 minutes on 2 cores). Prints each
# process's summary and every failing seed with the command that replays it; exits non-zero if
# any seed failed.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-1000000}
start=${2:-$(( (RANDOM << 30 | RANDOM << 15 | RANDOM) % 1000000000000 ))}
jobs=$(nproc 2>/dev/null || echo 2)
binary=$(cargo test --release --locked -p shardkit-replication --test simulation --no-run \
  --message-format=json 2>/dev/null | grep -o '"executable":"[^"]*"' | tail -n 1 | cut -d'"' -f4)
echo "seeds $start..$((start + seeds)) on $jobs processes ($binary)"
logs=$(mktemp -d)
per=$(( (seeds + jobs - 1) / jobs ))
pids=()
for ((j = 0; j < jobs; j++)); do
  first=$(( start + j * per ))
  count=$(( per < seeds - j * per ? per : seeds - j * per ))
  (( count > 0 )) || break
  SHARDKIT_SIM_SEED_START=$first SHARDKIT_SIM_SEEDS=$count \
    "$binary" seeded_simulations_keep_every_invariant --nocapture >"$logs/$j.log" 2>&1 &
  pids+=($!)
done
failed=0
for j in "${!pids[@]}"; do
  wait "${pids[$j]}" || failed=1
  grep -E "seeds from|failed at|replay:|panicked|too few" "$logs/$j.log" || true
done
rm -rf "$logs"
if (( failed )); then echo "FAILED: see the seeds above"; exit 1; fi
echo "all seeds passed"
