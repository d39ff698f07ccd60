#!/usr/bin/env bash
# redis-benchmark against a 3-node Synod (`synod dev`, through the leader's
# Redis port) and against a local redis-server with appendonly and
# appendfsync always (so both fsync every write), one after the other on
# this machine, and prints both. This makes the README's Redis figure.
#
#   scripts/redis-compare.sh                 # builds target/release/synod first
#   SYNOD_BIN=path/to/synod scripts/redis-compare.sh
#   REQUESTS=20000 CLIENTS=50 TESTS=set,get,incr scripts/redis-compare.sh
#
# Needs redis-benchmark and redis-cli (Debian package redis-tools) and
# redis-server (package redis-server): as root, this script installs them
# with `apt-get update && apt-get install -y redis-server redis-tools` when
# they are missing. Everything lives in a temporary directory, removed at
# the end; only the processes this script started are stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/dev-leader.sh

REQUESTS="${REQUESTS:-20000}"
CLIENTS="${CLIENTS:-50}"
TESTS="${TESTS:-set,get,incr}"
BASE_PORT="${BASE_PORT:-17400}"
REDIS_PORT="${REDIS_PORT:-17499}"

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq redis-server redis-tools >/dev/null
  else
    echo "needs redis-server and redis-tools (apt-get install redis-server redis-tools)" >&2
    exit 1
  fi
fi

if [ -z "${SYNOD_BIN:-}" ]; then
  cargo build --release --quiet --bin synod
  SYNOD_BIN=target/release/synod
fi

work="$(mktemp -d -t synod-redis-compare.XXXXXX)"
synod_pid=""
redis_pid=""
cleanup() {
  # Only what this script started, by process id.
  [ -n "$synod_pid" ] && kill -TERM "$synod_pid" 2>/dev/null && wait "$synod_pid" 2>/dev/null || true
  [ -n "$redis_pid" ] && kill -TERM "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$SYNOD_BIN" dev --data-dir "$work/synod" --base-port "$BASE_PORT" >"$work/synod.log" 2>&1 &
synod_pid=$!
mkdir -p "$work/redis"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$work/redis" \
  --appendonly yes --appendfsync always --save '' --daemonize no \
  >"$work/redis.log" 2>&1 &
redis_pid=$!

leader_port=$(dev_leader_port "$BASE_PORT" "$work/synod.log")
for _ in $(seq 1 100); do
  redis-cli -p "$REDIS_PORT" PING >/dev/null 2>&1 && break
  sleep 0.1
done

bench() {
  redis-benchmark -h 127.0.0.1 -p "$1" -t "$TESTS" -n "$REQUESTS" -c "$CLIENTS" -q 2>&1 |
    tr '\r' '\n' | grep 'requests per second'
}

echo "machine: $(nproc) cores, $(uname -sr); $(redis-server --version | cut -d' ' -f1-3)"
echo "command: redis-benchmark -t $TESTS -n $REQUESTS -c $CLIENTS -q"
echo
echo "Synod, 3 nodes (synod dev), through the leader's Redis port $leader_port:"
bench "$leader_port"
echo
echo "redis-server --appendonly yes --appendfsync always, port $REDIS_PORT:"
bench "$REDIS_PORT"
