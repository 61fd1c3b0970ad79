"""What the web endpoint decides, without any web framework.

The Starlette app and the Django and Flask adapters all call this module, so a
request means the same thing whichever framework serves it: which ids and
query strings are valid, which keys a reader may see, who may read a job, the
JSON of a batch and of a listing, and the pages. The routes are in
``routes``, the rules of an event stream in ``stream``.
"""

from __future__ import annotations

import contextlib
import html
import logging
import math
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Final, cast

from .. import metrics
from .._batch import Batch
from .._config import settings, store_or_default
from .._errors import ConfigurationError, NotSupportedError, StoreError
from .._read import MAX_RECENT
from .._record import (
    FINISHED_STATES,
    MAX_NESTING,
    STATES,
    JSONValue,
    Record,
    dumps,
    validate_job_id,
)
from .._status import Status
from ..stores.base import Store

PRIVATE_KEYS: Final = frozenset({"serialized_job", "exception"})
KEEPALIVE: Final = 15.0  # seconds between keep-alive comments on an idle stream
NOT_FOUND: Final = "no such job"
STATIC_FILES: Final = {
    "jobstatus.js": "text/javascript",
    "jobstatus.css": "text/css",
    "jobstatus-bar.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}
# Keys the web layer computes for every job it serves; a job's own key of the
# same name is not served.
COMPUTED_KEYS: Final = ("job_id", "name", "percent", "eta")

Authorize = Callable[[Any, str, Record], Any]
Operator = Callable[[Any], Any]

log = logging.getLogger("jobstatus.web")


class ApiError(Exception):
    """A request that gets a short JSON error: ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> str:
        """The JSON body of the error response."""
        return dumps({"error": self.message})


def not_found() -> ApiError:
    """The one answer for unknown, expired and forbidden jobs alike."""
    return ApiError(404, NOT_FOUND)


@dataclass(frozen=True)
class WebOptions:
    """The choices an application makes when it mounts the endpoint.

    Attributes:
        store: a URL, Store or client; None means the configured default store.
        authorize: ``authorize(request, job_id, record) -> bool`` decides who may
            read a job; the Starlette app also accepts an async hook.
        public: serve the listing and the dashboard without an ``authorize`` hook.
        can_cancel: ``can_cancel(request, job_id, record) -> bool`` decides who may
            cancel a job over HTTP; without it nobody may.
        can_delete: the same for deleting a job's record.
        operator: ``operator(request) -> bool`` decides who sees what only
            operators see: failure reasons in the listing, store-wide counts.
        metrics: serve ``GET /metrics`` (Prometheus text, or OpenMetrics when asked).
        expose: private keys to serve anyway (``"exception"``, ``"serialized_job"``).
        private: the application's own keys never to serve.
        cors_origins: origins allowed to read the JSON routes from a browser.
        max_streams: event streams open at once per process; more get a 503.
        max_batch_ids: ids in one batch or event-stream request; more get a 400.
        max_query_bytes: length of a query string; longer gets a 414.
        max_listing: the largest ``limit`` of a listing.
        keepalive: seconds between keep-alive comments on an idle event stream.
        poll_interval: seconds between two reads of the watched jobs (event streams).
        push_jobs: watched jobs per process that also follow the store's pushes
            (Redis, PostgreSQL) for instant updates; the others wait for the next read.
    """

    store: object = None
    authorize: Authorize | None = None
    public: bool = False
    can_cancel: Authorize | None = None
    can_delete: Authorize | None = None
    operator: Operator | None = None
    metrics: bool = False
    expose: frozenset[str] = frozenset()
    private: frozenset[str] = frozenset()
    cors_origins: tuple[str, ...] = ()
    max_streams: int = 1000
    max_batch_ids: int = 1000
    max_query_bytes: int = 32_768
    max_listing: int = 500
    keepalive: float = KEEPALIVE
    poll_interval: float = 0.2
    push_jobs: int = 32
    hidden: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        for name in ("authorize", "can_cancel", "can_delete", "operator"):
            hook = getattr(self, name)
            if hook is not None and not callable(hook):
                raise TypeError(f"{name} must be a function or None; got {hook!r}")
        for name in ("max_streams", "max_batch_ids", "max_query_bytes", "max_listing"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int; got {value!r}")
        if isinstance(self.push_jobs, bool) or not isinstance(self.push_jobs, int):
            raise ValueError(f"push_jobs must be an int; got {self.push_jobs!r}")
        if self.push_jobs < 0:
            raise ValueError(f"push_jobs must not be negative; got {self.push_jobs!r}")
        for name in ("keepalive", "poll_interval"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds; got {value!r}")
        if self.max_listing > MAX_RECENT:
            raise ValueError(f"max_listing must be at most {MAX_RECENT}; got {self.max_listing}")
        hidden = (PRIVATE_KEYS | self.private) - self.expose
        object.__setattr__(self, "hidden", frozenset(hidden))

    @classmethod
    def build(
        cls,
        *,
        expose: Iterable[str] = (),
        private: Iterable[str] = (),
        cors_origins: Iterable[str] = (),
        **options: Any,
    ) -> WebOptions:
        """Options from keyword arguments; ``expose``, ``private`` and ``cors_origins``
        take any iterable of names (a lone str is refused, it is almost always a typo)."""
        return cls(
            expose=_names("expose", expose),
            private=_names("private", private),
            cors_origins=tuple(_names("cors_origins", cors_origins)),
            **options,
        )

    @property
    def listing_allowed(self) -> bool:
        """The listing and dashboard are served only when the application says so."""
        return self.public or self.authorize is not None

    def resolve_store(self) -> Store:
        """The store to read (the configured default when none was given)."""
        return store_or_default(self.store)


def _names(option: str, names: Iterable[str]) -> frozenset[str]:
    if isinstance(names, str):
        raise TypeError(f"{option} must be a list of names such as ({names!r},), not a str")
    result = frozenset(names)
    for name in result:
        if not isinstance(name, str):
            raise TypeError(f"{option} entries must be str; got {name!r}")
    return result


# -- requests ------------------------------------------------------------------------


def parse_job_id(raw: str) -> str:
    """A job id from a URL path, or a 400."""
    try:
        return validate_job_id(raw)
    except (TypeError, ValueError) as exc:
        raise ApiError(400, f"malformed job id: {exc}") from exc


def check_query(query_string: str, options: WebOptions) -> None:
    """Bound the size of a request's query string (414 past ``max_query_bytes``)."""
    if len(query_string) > options.max_query_bytes:
        raise ApiError(414, f"the query string is longer than {options.max_query_bytes} bytes")


def only_params(params: Mapping[str, Sequence[str]], allowed: Iterable[str]) -> None:
    """A 400 naming any query parameter outside ``allowed``."""
    allowed = set(allowed)
    unknown = sorted(set(params) - allowed)
    if unknown:
        names = ", ".join(sorted(allowed)) or "none"
        raise ApiError(400, f"unknown query parameter {unknown[0]!r}; allowed: {names}")


def single(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    """The one value of query parameter ``name`` (None when absent; a 400 when repeated)."""
    values = params.get(name) or []
    if len(values) > 1:
        raise ApiError(400, f"give {name!r} once")
    return values[0] if values else None


def parse_ids(params: Mapping[str, Sequence[str]], options: WebOptions) -> list[str]:
    """The ids of ``?ids=a,b,c`` (also ``?ids=a&ids=b``), validated, repeats removed."""
    ids: list[str] = []
    for value in params.get("ids") or []:
        ids.extend(value.split(","))
    if not ids:
        raise ApiError(400, "ids must name at least one job id")
    if len(ids) > options.max_batch_ids:
        raise ApiError(400, f"at most {options.max_batch_ids} ids per request; got {len(ids)}")
    return list(dict.fromkeys(parse_job_id(job_id) for job_id in ids))


def require_listing(options: WebOptions) -> None:
    """The one 404 for the listing and the dashboard while listing is off.

    Asked before the query is looked at, so no query string (unknown, malformed
    or too long) tells these routes apart from a path the app does not serve.
    """
    if not options.listing_allowed:
        raise not_found()


def parse_limit(params: Mapping[str, Sequence[str]], options: WebOptions, *, default: int) -> int:
    """``?limit=N`` from 1 to ``max_listing``, or a 400."""
    raw = single(params, "limit")
    limit = default if raw is None else parse_int(raw)
    if limit is None or not 1 <= limit <= options.max_listing:
        raise ApiError(400, f"limit must be an integer from 1 to {options.max_listing}")
    return limit


def parse_int(text: str) -> int | None:
    """A small non-negative integer from its decimal digits, or None."""
    return int(text) if text.isascii() and text.isdigit() and len(text) < 10 else None


def last_event_id(headers: Mapping[str, str]) -> str | None:
    """The ``Last-Event-ID`` a reconnecting EventSource sends, if any."""
    value = headers.get("last-event-id")
    return value if value else None


# -- what a reader may see ----------------------------------------------------------


def visible(record: Record, options: WebOptions, reveal: Iterable[str] = ()) -> Record:
    """The record without the keys the application keeps private (but those in ``reveal``)."""
    hidden = options.hidden.difference(reveal)
    return {key: value for key, value in record.items() if key not in hidden}


def job_json(
    job_id: str, record: Record | None, options: WebOptions, reveal: Iterable[str] = ()
) -> Record:
    """What a reader is served of one job: its visible record and the computed keys.

    ``job_id``, ``name`` (the task's, or null), ``percent`` (0 to 100, null while
    the total is unknown) and ``eta`` (seconds left, estimated at ``updated_at``
    from the rate since ``started_at``; 0 once finished, null when unknown or
    stale) replace any key of the job's own with those names. A missing job is
    only its id and a null status.
    """
    if record is None:
        return {"job_id": job_id, "status": None}
    status = snapshot(job_id, record)
    progress = status.progress
    return {
        **visible(record, options, reveal),
        "job_id": job_id,
        "name": status.name,
        "percent": progress.percent,
        "eta": None if status.is_stale else progress.eta,
    }


def snapshot(job_id: str, record: Record) -> Status:
    """A read-only Status of ``record``, to ask what a snapshot answers (name, progress, ...).

    Its reading properties never touch a store, so it has none; writing through it fails.
    """
    return Status(job_id, record, cast(Store, None))


def authorized(hook: Callable[..., Any], request: Any, *args: Any, name: str = "authorize") -> Any:
    """The verdict of the application's hook ``name`` (an awaitable from an async
    hook); False if it raised.

    A hook is only asked about jobs that exist, so an error answer would tell
    whoever sent the request that the job is there: a hook that raises is a no,
    the same 404 as an unknown job, and its exception goes to the log.
    """
    try:
        return hook(request, *args)
    except Exception:
        return hook_failed(name, args[0] if args else None)


def hook_failed(name: str, job_id: str | None) -> bool:
    """Log the hook's exception (the one being handled); the verdict is no."""
    if job_id is None:
        log.exception("jobstatus.web: the %s hook raised; the answer is no", name)
    else:
        log.exception(
            "jobstatus.web: the %s hook raised for job %r; the answer is no", name, job_id
        )
    return False


def is_finished(record: Record) -> bool:
    """Completed, failed or cancelled."""
    return record.get("status") in FINISHED_STATES


def store_unavailable(exc: StoreError) -> ApiError:
    """A 503 that does not repeat the driver's message (it may name hosts or keys)."""
    return ApiError(503, "the status store is unavailable; try again later")


def listing_unsupported(*, searching: bool = False) -> ApiError:
    """A 501 for a store that cannot list (memcached, a generic cache), or search."""
    if searching:
        return ApiError(501, "this store cannot search jobs by name or id")
    return ApiError(501, "this store cannot list jobs; ask for them by id")


def is_unsupported(exc: Exception) -> bool:
    """Whether ``exc`` says the store cannot do it: a NotSupportedError, also one that
    ``call_store`` wrapped in a StoreError (a store that lists but cannot count or search)."""
    return isinstance(exc, NotSupportedError) or isinstance(exc.__cause__, NotSupportedError)


def reasons_for(operator: bool) -> tuple[str, ...]:
    """The private keys a listing reveals to this reader: failure reasons to operators."""
    return ("exception",) if operator else ()


def render_metrics(store: Store, accept: str | None = None) -> tuple[bytes, str]:
    """The body and media type of ``GET /metrics``: ``jobstatus.metrics.render(store, accept)``.

    ``accept`` is the request's Accept header (OpenMetrics when it asks for it).

    Raises:
        ApiError: 501 when prometheus_client (``jobstatus[prometheus]``) is not installed.
    """
    with _metrics_available():
        return metrics.render(store, accept)


async def arender_metrics(store: Store, accept: str | None = None) -> tuple[bytes, str]:
    """Async twin of :func:`render_metrics`, on ``jobstatus.metrics.arender``: the counts
    are awaited and the exposition runs in a thread, so the loop never blocks."""
    with _metrics_available():
        return await metrics.arender(store, accept)


@contextlib.contextmanager
def _metrics_available() -> Iterator[None]:
    """Turns prometheus_client's absence into the 501 that says what to install."""
    try:
        yield
    except ConfigurationError as exc:
        log.warning("jobstatus.web: /metrics cannot be served: %s", exc)
        message = "metrics are not available; pip install 'jobstatus[prometheus]'"
        raise ApiError(501, message) from exc


# -- responses ----------------------------------------------------------------------


def batch_json(batch: Batch, allowed: Sequence[bool], options: WebOptions) -> Record:
    """The summary of ``GET /jobs?ids=...``: forbidden members count as missing."""
    statuses = batch.statuses
    if not all(allowed):
        pairs = zip(statuses, allowed, strict=True)
        batch._load([s._record if s.exists and ok else None for s, ok in pairs])
        statuses = batch.statuses
    progress = batch.progress
    return {
        "status": batch.status,
        "counts": batch.counts,
        "stale": batch.stale,
        "progress": {"current": progress.current, "total": progress.total, "ratio": progress.ratio},
        "jobs": [job_json(s.job_id, s._record if s.exists else None, options) for s in statuses],
    }


def listing_json(rows: Sequence[Status], options: WebOptions, reveal: Iterable[str] = ()) -> Record:
    """The jobs of a listing, newest first, and the ``before`` of the next page."""
    jobs = [job_json(s.job_id, s._record, options, reveal) for s in rows]
    last = rows[-1].get("updated_at") if rows else None
    return {"jobs": jobs, "next_before": last if isinstance(last, str) else None}


def counts_json(found: Mapping[str, int]) -> Record:
    """``GET /counts``: each state's count, ``stale`` (working jobs, counted in both) and
    ``total`` (every job)."""
    counts = {state: int(found.get(state, 0)) for state in STATES}
    return {**counts, "stale": int(found.get("stale", 0)), "total": sum(counts.values())}


_SURROGATES: Final = re.compile("[\ud800-\udfff]")


def to_json(value: object) -> str:
    """``value`` as JSON text for a reader, whatever the store handed back.

    Writes are checked, but old data or a custom store can hold what JSON
    cannot: one such job must not turn a whole answer (a batch, a listing)
    into an error. The answer is then served with every such value replaced
    as :func:`servable` says, and the rest unchanged.
    """
    try:
        text = dumps(value)
    except (ValueError, TypeError, RecursionError):
        return dumps(servable(value))
    # Python 3.12+ may encode nesting far deeper than writes allow, where 3.11 raised:
    # only text with that many brackets can be that deep, so only it is walked.
    deep = text.count("[") + text.count("{") > MAX_NESTING
    if not deep and (text.isascii() or not _SURROGATES.search(text)):
        return text
    return dumps(servable(value))


def servable(value: object, depth: int = 0) -> JSONValue:
    """A copy of ``value`` that JSON and UTF-8 can carry.

    NaN and the infinities become null (as ``JSON.stringify`` does in a
    browser); so do values of other types (bytes, sets, objects), integers
    too long to print and anything nested deeper than writes allow (32
    levels). A lone surrogate in a string or key becomes U+FFFD; a key that
    is not a str is served as JSON would name it (``str()``; null, true, false).
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _SURROGATES.sub("\ufffd", value)
    if isinstance(value, int):
        try:
            str(value)
        except ValueError:  # more digits than int -> str allows
            return None
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth > MAX_NESTING:
        return None
    if isinstance(value, (list, tuple)):
        return [servable(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {_key_text(key): servable(item, depth + 1) for key, item in value.items()}
    return None


def _key_text(key: object) -> str:
    if isinstance(key, str):
        return _SURROGATES.sub("\ufffd", key)
    if key is None or isinstance(key, bool):
        return dumps(key)  # JSON's own spelling: null, true, false
    return _SURROGATES.sub("\ufffd", str(key))


JSON_HEADERS: Final = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
PAGE_HEADERS: Final = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'"
    ),
}


# -- pages --------------------------------------------------------------------------


@cache
def _template(name: str) -> string.Template:
    text = resources.files("jobstatus.web").joinpath("templates").joinpath(name).read_text("utf-8")
    return string.Template(text)


@cache
def static_file(name: str) -> tuple[bytes, str]:
    """The bytes and media type of one of the app's own static files.

    Raises:
        ApiError: 404 for any other name.
    """
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        raise not_found()
    data = resources.files("jobstatus.web").joinpath("static").joinpath(name).read_bytes()
    return data, media_type


def render_page(name: str, *, base: str, **values: str) -> str:
    """A page from ``templates/``; every value is HTML-escaped before it is placed.

    Every page also gets ``stale_after`` (seconds) and the server's clock
    (``now``), so its script can mark working jobs whose ``updated_at`` is
    older than that as stale, as ``Status.is_stale`` does, whatever the
    browser's clock says.
    """
    escaped = {key: html.escape(value, quote=True) for key, value in values.items()}
    return _template(name).substitute(
        base=html.escape(base.rstrip("/"), quote=True),
        stale_after=f"{settings.options.stale_after:g}",
        now=f"{time.time():.3f}",
        **escaped,
    )


def dashboard_page(base: str, *, refresh_seconds: float = 10.0) -> str:
    """The HTML of ``GET /``."""
    return render_page("dashboard.html", base=base, refresh=f"{refresh_seconds:g}")


def job_page(base: str, job_id: str, actions: Iterable[str] = (), *, listing: bool = False) -> str:
    """The HTML of ``GET /jobs/{id}/view``: ``actions`` are the buttons it shows
    (``cancel``, ``delete``), ``listing`` whether it links back to the dashboard."""
    return render_page(
        "job.html",
        base=base,
        job_id=job_id,
        actions=" ".join(actions),
        listing="true" if listing else "false",
    )


def missing_page(base: str) -> str:
    """The HTML 404 for a job page (unknown and forbidden alike)."""
    return render_page("missing.html", base=base)
