"""Fixtures of the web tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jobstatus.stores import MemoryStore

from . import _mounts
from ._support import seed


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
