#!/usr/bin/env bash
# One side-by-side run of ../shared/bench/compare.sh (etcd, Synod, redis-server; see that
# script) between two readings of scripts/machine-speed.sh, then the figures issue 13 asks for
# (scripts/compare-summary.py). The machine is shared and its speed moves: a run whose two
# speed readings disagree by much compared a fast etcd with a slow Synod, or the reverse.
#
#   scripts/compare.sh OUT          # builds the release binaries if missing; about 8 minutes
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/compare.sh OUT}
mkdir -p "$out"
# ../shared/bench/etcd-cluster.sh waits for etcd's health with etcdctl, which that script does
# not install (Debian ships it apart from the server): without it a healthy cluster is reported
# as "did not become healthy in 30 s".
command -v etcdctl >/dev/null || { apt-get update -qq &&
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends etcd-client >/dev/null; }
scripts/machine-speed.sh | tee "$out/speed-before.txt"
../shared/bench/compare.sh . "$out" >"$out/compare.log" 2>&1
scripts/machine-speed.sh | tee "$out/speed-after.txt"
python3 scripts/compare-summary.py "$out"
