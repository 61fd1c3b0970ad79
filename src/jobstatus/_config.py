"""Options, their defaults, and ``configure()``.

The global settings are read when a job starts; per-job options (from
``track(...)`` or an integration) override them for that job only.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

from ._errors import ConfigurationError
from .stores import resolve_store
from .stores._registry import close_shared_stores, shared_store
from .stores.base import Store
from .stores.memory import MemoryStore

logger = logging.getLogger("jobstatus")

INCLUDES: Final = frozenset({"status", "serialized_job", "exception"})
ON_STORE_ERROR: Final = ("warn", "raise")
STORE_ENV: Final = "JOBSTATUS_STORE"
MAX_HISTORY: Final = 10_000


@dataclass(frozen=True)
class JobOptions:
    """The options one job runs with."""

    expires_in: float = 3600.0
    finished_expires_in: float | None = None
    throttle_interval: float = 0.0
    includes: frozenset[str] = frozenset({"status"})
    on_store_error: str = "warn"
    heartbeat_interval: float = 15.0
    stale_after: float = 60.0
    history_limit: int = 100

    @property
    def finished_ttl(self) -> float:
        """Seconds a completed or failed record lives after its last write."""
        return self.expires_in if self.finished_expires_in is None else self.finished_expires_in

    def with_overrides(self, overrides: Mapping[str, Any]) -> JobOptions:
        """A copy with ``overrides`` validated and applied (None values ignored)."""
        given = {key: value for key, value in overrides.items() if value is not None}
        return replace(self, **validate_options(given))


def _seconds(name: str, value: object, *, allow_zero: bool) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(
            f"{name} must be seconds (int, float or timedelta), "
            f"not {type(value).__name__}: {value!r}"
        )
    if not (value >= 0 if allow_zero else value > 0) or value != value or value == float("inf"):
        bound = "zero or more" if allow_zero else "more than zero"
        raise ConfigurationError(f"{name} must be {bound} finite seconds; got {value!r}")
    return float(value)


def _includes(value: object) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigurationError(
            f"includes must be a set of names such as {{'status', 'exception'}}, not {value!r}"
        )
    names = frozenset(value)
    unknown = names - INCLUDES
    if unknown:
        raise ConfigurationError(
            f"unknown includes entry {', '.join(sorted(map(repr, unknown)))}; "
            f"choose from {', '.join(sorted(INCLUDES))}"
        )
    return names


def _history_limit(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_HISTORY:
        raise ConfigurationError(
            f"history_limit must be an int from 0 to {MAX_HISTORY} (0 keeps no history); "
            f"got {value!r}"
        )
    return value


def validate_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Check job options by name; return them normalised.

    Raises:
        ConfigurationError: an unknown option or a bad value, naming it.
    """
    checked: dict[str, Any] = {}
    for name, value in options.items():
        if name == "expires_in":
            checked[name] = _seconds(name, value, allow_zero=False)
        elif name == "finished_expires_in":
            checked[name] = None if value is None else _seconds(name, value, allow_zero=False)
        elif name in ("throttle_interval", "heartbeat_interval"):
            checked[name] = _seconds(name, value, allow_zero=True)
        elif name == "stale_after":
            checked[name] = _seconds(name, value, allow_zero=False)
        elif name == "includes":
            checked[name] = _includes(value)
        elif name == "history_limit":
            checked[name] = _history_limit(value)
        elif name == "on_store_error":
            if value not in ON_STORE_ERROR:
                raise ConfigurationError(f"on_store_error must be 'warn' or 'raise', not {value!r}")
            checked[name] = value
        else:
            raise ConfigurationError(f"unknown option {name!r}")
    return checked


def default_store_url() -> str:
    """``JOBSTATUS_STORE`` when set, else the SQLite file under the user's cache directory."""
    from_env = os.environ.get(STORE_ENV)
    if from_env:
        return from_env
    import platformdirs

    folder = Path(platformdirs.user_cache_dir("jobstatus", appauthor=False))
    return f"sqlite:///{folder / 'jobstatus.db'}"


