"""The routes for WSGI frameworks (Django, Flask), as framework-free answers.

:class:`SyncEndpoint` carries out the plans of :mod:`jobstatus.web.routes`
with the store's blocking methods and returns an :class:`Answer`; the
adapters only build the :class:`Request` and translate the answer into their
response type. Event streams are sync iterators over the store's blocking
subscription (one job) or a polling read (several), bounded per process like
the ASGI app's.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Generator
from typing import Any

from .._batch import Batch
from .._read import recent
from .._record import Record
from .._status import read_status
from ..stores.base import Store
from . import core, routes
from .core import WebOptions
from .routes import Answer, Request, Route
from .stream import SSE_HEADERS, SSE_MEDIA_TYPE, EventStream, StreamSlots

Changes = dict[str, Record | None]


class _Slot:
    """A stream slot taken by a WSGI stream."""

    def __init__(self, release: Callable[[], None]) -> None:
        self.close = release


class SyncEndpoint:
    """The routes of :func:`jobstatus.web.create_app`, for WSGI frameworks."""

    def __init__(self, options: WebOptions) -> None:
        self.options = options
        self._store: Store | None = None
        self.slots = StreamSlots(options.max_streams)

    @property
    def streams(self) -> int:
        """Event streams open now."""
        return self.slots.open

    @property
    def store(self) -> Store:
        """The store read by every route."""
        if self._store is None:
            self._store = self.options.resolve_store()
        return self._store

    def answer(self, route: Route, request: Request) -> Answer:
        """Serve one request to ``route``; request and store errors become JSON answers."""
        result = routes.run(routes.answer(route, request, self.options), self.perform)
        if isinstance(result, routes.StreamAnswer):
            events = _Counted(self._events(request.native, result), result.opened.close)
            return Answer(200, events, SSE_MEDIA_TYPE, dict(SSE_HEADERS))
        return result

    def perform(self, step: routes.Step) -> Any:
        """Do one step of a plan (see :mod:`jobstatus.web.routes`)."""
        store = self.store
        if isinstance(step, routes.ReadStatus):
            return read_status(store, step.job_id)
        if isinstance(step, routes.ReadMany):
            return store.read_many(step.job_ids)
        if isinstance(step, routes.Allowed):
            return self.allowed(step.request, step.job_id, step.record)
        if isinstance(step, routes.RefreshBatch):
            return Batch(step.job_ids, store=store).refresh()
        if isinstance(step, routes.ListRecent):
            query = step.query
            return recent(query.status, query.limit, query.before, store=store)
        return _Slot(self.slots.take())

    def allowed(self, request: Any, job_id: str, record: Record) -> bool:
        """Whether the application's hook lets this request read the job."""
        hook = self.options.authorize
        return hook is None or core.authorized(hook, request, job_id, record) is True

    # -- streams --------------------------------------------------------------------

    def _events(self, request: Any, answer: routes.StreamAnswer) -> Generator[str, None, None]:
        stream = answer.stream
        changes = answer.first
        with contextlib.closing(self._reads(stream, answer.first)) as reads:
            while True:
                for job_id, record in changes.items():
                    if stream.watches(job_id):
                        seen = record is not None and self.allowed(request, job_id, record)
                        text = stream.event(job_id, record if seen else None)
                        if text:
                            yield text
                if stream.over:
                    return
                keepalive = stream.keepalive()
                if keepalive:
                    yield keepalive
                try:
                    changes = next(reads)
                except Exception:  # a broken store ends the stream; the client reconnects
                    return

    def _reads(self, stream: EventStream, first: Changes) -> Generator[Changes, None, None]:
        """The next records of the stream's jobs, each time they may have changed."""
        if not stream.one_job:
            while True:
                time.sleep(self.options.poll_interval)
                watched = stream.watched
                yield dict(zip(watched, self.store.read_many(watched), strict=True))
        (job_id,) = stream.job_ids
        last = first[job_id]
        with self.store.subscribe(job_id) as subscription:
            while True:
                pushed = subscription.wait(stream.quiet_time())
                record = pushed[-1] if pushed else self.store.read(job_id)
                if record != last:
                    last = record
                    subscription.changed()  # a polling subscription waits less again
                yield {job_id: record}


class _Counted:
    """An event stream that gives its slot back once: when it ends or the server closes it.

    A class rather than a generator: a generator closed before its first
    ``next()`` never runs its ``finally``, and a client can leave that early.
    """

    def __init__(self, events: Generator[str, None, None], release: Callable[[], None]) -> None:
        self._events = events
        self._release: Callable[[], None] | None = release

    def __iter__(self) -> _Counted:
        return self

    def __next__(self) -> str:
        try:
            return next(self._events)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop the stream and free its slot (WSGI servers call this)."""
        release, self._release = self._release, None
        if release is not None:
            self._events.close()
            release()
