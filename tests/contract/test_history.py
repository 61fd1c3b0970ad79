"""Task names and transition history (SPEC 4 and 5), on every store."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

import jobstatus
from jobstatus import Job
from jobstatus._record import parse_iso
from jobstatus.stores import Store

from ..stores import StoreCase
from .test_cancel import BOUND


@pytest.fixture(autouse=True)
def _whole_change(case: StoreCase) -> None:
    if not case.guards:
        pytest.skip(f"{case.name} does not apply guards, history and groups yet")


def _steps(s: jobstatus.Status) -> list[tuple[str, int]]:
    return [(entry["status"], entry["attempt"]) for entry in s.history]


def named_function() -> str:
    return jobstatus.current().job_id


def test_a_tracked_function_records_its_qualified_name(store: Store) -> None:
    s = jobstatus.get(jobstatus.track(named_function)())
    assert s.name == f"{__name__}.named_function"
    assert s["name"] == s.name


def test_track_takes_a_name(store: Store) -> None:
    @jobstatus.track(name="resize")
    def job() -> str:
        return jobstatus.current().job_id

    assert jobstatus.get(job()).name == "resize"


def test_an_unknown_job_has_no_name_and_no_history(store: Store) -> None:
    s = jobstatus.get("h-nobody")
    assert s.name is None and s.history == []


def test_a_submitted_job_records_queued_working_completed(store: Store) -> None:
    with ThreadPoolExecutor(max_workers=1) as pool:
        job_id = jobstatus.submit(pool, named_function)
    s = jobstatus.get(job_id).wait(timeout=BOUND)
    assert _steps(s) == [("queued", 0), ("working", 1), ("completed", 1)]
    stamps = [parse_iso(entry["at"]) for entry in s.history]
    assert all(stamp is not None for stamp in stamps) and stamps == sorted(stamps)  # type: ignore[type-var]
    assert s.history[-1]["at"] == s["finished_at"]


def test_history_survives_retries_in_order(store: Store) -> None:
    job = Job("h-retry", name="flaky")
    job.enqueued()
    job.started()
    job.retrying(ValueError("once"))
    job.started()
    job.finished(ValueError("twice"))
    s = jobstatus.get("h-retry")
    assert _steps(s) == [
        ("queued", 0),
        ("working", 1),
        ("queued", 1),
        ("working", 2),
        ("failed", 2),
    ]
    assert s.name == "flaky"


def test_history_records_the_cancel_request_and_the_end(store: Store) -> None:
    job = Job("h-cancel")
    job.enqueued()
    job.started()
    assert jobstatus.cancel("h-cancel") is True
    job.cancelled()
    assert _steps(jobstatus.get("h-cancel")) == [
        ("queued", 0),
        ("working", 1),
        ("cancel_requested", 1),
        ("cancelled", 1),
    ]


def test_progress_ticks_never_enter_the_history(store: Store) -> None:
    @jobstatus.track
    def job() -> str:
        status = jobstatus.current()
        status.progress.total = 50
        for _ in range(50):
            status.progress.increment()
            status["step"] = "tick"
        return status.job_id

    assert _steps(jobstatus.get(job())) == [("working", 1), ("completed", 1)]


def test_history_keeps_at_most_history_limit_entries(store: Store) -> None:
    jobstatus.configure(history_limit=3)
    job = Job("h-limit")
    job.enqueued()
    for _ in range(3):
        job.started()
        job.retrying(ValueError("again"))
    s = jobstatus.get("h-limit")
    assert _steps(s) == [("queued", 2), ("working", 3), ("queued", 3)]


def test_a_history_limit_of_zero_keeps_none(store: Store) -> None:
    jobstatus.configure(history_limit=0)
    job = Job("h-none")
    job.started()
    job.finished()
    s = jobstatus.get("h-none")
    assert s.is_completed and "history" not in s and s.history == []


def test_empty_includes_record_no_name_and_no_history(store: Store) -> None:
    @jobstatus.track(includes=set(), name="silent")
    def job() -> str:
        status = jobstatus.current()
        status["step"] = "A"
        return status.job_id

    record = jobstatus.get(job()).to_dict()
    assert "name" not in record and "history" not in record
