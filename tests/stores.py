"""The table of stores the contract suite runs against.

Each case builds a fresh, empty store. Network stores join by adding a case;
the contract suite then runs on them unchanged. Cases whose service is not
reachable are skipped, except under CI=true, where they fail the run.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from jobstatus._record import Change
from jobstatus.stores import CacheStore, MemoryStore, SQLiteStore, Store, Written

IN_CI = os.environ.get("CI", "").lower() == "true"

REDIS_URL = os.environ.get("JOBSTATUS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get(
    "JOBSTATUS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
MEMCACHED_URL = os.environ.get("JOBSTATUS_TEST_MEMCACHED_URL", "memcached://127.0.0.1:11211")


class FakeClock:
    """An injectable clock (epoch seconds) that tests move forward by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def reachable(url: str, default_port: int) -> bool:
    """Whether something listens at the URL's first host:port."""
    parts = urlsplit(url.split(",")[0])
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, url: str, default_port: int) -> None:
    """Skip when the service is down, but fail under CI=true."""
    if reachable(url, default_port):
        return
    message = f"{name} is not reachable at {url}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: services must run)")
    pytest.skip(message)


@dataclass
class StoreCase:
    """One store of the contract suite.

    Attributes:
        make: builds a fresh store from a temp folder, a fake clock and a unique
            namespace (key prefix or table suffix) so tests never share records.
        url: the store's URL for other processes, or None (memory://).
        uses_clock: expiry follows the injected clock; else tests wait for real.
        atomic: merges are atomic across processes.
        lists: supports ``recent()`` (the Listing capability).
        pushes: its subscriptions are woken by the store (Push).
        purges: ``purge()`` deletes expired records now (Purge).
        migrates: ``migrate()`` creates its tables ahead of time (Migration).
        prefixed: its keys start with a ``prefix`` option.
        source: what ``resolve_store`` builds the store from with options (a URL
            or a ready client); None for the URL, or for a store taking no
            options when it has none (memory://).
        guards: applies the whole Change (guards, removals, history events, the
            group roll-up): cancel, groups and history work on it.
        searches: counts by status and searches by name and id from its indexes.
    """

    name: str
    make: Callable[[Path, FakeClock, str], Store]
    url: Callable[[Path, str], str | None] = lambda tmp, ns: None
    uses_clock: bool = True
    atomic: bool = True
    lists: bool = True
    pushes: bool = False
    purges: bool = False
    migrates: bool = False
    prefixed: bool = False
    source: Callable[[Path, str], object] | None = None
    guards: bool = True
    searches: bool = True
    marks: list[pytest.MarkDecorator] = field(default_factory=list)
    service: tuple[str, str, int] | None = None

    def param(self) -> object:
        return pytest.param(self, id=self.name, marks=self.marks)

    def source_of(self, tmp: Path, ns: str) -> object:
        """A URL or a client to build this store from with options; None if it takes none."""
        return self.source(tmp, ns) if self.source is not None else self.url(tmp, ns)


def _simple_cache() -> Any:
    from cachelib import SimpleCache

    return SimpleCache()


def _cache(tmp: Path, clock: FakeClock, ns: str) -> Store:
    return CacheStore(_simple_cache(), prefix=f"t{ns}:")


def _django_cache(tmp: Path, clock: FakeClock, ns: str) -> Store:
    import warnings

    from jobstatus.integrations.django.stores import DjangoCacheStore

    from .django_project.harness import ensure_django

    ensure_django()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LocMemCache is per process: known here
        return DjangoCacheStore("default", prefix=f"t{ns}:")


def _django_db(tmp: Path, clock: FakeClock, ns: str) -> Store:
    from .django_project.harness import ensure_database

    ensure_database()  # before importing the model: it needs Django set up
    from jobstatus.integrations.django.models import JobStatusRecord
    from jobstatus.integrations.django.stores import DjangoDatabaseStore

    JobStatusRecord.objects.all().delete()  # one table for the session: start empty
    return DjangoDatabaseStore("default", clock=clock)


