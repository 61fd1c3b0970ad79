"""The stores' JSON text: ``_record.dumps`` and ``loads`` give what ``json`` gives, on
the fast path (the C encoder built once, the C scanner called straight) and off it."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings

from jobstatus import _record
from jobstatus._record import dumps, loads

from ._strategies import examples, json_values


def _compact(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


@settings(max_examples=examples(200))
@given(json_values)
def test_dumps_and_loads_agree_with_json(value: object) -> None:
    text = dumps(value)
    assert text == _compact(value)
    assert loads(text) == json.loads(text)
    assert loads(text.encode("utf-8")) == json.loads(text)


@pytest.mark.parametrize("text", [" [1] ", "[1]\n", '\t{"a": 2}', "NaN", "1e999"])
def test_loads_takes_what_json_loads_takes(text: str) -> None:
    got, want = loads(text), json.loads(text)
    assert got == want or (got != got and want != want)  # NaN is not equal to itself


@pytest.mark.parametrize("text", ["", "[1]x", "{", "[1,]", "'a'"])
def test_loads_refuses_what_json_loads_refuses_with_its_message(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as ours:
        loads(text)
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads(text)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {"a": object()}, {(1,): 1}])
def test_dumps_refuses_what_json_refuses(value: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        _compact(value)
    with pytest.raises((TypeError, ValueError)):
        dumps(value)


def test_dumps_without_the_c_encoder_gives_the_same_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    value = {"é": [1, 2.5, None, True, "\u2028"], "n": {"x": -0.0}}
    fast = dumps(value)
    monkeypatch.setattr(_record, "_encode_chunks", None)
    assert dumps(value) == fast == _compact(value)
