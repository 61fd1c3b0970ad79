"""The status record: reserved keys, validation, the JSON codec and merging.

Everything here is pure: no I/O. Stores and the sync and async front ends all
call it, so a record means the same thing everywhere.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Final

from ._errors import WriteRefused

STATES: Final = ("queued", "working", "completed", "failed", "cancelled")
FINISHED_STATES: Final = frozenset({"completed", "failed", "cancelled"})
UNFINISHED_STATES: Final = frozenset({"queued", "working"})
RESERVED_KEYS: Final = frozenset(
    {
        "status",
        "progress",
        "total",
        "exception",
        "serialized_job",
        "queued_at",
        "started_at",
        "finished_at",
        "updated_at",
        "attempts",
        "name",
        "cancel",
        "parent",
        "children",
        "history",
    }
)
#: A job's transition: its status and what dates it, and the absolute progress,
#: set together; ``attempts`` is added to. What the writer keeps together when it
#: splits a refused change, and never drops, and what memcached lets into the
#: room it keeps in each record for them.
TRANSITION_SETS: Final = frozenset(
    {"status", "queued_at", "started_at", "finished_at", "updated_at", "progress", "total"}
)
TRANSITION_ADDS: Final = frozenset({"attempts"})
MAX_JOB_ID_LENGTH: Final = 512
MAX_NESTING: Final = 32
# Python reads and writes ints of at most 4,300 digits as text (sys.int_info);
# 2**14000 has 4,215, so every stored int can be read back.
MAX_INT_BITS: Final = 14_000
# progress and total, and every sum of increments, stay within a float's range:
# readers divide and multiply them by floats.
FLOAT_MAX: Final = sys.float_info.max
_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_NAME_LENGTH: Final = 512
MAX_REASON_LENGTH: Final = 1000  # characters of a cancel reason
# Stores keep, under this key (no status key may be empty), the last write
# sequence applied per writer, so a write re-sent after a timeout applies once.
WRITES_KEY: Final = ""
MAX_WRITERS: Final = 16  # writers remembered per record; a 17th starts the list anew

JSONValue = Any  # str | int | float | bool | None | list[JSONValue] | dict[str, JSONValue]
Record = dict[str, JSONValue]


def validate_job_id(job_id: object) -> str:
    """Return ``job_id`` if it is a valid id, else raise.

    Raises:
        TypeError: the id is not a ``str``.
        ValueError: the id is empty, longer than 512 characters or holds a
            control character.
    """
    if not isinstance(job_id, str):
        raise TypeError(f"job id must be a str, not {type(job_id).__name__}: {job_id!r}")
    if not job_id:
        raise ValueError("job id must not be empty")
    if len(job_id) > MAX_JOB_ID_LENGTH:
        raise ValueError(
            f"job id is {len(job_id)} characters long; the limit is {MAX_JOB_ID_LENGTH}"
        )
    if not job_id.isprintable() and any(_is_control(c) for c in job_id):
        raise ValueError(f"job id must not contain control or surrogate characters: {job_id!r}")
    return job_id


def _is_control(char: str) -> bool:
    code = ord(char)
    return (
        code < 0x20 or 0x7F <= code < 0xA0 or code in (0x2028, 0x2029) or 0xD800 <= code <= 0xDFFF
    )


def _has_surrogate(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate, which no store can encode as UTF-8."""
    return not text.isascii() and _SURROGATE.search(text) is not None


_SURROGATE_HINT = (
    "a lone surrogate (U+D800..U+DFFF, as os.listdir gives for an undecodable file "
    "name), which UTF-8 cannot encode; clean it first, e.g. "
    "text.encode('utf-8', 'surrogateescape').decode('utf-8', 'replace')"
)


def check_json_value(key: str, value: object, depth: int = 0) -> None:
    """Raise if ``value`` (stored under ``key``) is not a JSON value.

    Raises:
        TypeError: a value of a non-JSON type, or a dict key that is not a str.
        ValueError: NaN or an infinity, an int of more than 4,200 digits, a
            string or dict key holding a lone surrogate, or nesting deeper
            than 32 levels.
    """
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        if _has_surrogate(value):
            raise ValueError(f"value of {key!r} holds {_SURROGATE_HINT}")
        return
    if isinstance(value, int):
        if value.bit_length() > MAX_INT_BITS:
            raise ValueError(
                f"value of {key!r} is an int of more than 4,200 digits, which JSON "
                "readers refuse; store it as a str"
            )
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"value of {key!r} must be a finite number, not {value!r}")
        return
    if depth >= MAX_NESTING:
        raise ValueError(f"value of {key!r} is nested deeper than {MAX_NESTING} levels")
    if isinstance(value, (list, tuple)):
        for item in value:
            check_json_value(key, item, depth + 1)
        return
    if isinstance(value, dict):
        for inner_key, item in value.items():
            if not isinstance(inner_key, str):
                raise TypeError(
                    f"value of {key!r} has a non-str dict key {inner_key!r}; JSON keys are str"
                )
            if _has_surrogate(inner_key):
                raise ValueError(
                    f"value of {key!r} has a dict key {inner_key!r} holding {_SURROGATE_HINT}"
                )
            check_json_value(key, item, depth + 1)
        return
    raise TypeError(
        f"value of {key!r} is a {type(value).__name__}, which is not a JSON value "
        "(use str, int, float, bool, None, list or dict)"
    )


