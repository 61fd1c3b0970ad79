"""The ASGI application (Starlette): JSON, server-sent events, the dashboard and job pages.

Mount it in FastAPI or Starlette::

    app.mount("/status", jobstatus.web.create_app(authorize=can_read))
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .._batch import Batch
from .._errors import NotSupportedError, StoreError
from .._read import arecent
from .._record import Record
from .._status import aread_status
from ..stores.base import Store
from . import core
from .core import ApiError, WebOptions
from .hub import Hub, Listener

Handler = Callable[[Request], Awaitable[Response]]


def create_app(
    store: object = None,
    authorize: Callable[[Any, str, Record], Any] | None = None,
    public: bool = False,
    expose: Iterable[str] = (),
    *,
    private: Iterable[str] = (),
    cors_origins: Iterable[str] = (),
    max_streams: int = 1000,
    max_batch_ids: int = 1000,
    max_query_bytes: int = 32_768,
    max_listing: int = 500,
    keepalive: float = core.KEEPALIVE,
    poll_interval: float = 0.2,
    push_jobs: int = 32,
) -> Starlette:
    """The status endpoint as an ASGI app, safe by default.

    Args:
        store: a URL, Store or client; None uses the configured default store.
        authorize: ``authorize(request, job_id, record) -> bool`` (or an async
            function) decides who may read a job. A forbidden job answers the
            same 404 as an unknown one.
        public: serve the listing and the dashboard without an ``authorize`` hook
            (they answer 404 otherwise).
        expose: private keys to serve anyway: ``"exception"``, ``"serialized_job"``.
        private: the application's own keys never to serve.
        cors_origins: origins allowed to read the JSON routes (no CORS headers otherwise).
        max_streams: event streams open at once in this process; more get a 503.
        max_batch_ids: ids per batch or event-stream request; more get a 400.
        max_query_bytes: query strings longer than this get a 414.
        max_listing: the largest ``limit`` of a listing.
        keepalive: seconds between keep-alive comments on an idle event stream.
        poll_interval: seconds between two reads of the jobs that streams watch.
        push_jobs: watched jobs that also follow the store's pushes (Redis,
            PostgreSQL) so their changes arrive at once; 0 turns it off.

    Raises:
        ValueError, TypeError: an option is out of range or of the wrong type.

    Example::

        app = jobstatus.web.create_app(store="redis://localhost", authorize=owns_job)
    """
    options = WebOptions.build(
        store=store,
        authorize=authorize,
        public=public,
        expose=expose,
        private=private,
        cors_origins=cors_origins,
        max_streams=max_streams,
        max_batch_ids=max_batch_ids,
        max_query_bytes=max_query_bytes,
        max_listing=max_listing,
        keepalive=keepalive,
        poll_interval=poll_interval,
        push_jobs=push_jobs,
    )
    endpoint = _Endpoint(options)
    routes = [
        Route("/", endpoint.guard(endpoint.dashboard, listing=True), methods=["GET"]),
        Route("/jobs", endpoint.guard(endpoint.jobs), methods=["GET"]),
        Route("/events", endpoint.guard(endpoint.many_events), methods=["GET"]),
        Route("/static/{name}", endpoint.guard(endpoint.static), methods=["GET"]),
        Route("/jobs/{job_id:path}/events", endpoint.guard(endpoint.events), methods=["GET"]),
        Route("/jobs/{job_id:path}/view", endpoint.guard(endpoint.view), methods=["GET"]),
        Route("/jobs/{job_id:path}", endpoint.guard(endpoint.job), methods=["GET"]),
    ]
    middleware = []
    if options.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(options.cors_origins),
                allow_methods=["GET"],
                allow_headers=["Last-Event-ID"],
            )
        )
    app = Starlette(routes=routes, middleware=middleware)
    app.state.jobstatus = endpoint
    return app


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        core.to_json(body),
        status_code=status,
        media_type="application/json",
        headers={**core.JSON_HEADERS, **(headers or {})},
    )


def _error(error: ApiError) -> Response:
    return Response(
        error.body(),
        status_code=error.status,
        media_type="application/json",
        headers={**core.JSON_HEADERS, **error.headers},
    )


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", ""))


class _EventStream(StreamingResponse):
    """A streaming response that releases its stream slot however it ends."""

    def __init__(self, body: AsyncIterator[str], on_close: Callable[[], None]) -> None:
        super().__init__(body, media_type="text/event-stream", headers=core.SSE_HEADERS)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


class _Endpoint:
    """The handlers, sharing the options, the store, the hub and the stream count."""

    def __init__(self, options: WebOptions) -> None:
        self.options = options
        self._store: Store | None = None
        self._hub: Hub | None = None
        self.streams = 0

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = self.options.resolve_store()
        return self._store

    @property
    def hub(self) -> Hub:
        """The process's one reader of watched jobs."""
        if self._hub is None:
            options = self.options
            self._hub = Hub(
                self.store, poll_interval=options.poll_interval, push_jobs=options.push_jobs
            )
        return self._hub

    def guard(self, handler: Handler, *, listing: bool = False) -> Handler:
        """Turn the errors a request can cause into short JSON answers.

        ``listing``: a route served only when listing is allowed (404 otherwise,
        whatever the query).
        """

        async def guarded(request: Request) -> Response:
            try:
                if listing:
                    core.require_listing(self.options)
                core.check_query(request.url.query, self.options)
                return await handler(request)
            except ApiError as error:
                return _error(error)
            except StoreError as exc:
                return _error(core.store_unavailable(exc))

        return guarded

    async def allowed(self, request: Request, job_id: str, record: Record) -> bool:
        hook = self.options.authorize
        if hook is None:
            return True
        verdict = core.authorized(hook, request, job_id, record)
        if inspect.isawaitable(verdict):
            try:
                verdict = await verdict
            except Exception:
                return core.hook_failed(job_id)
        return verdict is True

    async def readable(self, request: Request, job_id: str) -> Record:
        """The record of a job this request may read, or the one 404."""
        status = await aread_status(self.store, job_id)
        record = status.to_dict()
        if not status.exists or not await self.allowed(request, job_id, record):
            raise core.not_found()
        return record

    def params(self, request: Request) -> dict[str, list[str]]:
        params: dict[str, list[str]] = {}
        for key, value in request.query_params.multi_items():
            params.setdefault(key, []).append(value)
        return params

    # -- JSON -----------------------------------------------------------------------

    async def job(self, request: Request) -> Response:
        job_id = core.parse_job_id(request.path_params["job_id"])
        core.only_params(self.params(request), ())
        record = await self.readable(request, job_id)
        return _json(core.visible(record, self.options))

    async def jobs(self, request: Request) -> Response:
        params = self.params(request)
        if "ids" in params:
            core.only_params(params, ("ids",))
            return _json(await self.batch(request, core.parse_ids(params, self.options)))
        core.require_listing(self.options)
        query = core.parse_listing(params, self.options)
        try:
            rows = await arecent(query.status, query.limit, query.before, store=self.store)
        except NotSupportedError as exc:
            raise core.listing_unsupported(exc) from exc
        shown = [row for row in rows if await self.allowed(request, row.job_id, row.to_dict())]
        return _json(core.listing_json(shown, self.options))

    async def batch(self, request: Request, job_ids: list[str]) -> Record:
        batch = await Batch(job_ids, store=self.store).arefresh()
        allowed = [
            status.exists and await self.allowed(request, status.job_id, status.to_dict())
            for status in batch.statuses
        ]
        return core.batch_json(batch, allowed, self.options)

    # -- event streams ----------------------------------------------------------------

    def open_stream(self) -> Callable[[], None]:
        """Take one of the process's stream slots, or answer 503."""
        if self.streams >= self.options.max_streams:
            raise ApiError(
                503,
                f"too many event streams open ({self.options.max_streams}); try again later",
                {"Retry-After": "5"},
            )
        self.streams += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.streams -= 1

        return release

    async def events(self, request: Request) -> Response:
        job_id = core.parse_job_id(request.path_params["job_id"])
        core.only_params(self.params(request), ())
        release = self.open_stream()
        try:
            listener = self.hub.listen([job_id])
            try:
                record = await self.readable(request, job_id)
            except BaseException:
                self.hub.forget(listener)
                raise
        except BaseException:
            release()
            raise
        resume = core.last_event_id(request.headers)
        if core.stream_over(record, resume):
            self.hub.forget(listener)
            release()
            return Response(status_code=204, headers=core.SSE_HEADERS)
        seen = core.already_seen(record, resume)
        shown = {job_id: seen} if seen is not None else {}
        body = self._stream(request, listener, {job_id: record}, shown, single=True)
        return _EventStream(body, release)

    async def many_events(self, request: Request) -> Response:
        params = self.params(request)
        core.only_params(params, ("ids",))
        job_ids = core.parse_ids(params, self.options)
        release = self.open_stream()
        try:
            listener = self.hub.listen(job_ids)
            try:
                records = await self.store.aread_many(job_ids)
            except BaseException:
                self.hub.forget(listener)
                raise
        except BaseException:
            release()
            raise
        first = dict(zip(job_ids, records, strict=True))
        body = self._stream(request, listener, first, {}, single=False)
        return _EventStream(body, release)

    async def _stream(
        self,
        request: Request,
        listener: Listener,
        changes: dict[str, Record | None],
        shown: dict[str, Record],
        *,
        single: bool,
    ) -> AsyncIterator[str]:
        options = self.options
        remaining = set(listener.job_ids)
        try:
            while True:
                for job_id, record in changes.items():
                    if job_id not in remaining:
                        continue
                    if record is None or not await self.allowed(request, job_id, record):
                        remaining.discard(job_id)
                        continue
                    if core.is_newer(record, shown.get(job_id)):
                        shown[job_id] = record
                        if single:
                            yield core.sse_event(
                                core.visible(record, options), event_id=core.event_id(record)
                            )
                        else:
                            yield core.sse_event(core.with_id(job_id, record, options))
                    if core.is_finished(record):
                        remaining.discard(job_id)
                if not remaining:
                    return
                changes = await listener.changes(options.keepalive)
                if not changes:
                    yield core.SSE_KEEPALIVE
        finally:
            self.hub.forget(listener)

    # -- pages ------------------------------------------------------------------------

    async def dashboard(self, request: Request) -> Response:
        core.only_params(self.params(request), ())
        return HTMLResponse(core.dashboard_page(_base(request)), headers=core.PAGE_HEADERS)

    async def view(self, request: Request) -> Response:
        job_id = core.parse_job_id(request.path_params["job_id"])
        core.only_params(self.params(request), ())
        try:
            await self.readable(request, job_id)
        except ApiError as error:
            if error.status != 404:
                raise
            page = core.missing_page(_base(request))
            return HTMLResponse(page, status_code=404, headers=core.PAGE_HEADERS)
        return HTMLResponse(core.job_page(_base(request), job_id), headers=core.PAGE_HEADERS)

    async def static(self, request: Request) -> Response:
        data, media_type = core.static_file(request.path_params["name"])
        headers = {"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"}
        return Response(data, media_type=media_type, headers=headers)
