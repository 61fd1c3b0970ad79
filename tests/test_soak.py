"""Soak, at test-suite size: 5,000 jobs through a real Celery worker leak nothing.

The worker runs Celery's default pool (prefork) with one child, which runs
every task, and so every jobstatus write; the main process holds the broker's
connections. Both are sampled after a warm-up and again after 5,000 more jobs.
``python -m bench.bench_soak`` is the 100,000-job version, with the figures
(docs/reliability.md, "Scale and soak").
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import jobstatus

from .integrations._support import (
    CELERY_REDIS_DB,
    TIMEOUT,
    python,
    redis_url,
    require_redis,
    scratch_dir,
    start,
    stop,
    unique,
    worker_env,
)
from .stores import REDIS_URL

pytest.importorskip("celery")

pytestmark = [pytest.mark.celery, pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(240)]

WARM_UP = 500
JOBS = 5_000  # after the warm-up
CHUNK = 500
# Python's allocator and Celery's caches may settle a little after the warm-up;
# a leak of 4 KiB per job would add 19.5 MiB over the 5,000 jobs and fail this.
RSS_GROWTH_BOUND_KIB = 16 * 1024
# A thread or fd that comes and goes between two jobs (a connection being
# replaced, the heartbeat thread starting late) may be caught by the last look;
# a leak of one per job, or per chunk, would exceed it.
SLACK = 2
# The child runs one task at a time; jobstatus's store client needs a connection
# for the task's thread and one for the heartbeat thread, at most.
STORE_CONNECTIONS_BOUND = 2


@dataclass
class Look:
    """One process of the worker, seen at one moment."""

    rss_kib: int
    threads: int
    fds: int


def look(pid: int) -> Look:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return Look(
        rss_kib=rss,
        threads=len(os.listdir(f"/proc/{pid}/task")),
        fds=len(os.listdir(f"/proc/{pid}/fd")),
    )


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def connections_named(redis: Any, name: str) -> int:
    return sum(client["name"] == name for client in redis.client_list())


@dataclass
class Worker:
    """The worker under soak: its processes, and how to reach it."""

    pid: int
    queue: str
    store_client_name: str

    @property
    def child(self) -> int:
        (child,) = children(self.pid)  # one child, never replaced (no max-tasks-per-child)
        return child


@pytest.fixture
def redis() -> Iterator[Any]:
    from redis import Redis

    require_redis()
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def client() -> Iterator[Any]:
    """The publishing app, tracked: each job is recorded queued when published."""
    from celery import Celery

    from jobstatus.integrations.celery import track

    app = Celery("soak-client", broker=redis_url(CELERY_REDIS_DB), set_as_current=False)
    app.conf.task_ignore_result = True
    track(app)

    # Declared here, so that the publish hook finds the task in a tracked app.
    @app.task(name="celery_tasks.add", shared=False)
    def add(x: int, y: int) -> None: ...

    yield app
    app.close()


@pytest.fixture
def worker(redis: Any) -> Iterator[Worker]:
    from redis import Redis

    prefix = f"{unique('tsoak')}:"
    queue = unique("jobstatus-soak")
    store = f"{REDIS_URL}?prefix={prefix}"
    jobstatus.configure(store=store)
    env = worker_env(
        f"{store}&client_name={queue}-store",
        JOBSTATUS_TEST_CELERY_BROKER=redis_url(CELERY_REDIS_DB),
        JOBSTATUS_TEST_CELERY_QUEUE=queue,
    )
    env.pop("JOBSTATUS_TEST_CELERY_BACKEND", None)  # no results: statuses say it all
    command = [
        python(), "-m", "celery", "-A", "celery_tasks", "worker", "-Q", queue, "-c", "1",
        "--pool", "prefork", "--without-gossip", "--without-mingle", "--without-heartbeat",
        "-n", f"{queue}@%h", "-l", "warning",
    ]  # fmt: skip
    with scratch_dir("soak") as folder:
        process = start(command, env, folder / "worker.log")
        try:
            yield Worker(process.pid, queue, f"{queue}-store")
        finally:
            stop(process)
            with Redis.from_url(redis_url(CELERY_REDIS_DB)) as broker:
                broker.delete(queue, f"_kombu.binding.{queue}")  # kombu's routing table
            for key in redis.scan_iter(match=f"{prefix}*", count=1000):
                redis.unlink(key)


def run_jobs(client: Any, queue: str, count: int) -> int:
    """Publish ``count`` jobs in chunks, the next while the last runs; return how many
    read completed (each chunk is read with one Batch once none is queued or working)."""

    def publish(size: int) -> Callable[[], int]:
        ids = [client.send_task("celery_tasks.add", (1, 2), queue=queue).id for _ in range(size)]
        return lambda: jobstatus.Batch(ids).wait(timeout=TIMEOUT).counts["completed"]

    completed, waiting = 0, None
    for _ in range(count // CHUNK):
        published = publish(CHUNK)
        if waiting is not None:
            completed += waiting()
        waiting = published
    return completed + (waiting() if waiting is not None else 0)


def test_5000_jobs_leak_no_threads_fds_connections_or_memory(
    worker: Worker, client: Any, redis: Any
) -> None:
    assert run_jobs(client, worker.queue, WARM_UP) == WARM_UP
    child_pid = worker.child
    child, parent = look(child_pid), look(worker.pid)

    assert run_jobs(client, worker.queue, JOBS) == JOBS

    assert worker.child == child_pid  # the same child ran every job
    child_after, parent_after = look(child_pid), look(worker.pid)
    for before, after in ((child, child_after), (parent, parent_after)):
        assert after.threads <= before.threads + SLACK, (before, after)
        assert after.fds <= before.fds + SLACK, (before, after)
        assert after.rss_kib - before.rss_kib < RSS_GROWTH_BOUND_KIB, (before, after)
    assert 1 <= connections_named(redis, worker.store_client_name) <= STORE_CONNECTIONS_BOUND