def check_key(key: object) -> str:
    """Return ``key`` if it can name a value in a record, else raise.

    Raises:
        TypeError: the key is not a ``str``.
        ValueError: the key is empty or holds a lone surrogate.
    """
    if not isinstance(key, str):
        raise TypeError(f"status keys must be str, not {type(key).__name__}: {key!r}")
    if not key:
        raise ValueError("status keys must not be empty")
    if _has_surrogate(key):
        raise ValueError(f"status key {key!r} holds {_SURROGATE_HINT}")
    return key


def check_fields(fields: Mapping[Any, object]) -> Record:
    """Validate keys and values to be written; return them as a new dict.

    Raises:
        TypeError: a key is not a ``str`` or a value is not a JSON value.
        ValueError: a key is empty or holds a lone surrogate, a value is not
            one a record can hold (see :func:`check_json_value`), or a
            reserved key has a bad value.
    """
    checked: Record = {}
    for key, value in fields.items():
        check_key(key)
        check_json_value(key, value)
        if key in RESERVED_KEYS:
            _check_reserved(key, value)
        checked[key] = list(value) if isinstance(value, tuple) else value
    return checked


def _check_reserved(key: str, value: object) -> None:
    if key == "status" and value not in STATES:
        raise ValueError(f"status must be one of {', '.join(STATES)}; got {value!r}")
    if key in ("progress", "total"):
        check_amount(key, value, allow_none=True)
        if value is not None and value < 0:  # type: ignore[operator]
            raise ValueError(f"{key} must not be negative; got {value!r}")
    if key == "attempts" and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise ValueError(f"attempts must be a non-negative int; got {value!r}")
    if key == "name" and value is not None:
        check_name(value)
    if key == "parent" and value is not None:
        validate_job_id(value)
    if key in ("cancel", "children") and value is not None and not isinstance(value, dict):
        raise ValueError(f"{key} must be a dict or None; got {value!r}")
    if key == "history" and not isinstance(value, (list, tuple)):
        raise ValueError(f"history must be a list; got {value!r}")


def check_name(name: object) -> str:
    """Return a valid task name (a non-empty str of at most 512 characters), else raise.

    Raises:
        TypeError: the name is not a ``str``.
        ValueError: the name is empty, too long, or holds a lone surrogate (the
            same check as any value's, naming the key ``name``).
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}: {name!r}")
    if not name or len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"name must be 1 to {MAX_NAME_LENGTH} characters long; got {name!r}")
    check_json_value("name", name)
    return name


def check_reason(reason: object) -> str | None:
    """Return a valid cancel reason (None, or a str of at most 1,000 characters), else raise."""
    if reason is None:
        return None
    if not isinstance(reason, str):
        raise TypeError(f"reason must be a str or None, not {type(reason).__name__}: {reason!r}")
    if len(reason) > MAX_REASON_LENGTH:
        raise ValueError(
            f"reason is {len(reason)} characters long; the limit is {MAX_REASON_LENGTH}"
        )
    check_json_value("reason", reason)
    return reason


def check_amount(key: str, value: object, *, allow_none: bool = False) -> None:
    """Raise unless ``value`` is a finite int or float (not a bool) within a float's range."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{key} must be a number, not {type(value).__name__}: {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{key} must be a finite number, not {value!r}")
    if isinstance(value, int) and not -FLOAT_MAX <= value <= FLOAT_MAX:
        raise ValueError(
            f"{key} must be within a float's range (about 1.8e308); got an int past it"
        )


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def add(current: float, amount: float) -> float:
    """``current + amount``, or an infinity where a huge int and a float cannot be added.

    A non-finite sum is what :func:`apply_write` refuses; the job's own view
    of its record only shows it.
    """
    try:
        return current + amount
    except OverflowError:  # int too large to convert to float
        big = current if isinstance(current, int) else amount
        return math.inf if big > 0 else -math.inf


