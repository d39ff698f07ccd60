#!/usr/bin/env bash
# Profiles a `synod dev` cluster under a 256-client load (puts; WORKLOAD=get-linearizable for gets)
# over the Redis protocol: perf records
# the leader and one follower for 12 s and prints each one's top symbols by self time.
# Usage: scripts/profile-writes.sh [OUT_DIR]   (root or perf_event_paranoid <= 1; Debian linux-perf;
# the loadgen of ../shared/bench/loadgen, built by its build.sh; ports 9600..9623 free)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/dev-leader.sh
out=${1:-/tmp/synod-profile}; mkdir -p "$out"
target=target/profile
CARGO_TARGET_DIR=$target CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
  RUSTFLAGS="-C force-frame-pointers=yes" cargo build --release --bin synod >&2
bin=$target/release/synod
lg=${LOADGEN:-${XDG_CACHE_HOME:-$HOME/.cache}/synod-bench/loadgen}
[ -x "$lg" ] || lg=$(../shared/bench/loadgen/build.sh)
dir=$out/cluster; rm -rf "$dir"
"$bin" dev --data-dir "$dir" --base-port 9600 >"$out/dev.log" 2>&1 & dev=$!
trap 'kill $dev; wait $dev || true' EXIT
leader_port=$(dev_leader_port 9600 "$out/dev.log")
sleep 1
leader=$(((leader_port - 9602) / 10 + 1)) # node number, 1..3
follower=$((leader % 3 + 1))
pid_of() { pgrep -f "node$1.toml" | head -1; }
"$lg" --backend resp --endpoints 127.0.0.1:9602,127.0.0.1:9612,127.0.0.1:9622 \
  --workload "${WORKLOAD:-put}" --clients 256 --duration 25s >"$out/load.json" &
load=$!
sleep 5
perf record -F 499 -g -p "$(pid_of "$leader")" -o "$out/leader.data" -- sleep 12 2>/dev/null &
perf record -F 499 -g -p "$(pid_of "$follower")" -o "$out/follower.data" -- sleep 12 2>/dev/null &
wait %2 %3 || true
wait $load
cat "$out/load.json"
set +o pipefail # head closes the pipe early
for who in leader follower; do
  echo "== $who"
  perf report -i "$out/$who.data" --stdio --no-children -g none --sort dso 2>/dev/null | grep '%' | head -5
  perf report -i "$out/$who.data" --stdio --no-children -g none --sort symbol 2>/dev/null | grep '%' | head -25
done
