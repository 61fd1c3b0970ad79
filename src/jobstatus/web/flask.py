"""The status endpoint in Flask: a blueprint to register.

Example::

    from flask import Flask
    import jobstatus.web.flask

    app = Flask(__name__)
    app.register_blueprint(
        jobstatus.web.flask.blueprint(authorize=can_read), url_prefix="/status"
    )

The routes and answers are those of :func:`jobstatus.web.create_app`, built
from the same table (:data:`jobstatus.web.routes.ROUTES`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from .._record import Record
from ..stores.base import require
from .core import WebOptions
from .guard import MAX_BODY_BYTES
from .routes import ROUTES, Answer, Request, Route
from .sync import SyncEndpoint

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
    With Flask-WTF's ``CSRFProtect``, exempt the blueprint
    (``csrf.exempt(bp)``): its routes that change jobs check the origin
    themselves (:mod:`jobstatus.web.guard`).

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
    # Werkzeug's own path converter refuses an id that starts with "/", and it merges
    # repeated slashes with a 308 redirect ("/static//0" went to "/static/0", an id
    # that starts with "/" to another job's URL): Starlette and Django answer such
    # paths 404, or route the id as it is, and so does this.
    converter = _job_id_converter()
    bp.record_once(lambda state: state.app.url_map.converters.setdefault(JOB_ID, converter))
    for route in ROUTES:
        rule = route.pattern(lambda name: f"<{name}>", lambda name: f"<{JOB_ID}:{name}>")
        bp.add_url_rule(
            rule,
            endpoint=f"jobstatus_{route.handler.__name__}",
            view_func=_view(flask, endpoint, route),
            methods=[route.method],
            merge_slashes=False,
        )
    return bp


def _view(flask: Any, endpoint: SyncEndpoint, route: Route) -> Callable[..., Any]:
    def view(**path_params: str) -> Any:
        request = flask.request
        asked = Request(
            native=request._get_current_object(),
            path_params=path_params,
            query_string=request.query_string.decode("latin-1"),
            parse_query=partial(_params, request.args),
            headers=request.headers,
            base=_base(request.script_root + request.path, route.fill(path_params)),
            host=request.host,
            body=request.stream.read(MAX_BODY_BYTES + 1) if route.method == "POST" else b"",
        )
        return _response(flask, endpoint.answer(route, asked))

    return view


def _job_id_converter() -> type:
    from werkzeug.routing import PathConverter  # Flask's own dependency, there once Flask is

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
    if isinstance(answer.body, (str, bytes)):
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
