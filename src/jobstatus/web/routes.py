"""The endpoint's routes, declared once in :data:`ROUTES`, and what each answers.

The Starlette app, the Django URL patterns and the Flask blueprint are all
built from :data:`ROUTES`, in its order (the first route that matches a path
serves it). A new route is one line there plus its handler here.

A handler is a *plan*: a generator that yields each step it needs done
(:class:`ReadStatus`, :class:`Allowed`, ...) and returns the answer, or a
function that returns an answer at once. It does no I/O itself. The ASGI
app carries the steps out with the store's async methods (:func:`arun`),
the WSGI adapters with its blocking ones (:func:`run`), so each route's rules
are written once for every framework. Example::

    def job(request: Request, options: WebOptions) -> Plan:
        job_id = core.parse_job_id(request.path_params["job_id"])
        record = yield from readable(request, options, job_id)
        return json_answer(core.visible(record, options))
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Final, Protocol, TypeVar

from .._batch import Batch
from .._errors import NotSupportedError, StoreError
from .._record import Record
from .._status import Status
from . import core
from .core import ApiError, ListingQuery, WebOptions
from .stream import SSE_HEADERS, SSE_MEDIA_TYPE, EventStream

Params = Mapping[str, Sequence[str]]
T = TypeVar("T")

# -- what a handler gets and gives -----------------------------------------------------


@dataclass
class Request:
    """What a handler reads of an HTTP request, whatever the framework.

    Attributes:
        native: the framework's own request, handed to the ``authorize`` hook.
        path_params: the route's path parameters (``job_id``, ``name``).
        query_string: the raw query string, bounded before it is parsed.
        parse_query: parses it; may raise :class:`ApiError` (Django refuses
            too many fields).
        headers: the request headers (names case-insensitive).
        base: the path the endpoint is mounted at (links in pages start with it).
    """

    native: Any
    path_params: Mapping[str, str]
    query_string: str
    parse_query: Callable[[], Params]
    headers: Mapping[str, str]
    base: str

    @cached_property
    def params(self) -> Params:
        """The query parameters, each with all its values."""
        return self.parse_query()


@dataclass
class Answer:
    """A response to send: status, body, media type and headers.

    The WSGI adapters also send an event stream as an Answer, its ``body``
    an iterator of event texts.
    """

    status: int
    body: str | bytes | Iterator[str]
    media_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class Opened(Protocol):
    """A stream slot taken by :class:`OpenStream` (and, in the ASGI app, its hub listener)."""

    def close(self) -> None:
        """Give the slot back; calling it again does nothing."""


@dataclass
class StreamAnswer:
    """A 200 event stream: ``stream`` decides what to send, from ``first`` then each change."""

    stream: EventStream
    first: dict[str, Record | None]
    opened: Opened


def json_answer(body: object, status: int = 200) -> Answer:
    """``body`` as JSON, whatever the store held (see :func:`core.to_json`)."""
    return Answer(status, core.to_json(body), headers=dict(core.JSON_HEADERS))


def error_answer(error: ApiError) -> Answer:
    """The short JSON answer of an :class:`ApiError`."""
    return Answer(error.status, error.body(), headers={**core.JSON_HEADERS, **error.headers})


def page_answer(html: str, status: int = 200) -> Answer:
    """An HTML page with the pages' security headers."""
    return Answer(status, html, "text/html; charset=utf-8", dict(core.PAGE_HEADERS))


# -- the steps a plan asks for, and what each gives back ----------------------------


@dataclass(frozen=True)
class ReadStatus:
    """Read one job: gives its :class:`~jobstatus.Status`."""

    job_id: str


@dataclass(frozen=True)
class ReadMany:
    """Read several jobs at once: gives their records (None for a missing one), in order."""

    job_ids: list[str]


@dataclass(frozen=True)
class Allowed:
    """Ask the application's ``authorize`` hook about one job: gives True or False."""

    request: Any
    job_id: str
    record: Record


@dataclass(frozen=True)
class RefreshBatch:
    """Read a batch: gives the refreshed :class:`~jobstatus.Batch`."""

    job_ids: list[str]


@dataclass(frozen=True)
class ListRecent:
    """List recent jobs: gives their statuses, newest first (or raises NotSupportedError)."""

    query: ListingQuery


