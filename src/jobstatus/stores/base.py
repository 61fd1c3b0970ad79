"""What every store does, and the optional capabilities some add.

A store keeps one record per job id and offers:

- ``write(job_id, change)``: one atomic merge of the keys a :class:`Change` sets
  and the amounts it adds, which also refreshes the record's expiry; it answers
  what it did as a :class:`Written`;
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
import importlib
import os
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, TypeVar

from .._errors import ConfigurationError, NotSupportedError, StoreError
from .._record import Change, Record

Clock = Callable[[], float]
T = TypeVar("T")

DEFAULT_TIMEOUT = 5.0
POLL_FIRST = 0.05
POLL_MAX = 1.0
POLL_GROWTH = 1.5


@dataclass(frozen=True, slots=True)
class Written:
    """What one ``Store.write`` did, for the job's writer.

    Attributes:
        applied: False when nothing was written: the change's guard did not hold,
            or the store already had this write (re-sent with the same ``origin``).
        created: no live record existed before this write (the id was new, or
            its record had expired or been deleted or evicted).
        cancel: the cancel request the record holds while its job is queued or
            working (``{"requested_at", "reason"}``), or None: how a running job
            learns of a request from the reply to its next write.
        queued_at: for a write that moved the record from ``queued`` to
            ``working`` (a job's start), when the record last became queued:
            the ``at`` of its newest ``queued`` history entry, or its
            ``queued_at`` before any attempt; None for any other write, or when
            the store cannot tell. How a worker measures the job's wait
            (``jobstatus_job_wait_seconds``) without reading the record.
    """

    applied: bool = True
    created: bool = False
    cancel: Record | None = None
    queued_at: str | None = None


SKIPPED: Written = Written(applied=False)
"""The answer to a write the store had already applied."""


class Store(abc.ABC):
    """The base class of every store; subclass it for a store of your own.

    Implement ``write``, ``read``, ``read_many`` and ``delete``; add
    :class:`Listing` for ``jobstatus.recent()`` and override ``subscribe`` for
    push notifications.

    ``write`` answers a :class:`Written`. A store written before it existed may
    answer None, which counts as ``Written()``: applied, and not created, so
    the writer never restores a vanished record through such a store.

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
    def write(self, job_id: str, change: Change) -> Written | None:
        """Merge ``change`` into the record of ``job_id`` atomically; say what it did.

        Keys in ``change.set`` replace the stored values; amounts in
        ``change.incr`` are added to the stored numbers (a missing key counts
        as 0). The record then expires ``change.ttl`` seconds from now, or
        ``change.finished_ttl`` when its status is completed or failed.
        An expired record is treated as absent. A change with an ``origin``
        the record already has is skipped (``Written(applied=False)``).

        Raises:
            WriteRefused: the store can never apply this change (a value too
                large for it, a sum that is not a finite number); nothing of it
                was applied.
            StoreError: the backend failed (a timeout, a dropped connection).
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

    async def awrite(self, job_id: str, change: Change) -> Written | None:
        """Async twin of :meth:`write`."""
        return await asyncio.to_thread(self.write, job_id, change)

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

    def child_ids(self, parent: str) -> list[str]:
        """The ids of the live records whose ``parent`` is ``parent``, sorted.

        Raises:
            NotSupportedError: this store does not index children (a custom store
                that predates groups).
        """
        raise NotSupportedError(f"{type(self).__name__} cannot list a group's children")

    async def achild_ids(self, parent: str) -> list[str]:
        """Async twin of :meth:`child_ids`."""
        return await asyncio.to_thread(self.child_ids, parent)

    def count_by_status(self) -> dict[str, int]:
        """How many live records each status has, every state present, exactly.

        Read from the store's indexes, never by reading every record.

        Raises:
            NotSupportedError: this store cannot count (a custom store that predates it).
        """
        raise NotSupportedError(f"{type(self).__name__} cannot count jobs by status")

    async def acount_by_status(self) -> dict[str, int]:
        """Async twin of :meth:`count_by_status`."""
        return await asyncio.to_thread(self.count_by_status)

    def count_stale(self, updated_before: float) -> int:
        """How many live records are ``working`` and were last updated before
        ``updated_before`` (epoch seconds): the stale jobs, for that cut-off.

        Raises:
            NotSupportedError: this store cannot count (a custom store that predates it).
        """
        raise NotSupportedError(f"{type(self).__name__} cannot count stale jobs")

    async def acount_stale(self, updated_before: float) -> int:
        """Async twin of :meth:`count_stale`."""
        return await asyncio.to_thread(self.count_stale, updated_before)

    def find(
        self,
        *,
        status: str | None,
        limit: int,
        before: float | None,
        name: str | None = None,
        id_prefix: str | None = None,
    ) -> list[tuple[str, Record]]:
        """Like :meth:`list_recent`, keeping only records whose ``name`` is ``name``
        and whose id starts with ``id_prefix`` (each filter only when given).

        Raises:
            NotSupportedError: this store cannot search (a custom store that predates it).
        """
        raise NotSupportedError(f"{type(self).__name__} cannot search jobs by name or id")

    async def afind(
        self,
        *,
        status: str | None,
        limit: int,
        before: float | None,
        name: str | None = None,
        id_prefix: str | None = None,
    ) -> list[tuple[str, Record]]:
        """Async twin of :meth:`find`."""
        return await asyncio.to_thread(
            lambda: self.find(
                status=status, limit=limit, before=before, name=name, id_prefix=id_prefix
            )
        )


class CancelPush(abc.ABC):
    """Capability: a store-wide channel on which cancel requests are announced.

    ``jobstatus.cancel`` announces each request it recorded; every process that
    runs jobs on the store listens (one listener each) and tells the job at once,
    rather than at its next write or heartbeat. Redis (pub/sub), PostgreSQL
    (LISTEN/NOTIFY) and the memory store push.
    """

    @abc.abstractmethod
    def announce_cancel(self, job_id: str, request: Record) -> None:
        """Tell every listener that ``job_id``'s cancel was requested (``request`` is
        the recorded ``{"requested_at", "reason"}``)."""

    async def aannounce_cancel(self, job_id: str, request: Record) -> None:
        """Async twin of :meth:`announce_cancel`."""
        await asyncio.to_thread(self.announce_cancel, job_id, request)

    @abc.abstractmethod
    def listen_for_cancels(self, deliver: Callable[[str, Record], None]) -> Callable[[], None]:
        """Call ``deliver(job_id, request)`` for every announced request, from a
        background thread, until the returned function is called.

        A listener survives its connection dropping: it reconnects (a request
        announced meanwhile reaches the job by its next write instead).
        """


def listing_of(store: Store) -> Listing:
    """The store as a :class:`Listing`.

    Raises:
        NotSupportedError: the store cannot list (memcached, a generic cache).
    """
    if not isinstance(store, Listing):
        raise NotSupportedError(
            f"{store.describe()} cannot list jobs; memory, SQLite, Redis, Redis Cluster "
            "and PostgreSQL can"
        )
    return store


def call_store(method: Callable[..., T], *args: Any) -> T:
    """Call a store method; any non-StoreError failure becomes a StoreError too."""
    try:
        return method(*args)
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(f"the store failed: {type(exc).__name__}: {exc}") from exc


async def acall_store(method: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Async twin of :func:`call_store`."""
    try:
        return await method(*args)
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(f"the store failed: {type(exc).__name__}: {exc}") from exc


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


class PerProcess:
    """Holds one value per process (and per thread if asked), rebuilt after ``fork``.

    Connections must not cross a fork: a child that inherited its parent's
    SQLite or socket connection would corrupt or share it.
    """

    def __init__(self, factory: Callable[[], object], *, per_thread: bool = False) -> None:
        self._factory = factory
        self._per_thread = per_thread
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
            value = getattr(self._local, "value", None)
            if value is None:
                value = self._local.value = self._factory()
            return value
        if self._shared is None:
            with self._lock:
                if self._shared is None:
                    self._shared = self._factory()
        return self._shared

    def reset(self) -> None:
        """Forget the value in this process (and this thread)."""
        self._local = threading.local()
        self._shared = None

    def forget(self) -> None:
        """Forget this thread's value only (per-thread values), or the shared one."""
        if self._per_thread:
            self._local.value = None
        else:
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
