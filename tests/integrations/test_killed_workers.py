"""Real queue workers killed with SIGKILL mid-job (issue 8, "Dead and stuck jobs").

A worker killed with SIGKILL or by the out-of-memory killer reports nothing:
its job still reads ``working``. What a reader sees instead is the heartbeat
stopping: while the worker lives, the job waiting at its gate stays fresh for
longer than ``stale_after``; once the worker's whole process group is killed,
the job keeps its last progress and turns stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import jobstatus
from jobstatus import Status

from ._support import (
    APPS,
    ARQ_REDIS_DB,
    CELERY_REDIS_DB,
    DRAMATIQ_REDIS_DB,
    HUEY_REDIS_DB,
    RQ_REDIS_DB,
    TASKIQ_REDIS_DB,
    python,
    redis_url,
    require_redis,
    scratch_dir,
    start,
    stays_fresh,
    stop,
    unique,
    wait_for,
    worker_env,
)

sys.path.insert(0, str(APPS))

import _gate  # noqa: E402
from _worker_options import HEARTBEAT_ENV  # noqa: E402

pytestmark = [pytest.mark.timeout(120)]

# The heartbeat thread looks at its jobs once a second (jobstatus._heartbeat.TICK), so
# with a 0.3 s interval a live job writes about every second; STALE_AFTER leaves room.
HEARTBEAT_INTERVAL = 0.3
STALE_AFTER = 2.0
STARTUP = 60.0  # seconds a worker may take to start and pick the job up on a loaded machine
STEPS = 3


@dataclass
class Running:
    """A worker subprocess (its own process group) and the gated job it runs."""

    process: subprocess.Popen[bytes]
    job: Any
    log: Path


Launcher = Callable[[Path, str, str], contextlib.AbstractContextManager[Running]]


def _env(store: str, **more: str) -> dict[str, str]:
    return worker_env(store, **{HEARTBEAT_ENV: str(HEARTBEAT_INTERVAL)}, **more)


# -- one launcher per queue: start the worker, enqueue ``gated``, clean up ---------------


@contextlib.contextmanager
def _celery(folder: Path, store: str, gate: str) -> Iterator[Running]:
    pytest.importorskip("celery")
    from celery import Celery

    broker, queue = redis_url(CELERY_REDIS_DB), unique("jobstatus-killed-celery")
    env = _env(store, JOBSTATUS_TEST_CELERY_BROKER=broker, JOBSTATUS_TEST_CELERY_QUEUE=queue)
    env.pop("JOBSTATUS_TEST_CELERY_BACKEND", None)  # test_celery's file backend, if imported
    command = [
        python(), "-m", "celery", "-A", "celery_tasks", "worker", "-Q", queue,
        "-c", "1", "--pool", "prefork", "--without-gossip", "--without-mingle",
        "--without-heartbeat", "-n", f"{queue}@%h", "-l", "info",
    ]  # fmt: skip
    process = start(command, env, folder / "worker.log")
    sender = Celery("killed-sender", broker=broker, set_as_current=False)
    try:
        result = sender.send_task("celery_tasks.gated", args=[gate, STEPS], queue=queue)
        yield Running(process, result, folder / "worker.log")
    finally:
        stop(process)
        sender.close()
        _purge_celery(broker, queue)


def _purge_celery(broker: str, queue: str) -> None:
    """Delete the queue, and the killed worker's unacknowledged message (kombu would
    restore it to the queue an hour later)."""
    import redis

    client = redis.Redis.from_url(broker)
    try:
        client.delete(queue, f"_kombu.binding.{queue}")
        for tag, raw in client.hgetall("unacked").items():
            if json.loads(raw)[2] == queue:
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)
    finally:
        client.close()


@contextlib.contextmanager
def _rq(folder: Path, store: str, gate: str) -> Iterator[Running]:
    pytest.importorskip("rq")
    with _rq_queue() as queue:
        import rq_tasks

        process = _start_rq_worker(queue.name, store, folder / "worker.log")
        try:
            yield Running(
                process, queue.enqueue(rq_tasks.gated, gate, STEPS), folder / "worker.log"
            )
        finally:
            stop(process)


@contextlib.contextmanager
def _rq_queue() -> Iterator[Any]:
    """A fresh StatusQueue; deleted afterwards with its jobs and its workers' registrations."""
    from redis import Redis

    from jobstatus.integrations.rq import StatusQueue

    connection = Redis.from_url(redis_url(RQ_REDIS_DB))
    queue = StatusQueue(unique("jobstatus-killed-rq"), connection=connection)
    try:
        yield queue
    finally:
        _purge_rq(queue)
        connection.close()