def storable_number(value: float) -> bool:
    """Whether a sum of increments may be stored: a finite number within a float's range.

    An int past it would store, but every reader's ratio or rate of it
    (``progress / total``) would overflow.
    """
    if isinstance(value, float):
        return math.isfinite(value)
    return -FLOAT_MAX <= value <= FLOAT_MAX


def refuse_unstorable(key: str, value: float) -> None:
    """Raise :class:`WriteRefused` when a sum of increments is not a number a record can hold."""
    if not storable_number(value):
        shown = repr(value) if isinstance(value, float) else "an int past a float's range"
        raise WriteRefused(
            f"the sum of {key!r} would be {shown}; a record holds finite numbers only "
            "(SPEC 1), so this change was not applied"
        )


GUARDS: Final = ("unfinished", "not_cancelled", "absent")


@dataclass(frozen=True, slots=True)
class Written:
    """What one ``Store.write`` did, for the job's writer.

    Attributes:
        applied: False when nothing was written: the change's guard did not hold,
            or the store already had this write (re-sent with the same ``origin``).
        created: no live record existed before this write (the id was new, or
            its record had expired or been deleted or evicted).
        cancel: the cancel request the record holds while its job is queued or
            working (``{"requested_at", "reason"}``), or None: how a running job
            learns of a request from the reply to its next write.
        queued_at: for a write that moved the record from ``queued`` to
            ``working`` (a job's start), when the record last became queued:
            the ``at`` of its newest ``queued`` history entry, or its
            ``queued_at`` before any attempt; None for any other write, or when
            the store cannot tell. How a worker measures the job's wait
            (``jobstatus_job_wait_seconds``) without reading the record.
    """

    applied: bool = True
    created: bool = False
    cancel: Record | None = None
    queued_at: str | None = None


@dataclass
class Change:
    """One atomic write: keys to set, remove and add to, applied together.

    ``ttl`` is how long the record lives after this write; ``finished_ttl``
    replaces it when the record's status (after the write) is a finished one.
    Stores apply the whole change atomically, and with it:

    - ``guard``, a condition on the stored record; when it does not hold, nothing
      is written (see :func:`guard_holds`);
    - ``events``, ``(status, at)`` transitions appended to the record's ``history``
      (at most ``history_limit`` entries are kept);
    - the move of the record's group, when it has a ``parent`` (see ``_rollup``).
    """

    set: Record = field(default_factory=dict)
    incr: dict[str, float] = field(default_factory=dict)
    ttl: float = 3600.0
    finished_ttl: float = 3600.0
    #: ``(writer id, sequence)`` of a write a job's writer may send again after
    #: a timeout; stores apply it only if that writer's last sequence is lower.
    origin: tuple[str, int] | None = None
    unset: tuple[str, ...] = ()
    guard: str | None = None
    events: tuple[tuple[str, str], ...] = ()
    history_limit: int = 100

    def __bool__(self) -> bool:
        return bool(self.set or self.incr or self.unset or self.events)

    def merge(self, later: Change) -> None:
        """Fold a later change into this one, as if both were applied in order.

        A guard applies to the change it came with only: the merged change has none.
        """
        for key in later.unset:
            self.set.pop(key, None)
            self.incr.pop(key, None)
        self.unset = tuple(dict.fromkeys((*self.unset, *later.unset)))
        for key, value in later.set.items():
            self.set[key] = value
            self.incr.pop(key, None)
        self.unset = tuple(key for key in self.unset if key not in later.set)
        for key, amount in later.incr.items():
            current = self.set.get(key)
            if key not in self.incr and _is_number(current):
                total = add(current, amount)  # type: ignore[arg-type]
                if storable_number(total):
                    self.set[key] = total
                    continue
            # Kept apart, so a sum that overflows is refused alone and the set stays.
            self.incr[key] = add(self.incr.get(key, 0), amount)
        self.events = (*self.events, *later.events)
        self.guard = None
        self.ttl = later.ttl
        self.finished_ttl = later.finished_ttl
        self.history_limit = later.history_limit

    def subset(self, keys: Iterable[str], *, sets: bool = True, adds: bool = True) -> Change:
        """A change of only ``keys`` (what it sets, adds, or both), same expiry, no origin.

        The piece that sets ``status`` keeps the transition's guard, removals and
        history events: they belong to the transition.
        """
        wanted = set(keys)
        transition = sets and "status" in wanted and "status" in self.set
        return Change(
            set={k: v for k, v in self.set.items() if sets and k in wanted},
            incr={k: v for k, v in self.incr.items() if adds and k in wanted},
            ttl=self.ttl,
            finished_ttl=self.finished_ttl,
            unset=self.unset if transition else (),
            guard=self.guard if transition else None,
            events=self.events if transition else (),
            history_limit=self.history_limit,
        )

    def written_keys(self) -> list[str]:
        """The keys this change sets or adds to, set ones first."""
        return [*self.set, *(key for key in self.incr if key not in self.set)]

    def ttl_for(self, record: Mapping[str, object]) -> float:
        """The ttl that applies to ``record`` once this change is in it."""
        return self.finished_ttl if record.get("status") in FINISHED_STATES else self.ttl


