"""The ASGI application (Starlette): JSON, server-sent events, the dashboard and job pages.

Mount it in FastAPI or Starlette::

    app.mount("/status", jobstatus.web.create_app(authorize=can_read))
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .._record import Record
from ..stores.base import Store
from . import core, plan, routes
from ._perform_async import Changes, aevents, aperform_step
from .core import WebOptions
from .guard import MAX_BODY_BYTES
from .hub import Hub, Listener
from .routes import ROUTES
from .stream import SSE_HEADERS, SSE_MEDIA_TYPE, EventStream, StreamSlots


def create_app(
    store: object = None,
    authorize: Callable[[Any, str, Record], Any] | None = None,
    public: bool = False,
    expose: Iterable[str] = (),
    *,
    can_cancel: Callable[[Any, str, Record], Any] | None = None,
    can_delete: Callable[[Any, str, Record], Any] | None = None,
    operator: Callable[[Any], Any] | None = None,
    metrics: bool = False,
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
        can_cancel: ``can_cancel(request, job_id, record) -> bool`` (or async)
            lets a request cancel a job (``POST /jobs/{id}/cancel``); without
            it, or when it says anything but True, the route answers 404.
            Cross-site requests are refused whatever it says.
        can_delete: the same for ``POST /jobs/{id}/delete``.
        operator: ``operator(request) -> bool`` (or async): operators see failure
            reasons in the listing and the dashboard, and the store-wide counts.
        metrics: serve ``GET /metrics`` (``jobstatus.metrics.arender``: Prometheus text,
            or OpenMetrics when the request's Accept asks for it).
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
        can_cancel=can_cancel,
        can_delete=can_delete,
        operator=operator,
        metrics=metrics,
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
        Route(_pattern(route), endpoint.serve(route), methods=[route.method]) for route in ROUTES
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

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await endpoint.aclose()

    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.jobstatus = endpoint
    return app


def _pattern(route: routes.Route) -> str:
    return route.pattern(lambda name: f"{{{name}}}", lambda name: f"{{{name}:path}}")


async def _body(request: Request) -> bytes:
    """The first bytes of the body: one more than a changing route accepts, at most."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            break
    return body[: MAX_BODY_BYTES + 1]


def _params(request: Request) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        params.setdefault(key, []).append(value)
    return params


class _EventStream(StreamingResponse):
    """A streaming response that releases its stream slot however it ends."""

    def __init__(self, body: AsyncIterator[str], on_close: Callable[[], None]) -> None:
        super().__init__(body, media_type=SSE_MEDIA_TYPE, headers=SSE_HEADERS)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


class _Watching:
    """A stream slot and the hub listener of the stream that holds it."""

    def __init__(self, release: Callable[[], None], hub: Hub, listener: Listener) -> None:
        self.listener = listener
        self._release = release
        self._hub = hub

    def close(self) -> None:
        self._hub.forget(self.listener)  # forgetting twice is harmless
        self._release()


class _Endpoint:
    """Serves the routes of :data:`ROUTES`, sharing the options, the store, the hub and
    the stream slots; each step of a route's plan is done with the store's async methods."""

    def __init__(self, options: WebOptions) -> None:
        self.options = options
        self._store: Store | None = None
        self._hub: Hub | None = None
        self.slots = StreamSlots(options.max_streams)

    @property
    def streams(self) -> int:
        """Event streams open now."""
        return self.slots.open

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

    async def aclose(self) -> None:
        """Close the hub's subscriptions, if it ever ran (the app's shutdown)."""
        if self._hub is not None:
            await self._hub.aclose()

    def serve(self, route: routes.Route) -> Callable[[Request], Awaitable[Response]]:
        """The Starlette endpoint of one route."""

        async def endpoint(request: Request) -> Response:
            asked = routes.Request(
                native=request,
                path_params=request.path_params,
                query_string=request.url.query,
                parse_query=partial(_params, request),
                headers=request.headers,
                base=str(request.scope.get("root_path", "")),
                host=request.headers.get("host", ""),
                body=await _body(request) if route.method == "POST" else b"",
            )
            result = await plan.arun(routes.answer(route, asked, self.options), self.perform)
            if isinstance(result, plan.StreamAnswer):
                return _EventStream(self._events(request, result), result.opened.close)
            return Response(
                result.body,
                status_code=result.status,
                media_type=result.media_type,
                headers=result.headers,
            )

        return endpoint

    async def perform(self, step: plan.Step) -> Any:
        """Do one step of a plan (see :mod:`jobstatus.web.plan`)."""
        store = self.store
        if isinstance(step, plan.StoreStep):
            return await aperform_step(store, step, self.ask)
        # The listener starts before the plan reads the jobs, so no change falls between.
        release = self.slots.take()
        return _Watching(release, self.hub, self.hub.listen(step.job_ids))

    async def ask(self, hook_name: str, request: Request, *args: Any) -> bool:
        """The verdict of one of the application's hooks, awaited if it is async; only
        True is a yes, and a hook that raised is a logged no."""
        hook = getattr(self.options, hook_name)
        verdict = core.authorized(hook, request, *args, name=hook_name)
        if inspect.isawaitable(verdict):
            try:
                verdict = await verdict
            except Exception:
                return core.hook_failed(hook_name, args[0] if args else None)
        return verdict is True

    def _events(self, request: Request, answer: plan.StreamAnswer) -> AsyncIterator[str]:
        """The stream's texts, from the changes the hub gives its listener."""
        watching = answer.opened
        assert isinstance(watching, _Watching)
        reads = _changes(watching.listener, answer.stream)
        return aevents(answer, reads, request, self.options, self.ask)


async def _changes(listener: Listener, stream: EventStream) -> AsyncGenerator[Changes, None]:
    """The next records of the stream's jobs, each time the hub says they may have changed."""
    while True:
        yield await listener.changes(stream.quiet_time())
