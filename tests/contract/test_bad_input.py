"""Bad input is refused before any I/O, naming what was wrong, and nothing is written."""

from __future__ import annotations

import datetime
import math

import pytest

import jobstatus
from jobstatus import Job
from jobstatus._job import JobSpec
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
        # What os.listdir gives for a file name that is not UTF-8: no store can encode it.
        ({"file": "report-\udcff.csv"}, ValueError, "'file'.*surrogate"),
        ({"files": ["ok", {"name": "\ud800"}]}, ValueError, "'files'.*surrogate"),
        ({"by_name": {"ok": 1, "\udc80": 2}}, ValueError, "'by_name'.*dict key.*surrogate"),
        ({"\udcff-key": 1}, ValueError, "surrogate"),
        ({"huge": 10**5000}, ValueError, "'huge'.*4,200 digits"),
        ({"progress": 2**1100}, ValueError, "progress.*float's range"),
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


def test_lone_surrogates_are_refused_the_same_everywhere(store: Store) -> None:
    job = Job("surrogates")
    for fields in ({"name": "a\udcffb"}, {"nested": [[{"k": "\ud83d"}]]}, {"k\udfff": 1}):
        with pytest.raises(ValueError, match="surrogate") as info:
            job.status.update(fields, force=True)
        assert not isinstance(info.value, UnicodeError)  # ours, naming the key; not a driver's
        with pytest.raises(ValueError, match="surrogate"):
            jobstatus.get("surrogates").update(fields)
    assert jobstatus.get("surrogates").exists is False
    # A task's or a group's name: the same ValueError naming the key, before any I/O.
    for make in (
        lambda: jobstatus.track(name="report-\udcff"),
        lambda: Job("surrogates", name="report-\udcff"),
        lambda: jobstatus.group(name="g-\udcff", group_id="surrogates"),
    ):
        with pytest.raises(ValueError, match="'name'.*surrogate") as info:
            make()
        assert not isinstance(info.value, (UnicodeError, jobstatus.StoreError))
    assert jobstatus.get("surrogates").exists is False
    jobstatus.get("surrogates")["fine"] = "a\U0001f600b"  # a real pair of them is one character
    assert jobstatus.get("surrogates")["fine"] == "a\U0001f600b"


def test_a_queue_task_whose_name_holds_a_lone_surrogate_runs_unnamed(store: Store) -> None:
    spec = JobSpec().named("report-\udcff")
    assert spec.name is None
    job = spec.job("unnamed-task")
    assert job.started()
    job.finished()
    final = jobstatus.get("unnamed-task")
    assert final.is_completed and final.get("name") is None


def test_a_job_failing_on_an_undecodable_file_name_is_recorded_failed(store: Store) -> None:
    jobstatus.configure(includes={"status", "exception", "serialized_job"})
    name = "/no/such/dir/report-\udcff.csv"  # as os.listdir gives it
    ids: list[str] = []

    @jobstatus.track
    def job(path: str) -> str:
        ids.append(jobstatus.current().job_id)
        with open(path) as file:
            return file.read()

    with pytest.raises(FileNotFoundError):
        job(name)
    final = jobstatus.get(ids[0])
    assert final.is_failed
    assert "report-\\udcff.csv" in final["exception"]["message"]  # the surrogate, escaped
    assert final.to_json()


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