def _purge_rq(queue: Any) -> None:
    """Delete the queue, its registries, their jobs and the workers' keys."""
    registries = (queue.started_job_registry, queue.failed_job_registry)
    jobs = [job for registry in registries for job in registry.get_job_ids(cleanup=False)]
    queue.delete(delete_jobs=True)
    connection = queue.connection
    patterns = [f"rq:*:{queue.name}*", *(f"rq:*{job}*" for job in jobs)]
    keys = [key for pattern in patterns for key in connection.scan_iter(match=pattern, count=1000)]
    if keys:
        connection.delete(*keys)
    workers = [key for key in keys if key.startswith(b"rq:worker:")]
    if workers:
        connection.srem("rq:workers", *workers)


def _start_rq_worker(queue: str, store: str, log: Path) -> subprocess.Popen[bytes]:
    rq = str(Path(python()).parent / "rq")
    command = [
        rq, "worker", "-w", "jobstatus.integrations.rq.StatusWorker",
        "--url", redis_url(RQ_REDIS_DB), "--name", unique(queue), queue,
    ]  # fmt: skip
    return start(command, _env(store), log)


@contextlib.contextmanager
def _dramatiq(folder: Path, store: str, gate: str) -> Iterator[Running]:
    pytest.importorskip("dramatiq")
    import dramatiq_tasks

    broker_url, queue = redis_url(DRAMATIQ_REDIS_DB), unique("jobstatus-killed-dramatiq")
    env = _env(
        store, JOBSTATUS_TEST_DRAMATIQ_BROKER=broker_url, JOBSTATUS_TEST_DRAMATIQ_QUEUE=queue
    )
    command = [python(), "-m", "dramatiq", "dramatiq_tasks", "-p", "1", "-t", "1", "-Q", queue]
    process = start(command, env, folder / "worker.log")
    broker = dramatiq_tasks.make_broker(broker_url)
    try:
        broker.declare_actor(dramatiq_tasks.gated)
        broker.declare_queue(queue)
        # The actor was declared on the test process's queue; this run has its own.
        message = dramatiq_tasks.gated.message(gate, STEPS).copy(queue_name=queue)
        yield Running(process, broker.enqueue(message), folder / "worker.log")
    finally:
        stop(process)
        _purge_dramatiq(broker, queue)


def _purge_dramatiq(broker: Any, queue: str) -> None:
    """Delete the queue and the killed worker's unacknowledged message."""
    with contextlib.suppress(Exception):
        broker.flush(queue)
    client = broker.client
    keys = list(client.scan_iter(match=f"dramatiq:*{queue}*", count=1000))
    if keys:
        client.delete(*keys)
    # Acks are kept as "dramatiq:__acks__.<worker id>.<queue>": forget the dead worker too.
    dead = [key.decode().split(".")[1] for key in keys if b"__acks__" in key]
    if dead:
        client.zrem("dramatiq:__heartbeats__", *dead)
    broker.close()


