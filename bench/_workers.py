"""Worker processes for the queue benchmarks: their environment, start and stop."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).parents[1]


def env(store: str, apps: Path, **more: str) -> dict[str, str]:
    """The environment of a worker: its status store, and the apps folder on the path."""
    environment = dict(os.environ, JOBSTATUS_STORE=store, **more)
    paths = [str(apps), str(ROOT / "src"), environment.get("PYTHONPATH", "")]
    environment["PYTHONPATH"] = os.pathsep.join(paths)
    return environment


@contextlib.contextmanager
def workers(commands: list[tuple[list[str], dict[str, str]]]) -> Iterator[None]:
    """Start worker processes (each in its own process group); kill them all at the end."""
    processes = [
        subprocess.Popen(
            command, env=environment, cwd=ROOT, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for command, environment in commands
    ]  # fmt: skip
    try:
        yield
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def unique(prefix: str) -> str:
    """A name no other run uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def task_target(plain_seconds: float, redis_url: str) -> str:
    """The per-task goal, with the best ratio two synchronous round trips allow.

    A tracked task needs two writes before its result can come back. `queued` must be
    readable when the publish returns, and the start must answer before the task
    runs, so that a cancelled job never runs. Each write is at least one round trip,
    so no design that keeps both writes can do better than
    plain / (plain + 2 PINGs), measured here in the same run.
    """
    import statistics
    import time

    try:
        from redis import Redis
    except ImportError:  # the statuses went to SQLite: no Redis round trip to measure
        return ">= 0.9x"
    client = Redis.from_url(redis_url)
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(500):
            client.ping()
        rounds.append((time.perf_counter() - start) / 500)
    client.close()
    ping = statistics.median(rounds)
    bound = plain_seconds / (plain_seconds + 2 * ping)
    return f">= 0.9x; two round trips ({ping * 1e6:.0f} us each) allow <= {bound:.2f}x"
