"""Where the workers of the integration tests keep statuses: SQLite, and Redis once it lands."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from ..stores import REDIS_URL, namespace

HAS_REDIS_STORE = importlib.util.find_spec("jobstatus.stores.redis") is not None


def store_url(kind: str, folder: Path) -> str:
    """A fresh store URL that a worker subprocess and the test process share."""
    if kind == "sqlite":
        return f"sqlite:///{folder / 'status.db'}"
    separator = "&" if "?" in REDIS_URL else "?"
    return f"{REDIS_URL}{separator}prefix=jobstatus-test-{namespace()}:"


def stores_for_second_run() -> str:
    """The store of the second broker's run: Redis when its store exists, else SQLite."""
    return "redis" if HAS_REDIS_STORE else "sqlite"


# A module's worker runs twice: statuses in SQLite, then in the second run's store.
STORE_RUNS = [
    pytest.param("sqlite", id="sqlite-store"),
    pytest.param(stores_for_second_run(), id=f"{stores_for_second_run()}-store"),
]
