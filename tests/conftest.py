from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import jobstatus
from jobstatus._cancel import delivery
from jobstatus._config import settings
from jobstatus._group import ancestry
from jobstatus._heartbeat import heartbeat
from jobstatus._writer import store_error_log
from jobstatus.stores import MemoryStore, Store

from .stores import CASES, FakeClock, StoreCase, namespace, require_service


@pytest.fixture(autouse=True)
def _fresh_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with default options and its own default store file."""
    monkeypatch.setenv("JOBSTATUS_STORE", f"sqlite:///{tmp_path / 'default.db'}")
    settings.reset()
    store_error_log.reset()
    heartbeat.reset()
    delivery.reset()
    ancestry.forget()
    MemoryStore.shared().clear()
    yield
    settings.reset()


@pytest.fixture(scope="session", autouse=True)
def _stop_redis_cluster() -> Iterator[None]:
    """Stop the Redis Cluster the redis_cluster cases start on first use, if any,
    and delete what workers left under the redis cases' prefixes."""
    yield
    from . import _redis_servers

    _redis_servers.scrub_case_prefixes()
    _redis_servers.stop_shared_cluster()


@pytest.fixture(scope="session", autouse=True)
def _drop_test_namespaces() -> Iterator[None]:
    """Drop the PostgreSQL tables and memcached keys the store cases made."""
    yield
    from .stores import run_cleanups

    run_cleanups()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=[case.param() for case in CASES])
def case(request: pytest.FixtureRequest) -> StoreCase:
    chosen: StoreCase = request.param
    if chosen.service is not None:
        require_service(*chosen.service)
    return chosen


@pytest.fixture
def ns() -> str:
    return namespace()


@pytest.fixture
def store(case: StoreCase, tmp_path: Path, clock: FakeClock, ns: str) -> Iterator[Store]:
    """A fresh store of every kind in the table, configured as the default."""
    built = case.make(tmp_path, clock, ns)
    jobstatus.configure(store=built)
    yield built
    built.close()
