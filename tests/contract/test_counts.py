"""Store-wide counts and searching by name and id (the dashboard's and metrics' reads)."""

from __future__ import annotations

import asyncio

import pytest

import jobstatus
from jobstatus import Job
from jobstatus.stores import Store

from ..stores import FakeClock, StoreCase


@pytest.fixture(autouse=True)
def _searching_store(case: StoreCase) -> None:
    if not case.lists:
        pytest.skip(f"{case.name} cannot list")
    if not case.searches:
        pytest.skip(f"{case.name} does not count or search from its indexes yet")


def _job(job_id: str, end: str | None, *, name: str = "task") -> None:
    job = Job(job_id, name=name)
    job.enqueued()
    if end is None:
        return
    job.started()
    if end == "completed":
        job.finished()
    elif end == "failed":
        job.finished(ValueError("no"))
    elif end == "cancelled":
        job.cancelled()


def test_counts_are_exact_per_status_and_stale_is_counted_within_working(store: Store) -> None:
    for n in range(3):
        _job(f"q{n}", None)
    for n in range(2):
        _job(f"w{n}", "working")
    for n, end in enumerate(["completed"] * 4 + ["failed"] * 2 + ["cancelled"]):
        _job(f"f{n}", end)
    counts = jobstatus.counts()
    assert counts == {
        "queued": 3,
        "working": 2,
        "completed": 4,
        "failed": 2,
        "cancelled": 1,
        "stale": 0,
    }
    jobstatus.configure(stale_after=0.000001)
    assert jobstatus.counts()["stale"] == 2


def test_counts_of_an_empty_store_are_zero(store: Store) -> None:
    assert jobstatus.counts() == dict.fromkeys(
        ["queued", "working", "completed", "failed", "cancelled", "stale"], 0
    )


def test_expired_records_are_not_counted(store: Store, case: StoreCase, clock: FakeClock) -> None:
    if not case.uses_clock:
        pytest.skip("expiry follows the server's clock")
    jobstatus.configure(expires_in=10)
    _job("old", "completed")
    clock.advance(60)
    _job("new", "completed")
    assert jobstatus.counts()["completed"] == 1


def test_a_search_by_name_finds_only_that_tasks_jobs_newest_first(store: Store) -> None:
    _job("e1", "completed", name="reports.export")
    _job("i1", "failed", name="images.resize")
    _job("e2", "failed", name="reports.export")
    found = jobstatus.recent(name="reports.export")
    assert [s.job_id for s in found] == ["e2", "e1"]
    assert [s.job_id for s in jobstatus.recent(name="reports.export", status="failed")] == ["e2"]
    assert jobstatus.recent(name="nobody.here") == []


def test_a_search_by_name_and_status_finds_the_same_whichever_side_is_smaller(
    store: Store,
) -> None:
    """Stores may walk the status's index or the name's, whichever holds fewer jobs
    (Redis does): a few failed among many of a name, and a rare name among many failed."""
    for n in range(12):
        _job(f"common-{n}", "completed", name="common")
    _job("common-failed-1", "failed", name="common")
    _job("common-failed-2", "failed", name="common")
    for n in range(12):
        _job(f"other-failed-{n}", "failed", name="other")
    _job("rare-failed", "failed", name="rare")
    _job("rare-done", "completed", name="rare")
    few_failed = jobstatus.recent(name="common", status="failed", limit=1)
    assert [s.job_id for s in few_failed] == ["common-failed-2"]
    rest = jobstatus.recent(
        name="common", status="failed", before=few_failed[-1]["updated_at"], limit=5
    )
    assert [s.job_id for s in rest] == ["common-failed-1"]
    assert [s.job_id for s in jobstatus.recent(name="rare", status="failed")] == ["rare-failed"]
    assert jobstatus.recent(name="rare", status="queued") == []

    async def the_same_from_async_code() -> list[list[str]]:
        searches = [{"name": "common", "status": "failed"}, {"name": "rare", "status": "failed"}]
        return [[s.job_id for s in await jobstatus.arecent(**how)] for how in searches]

    both_common = ["common-failed-2", "common-failed-1"]
    assert asyncio.run(the_same_from_async_code()) == [both_common, ["rare-failed"]]


def test_a_search_by_id_prefix(store: Store) -> None:
    for job_id in ("abc-1", "abc-2", "abd-1", "xabc"):
        _job(job_id, None)
    found = sorted(s.job_id for s in jobstatus.recent(prefix="abc"))
    assert found == ["abc-1", "abc-2"]
    assert [s.job_id for s in jobstatus.recent(prefix="abc-2")] == ["abc-2"]
    assert jobstatus.recent(prefix="zzz") == []


def test_a_search_pages_with_before(store: Store) -> None:
    for n in range(5):
        _job(f"page-{n}", "completed", name="paged")
    first = jobstatus.recent(name="paged", limit=2)
    second = jobstatus.recent(name="paged", limit=2, before=first[-1]["updated_at"])
    assert len(first) == 2 and len(second) == 2
    assert not {s.job_id for s in first} & {s.job_id for s in second}


@pytest.mark.parametrize("bad", [{"name": ""}, {"name": 3}, {"prefix": ""}, {"prefix": "a\nb"}])
def test_bad_search_arguments_are_refused(store: Store, bad: dict[str, object]) -> None:
    with pytest.raises((TypeError, ValueError)):
        jobstatus.recent(**bad)  # type: ignore[arg-type]
