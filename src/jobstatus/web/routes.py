"""The endpoint's routes, declared once in :data:`ROUTES`, and what each answers.

The Starlette app, the Django URL patterns and the Flask blueprint are all
built from :data:`ROUTES`, in its order (the first route that matches a path
serves it). A new route is one line there plus its handler: here for the
routes that read, in :mod:`jobstatus.web.actions` for those that change jobs.

Each handler is a plan (:mod:`jobstatus.web.plan`): it does no I/O, it yields
the steps it needs and returns the answer, so its rules are written once for
every framework. Example::

    def job(request: Request, options: WebOptions) -> Plan:
        job_id = core.parse_job_id(request.path_params["job_id"])
        record = yield from readable(request, options, job_id)
        return json_answer(core.job_json(job_id, record, options))
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Final

from .._batch import Batch
from .._errors import NotSupportedError, StoreError
from .._record import Record
from .._status import Status
from . import actions, core, paging
from .core import ApiError, WebOptions
from .plan import (
    Answer,
    CountJobs,
    Handler,
    ListChildren,
    ListRecent,
    Opened,
    OpenStream,
    Plan,
    ReadMany,
    RefreshBatch,
    RenderMetrics,
    Request,
    Result,
    Steps,
    StreamAnswer,
    allowed,
    error_answer,
    is_operator,
    json_answer,
    page_answer,
    readable,
)
from .plan import actions as may_do
from .stream import SSE_HEADERS, SSE_MEDIA_TYPE, EventStream

__all__ = ["ROUTES", "Answer", "Request", "Route", "answer"]

CHILDREN_LIMIT: Final = 50  # children per page of a group, unless ?limit= says


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


# -- the handlers that read ---------------------------------------------------------------


def job(request: Request, options: WebOptions) -> Plan:
    """``GET /jobs/{id}``: the record as JSON, without private keys, with the computed keys."""
    job_id = core.parse_job_id(request.path_params["job_id"])
    core.only_params(request.params, ())
    record = yield from readable(request, options, job_id)
    return json_answer(core.job_json(job_id, record, options))


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
    query = paging.parse_listing(params, options)
    page = query.page
    try:
        rows: list[Status] = yield ListRecent(
            query.status, page.fetch, page.before or query.before, query.name, query.prefix
        )
    except (NotSupportedError, StoreError) as exc:
        if not core.is_unsupported(exc):
            raise
        raise core.listing_unsupported(searching=query.searches) from exc
    kept, cursor = page.keep(rows)
    operator = yield from is_operator(request, options)
    shown: list[Status] = []
    for row in kept:
        if (yield from allowed(request, options, row.job_id, row.to_dict())):
            shown.append(row)
    return json_answer(
        {
            **core.listing_json(shown, options, reveal=core.reasons_for(operator)),
            "next": cursor,
            "actions": (yield from _actions(request, options, shown)),
        }
    )


def _actions(
    request: Request, options: WebOptions, shown: list[Status]
) -> Steps[dict[str, list[str]]]:
    """What this request may do to each job shown, by id (only the jobs it may do something to)."""
    found: dict[str, list[str]] = {}
    for row in shown:
        may = yield from may_do(request, options, row.job_id, row._record)
        if may:
            found[row.job_id] = may
    return found


def counts(request: Request, options: WebOptions) -> Plan:
    """``GET /counts``: the store's jobs per status, exactly (public, or to operators)."""
    core.only_params(request.params, ())
    if not options.public and not (yield from is_operator(request, options)):
        raise core.not_found()
    try:
        found: dict[str, int] = yield CountJobs()
    except (NotSupportedError, StoreError) as exc:
        if not core.is_unsupported(exc):
            raise
        raise ApiError(501, "this store cannot count jobs by status") from exc
    return json_answer(core.counts_json(found))


