"""The writer's one mechanism for changes a store refuses for good, and for vanished records.

The stores here are stores of one's own (what a user may write): a MemoryStore
that refuses chosen keys as memcached refuses a value over its item limit, or
one that answers as an older store does. Each built-in store's real refusals
are tested in its own module and in ``tests/contract/test_refusals.py``.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

import jobstatus
from jobstatus import StoreError, WriteRefused
from jobstatus._record import Change
from jobstatus._writer import split_refused
from jobstatus.stores import MemoryStore, Written

from .test_write_once import Faulty


class Refusing(MemoryStore):
    """Refuses every write that sets one of ``refused`` (nothing of it is applied)."""

    def __init__(self, *refused: str) -> None:
        super().__init__()
        self.refused = set(refused)
        self.sent: list[list[str]] = []

    def write(self, job_id: str, change: Change) -> Written:
        self.sent.append(change.written_keys())
        if self.refused & set(change.set):
            raise WriteRefused(f"{sorted(self.refused & set(change.set))} too large")
        return super().write(job_id, change)


def _track(store: MemoryStore, **options: object):  # type: ignore[no-untyped-def]
    jobstatus.configure(store=store, throttle_interval=0, **options)

    @jobstatus.track
    def job() -> str:
        status = jobstatus.current()
        status.progress.total = 4
        status.update(a=1, big="x", b=2, force=True)
        for _ in range(4):
            status.progress.increment()
        return status.job_id

    return job


def test_pieces_own_keys_one_by_one_then_the_lifecycle() -> None:
    change = Change(
        set={"a": 1, "status": "completed", "exception": {"class": "E"}, "b": 2, "updated_at": "T"},
        incr={"progress": 3},
    )
    pieces = split_refused(change)
    assert pieces is not None
    assert [piece.written_keys() for piece in pieces] == [
        ["a"],
        ["b"],
        ["status", "exception", "updated_at", "progress"],
    ]
    lifecycle = split_refused(pieces[-1])
    assert lifecycle is not None
    assert [(piece.set, piece.incr) for piece in lifecycle] == [
        ({"exception": {"class": "E"}}, {}),  # optional keys alone first
        ({"status": "completed", "updated_at": "T"}, {}),  # the transition, kept together
        ({}, {"progress": 3}),  # increments alone, after it: one may overflow
    ]
    for piece in lifecycle:
        assert split_refused(piece) is None  # one piece each: dropped or kept, never split again


def test_a_set_and_an_overflowing_add_of_one_key_split_apart() -> None:
    change = Change(set={"progress": 1e308, "updated_at": "T"}, incr={"progress": 1e308})
    pieces = split_refused(change)
    assert pieces is not None
    assert [(piece.set, piece.incr) for piece in pieces] == [
        ({"progress": 1e308, "updated_at": "T"}, {}),
        ({}, {"progress": 1e308}),
    ]


def test_a_refused_key_is_dropped_and_everything_else_is_written(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = Refusing("big")
    with caplog.at_level(logging.WARNING, logger="jobstatus"):
        job_id = _track(store)()
    final = jobstatus.get(job_id, store=store)
    assert final.is_completed and final["a"] == 1 and final["b"] == 2 and "big" not in final
    assert final.progress.current == 4
    [warning] = [r.getMessage() for r in caplog.records]
    assert "refused 'big' for good, so it was dropped" in warning
    # The refused write, then its pieces in order, then the job's later writes.
    refused_at = store.sent.index(["a", "big", "b", "updated_at"])
    assert store.sent[refused_at + 1 : refused_at + 5] == [["a"], ["big"], ["b"], ["updated_at"]]


def test_on_store_error_raise_raises_after_writing_what_it_could() -> None:
    store = Refusing("big")
    jobstatus.configure(store=store, throttle_interval=0, on_store_error="raise")
    seen: list[str] = []

    @jobstatus.track
    def job() -> str:
        status = jobstatus.current()
        with pytest.raises(WriteRefused, match="'big' of job .* was dropped") as info:
            status.update(a=1, big="x", force=True)
        assert isinstance(info.value.__cause__, WriteRefused)
        seen.append(str(jobstatus.get(status.job_id, store=store).get("a")))
        status["after"] = True
        return status.job_id

    final = jobstatus.get(job(), store=store)
    assert seen == ["1"]  # written before the error was raised
    assert final.is_completed and final["after"] is True and "big" not in final


def test_an_async_job_drops_the_refused_key_and_completes() -> None:
    store = Refusing("big")
    jobstatus.configure(store=store, throttle_interval=0)

    @jobstatus.track
    async def job() -> str:
        status = jobstatus.current()
        await status.aupdate(a=1, big="x", force=True)
        status["b"] = 2  # a sync call from async code: queued, written by the loop's task
        await status.aflush()
        return status.job_id

    final = jobstatus.get(asyncio.run(job()), store=store)
    assert final.is_completed and final["a"] == 1 and final["b"] == 2 and "big" not in final


def test_pieces_that_lose_their_reply_count_once() -> None:
    # A refused change with an increment splits; its pieces carry their own origins, so
    # a piece whose reply is lost is sent again and still counts once.
    store = Refusing("big")
    # Writes: 1 started, 2 refused, 3 'big' (refused), 4 'a', 5 the lifecycle piece with
    # the 5 held increments: its reply is lost, so the final write sends it again first.
    faults = Faulty(store, lost={5})
    jobstatus.configure(store=store, throttle_interval=60)  # held: one write carries it all

    @jobstatus.track
    def job() -> str:
        status = jobstatus.current()
        for _ in range(5):
            status.progress.increment()
        status.update(big="x", a=1, force=True)
        for _ in range(5):
            status.progress.increment()
        return status.job_id

    final = jobstatus.get(job(), store=store)
    assert final.is_completed and final.progress.current == 10 and final["a"] == 1
    assert faults.resent == 1


def test_a_store_raising_a_value_error_refused_the_data_anything_else_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Picky(MemoryStore):
        def write(self, job_id: str, change: Change) -> Written:
            if "odd" in change.set:
                raise ValueError("cannot encode 'odd'")
            if "flaky" in change.set and not getattr(self, "flaked", False):
                self.flaked = True
                raise ConnectionResetError("dropped")
            return super().write(job_id, change)

    store = Picky()
    jobstatus.configure(store=store, throttle_interval=0)

    @jobstatus.track
    def job() -> str:
        status = jobstatus.current()
        status.update(odd=1, even=2, force=True)
        status["flaky"] = "sent again"
        return status.job_id

    with caplog.at_level(logging.WARNING, logger="jobstatus"):
        final = jobstatus.get(job(), store=store)
    assert final.is_completed and final["even"] == 2 and "odd" not in final
    assert final["flaky"] == "sent again"  # kept, and written with the next write
    assert "ValueError" in caplog.text
    with pytest.raises(StoreError, match="ValueError") as info:  # outside a job: raised
        jobstatus.get("x", store=store)["odd"] = 1
    assert isinstance(info.value, WriteRefused)


def test_an_older_store_answering_none_still_works() -> None:
    class Older(MemoryStore):
        def write(self, job_id: str, change: Change) -> None:  # type: ignore[override]
            super().write(job_id, change)

    store = Older()
    jobstatus.configure(store=store, throttle_interval=0)

    @jobstatus.track
    def job() -> str:
        status = jobstatus.current()
        status["a"] = 1
        jobstatus.get(status.job_id, store=store).delete()
        status["b"] = 2  # Written() assumed: not created, so no restore
        return status.job_id

    final = jobstatus.get(job(), store=store)
    assert final.to_dict().keys() == {"b", "status", "finished_at", "updated_at", "history"}


class Older(MemoryStore):
    """A store written before ``Written``: its ``write`` answers None."""

    def write(self, job_id: str, change: Change) -> None:  # type: ignore[override]
        super().write(job_id, change)


def test_cancel_through_an_older_store_answers_true_only_when_the_request_landed() -> None:
    store = Older()
    jobstatus.configure(store=store)
    assert jobstatus.cancel("unknown") is False  # None alone would have read as applied
    assert jobstatus.get("unknown").to_dict() == {}
    done = jobstatus.Job("done", store=store)
    done.started()
    done.finished(None)
    assert jobstatus.cancel("done") is False
    assert "cancel" not in jobstatus.get("done")
    queued = jobstatus.Job("queued", store=store)
    queued.enqueued()
    assert jobstatus.cancel("queued", reason="first") is True
    assert jobstatus.cancel("queued", reason="second") is True  # both land while unfinished
    s = jobstatus.get("queued")
    assert s.cancel_requested and s["cancel"]["reason"] == "second"


def test_acancel_through_an_older_store_answers_false_for_a_finished_job() -> None:
    store = Older()
    jobstatus.configure(store=store)
    done = jobstatus.Job("done", store=store)
    done.started()
    done.finished(None)
    assert asyncio.run(jobstatus.acancel("done")) is False
    queued = jobstatus.Job("queued", store=store)
    queued.enqueued()
    assert asyncio.run(jobstatus.acancel("queued")) is True


def test_a_restore_writes_the_jobs_view_once_without_attempts() -> None:
    store = MemoryStore()
    jobstatus.configure(store=store, throttle_interval=0)
    sent: list[Change] = []
    write = store.write

    def recording(job_id: str, change: Change) -> Written:
        sent.append(change)
        return write(job_id, change)

    store.write = recording  # type: ignore[method-assign]

    @jobstatus.track
    def job() -> str:
        status = jobstatus.current()
        status.update(total=3, step="A")
        jobstatus.get(status.job_id, store=store).delete()
        status.progress.increment()
        return status.job_id

    final = jobstatus.get(job(), store=store)
    restores = [change for change in sent if "started_at" in change.set and "step" in change.set]
    assert len(restores) == 1
    assert "attempts" not in restores[0].set and "" not in restores[0].set
    assert final.is_completed and final["step"] == "A" and final.progress.current == 1
    assert "attempts" not in final  # not known to the job: left out rather than guessed
