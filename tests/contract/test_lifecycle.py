"""The lifecycle of tracked jobs, on every store."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

import jobstatus
from jobstatus import Job
from jobstatus.stores import Store


class Boom(Exception):
    pass


def test_a_tracked_function_records_working_then_completed(store: Store) -> None:
    seen = {}

    @jobstatus.track
    def job(x: int) -> int:
        status = jobstatus.current()
        seen["id"] = status.job_id
        seen["during"] = jobstatus.get(status.job_id).status
        return x * 2

    assert job(21) == 42
    s = jobstatus.get(seen["id"])
    assert seen["during"] == "working"
    assert s.is_completed and s.is_finished
    assert s["attempts"] == 1
    assert {"started_at", "finished_at", "updated_at"} <= set(s.to_dict())
    assert "queued_at" not in s  # called directly, never queued


def test_a_failing_job_is_failed_and_its_exception_propagates_unchanged(store: Store) -> None:
    ids = []

    @jobstatus.track(includes={"status", "exception"})
    def job() -> None:
        ids.append(jobstatus.current().job_id)
        raise Boom("disk full")

    with pytest.raises(Boom, match="disk full"):
        job()
    s = jobstatus.get(ids[0])
    assert s.is_failed
    assert s["exception"] == {"class": f"{Boom.__module__}.Boom", "message": "disk full"}


def test_builtin_exception_names_are_bare(store: Store) -> None:
    job = Job("bare", options={"includes": {"status", "exception"}})
    job.started()
    job.finished(ValueError("bad"))
    assert jobstatus.get("bare")["exception"] == {"class": "ValueError", "message": "bad"}


def test_exception_is_not_recorded_unless_included(store: Store) -> None:
    job = Job("quiet")
    job.started()
    job.finished(ValueError("secret path /home/x"))
    assert jobstatus.get("quiet").is_failed
    assert "exception" not in jobstatus.get("quiet")


def test_serialized_job_when_included(store: Store) -> None:
    jobstatus.configure(includes={"status", "serialized_job"})

    @jobstatus.track(name="export")
    def job(a: object, *, b: object) -> str:
        return jobstatus.current().job_id

    job_id = job(1, b=object())
    serialized = jobstatus.get(job_id)["serialized_job"]
    assert serialized["name"] == "export"
    assert serialized["args"] == [1]
    assert serialized["kwargs"]["b"].startswith("<object object")


def test_empty_includes_write_nothing_but_the_jobs_own_data(store: Store) -> None:
    @jobstatus.track(includes=set())
    def job() -> str:
        status = jobstatus.current()
        status["step"] = "A"
        return status.job_id

    record = jobstatus.get(job()).to_dict()
    assert record.pop("updated_at")
    assert record == {"step": "A"}


def test_empty_includes_and_no_data_write_no_record(store: Store) -> None:
    @jobstatus.track(includes=set())
    def job() -> str:
        return jobstatus.current().job_id

    assert jobstatus.get(job()).exists is False


def test_catch_exception_keeps_the_job_failed(store: Store) -> None:
    @jobstatus.track(includes={"status", "exception"})
    def job() -> str:
        status = jobstatus.current()
        try:
            raise Boom("swallowed")
        except Boom as exc:
            status.catch_exception(exc)
        status["after"] = True
        return status.job_id

    s = jobstatus.get(job())
    assert s.is_failed
    assert s["exception"]["message"] == "swallowed"
    assert s["after"] is True


def test_retry_goes_back_to_queued_and_counts_attempts(store: Store) -> None:
    job = Job("retry")
    job.enqueued()
    assert jobstatus.get("retry").is_queued
    job.started()
    job.retrying(Boom("flaky"))
    s = jobstatus.get("retry")
    assert s.is_queued and s["attempts"] == 1
    job.started()
    job.finished()
    s = jobstatus.get("retry")
    assert s.is_completed and s["attempts"] == 2
    assert "queued_at" in s


def test_current_outside_a_job(store: Store) -> None:
    with pytest.raises(jobstatus.NoCurrentJob):
        jobstatus.current()
    with pytest.raises(LookupError):
        jobstatus.current()


def test_current_follows_threads_and_tasks(store: Store) -> None:
    @jobstatus.track
    def in_thread(n: int) -> str:
        jobstatus.current()["n"] = n
        return jobstatus.current().job_id

    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(in_thread, range(8)))
    assert len(set(ids)) == 8
    assert [jobstatus.get(job_id)["n"] for job_id in ids] == list(range(8))

    @jobstatus.track
    async def in_task(n: int) -> str:
        await asyncio.sleep(0.01)
        jobstatus.current()["n"] = n
        return jobstatus.current().job_id

    async def main() -> list[str]:
        return list(await asyncio.gather(*(in_task(n) for n in range(5))))

    ids = asyncio.run(main())
    assert [jobstatus.get(job_id)["n"] for job_id in ids] == list(range(5))
    assert all(jobstatus.get(job_id).is_completed for job_id in ids)


def test_throttled_changes_are_held_then_flushed_by_the_final_transition(store: Store) -> None:
    observed = {}

    @jobstatus.track(throttle_interval=3600)
    def job() -> str:
        status = jobstatus.current()
        status.progress.total = 100  # forced: written at once
        status.progress.increment()  # the last write was just now: held
        for _ in range(98):
            status.progress.increment()
        status.update(step="almost")  # throttled too
        observed["mid"] = jobstatus.get(status.job_id).to_dict()
        observed["local"] = status.progress.current
        status.progress.increment()
        return status.job_id

    s = jobstatus.get(job())
    assert observed["local"] == 99  # the job sees its own changes at once
    assert observed["mid"].get("progress", 0) == 0 and "step" not in observed["mid"]
    assert s.is_completed
    assert s.progress.current == 100 and s["step"] == "almost"


def test_throttled_write_goes_out_at_once_when_the_interval_has_passed(store: Store) -> None:
    job = Job("lead", options={"throttle_interval": 0.05})
    job.started()
    import time

    time.sleep(0.06)
    job.status.progress.increment(5)  # leading write: interval passed
    assert jobstatus.get("lead").progress.current == 5
    job.status.progress.increment(1)  # held
    assert jobstatus.get("lead").progress.current == 5
    time.sleep(0.06)
    job.status.progress.increment(1)  # carries the held one
    assert jobstatus.get("lead").progress.current == 7
    job.finished()


def test_progress_increment_decrement_finish(store: Store) -> None:
    @jobstatus.track
    def job() -> str:
        p = jobstatus.current().progress
        p.total = 10
        p.increment()
        p.increment(by=4)
        p.decrement(2)
        assert p.current == 3
        p.finish()
        return jobstatus.current().job_id

    s = jobstatus.get(job())
    assert s.progress.current == 10 and s.progress.ratio == 1.0
    assert s.progress.rate is not None and s.progress.rate > 0
    assert s.progress.eta == 0


def test_update_moves_progress(store: Store) -> None:
    job = Job("upd")
    job.started()
    job.status.update(step="B", total=50, progress=5)
    assert job.status.progress.total == 50 and job.status.progress.current == 5
    job.status.update({"path": "out.csv"}, force=True)
    job.finished()
    s = jobstatus.get("upd")
    assert (s["step"], s["path"], s.progress.total, s.progress.current) == ("B", "out.csv", 50, 5)


def test_submit_to_a_thread_pool_returns_the_id_at_once(store: Store) -> None:
    import threading

    release = threading.Event()

    @jobstatus.track
    def job(n: int) -> int:
        release.wait(10)
        jobstatus.current()["n"] = n
        return n

    with ThreadPoolExecutor(1) as pool:
        first = jobstatus.submit(pool, job, 1)
        second = jobstatus.submit(pool, job, 2)
        assert jobstatus.get(second).is_queued
        assert "queued_at" in jobstatus.get(second)
        release.set()
    assert jobstatus.get(first).is_completed and jobstatus.get(second)["n"] == 2


def test_asubmit_runs_a_coroutine_as_a_job(store: Store) -> None:
    async def work(n: int) -> int:
        status = jobstatus.current()
        status.progress.total = n
        for _ in range(n):
            status.progress.increment()
            await asyncio.sleep(0)
        return n

    async def main() -> str:
        job_id = await jobstatus.asubmit(work, 20)
        # Recorded from the start; on a loaded machine it may have finished already.
        assert (await jobstatus.aget(job_id)).status in ("queued", "working", "completed")
        return (await (await jobstatus.aget(job_id)).until_finished(timeout=10)).job_id

    s = jobstatus.get(asyncio.run(main()))
    assert s.is_completed and s.progress.current == 20


def test_async_failure_and_cancellation_are_failed(store: Store) -> None:
    ids: list[str] = []

    @jobstatus.track
    async def fails() -> None:
        ids.append(jobstatus.current().job_id)
        raise Boom("async")

    @jobstatus.track
    async def hangs() -> None:
        ids.append(jobstatus.current().job_id)
        await asyncio.sleep(60)

    async def main() -> None:
        with pytest.raises(Boom):
            await fails()
        task = asyncio.ensure_future(hangs())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert [jobstatus.get(job_id).status for job_id in ids] == ["failed", "failed"]
