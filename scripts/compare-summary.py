#!/usr/bin/env python3
"""Prints what issue 13 measures from one `../shared/bench/compare.sh . OUT` run's OUT
directory: each workload's ops/s and CPU µs per operation (server cores ÷ ops/s) for etcd and
Synod, their ratio, the one-client put p50 at each leader, and redis-benchmark's SET against
Synod and redis-server.

    python3 scripts/compare-summary.py OUT
"""
import json
import re
import sys


def main(out):
    rows = [json.loads(line) for line in open(f"{out}/results.jsonl") if line.strip()]

    def find(label, clients):
        return next((r for r in rows if r.get("label") == label and r.get("clients") == clients), None)

    def cpu_us(r):
        return r.get("server_cores", 0) * 1e6 / r["ops_per_s"] if r["ops_per_s"] else float("nan")

    print("| workload | clients | etcd ops/s (µs CPU/op) | Synod ops/s (µs CPU/op) | Synod ÷ etcd |")
    print("|---|---|---|---|---|")
    for workload, tag in (("put", "put"), ("linearizable get", "get-lin")):
        for clients in (1, 16, 64, 256):
            e, s = find(f"etcd {tag}", clients), find(f"synod {tag}", clients)
            if e and s:
                print(f"| {workload} | {clients} | {e['ops_per_s']:,.0f} ({cpu_us(e):,.0f}) "
                      f"| {s['ops_per_s']:,.0f} ({cpu_us(s):,.0f}) "
                      f"| {s['ops_per_s'] / e['ops_per_s']:.2f} |")
    e, s = find("etcd-leader put", 1), find("synod-leader put", 1)
    if e and s:
        print(f"| put at the leader, p50 | 1 | {e['p50_ms']} ms | {s['p50_ms']} ms "
              f"| {s['p50_ms'] / e['p50_ms']:.2f} |")

    def sets(name):
        per_clients, clients = {}, None
        for line in open(f"{out}/{name}"):
            if line.startswith("== -c"):
                clients = int(line.split()[-1])
            m = re.match(r"SET: ([0-9.]+) requests per second", line)
            if m and clients is not None:
                per_clients[clients] = float(m.group(1))
        return per_clients

    try:
        synod, redis = sets("rb-synod.txt"), sets("rb-redis.txt")
    except FileNotFoundError:
        return
    for clients in sorted(synod):
        if clients in redis:
            print(f"| redis-benchmark SET | {clients} | {redis[clients]:,.0f} (redis-server) "
                  f"| {synod[clients]:,.0f} | {synod[clients] / redis[clients]:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1])
