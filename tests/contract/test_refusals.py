"""What a write did, and what a store refuses for good: the same on every store.

A store answers each write with a ``Written`` (applied? created the record?),
refuses a sum of increments that would not be a finite number with
``WriteRefused`` and stores nothing of it (SPEC 1 holds after increments too),
and a running job whose record vanished writes back what it knows.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

import jobstatus
from jobstatus import WriteRefused
from jobstatus._record import Change
from jobstatus.stores import Store, Written

from .._refusals import job_with_a_refused_write, overflow_progress
from ..stores import FakeClock, StoreCase


def test_a_write_says_whether_it_created_the_record(store: Store) -> None:
    assert store.write("w", Change(set={"a": 1})) == Written(applied=True, created=True)
    assert store.write("w", Change(set={"b": 2})) == Written(applied=True, created=False)
    once = Change(incr={"n": 1}, origin=("writer", 1))
    assert store.write("w", once) == Written(applied=True, created=False)
    assert store.write("w", once) == Written(applied=False, created=False)  # sent again
    store.delete("w")
    assert store.write("w", Change(set={"c": 3})) == Written(applied=True, created=True)
    assert store.read("w") == {"c": 3}


def test_the_async_write_says_the_same(store: Store) -> None:
    async def scenario() -> list[Written | None]:
        first = await store.awrite("aw", Change(set={"a": 1}))
        second = await store.awrite("aw", Change(set={"a": 2}))
        await store.aclose()
        return [first, second]

    assert asyncio.run(scenario()) == [Written(created=True), Written(created=False)]


def test_a_write_into_an_expired_record_creates_it(
    store: Store, case: StoreCase, clock: FakeClock
) -> None:
    ttl = 30 if case.uses_clock else 1
    store.write("exp", Change(set={"a": 1}, ttl=ttl, finished_ttl=ttl))
    if case.uses_clock:
        clock.advance(ttl + 1)
    else:
        time.sleep(ttl + 1.5)  # memcached's clock ticks once a second
    assert store.write("exp", Change(set={"b": 2})) == Written(created=True)
    assert store.read("exp") == {"b": 2}


@pytest.mark.parametrize(
    ("key", "start", "amount"),
    [
        ("progress", 1e308, 1e308),
        ("n", -1e308, -1e308),
        ("n", 1.7976931348623157e308, 1e292),
        ("n", 2**1030, 1.0),  # an int past a float's range, plus a float
    ],
)
def test_a_sum_that_is_not_finite_is_refused_and_nothing_is_stored(
    store: Store, key: str, start: float, amount: float
) -> None:
    store.write("sum", Change(set={key: start, "step": "A"}))
    before = store.read("sum")
    with pytest.raises(WriteRefused):
        store.write("sum", Change(set={"step": "B"}, incr={key: amount}))
    with pytest.raises(WriteRefused):
        store.write("sum", Change(incr={key: amount}, origin=("w", 7)))
    assert store.read("sum") == before  # not even the step, nor the origin
    assert jobstatus.get("sum").to_json()
    store.write("sum", Change(incr={"other": 1}, origin=("w", 7)))  # the origin was not used
    assert store.read("sum") == {**before, "other": 1}


def test_an_amount_that_is_not_finite_is_refused(store: Store) -> None:
    # Held increments can add up to an infinity before any store sees them.
    with pytest.raises(WriteRefused):
        store.write("amount", Change(incr={"progress": float("inf")}))
    with pytest.raises(WriteRefused):
        store.write("amount", Change(incr={"progress": 10**5000}))
    assert store.read("amount") is None


def test_a_job_whose_progress_overflows_completes(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    final = job_with_a_refused_write(overflow_progress, caplog)
    assert final.progress.current == 1e308  # the refused increment was dropped


def test_an_async_job_whose_progress_overflows_completes(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    final = job_with_a_refused_write(overflow_progress, caplog, asynchronous=True)
    assert final.progress.current == 1e308


def test_a_running_job_whose_record_vanished_writes_back_what_it_knows(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    @jobstatus.track
    def job() -> str:
        status = jobstatus.current()
        status.progress.total = 10
        status.update(step="A", nested={"k": [1, 2]})
        for n in range(10):
            if n == 5:
                jobstatus.get(status.job_id).delete()  # an eviction, a restart, an expiry
            status.progress.increment()
        status["after"] = True
        return status.job_id

    with caplog.at_level(logging.WARNING, logger="jobstatus"):
        job_id = job()
    final = jobstatus.get(job_id)
    assert final.is_completed
    assert final.progress.current == 10 and final.progress.total == 10
    assert final["step"] == "A" and final["nested"] == {"k": [1, 2]} and final["after"] is True
    assert final["started_at"] and final["finished_at"] and final["updated_at"]
    assert "" not in final.to_dict()
    assert not caplog.records  # nothing failed: the store just lost the record
