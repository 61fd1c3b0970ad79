from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

import jobstatus
from jobstatus._cancel import delivery
from jobstatus._config import settings
from jobstatus._group import ancestry
from jobstatus._heartbeat import heartbeat
from jobstatus._writer import store_error_log
from jobstatus.stores import MemoryStore, Store

from .stores import CASES, IN_CI, FakeClock, StoreCase, namespace, require_service

# The same commit draws the same examples on every machine: `dev.py test` and CI run
# this profile. Nothing is read from or written to the example database, whose
# saved failures would make one machine's run differ from another's.
hypothesis_settings.register_profile(
    "deterministic", derandomize=True, deadline=None, database=None, print_blob=True
)
# `dev.py fuzz` explores: a random seed, ten times the examples, the database kept
# (.hypothesis/) so a find replays first on the next run until it is fixed.
hypothesis_settings.register_profile(
    "fuzz", max_examples=1_000, derandomize=False, deadline=None, print_blob=True
)
hypothesis_settings.load_profile("deterministic")

# arq requires redis-py < 6, so `dev.py test` runs its tests in .venv-arq ("arq") and
# every other test in .venv ("main"). Unset (nox sessions, plain pytest): every test.
LANE = os.environ.get("JOBSTATUS_TEST_LANE", "")
ARQ_MODULES = {
    "test_arq.py",
    "test_arq_settings.py",
    "test_killed_workers.py",
    "test_queue_docs.py",
    "test_queue_shutdowns.py",
}  # every module with an arq test; the first two have nothing else
QUEUE_CONTRACT = Path(__file__).parent / "integrations" / "contract"


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    if collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    if LANE == "main" and collection_path.name.startswith("test_arq"):
        return True
    if LANE == "arq" and collection_path.name not in ARQ_MODULES:
        # The queue contract's scenarios run on every queue: arq's runs among them.
        in_queue_contract = collection_path.parent == QUEUE_CONTRACT
        return None if in_queue_contract else True
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if LANE not in ("main", "arq"):
        return
    keep = [
        item for item in items if (item.get_closest_marker("arq") is not None) == (LANE == "arq")
    ]
    dropped = [item for item in items if item not in keep]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under CI=true a test skipped for a missing driver or queue fails: installs
    must give every test what it needs (services fail the same way, in stores.py)."""
    report = yield
    if IN_CI and report.skipped and _missing_import(report.longrepr):
        report.outcome = "failed"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    report = yield
    if IN_CI and report.skipped and _missing_import(report.longrepr):
        report.outcome = "failed"
    return report


def _missing_import(longrepr: object) -> bool:
    # pytest.importorskip's reason: "could not import 'arq': No module named 'arq'".
    return isinstance(longrepr, tuple) and str(longrepr[-1]).startswith(
        ("could not import", "Skipped: could not import")
    )


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