@contextlib.contextmanager
def _huey(folder: Path, store: str, gate: str) -> Iterator[Running]:
    pytest.importorskip("huey")
    import huey_app
    from huey import RedisHuey

    name, broker = unique("jobstatus-killed-huey"), redis_url(HUEY_REDIS_DB)
    env = _env(store, JOBSTATUS_TEST_HUEY_NAME=name, JOBSTATUS_TEST_HUEY_REDIS=broker)
    # Worker processes: the job runs in a child of the consumer, killed with the group.
    command = [
        python(), "-m", "huey.bin.huey_consumer", "huey_app.huey",
        "-w", "1", "-k", "process", "-d", "0.05",
    ]  # fmt: skip
    process = start(command, env, folder / "consumer.log")
    huey = RedisHuey(name, url=broker)
    try:
        storage, huey_app.huey.storage = huey_app.huey.storage, huey.storage
        try:
            result = huey_app.gated(gate, STEPS)
        finally:
            huey_app.huey.storage = storage
        yield Running(process, result, folder / "consumer.log")
    finally:
        stop(process)
        huey.storage.flush_all()


_ARQ_KEYS = ("job", "in-progress", "retry", "result")  # arq's keys of one job: arq:<kind>:<id>


@contextlib.contextmanager
def _arq(folder: Path, store: str, gate: str) -> Iterator[Running]:
    pytest.importorskip("arq")
    from arq import create_pool
    from arq.connections import RedisSettings

    from jobstatus.integrations.arq import enqueue_job

    broker, queue = redis_url(ARQ_REDIS_DB), unique("jobstatus-killed-arq")
    env = _env(store, JOBSTATUS_TEST_ARQ_REDIS=broker, JOBSTATUS_TEST_ARQ_QUEUE=queue)
    process = start([python(), "-m", "arq", "arq_app.WorkerSettings"], env, folder / "worker.log")

    async def enqueue() -> str:
        pool = await create_pool(RedisSettings.from_dsn(broker), default_queue_name=queue)
        try:
            job = await enqueue_job(pool, "gated", gate, STEPS)
            assert job is not None
            return job.job_id
        finally:
            await pool.aclose()

    job_id = ""
    try:
        job_id = asyncio.run(enqueue())
        yield Running(process, job_id, folder / "worker.log")
    finally:
        stop(process)
        keys = (f"arq:{kind}:{job_id}" for kind in _ARQ_KEYS)
        _delete_redis_keys(broker, queue, f"{queue}:health-check", *keys)


@contextlib.contextmanager
def _taskiq(folder: Path, store: str, gate: str) -> Iterator[Running]:
    pytest.importorskip("taskiq_redis")
    import taskiq_app
    from taskiq_redis import ListQueueBroker

    broker_url, queue = redis_url(TASKIQ_REDIS_DB), unique("jobstatus-killed-taskiq")
    env = _env(store, JOBSTATUS_TEST_TASKIQ_REDIS=broker_url, JOBSTATUS_TEST_TASKIQ_QUEUE=queue)
    command = [
        python(), "-m", "taskiq", "worker", "taskiq_app:broker",
        "--workers", "1", "--max-async-tasks", "1", "--shutdown-timeout", "2",
    ]  # fmt: skip
    process = start(command, env, folder / "worker.log")
    # A sender of our own: the app's broker is pointed at other queues by test_taskiq.
    sender = ListQueueBroker(broker_url, queue_name=queue)

    async def enqueue() -> Any:
        await sender.startup()
        try:
            return await taskiq_app.gated.kicker().with_broker(sender).kiq(gate, STEPS)
        finally:
            await sender.shutdown()

    try:
        yield Running(process, asyncio.run(enqueue()), folder / "worker.log")
    finally:
        stop(process)
        _delete_redis_keys(broker_url, queue)