CASES: list[StoreCase] = [
    StoreCase(
        "memory",
        lambda tmp, clock, ns: MemoryStore(clock=clock),
        pushes=True,
        marks=[pytest.mark.memory],
    ),
    StoreCase(
        "sqlite",
        lambda tmp, clock, ns: SQLiteStore(tmp / "status.db", clock=clock),
        url=lambda tmp, ns: f"sqlite:///{tmp / 'status.db'}",
        purges=True,
        marks=[pytest.mark.sqlite],
    ),
    StoreCase(
        "cache",
        _cache,
        uses_clock=False,
        atomic=False,
        lists=False,
        prefixed=True,
        source=lambda tmp, ns: _simple_cache(),
        marks=[pytest.mark.cache],
    ),
    StoreCase(
        "redis",
        lambda tmp, clock, ns: _redis_servers().redis_case_store(REDIS_URL, ns),
        url=lambda tmp, ns: f"{REDIS_URL}?prefix=t{ns}:",
        uses_clock=False,
        pushes=True,
        prefixed=True,
        marks=[pytest.mark.redis],
        service=("Redis", REDIS_URL, 6379),
    ),
    StoreCase(
        "redis_cluster",
        lambda tmp, clock, ns: _redis_servers().cluster_case_store(ns),
        url=lambda tmp, ns: f"{_redis_servers().cluster_url()}?prefix=t{ns}:",
        uses_clock=False,
        pushes=True,
        prefixed=True,
        marks=[pytest.mark.redis_cluster],
    ),
    StoreCase(
        "postgres",
        lambda tmp, clock, ns: _postgres(ns, clock),
        url=lambda tmp, ns: f"{POSTGRES_URL}?table=jobstatus_t{ns}",
        pushes=True,
        purges=True,
        migrates=True,
        marks=[pytest.mark.postgres],
        service=("PostgreSQL", POSTGRES_URL, 5432),
    ),
    StoreCase(
        "memcached",
        lambda tmp, clock, ns: _memcached(ns),
        url=lambda tmp, ns: f"{MEMCACHED_URL}?prefix=t{ns}:",
        uses_clock=False,
        lists=False,
        prefixed=True,
        marks=[pytest.mark.memcached],
        service=("memcached", MEMCACHED_URL, 11211),
    ),
    StoreCase(
        "django_cache",
        _django_cache,
        uses_clock=False,
        atomic=False,
        lists=False,
        prefixed=True,
        source=lambda tmp, ns: "django-cache://default",
        marks=[pytest.mark.django],
    ),
    StoreCase(
        "django_db",
        _django_db,
        purges=True,
        source=lambda tmp, ns: "django-db://default",
        marks=[pytest.mark.django, pytest.mark.postgres],
        service=("PostgreSQL", POSTGRES_URL, 5432),
    ),
]


# Run at the end of the session: drop the tables and delete the keys tests made.
CLEANUPS: list[Callable[[], None]] = []


def _postgres(ns: str, clock: FakeClock) -> Store:
    from jobstatus.stores.postgres import PostgresStore

    table = f"jobstatus_t{ns}"

    def drop() -> None:
        dropper = PostgresStore(POSTGRES_URL, table=table)
        try:
            dropper.drop()
        finally:
            dropper.close()

    CLEANUPS.append(drop)
    return PostgresStore(POSTGRES_URL, table=table, clock=clock)


def _memcached(ns: str) -> Store:
    from jobstatus.stores.memcached import MemcachedStore

    written: set[str] = set()

    class TrackedMemcachedStore(MemcachedStore):
        """Remembers the ids it wrote, so the session can delete them."""

        def write(self, job_id: str, change: Change) -> Written:
            written.add(job_id)
            return super().write(job_id, change)

    store = TrackedMemcachedStore.from_url(f"{MEMCACHED_URL}?prefix=t{ns}:")

    def delete_written() -> None:
        try:
            for job_id in written:
                store.delete(job_id)
        finally:
            store.close()

    CLEANUPS.append(delete_written)
    return store


def run_cleanups() -> None:
    """Drop every table and delete every key the cases made (best effort)."""
    while CLEANUPS:
        with contextlib.suppress(Exception):  # a service that went away has nothing to clean
            CLEANUPS.pop()()


def _redis_servers():  # type: ignore[no-untyped-def]
    from . import _redis_servers  # starts servers only when a Redis case runs

    return _redis_servers


def namespace() -> str:
    return uuid.uuid4().hex[:12]
