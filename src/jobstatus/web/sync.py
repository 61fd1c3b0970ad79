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
from .._cancel import cancel_job
from .._read import counts, recent
from .._record import Record
from .._status import read_status
from ..stores.base import Store, call_store, listing_of
from . import core, plan, routes
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
        result = plan.run(routes.answer(route, request, self.options), self.perform)
        if isinstance(result, plan.StreamAnswer):
            events = _Counted(self._events(request.native, result), result.opened.close)
            return Answer(200, events, SSE_MEDIA_TYPE, dict(SSE_HEADERS))
        return result

    def perform(self, step: plan.Step) -> Any:
        """Do one step of a plan (see :mod:`jobstatus.web.plan`)."""
        store = self.store
        if isinstance(step, plan.ReadStatus):
            return read_status(store, step.job_id)
        if isinstance(step, plan.ReadMany):
            return store.read_many(step.job_ids)
        if isinstance(step, plan.Allowed):
            return self.ask(step.hook, step.request, step.job_id, step.record)
        if isinstance(step, plan.IsOperator):
            return self.ask("operator", step.request)
        if isinstance(step, plan.RefreshBatch):
            return Batch(step.job_ids, store=store).refresh()
        if isinstance(step, plan.ListRecent):
            return recent(
                step.status,
                step.limit,
                step.before,
                name=step.name,
                prefix=step.prefix,
                store=store,
            )
        if isinstance(step, plan.CountJobs):
            return counts(store=store)
        if isinstance(step, plan.ListChildren):
            return call_store(listing_of(store).child_ids, step.job_id)
        if isinstance(step, plan.CancelJob):
            return cancel_job(store, step.job_id, step.reason)
        if isinstance(step, plan.DeleteJob):
            return call_store(store.delete, step.job_id)
        if isinstance(step, plan.RenderMetrics):
            return core.render_metrics(store, step.accept)
        return _Slot(self.slots.take())

    def allowed(self, request: Any, job_id: str, record: Record) -> bool:
        """Whether the application's hook lets this request read the job."""
        if self.options.authorize is None:
            return True
        return self.ask("authorize", request, job_id, record)

    def ask(self, hook_name: str, request: Any, *args: Any) -> bool:
        """The verdict of one of the application's hooks: only True is a yes."""
        hook = getattr(self.options, hook_name)
        return core.authorized(hook, request, *args, name=hook_name) is True

    # -- streams --------------------------------------------------------------------

    def _events(self, request: Any, answer: plan.StreamAnswer) -> Generator[str, None, None]:
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
