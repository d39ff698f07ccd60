#!/usr/bin/env bash
# One run of the load generator against a fresh `synod dev` cluster, and the servers' CPU time
# per operation: the A/B measure of the README's "Figures" (the CPU the three nodes spent, from
# /proc/<pid>/stat before and after the run, divided by the operations done).
#
#   scripts/cpu-per-op.sh BIN CLIENTS [all|leader] [put|get-linearizable]
#   scripts/cpu-per-op.sh target/release/synod 256                 # puts through all nodes
#   scripts/cpu-per-op.sh /tmp/synod-before 256 leader get-linearizable
#
# Prints one line: ops/s, p50, server cores used, CPU µs per op. Alternate two builds run by run
# (the machine is shared and noisy; compare only runs made side by side). Needs redis-cli, jq and
# the loadgen of ../shared/bench/loadgen (built by its build.sh); ports 9600..9623 free.
set -euo pipefail
. "$(dirname "$0")/lib/dev-leader.sh"
bin=$1
clients=$2
where=${3:-all}
workload=${4:-put}
seconds=${SECONDS_PER_RUN:-8}
lg=${LOADGEN:-${XDG_CACHE_HOME:-$HOME/.cache}/synod-bench/loadgen}
[ -x "$lg" ] || lg=$("$(dirname "$0")/../../shared/bench/loadgen/build.sh")
dir=$(mktemp -d /tmp/synod-cpu-per-op.XXXXXX)
"$bin" dev --data-dir "$dir" --base-port 9600 >"$dir.log" 2>&1 &
dev=$!
trap 'kill $dev 2>/dev/null; wait $dev 2>/dev/null || true; rm -rf "$dir" "$dir.log"' EXIT
leader_port=$(dev_leader_port 9600 "$dir.log")
sleep 1
endpoints=127.0.0.1:9602,127.0.0.1:9612,127.0.0.1:9622
[ "$where" = leader ] && endpoints=127.0.0.1:$leader_port
pids="$dev $(pgrep -P $dev | tr '\n' ' ')"
ticks() {
  local sum=0
  for p in $pids; do sum=$((sum + $(awk '{print $14 + $15}' /proc/"$p"/stat))); done
  echo $sum
}
before=$(ticks)
t0=$(date +%s.%N)
result=$("$lg" --backend resp --endpoints "$endpoints" --workload "$workload" \
  --clients "$clients" --duration "${seconds}s" 2>/dev/null)
after=$(ticks)
t1=$(date +%s.%N)
hz=$(getconf CLK_TCK)
echo "$result" | jq -r --argjson ticks $((after - before)) --argjson hz "$hz" \
  --arg t0 "$t0" --arg t1 "$t1" '
  ($ticks / $hz) as $cpu | (($t1 | tonumber) - ($t0 | tonumber)) as $wall |
  "\(.ops_per_s | floor) ops/s  p50 \(.p50_ms) ms  p99 \(.p99_ms) ms  cores \($cpu / $wall * 100 | floor / 100)  " +
  "CPU µs/op \($cpu * 1000000 / .ops | floor)"'
