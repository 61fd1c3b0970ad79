"""Progress arithmetic: ratio, percent, rate and eta, as a reader sees them."""

from __future__ import annotations

import time

import pytest

import jobstatus
from jobstatus import Job, Progress


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
