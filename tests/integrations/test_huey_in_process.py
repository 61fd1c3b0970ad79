"""Huey's immediate mode, in this process: tracking switched on, off and on again."""

from __future__ import annotations

import pytest

import jobstatus

pytest.importorskip("huey")

from huey import MemoryHuey  # noqa: E402

from jobstatus.integrations.huey import track, untrack  # noqa: E402

pytestmark = pytest.mark.huey


def test_tracking_twice_records_each_event_once() -> None:
    huey = MemoryHuey(immediate=True)

    @huey.task()
    def double(x: int) -> int:
        jobstatus.current()["seen"] = x
        return 2 * x

    track(huey)
    track(huey, includes={"status", "exception"})
    assert jobstatus.get(double(1))["attempts"] == 1

    untrack(huey)
    assert not jobstatus.get(double(2)).exists

    track(huey)
    s = jobstatus.get(double(3))
    assert s.is_completed and s["attempts"] == 1 and s["seen"] == 3


def test_a_failing_task_in_immediate_mode_is_failed() -> None:
    huey = MemoryHuey(immediate=True)
    track(huey, includes={"status", "exception"})

    @huey.task()
    def boom() -> None:
        raise ValueError("bad row")

    result = boom()
    s = jobstatus.get(result)
    assert s.is_failed and s["exception"] == {"class": "ValueError", "message": "bad row"}
