"""Starting and stopping real queue workers for the integration tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import jobstatus
from jobstatus import Status

from ..stores import REDIS_URL, require_service

APPS = Path(__file__).parent / "apps"
ROOT = Path(__file__).parents[2]
RABBITMQ_URL = os.environ.get("JOBSTATUS_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
TIMEOUT = 30.0  # seconds any one wait may take on a loaded machine before the test fails

# Queue brokers get their own Redis databases, apart from the stores' tests.
CELERY_REDIS_DB = 3
RQ_REDIS_DB = 4
DRAMATIQ_REDIS_DB = 5
HUEY_REDIS_DB = 6
ARQ_REDIS_DB = 7
TASKIQ_REDIS_DB = 8


def redis_url(db: int) -> str:
    """The test Redis server's URL with another database number."""
    parts = urlsplit(REDIS_URL)
    return urlunsplit(parts._replace(path=f"/{db}"))


def require_redis() -> None:
    require_service("Redis", REDIS_URL, 6379)


def require_rabbitmq() -> None:
    require_service("RabbitMQ", RABBITMQ_URL, 5672)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def worker_env(store_url: str, **more: str) -> dict[str, str]:
    """The environment of a worker subprocess: the store, and the apps on the path."""
    env = dict(os.environ)
    env["JOBSTATUS_STORE"] = store_url
    env["PYTHONPATH"] = os.pathsep.join([str(APPS), str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env.update(more)
    return env


def start(command: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a worker in its own process group, its output going to ``log``."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            command,
            env=dict(env),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a worker and all its children (the whole process group)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        except ProcessLookupError:
            pass
    with contextlib.suppress(ProcessLookupError):  # children the worker left behind
        os.killpg(process.pid, signal.SIGKILL)


def python() -> str:
    return sys.executable


def wait_for(
    job: object,
    predicate: Callable[[Status], bool],
    timeout: float = TIMEOUT,
    *,
    log: Path | None = None,
) -> Status:
    """Poll the job's status until ``predicate`` holds; fail with the last one seen
    (and the worker's ``log``, when given)."""
    deadline = time.monotonic() + timeout
    while True:
        status = jobstatus.get(job)
        if predicate(status):
            return status
        if time.monotonic() > deadline:
            more = f"\nworker log:\n{log.read_text()}" if log is not None else ""
            raise AssertionError(f"gave up waiting; last status: {status.to_dict()}{more}")
        time.sleep(0.05)


def stays_fresh(job: object, seconds: float) -> Status:
    """Read the job for ``seconds``: it must stay working and never look stale; return
    the last read (a live worker's heartbeats keep it fresh)."""
    deadline = time.monotonic() + seconds
    while True:
        status = jobstatus.get(job)
        assert status.is_working and not status.is_stale, status.to_dict()
        if time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def finished(job: object, timeout: float = TIMEOUT) -> Status:
    """The job's finished status."""
    return wait_for(job, lambda s: s.is_finished, timeout)


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def pika_url(amqp_url: str) -> str:
    """The AMQP URL as pika reads it: Celery's ``//`` (vhost "/") is ``/%2F`` there."""
    return amqp_url[:-2] + "/%2F" if amqp_url.endswith("//") else amqp_url


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A temporary folder of our own: pytest's base temp folders are pruned by
    other pytest sessions on the machine, which would delete a running worker's store.
    """
    folder = Path(tempfile.mkdtemp(prefix=f"jobstatus-{prefix}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