def apply_change(record: Record | None, change: Change) -> Record:
    """Return ``record`` with ``change`` applied (a new dict).

    Stores that merge under their own lock or transaction (memory, SQLite,
    memcached CAS) call this; Redis and PostgreSQL do the same server-side.
    Keys in ``unset`` go first. An increment on a missing or non-numeric key
    starts from 0. Each event is then appended to ``history`` (see
    :func:`append_history`), after the increments, so a start's entry carries
    the attempt it starts.
    """
    merged: Record = dict(record) if record else {}
    for key in change.unset:
        merged.pop(key, None)
    merged.update(change.set)
    for key, amount in change.incr.items():
        current = merged.get(key)
        if isinstance(current, bool) or not isinstance(current, (int, float)):
            current = 0
        merged[key] = add(current, amount)
    for event, at in change.events:
        merged = append_history(merged, event, at, change.history_limit)
    return merged


def guard_holds(record: Mapping[str, Any] | None, guard: str | None) -> bool:
    """Whether a change with ``guard`` applies to the stored (live) ``record``.

    - ``unfinished``: the record exists and is queued or working (a cancel request);
    - ``not_cancelled``: the record is not cancelled and no cancel is pending (a start);
    - ``absent``: there is no record (creating a group once).
    """
    if guard is None:
        return True
    if guard == "unfinished":
        return record is not None and record.get("status") in UNFINISHED_STATES
    if guard == "not_cancelled":
        return record is None or not (
            isinstance(record.get("cancel"), dict) or record.get("status") == "cancelled"
        )
    if guard == "absent":
        return record is None
    raise ValueError(f"unknown guard {guard!r}; known: {', '.join(GUARDS)}")


def cancel_pending(record: Mapping[str, Any] | None) -> bool:
    """Whether ``record`` holds a cancel request its job has not yet acted on."""
    return pending_cancel(record) is not None


def pending_cancel(record: Mapping[str, Any] | None) -> Record | None:
    """The cancel request ``record`` holds while its job is queued or working, else None."""
    if record is None or record.get("status") not in UNFINISHED_STATES:
        return None
    request = record.get("cancel")
    return request if isinstance(request, dict) else None


_ID_ATTRIBUTES: Final = ("job_id", "message_id", "task_id", "id")


def job_id_of(job_or_id: object) -> str:
    """The id of an id string or a queue's own job object, validated.

    Accepts a Celery AsyncResult, RQ Job, Dramatiq Message, Huey Result, arq
    Job, Taskiq task handle, Django TaskResult or a Status.

    Raises:
        TypeError: not a str and no recognisable job object.
        ValueError: a malformed id.
    """
    if isinstance(job_or_id, str):
        return validate_job_id(job_or_id)
    for attribute in _ID_ATTRIBUTES:
        value = getattr(job_or_id, attribute, None)
        if isinstance(value, str):
            return validate_job_id(value)
    raise TypeError(
        f"expected a job id (str) or a queue's job object, not {type(job_or_id).__name__}"
    )


def apply_write(record: Record | None, change: Change) -> Record | None:
    """``apply_change`` where the guard holds, once per origin; None when nothing applies.

    Stores that merge in Python call this; the stored record keeps the
    writers' last sequences under ``WRITES_KEY``, which :func:`public` removes.

    Raises:
        WriteRefused: a sum would not be a finite number (or an int too large
            to read back); the caller must then store nothing.
    """
    if not guard_holds(record, change.guard):
        return None
    if change.origin is None:
        merged = apply_change(record, change)
    else:
        writer, sequence = change.origin
        stored = record.get(WRITES_KEY) if record else None
        seen = dict(stored) if isinstance(stored, dict) else {}
        if seen.get(writer, 0) >= sequence:
            return None
        if len(seen) >= MAX_WRITERS and writer not in seen:
            seen = {}
        seen[writer] = sequence
        merged = apply_change(record, change)
        merged[WRITES_KEY] = seen
    for key in change.incr:
        refuse_unstorable(key, merged[key])
    return merged


