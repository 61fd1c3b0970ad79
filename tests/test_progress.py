"""Progress arithmetic: ratio, percent, rate and eta, as a reader sees them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import pytest

import jobstatus
from jobstatus import Job, Progress
from jobstatus._record import Change, Record, Written
from jobstatus.stores.sqlite import SQLiteStore


def test_ratio_is_clamped_and_none_without_total() -> None:
    assert Progress(current=5, total=10).ratio == 0.5
    assert Progress(current=15, total=10).ratio == 1.0
    assert Progress(current=5, total=0).ratio is None
    assert Progress(current=5).ratio is None and Progress(current=5).percent is None
    assert Progress(current=1, total=4).percent == 25


def test_rate_and_eta_of_a_running_job() -> None:
    jobstatus.configure(store="memory://")
    job = Job("eta")
    job.started()
    job.status.progress.total = 100
    time.sleep(0.2)
    job.status.progress.current = 20
    s = jobstatus.get("eta")
    assert s.progress.rate == pytest.approx(100, rel=0.5)  # about 20 units in 0.2 s
    assert s.progress.eta == pytest.approx(0.8, rel=0.5)
    live = job.status.progress
    assert live.rate is not None and live.eta is not None
    job.finished()
    assert jobstatus.get("eta").progress.eta == 0


def test_rate_is_unknown_before_the_job_starts() -> None:
    jobstatus.configure(store="memory://")
    jobstatus.get("x").update(progress=3, total=10)
    assert jobstatus.get("x").progress.rate is None
    assert jobstatus.get("x").progress.eta is None


def test_live_status_shows_held_progress() -> None:
    jobstatus.configure(store="memory://", throttle_interval=3600)
    job = Job("held")
    job.started()
    for _ in range(10):
        job.status.progress.increment()
    assert job.status.progress.current == 10
    assert job.status.to_dict()["progress"] == 10
    assert jobstatus.get("held").progress.current == 0
    job.status.progress.current = 3  # an absolute value replaces the held increments
    job.finished()
    assert jobstatus.get("held").progress.current == 3


class CountingSQLiteStore(SQLiteStore):
    """A real SQLite store that counts every call to it (no push: a cancel waits)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.calls: list[str] = []

    def write(self, job_id: str, change: Change) -> Written:
        self.calls.append("write")
        return super().write(job_id, change)

    def read(self, job_id: str) -> Record | None:
        self.calls.append("read")
        return super().read(job_id)

    def read_many(self, job_ids: Sequence[str]) -> list[Record | None]:
        self.calls.append("read_many")
        return super().read_many(job_ids)

    def delete(self, job_id: str) -> None:
        self.calls.append("delete")
        super().delete(job_id)


def test_the_throttled_tick_does_no_store_io_while_a_cancel_is_pending(tmp_path: Path) -> None:
    store = CountingSQLiteStore(tmp_path / "status.db")
    jobstatus.configure(store=store, throttle_interval=3600, heartbeat_interval=0)
    job = Job("pending")
    job.started()
    try:
        with job.activate() as status:
            assert jobstatus.cancel("pending", reason="later") is True  # recorded, not learnt
            store.calls.clear()
            for _ in range(10_000):
                status.progress.increment()  # throttled: a local flag, no I/O
            assert store.calls == []
            status.flush()  # its reply carries the pending request
            assert store.calls == ["write"]
            with pytest.raises(jobstatus.Cancelled, match="later"):
                status.progress.increment()
        assert jobstatus.get("pending").progress.current == 10_000
    finally:
        store.close()
