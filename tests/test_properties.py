"""Property-based tests: whatever ids, keys, values and URLs users send, each either
round-trips exactly or is refused with a clear error, and never touches another record."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jobstatus
from jobstatus import ConfigurationError
from jobstatus._record import validate_job_id
from jobstatus.stores import Store
from jobstatus.stores._keys import safe_cache_key

from ._strategies import examples, ids, json_values, user_keys

SETTINGS = settings(
    max_examples=examples(60), suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _valid(job_id: object) -> bool:
    try:
        validate_job_id(job_id)
    except (TypeError, ValueError):
        return False
    return True


@SETTINGS
@given(job_id=ids)
def test_any_id_round_trips_or_is_refused_before_io(store: Store, job_id: object) -> None:
    if not _valid(job_id):
        with pytest.raises((TypeError, ValueError)):
            jobstatus.get(job_id)
        return
    jobstatus.get("neighbour")["mine"] = "untouched"
    jobstatus.get(job_id)["value"] = job_id
    assert jobstatus.get(job_id)["value"] == job_id
    if job_id != "neighbour":
        assert jobstatus.get("neighbour").to_dict().get("value") is None
    jobstatus.get(job_id).delete()


@SETTINGS
@given(data=st.dictionaries(user_keys, json_values, min_size=1, max_size=5))
def test_any_json_data_round_trips_exactly(store: Store, data: dict) -> None:
    jobstatus.get("data").delete()
    jobstatus.get("data").update(data)
    record = jobstatus.get("data").to_dict()
    for key, value in data.items():
        assert record[key] == value


@SETTINGS
@given(
    bad=st.sampled_from([math.nan, math.inf, -math.inf, b"x", {1, 2}, object(), 1j]),
    depth=st.integers(0, 3),
)
def test_non_json_values_are_refused_and_nothing_is_written(
    store: Store, bad: object, depth: int
) -> None:
    value: object = bad
    for _ in range(depth):
        value = [value]
    with pytest.raises((TypeError, ValueError), match="'v'"):
        jobstatus.get("refused").update(ok=1, v=value)
    assert jobstatus.get("refused").exists is False


def test_nesting_up_to_32_levels_round_trips_and_deeper_is_refused(store: Store) -> None:
    def nested(levels: int) -> object:
        value: object = "leaf"
        for level in range(levels):
            value = [value] if level % 2 else {"k": value}
        return value

    jobstatus.get("deep").update(v=nested(32))
    assert jobstatus.get("deep")["v"] == nested(32)
    with pytest.raises(ValueError, match="'w' is nested deeper than 32 levels"):
        jobstatus.get("deep").update(w=nested(33))
    assert "w" not in jobstatus.get("deep")


@settings(max_examples=examples(300))
@given(first=st.text(min_size=1, max_size=300), second=st.text(min_size=1, max_size=300))
def test_cache_keys_never_collide_and_stay_memcached_safe(first: str, second: str) -> None:
    key_a, key_b = safe_cache_key("js:", first), safe_cache_key("js:", second)
    assert (key_a == key_b) == (first == second)
    for key in (key_a, key_b):
        assert len(key.encode()) <= 250
        assert all(33 <= ord(char) <= 126 for char in key)


@settings(max_examples=examples(200))
@given(url=st.text(max_size=80) | st.from_regex(r"(memory|sqlite|bogus|redis\+x)://[^\s]{0,30}"))
def test_any_store_url_builds_a_store_or_says_why(url: str) -> None:
    try:
        store = jobstatus.store_from_url(url)
    except ConfigurationError as exc:
        assert str(exc)
    else:
        assert isinstance(store, Store)
