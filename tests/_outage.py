"""One scenario shared by the stores' outage tests: a job writes through a stopped server."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

import pytest

import jobstatus
from jobstatus import StoreError

STEPS = 20


class Restartable(Protocol):
    def stop(self) -> None: ...
    def start(self) -> None: ...


@dataclass
class Outage:
    """What the job and the reader saw."""

    job_id: str = ""
    result: str | None = None
    slowest_write: float = 0.0
    read_while_down: float = 0.0
    write_times: list[float] = field(default_factory=list)


def job_through_outage(server: Restartable, timeout: float) -> Outage:
    """Run a tracked job of 20 steps; stop ``server`` at step 5 and start it again at 15.

    The configured store must point at ``server``. A read while the server is down
    must raise StoreError (checked here); the caller asserts the rest.
    """
    down, back = threading.Event(), threading.Event()
    seen = Outage()

    @jobstatus.track
    def job() -> str:
        status = jobstatus.current()
        seen.job_id = status.job_id
        status.progress.total = STEPS
        for n in range(STEPS):
            if n == 5:
                down.wait(30)
            if n == 15:
                back.wait(30)
            started = time.monotonic()
            status.update(step=n, force=True)
            status.progress.increment()
            seen.write_times.append(time.monotonic() - started)
        return "done"

    runner = threading.Thread(target=lambda: setattr(seen, "result", job()))
    runner.start()
    while not seen.job_id or not jobstatus.get(seen.job_id).exists:
        time.sleep(0.05)
    server.stop()
    try:
        down.set()
        time.sleep(1.0)  # the job writes during the outage
        started = time.monotonic()
        with pytest.raises(StoreError):
            jobstatus.get(seen.job_id)
        seen.read_while_down = time.monotonic() - started
    finally:
        server.start()
    back.set()
    runner.join(60)
    seen.slowest_write = max(seen.write_times)
    return seen
