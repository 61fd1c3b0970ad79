"""The routes for WSGI frameworks (Django, Flask), as framework-free answers.

Each method takes what the framework parsed from the request and returns an
:class:`Answer`; the adapters only translate it into their response type.
Event streams are sync generators over the store's blocking subscription,
bounded per process like the ASGI app's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._batch import Batch
from .._errors import NotSupportedError, StoreError
from .._read import recent
from .._record import Record
from .._status import read_status
from ..stores.base import Store
from . import core
from .core import ApiError, WebOptions

Params = Mapping[str, Sequence[str]]
LISTING_ROUTES = frozenset({"dashboard"})  # 404 while listing is off, whatever the query


@dataclass
class Answer:
    """A response to send: status, media type, headers and a body (text or a stream)."""

    status: int
    body: str | Iterator[str]
    media_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def streaming(self) -> bool:
        """Whether the body is an event stream to send as it comes."""
        return not isinstance(self.body, str)


def _json(body: object, status: int = 200) -> Answer:
    return Answer(status, core.to_json(body), headers=dict(core.JSON_HEADERS))


def _error(error: ApiError) -> Answer:
    return Answer(error.status, error.body(), headers={**core.JSON_HEADERS, **error.headers})


def _page(html: str, status: int = 200) -> Answer:
    return Answer(status, html, "text/html; charset=utf-8", dict(core.PAGE_HEADERS))


class SyncEndpoint:
    """The routes of :func:`jobstatus.web.create_app`, for WSGI frameworks."""

    def __init__(self, options: WebOptions) -> None:
        self.options = options
        self._store: Store | None = None
        self._lock = threading.Lock()
        self.streams = 0

    @property
    def store(self) -> Store:
        """The store read by every route."""
        if self._store is None:
            self._store = self.options.resolve_store()
        return self._store

    def answer(
        self, route: str, request: Any, query: str, params: Callable[[], Params], **kw: Any
    ) -> Answer:
        """Serve one route, turning request and store errors into JSON answers.

        ``params`` parses the query string; it is called once the query's size is
        checked and may raise :class:`ApiError` (Django refuses too many fields).
        """
        try:
            if route in LISTING_ROUTES:
                core.require_listing(self.options)
            core.check_query(query, self.options)
            handler = getattr(self, f"route_{route}")
            result: Answer = handler(request, params(), **kw)
            return result
        except ApiError as error:
            return _error(error)
        except StoreError as exc:
            return _error(core.store_unavailable(exc))

    def allowed(self, request: Any, job_id: str, record: Record) -> bool:
        """Whether the application's hook lets this request read the job."""
        hook = self.options.authorize
        return hook is None or core.authorized(hook, request, job_id, record) is True

    def readable(self, request: Any, job_id: str) -> Record:
        """The record of a job this request may read, or the one 404."""
        status = read_status(self.store, job_id)
        record = status.to_dict()
        if not status.exists or not self.allowed(request, job_id, record):
            raise core.not_found()
        return record

    # -- routes ---------------------------------------------------------------------

    def route_job(self, request: Any, params: Params, *, job_id: str) -> Answer:
        """``GET /jobs/{id}``."""
        job_id = core.parse_job_id(job_id)
        core.only_params(params, ())
        return _json(core.visible(self.readable(request, job_id), self.options))

    def route_jobs(self, request: Any, params: Params) -> Answer:
        """``GET /jobs?ids=...`` (a batch) or ``GET /jobs?status=...`` (a listing)."""
        if "ids" in params:
            core.only_params(params, ("ids",))
            batch = Batch(core.parse_ids(params, self.options), store=self.store).refresh()
            allowed = [
                s.exists and self.allowed(request, s.job_id, s.to_dict()) for s in batch.statuses
            ]
            return _json(core.batch_json(batch, allowed, self.options))
        core.require_listing(self.options)
        query = core.parse_listing(params, self.options)
        try:
            rows = recent(query.status, query.limit, query.before, store=self.store)
        except NotSupportedError as exc:
            raise core.listing_unsupported(exc) from exc
        shown = [row for row in rows if self.allowed(request, row.job_id, row.to_dict())]
        return _json(core.listing_json(shown, self.options))

    def route_events(
        self, request: Any, params: Params, *, job_id: str, last_event_id: str | None = None
    ) -> Answer:
        """``GET /jobs/{id}/events``."""
        job_id = core.parse_job_id(job_id)
        core.only_params(params, ())
        record = self.readable(request, job_id)
        if core.stream_over(record, last_event_id):
            return Answer(204, "", "text/event-stream", dict(core.SSE_HEADERS))
        events = core.sync_events(
            self.store,
            job_id,
            record,
            allowed=lambda changed: self.allowed(request, job_id, changed),
            options=self.options,
            resume_from=last_event_id,
        )
        return self._stream(events)

    def route_many_events(self, request: Any, params: Params) -> Answer:
        """``GET /events?ids=...``: one stream for several jobs (the dashboard's)."""
        core.only_params(params, ("ids",))
        job_ids = core.parse_ids(params, self.options)
        return self._stream(self._many_events(request, job_ids))

    def route_dashboard(self, request: Any, params: Params, *, base: str) -> Answer:
        """``GET /``."""
        core.only_params(params, ())
        return _page(core.dashboard_page(base))

    def route_view(self, request: Any, params: Params, *, job_id: str, base: str) -> Answer:
        """``GET /jobs/{id}/view``."""
        job_id = core.parse_job_id(job_id)
        core.only_params(params, ())
        try:
            self.readable(request, job_id)
        except ApiError as error:
            if error.status != 404:
                raise
            return _page(core.missing_page(base), 404)
        return _page(core.job_page(base, job_id))

    def route_static(self, request: Any, params: Params, *, name: str) -> Answer:
        """``GET /static/{name}``: the pages' own script and style sheet."""
        data, media_type = core.static_file(name)
        headers = {"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"}
        return Answer(200, data.decode("utf-8"), media_type, headers)

    # -- streams --------------------------------------------------------------------

    def _stream(self, events: Iterator[str]) -> Answer:
        with self._lock:
            if self.streams >= self.options.max_streams:
                raise ApiError(
                    503,
                    f"too many event streams open ({self.options.max_streams}); try again later",
                    {"Retry-After": "5"},
                )
            self.streams += 1
        return Answer(200, self._counted(events), "text/event-stream", dict(core.SSE_HEADERS))

    def _counted(self, events: Iterator[str]) -> Iterator[str]:
        return _Counted(events, self._release)

    def _release(self) -> None:
        with self._lock:
            self.streams -= 1

    def _many_events(self, request: Any, job_ids: list[str]) -> Iterator[str]:
        shown: dict[str, Record] = {}
        remaining = set(job_ids)
        last_sent = time.monotonic()
        while remaining:
            watched = [job_id for job_id in job_ids if job_id in remaining]
            try:
                records = self.store.read_many(watched)
            except Exception:  # a broken store ends the stream; the client reconnects
                return
            for job_id, record in zip(watched, records, strict=True):
                if record is None or not self.allowed(request, job_id, record):
                    remaining.discard(job_id)
                    continue
                if core.is_newer(record, shown.get(job_id)):
                    shown[job_id] = record
                    last_sent = time.monotonic()
                    yield core.sse_event(core.with_id(job_id, record, self.options))
                if core.is_finished(record):
                    remaining.discard(job_id)
            if not remaining:
                return
            if time.monotonic() - last_sent >= self.options.keepalive:
                last_sent = time.monotonic()
                yield core.SSE_KEEPALIVE
            time.sleep(self.options.poll_interval)


class _Counted:
    """An event stream that gives its slot back once: when it ends or the server closes it.

    A class rather than a generator: a generator closed before its first
    ``next()`` never runs its ``finally``, and a client can leave that early.
    """

    def __init__(self, events: Iterator[str], release: Callable[[], None]) -> None:
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
            close = getattr(self._events, "close", None)
            if close is not None:
                close()
            release()
