"""The attempt lifecycle every queue drives (integrations/_common.py), in this process:
one outcome per attempt, a start refused for a cancelled job, a retry refused while
it is being cancelled, and store failures that never reach the queue."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import pytest

import jobstatus
from jobstatus import Cancelled, ConfigurationError
from jobstatus._job import JobSpec
from jobstatus.integrations._common import (
    Attempt,
    aenqueue,
    enqueue,
    record_outcome,
    spec_from,
    task_spec,
)

SPEC = JobSpec(name="shop.export", options={"includes": {"status", "exception"}})
DOWN = "redis://127.0.0.1:1/0"  # nothing listens there: every write fails at once


def test_an_attempt_records_working_then_one_outcome() -> None:
    enqueue(SPEC.job("a-1"))
    attempt = Attempt(SPEC.job("a-1"))
    assert attempt.start()
    assert jobstatus.current().job_id == "a-1"
    attempt.finish(ValueError("bad row"))
    with pytest.raises(jobstatus.NoCurrentJob):
        jobstatus.current()
    attempt.requeue(ConnectionError("too late"))  # the outcome was recorded: nothing
    s = jobstatus.get("a-1")
    assert s.is_failed and s.name == "shop.export" and s["attempts"] == 1
    assert s["exception"] == {"class": "ValueError", "message": "bad row"}


def test_a_retry_keeps_the_job_current_until_the_attempt_leaves() -> None:
    attempt = Attempt(SPEC.job("a-2"))
    attempt.start()
    assert attempt.requeue(ConnectionError("first try"))
    assert jobstatus.current().job_id == "a-2"  # the task is still unwinding
    attempt.leave()
    with pytest.raises(jobstatus.NoCurrentJob):
        jobstatus.current()
    s = jobstatus.get("a-2")
    assert s.is_queued and s["attempts"] == 1
    assert s["exception"]["class"] == "ConnectionError"


def test_a_job_cancelled_before_it_starts_is_refused_and_stays_cancelled() -> None:
    enqueue(SPEC.job("a-3"))
    assert jobstatus.cancel("a-3")
    attempt = Attempt(SPEC.job("a-3"))
    assert not attempt.start()
    with pytest.raises(jobstatus.NoCurrentJob):
        jobstatus.current()  # its code must not run: it is not current either
    attempt.finish()
    s = jobstatus.get("a-3")
    assert s.is_cancelled and "attempts" not in s


def test_a_cancelled_exception_is_cancelled_and_never_retried() -> None:
    attempt = Attempt(SPEC.job("a-4"))
    attempt.start()
    assert not attempt.requeue(Cancelled("a-4"))
    attempt.leave()
    assert jobstatus.get("a-4").is_cancelled


def test_a_retry_is_refused_once_the_running_job_saw_its_cancel() -> None:
    attempt = Attempt(SPEC.job("a-5"))
    attempt.start()
    jobstatus.cancel("a-5")
    with contextlib.suppress(Cancelled):  # raised at once where the store pushes it
        attempt.job.status.update(step="next", force=True)  # the reply carries the request
    assert jobstatus.current().cancel_requested
    assert not attempt.requeue(ConnectionError("would retry"))
    attempt.leave()
    assert jobstatus.get("a-5").is_cancelled


def test_store_failures_are_logged_and_never_reach_the_queue(
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = JobSpec(name="shop.export", store=DOWN, options={"on_store_error": "raise"})
    enqueue(down.job("a-6"))
    attempt = Attempt(down.job("a-6"))
    assert attempt.start()  # the job runs, unrecorded
    assert attempt.requeue(ConnectionError("first try"))  # the queue's retry goes ahead
    attempt.leave()
    record_outcome(down, "a-6", ValueError("reported by another process"))
    said = [record.getMessage() for record in caplog.records]
    for what in ("queued", "working", "the retry", "the outcome"):
        assert any(f"could not record {what} for job 'a-6'" in line for line in said), said


def test_an_attempt_ended_from_another_thread_is_recorded_and_raises_nothing() -> None:
    attempt = Attempt(SPEC.job("a-7"))
    started = threading.Thread(target=attempt.start)  # a worker thread of Huey's consumer
    started.start()
    started.join()
    attempt.finish()  # its main thread, at shutdown: the worker thread's context is not here
    assert jobstatus.get("a-7").is_completed


def test_the_async_twins_write_on_the_running_loop() -> None:
    async def run() -> tuple[bool, bool]:
        await aenqueue(await SPEC.ajob("a-8"))
        first = Attempt(await SPEC.ajob("a-8"))
        started = await first.astart()
        retried = await first.arequeue(ConnectionError("first try"))
        first.leave()
        second = Attempt(await SPEC.ajob("a-8"))
        await second.astart()
        jobstatus.current().progress.increment()  # only handed over: the loop never waits
        await second.afinish()
        return started, retried

    assert asyncio.run(run()) == (True, True)
    s = jobstatus.get("a-8")
    assert s.is_completed and s["attempts"] == 2 and s.progress.current == 1


def test_the_parent_given_at_publish_time_is_recorded_by_the_worker_too() -> None:
    group = jobstatus.group(name="import")
    enqueue(SPEC.job("a-9", parent=group))
    attempt = Attempt(SPEC.job("a-9", parent=group.job_id))
    attempt.start()
    assert jobstatus.get("a-9")["parent"] == group.job_id
    assert jobstatus.get(group)["children"]["working"] == 1
    attempt.finish()
    assert jobstatus.get(group)["children"]["completed"] == 1


def test_an_outcome_decided_elsewhere_is_recorded_for_tracked_tasks_only() -> None:
    record_outcome(SPEC, "a-10", ConnectionError("lost"), retry=True)
    record_outcome(None, "a-11", ValueError("not tracked"))
    assert jobstatus.get("a-10").is_queued
    assert not jobstatus.get("a-11").exists


def test_a_task_spec_is_its_apps_under_its_own_option() -> None:
    app = JobSpec(store="memory://", options={"throttle_interval": 1.0, "expires_in": 60})
    own = task_spec(app, {"throttle_interval": 2.0}, "shop.resize")
    assert own is not None and own.store == "memory://" and own.name == "shop.resize"
    assert own.options == {**app.options, "throttle_interval": 2.0}
    assert task_spec(app, None, "shop.ping") == app.named("shop.ping")
    assert task_spec(app, False, "shop.ping") is None
    assert task_spec(None, None, "shop.ping") is None
    assert task_spec(app, True, "x" * 600) == app  # a name a record cannot hold: left out
    with pytest.raises(ConfigurationError, match="task 'shop.bad'"):
        spec_from({"throttle": 1}, "task 'shop.bad'")
