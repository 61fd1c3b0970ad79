"""The queues' revokers (jobstatus._revokers): every applied cancel request is handed to
them, with the job's record, after it is recorded; a failing revoker changes nothing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

import jobstatus
from jobstatus import Job
from jobstatus._record import Record
from jobstatus._revokers import register_revoker, revokers


@pytest.fixture
def handed() -> Iterator[list[tuple[str, Record]]]:
    seen: list[tuple[str, Record]] = []
    register_revoker("test", lambda job_id, record: seen.append((job_id, record)))
    jobstatus.configure(store="memory://")
    yield seen
    revokers.unregister("test")


def test_a_queued_jobs_request_reaches_the_revoker_with_its_record(
    handed: list[tuple[str, Record]],
) -> None:
    Job("r-queued", name="tasks.export").enqueued()
    assert jobstatus.cancel("r-queued", reason="no longer needed")
    [(job_id, record)] = handed
    assert job_id == "r-queued" and record["status"] == "queued"
    assert record["name"] == "tasks.export"
    assert record["cancel"]["reason"] == "no longer needed"  # recorded before the revoke


def test_a_request_not_applied_reaches_no_revoker(handed: list[tuple[str, Record]]) -> None:
    job = Job("r-done")
    job.enqueued()
    job.finished()
    assert not jobstatus.cancel("r-done")
    assert not jobstatus.cancel("r-unknown")
    assert handed == []


def test_a_groups_children_each_reach_the_revoker(handed: list[tuple[str, Record]]) -> None:
    g = jobstatus.group(name="batch")
    for n in range(3):
        Job(f"r-child-{n}", parent=g).enqueued()
    assert jobstatus.cancel(g)
    assert sorted(job_id for job_id, _ in handed) == [g.job_id, *(f"r-child-{n}" for n in range(3))]


def test_the_async_cancel_reaches_the_revoker(handed: list[tuple[str, Record]]) -> None:
    Job("r-async").enqueued()
    assert asyncio.run(jobstatus.acancel("r-async"))
    assert [job_id for job_id, _ in handed] == ["r-async"]


def test_a_failing_revoker_is_logged_and_the_request_stands(
    handed: list[tuple[str, Record]], caplog: pytest.LogCaptureFixture
) -> None:
    def broken(job_id: str, record: Record) -> None:
        raise ConnectionError("broker down")

    register_revoker("broken", broken)
    try:
        Job("r-broken").enqueued()
        with caplog.at_level(logging.WARNING, logger="jobstatus"):
            assert jobstatus.cancel("r-broken")
    finally:
        revokers.unregister("broken")
    assert jobstatus.get("r-broken").cancel_requested
    assert [job_id for job_id, _ in handed] == ["r-broken"]  # the others still ran
    assert "the broken revoke of job 'r-broken' failed" in caplog.text


def test_registering_a_kind_again_replaces_its_revoker(handed: list[tuple[str, Record]]) -> None:
    later: list[str] = []
    register_revoker("test", lambda job_id, record: later.append(job_id))
    Job("r-again").enqueued()
    jobstatus.cancel("r-again")
    assert handed == [] and later == ["r-again"]