def append_history(record: Record, event: str, at: str, limit: int) -> Record:
    """``record`` with ``{"status": event, "at": at, "attempt": n}`` appended to its
    ``history``, keeping the last ``limit`` entries (a new dict; none kept when 0).

    ``attempt`` is the record's ``attempts`` at that moment (0 before any).
    """
    if limit <= 0:
        return record
    stored = record.get("history")
    history = list(stored) if isinstance(stored, list) else []
    attempts = record.get("attempts")
    attempt = attempts if isinstance(attempts, int) and not isinstance(attempts, bool) else 0
    history.append({"status": event, "at": at, "attempt": attempt})
    merged = dict(record)
    merged["history"] = history[-limit:]
    return merged


def public(record: Record) -> Record:
    """The record as readers see it: without the stores' write bookkeeping."""
    if WRITES_KEY in record:
        record = dict(record)
        del record[WRITES_KEY]
    return record


def loads_record(text: str | bytes) -> Record:
    """A stored record's JSON text, as readers see it."""
    return public(loads(text))


def utc_now_iso(epoch: float | None = None) -> str:
    """An ISO 8601 UTC timestamp with microseconds, like ``2026-01-02T03:04:05.123456+00:00``."""
    when = time.time() if epoch is None else epoch
    return datetime.fromtimestamp(when, tz=timezone.utc).isoformat(timespec="microseconds")


def parse_iso(value: object) -> float | None:
    """Epoch seconds of an ISO 8601 timestamp, or None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


_encoder = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), check_circular=False
)
# JSONEncoder.encode builds its C encoder anew on every call, which costs a small
# record more than encoding it; this one is built once. No circular check: every
# value written passed check_json_value, whose nesting bound stops a cycle first.
_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)  # None without _json
_encode_chunks: Callable[[object, int], Sequence[str]] | None = (
    None
    if _make_encoder is None
    else _make_encoder(
        None,
        _encoder.default,
        json.encoder.encode_basestring,
        None,
        ":",
        ",",
        False,
        False,
        False,
    )
)
_scan: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def dumps(value: object) -> str:
    """Compact JSON text of ``value`` (no NaN, non-ASCII kept), as json.dumps gives it."""
    if _encode_chunks is None:  # a Python without the C accelerator
        return _encoder.encode(value)
    return "".join(_encode_chunks(value, 0))


def loads(text: str | bytes) -> Any:
    """json.loads, faster for the compact text the stores hold (and the same otherwise).

    The C scanner is json.loads's own; the wrappers around it (whitespace, bytes,
    errors) cost more than a small value's parse, so they run only when needed.
    """
    if type(text) is str:
        try:
            value, end = _scan(text, 0)
        except StopIteration:
            pass  # leading whitespace or not JSON: json.loads says which
        else:
            if end == len(text):
                return value
    return json.loads(text)


def exception_info(exc: BaseException) -> Record:
    """``{"class": ..., "message": ...}`` for an exception; builtins bare."""
    cls = type(exc)
    name = (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )
    return {"class": safe_text(name), "message": safe_text(str(exc))}


def safe_text(text: str) -> str:
    """``text`` with each lone surrogate written as its escape (``\\udc80``), so it encodes."""
    if not _has_surrogate(text):
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def json_safe(value: object, depth: int = 0) -> JSONValue:
    """A JSON-safe copy of ``value``: containers walked, anything else as its repr.

    What a record could not hold is written as text: non-finite floats as their
    repr, lone surrogates escaped, an int too long to read back as a note.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, int):
        return value if value.bit_length() <= MAX_INT_BITS else "<an int of over 4,200 digits>"
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if depth < MAX_NESTING:
        if isinstance(value, (list, tuple)):
            return [json_safe(item, depth + 1) for item in value]
        if isinstance(value, dict):
            return {safe_text(_str(key)): json_safe(item, depth + 1) for key, item in value.items()}
    return safe_text(_repr(value))


def _str(value: object) -> str:
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - str() of an int of 5,000 digits raises
        return _repr(value)


def _repr(value: object) -> str:
    try:
        return repr(value)
    except Exception as exc:  # noqa: BLE001 - a repr that raises must not break a job
        return f"<{type(value).__qualname__} whose repr raised {type(exc).__name__}>"


def unique_ids(ids: Iterable[str]) -> list[str]:
    """Ids in first-seen order without repeats."""
    return list(dict.fromkeys(ids))
