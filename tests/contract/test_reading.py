"""wait, watch and their async twins, and listing recent jobs."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

import jobstatus
from jobstatus import Job
from jobstatus.stores import Store

from ..stores import StoreCase


@contextmanager
def _steps_running(job_id: str, steps: int, pause: float = 0.15) -> Iterator[None]:
    """A job that runs ``steps`` steps in a thread, joined on leaving, even on failure.

    The thread's own error is raised here: otherwise a reader would only time out,
    and a thread still writing could reach into the next test.
    """
    errors: list[BaseException] = []

    def run() -> None:
        try:
            job = Job(job_id)
            job.enqueued()
            time.sleep(pause)
            job.started()
            for n in range(1, steps + 1):
                time.sleep(pause)
                job.status.update(progress=n, force=True)
            time.sleep(pause)
            job.finished()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        yield
    finally:
        thread.join()
        if errors:
            raise errors[0]


def test_wait_returns_the_finished_snapshot(store: Store) -> None:
    with _steps_running("w1", 2):
        s = jobstatus.get("w1").wait(timeout=20)
    assert s.is_completed and s.progress.current == 2


def test_wait_times_out(store: Store) -> None:
    Job("stuck").started()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        jobstatus.get("stuck").wait(timeout=0.3)
    assert time.monotonic() - started < 5


def test_watch_yields_changes_in_order_and_ends_at_the_finished_one(store: Store) -> None:
    Job("w2").enqueued()
    with _steps_running("w2", 3, pause=0.4):
        snapshots = list(jobstatus.get("w2").watch(timeout=30))
    states = [s.status for s in snapshots]
    assert states[0] == "queued" and states[-1] == "completed"
    assert "working" in states
    progress = [s.progress.current for s in snapshots if s.is_working]
    assert progress == sorted(progress)
    assert progress[-1] == 3
    assert all(not s.is_finished for s in snapshots[:-1])


def test_watch_of_a_finished_job_yields_it_once(store: Store) -> None:
    job = Job("fin")
    job.started()
    job.finished()
    assert [s.status for s in jobstatus.get("fin").watch(timeout=5)] == ["completed"]


def test_async_twins(store: Store) -> None:
    async def main() -> tuple[list[str | None], str | None, str | None]:
        Job("a1").enqueued()
        watch = (await jobstatus.aget("a1")).awatch(timeout=30)
        seen = [(await anext(watch)).status]  # queued: read before the job can start
        with _steps_running("a1", 2, pause=0.3):
            seen += [s.status async for s in watch]
        finished = await (await jobstatus.aget("a1")).until_finished(timeout=5)
        refreshed = await jobstatus.get("a1").arefresh()
        return seen, finished.status, refreshed.status

    seen, finished, refreshed = asyncio.run(main())
    assert seen[0] == "queued" and seen[-1] == "completed"
    assert finished == refreshed == "completed"


def test_async_wait_times_out(store: Store) -> None:
    Job("astuck").started()

    async def main() -> None:
        await jobstatus.get("astuck").until_finished(timeout=0.3)

    with pytest.raises(TimeoutError):
        asyncio.run(main())


def test_recent_lists_newest_first_by_status_and_pages(store: Store, case: StoreCase) -> None:
    if not case.lists:
        with pytest.raises(jobstatus.NotSupportedError):
            jobstatus.recent()
        return
    for n in range(6):
        job = Job(f"r{n}")
        job.started()
        if n % 2:
            job.finished(ValueError("x"))
        time.sleep(0.002)
    everything = jobstatus.recent()
    assert [s.job_id for s in everything] == [f"r{n}" for n in reversed(range(6))]
    failed = jobstatus.recent(status="failed")
    assert [s.job_id for s in failed] == ["r5", "r3", "r1"]
    assert all(s.is_failed for s in failed)
    page1 = jobstatus.recent(limit=4)
    page2 = jobstatus.recent(limit=4, before=page1[-1]["updated_at"])
    assert [s.job_id for s in page1 + page2] == [f"r{n}" for n in reversed(range(6))]

    async def main() -> list[str]:
        return [s.job_id for s in await jobstatus.arecent(status="working", limit=2)]

    assert asyncio.run(main()) == ["r4", "r2"]


def test_recent_rejects_bad_arguments(store: Store) -> None:
    with pytest.raises(ValueError, match="status"):
        jobstatus.recent(status="done")
    with pytest.raises(ValueError, match="limit"):
        jobstatus.recent(limit=0)
    with pytest.raises(ValueError, match="before"):
        jobstatus.recent(before="yesterday")
