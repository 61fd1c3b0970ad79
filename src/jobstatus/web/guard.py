"""What a request that changes a job (cancel, delete) must prove, without I/O.

A browser sends a cross-site form POST with the victim's cookies, so a route
that changes something must tell such a request from the app's own pages.
Three checks, each enough on its own in today's browsers:

1. ``Sec-Fetch-Site`` (sent by every current browser, and not settable by a
   page's script) must be ``same-origin``. Without it, ``Origin`` (sent with
   every cross-origin POST) must name the host the request was sent to.
   A request with neither comes from outside a browser (curl, a backend),
   which carries no one else's cookies.
2. The body must be sent as ``Content-Type: application/json``. An HTML form
   can only send ``application/x-www-form-urlencoded``, ``multipart/form-data``
   or ``text/plain``, and a cross-origin ``fetch`` with JSON must first pass a
   CORS preflight, which the endpoint never grants for POST (its CORS
   middleware allows GET only, and never credentials).
3. The application's own hook (``can_cancel``, ``can_delete``) must say yes for
   this request and this job.

So a cross-site request never changes a job, even from an origin listed in
``cors_origins``: those may read, never change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

from .._record import Record
from .core import ApiError

MAX_BODY_BYTES: Final = 4096
JSON_MEDIA_TYPE: Final = "application/json"


def require_same_origin(headers: Mapping[str, str], host: str) -> None:
    """A 403 unless the request comes from a page of the app's own origin (or no browser).

    Args:
        headers: the request's headers (names case-insensitive).
        host: the host (and port) the request was sent to, as the framework
            has it (``Host``, checked against its allowed hosts where it has them).
    """
    site = headers.get("sec-fetch-site")
    if site is not None:
        if site.strip().lower() != "same-origin":
            raise cross_site()
        return
    origin = headers.get("origin")
    if origin is None:
        return
    if not host or _netloc(origin) != host.strip().lower():
        raise cross_site()


def cross_site() -> ApiError:
    """The one answer to a request that may not change jobs from where it was sent."""
    return ApiError(403, "cross-site requests cannot change jobs")


def _netloc(origin: str) -> str | None:
    origin = origin.strip()
    if origin == "null":  # sandboxed frames, file: pages, some redirects
        return None
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    hostname = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return hostname if port in (None, default) else f"{hostname}:{port}"


def json_body(headers: Mapping[str, str], body: bytes, allowed: tuple[str, ...]) -> Record:
    """The request's JSON object body (empty is ``{}``), with only ``allowed`` keys.

    Raises:
        ApiError: 415 unless sent as ``application/json``; 413 past
            :data:`MAX_BODY_BYTES`; 400 for anything but a JSON object of the
            allowed keys.
    """
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != JSON_MEDIA_TYPE:
        raise ApiError(415, "send the request with Content-Type: application/json")
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, f"the body is longer than {MAX_BODY_BYTES} bytes")
    if not body.strip():
        return {}
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_refuse)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, "the body is not JSON") from exc
    if not isinstance(value, dict):
        raise ApiError(400, "the body must be a JSON object")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        names = ", ".join(allowed) or "none"
        raise ApiError(400, f"unknown key {unknown[0]!r} in the body; allowed: {names}")
    return value


def _refuse(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")
