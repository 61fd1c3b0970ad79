"""The event stream's rules, without I/O: what each record sends, and when a stream ends.

The Starlette app and the Django and Flask adapters all drive this one
``EventStream``; the HTTP tests (test_every_framework, test_app,
test_adapters) check that they send what it decides. A hand-turned clock
makes the keep-alive rule exact.
"""

from __future__ import annotations

from typing import Any

import pytest

from jobstatus.web.core import ApiError, WebOptions
from jobstatus.web.stream import SSE_KEEPALIVE, EventStream, StreamSlots

from ._support import events

OPTIONS = WebOptions(keepalive=15.0, private=frozenset({"token"}))


def record(status: str, at: str, **fields: Any) -> dict[str, Any]:
    return {"status": status, "updated_at": at, **fields}


T1, T2, T3 = (f"2026-12-01T10:00:0{second}.000000Z" for second in (1, 2, 3))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def one_job(resume_from: str | None = None, clock: Clock | None = None) -> EventStream:
    return EventStream(
        ["j"], OPTIONS, one_job=True, resume_from=resume_from, clock=clock or Clock()
    )


def test_the_first_record_then_only_newer_ones_each_with_its_id() -> None:
    stream = one_job()
    first = stream.event("j", record("working", T2, progress=1, token="secret"))
    assert first is not None and first.startswith(f"id: {T2}\n")
    computed = {"job_id": "j", "name": None, "percent": None, "eta": None}
    assert events(first) == [
        {"status": "working", "updated_at": T2, "progress": 1, **computed, "_id": T2}
    ]
    assert stream.event("j", record("working", T2, progress=1, token="secret")) is None  # repeat
    assert stream.event("j", record("working", T1, progress=0)) is None  # older
    assert events(stream.event("j", record("working", T3, progress=2)) or "")[0]["progress"] == 2
    assert not stream.over


def test_a_job_leaves_after_its_finished_state_and_the_stream_is_over() -> None:
    stream = one_job()
    stream.event("j", record("working", T1))
    assert events(stream.event("j", record("completed", T2)) or "")[0]["status"] == "completed"
    assert stream.over and stream.watched == [] and not stream.watches("j")
    assert stream.event("j", record("completed", T3)) is None


def test_a_job_that_disappears_or_turns_forbidden_leaves() -> None:
    stream = EventStream(["a", "b"], OPTIONS, one_job=False, clock=Clock())
    assert stream.event("a", None) is None
    assert stream.watched == ["b"] and not stream.over
    text = stream.event("b", record("queued", T1))
    assert text is not None and not text.startswith("id:")  # several jobs: no event ids
    computed = {"job_id": "b", "name": None, "percent": None, "eta": None}
    assert events(text) == [{"status": "queued", "updated_at": T1, **computed}]
    stream.event("b", None)
    assert stream.over


def test_a_resuming_client_is_not_sent_the_record_it_has() -> None:
    stream = one_job(resume_from=T1)
    assert stream.event("j", record("working", T1)) is None
    assert events(stream.event("j", record("completed", T2)) or "")[0]["status"] == "completed"
    assert stream.over


@pytest.mark.parametrize(
    ("resume_from", "final", "over"),
    [
        (T2, record("completed", T2), True),  # the final event's own id
        (T3, record("failed", T2), True),  # an odd client's later id
        (T1, record("completed", T2), False),  # it missed the final event: send it
        ("not a time", record("completed", T2), False),
        (T2, record("working", T2), False),  # not finished: resume the stream
        (None, record("completed", T2), False),
        (T2, {"status": "completed"}, False),  # no id to compare with
    ],
)
def test_resumed_after_the_end_is_a_204(
    resume_from: str | None, final: dict[str, Any], over: bool
) -> None:
    assert one_job(resume_from=resume_from).resumed_after_end(final) is over


def test_a_keep_alive_after_keepalive_seconds_with_nothing_sent() -> None:
    clock = Clock()
    stream = one_job(clock=clock)
    stream.event("j", record("working", T1))
    clock.now += 14.0
    assert stream.keepalive() is None and stream.quiet_time() == 1.0
    clock.now += 1.0
    assert stream.keepalive() == SSE_KEEPALIVE and stream.quiet_time() == 15.0
    clock.now += 10.0
    stream.event("j", record("working", T2))  # an event counts as something sent
    clock.now += 10.0
    assert stream.keepalive() is None and stream.quiet_time() == 5.0


def test_stream_slots_are_bounded_and_each_comes_back_once() -> None:
    slots = StreamSlots(2)
    first, second = slots.take(), slots.take()
    with pytest.raises(ApiError) as refused:
        slots.take()
    assert refused.value.status == 503 and refused.value.headers == {"Retry-After": "5"}
    first()
    first()  # a second release does not free another stream's slot
    assert slots.open == 1
    slots.take()
    second()
    assert slots.open == 1
