"""``jobstatus.cancel`` through dramatiq-abort, with a real Dramatiq worker whose broker
(Redis, then RabbitMQ) has dramatiq-abort's ``Abortable`` with its Redis backend: a
queued message is skipped unrun, a running one is aborted, both recorded ``cancelled``.
Without the package these tests skip (under CI=true they fail: tests/conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

import jobstatus

from ._support import finished, wait_for, wait_until
from .queues import RUNS, DramatiqWorker, _gate

pytestmark = pytest.mark.timeout(180)

pytest.importorskip("dramatiq_abort")
pytest.importorskip("dramatiq")


def _params() -> list[Any]:
    """Each Dramatiq run, with the ``Abortable`` before and after jobstatus's middleware."""
    chosen = []
    for run in RUNS:
        if run.queue.name == "dramatiq":
            marks = run.param().marks
            for place in ("before", "after"):
                chosen.append(pytest.param((run, place), id=f"{run.id}-{place}", marks=marks))
    return chosen


@pytest.fixture(scope="module", params=_params())
def abortable_worker(request: pytest.FixtureRequest) -> Iterator[DramatiqWorker]:
    """A worker of its own (not the shared one) whose broker, and this process's, has
    an ``Abortable``; its log must end free of jobstatus warnings."""
    import dramatiq_tasks

    run, place = request.param
    with run.start({dramatiq_tasks.ABORT_OPTION: place}) as started:
        assert isinstance(started, DramatiqWorker)
        yield started
        started.assert_quiet()


@pytest.fixture
def worker(abortable_worker: DramatiqWorker) -> Iterator[DramatiqWorker]:
    abortable_worker.prepare()
    yield abortable_worker
    abortable_worker.after_test()


def abortable_of(worker: DramatiqWorker) -> Any:
    """The ``Abortable`` of this process's broker for the worker's queue."""
    from dramatiq_abort import Abortable

    return next(m for m in worker.broker.middleware if isinstance(m, Abortable))


def abort_events(worker: DramatiqWorker) -> redis.Redis:
    """The Redis that holds the ``Abortable``'s events, shared with the worker."""
    client: redis.Redis = abortable_of(worker).backend.client
    return client


def event_key(mode: str, message: Any) -> str:
    """dramatiq-abort's key of an abort event (its RedisBackend's default namespace)."""
    return f"dramatiq:aborts:{mode}:{message.message_id}"


def queued_behind_busy_threads(worker: DramatiqWorker) -> tuple[list[str], str, Any]:
    """Every worker thread held at a gate, then a message that opens ``gate``: it waits
    queued until :func:`release` lets the threads go."""
    busy = worker.occupy()
    gate = worker.gate()
    message = worker.send("opens", gate)
    assert jobstatus.get(message).is_queued
    return busy, gate, message


def release(busy: list[str]) -> None:
    for busy_gate in busy:
        _gate.open_gate(busy_gate)


def test_a_cancelled_queued_message_is_skipped_by_abortable_and_never_runs(
    worker: DramatiqWorker,
) -> None:
    busy, gate, message = queued_behind_busy_threads(worker)
    assert jobstatus.cancel(message, reason="not needed")
    events = abort_events(worker)
    assert events.exists(event_key("cancel", message))  # the revoker's AbortMode.CANCEL
    assert not events.exists(event_key("abort", message))
    release(busy)
    s = finished(message)
    assert s.is_cancelled and "finished_at" in s, s.to_dict()
    assert "attempts" not in s and "started_at" not in s
    assert [entry["status"] for entry in s.history] == ["queued", "cancel_requested", "cancelled"]
    if worker.abortable == "before":
        # Abortable polled the event and skipped the message before jobstatus's start
        # hook ran; placed after, the start hook refuses it first.
        assert not events.exists(event_key("cancel", message))
    time.sleep(1)
    assert not _gate.is_open(gate)  # the actor never ran


def running_sleeper(worker: DramatiqWorker) -> tuple[str, Any]:
    """A ``sleeps`` message whose actor has started (its marker counts 1), and the marker.

    ``working`` is written before the actor's first line: an abort in between would
    stop it before it counts its run.
    """
    marker = worker.gate()
    message = worker.send("sleeps", marker, 60.0)
    wait_for(message, lambda s: s.is_working, log=worker.log)
    wait_until(lambda: _gate.count(marker) == 1, "the actor to start")
    return marker, message