def _delete_redis_keys(url: str, *keys: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.delete(*keys)
    finally:
        client.close()


QUEUES = [
    pytest.param(_celery, id="celery", marks=pytest.mark.celery),
    pytest.param(_rq, id="rq", marks=pytest.mark.rq),
    pytest.param(_dramatiq, id="dramatiq", marks=pytest.mark.dramatiq),
    pytest.param(_huey, id="huey", marks=pytest.mark.huey),
    pytest.param(_arq, id="arq", marks=pytest.mark.arq),
    pytest.param(_taskiq, id="taskiq", marks=pytest.mark.taskiq),
]


# -- what a reader sees -------------------------------------------------------------------


def _waiting_at_gate(running: Running) -> Status:
    """The job's status once the worker runs it and it waits at its gate."""
    return wait_for(
        running.job,
        lambda s: s.is_working and s.get("step") == "waiting",
        timeout=STARTUP,
        log=running.log,
    )


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker's process group and every process below it.

    The group holds pool children (Celery, Huey, Dramatiq, Taskiq); an RQ work
    horse starts a session of its own and would survive the group's kill.
    """
    for pid in _descendants(process.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def _descendants(pid: int) -> list[int]:
    """The processes below ``pid``, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                parent = int(stat.rsplit(")", 1)[1].split()[1])  # "pid (name) state ppid ..."
                children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def _assert_last_progress(status: Status) -> None:
    assert status.is_working
    assert (status.progress.current, status.progress.total) == (1, STEPS)
    assert status["step"] == "waiting"


@pytest.mark.parametrize("launch", QUEUES)
def test_a_worker_killed_mid_job_leaves_the_job_working_then_stale(launch: Launcher) -> None:
    require_redis()
    gate = unique("gate")
    with scratch_dir("killed") as folder:
        store = f"sqlite:///{folder / 'status.db'}"
        jobstatus.configure(store=store, stale_after=STALE_AFTER)
        try:
            with launch(folder, store, gate) as running:
                working = _waiting_at_gate(running)
                _assert_last_progress(working)
                # Silent for longer than stale_after, yet fresh: the worker's heartbeat writes.
                alive = stays_fresh(running.job, STALE_AFTER + 1.0)
                assert alive["updated_at"] > working["updated_at"]

                _kill_group(running.process)
                dead = jobstatus.get(running.job)
                _assert_last_progress(dead)

                stale = wait_for(running.job, lambda s: s.is_stale)
                _assert_last_progress(stale)
                assert stale["updated_at"] == dead["updated_at"]  # nobody wrote after the kill
                batch = jobstatus.Batch([running.job])
                assert batch.stale == 1
                assert batch.counts["working"] == 1 and batch.status == "working"
        finally:
            _gate.close(gate)


@pytest.mark.rq
def test_rq_fails_a_job_abandoned_by_a_killed_worker_once_the_next_worker_cleans_up() -> None:
    """RQ's registry cleanup finds the dead worker's job; StatusWorker records it failed."""
    pytest.importorskip("rq")
    require_redis()
    import rq_tasks
    from rq.registry import StartedJobRegistry

    gate = unique("gate")
    with scratch_dir("killed-rq") as folder, _rq_queue() as queue:
        store = f"sqlite:///{folder / 'status.db'}"
        jobstatus.configure(store=store, stale_after=STALE_AFTER)
        job = queue.enqueue(rq_tasks.gated, gate, STEPS)
        first = _start_rq_worker(queue.name, store, folder / "first.log")
        second = None
        try:
            _assert_last_progress(_waiting_at_gate(Running(first, job, folder / "first.log")))
            _kill_group(first)
            wait_for(job, lambda s: s.is_stale)
            # RQ gives a started job 60 s past its last heartbeat before calling it
            # abandoned; move its registry entry into the past instead of waiting.
            registry = StartedJobRegistry(queue=queue)
            entries = queue.connection.zrange(registry.key, 0, -1)
            assert entries, "the killed worker's job is not in the started registry"
            queue.connection.zadd(registry.key, dict.fromkeys(entries, 1))
            second = _start_rq_worker(queue.name, store, folder / "second.log")
            failed = wait_for(job, lambda s: s.is_finished)
            assert failed.is_failed and not failed.is_stale
            assert failed["exception"] == {
                "class": "jobstatus.integrations.rq.WorkHorseLost",
                "message": "abandoned: its worker died",
            }
            assert failed.progress.current == 1  # the last progress stays
        finally:
            stop(first)
            if second is not None:
                stop(second)
            _gate.close(gate)