@dataclass(frozen=True)
class OpenStream:
    """Take a stream slot (503 when none is left) and start watching: gives :class:`Opened`."""

    job_ids: tuple[str, ...]


Step = ReadStatus | ReadMany | Allowed | RefreshBatch | ListRecent | OpenStream
Result = Answer | StreamAnswer
Steps = Generator[Step, Any, T]  # yields steps, is sent their results, returns a T
Plan = Steps[Result]
Handler = Callable[[Request, WebOptions], Plan | Result]


def run(plan: Plan, perform: Callable[[Step], Any]) -> Result:
    """Carry a plan out with blocking I/O: each step's result, or error, goes back into it."""
    try:
        step = next(plan)
        while True:
            try:
                result = perform(step)
            except Exception as exc:
                step = plan.throw(exc)
            else:
                step = plan.send(result)
    except StopIteration as done:
        answer: Result = done.value
        return answer
    finally:
        plan.close()  # a plan left half-way (a cancelled request) gives its slot back


async def arun(plan: Plan, perform: Callable[[Step], Awaitable[Any]]) -> Result:
    """The async twin of :func:`run`: the same loop, awaiting each step."""
    try:
        step = next(plan)
        while True:
            try:
                result = await perform(step)
            except Exception as exc:
                step = plan.throw(exc)
            else:
                step = plan.send(result)
    except StopIteration as done:
        answer: Result = done.value
        return answer
    finally:
        plan.close()


# -- the handlers ----------------------------------------------------------------------


def answer(route: Route, request: Request, options: WebOptions) -> Plan:
    """The plan of one request to ``route``: its handler's, with errors as short JSON."""
    try:
        if route.listing:
            core.require_listing(options)
        core.check_query(request.query_string, options)
        result = route.handler(request, options)
        if isinstance(result, Generator):
            result = yield from result
        return result
    except ApiError as error:
        return error_answer(error)
    except StoreError as exc:
        return error_answer(core.store_unavailable(exc))


def allowed(request: Request, options: WebOptions, job_id: str, record: Record) -> Steps[bool]:
    """Whether the application lets this request read the job (a step only with a hook)."""
    if options.authorize is None:
        return True
    verdict: bool = yield Allowed(request.native, job_id, record)
    return verdict


def readable(request: Request, options: WebOptions, job_id: str) -> Steps[Record]:
    """The record of a job this request may read, or the one 404."""
    status: Status = yield ReadStatus(job_id)
    record = status.to_dict()
    if not status.exists or not (yield from allowed(request, options, job_id, record)):
        raise core.not_found()
    return record


def job(request: Request, options: WebOptions) -> Plan:
    """``GET /jobs/{id}``: the record as JSON, without private keys."""
    job_id = core.parse_job_id(request.path_params["job_id"])
    core.only_params(request.params, ())
    record = yield from readable(request, options, job_id)
    return json_answer(core.visible(record, options))


def jobs(request: Request, options: WebOptions) -> Plan:
    """``GET /jobs?ids=...`` (a batch) or ``GET /jobs?status=...`` (a listing)."""
    params = request.params
    if "ids" in params:
        core.only_params(params, ("ids",))
        batch: Batch = yield RefreshBatch(core.parse_ids(params, options))
        verdicts = []
        for status in batch.statuses:
            ok = status.exists and (
                yield from allowed(request, options, status.job_id, status.to_dict())
            )
            verdicts.append(bool(ok))
        return json_answer(core.batch_json(batch, verdicts, options))
    core.require_listing(options)
    query = core.parse_listing(params, options)
    try:
        rows: list[Status] = yield ListRecent(query)
    except NotSupportedError as exc:
        raise core.listing_unsupported(exc) from exc
    shown = []
    for row in rows:
        if (yield from allowed(request, options, row.job_id, row.to_dict())):
            shown.append(row)
    return json_answer(core.listing_json(shown, options))


