"""The status endpoint in Django: URL patterns to ``include()``.

Example (``urls.py``)::

    from django.urls import include, path
    import jobstatus.web.django

    def can_read(request, job_id, record):
        return request.user.is_authenticated and record.get("user") == request.user.pk

    urlpatterns = [
        path("status/", include(jobstatus.web.django.urls(authorize=can_read))),
    ]

The routes and answers are those of :func:`jobstatus.web.create_app`, built
from the same table (:data:`jobstatus.web.routes.ROUTES`). Django is an
optional dependency, so it is imported inside the functions, which run only
once :func:`urls` has checked that it is installed.

The views are ``csrf_exempt``: the app's own pages send their cancel and
delete POSTs with ``fetch`` and no CSRF token, and every route that changes
a job makes the checks of :mod:`jobstatus.web.guard` itself (same origin by
``Sec-Fetch-Site`` or ``Origin`` against ``request.get_host()``, which Django
checks against ``ALLOWED_HOSTS``; a JSON body; the application's hook), which
refuse a cross-site form POST as Django's middleware would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from .._record import Record
from ..stores.base import require
from .core import ApiError, WebOptions
from .guard import MAX_BODY_BYTES
from .routes import ROUTES, Answer, Request, Route
from .sync import SyncEndpoint


def urls(
    store: object = None,
    authorize: Callable[[Any, str, Record], bool] | None = None,
    public: bool = False,
    expose: Iterable[str] = (),
    **options: Any,
) -> list[Any]:
    """URL patterns serving the status routes; mount them with ``include()``.

    Takes the options of :func:`jobstatus.web.create_app` except
    ``cors_origins`` (use django-cors-headers). ``authorize`` receives the
    ``HttpRequest``.

    Raises:
        ConfigurationError: Django is not installed.
        ValueError, TypeError: an option is out of range or of the wrong type.
    """
    require("django", "django")
    from django.urls import path

    web_options = WebOptions.build(
        store=store, authorize=authorize, public=public, expose=expose, **options
    )
    if web_options.cors_origins:
        raise ValueError("cors_origins is not supported in Django; use django-cors-headers")
    endpoint = SyncEndpoint(web_options)
    by_path: dict[str, dict[str, Route]] = {}  # in ROUTES' order: Django takes the first match
    names: dict[str, str] = {}
    for route in ROUTES:
        pattern = _pattern(route)
        by_path.setdefault(pattern, {})[route.method] = route
        names.setdefault(pattern, f"jobstatus-{route.name}")
    return [
        path(pattern, _view(endpoint, by_method), name=names[pattern])
        for pattern, by_method in by_path.items()
    ]


def _fallback(
    method: str, path: str, skip: dict[str, Route]
) -> tuple[Route, dict[str, str]] | None:
    """The route a router that matches methods too would pick for ``path``.

    Django matches paths only: ``GET /jobs/a/cancel`` reaches the pattern of
    ``POST /jobs/{id}/cancel``, where Starlette and Flask serve it as the job
    ``a/cancel``. The first later route of the method whose path matches wins.
    """
    for route in ROUTES:
        if route.method != method or route in skip.values():
            continue
        params = route.match(path)
        if params is not None:
            return route, params
    return None


def _pattern(route: Route) -> str:
    pattern = route.pattern(lambda name: f"<str:{name}>", lambda name: f"<path:{name}>")
    return pattern.removeprefix("/")


def _view(endpoint: SyncEndpoint, by_method: dict[str, Route]) -> Callable[..., Any]:
    """The view of one path: a Django URL pattern matches paths, not methods."""
    from django.http import HttpResponseNotAllowed
    from django.views.decorators.csrf import csrf_exempt

    def view(request: Any, **path_params: str) -> Any:
        route = by_method.get(request.method)
        if route is None:
            served = next(iter(by_method.values())).fill(path_params)
            found = _fallback(request.method, served, by_method)
            if found is None:
                return HttpResponseNotAllowed(list(by_method))
            route, path_params = found
        asked = Request(
            native=request,
            path_params=path_params,
            query_string=request.META.get("QUERY_STRING", ""),
            parse_query=partial(_params, request),
            headers=request.headers,
            base=_base(request.path, route.fill(path_params)),
            host=_host(request),
            body=request.read(MAX_BODY_BYTES + 1) if route.method == "POST" else b"",
        )
        return _response(endpoint.answer(route, asked))

    exempt: Callable[..., Any] = csrf_exempt(view)  # the routes check for themselves (above)
    return exempt


def _host(request: Any) -> str:
    from django.core.exceptions import DisallowedHost

    try:
        return str(request.get_host())
    except DisallowedHost:
        return ""  # a host Django does not serve is no origin to trust


def _params(request: Any) -> dict[str, list[str]]:
    from django.core.exceptions import TooManyFieldsSent

    try:
        return {key: values for key, values in request.GET.lists()}
    except TooManyFieldsSent as exc:
        # Django would answer its own HTML 400; the endpoint's errors are JSON.
        raise ApiError(400, "too many query parameters") from exc


def _base(path: str, suffix: str) -> str:
    return path[: len(path) - len(suffix)] if path.endswith(suffix) else path


def _response(answer: Answer) -> Any:
    from django.http import HttpResponse, StreamingHttpResponse

    response: Any
    if not isinstance(answer.body, (str, bytes)):
        response = StreamingHttpResponse(
            answer.body, status=answer.status, content_type=answer.media_type
        )
    else:
        response = HttpResponse(answer.body, status=answer.status, content_type=answer.media_type)
    for name, value in answer.headers.items():
        response[name] = value
    return response