def children(request: Request, options: WebOptions) -> Plan:
    """``GET /jobs/{id}/children?limit=N&after=ID``: a group's children, by id, a page at a time."""
    job_id = core.parse_job_id(request.path_params["job_id"])
    params = request.params
    core.only_params(params, ("limit", "after"))
    limit = core.parse_limit(params, options, default=CHILDREN_LIMIT)
    raw_after = core.single(params, "after")
    after = None if raw_after is None else core.parse_job_id(raw_after)
    yield from readable(request, options, job_id)
    try:
        ids: list[str] = yield ListChildren(job_id)
    except (NotSupportedError, StoreError) as exc:
        if not core.is_unsupported(exc):
            raise
        raise ApiError(501, "this store cannot list a group's children") from exc
    ids = sorted(ids)  # the same order on every store
    later = ids if after is None else [child for child in ids if child > after]
    chosen = later[:limit]
    records: list[Record | None] = (yield ReadMany(chosen)) if chosen else []
    shown: list[Status] = []
    for child, record in zip(chosen, records, strict=True):
        if record is not None and (yield from allowed(request, options, child, record)):
            shown.append(core.snapshot(child, record))
    # Where the app lists, operators see the children's reasons as in the listing.
    operator = options.listing_allowed and (yield from is_operator(request, options))
    reveal = core.reasons_for(operator)
    return json_answer(
        {
            "jobs": [core.job_json(s.job_id, s._record, options, reveal) for s in shown],
            "total": len(ids),
            "next_after": chosen[-1] if len(later) > limit else None,
            "actions": (yield from _actions(request, options, shown)),
        }
    )


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
        record = yield from readable(request, options, job_id)
    except ApiError as error:
        if error.status != 404:
            raise
        return page_answer(core.missing_page(request.base), 404)
    may = yield from may_do(request, options, job_id, record)
    return page_answer(core.job_page(request.base, job_id, may, listing=options.listing_allowed))


def static(request: Request, options: WebOptions) -> Result:
    """``GET /static/{name}``: the pages' script, style sheet and icon, and the drop-in bar."""
    data, media_type = core.static_file(request.path_params["name"])
    headers = {"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"}
    return Answer(200, data, media_type, headers)


def metrics(request: Request, options: WebOptions) -> Plan:
    """``GET /metrics``: Prometheus text, or OpenMetrics when the request's Accept asks
    for it; only with ``metrics=True``."""
    if not options.metrics:
        raise core.not_found()
    core.only_params(request.params, ())
    body, media_type = yield RenderMetrics(request.headers.get("accept"))
    return Answer(200, body, media_type, {"Cache-Control": "no-store"})


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

    def match(self, path: str) -> dict[str, str] | None:
        """The parameters of ``path`` (under the mount point) if this route's path matches it."""
        found = self._regex.fullmatch(path)
        return None if found is None else found.groupdict()

    @property
    def _regex(self) -> re.Pattern[str]:
        def spell(match: re.Match[str]) -> str:
            return f"(?P<{match.group(1)}>{'.+' if match.group(2) else '[^/]+'})"

        regex = ""
        position = 0
        for param in _PARAM.finditer(self.path):
            regex += re.escape(self.path[position : param.start()]) + spell(param)
            position = param.end()
        return re.compile(regex + re.escape(self.path[position:]))


ROUTES: Final = (
    Route("dashboard", "GET", "/", dashboard, "the dashboard (HTML)", listing=True),
    Route("jobs", "GET", "/jobs", jobs, "a batch or a listing (JSON)"),
    Route("counts", "GET", "/counts", counts, "jobs per status, store-wide (JSON)", listing=True),
    Route("events", "GET", "/events", many_events, "several jobs' events (SSE)"),
    Route("static", "GET", "/static/{name}", static, "the pages' files and the drop-in bar"),
    Route("metrics", "GET", "/metrics", metrics, "Prometheus metrics (text or OpenMetrics)"),
    Route("job-events", "GET", "/jobs/{job_id:path}/events", events, "one job's events (SSE)"),
    Route("job-view", "GET", "/jobs/{job_id:path}/view", view, "one job's page (HTML)"),
    Route("job-children", "GET", "/jobs/{job_id:path}/children", children, "a group's children"),
    Route("job-cancel", "POST", "/jobs/{job_id:path}/cancel", actions.cancel, "cancel a job"),
    Route("job-delete", "POST", "/jobs/{job_id:path}/delete", actions.delete, "delete a job"),
    Route("job", "GET", "/jobs/{job_id:path}", job, "one job's record (JSON)"),
)