def test_a_running_message_without_progress_calls_is_aborted_and_not_retried(
    worker: DramatiqWorker,
) -> None:
    marker, message = running_sleeper(worker)
    started = time.monotonic()
    assert jobstatus.cancel(message, reason="stop")
    s = finished(message, timeout=30)
    assert time.monotonic() - started < 30  # aborted, not run to its end
    assert s.is_cancelled and "finished_at" in s and "exception" not in s, s.to_dict()
    assert s["attempts"] == 1
    assert [entry["status"] for entry in s.history] == [
        "queued",
        "working",
        "cancel_requested",
        "cancelled",
    ]
    time.sleep(2)  # past its retry backoff: a retry would have started by now
    assert _gate.incr(marker) == 2  # the actor ran once
    assert jobstatus.get(message)["attempts"] == 1
    assert "Aborting task" in worker.log.read_text()  # by dramatiq-abort's watcher


@pytest.mark.dramatiq
def test_the_revoker_aborts_only_on_a_broker_with_abortable_that_knows_the_actor() -> None:
    import dramatiq
    from dramatiq.brokers.stub import StubBroker
    from dramatiq_abort import Abortable
    from dramatiq_abort.backends import StubBackend

    from jobstatus.integrations.dramatiq import StatusMiddleware, _revoke

    plain, abortable = StubBroker(), StubBroker()
    events = StubBackend()
    abortable.add_middleware(Abortable(backend=events))
    for broker in (plain, abortable):
        broker.add_middleware(StatusMiddleware())
    dramatiq.actor(lambda: None, actor_name="plain_only", broker=plain)
    dramatiq.actor(lambda: None, actor_name="abortable_one", broker=abortable)
    try:
        _revoke("m-1", {"status": "queued", "name": "plain_only"})
        _revoke("m-2", {"status": "queued", "name": "unknown"})
        _revoke("m-3", {"status": "completed", "name": "abortable_one"})
        assert events.events == {}  # no Abortable, an actor it does not know, finished
        _revoke("m-4", {"status": "queued", "name": "abortable_one"})
        assert set(events.events) == {"cancel:m-4"}  # AbortMode.CANCEL: only if not started
        _revoke("m-5", {"status": "working", "name": "abortable_one"})
        assert set(events.events) == {"cancel:m-4", "cancel:m-5", "abort:m-5"}  # ABORT
    finally:
        plain.close()
        abortable.close()


def test_dramatiq_aborts_own_abort_of_a_running_message_is_cancelled(
    worker: DramatiqWorker,
) -> None:
    import dramatiq_abort

    marker, message = running_sleeper(worker)
    dramatiq_abort.abort(message.message_id, middleware=abortable_of(worker))  # no jobstatus.cancel
    s = finished(message, timeout=30)
    assert s.is_cancelled and "exception" not in s and "cancel" not in s, s.to_dict()
    assert [entry["status"] for entry in s.history] == ["queued", "working", "cancelled"]
    time.sleep(2)  # past its retry backoff
    assert _gate.incr(marker) == 2  # the actor ran once


def test_dramatiq_aborts_own_cancel_of_a_queued_message_is_cancelled(
    worker: DramatiqWorker,
) -> None:
    import dramatiq_abort
    from dramatiq_abort.middleware import AbortMode

    busy, gate, message = queued_behind_busy_threads(worker)
    # No jobstatus.cancel: nothing in the store says the skip to come is a cancel.
    dramatiq_abort.abort(message.message_id, middleware=abortable_of(worker), mode=AbortMode.CANCEL)
    release(busy)
    s = finished(message)
    assert s.is_cancelled and "exception" not in s and "cancel" not in s, s.to_dict()
    # Placed after jobstatus's middleware, Abortable skips it after the start was written.
    expected = (
        ["queued", "cancelled"]
        if worker.abortable == "before"
        else ["queued", "working", "cancelled"]
    )
    assert [entry["status"] for entry in s.history] == expected
    time.sleep(1)
    assert not _gate.is_open(gate)  # the actor never ran
