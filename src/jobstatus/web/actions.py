"""The routes that change a job: ``POST /jobs/{id}/cancel`` and ``POST /jobs/{id}/delete``.

Each is served only when the application gave its hook (``can_cancel``,
``can_delete``), and answers the same 404 as an unknown job unless the hook
says True for this request and this job, and the job may be read
(``authorize``). Before anything is read, :mod:`jobstatus.web.guard` refuses
a request sent from another site (403) and a body that is not JSON (415), so
a cross-site form can never cancel or delete a job.
"""

from __future__ import annotations

from .._record import Record, check_reason
from .._status import Status
from . import core, guard
from .core import ApiError, WebOptions
from .plan import Allowed, CancelJob, DeleteJob, Plan, ReadStatus, Request, Steps, json_answer
from .plan import readable as readable_job


def cancel(request: Request, options: WebOptions) -> Plan:
    """``POST /jobs/{id}/cancel`` (body ``{"reason": "..."}`` or empty): request a cancel.

    Answers ``{"job_id", "cancelled": true|false, "job": the job as it is now}``;
    ``cancelled`` is False for a job that had already finished.
    """
    if options.can_cancel is None:
        raise core.not_found()
    job_id, body = _checked(request, ("reason",))
    try:
        reason = check_reason(body.get("reason"))
    except (TypeError, ValueError) as exc:
        raise ApiError(400, f"reason must be a text of at most 1,000 characters: {exc}") from exc
    yield from _permitted(request, options, job_id, "can_cancel")
    cancelled: bool = yield CancelJob(job_id, reason)
    now: Status = yield ReadStatus(job_id)
    job = core.job_json(job_id, now._record if now.exists else None, options)
    return json_answer({"job_id": job_id, "cancelled": cancelled, "job": job})


def delete(request: Request, options: WebOptions) -> Plan:
    """``POST /jobs/{id}/delete`` (an empty JSON body): delete the job's record.

    Answers ``{"job_id", "deleted": true}``.
    """
    if options.can_delete is None:
        raise core.not_found()
    job_id, _ = _checked(request, ())
    yield from _permitted(request, options, job_id, "can_delete")
    yield DeleteJob(job_id)
    return json_answer({"job_id": job_id, "deleted": True})


def _checked(request: Request, keys: tuple[str, ...]) -> tuple[str, Record]:
    """The job id and JSON body of a changing request sent from the app's own origin."""
    guard.require_same_origin(request.headers, request.host)
    job_id = core.parse_job_id(request.path_params["job_id"])
    core.only_params(request.params, ())
    return job_id, guard.json_body(request.headers, request.body, keys)


def _permitted(request: Request, options: WebOptions, job_id: str, hook: str) -> Steps[Record]:
    """The job's record if this request may read it and the hook lets it act; else the 404."""
    record = yield from readable_job(request, options, job_id)
    if not (yield Allowed(request.native, job_id, record, hook)):
        raise core.not_found()
    return record
