"""Plans: what a route's handler asks to be done, and the loops that do it.

A handler is a *plan*: a generator that yields each step it needs done
(:class:`ReadStatus`, :class:`Allowed`, ...) and returns the answer, or a
function that returns an answer at once. It does no I/O itself. The ASGI
app carries the steps out with the store's async methods (:func:`arun`),
the WSGI adapters with its blocking ones (:func:`run`), so each route's rules
are written once for every framework. The routes themselves are in
:mod:`jobstatus.web.routes`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, Protocol, TypeVar

from .._record import Record
from .._status import Status
from . import core
from ._plan_async import arun as arun  # the loops, written once there
from ._plan_sync import run as run
from .core import ApiError, WebOptions
from .stream import EventStream

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
        host: the host (and port) the request was sent to, as the framework
            has it (Django checks it against ``ALLOWED_HOSTS``).
        body: the first bytes of the body (read for POST only, at most
            one more than :data:`jobstatus.web.guard.MAX_BODY_BYTES`).
    """

    native: Any
    path_params: Mapping[str, str]
    query_string: str
    parse_query: Callable[[], Params]
    headers: Mapping[str, str]
    base: str
    host: str = ""
    body: bytes = b""

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
    """Ask one of the application's hooks about one job: gives True or False.

    ``hook`` is ``"authorize"`` (may read), ``"can_cancel"`` or ``"can_delete"``;
    a plan asks only a hook the application gave.
    """

    request: Any
    job_id: str
    record: Record
    hook: str = "authorize"


@dataclass(frozen=True)
class IsOperator:
    """Ask the application's ``operator`` hook about a request: gives True or False."""

    request: Any


@dataclass(frozen=True)
class RefreshBatch:
    """Read a batch: gives the refreshed :class:`~jobstatus.Batch`."""

    job_ids: list[str]


@dataclass(frozen=True)
class ListRecent:
    """List recent jobs (``jobstatus.recent``): gives their statuses, newest first.

    Raises NotSupportedError where the store cannot list, or search.
    """

    status: str | None
    limit: int
    before: str | datetime | None = None
    name: str | None = None
    prefix: str | None = None


@dataclass(frozen=True)
class CountJobs:
    """Count the store's jobs per status (``jobstatus.counts``): gives the counts."""


@dataclass(frozen=True)
class ListChildren:
    """The ids of a group's children: gives them, in any order."""

    job_id: str


@dataclass(frozen=True)
class CancelJob:
    """Request a job's cancel (``jobstatus.cancel``): gives True or False."""

    job_id: str
    reason: str | None


@dataclass(frozen=True)
class DeleteJob:
    """Delete a job's record: gives None."""

    job_id: str


@dataclass(frozen=True)
class RenderMetrics:
    """The store's metrics: gives ``(body, media type)``.

    ``accept`` is the request's Accept header: OpenMetrics when it asks for it
    (prometheus_client's own negotiation), Prometheus text otherwise.
    """

    accept: str | None = None


@dataclass(frozen=True)
class OpenStream:
    """Take a stream slot (503 when none is left) and start watching: gives :class:`Opened`."""

    job_ids: tuple[str, ...]


# The steps both endpoints do alike, with the store's async or blocking methods
# (jobstatus.web._perform_async); each opens a stream (OpenStream) its own way.
StoreStep = (
    ReadStatus
    | ReadMany
    | Allowed
    | IsOperator
    | RefreshBatch
    | ListRecent
    | CountJobs
    | ListChildren
    | CancelJob
    | RenderMetrics
    | DeleteJob
)
Step = StoreStep | OpenStream
Result = Answer | StreamAnswer
Steps = Generator[Step, Any, T]  # yields steps, is sent their results, returns a T
Plan = Steps[Result]
Handler = Callable[[Request, WebOptions], Plan | Result]

# -- the steps several routes take -------------------------------------------------------


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


def is_operator(request: Request, options: WebOptions) -> Steps[bool]:
    """Whether the application's ``operator`` hook says this request is an operator's."""
    if options.operator is None:
        return False
    verdict: bool = yield IsOperator(request.native)
    return verdict


def actions(request: Request, options: WebOptions, job_id: str, record: Record) -> Steps[list[str]]:
    """What this request may do to the job: ``"cancel"`` (while unfinished), ``"delete"``."""
    may: list[str] = []
    if options.can_cancel is not None and not core.is_finished(record):
        cancel: bool = yield Allowed(request.native, job_id, record, "can_cancel")
        if cancel:
            may.append("cancel")
    if options.can_delete is not None:
        delete: bool = yield Allowed(request.native, job_id, record, "can_delete")
        if delete:
            may.append("delete")
    return may
