"""The listing's cursor: paging through every job of a status, none skipped, none twice.

Stores list newest ``updated_at`` first, ties by job id descending, and page
with ``before`` (strictly older). Jobs that share the last ``updated_at`` of a
page would fall between two pages, so the cursor also carries the last id and
how many jobs of that same time were already served; the next page asks for
those again (``before`` one microsecond later, that many more rows) and leaves
them out. No I/O here: the route reads what :class:`Page` asks for.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Final

from .._read import MAX_RECENT
from .._record import MAX_NAME_LENGTH, STATES, check_name, parse_iso, validate_job_id
from .._status import Status
from .core import ApiError, WebOptions, only_params, parse_limit, single

DEFAULT_LIMIT: Final = 50

MAX_TIES: Final = MAX_RECENT // 2  # jobs of one microsecond a cursor can step over
MICROSECOND: Final = 1e-6


@dataclass(frozen=True)
class Cursor:
    """Where the previous page ended: its last ``updated_at`` and id, and how many
    jobs with that ``updated_at`` were served so far."""

    updated_at: str
    job_id: str
    ties: int

    def encode(self) -> str:
        """The cursor as a URL-safe token (``?cursor=``)."""
        raw = json.dumps([self.updated_at, self.ties, self.job_id], ensure_ascii=False)
        return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """The cursor of a token, or a 400."""
        try:
            padded = token + "=" * (-len(token) % 4)
            raw = base64.urlsafe_b64decode(padded.encode("ascii"))
            updated_at, ties, job_id = json.loads(raw.decode("utf-8"))
            if parse_iso(updated_at) is None or isinstance(ties, bool) or not isinstance(ties, int):
                raise ValueError("not a cursor")
            if not 1 <= ties <= MAX_TIES:
                raise ValueError("not a cursor")
            return cls(updated_at, validate_job_id(job_id), ties)
        except (ValueError, TypeError, UnicodeError, binascii.Error) as exc:
            raise ApiError(400, "cursor must be the next of a previous page") from exc


@dataclass(frozen=True)
class Page:
    """One page of a listing: what to ask the store, and what to keep of its answer."""

    limit: int
    after: Cursor | None = None

    @property
    def fetch(self) -> int:
        """How many rows to ask for."""
        return self.limit + (self.after.ties if self.after else 0)

    @property
    def before(self) -> datetime | None:
        """The ``before`` to ask with: just after the cursor's time, so its ties come back."""
        if self.after is None:
            return None
        epoch = parse_iso(self.after.updated_at)
        assert epoch is not None  # checked when decoded
        return datetime.fromtimestamp(epoch + MICROSECOND, tz=timezone.utc)

    def keep(self, rows: Sequence[Status]) -> tuple[list[Status], str | None]:
        """The rows of this page, and the cursor of the next one (None after the last)."""
        after = self.after
        kept = list(rows)
        if after is not None:
            at = parse_iso(after.updated_at)
            kept = [row for row in rows if not _served(row, at, after.job_id)]
        full = len(rows) >= self.fetch
        kept = kept[: self.limit]
        if not full or not kept:
            return kept, None
        return kept, self._next(kept)

    def _next(self, kept: list[Status]) -> str | None:
        last = kept[-1]
        updated_at = last.get("updated_at")
        at = parse_iso(updated_at)
        if at is None or not isinstance(updated_at, str):
            return None  # a record without a time cannot be paged past
        ties = sum(1 for row in kept if parse_iso(row.get("updated_at")) == at)
        after = self.after
        if after is not None and parse_iso(after.updated_at) == at:
            ties += after.ties
        ties = min(ties, MAX_TIES)
        return Cursor(updated_at, last.job_id, ties).encode()


def _served(row: Status, at: float | None, last_id: str) -> bool:
    """Whether a previous page served ``row``: newer than the cursor, or its tie up to it."""
    updated = parse_iso(row.get("updated_at"))
    if updated is None or at is None:
        return False
    return updated > at or (updated == at and row.job_id >= last_id)


@dataclass(frozen=True)
class ListingQuery:
    """``?status=S&limit=N&before=T&cursor=C&name=N&prefix=P`` of a listing, validated."""

    status: str | None
    page: Page
    before: str | None = None
    name: str | None = None
    prefix: str | None = None

    @property
    def searches(self) -> bool:
        """Whether it filters by name or id prefix (stores answer it from their indexes)."""
        return self.name is not None or self.prefix is not None


def parse_listing(params: Mapping[str, Sequence[str]], options: WebOptions) -> ListingQuery:
    """The listing's query, or a 400 saying what was wrong."""
    only_params(params, ("status", "limit", "before", "cursor", "name", "prefix"))
    status = single(params, "status")
    if status is not None and status not in STATES:
        raise ApiError(400, f"status must be one of {', '.join(STATES)}")
    limit = parse_limit(params, options, default=DEFAULT_LIMIT)
    before = single(params, "before")
    if before is not None and parse_iso(before) is None:
        raise ApiError(400, "before must be an ISO 8601 updated_at")
    token = single(params, "cursor")
    if token is not None and before is not None:
        raise ApiError(400, "give before or cursor, not both")
    page = Page(limit, Cursor.decode(token) if token is not None else None)
    return ListingQuery(status, page, before, _search(params, "name"), _search(params, "prefix"))


def _search(params: Mapping[str, Sequence[str]], key: str) -> str | None:
    value = single(params, key)
    if value is None or value == "":
        return None  # an empty search box searches nothing
    try:
        return check_name(value) if key == "name" else validate_job_id(value)
    except (TypeError, ValueError) as exc:
        what = f"1 to {MAX_NAME_LENGTH} characters" if key == "name" else "the start of a job id"
        raise ApiError(400, f"{key} must be {what}") from exc
