"""What every store does, and the optional capabilities some add.

A store keeps one record per job id and offers:

- ``write(job_id, change)``: one atomic merge of the keys a :class:`Change` sets
  and the amounts it adds, which also refreshes the record's expiry;
- ``read(job_id)`` and ``read_many(job_ids)`` (a few round trips for thousands);
- ``delete(job_id)``.

Optional capabilities:

- :class:`Listing`: ``list_recent(status, limit, before)``, newest first;
- push: ``subscribe(job_id)`` returns a :class:`Subscription` whose ``wait`` wakes
  on a change. The base class polls with backoff; stores that can push (Redis
  pub/sub, PostgreSQL LISTEN/NOTIFY) override it and set ``pushes = True``.

Every blocking method has an async twin (``awrite``, ``aread``, ...). The base
class runs the sync method in a worker thread so the event loop never blocks;
stores with a native async driver override the twins.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import importlib
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, ClassVar

from .._errors import ConfigurationError
from .._record import Change, Record

Clock = Callable[[], float]

DEFAULT_TIMEOUT = 5.0
POLL_FIRST = 0.05
POLL_MAX = 1.0
POLL_GROWTH = 1.5


class Store(abc.ABC):
    """The base class of every store; subclass it for a store of your own.

    Implement ``write``, ``read``, ``read_many`` and ``delete``; add
    :class:`Listing` for ``jobstatus.recent()`` and override ``subscribe`` for
    push notifications.

    Attributes:
        atomic: whether ``write`` merges atomically across writers. Only the
            generic get/set/delete cache adapter sets this to False.
        pushes: whether ``subscribe`` is woken by the store rather than polling.
        timeout: the bound, in seconds, on every call to the backend.
    """

    atomic: ClassVar[bool] = True
    pushes: ClassVar[bool] = False
    timeout: float = DEFAULT_TIMEOUT

    @abc.abstractmethod
    def write(self, job_id: str, change: Change) -> None:
        """Merge ``change`` into the record of ``job_id`` atomically.

        Keys in ``change.set`` replace the stored values; amounts in
        ``change.incr`` are added to the stored numbers (a missing key counts
        as 0). The record then expires ``change.ttl`` seconds from now, or
        ``change.finished_ttl`` when its status is completed or failed.
        An expired record is treated as absent.

        Raises:
            StoreError: the backend failed.
        """

    @abc.abstractmethod
    def read(self, job_id: str) -> Record | None:
        """The record of ``job_id``, or None when unknown or expired.

        Raises:
            StoreError: the backend failed.
        """

    @abc.abstractmethod
    def read_many(self, job_ids: Sequence[str]) -> list[Record | None]:
        """The records of ``job_ids`` in the same order, None for missing ones.

        Implementations fetch many ids per round trip.
        """

    @abc.abstractmethod
    def delete(self, job_id: str) -> None:
        """Remove the record of ``job_id`` (no error if it is absent)."""

    def close(self) -> None:  # noqa: B027 - most stores hold nothing to close
        """Release connections. The store may be used again afterwards."""

    def subscribe(self, job_id: str) -> Subscription:
        """A subscription that wakes when the record of ``job_id`` may have changed."""
        return PollingSubscription()

    def asubscribe(self, job_id: str) -> AsyncSubscription:
        """The async twin of :meth:`subscribe`."""
        return AsyncPollingSubscription()

    async def awrite(self, job_id: str, change: Change) -> None:
        """Async twin of :meth:`write`."""
        await asyncio.to_thread(self.write, job_id, change)

    async def aread(self, job_id: str) -> Record | None:
        """Async twin of :meth:`read`."""
        return await asyncio.to_thread(self.read, job_id)

    async def aread_many(self, job_ids: Sequence[str]) -> list[Record | None]:
        """Async twin of :meth:`read_many`."""
        return await asyncio.to_thread(self.read_many, job_ids)

    async def adelete(self, job_id: str) -> None:
        """Async twin of :meth:`delete`."""
        await asyncio.to_thread(self.delete, job_id)

    async def aclose(self) -> None:
        """Async twin of :meth:`close`."""
        await asyncio.to_thread(self.close)

    def describe(self) -> str:
        """A short, password-free description for messages (``sqlite:///...``)."""
        return type(self).__name__


class Listing(abc.ABC):
    """Capability: list recent records, newest first (memory, SQLite, Redis, PostgreSQL)."""

    @abc.abstractmethod
    def list_recent(
        self, status: str | None, limit: int, before: float | None
    ) -> list[tuple[str, Record]]:
        """Up to ``limit`` ``(job_id, record)`` pairs, newest ``updated_at`` first.

        ``status`` keeps only records of that status; ``before`` (epoch
        seconds) keeps only records last updated strictly before it.
        """

    async def alist_recent(
        self, status: str | None, limit: int, before: float | None
    ) -> list[tuple[str, Record]]:
        """Async twin of :meth:`list_recent`."""
        return await asyncio.to_thread(self.list_recent, status, limit, before)


class Subscription(abc.ABC):
    """Wakes a reader when a record may have changed. Use as a context manager."""

    @abc.abstractmethod
    def wait(self, timeout: float) -> list[Record] | None:
        """Block until a change may have happened, or ``timeout`` seconds pass.

        A store that publishes each change's record returns those records, in
        order (so a watcher sees every state); None means "read the store again".
        """

    def changed(self) -> None:  # noqa: B027 - only polling keeps state
        """Tell the subscription the reader just saw a change (polling resets its backoff)."""

    def close(self) -> None:  # noqa: B027 - only pushed subscriptions hold a connection
        """Stop listening."""

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncSubscription(abc.ABC):
    """The async twin of :class:`Subscription`."""

    @abc.abstractmethod
    async def wait(self, timeout: float) -> list[Record] | None:
        """Wait until a change may have happened, or ``timeout`` seconds pass.

        Returns the pushed records, in order, or None (see :meth:`Subscription.wait`).
        """

    def changed(self) -> None:  # noqa: B027
        """Tell the subscription the reader just saw a change."""

    async def aclose(self) -> None:  # noqa: B027
        """Stop listening."""

    async def __aenter__(self) -> AsyncSubscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class _Backoff:
    """Poll intervals: 50 ms, growing by half each time up to 1 s; reset on a change."""

    def __init__(self) -> None:
        self.interval = POLL_FIRST

    def next(self, timeout: float) -> float:
        delay = min(self.interval, max(timeout, 0.0))
        self.interval = min(self.interval * POLL_GROWTH, POLL_MAX)
        return delay

    def reset(self) -> None:
        self.interval = POLL_FIRST


class PollingSubscription(Subscription):
    """The default: sleep with backoff, since the store cannot say when it changes."""

    def __init__(self) -> None:
        self._backoff = _Backoff()

    def wait(self, timeout: float) -> list[Record] | None:
        time.sleep(self._backoff.next(timeout))
        return None

    def changed(self) -> None:
        self._backoff.reset()


class AsyncPollingSubscription(AsyncSubscription):
    """Async twin of :class:`PollingSubscription`."""

    def __init__(self) -> None:
        self._backoff = _Backoff()

    async def wait(self, timeout: float) -> list[Record] | None:
        await asyncio.sleep(self._backoff.next(timeout))
        return None

    def changed(self) -> None:
        self._backoff.reset()


class _Owned:
    """A thread's value: closed (by a finalizer) once the thread's locals drop it.

    Python 3.13 warns (ResourceWarning) about an SQLite connection collected
    unclosed, as each finished thread's was. A weakref finalizer runs before the
    collector finalizes anything in a cycle, so the connection is closed first. A
    forked child never closes what it inherited: that is its parent's to close.
    """

    __slots__ = ("__weakref__", "value")

    def __init__(self, value: object, close: Callable[[Any], object]) -> None:
        self.value = value
        weakref.finalize(self, _close_in, os.getpid(), close, value)


def _close_in(pid: int, close: Callable[[Any], object], value: object) -> None:
    if pid == os.getpid():
        with contextlib.suppress(Exception):
            close(value)


class PerProcess:
    """Holds one value per process (and per thread if asked), rebuilt after ``fork``.

    Connections must not cross a fork: a child that inherited its parent's
    SQLite or socket connection would corrupt or share it.
    """

    def __init__(
        self,
        factory: Callable[[], object],
        *,
        per_thread: bool = False,
        close: Callable[[Any], object] = lambda value: None,
    ) -> None:
        self._factory = factory
        self._per_thread = per_thread
        self._close = close  # a finished thread's value, when its locals are dropped
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._local = threading.local()
        self._shared: object | None = None

    def get(self) -> object:
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._local = threading.local()
            self._shared = None
            self._lock = threading.Lock()
        if self._per_thread:
            owned = getattr(self._local, "value", None)
            if owned is None:
                owned = self._local.value = _Owned(self._factory(), self._close)
            return owned.value
        if self._shared is None:
            with self._lock:
                if self._shared is None:
                    self._shared = self._factory()
        return self._shared

    def reset(self) -> None:
        """Forget the value in this process (and this thread)."""
        self._local = threading.local()
        self._shared = None


def require(module: str, extra: str) -> object:
    """Import a store's driver, or say which extra installs it.

    Raises:
        ConfigurationError: the driver is missing, naming ``pip install 'jobstatus[extra]'``.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise ConfigurationError(
            f"the {module!r} driver is not installed: pip install 'jobstatus[{extra}]'"
        ) from exc
