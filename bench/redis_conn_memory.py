#!/usr/bin/python3
"""Bytes per connection in redis-server, item by item, for the key layout of
docs/redis.md: a private redis-server, 19,000 connections written as conn_register
writes them (one user per connection), INFO used_memory before and after each item
(docs/benchmark.md, "Idle memory"). Usage: bench/redis_conn_memory.py [N]"""
import shutil
import sys
import tempfile
import time
import uuid

from benchlib import free_port, start_redis

N = int(sys.argv[1]) if len(sys.argv) > 1 else 19000


def main():
    tmp = tempfile.mkdtemp(prefix="redis-conn-memory-")
    srv, r = start_redis(free_port(), tmp)
    try:
        info = r.info()
        print(f"redis {info['redis_version']}, {r.info('memory')['mem_allocator']}, N={N}")
        worker = str(uuid.uuid4())
        ids = [str(uuid.uuid4()) for _ in range(N)]
        user = lambda i: f"bench2db71095-u{i}"  # the bench's user names
        now = int(time.time())

        def conn(p, i, cid, w=worker):
            p.hset("conn:" + cid, mapping={"user": user(i), "worker": w, "lastPing": now})

        def full(p, i, cid):
            conn(p, i, cid)
            p.sadd("user:" + user(i), cid)
            p.sadd("worker-conns:" + worker, cid)
            p.sadd("workers", worker)

        def two_per_user(p, i, cid):
            conn(p, i // 2, cid)
            p.sadd("user:" + user(i // 2), cid)
            p.sadd("worker-conns:" + worker, cid)

        items = [
            ("conn:$id hash (user, worker, lastPing)", conn),
            ("user:$user set, one member", lambda p, i, c: p.sadd("user:" + user(i), c)),
            ("worker-conns:$worker member", lambda p, i, c: p.sadd("worker-conns:" + worker, c)),
            ("all of conn_register, one user per connection", full),
            ("all of conn_register, two connections per user", two_per_user),
            ("[what if] user:$user as a 1-field listpack (Redis >= 7.2 sets)",
             lambda p, i, c: p.hset("user:" + user(i), c, "")),
            ("[what if] conn:$id hash with an 8-byte worker id",
             lambda p, i, c: conn(p, i, c, worker[:8])),
        ]
        for name, fn in items:
            r.flushall()
            time.sleep(0.1)
            m0 = r.info("memory")["used_memory"]
            p = r.pipeline(transaction=False)
            for i, cid in enumerate(ids):
                fn(p, i, cid)
            p.execute()
            m1 = r.info("memory")["used_memory"]
            print(f"  {name:62s} {(m1 - m0) / N:6.0f} B/conn")
    finally:
        srv.terminate()
        srv.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
