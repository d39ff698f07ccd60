# Sourced by the scripts that start `synod dev` and measure it; defines `dev_leader_port`.

# dev_leader_port BASE_PORT LOG: waits (up to about 30 s) for a leader of the `synod dev` cluster
# on BASE_PORT that takes a write, and prints its Redis port (BASE_PORT + 10 × node + 2: the
# node whose INFO says role:master). If none comes, prints the cluster's LOG to stderr and fails.
dev_leader_port() {
  local base=$1 log=$2 node port
  for _ in $(seq 1 300); do
    for node in 0 1 2; do
      port=$((base + 10 * node + 2))
      if redis-cli -p "$port" INFO replication 2>/dev/null | grep -q '^role:master' &&
        [ "$(redis-cli -p "$port" SET dev-leader:ready 1 2>/dev/null)" = "OK" ]; then
        echo "$port"
        return 0
      fi
    done
    sleep 0.1
  done
  echo "the Synod cluster did not elect a leader; its log:" >&2
  cat "$log" >&2
  return 1
}
