"""Bad input is refused before any I/O, naming what was wrong, and nothing is written."""

from __future__ import annotations

import datetime
import math

import pytest

import jobstatus
from jobstatus import Job
from jobstatus.stores import Store


@pytest.mark.parametrize(
    ("fields", "error", "names"),
    [
        ({"when": datetime.date(2026, 1, 1)}, TypeError, "when"),
        ({"blob": b"bytes"}, TypeError, "blob"),
        ({"items": {1, 2}}, TypeError, "items"),
        ({"ratio": math.nan}, ValueError, "ratio"),
        ({"big": math.inf}, ValueError, "big"),
        ({"deep": [1, [2, {"x": -math.inf}]]}, ValueError, "deep"),
        ({"map": {1: "int key"}}, TypeError, "map"),
        ({"obj": object()}, TypeError, "obj"),
        ({"status": "done"}, ValueError, "status"),
        ({"total": -1}, ValueError, "total"),
        ({"progress": -0.5}, ValueError, "progress"),
        ({"total": "ten"}, TypeError, "total"),
        ({"progress": True}, TypeError, "progress"),
        ({"attempts": 1.5}, ValueError, "attempts"),
    ],
)
def test_bad_values_are_refused_and_nothing_is_written(
    store: Store, fields: dict, error: type[Exception], names: str
) -> None:
    s = jobstatus.get("bad")
    with pytest.raises(error, match=names):
        s.update({"fine": 1, **fields})
    assert jobstatus.get("bad").exists is False
    job = Job("bad-in-job")
    with pytest.raises(error, match=names):
        job.status.update(fields, force=True)
    assert jobstatus.get("bad-in-job").exists is False


def test_non_str_keys_are_refused(store: Store) -> None:
    with pytest.raises(TypeError, match="keys must be str"):
        jobstatus.get("k").update({1: "one"})  # type: ignore[dict-item]
    assert jobstatus.get("k").exists is False


def test_deep_nesting_is_refused(store: Store) -> None:
    value: list = []
    for _ in range(100):
        value = [value]
    with pytest.raises(ValueError, match="nested"):
        jobstatus.get("deep")["v"] = value


def test_bad_increments(store: Store) -> None:
    job = Job("inc")
    with pytest.raises(TypeError, match="by"):
        job.status.progress.increment("1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="by"):
        job.status.progress.increment(math.nan)
    assert jobstatus.get("inc").exists is False


@pytest.mark.parametrize(
    ("job_id", "error", "message"),
    [
        ("", ValueError, "empty"),
        ("x" * 513, ValueError, "513"),
        ("a\nb", ValueError, "control"),
        ("a\x00b", ValueError, "control"),
        ("tab\there", ValueError, "control"),
        ("\x7f", ValueError, "control"),
        ("\ud800", ValueError, "surrogate"),
        (b"bytes", TypeError, "str"),
        (42, TypeError, "str"),
        (None, TypeError, "str"),
    ],
)
def test_bad_ids_are_refused_before_any_io(
    store: Store, job_id: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        jobstatus.get(job_id)
    with pytest.raises(error, match=message):
        Job(job_id)  # type: ignore[arg-type]
    with pytest.raises(error, match=message):
        jobstatus.Batch(["ok", job_id])


def test_ids_at_the_limits_are_fine(store: Store) -> None:
    for job_id in ("x" * 512, "a b c", "ünïcödé ✓", "日本語", "a/b:c{d}"):
        jobstatus.get(job_id)["ok"] = True
        assert jobstatus.get(job_id)["ok"] is True
