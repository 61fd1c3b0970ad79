"""Redis: jobstatus against raw redis-py, Celery's update_state and RQ's save_meta; push latency.

python -m bench.bench_redis   (needs Redis at JOBSTATUS_TEST_REDIS_URL, default 127.0.0.1:6379/0)
"""

from __future__ import annotations

import os
import threading
import time
import uuid

import redis

import jobstatus
from jobstatus import Batch, Job
from jobstatus._record import Change, dumps, utc_now_iso
from jobstatus.stores._redis_common import write_args
from jobstatus.stores.redis import RedisStore

from ._harness import Row, alternate, percentile, report

URL = os.environ.get("JOBSTATUS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PREFIX = f"bench{uuid.uuid4().hex[:8]}:"
OPS = 2_000
BATCH = 10_000
PUSHES = 1_000


def single_rows(store: RedisStore, raw: redis.Redis) -> list[Row]:
    jobstatus.configure(store=store, throttle_interval=0)
    job = Job("bench-one")
    job.started()
    status = job.status
    key = f"{PREFIX}raw:one"

    def ours_write(n: int) -> None:
        for i in range(n):
            status.update(step="load", progress=i)

    def raw_write(n: int) -> None:
        for i in range(n):
            raw.hset(key, mapping={"step": dumps("load"), "progress": i})

    def ours_read(n: int) -> None:
        for _ in range(n):
            jobstatus.get("bench-one")

    def raw_read(n: int) -> None:
        for _ in range(n):
            raw.hgetall(key)

    # The floor: one loopback round trip, and one script call that does nothing
    # with the write script's keys and arguments (what the script adds is the rest).
    empty_script = raw.register_script("return 1")
    record_key = store._layout.record("bench-one")
    script_keys = store._layout.script_keys("bench-one")

    def raw_ping(n: int) -> None:
        for _ in range(n):
            raw.ping()

    def raw_empty_script(n: int) -> None:
        change = Change(set={"step": "load", "progress": 0, "updated_at": utc_now_iso()})
        args = write_args(store._layout, "bench-one", change)
        for _ in range(n):
            empty_script(keys=script_keys, args=args)

    def raw_read_record(n: int) -> None:
        for _ in range(n):
            raw.hgetall(record_key)

    celery_write, rq_write = _celery_writer(), _rq_writer(raw)
    sides = {
        "ours": ours_write,
        "raw": raw_write,
        "celery": celery_write,
        "rq": rq_write,
        "ping": raw_ping,
        "empty": raw_empty_script,
    }
    writes = alternate(sides, OPS)
    reads = alternate({"ours": ours_read, "raw": raw_read, "same": raw_read_record}, OPS)
    job.finished()
    us = 1e6
    return [
        Row(
            "unthrottled `status.update(step=..., progress=...)`",
            writes["ours"] * us,
            "redis-py `HSET` of the same fields",
            writes["raw"] * us,
            "us/op",
            ">= 0.8x",
        ),
        Row(
            "the same update",
            writes["ours"] * us,
            "Celery `backend.store_result` (what `update_state` calls)",
            writes["celery"] * us,
            "us/op",
        ),
        Row(
            "the same update",
            writes["ours"] * us,
            "RQ `job.meta[...] = ...; job.save_meta()`",
            writes["rq"] * us,
            "us/op",
        ),
        Row(
            "the same update",
            writes["ours"] * us,
            "the floor: redis-py `PING` (one loopback round trip)",
            writes["ping"] * us,
            "us/op",
        ),
        Row(
            "the same update",
            writes["ours"] * us,
            "`EVALSHA` of `return 1` with the write's keys and arguments",
            writes["empty"] * us,
            "us/op",
        ),
        Row(
            "`jobstatus.get(id)`",
            reads["ours"] * us,
            "redis-py `HGETALL`",
            reads["raw"] * us,
            "us/op",
            ">= 0.9x",
        ),
        Row(
            "`jobstatus.get(id)`",
            reads["ours"] * us,
            "redis-py `HGETALL` of the same record (the same fields on the wire)",
            reads["same"] * us,
            "us/op",
        ),
    ]


def _celery_writer():  # type: ignore[no-untyped-def]
    from celery import Celery

    app = Celery("bench", backend=URL, broker="memory://")
    backend = app.backend
    task_id = f"{PREFIX}celery"

    def celery_write(n: int) -> None:
        for i in range(n):
            backend.store_result(task_id, {"step": "load", "progress": i}, "PROGRESS")

    return celery_write


def _rq_writer(raw: redis.Redis):  # type: ignore[no-untyped-def]
    from rq.job import Job as RQJob

    job = RQJob.create(func=print, connection=raw, id=PREFIX.rstrip(":") + "-rq")
    job.save()

    def rq_write(n: int) -> None:
        for i in range(n):
            job.meta["step"] = "load"
            job.meta["progress"] = i
            job.save_meta()

    return rq_write


def batch_rows(store: RedisStore, raw: redis.Redis) -> list[Row]:
    ids = [f"batch-{n}" for n in range(BATCH)]
    for start in range(0, BATCH, 1000):
        pipe = raw.pipeline(transaction=False)
        for job_id in ids[start : start + 1000]:
            pipe.hset(
                store._layout.record(job_id),
                mapping={"status": dumps("working"), "progress": 3, "total": 10},
            )
        pipe.execute()
    keys = [store._layout.record(job_id) for job_id in ids]

    def ours(n: int) -> None:
        for _ in range(n):
            Batch(ids, store=store).counts  # noqa: B018 - reading it is the work

    def raw_pipeline(n: int) -> None:
        for _ in range(n):
            pipe = raw.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(key)
            pipe.execute()

    medians = alternate({"ours": ours, "raw": raw_pipeline}, 3, rounds=5)
    return [
        Row(
            "`Batch(10,000 ids).counts`",
            medians["ours"] * 1e3,
            "raw pipeline of 10,000 `HGETALL`",
            medians["raw"] * 1e3,
            "ms",
            "within 1.5x (>= 0.67x)",
        )
    ]


def push_rows(store: RedisStore, raw: redis.Redis) -> list[Row]:
    ours = _push_latencies(store)
    reference = _raw_pubsub_latencies(raw)
    return [
        Row(
            f"push latency p{pct}, write to watcher",
            percentile(ours, pct) * 1e3,
            f"raw `PUBLISH` to `SUBSCRIBE` p{pct}",
            percentile(reference, pct) * 1e3,
            "ms",
            "p99 < 5 ms" if pct == 99 else "",
        )
        for pct in (50, 99)
    ]


def _push_latencies(store: RedisStore) -> list[float]:
    latencies: list[float] = []
    with store.subscribe("bench-push") as subscription:
        done = threading.Event()

        def watcher() -> None:
            while len(latencies) < PUSHES:
                for record in subscription.wait(5) or []:
                    latencies.append(time.perf_counter() - record["sent"])
            done.set()

        thread = threading.Thread(target=watcher)
        thread.start()
        for _ in range(PUSHES):
            store.write("bench-push", Change(set={"sent": time.perf_counter()}))
            time.sleep(0.0005)
        done.wait(30)
        thread.join()
    return latencies


def _raw_pubsub_latencies(raw: redis.Redis) -> list[float]:
    channel = f"{PREFIX}raw-channel"
    pubsub = raw.pubsub()
    pubsub.subscribe(channel)
    while pubsub.get_message(timeout=1) is None:
        pass
    latencies: list[float] = []

    def watcher() -> None:
        while len(latencies) < PUSHES:
            message = pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
            if message is not None:
                latencies.append(time.perf_counter() - float(message["data"]))

    thread = threading.Thread(target=watcher)
    thread.start()
    for _ in range(PUSHES):
        raw.publish(channel, repr(time.perf_counter()))
        time.sleep(0.0005)
    thread.join(30)
    pubsub.close()
    return latencies


def _clean(raw: redis.Redis) -> None:
    keys = list(raw.scan_iter(match=f"{PREFIX}*", count=1000))
    keys += list(raw.scan_iter(match="celery-task-meta-" + PREFIX + "*", count=1000))
    keys += list(raw.scan_iter(match="rq:*" + PREFIX.rstrip(":") + "*", count=1000))
    for start in range(0, len(keys), 1000):
        raw.delete(*keys[start : start + 1000])


def main() -> None:
    store = RedisStore.from_url(URL, prefix=PREFIX)
    raw = redis.Redis.from_url(URL)
    try:
        rows = single_rows(store, raw) + batch_rows(store, raw) + push_rows(store, raw)
    finally:
        _clean(raw)
        store.close()
        raw.close()
    report("Redis: jobstatus vs raw redis-py, Celery and RQ", rows, "redis")


if __name__ == "__main__":
    main()
