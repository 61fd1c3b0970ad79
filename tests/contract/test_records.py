"""Writing and reading records: the part every store must get exactly right."""

from __future__ import annotations

import time

import pytest

import jobstatus
from jobstatus._record import Change
from jobstatus.stores import Store

from ..stores import FakeClock, StoreCase


def write(
    store: Store,
    job_id: str,
    ttl: float = 600,
    finished_ttl: float | None = None,
    incr: dict | None = None,
    **fields: object,
) -> None:
    store.write(
        job_id,
        Change(
            set=dict(fields),
            incr=incr or {},
            ttl=ttl,
            finished_ttl=ttl if finished_ttl is None else finished_ttl,
        ),
    )


def test_unknown_id_reads_as_unknown_not_queued(store: Store) -> None:
    s = jobstatus.get("never-written")
    assert s.exists is False
    assert s.status is None
    assert not (s.is_queued or s.is_working or s.is_finished)
    assert s.to_dict() == {}
    assert s.to_json() == "{}"
    assert s.progress.current == 0
    assert s.progress.total is None
    assert s.progress.ratio is None
    assert s.progress.eta is None


def test_every_json_type_round_trips_exactly(store: Store) -> None:
    value = {
        "s": 'héllo ✓ "quoted"',
        "i": 12345678901234,
        "f": 0.1,
        "neg": -2.5,
        "t": True,
        "n": None,
        "l": [1, "two", [3.5, None], {"k": False}],
        "d": {"nested": {"deeper": [1, 2]}, "empty": {}},
        "empty_list": [],
    }
    write(store, "types", **value)
    record = jobstatus.get("types").to_dict()
    for key, expected in value.items():
        assert record[key] == expected
        assert type(record[key]) is type(expected)


def test_writes_merge_keys_instead_of_replacing(store: Store) -> None:
    write(store, "merge", a=1, b=2)
    write(store, "merge", b=3, c=4)
    assert jobstatus.get("merge").to_dict() == {"a": 1, "b": 3, "c": 4}


def test_a_dict_value_replaces_the_old_one_whole(store: Store) -> None:
    write(store, "dict", meta={"x": 1, "y": 2})
    write(store, "dict", meta={"z": 3})
    assert jobstatus.get("dict")["meta"] == {"z": 3}


def test_increments_add_up_and_keep_ints_int(store: Store) -> None:
    write(store, "incr", incr={"progress": 1})
    write(store, "incr", incr={"progress": 2})
    write(store, "incr", incr={"progress": 3, "bytes": 10})
    record = jobstatus.get("incr").to_dict()
    assert record["progress"] == 6 and isinstance(record["progress"], int)
    assert record["bytes"] == 10


def test_float_increments(store: Store) -> None:
    write(store, "fincr", incr={"progress": 1})
    write(store, "fincr", incr={"progress": 0.5})
    assert jobstatus.get("fincr")["progress"] == pytest.approx(1.5)


def test_set_and_increment_in_one_write(store: Store) -> None:
    write(store, "mixed", step="A", total=10, incr={"progress": 4})
    write(store, "mixed", step="B", incr={"progress": 1})
    assert jobstatus.get("mixed").to_dict() == {"step": "B", "total": 10, "progress": 5}


def test_read_many_keeps_order_and_reports_missing(store: Store) -> None:
    for n in range(5):
        write(store, f"many-{n}", n=n)
    ids = ["many-3", "absent", "many-0", "many-4"]
    records = store.read_many(ids)
    assert records == [{"n": 3}, None, {"n": 0}, {"n": 4}]
    assert store.read_many([]) == []


def test_delete(store: Store) -> None:
    write(store, "gone", a=1)
    jobstatus.get("gone").delete()
    assert jobstatus.get("gone").exists is False
    jobstatus.get("gone").delete()  # deleting twice is fine


def test_ids_are_kept_apart(store: Store) -> None:
    ids = ["a b", "a_b", "a:b", "a/b", "A", "a", "ünï", "x" * 512, "x" * 511, "{tag}", "*", "%s"]
    for n, job_id in enumerate(ids):
        write(store, job_id, n=n)
    for n, job_id in enumerate(ids):
        assert jobstatus.get(job_id)["n"] == n


def _expire(case: StoreCase, clock: FakeClock, seconds: float) -> None:
    if case.uses_clock:
        clock.advance(seconds)
    else:
        time.sleep(seconds)


def test_records_expire_after_their_last_write(
    store: Store, case: StoreCase, clock: FakeClock
) -> None:
    # Stores with a server-side clock may count whole seconds: leave them room.
    # (memcached's clock ticks once a second and may run behind under load).
    ttl = 30 if case.uses_clock else 5
    write(store, "short", ttl=ttl, a=1)
    _expire(case, clock, ttl * 0.3)
    write(store, "short", ttl=ttl, b=2)  # refreshes the expiry
    _expire(case, clock, ttl * 0.3)
    assert jobstatus.get("short").to_dict() == {"a": 1, "b": 2}
    _expire(case, clock, ttl + 1.5)
    assert jobstatus.get("short").exists is False
    assert store.read_many(["short"]) == [None]
    write(store, "short", ttl=ttl, c=3)  # an expired record starts afresh
    assert jobstatus.get("short").to_dict() == {"c": 3}


def test_finished_records_use_finished_expiry(
    store: Store, case: StoreCase, clock: FakeClock
) -> None:
    short = 30 if case.uses_clock else 1
    write(store, "done", ttl=1000, finished_ttl=short, status="working")
    write(store, "running", ttl=1000, finished_ttl=short, status="working")
    write(store, "done", ttl=1000, finished_ttl=short, status="completed")
    _expire(case, clock, short + 1.5)
    assert jobstatus.get("done").exists is False
    assert jobstatus.get("running").is_working


def test_writing_through_a_snapshot(store: Store) -> None:
    s = jobstatus.get("outside")
    s["step"] = "A"
    s.update(total=10, progress=2)
    s.progress.increment(3)
    assert s["step"] == "A" and s.progress.current == 5
    fresh = jobstatus.get("outside")
    assert fresh["step"] == "A"
    assert fresh.progress.current == 5 and fresh.progress.total == 10
    assert fresh.progress.ratio == 0.5 and fresh.progress.percent == 50
    assert "updated_at" in fresh


def test_refresh_returns_a_new_snapshot(store: Store) -> None:
    write(store, "snap", status="working")
    first = jobstatus.get("snap")
    write(store, "snap", status="completed")
    second = first.refresh()
    assert first.status == "working"
    assert second.status == "completed"


def test_snapshot_serializes_only_its_own_record(store: Store) -> None:
    write(store, "mine", secret="A")
    write(store, "other", secret="B")
    s = jobstatus.get("mine")
    assert s.to_json() == '{"secret":"A"}'
    assert "B" not in repr(s) and "B" not in s.to_json()
