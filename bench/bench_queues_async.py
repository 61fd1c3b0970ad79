"""Per-task overhead of the Huey, arq and Taskiq integrations: a no-op task's round
trip (enqueue, run in a real worker process, result back) with jobstatus and without.

    python -m bench.bench_queues_async

For each queue, two workers run side by side on their own queues: one with
jobstatus (queued written by the client; working and completed by the worker)
and one without. The client sends one task at a time and waits for its result,
alternating between the two in rounds; the median time per task of each side
gives the ratio (plain time / time with jobstatus: 1.0 means no overhead).
Statuses go to the Redis store (SQLite when the Redis store is missing). Needs
Redis on 127.0.0.1:6379 (JOBSTATUS_TEST_REDIS_URL); takes about a minute.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from ._harness import Row, alternate, report
from ._workers import env as _env
from ._workers import task_target, unique, workers

ROOT = Path(__file__).parents[1]
APPS = ROOT / "tests" / "integrations" / "apps"
REDIS_URL = os.environ.get("JOBSTATUS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TASKS = 60  # per side per round
ROUNDS = 7
INCLUDES = {"status", "exception", "serialized_job"}  # what the workers record too

sys.path.insert(0, str(APPS))


def env(store: str, **more: str) -> dict[str, str]:
    """A worker's environment with this benchmark's apps folder."""
    return _env(store, APPS, **more)


def redis_db(db: int) -> str:
    return REDIS_URL.rsplit("/", 1)[0] + f"/{db}"


def row(what: str, medians: dict[str, float]) -> Row:
    return Row(
        what=what,
        ours=medians["tracked"] * 1e3,
        reference_name="same task without jobstatus",
        reference=medians["plain"] * 1e3,
        unit="ms/task",
        target=task_target(medians["plain"], REDIS_URL),
    )


# -- Huey ------------------------------------------------------------------------------


def bench_huey(store: str) -> Row:
    import huey_app
    from huey.storage import RedisStorage

    from jobstatus.integrations.huey import track, untrack

    broker = redis_db(6)
    names = {"plain": unique("bench-huey-plain"), "tracked": unique("bench-huey-tracked")}
    storages = {
        side: RedisStorage(name, url=broker, notify_result=True) for side, name in names.items()
    }
    command = [sys.executable, "-m", "huey.bin.huey_consumer", "huey_app.huey", "-w", "1"]
    specs = [
        (command, env(store, JOBSTATUS_TEST_HUEY_NAME=names[side],
                      JOBSTATUS_TEST_HUEY_REDIS=broker,
                      JOBSTATUS_TEST_HUEY_PLAIN="1" if side == "plain" else "0"))
        for side in names
    ]  # fmt: skip

    def side(name: str) -> Callable[[int], None]:
        def run(n: int) -> None:
            huey_app.huey.storage = storages[name]
            if name == "plain":
                untrack(huey_app.huey)
            else:
                track(huey_app.huey, includes=INCLUDES)
            for _ in range(n):
                huey_app.noop().get(blocking=True, timeout=30)

        return run

    try:
        with workers(specs):
            medians = alternate({"plain": side("plain"), "tracked": side("tracked")}, TASKS, ROUNDS)
    finally:
        for storage in storages.values():
            storage.flush_all()
            notified = list(storage.conn.scan_iter(match=f"{storage.notify_prefix}*"))
            if notified:
                storage.conn.delete(*notified)
    return row("Huey (RedisHuey, 1 thread worker)", medians)


# -- arq -------------------------------------------------------------------------------


def bench_arq(store: str, loop: asyncio.AbstractEventLoop) -> Row:
    from arq import create_pool
    from arq.connections import RedisSettings

    from jobstatus.integrations.arq import enqueue_job

    broker = redis_db(7)
    queues = {"plain": unique("bench-arq-plain"), "tracked": unique("bench-arq-tracked")}
    command = [sys.executable, "-m", "arq", "arq_app.WorkerSettings"]
    specs = [
        (command, env(store, JOBSTATUS_TEST_ARQ_REDIS=broker, JOBSTATUS_TEST_ARQ_QUEUE=queue,
                      JOBSTATUS_TEST_ARQ_POLL_DELAY="0.002",
                      JOBSTATUS_TEST_ARQ_PLAIN="1" if name == "plain" else "0"))
        for name, queue in queues.items()
    ]  # fmt: skip
    pool = loop.run_until_complete(create_pool(RedisSettings.from_dsn(broker)))

    async def plain(n: int) -> None:
        for _ in range(n):
            job = await pool.enqueue_job("noop", _queue_name=queues["plain"])
            assert job is not None
            await job.result(timeout=30, poll_delay=0.002)

    async def tracked(n: int) -> None:
        for _ in range(n):
            job = await enqueue_job(pool, "noop", _queue_name=queues["tracked"])
            assert job is not None
            await job.result(timeout=30, poll_delay=0.002)

    try:
        with workers(specs):
            medians = alternate(
                {"plain": on(loop, plain), "tracked": on(loop, tracked)}, TASKS, ROUNDS
            )
    finally:
        health = [f"{queue}:health-check" for queue in queues.values()]
        loop.run_until_complete(pool.delete(*queues.values(), *health))
        loop.run_until_complete(pool.aclose())
    return row("arq (1 worker, poll_delay 2 ms)", medians)


# -- Taskiq ----------------------------------------------------------------------------


def bench_taskiq(store: str, loop: asyncio.AbstractEventLoop) -> Row:
    os.environ["JOBSTATUS_TEST_TASKIQ_REDIS"] = broker = redis_db(8)
    import taskiq_app

    from jobstatus.integrations.taskiq import StatusMiddleware

    queues = {"plain": unique("bench-taskiq-plain"), "tracked": unique("bench-taskiq-tracked")}
    command = [sys.executable, "-m", "taskiq", "worker", "taskiq_app:broker", "--workers", "1"]
    specs = [
        (command, env(store, JOBSTATUS_TEST_TASKIQ_REDIS=broker, JOBSTATUS_TEST_TASKIQ_QUEUE=queue,
                      JOBSTATUS_TEST_TASKIQ_PLAIN="1" if name == "plain" else "0"))
        for name, queue in queues.items()
    ]  # fmt: skip
    broker_obj = taskiq_app.broker
    ours = [m for m in broker_obj.middlewares if isinstance(m, StatusMiddleware)]
    others = [m for m in broker_obj.middlewares if not isinstance(m, StatusMiddleware)]

    def side(name: str) -> Callable[[int], Coroutine[Any, Any, None]]:
        async def run(n: int) -> None:
            broker_obj.queue_name = queues[name]
            broker_obj.result_backend.prefix_str = queues[name]  # as the worker's (taskiq_app)
            broker_obj.middlewares = others if name == "plain" else others + ours
            for _ in range(n):
                task = await taskiq_app.noop.kiq()
                await task.wait_result(check_interval=0.002, timeout=30)

        return run

    loop.run_until_complete(broker_obj.startup())
    try:
        with workers(specs):
            sides = {"plain": on(loop, side("plain")), "tracked": on(loop, side("tracked"))}
            medians = alternate(sides, TASKS, ROUNDS)
    finally:
        loop.run_until_complete(broker_obj.shutdown())
        import redis

        client = redis.Redis.from_url(broker)
        results = [key for queue in queues.values() for key in client.scan_iter(match=f"{queue}:*")]
        client.delete(*queues.values(), *results)
        client.close()
    return row("Taskiq (taskiq-redis ListQueueBroker, 1 worker)", medians)


def on(
    loop: asyncio.AbstractEventLoop, fn: Callable[[int], Coroutine[Any, Any, None]]
) -> Callable[[int], None]:
    """A sync ``run(n)`` for the harness that runs the coroutine on ``loop``."""
    return lambda n: loop.run_until_complete(fn(n))


def status_store(folder: Path) -> str:
    import importlib.util

    if importlib.util.find_spec("jobstatus.stores.redis") is not None:
        return f"{REDIS_URL}?prefix={unique('jobstatus-bench')}:"
    return f"sqlite:///{folder / 'status.db'}"


def purge(store: str) -> None:
    if not store.startswith("redis"):
        return
    import redis

    url, prefix = store.split("?prefix=")
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def main() -> None:
    import jobstatus

    with tempfile.TemporaryDirectory() as folder:
        store = status_store(Path(folder))
        jobstatus.configure(store=store)
        loop = asyncio.new_event_loop()
        try:
            benches: dict[str, Callable[[], Row]] = {
                "huey": lambda: bench_huey(store),
                "arq": lambda: bench_arq(store, loop),
                "taskiq": lambda: bench_taskiq(store, loop),
            }
            # arq needs redis-py below 6, so it lives in a venv of its own (.venv-arq,
            # made by `python3 dev.py test`): a queue not installed here is left out.
            rows = []
            for module, bench in benches.items():
                if importlib.util.find_spec(module) is None:
                    print(f"{module} is not installed in {sys.prefix}: its row is left out")
                else:
                    rows.append(bench())
        finally:
            loop.close()
            purge(store)
    kind = "Redis" if store.startswith("redis") else "SQLite"
    report(
        f"Huey, arq, Taskiq: no-op task round trip through a real worker ({kind} store)",
        rows,
        "queues_async",
    )


if __name__ == "__main__":
    main()