def events(request: Request, options: WebOptions) -> Plan:
    """``GET /jobs/{id}/events``: one job's event stream (204 when resumed after its end)."""
    job_id = core.parse_job_id(request.path_params["job_id"])
    core.only_params(request.params, ())
    stream = EventStream.of_job(job_id, options, resume_from=core.last_event_id(request.headers))
    opened: Opened = yield OpenStream(stream.job_ids)
    try:
        record = yield from readable(request, options, job_id)
    except BaseException:
        opened.close()
        raise
    if stream.resumed_after_end(record):
        opened.close()
        return Answer(204, "", SSE_MEDIA_TYPE, dict(SSE_HEADERS))
    return StreamAnswer(stream, {job_id: record}, opened)


def many_events(request: Request, options: WebOptions) -> Plan:
    """``GET /events?ids=...``: one stream for several jobs (the dashboard's)."""
    core.only_params(request.params, ("ids",))
    stream = EventStream.of_jobs(core.parse_ids(request.params, options), options)
    opened: Opened = yield OpenStream(stream.job_ids)
    try:
        records: list[Record | None] = yield ReadMany(list(stream.job_ids))
    except BaseException:
        opened.close()
        raise
    return StreamAnswer(stream, dict(zip(stream.job_ids, records, strict=True)), opened)


def dashboard(request: Request, options: WebOptions) -> Result:
    """``GET /``: the dashboard."""
    core.only_params(request.params, ())
    return page_answer(core.dashboard_page(request.base))


def view(request: Request, options: WebOptions) -> Plan:
    """``GET /jobs/{id}/view``: one job's page, or the HTML 404 (unknown and forbidden alike)."""
    job_id = core.parse_job_id(request.path_params["job_id"])
    core.only_params(request.params, ())
    try:
        yield from readable(request, options, job_id)
    except ApiError as error:
        if error.status != 404:
            raise
        return page_answer(core.missing_page(request.base), 404)
    return page_answer(core.job_page(request.base, job_id))


def static(request: Request, options: WebOptions) -> Result:
    """``GET /static/{name}``: the pages' own script and style sheet."""
    data, media_type = core.static_file(request.path_params["name"])
    headers = {"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"}
    return Answer(200, data, media_type, headers)


# -- the table --------------------------------------------------------------------------

_PARAM: Final = re.compile(r"\{(\w+)(:path)?\}")


@dataclass(frozen=True)
class Route:
    """One route: ``method`` and ``path``, served by ``handler``.

    Attributes:
        name: the route's name (Django's URL name is ``jobstatus-<name>``).
        method: the HTTP method it serves (405 for another on the same path).
        path: the path under the mount point; ``{name}`` is one path
            segment, ``{name:path}`` may contain slashes (job ids may).
        handler: builds the answer (a plan, or a function that answers at once).
        answers: what it answers, in a few words.
        listing: served only while listing is allowed (404 otherwise, whatever
            the query).
    """

    name: str
    method: str
    path: str
    handler: Handler
    answers: str
    listing: bool = False

    def pattern(self, segment: Callable[[str], str], slashed: Callable[[str], str]) -> str:
        """The path with each parameter spelled as a framework's router wants it.

        ``segment(name)`` spells a one-segment parameter, ``slashed(name)`` one
        that may contain slashes.
        """

        def spell(match: re.Match[str]) -> str:
            return (slashed if match.group(2) else segment)(match.group(1))

        return _PARAM.sub(spell, self.path)

    @property
    def has_slashed_param(self) -> bool:
        """Whether a parameter of the path may contain slashes."""
        return any(match.group(2) for match in _PARAM.finditer(self.path))

    def fill(self, params: Mapping[str, str]) -> str:
        """The path of this route for these parameter values (``/jobs/a/b/view``)."""
        return _PARAM.sub(lambda match: params[match.group(1)], self.path)


ROUTES: Final = (
    Route("dashboard", "GET", "/", dashboard, "the dashboard (HTML)", listing=True),
    Route("jobs", "GET", "/jobs", jobs, "a batch or a listing (JSON)"),
    Route("events", "GET", "/events", many_events, "several jobs' events (SSE)"),
    Route("static", "GET", "/static/{name}", static, "the pages' script and style"),
    Route("job-events", "GET", "/jobs/{job_id:path}/events", events, "one job's events (SSE)"),
    Route("job-view", "GET", "/jobs/{job_id:path}/view", view, "one job's page (HTML)"),
    Route("job", "GET", "/jobs/{job_id:path}", job, "one job's record (JSON)"),
)
