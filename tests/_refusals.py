"""One scenario shared by the stores' refusal tests: a job whose store refuses one write for good.

The job writes keys before and after the refused write and counts its progress;
it must return normally and its record must end ``completed`` with every key
the store could take. Before the writer split refused changes, the refused
change was merged into (or sent before) every later write, so they all failed
and the record stayed ``working``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

import jobstatus
from jobstatus import Status

STEPS = 10
DROPPED = "so it was dropped"


def job_with_a_refused_write(
    refuse: Callable[[Status], None],
    caplog: pytest.LogCaptureFixture,
    *,
    asynchronous: bool = False,
) -> Status:
    """Run a tracked job that calls ``refuse(status)`` between its other writes.

    Returns the job's final snapshot, after checking what every case shares:
    the job returned, the record is ``completed`` with the keys written around
    the refusal and all its progress, it reads as JSON, and one warning said
    what was dropped.
    """

    def steps(status: Status) -> list[Callable[[], object]]:
        def count() -> None:
            for _ in range(STEPS):
                status.progress.increment()

        return [
            lambda: setattr(status.progress, "total", STEPS),
            lambda: status.__setitem__("before", "kept"),
            lambda: refuse(status),
            lambda: status.__setitem__("after", "kept too"),
            count,
        ]

    @jobstatus.track
    def job() -> str:
        for step in steps(jobstatus.current()):
            step()
        return jobstatus.current().job_id

    @jobstatus.track
    async def ajob() -> str:
        status = jobstatus.current()
        for step in steps(status):
            step()
            await status.aflush()  # each step reaches the store before the next
        return status.job_id

    with caplog.at_level(logging.WARNING, logger="jobstatus"):
        job_id = asyncio.run(ajob()) if asynchronous else job()
    final = jobstatus.get(job_id)
    assert final.status == "completed", final.to_dict()
    assert final["before"] == "kept" and final["after"] == "kept too"
    assert final.progress.total == STEPS
    assert final.to_json()
    assert any(DROPPED in record.getMessage() for record in caplog.records), caplog.text
    return final


def overflow_progress(status: Status) -> None:
    """A progress sum that would be infinite: 1e308, then 1e308 more.

    The store keeps 1e308 (the later increments of 1 are lost in its rounding).
    """
    status.progress.current = 1e308
    status.progress.increment(1e308)
