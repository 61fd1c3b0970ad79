"""The routes for WSGI frameworks (Django, Flask), as framework-free answers.

:class:`SyncEndpoint` carries out the plans of :mod:`jobstatus.web.routes`
with the store's blocking methods and returns an :class:`Answer`; the
adapters only build the :class:`Request` and translate the answer into their
response type. Event streams are sync iterators over the store's blocking
subscription (one job) or a polling read (several), bounded per process like
the ASGI app's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from typing import Any

from ..stores.base import Store
from . import core, plan, routes
from ._perform_sync import Changes, events, perform_step
from .core import WebOptions
from .routes import Answer, Request, Route
from .stream import SSE_HEADERS, SSE_MEDIA_TYPE, EventStream, StreamSlots


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
        result = plan.run(routes.answer(route, request, self.options), self.perform)
        if isinstance(result, plan.StreamAnswer):
            reads = self._reads(result.stream, result.first)
            texts = events(result, reads, request.native, self.options, self.ask)
            counted = _Counted(texts, result.opened.close)
            return Answer(200, counted, SSE_MEDIA_TYPE, dict(SSE_HEADERS))
        return result

    def perform(self, step: plan.Step) -> Any:
        """Do one step of a plan (see :mod:`jobstatus.web.plan`)."""
        store = self.store
        if isinstance(step, plan.StoreStep):
            return perform_step(store, step, self.ask)
        return _Slot(self.slots.take())

    def ask(self, hook_name: str, request: Any, *args: Any) -> bool:
        """The verdict of one of the application's hooks: only True is a yes."""
        hook = getattr(self.options, hook_name)
        return core.authorized(hook, request, *args, name=hook_name) is True

    # -- streams --------------------------------------------------------------------

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
