"""A view that answers one job's status as JSON.

``GET <prefix>/<job_id>`` answers the record without its private keys
(``serialized_job``, ``exception``, unless ``JOBSTATUS["EXPOSE"]`` lists them);
404 for an unknown or expired id and for one that ``JOBSTATUS["AUTHORIZE"]``
refuses (the two look the same); 400 for a malformed id; 503 when the store fails.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_safe

from ..._errors import StoreError
from ..._read import get
from ..._record import Record, validate_job_id
from . import conf


def public_record(record: Record, expose: frozenset[str] = frozenset()) -> Record:
    """``record`` without the private keys that ``expose`` does not list."""
    hidden = conf.PRIVATE_KEYS - expose
    return {key: value for key, value in record.items() if key not in hidden}


@require_safe  # type: ignore[untyped-decorator]  # Django ships no type stubs
def job_status(request: HttpRequest, job_id: str) -> JsonResponse:
    """The status record of ``job_id`` as JSON (see the module docs for the answers)."""
    try:
        validate_job_id(job_id)
    except (TypeError, ValueError) as exc:
        return _error(400, str(exc))
    try:
        status = get(job_id)
    except StoreError:
        return _error(503, "the status store is unavailable")
    record = status.to_dict()
    rules = conf.current()
    if not status.exists or (
        rules.authorize is not None and not rules.authorize(request, job_id, record)
    ):
        return _error(404, "no such job")
    return JsonResponse(public_record(record, rules.expose))


def _error(code: int, message: str) -> JsonResponse:
    answer: Any = JsonResponse({"error": message}, status=code)
    return answer
