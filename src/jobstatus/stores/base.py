"""What every store does, and the optional capabilities some add.

A store keeps one record per job id and offers:

- ``write(job_id, change)``: one atomic merge of the keys a :class:`Change` sets
  and the amounts it adds, which also refreshes the record's expiry; it answers
  what it did as a :class:`Written`;
- ``read(job_id)`` and ``read_many(job_ids)`` (a few round trips for thousands);
- ``delete(job_id)``;
- ``subscribe(job_id)``: a :class:`Subscription` whose ``wait`` returns when the
  record may have changed. The base class polls with backoff.

Optional capabilities are small abstract classes a store class inherits (list
them before :class:`Store` in its bases, so that one whose abstract method the
class leaves out fails loudly instead of falling back on a default):

- :class:`Listing`: ``list_recent(status, limit, before)``, newest first;
- :class:`Push`: ``subscribe`` is woken by the store (Redis pub/sub, PostgreSQL
  LISTEN/NOTIFY) rather than by polling;
- :class:`Migration`: ``migrate()`` creates what the store needs ahead of time;
- :class:`Purge`: ``purge()`` deletes expired records now.

An instance may turn one off (a PostgreSQL store built with ``notify=False``
does not push). So check a capability with :meth:`Store.supports`, or with
``Listing.of(store)`` (any capability's :meth:`Capability.of`), which gives the
store as that capability or None: once, where a feature is set up, never by
probing for methods or with ``isinstance``. A new capability is a subclass of
:class:`Capability` here, inherited by the stores that have it.

Every blocking method has an async twin (``awrite``, ``aread``, ...). The base
class derives each from its sync method with :func:`in_thread`, which runs it
in a worker thread so the event loop never blocks (the memory store, which
never blocks, uses :func:`at_once`); stores with a native async driver
override the twins. :class:`Subscription` and :class:`AsyncSubscription` (and
their polling defaults), and :func:`call_store` and :func:`acall_store`, are
written once, in :mod:`._async`, and importable from here.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import importlib
import inspect
import os
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, ClassVar, Concatenate, ParamSpec, TypeVar

from .._errors import ConfigurationError, NotSupportedError
from .._record import Change, Record
from .._record import Written as Written  # where stores and their writers meet
from ._async.call import acall_store as acall_store
from ._async.subscription import AsyncPollingSubscription as AsyncPollingSubscription
from ._async.subscription import AsyncSubscription as AsyncSubscription
from ._backoff import POLL_FIRST as POLL_FIRST
from ._backoff import POLL_GROWTH as POLL_GROWTH
from ._backoff import POLL_MAX as POLL_MAX
from ._sync.call import call_store as call_store
from ._sync.subscription import PollingSubscription as PollingSubscription
from ._sync.subscription import Subscription as Subscription

Clock = Callable[[], float]
T = TypeVar("T")

DEFAULT_TIMEOUT = 5.0


SKIPPED: Written = Written(applied=False)
"""The answer to a write the store had already applied."""


S = TypeVar("S")
P = ParamSpec("P")


def in_thread(
    method: Callable[Concatenate[S, P], T],
) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, T]]:
    """The async twin of a blocking method: it runs the method, as the instance's class
    defines it, in a worker thread, so the event loop never blocks.

    Every async method of :class:`Store` and the capabilities is this by default
    (``awrite = in_thread(write)``); a store with a native async driver overrides
    it with its own ``async def``.
    """
    return _twin(method, asyncio.to_thread)


def at_once(
    method: Callable[Concatenate[S, P], T],
) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, T]]:
    """The async twin of a method that never blocks (the memory store's): it calls the
    method on the event loop, which a thread's hand-off would only slow down."""
    return _twin(method, _on_the_loop)


async def _on_the_loop(method: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    return method(*args, **kwargs)


def _twin(
    method: Callable[Concatenate[S, P], T],
    runner: Callable[..., Awaitable[T]],
) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, T]]:
    name = method.__name__

    async def twin(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        # Looked up on the instance: the store's own method, not the abstract one.
        return await runner(getattr(self, name), *args, **kwargs)

    owner = method.__qualname__.rpartition(".")[0]
    twin.__name__ = f"a{name}"
    twin.__qualname__ = f"{owner}.a{name}" if owner else f"a{name}"
    twin.__module__ = method.__module__
    twin.__doc__ = f"Async twin of :meth:`{name}`."
    twin.__signature__ = inspect.signature(method)  # type: ignore[attr-defined]
    return twin


class Store(abc.ABC):
    """The base class of every store; subclass it for a store of your own.

    Implement ``write``, ``read``, ``read_many`` and ``delete``; add
    :class:`Listing` for ``jobstatus.recent()``, and :class:`Push` with your own
    ``subscribe``/``asubscribe`` for push notifications.

    ``write`` answers a :class:`Written`. A store written before it existed may
    answer None, which counts as ``Written()``: applied, and not created, so
    the writer never restores a vanished record through such a store. A guarded
    write's None says nothing of its guard: ``cancel`` reads the record back.

    Attributes:
        atomic: whether ``write`` merges atomically across writers. Only the
            generic get/set/delete cache adapter sets this to False.
        timeout: the bound, in seconds, on every call to the backend.
    """

    atomic: ClassVar[bool] = True
    timeout: float = DEFAULT_TIMEOUT

    def supports(self, capability: type[Capability]) -> bool:
        """Whether this store offers ``capability`` (:class:`Listing`, :class:`Push`, ...).

        A store offers what its class inherits; a store whose options turn a
        capability off overrides this to say so.
        """
        return isinstance(self, capability)

    @property
    def pushes(self) -> bool:
        """Whether ``subscribe`` is woken by the store rather than polling: ``supports(Push)``."""
        return self.supports(Push)

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

    # The async twins of the methods above, each run in a worker thread.
    awrite = in_thread(write)
    aread = in_thread(read)
    aread_many = in_thread(read_many)
    adelete = in_thread(delete)
    aclose = in_thread(close)

    def describe(self) -> str:
        """A short, password-free description for messages (``sqlite:///...``)."""
        return type(self).__name__


C = TypeVar("C", bound="Capability")


class Capability(abc.ABC):  # noqa: B024 - a kind of capability, with no method of its own
    """An optional part of the store interface; a store class inherits the ones it has.

    Check one with :meth:`Store.supports` or :meth:`of`.
    """

    @classmethod
    def of(cls: type[C], store: Store) -> C | None:
        """``store`` as this capability when it offers it, else None.

        Example::

            migration = Migration.of(store)
            if migration is not None:
                migration.migrate()
        """
        if isinstance(store, cls) and store.supports(cls):
            return store
        return None


class Listing(Capability):
    """Capability: list recent records, newest first (memory, SQLite, Redis, PostgreSQL)."""

    @abc.abstractmethod
    def list_recent(
        self, status: str | None, limit: int, before: float | None
    ) -> list[tuple[str, Record]]:
        """Up to ``limit`` ``(job_id, record)`` pairs, newest ``updated_at`` first.

        ``status`` keeps only records of that status; ``before`` (epoch
        seconds) keeps only records last updated strictly before it.
        """

    alist_recent = in_thread(list_recent)

    def child_ids(self, parent: str) -> list[str]:
        """The ids of the live records whose ``parent`` is ``parent``, sorted.

        Raises:
            NotSupportedError: this store does not index children (a custom store
                that predates groups).
        """
        raise NotSupportedError(f"{type(self).__name__} cannot list a group's children")

    achild_ids = in_thread(child_ids)

    def count_by_status(self) -> dict[str, int]:
        """How many live records each status has, every state present, exactly.

        Read from the store's indexes, never by reading every record.

        Raises:
            NotSupportedError: this store cannot count (a custom store that predates it).
        """
        raise NotSupportedError(f"{type(self).__name__} cannot count jobs by status")

    acount_by_status = in_thread(count_by_status)

    def count_stale(self, updated_before: float) -> int:
        """How many live records are ``working`` and were last updated before
        ``updated_before`` (epoch seconds): the stale jobs, for that cut-off.

        Raises:
            NotSupportedError: this store cannot count (a custom store that predates it).
        """
        raise NotSupportedError(f"{type(self).__name__} cannot count stale jobs")

    acount_stale = in_thread(count_stale)

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

    afind = in_thread(find)


class CancelPush(Capability):
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

    aannounce_cancel = in_thread(announce_cancel)

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
    listing = Listing.of(store)
    if listing is None:
        raise NotSupportedError(
            f"{store.describe()} cannot list jobs; memory, SQLite, Redis, Redis Cluster "
            "and PostgreSQL can"
        )
    return listing


class Push(Capability):
    """Capability: ``subscribe`` is woken by the store, not by polling (memory, Redis, PostgreSQL).

    A watcher then follows each change as it is written; the web app's hub also
    follows the jobs it watches this way.
    """

    @abc.abstractmethod
    def subscribe(self, job_id: str) -> Subscription:
        """A subscription the store wakes when the record of ``job_id`` changes."""

    @abc.abstractmethod
    def asubscribe(self, job_id: str) -> AsyncSubscription:
        """The async twin of :meth:`subscribe`."""


class Migration(Capability):
    """Capability: ``migrate()`` creates the store's tables ahead of time (PostgreSQL).

    Such a store also creates them on first use; ``jobstatus migrate`` calls this.
    """

    @abc.abstractmethod
    def migrate(self) -> None:
        """Create what the store needs if missing (safe to run from many processes at once).

        Raises:
            StoreError: the backend refused (for example, no right to create tables).
        """

    amigrate = in_thread(migrate)


class Purge(Capability):
    """Capability: ``purge()`` deletes expired records now (SQLite, PostgreSQL, Django's database).

    Such a store keeps expired records until a write purges a few of them;
    ``jobstatus purge`` calls this, from cron for example.
    """

    @abc.abstractmethod
    def purge(self) -> int:
        """Delete every expired record now; return how many were removed.

        Raises:
            StoreError: the backend failed.
        """


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

    def peek(self) -> object | None:
        """This process's (or this thread's) value if it was made, without making one."""
        if self._pid != os.getpid():
            return None
        if self._per_thread:
            owned = getattr(self._local, "value", None)
            return None if owned is None else owned.value
        return self._shared

    def forget(self) -> None:
        """Forget this thread's value only (per-thread values), or the shared one.

        Other threads keep theirs until they end: dropping them from here would close
        a connection another thread may be using at this moment.
        """
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
