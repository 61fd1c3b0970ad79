"""Real queue workers killed with SIGKILL mid-job (issue 8, "Dead and stuck jobs").

A worker killed with SIGKILL or by the out-of-memory killer reports nothing:
its job still reads ``working``. What a reader sees instead is the heartbeat
stopping: while the worker lives, the job waiting at its gate stays fresh for
longer than ``stale_after``; once the worker's whole process group is killed,
the job keeps its last progress and turns stale. Each worker is started from
the QUEUES table (queues.py), with a fast heartbeat.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

import pytest

import jobstatus
from jobstatus import Status

from ._support import require_redis, stays_fresh, stop, wait_for
from .queues import RQWorker, Run, Worker, _gate, run_of

pytestmark = [pytest.mark.timeout(120)]

# The heartbeat thread beats a quiet job when it is due (jobstatus._heartbeat), so with a
# 0.3 s interval a live job writes about every 0.3 s; STALE_AFTER leaves room.
HEARTBEAT = {"JOBSTATUS_TEST_HEARTBEAT_INTERVAL": "0.3"}  # read by apps/_worker_options.py
STALE_AFTER = 2.0
STARTUP = 60.0  # seconds a worker may take to pick the job up on a loaded machine
STEPS = 3

QUEUES = ["celery", "rq", "dramatiq", "huey", "arq", "taskiq"]


def _waiting_at_gate(worker: Worker, job: object) -> Status:
    """The job's status once the worker runs it and it waits at its gate."""
    return wait_for(
        job, lambda s: s.is_working and s.get("step") == "waiting", STARTUP, log=worker.log
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


@pytest.mark.parametrize("run", [run_of(name).param() for name in QUEUES])
def test_a_worker_killed_mid_job_leaves_the_job_working_then_stale(run: Run) -> None:
    require_redis()
    with run.start(HEARTBEAT) as worker:
        jobstatus.configure(store=worker.store_url, stale_after=STALE_AFTER)
        job = worker.send("gated", worker.gate(), STEPS)
        try:
            working = _waiting_at_gate(worker, job)
            _assert_last_progress(working)
            # Silent for longer than stale_after, yet fresh: the worker's heartbeat writes.
            alive = stays_fresh(job, STALE_AFTER + 1.0)
            assert alive["updated_at"] > working["updated_at"]

            _kill_group(worker.process)
            dead = jobstatus.get(job)
            _assert_last_progress(dead)

            stale = wait_for(job, lambda s: s.is_stale)
            _assert_last_progress(stale)
            assert stale["updated_at"] == dead["updated_at"]  # nobody wrote after the kill
            batch = jobstatus.Batch([job])
            assert batch.stale == 1
            assert batch.counts["working"] == 1 and batch.status == "working"
        finally:
            worker.after_test()


@pytest.mark.rq
def test_rq_fails_a_job_abandoned_by_a_killed_worker_once_the_next_worker_cleans_up() -> None:
    """RQ's registry cleanup finds the dead worker's job; StatusWorker records it failed."""
    require_redis()
    from rq.registry import StartedJobRegistry

    with run_of("rq").start(HEARTBEAT) as worker:
        assert isinstance(worker, RQWorker)
        jobstatus.configure(store=worker.store_url, stale_after=STALE_AFTER)
        gate = worker.gate()
        job = worker.send("gated", gate, STEPS)
        second = None
        try:
            _assert_last_progress(_waiting_at_gate(worker, job))
            _kill_group(worker.process)
            wait_for(job, lambda s: s.is_stale)
            # RQ gives a started job 60 s past its last heartbeat before calling it
            # abandoned; move its registry entry into the past instead of waiting.
            registry = StartedJobRegistry(queue=worker.rq_queue)
            connection = worker.rq_queue.connection
            entries = connection.zrange(registry.key, 0, -1)
            assert entries, "the killed worker's job is not in the started registry"
            connection.zadd(registry.key, dict.fromkeys(entries, 1))
            second = worker.another(worker.log.with_name("second.log"), **HEARTBEAT)
            failed = wait_for(job, lambda s: s.is_finished)
            assert failed.is_failed and not failed.is_stale
            assert failed["exception"] == {
                "class": "jobstatus.integrations.rq.WorkHorseLost",
                "message": "abandoned: its worker died",
            }
            assert failed.progress.current == 1  # the last progress stays
        finally:
            if second is not None:
                stop(second)
            _gate.open_gate(gate)
            worker.after_test()
