"""redis-py, with its default settings (RESP3 in redis-py 8), against one
Synod node: pipeline() (a MULTI block), WATCH with retries from several
threads, and a Synod lock. Usage: transactions.py PORT KEY_PREFIX.
Exits non-zero (an AssertionError) on the first wrong answer."""

import sys
import threading

import redis

port = int(sys.argv[1])
prefix = sys.argv[2]


def client():
    return redis.Redis(host="127.0.0.1", port=port)


r = client()
assert r.ping()

# pipeline(): transaction=True by default, so one MULTI ... EXEC.
with r.pipeline() as p:
    p.set(f"{prefix}:a", 1)
    p.incr(f"{prefix}:a")
    p.sadd(f"{prefix}:s", "x", "y")
    p.hset(f"{prefix}:h", mapping={"f": "v"})
    p.expire(f"{prefix}:a", 100)
    p.get(f"{prefix}:a")
    replies = p.execute()
assert replies == [True, 2, 2, 1, True, b"2"], replies
assert 0 < r.ttl(f"{prefix}:a") <= 100

# WATCH: an optimistic read-modify-write, retried on conflict.
counter = f"{prefix}:counter"
THREADS, ROUNDS = 3, 15


def add_one_at_a_time():
    c = client()
    for _ in range(ROUNDS):
        with c.pipeline() as p:
            while True:
                try:
                    p.watch(counter)
                    value = int(p.get(counter) or 0)
                    p.multi()
                    p.set(counter, value + 1)
                    p.execute()
                    break
                except redis.WatchError:
                    continue


threads = [threading.Thread(target=add_one_at_a_time) for _ in range(THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert int(r.get(counter)) == THREADS * ROUNDS, r.get(counter)

# A block with a command refused while queuing is not run.
try:
    with r.pipeline() as p:
        p.set(f"{prefix}:never", 1)
        p.execute_command("NOSUCHCOMMAND")
        p.execute()
    raise AssertionError("EXEC of an aborted block succeeded")
except redis.ResponseError:
    pass
assert r.get(f"{prefix}:never") is None

# A lock with a fencing token, held by this connection's session.
token = r.execute_command("SYNOD.LOCK", f"{prefix}:lock")
assert isinstance(token, int) and token > 0, token
other = client()
assert other.execute_command("SYNOD.LOCK", f"{prefix}:lock") is None
assert r.execute_command("SYNOD.UNLOCK", f"{prefix}:lock") == 1
assert isinstance(other.execute_command("SYNOD.LOCK", f"{prefix}:lock"), int)

print("ok")
