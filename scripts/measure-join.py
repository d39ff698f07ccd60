#!/usr/bin/env python3
"""What a membership change costs: time from `synod member add` to a caught-up, promoted voter.

Starts a 3-node `synod dev` cluster (release build; base port 7600, data in /tmp/join-measure),
loads it with `redis-benchmark -t set -n KEYS -r KEYS -d 128` (KEYS: first argument, default
100,000), starts node 4 empty with `join = true`, and times `synod member add 4` (which waits
for the learner to catch up, then promotes it). Needs redis-benchmark (Debian redis-tools) and
`cargo build --release --bin synod` first.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

syn = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "synod")
d = "/tmp/join-measure"
shutil.rmtree(d, ignore_errors=True)
os.makedirs(d)
base = 7600
dev = subprocess.Popen([syn, "dev", "--data-dir", d, "--base-port", str(base)], stdout=subprocess.DEVNULL, stderr=open(d + "/dev.log", "w"))
time.sleep(3)
keys = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
# load: redis-benchmark SET with random keys over `keys`, 128-byte values
subprocess.run(["redis-benchmark", "-p", str(base + 2), "-t", "set", "-n", str(keys), "-r", str(keys), "-d", "128", "-c", "64", "-q"], check=True)
n1 = open(f"{d}/node1.toml").read()
cfg = n1
cfg = re.sub(r'^id = 1$', 'id = 4', cfg, flags=re.M)
for k, off in [("peer_addr", 0), ("client_addr", 1), ("redis_addr", 2), ("metrics_addr", 3)]:
    cfg = re.sub(rf'^{k} = "127.0.0.1:\d+"', f'{k} = "127.0.0.1:{base + 30 + off}"', cfg, flags=re.M)
cfg = cfg.replace(f"{d}/node1", f"{d}/node4").replace("node-1.pem", "node-4.pem").replace("node-1.key", "node-4.key")
cfg = "join = true\n" + cfg
# node 1 as a peer too
cfg += f'\n[[peers]]\nid = 1\naddr = "127.0.0.1:{base}"\nclient_addr = "127.0.0.1:{base+1}"\n'
open(f"{d}/node4.toml", "w").write(cfg)
j = subprocess.Popen([syn, "start", "--config", f"{d}/node4.toml"], stdout=subprocess.DEVNULL, stderr=open(d + "/node4.log", "w"))
time.sleep(1)
t0 = time.time()
r = subprocess.run([syn, "member", "--data-dir", d, "add", "4", "--peer-addr", f"127.0.0.1:{base+30}", "--client-addr", f"127.0.0.1:{base+31}"], capture_output=True, text=True)
t1 = time.time()
print(r.stdout, r.stderr)
print(f"keys={keys} add->promoted {t1-t0:.2f} s")
r = subprocess.run([syn, "member", "--data-dir", d, "list"], capture_output=True, text=True)
print(r.stdout, r.stderr)
sz = subprocess.run(["du", "-sh", f"{d}/node1"], capture_output=True, text=True).stdout
print("node1 data:", sz)
j.send_signal(signal.SIGTERM); dev.send_signal(signal.SIGTERM)
j.wait(); dev.wait()
