"""Redis and PostgreSQL at tens of thousands of records: load rate, bytes per record, call costs.

Run: python -m bench.bench_scale_stores (writes under prefix scalebench: and table
scalebench, removes both). Figures are in docs/reliability.md, "Scale and soak".
"""

import subprocess, sys

REDIS = r"""
import time, jobstatus
from jobstatus._record import Change
from jobstatus.stores.redis import RedisStore
N = 50_000
s = RedisStore.from_url("redis://127.0.0.1:6379/0", prefix="scalebench:")
c = s._scripts().client
keys0 = list(c.scan_iter(match="scalebench:*", count=5000))
for i in range(0, len(keys0), 5000): c.delete(*keys0[i:i+5000])
m0 = int(c.info("memory")["used_memory"])
t = time.perf_counter()
for n in range(N):
    st = "failed" if n % 10 == 0 else "completed"
    s.write(f"job-{n:07d}", Change(set={"status": st, "progress": 1.0, "queue": "default", "name": "tasks.work"}))
load = time.perf_counter() - t
m1 = int(c.info("memory")["used_memory"])
print(f"load {N} writes: {load:.1f}s = {N/load:.0f}/s; memory/record {(m1-m0)/N:.0f} B")
def tm(label, f, k=200):
    t = time.perf_counter()
    for _ in range(k): f()
    print(f"{label}: {(time.perf_counter()-t)/k*1e3:.3f} ms")
tm("get", lambda: jobstatus.get("job-0012345", store=s))
tm("write", lambda: s.write("job-0012345", Change(set={"progress": 0.5})))
tm("recent failed 10", lambda: jobstatus.recent(status="failed", limit=10, store=s))
def pages():
    before = None
    for _ in range(5):
        rows = jobstatus.recent(limit=10, before=before, store=s)
        u = rows[-1].get("updated_at"); before = u
tm("5 pages before=", pages, 50)
keys = list(c.scan_iter(match="scalebench:*", count=5000))
for i in range(0, len(keys), 5000): c.delete(*keys[i:i+5000])
print("cleaned", len(keys))
"""

POSTGRES = r"""
import time, jobstatus, psycopg
from jobstatus._record import Change
from jobstatus.stores.postgres import PostgresStore
URL = "postgresql://postgres@127.0.0.1:5432/test"
N = 20_000
s = PostgresStore.from_url(URL, table="scalebench")
s.write("warm", Change(set={"status": "queued"}))
t = time.perf_counter()
for n in range(N):
    st = "failed" if n % 10 == 0 else "completed"
    s.write(f"job-{n:07d}", Change(set={"status": st, "progress": 1.0, "queue": "default", "name": "tasks.work"}))
load = time.perf_counter() - t
with psycopg.connect(URL, autocommit=True) as c:
    c.execute("VACUUM ANALYZE scalebench")
    size = c.execute("select pg_total_relation_size('scalebench')").fetchone()[0]
print(f"load {N} writes: {load:.1f}s = {N/load:.0f}/s; disk/record {size/N:.0f} B")
def tm(label, f, k=200):
    t = time.perf_counter()
    for _ in range(k): f()
    print(f"{label}: {(time.perf_counter()-t)/k*1e3:.3f} ms")
tm("get", lambda: jobstatus.get("job-0012345", store=s))
tm("write", lambda: s.write("job-0012345", Change(set={"progress": 0.5})))
tm("recent failed 10", lambda: jobstatus.recent(status="failed", limit=10, store=s))
def pages():
    before = None
    for _ in range(5):
        rows = jobstatus.recent(limit=10, before=before, store=s)
        before = rows[-1].get("updated_at")
tm("5 pages before=", pages, 50)
s.close()
with psycopg.connect(URL, autocommit=True) as c:
    c.execute("DROP TABLE scalebench")
print("dropped")
"""

if __name__ == "__main__":
    for source in (REDIS, POSTGRES):
        subprocess.run([sys.executable, "-c", source], check=True)
