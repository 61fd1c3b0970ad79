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
