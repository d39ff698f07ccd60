#!/usr/bin/env bash
# How fast this machine runs right now, for judging whether two benchmark runs are comparable:
# the CPU µs per Redis SET applied in batches of 8 slots × 16 SETs (a fixed workload of
# `cargo bench -p synod-kvstore --bench apply_set`, 10,000 SETs) and the µs per round trip of
# `perf bench sched pipe` (two processes waking each other; Debian linux-perf). On this
# project's shared 2-core machine the first moved from 6.6 to 19.3 µs within an hour on the
# same code: run this before and after `../shared/bench/compare.sh` (scripts/compare.sh does)
# and trust only runs whose figures agree.
#
#   scripts/machine-speed.sh        # prints one line: apply µs/SET, wake-up round trip µs
set -euo pipefail
cd "$(dirname "$0")/.."
apply=$(SYNOD_BENCH_ROWS=8x16 SYNOD_BENCH_SETS=10000 cargo bench -q -p synod-kvstore \
  --bench apply_set 2>/dev/null | awk -F'|' '$2 ~ /^ *8 *$/ {gsub(/ /, "", $4); print $4}')
pipe=$(perf bench sched pipe -l 20000 2>/dev/null | awk '/usecs\/op/ {print $1}' || true)
echo "machine speed: apply ${apply:-?} µs/SET, wake-up round trip ${pipe:-?} µs"
