"""The status endpoint in Flask: a blueprint to register.

Example::

    from flask import Flask
    import jobstatus.web.flask

    app = Flask(__name__)
    app.register_blueprint(
        jobstatus.web.flask.blueprint(authorize=can_read), url_prefix="/status"
    )

The routes and answers are those of :func:`jobstatus.web.create_app`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from .._record import Record
from ..stores.base import require
from .core import WebOptions
from .sync import Answer, SyncEndpoint

JOB_ID = "jobstatus_job_id"  # the URL converter of job ids in the blueprint's routes


def blueprint(
    store: object = None,
    authorize: Callable[[Any, str, Record], bool] | None = None,
    public: bool = False,
    expose: Iterable[str] = (),
    *,
    name: str = "jobstatus",
    **options: Any,
) -> Any:
    """A Flask ``Blueprint`` serving the status routes.

    Takes the options of :func:`jobstatus.web.create_app` except
    ``cors_origins`` (use flask-cors). ``authorize`` receives Flask's
    ``request``; event streams keep the request context, so hooks that use
    ``flask.request`` or Flask-Login's ``current_user`` work there too.

    Raises:
        ConfigurationError: Flask is not installed.
        ValueError, TypeError: an option is out of range or of the wrong type.
    """
    flask: Any = require("flask", "flask")
    web_options = WebOptions.build(
        store=store, authorize=authorize, public=public, expose=expose, **options
    )
    if web_options.cors_origins:
        raise ValueError("cors_origins is not supported in Flask; use flask-cors")
    endpoint = SyncEndpoint(web_options)
    bp = flask.Blueprint(name, __name__)

    def serve(route: str, suffix: Callable[[dict[str, str]], str] | None = None) -> Any:
        def view(**kwargs: str) -> Any:
            request = flask.request
            extra: dict[str, Any] = dict(kwargs)
            if suffix is not None:
                extra["base"] = _base(request.script_root + request.path, suffix(kwargs))
            if route == "events":
                extra["last_event_id"] = request.headers.get("Last-Event-ID") or None
            params = partial(_params, request.args)
            query = request.query_string.decode("latin-1")
            real_request = request._get_current_object()
            return _response(flask, endpoint.answer(route, real_request, query, params, **extra))

        view.__name__ = f"jobstatus_{route}"
        return view

    # Werkzeug merges repeated slashes with a 308 redirect: "/static//0" went to
    # "/static/0", and an id that starts with "/" to another job's URL. Starlette and
    # Django answer such paths 404 (or route the id as it is); so does this.
    rule: dict[str, Any] = {"methods": ["GET"], "merge_slashes": False}
    bp.add_url_rule("/", view_func=serve("dashboard", lambda kw: "/"), **rule)
    bp.add_url_rule("/jobs", view_func=serve("jobs"), **rule)
    bp.add_url_rule("/events", view_func=serve("many_events"), **rule)
    bp.add_url_rule("/static/<name>", view_func=serve("static"), **rule)
    # Werkzeug's own path converter refuses an id that starts with "/".
    converter = _job_id_converter()
    bp.record_once(lambda state: state.app.url_map.converters.setdefault(JOB_ID, converter))
    bp.add_url_rule(f"/jobs/<{JOB_ID}:job_id>/events", view_func=serve("events"), **rule)
    bp.add_url_rule(
        f"/jobs/<{JOB_ID}:job_id>/view",
        view_func=serve("view", lambda kw: f"/jobs/{kw['job_id']}/view"),
        **rule,
    )
    bp.add_url_rule(f"/jobs/<{JOB_ID}:job_id>", view_func=serve("job"), **rule)
    return bp


def _job_id_converter() -> type:
    from werkzeug.routing import PathConverter

    class JobIdConverter(PathConverter):
        """Any job id, even one that starts with "/" or is empty (which answers a 400)."""

        regex = ".*?"
        part_isolating = False

    return JobIdConverter


def _params(args: Any) -> dict[str, list[str]]:
    return {key: args.getlist(key) for key in args}


def _base(path: str, suffix: str) -> str:
    return path[: len(path) - len(suffix)] if path.endswith(suffix) else path


def _response(flask: Any, answer: Answer) -> Any:
    if not answer.streaming:
        return flask.Response(
            answer.body,
            status=answer.status,
            content_type=answer.media_type,
            headers=answer.headers,
        )
    events: Any = answer.body
    response = flask.Response(
        flask.stream_with_context(events),
        status=answer.status,
        content_type=answer.media_type,
        headers=answer.headers,
    )
    # stream_with_context does not close a stream that never started; this does.
    response.call_on_close(events.close)
    return response