class Settings:
    """The process-wide settings behind ``configure()``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.options = JobOptions()
        self._store_setting: object = None
        self._store: Store | None = None
        self._fallback: Store | None = None

    def configure(self, **options: Any) -> None:
        store_given = "store" in options
        store_value = options.pop("store", None)
        job_options = validate_options(options)
        new_store = None
        if store_given and store_value is not None:
            new_store = resolve_store(store_value)
        with self._lock:
            self.options = replace(self.options, **job_options)
            if store_given:
                self._store_setting = store_value
                self._store = new_store

    def store(self) -> Store:
        """The configured store, built from the default on first use."""
        store = self._store
        if store is not None:
            return store
        with self._lock:
            if self._store is None:
                self._store = shared_store(default_store_url())
                if not os.environ.get(STORE_ENV):
                    self._fallback = self._store
            return self._store

    def is_per_user_default(self, store: Store) -> bool:
        """Whether ``store`` is the per-user SQLite file, chosen because nothing else was."""
        return store is self._fallback

    def is_store_configured(self) -> bool:
        """Whether ``configure(store=...)`` chose a store in this process."""
        return self._store_setting is not None

    def store_spec(self) -> str | None:
        """What another process needs to reach the same store: a URL, or None if unknown."""
        setting = self._store_setting
        if setting is None:
            return default_store_url()
        return setting if isinstance(setting, str) else None

    def reset(self) -> None:
        """Back to the defaults (for tests)."""
        with self._lock:
            self.options = JobOptions()
            self._store_setting = None
            self._store = None
            self._fallback = None
        close_shared_stores()


settings = Settings()


def configure(**options: Any) -> None:
    """Change the global settings; only the options given change.

    Args:
        store: a store URL (one store per URL in a process, shared with every
            ``store=`` given the same URL), a :class:`jobstatus.Store`, a ready client (redis,
            pymemcache, psycopg) or any cache with get/set/delete. None goes
            back to the default (``JOBSTATUS_STORE`` or the embedded SQLite file).
        expires_in: seconds (or a timedelta) a record lives after its last write.
        finished_expires_in: the same once the job completed or failed; None
            means ``expires_in``.
        throttle_interval: least seconds between throttled writes inside a job;
            0 writes every change at once.
        includes: what the lifecycle records: a subset of ``{"status",
            "serialized_job", "exception"}``.
        on_store_error: ``"warn"`` (log, rate-limited, the job goes on) or
            ``"raise"`` (raise ``StoreError`` in the job).
        heartbeat_interval: a running job that wrote nothing for this many
            seconds writes anyway (``updated_at``, and any held change); 0 turns
            heartbeats off.
        stale_after: readers see a working job whose ``updated_at`` is older
            than this as stale (``Status.is_stale``): its worker probably died.
        history_limit: transitions kept in each record's ``history`` (the
            oldest are dropped first); 0 keeps none.

    Raises:
        ConfigurationError: an unknown option or a bad value, naming it.

    Example::

        jobstatus.configure(store="redis://localhost:6379/0", throttle_interval=0.5)
    """
    settings.configure(**options)


def store_or_default(store: object = None) -> Store:
    """The given store (URL, Store or client), else the configured one."""
    if store is None:
        return settings.store()
    return resolve_store(store)


def require_shared_store(store: Store, other_process: str) -> Store:
    """Return ``store`` if ``other_process`` can reach it; refuse ``memory://``.

    ``memory://`` is this process's own memory: jobs run elsewhere (a process
    pool, a worker, the ``jobstatus`` command) would write or read another,
    empty store, and a reader would wait for news that never comes.

    Raises:
        ConfigurationError: ``store`` lives in this process only, naming who cannot see it.
    """
    if isinstance(store, MemoryStore):
        raise ConfigurationError(
            f"memory:// keeps statuses in this process's memory, so {other_process} cannot "
            "see them; use a store every process can reach: sqlite:///path/to/file.db "
            "(one machine), redis://, postgresql://... (set it with --store, "
            f"configure(store=...) or {STORE_ENV})"
        )
    return store


# (process, integration, store): stores are compared by what they name, since a
# store given as a URL in per-task options is built anew for each job.
_announced: set[str] = set()  # the stores announced, by their redacted description
_announced_lock = threading.Lock()


def announce_store(store: object, integration: str | None = None) -> None:
    """Log once, at a worker's start or first job, which store it writes to (redacted).

    ``integration`` names the queue (``"Celery"``); without it the message says
    "this worker". Once per store in a process and the processes it forks: RQ's
    StatusWorker announces the configured store when it starts, so its work horses,
    forked for each job, stay quiet about it. It warns instead when the store is the
    per-user default SQLite file: the readers (a web process, the ``jobstatus``
    command) see this worker's jobs only if they run as the same user on the
    same machine, or are given the same store.
    """
    chosen = store_or_default(store)
    worker = f"the {integration} worker" if integration else f"this worker (pid {os.getpid()})"
    key = chosen.describe()
    with _announced_lock:
        if key in _announced:
            return
        _announced.add(key)
    if settings.is_per_user_default(chosen):
        logger.warning(
            "jobstatus: %s writes job status to the per-user default %s, "
            "since no store was configured; processes of other users or in other "
            "containers read another file and will see these jobs as unknown or queued. "
            "Set %s (or configure(store=...)) to the same URL in the workers and the readers.",
            worker,
            chosen.describe(),
            STORE_ENV,
        )
    else:
        logger.info("jobstatus: %s writes job status to %s", worker, chosen.describe())
