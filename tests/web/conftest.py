"""Fixtures of the web tests."""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

import jobstatus
from jobstatus.stores import MemoryStore

from . import _mounts
from ._support import seed


def _render(store: Any) -> tuple[bytes, str]:
    """What ``jobstatus.metrics.render`` answers: Prometheus text of the store's counts."""
    counts = jobstatus.counts(store=store)
    lines = ["# TYPE jobstatus_jobs gauge"]
    lines += [f'jobstatus_jobs{{status="{state}"}} {count}' for state, count in counts.items()]
    return ("\n".join(lines) + "\n").encode(), "text/plain; version=0.0.4; charset=utf-8"


@pytest.fixture
def fake_metrics(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``jobstatus.metrics``: the real module once it exists, else a stand-in with its
    ``render(store) -> (body, media type)`` (the interface ``GET /metrics`` serves)."""
    try:
        module = importlib.import_module("jobstatus.metrics")
    except ImportError:
        module = types.ModuleType("jobstatus.metrics")
        module.render = _render  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "jobstatus.metrics", module)
    yield module


@pytest.fixture(
    params=[
        pytest.param(_mounts.starlette, id="starlette"),
        pytest.param(_mounts.django, marks=pytest.mark.django, id="django"),
        pytest.param(_mounts.flask, id="flask"),
    ]
)
def serve(request: pytest.FixtureRequest) -> Iterator[_mounts.Mounts]:
    """``serve(**options)`` mounts the endpoint under /status on a seeded memory store,
    with each framework in turn."""
    store = MemoryStore()
    seed(store)
    mounts = _mounts.Mounts(request.param, store)
    yield mounts
    mounts.close()
