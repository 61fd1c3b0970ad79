"""The status endpoint in Django: URL patterns to ``include()``.

Example (``urls.py``)::

    from django.urls import include, path
    import jobstatus.web.django

    def can_read(request, job_id, record):
        return request.user.is_authenticated and record.get("user") == request.user.pk

    urlpatterns = [
        path("status/", include(jobstatus.web.django.urls(authorize=can_read))),
    ]

The routes and answers are those of :func:`jobstatus.web.create_app`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from .._record import Record
from ..stores.base import require
from .core import ApiError, WebOptions
from .sync import Answer, SyncEndpoint


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
    from django.views.decorators.http import require_GET

    web_options = WebOptions.build(
        store=store, authorize=authorize, public=public, expose=expose, **options
    )
    if web_options.cors_origins:
        raise ValueError("cors_origins is not supported in Django; use django-cors-headers")
    endpoint = SyncEndpoint(web_options)

    def serve(route: str, suffix: Callable[[dict[str, str]], str] | None = None) -> Any:
        def view(request: Any, **kwargs: str) -> Any:
            extra: dict[str, Any] = dict(kwargs)
            if suffix is not None:
                extra["base"] = _base(request.path, suffix(kwargs))
            if route == "events":
                extra["last_event_id"] = request.headers.get("Last-Event-ID") or None
            query = request.META.get("QUERY_STRING", "")
            params = partial(_params, request)
            return _response(endpoint.answer(route, request, query, params, **extra))

        return require_GET(view)

    return [
        path("", serve("dashboard", lambda kw: ""), name="jobstatus-dashboard"),
        path("jobs", serve("jobs"), name="jobstatus-jobs"),
        path("events", serve("many_events"), name="jobstatus-events"),
        path("static/<str:name>", serve("static"), name="jobstatus-static"),
        path("jobs/<path:job_id>/events", serve("events"), name="jobstatus-job-events"),
        path(
            "jobs/<path:job_id>/view",
            serve("view", lambda kw: f"jobs/{kw['job_id']}/view"),
            name="jobstatus-job-view",
        ),
        path("jobs/<path:job_id>", serve("job"), name="jobstatus-job"),
    ]


def _params(request: Any) -> dict[str, list[str]]:
    from django.core.exceptions import TooManyFieldsSent

    try:
        return {key: values for key, values in request.GET.lists()}
    except TooManyFieldsSent as exc:
        # Django would answer its own HTML 400; the endpoint's errors are JSON.
        raise ApiError(400, "too many query parameters") from exc


def _base(path: str, suffix: str) -> str:
    return path[: len(path) - len(suffix)] if suffix and path.endswith(suffix) else path


def _response(answer: Answer) -> Any:
    from django.http import HttpResponse, StreamingHttpResponse

    response: Any
    if answer.streaming:
        response = StreamingHttpResponse(
            answer.body, status=answer.status, content_type=answer.media_type
        )
    else:
        response = HttpResponse(answer.body, status=answer.status, content_type=answer.media_type)
    for name, value in answer.headers.items():
        response[name] = value
    return response
