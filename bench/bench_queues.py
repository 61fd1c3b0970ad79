"""Per-task overhead of the Celery, RQ and Dramatiq integrations: a no-op task's round
trip (publish, run in a real worker process, result back) with jobstatus and without.

    python -m bench.bench_queues

For each queue, two workers run side by side on their own queues: one with
jobstatus (the client records queued; the worker records working and completed,
with ``includes={"status", "exception", "serialized_job"}``) and one without.
The client sends one task at a time and waits for its result, alternating
between the two sides in rounds; the median time per task of each side gives
the ratio (plain time / time with jobstatus: 1.0 means no overhead). Statuses
go to the Redis store (SQLite when the Redis store is missing). Brokers and
result backends are Redis databases 3 (Celery), 4 (RQ) and 5 (Dramatiq), which
are flushed at the end. Needs Redis on 127.0.0.1:6379 (JOBSTATUS_TEST_REDIS_URL);
takes about a minute and a half.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._harness import Row, alternate, report
from ._workers import env as _env
from ._workers import task_target, unique, workers

ROOT = Path(__file__).parents[1]
APPS = Path(__file__).parent / "apps"
BIN = Path(sys.executable).parent
REDIS_URL = os.environ.get("JOBSTATUS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TASKS = 40  # per side per round
ROUNDS = 5

sys.path.insert(0, str(APPS))


def env(store: str, **more: str) -> dict[str, str]:
    """A worker's environment with this benchmark's apps folder."""
    return _env(store, APPS, **more)


def redis_db(db: int) -> str:
    return REDIS_URL.rsplit("/", 1)[0] + f"/{db}"


def store_url(folder: Path) -> str:
    if importlib.util.find_spec("jobstatus.stores.redis") is not None:
        separator = "&" if "?" in REDIS_URL else "?"
        return f"{REDIS_URL}{separator}prefix={unique('bench-queues')}:"
    return f"sqlite:///{folder / 'status.db'}"


def measure(tracked: Callable[[], None], plain: Callable[[], None]) -> dict[str, float]:
    """Median seconds per round trip of each side (the cyclic GC paused for both)."""

    def times(fn: Callable[[], None]) -> Callable[[int], None]:
        def run(n: int) -> None:
            for _ in range(n):
                fn()

        return run

    gc.disable()
    try:
        return alternate({"tracked": times(tracked), "plain": times(plain)}, TASKS, ROUNDS)
    finally:
        gc.enable()


def row(what: str, medians: dict[str, float]) -> Row:
    return Row(
        what=what,
        ours=medians["tracked"] * 1e3,
        reference_name="same task without jobstatus",
        reference=medians["plain"] * 1e3,
        unit="ms/task",
        target=task_target(medians["plain"], REDIS_URL),
    )


def wait_until_up(send: Callable[[], None], what: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            send()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {what} worker did not answer") from None


# -- Celery ------------------------------------------------------------------------------


def bench_celery(store: str) -> Row:
    from celery import Celery

    import jobstatus
    from jobstatus.integrations.celery import track

    broker = redis_db(3)
    tracked_queue, plain_queue = unique("bench-celery"), unique("bench-celery-plain")
    app = Celery("bench-client", broker=broker, backend=broker)
    app.conf.result_expires = 60
    track(app, includes={"status", "exception", "serialized_job"})

    @app.task(name="bench.noop_plain", jobstatus=False)
    def noop_plain() -> None: ...

    jobstatus.configure(store=store)
    worker = [
        sys.executable, "-m", "celery", "-A", "celery_bench", "worker", "-c", "1",
        "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "warning",
    ]  # fmt: skip
    commands = [
        ([*worker, "-Q", tracked_queue, "-n", f"{tracked_queue}@%h"],
         env(store, BENCH_TRACKED="1", BENCH_BROKER=broker)),
        ([*worker, "-Q", plain_queue, "-n", f"{plain_queue}@%h"],
         env(store, BENCH_TRACKED="0", BENCH_BROKER=broker)),
    ]  # fmt: skip

    def send(name: str, queue: str) -> Callable[[], None]:
        def once() -> None:
            app.send_task(name, queue=queue).get(timeout=30)

        return once

    tracked, plain = send("bench.noop", tracked_queue), send("bench.noop_plain", plain_queue)
    try:
        with workers(commands):
            wait_until_up(tracked, "tracked Celery")
            wait_until_up(plain, "plain Celery")
            medians = measure(tracked, plain)
    finally:
        _flush(broker)
    return row("Celery (prefork, Redis broker and results)", medians)


# -- RQ ------------------------------------------------------------------------------------


def bench_rq(store: str) -> Row:
    import rq_bench
    from redis import Redis
    from rq import Queue

    import jobstatus
    from jobstatus.integrations.rq import StatusQueue

    broker = redis_db(4)
    connection = Redis.from_url(broker)
    tracked_queue = StatusQueue(unique("bench-rq"), connection=connection)
    plain_queue = Queue(unique("bench-rq-plain"), connection=connection)
    jobstatus.configure(store=store)
    rq = str(BIN / "rq")
    commands = [
        ([rq, "worker", "-w", "jobstatus.integrations.rq.StatusWorker", "--url", broker,
          "-q", tracked_queue.name], env(store)),
        ([rq, "worker", "--url", broker, "-q", plain_queue.name], env(store)),
    ]  # fmt: skip

    def send(queue: Queue) -> Callable[[], None]:
        def once() -> None:
            job = queue.enqueue(rq_bench.noop)
            if job.latest_result(timeout=30) is None:
                raise TimeoutError("no result")

        return once

    tracked, plain = send(tracked_queue), send(plain_queue)
    try:
        with workers(commands):
            wait_until_up(tracked, "tracked RQ")
            wait_until_up(plain, "plain RQ")
            medians = measure(tracked, plain)
    finally:
        _flush(broker)
    return row("RQ (forking work horse per job)", medians)


# -- Dramatiq ------------------------------------------------------------------------------


def bench_dramatiq(store: str) -> Row:
    from dramatiq import Message
    from dramatiq.results import Results

    import jobstatus

    broker_url = redis_db(5)
    os.environ["BENCH_BROKER"] = broker_url
    import dramatiq_bench

    tracked_queue, plain_queue = unique("bench-dramatiq"), unique("bench-dramatiq-plain")
    tracked_broker = dramatiq_bench.make_broker(tracked=True)
    plain_broker = dramatiq_bench.make_broker(tracked=False)
    jobstatus.configure(store=store)
    worker = [sys.executable, "-m", "dramatiq", "dramatiq_bench", "-p", "1", "-t", "1"]
    commands = [
        ([*worker, "-Q", tracked_queue],
         env(store, BENCH_TRACKED="1", BENCH_BROKER=broker_url, BENCH_QUEUE=tracked_queue)),
        ([*worker, "-Q", plain_queue],
         env(store, BENCH_TRACKED="0", BENCH_BROKER=broker_url, BENCH_QUEUE=plain_queue)),
    ]  # fmt: skip

    def send(broker: Any, queue: str) -> Callable[[], None]:
        broker.declare_queue(queue)
        backend = next(m for m in broker.middleware if isinstance(m, Results)).backend

        def once() -> None:
            message = Message(queue_name=queue, actor_name="noop", args=(), kwargs={}, options={})
            broker.enqueue(message)
            backend.get_result(message, block=True, timeout=30_000)

        return once

    tracked, plain = send(tracked_broker, tracked_queue), send(plain_broker, plain_queue)
    try:
        with workers(commands):
            wait_until_up(tracked, "tracked Dramatiq")
            wait_until_up(plain, "plain Dramatiq")
            medians = measure(tracked, plain)
    finally:
        tracked_broker.close()
        plain_broker.close()
        _flush(broker_url)
    return row("Dramatiq (Redis broker and results)", medians)


def _flush(url: str) -> None:
    from redis import Redis

    with contextlib.suppress(Exception):
        Redis.from_url(url).flushdb()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="jobstatus-bench-queues-") as folder:
        store = store_url(Path(folder))
        rows = [bench_celery(store), bench_rq(store), bench_dramatiq(store)]
    report(
        "Celery, RQ and Dramatiq: a no-op task's round trip through a real worker "
        f"({TASKS * ROUNDS} tasks per side, median of {ROUNDS} alternating rounds)",
        rows,
        "queues",
    )


if __name__ == "__main__":
    main()
