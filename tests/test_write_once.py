"""Increments count once when a write's reply is lost and the job sends it again.

The store here is a real MemoryStore or SQLiteStore whose chosen writes are
applied and then fail, as a write does whose reply timed out; or fail before
anything is applied, as on a refused connection.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest

import jobstatus
from jobstatus import StoreError
from jobstatus._record import Change
from jobstatus.stores import MemoryStore, SQLiteStore, Store

STEPS = 100


class Faulty:
    """Makes a store's writes number ``lost`` lose their reply, ``refused`` fail unapplied."""

    def __init__(
        self, store: Store, lost: Collection[int] = (), refused: Collection[int] = ()
    ) -> None:
        self.store, self.lost, self.refused = store, set(lost), set(refused)
        self.calls = 0
        self.resent = 0
        self._origins: set[Any] = set()
        write = store.write

        def faulty_write(job_id: str, change: Change) -> None:
            self.calls += 1
            if change.origin is not None:
                self.resent += change.origin in self._origins
                self._origins.add(change.origin)
            if self.calls in self.refused:
                raise StoreError("connection refused")
            write(job_id, change)
            if self.calls in self.lost:
                raise StoreError("timed out waiting for the reply")

        store.write = faulty_write  # type: ignore[method-assign]

        async def faulty_awrite(job_id: str, change: Change) -> None:
            faulty_write(job_id, change)

        store.awrite = faulty_awrite  # type: ignore[method-assign]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_lost_replies_never_count_twice(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "once.db")
    faults = Faulty(store, lost={10, 11, 50, 90})
    jobstatus.configure(store=store, throttle_interval=0)

    @jobstatus.track
    def job() -> str:
        status = jobstatus.current()
        status.progress.total = STEPS
        for _ in range(STEPS):
            status.progress.increment()
        return status.job_id

    with caplog.at_level(logging.WARNING, logger="jobstatus"):
        job_id = job()
    final = jobstatus.get(job_id, store=store)
    assert final.status == "completed"
    assert final.progress.current == STEPS  # each lost reply's write was applied once
    assert faults.resent == 4  # every write whose reply was lost went out again
    assert "kept for the next write" in caplog.text


def test_refused_writes_are_applied_once_when_sent_again(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "once.db")
    faults = Faulty(store, refused={5, 6, 7, 40})
    jobstatus.configure(store=store, throttle_interval=0)

    @jobstatus.track
    def job() -> str:
        for _ in range(STEPS):
            jobstatus.current().progress.increment()
        return jobstatus.current().job_id

    job_id = job()
    assert jobstatus.get(job_id, store=store).progress.current == STEPS
    assert faults.resent == 4


def test_an_async_job_counts_once_too() -> None:
    store = MemoryStore()
    faults = Faulty(store, lost={3, 4, 20})
    jobstatus.configure(store=store, throttle_interval=0)

    @jobstatus.track
    async def job() -> str:
        status = jobstatus.current()
        for _ in range(STEPS):
            status.progress.increment()
            await status.aflush()
        return status.job_id

    job_id = asyncio.run(job())
    final = jobstatus.get(job_id, store=store)
    assert final.status == "completed" and final.progress.current == STEPS
    assert faults.resent == 3


def test_sets_held_behind_a_lost_reply_still_land_in_order() -> None:
    store = MemoryStore()
    Faulty(store, lost={2})
    jobstatus.configure(store=store, throttle_interval=0)

    @jobstatus.track
    def job() -> str:
        status = jobstatus.current()
        status["step"] = "download"
        status.progress.increment()  # its reply is lost: re-sent before what follows
        status["step"] = "upload"
        status.progress.increment()
        return status.job_id

    job_id = job()
    final = jobstatus.get(job_id, store=store)
    assert final["step"] == "upload" and final.progress.current == 2


def _increment_current(times: int) -> None:
    for _ in range(times):
        jobstatus.current().progress.increment()


def test_a_forked_child_writing_through_its_parents_status_counts_apart(tmp_path: Path) -> None:
    fork = multiprocessing.get_context("fork")
    store = SQLiteStore(tmp_path / "fork.db")
    jobstatus.configure(store=store, throttle_interval=0)

    @jobstatus.track
    def job() -> str:
        _increment_current(50)  # the parent's writer has sent 50 numbered writes
        child = fork.Process(target=_increment_current, args=(STEPS,))
        child.start()
        _increment_current(STEPS)
        child.join(timeout=60)
        assert child.exitcode == 0
        return jobstatus.current().job_id

    assert jobstatus.get(job(), store=store).progress.current == 50 + 2 * STEPS


class ResendingStore(MemoryStore):
    """A store whose client sends every write twice, as redis-py's Retry does after a
    dropped connection or a timeout that came once the write was applied: the store
    answers the second, a duplicate of the same origin, "not applied"."""

    def write(self, job_id: str, change: Change) -> Any:
        super().write(job_id, change)
        return super().write(job_id, change)

    async def awrite(self, job_id: str, change: Change) -> Any:
        return self.write(job_id, change)


def test_a_start_whose_reply_was_lost_still_runs_the_job() -> None:
    store = ResendingStore()
    jobstatus.configure(store=store)
    ran: list[str] = []

    @jobstatus.track
    def job() -> str:
        ran.append(jobstatus.current().job_id)
        return "done"

    @jobstatus.track
    async def ajob() -> str:
        ran.append(jobstatus.current().job_id)
        return "done"

    assert job() == "done" and asyncio.run(ajob()) == "done"
    for job_id in ran:
        s = jobstatus.get(job_id)
        assert s.is_completed and s["attempts"] == 1, s.to_dict()
        assert s.history[0]["status"] == "working" and s.history[-1]["status"] == "completed"
    assert len(ran) == 2


def test_a_start_refused_by_a_cancel_still_refuses_when_its_reply_was_lost() -> None:
    store = ResendingStore()
    jobstatus.configure(store=store)
    job = jobstatus.Job("refused-twice")
    job.enqueued()
    assert jobstatus.cancel("refused-twice")
    assert job.started() is False
    assert jobstatus.get("refused-twice").is_cancelled
