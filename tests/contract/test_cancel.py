"""Cancelling jobs (SPEC 9), on every store: requests, delivery and the cancelled state."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest

import jobstatus
from jobstatus import Job
from jobstatus.stores import Store
from jobstatus.stores.base import CancelPush

from ..stores import StoreCase

BOUND = 30.0  # seconds a job may loop waiting for its cancel before the test fails


@pytest.fixture(autouse=True)
def _whole_change(case: StoreCase) -> None:
    if not case.guards:
        pytest.skip(f"{case.name} does not apply guards, history and groups yet")


@contextmanager
def busy_pool() -> Iterator[tuple[ThreadPoolExecutor, threading.Event]]:
    """A one-thread pool kept busy until the event is set: what is submitted stays queued."""
    release = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(release.wait, BOUND)
        try:
            yield pool, release
        finally:
            release.set()


def _loop_until_cancelled(ran: list[str]) -> str:
    status = jobstatus.current()
    ran.append(status.job_id)
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        status.progress.increment()
        time.sleep(0.005)
    return "never cancelled"


def test_cancelling_a_queued_job_returns_true_and_records_the_request(store: Store) -> None:
    job = Job("c-queued")
    job.enqueued()
    assert jobstatus.cancel("c-queued", reason="user clicked cancel") is True
    s = jobstatus.get("c-queued")
    assert s.is_queued and s.cancel_requested and not s.is_finished
    assert s["cancel"]["reason"] == "user clicked cancel"
    assert jobstatus.get("c-queued").history[-1]["status"] == "cancel_requested"
    assert isinstance(s["cancel"]["requested_at"], str)


def test_cancelling_an_unknown_job_returns_false_and_writes_nothing(store: Store) -> None:
    assert jobstatus.cancel("c-nobody") is False
    assert jobstatus.get("c-nobody").exists is False


def test_cancelling_a_finished_job_returns_false_and_leaves_it_unchanged(store: Store) -> None:
    for job_id, outcome in (("c-done", None), ("c-broken", ValueError("x"))):
        job = Job(job_id)
        job.started()
        job.finished(outcome)
        before = jobstatus.get(job_id).to_dict()
        assert jobstatus.cancel(job_id) is False
        assert jobstatus.get(job_id).to_dict() == before


@pytest.mark.parametrize("bad", ["", "a\nb", "x" * 513])
def test_a_malformed_id_is_refused_before_any_io(store: Store, bad: str) -> None:
    with pytest.raises(ValueError):
        jobstatus.cancel(bad)


@pytest.mark.parametrize("reason", [42, b"bytes", ["list"]])
def test_a_reason_that_is_not_a_str_is_refused(store: Store, reason: object) -> None:
    Job("c-reason").enqueued()
    with pytest.raises(TypeError):
        jobstatus.cancel("c-reason", reason=reason)  # type: ignore[arg-type]
    assert not jobstatus.get("c-reason").cancel_requested


def test_a_reason_too_long_is_refused(store: Store) -> None:
    Job("c-long").enqueued()
    with pytest.raises(ValueError, match="reason"):
        jobstatus.cancel("c-long", reason="x" * 100_000)
    assert not jobstatus.get("c-long").cancel_requested


def test_a_queued_job_that_is_cancelled_never_runs_its_code(store: Store) -> None:
    ran: list[str] = []

    def work() -> None:
        ran.append("ran")

    with busy_pool() as (pool, release):
        job_id = jobstatus.submit(pool, work)
        assert jobstatus.get(job_id).is_queued
        assert jobstatus.cancel(job_id) is True
        release.set()
    s = jobstatus.get(job_id).wait(timeout=BOUND)
    assert ran == []
    assert s.is_cancelled and s.is_finished and "finished_at" in s
    assert not s.cancel_requested  # it stopped: the request is no longer pending
    assert [entry["status"] for entry in s.history] == ["queued", "cancel_requested", "cancelled"]


def test_a_running_job_raises_cancelled_at_its_next_progress_call(store: Store) -> None:
    ran: list[str] = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        job_id = jobstatus.submit(pool, _loop_until_cancelled, ran)
        _wait_for(lambda: jobstatus.get(job_id).is_working)
        assert jobstatus.cancel(job_id, reason="stop") is True
        s = jobstatus.get(job_id).wait(timeout=BOUND)
    assert s.is_cancelled and not s.is_failed
    assert s["cancel"]["reason"] == "stop"
    assert s.history[-1]["status"] == "cancelled"
    assert s.progress.current > 0


def _tick_until_cancelled() -> str:
    """Only throttled ticks: a job that writes nothing of its own until it is cancelled."""
    status = jobstatus.current()
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        status.progress.increment()
    return "never cancelled"


def test_a_quiet_job_learns_its_cancel_from_its_heartbeat(store: Store) -> None:
    if CancelPush.of(store) is not None:
        pytest.skip("this store pushes the request: the heartbeat's reply is not the path")
    jobstatus.configure(throttle_interval=3600, heartbeat_interval=0.3)
    with ThreadPoolExecutor(max_workers=1) as pool:
        job_id = jobstatus.submit(pool, _tick_until_cancelled)
        _wait_for(lambda: jobstatus.get(job_id).is_working)
        assert jobstatus.cancel(job_id, reason="quiet") is True
        s = jobstatus.get(job_id).wait(timeout=BOUND)  # a deadline for failure, not a speed
    assert s.is_cancelled and not s.is_failed
    assert s["cancel"]["reason"] == "quiet"
    assert s.history[-1]["status"] == "cancelled"


def test_cancelled_is_raised_from_the_job_and_is_a_jobstatus_error(store: Store) -> None:
    raised: list[BaseException] = []

    @jobstatus.track
    def job() -> None:
        status = jobstatus.current()
        assert jobstatus.cancel(status.job_id) is True
        deadline = time.monotonic() + BOUND
        try:
            while time.monotonic() < deadline:
                status.progress.increment()
                time.sleep(0.005)
        except jobstatus.Cancelled as exc:
            raised.append(exc)
            raise

    with pytest.raises(jobstatus.Cancelled):
        job()
    assert isinstance(raised[0], jobstatus.JobStatusError)


def test_a_job_that_returns_after_seeing_the_request_is_cancelled(store: Store) -> None:
    seen: list[bool] = []

    @jobstatus.track
    def job() -> str:
        status = jobstatus.current()
        jobstatus.cancel(status.job_id)
        with contextlib.suppress(jobstatus.Cancelled):
            status.update(probe=1, force=True)  # its reply (or a push) brings the request
        seen.append(status.cancel_requested)
        return status.job_id

    s = jobstatus.get(job())
    assert seen == [True]
    assert s.is_cancelled and not s.is_completed


def test_reading_cancel_requested_never_raises_but_every_write_does(store: Store) -> None:
    @jobstatus.track
    def job() -> str:
        status = jobstatus.current()
        jobstatus.cancel(status.job_id)
        with contextlib.suppress(jobstatus.Cancelled):
            status.update(probe=1, force=True)
        assert status.cancel_requested is True
        assert status.cancel_requested is True
        with pytest.raises(jobstatus.Cancelled):
            status.progress.increment()
        with pytest.raises(jobstatus.Cancelled):
            status["step"] = "B"
        with pytest.raises(jobstatus.Cancelled):
            status.update(step="C")
        with pytest.raises(jobstatus.Cancelled):
            status.progress.total = 10
        return status.job_id

    s = jobstatus.get(job())
    assert s.is_cancelled and "step" not in s


def test_a_job_that_finishes_before_the_request_stays_completed(store: Store) -> None:
    @jobstatus.track
    def job() -> str:
        return jobstatus.current().job_id

    job_id = job()
    assert jobstatus.cancel(job_id) is False
    assert jobstatus.get(job_id).is_completed


def test_cancelling_twice_returns_true_while_the_job_is_unfinished(store: Store) -> None:
    Job("c-twice").enqueued()
    assert jobstatus.cancel("c-twice") is True
    assert jobstatus.cancel("c-twice", reason="again") is True
    assert jobstatus.get("c-twice")["cancel"]["reason"] == "again"


def test_status_cancel_and_batch_cancel(store: Store) -> None:
    for job_id in ("b1", "b2", "b3"):
        Job(job_id).enqueued()
    done = Job("b4")
    done.started()
    done.finished()
    assert jobstatus.get("b1").cancel(reason="one") is True
    batch = jobstatus.Batch(["b1", "b2", "b3", "b4", "b-missing"])
    assert batch.cancel(reason="all") == 3  # b1 again, b2, b3; not b4 or the missing one
    assert all(s.cancel_requested for s in jobstatus.Batch(["b1", "b2", "b3"]).statuses)


def test_batch_counts_and_rules_know_cancelled(store: Store) -> None:
    for job_id, end in (("k1", "completed"), ("k2", "cancelled")):
        job = Job(job_id)
        job.started()
        if end == "completed":
            job.finished()
        else:
            job.cancelled()
    batch = jobstatus.Batch(["k1", "k2"])
    assert batch.counts == {
        "queued": 0,
        "working": 0,
        "completed": 1,
        "failed": 0,
        "cancelled": 1,
        "missing": 0,
    }
    assert batch.status == "cancelled" and batch.is_finished
    assert jobstatus.get("k2").is_cancelled and jobstatus.get("k2").is_finished


def test_a_cancelled_retry_is_not_run_again(store: Store) -> None:
    job = Job("c-retry")
    job.enqueued()
    job.started()
    job.retrying(ValueError("flaky"))
    assert jobstatus.cancel("c-retry") is True
    again = Job("c-retry")
    assert again.started() is False  # the start hook refuses it
    s = jobstatus.get("c-retry")
    assert s.is_cancelled and s["attempts"] == 1


def test_an_async_job_raises_cancelled_and_acancel_works(store: Store) -> None:
    async def work() -> str:
        status = jobstatus.current()
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline:
            status.progress.increment()
            await asyncio.sleep(0.005)
        return "never cancelled"

    async def main() -> jobstatus.Status:
        job_id = await jobstatus.asubmit(work)
        while not (await jobstatus.aget(job_id)).is_working:
            await asyncio.sleep(0.01)
        assert await jobstatus.acancel(job_id, reason="async") is True
        return await (await jobstatus.aget(job_id)).until_finished(timeout=BOUND)

    s = asyncio.run(main())
    assert s.is_cancelled and s["cancel"]["reason"] == "async"


def _wait_for(condition: object, bound: float = BOUND) -> None:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.01)
    raise AssertionError("the condition never held")
