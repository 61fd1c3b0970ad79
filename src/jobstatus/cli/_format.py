"""How the commands show a job's fields: states in colour, times, ages, durations, reasons.

Pure functions of a snapshot and the time now, so ``list``, ``get`` and
``watch`` say the same thing the same way. A job's own text is returned as
plain ``str`` or :class:`rich.text.Text`, never as markup.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Final

from rich.console import Console
from rich.text import Text

from .._record import parse_iso
from .._status import Status

COLOURS: Final = {
    "queued": "yellow",
    "working": "cyan",
    "completed": "green",
    "failed": "red",
    "cancelled": "magenta",
}
STALE_COLOUR: Final = "bold red"
PIPE_WIDTH: Final = 1_000_000  # piped output is never folded to a terminal's width


def console() -> Console:
    """Where a command prints: the terminal, or, piped, a console that never folds lines."""
    terminal = Console()
    return terminal if terminal.is_terminal else Console(width=PIPE_WIDTH)


def state(status: Status) -> Text:
    """The job's state in its colour, ``working (stale)`` for a silent one, ``unknown`` for none."""
    if status.is_stale:
        return Text("working (stale)", style=STALE_COLOUR)
    name = status.status or "unknown"
    return Text(name, style=COLOURS.get(name, "white"))


def short_state(status: Status) -> Text:
    """Like :func:`state`, but a stale job reads ``stale`` (for narrow columns)."""
    if status.is_stale:
        return Text("stale", style=STALE_COLOUR)
    return state(status)


def seconds(value: float) -> str:
    """A duration as people read it: ``0.4s``, ``12s``, ``5m 03s``, ``2h 05m``, ``3d 04h``."""
    if value < 10:
        return f"{max(value, 0.0):.1f}s"
    whole = round(value)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def age(status: Status, now: float | None = None) -> str:
    """Time since the job's last write (``updated_at``), or ``""`` when unknown."""
    updated = parse_iso(status.get("updated_at"))
    if updated is None:
        return ""
    return seconds((time.time() if now is None else now) - updated)


def when(value: object) -> str:
    """An ISO timestamp of the record as ``2026-12-01 10:00:01`` (UTC), or ``""``."""
    epoch = parse_iso(value)
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def duration(status: Status, now: float | None = None) -> str:
    """From ``started_at`` to ``finished_at`` (or to now while it runs), or ``""``."""
    started = parse_iso(status.get("started_at"))
    if started is None:
        return ""
    finished = parse_iso(status.get("finished_at")) if status.is_finished else None
    if finished is not None:
        return seconds(finished - started)
    updated = parse_iso(status.get("updated_at"))
    if status.is_stale and updated is not None:
        return seconds(updated - started) + ", then silent"
    if status.is_working:
        return seconds((time.time() if now is None else now) - started) + " so far"
    return ""


def reason(status: Status) -> str:
    """Why the job did not complete: a cancel's reason, or ``ValueError: boom`` (first line).

    A queued job shows the exception of its last attempt (it waits for a retry).
    """
    request = status.get("cancel")
    if isinstance(request, dict) and (status.is_cancelled or status.cancel_requested):
        why = request.get("reason")
        return f"cancelled: {why}" if why else "cancelled"
    exception = status.get("exception")
    if status.is_completed or not isinstance(exception, dict):
        return ""
    kind = str(exception.get("class") or "")
    lines = str(exception.get("message") or "").strip().splitlines()
    first = lines[0] if lines else ""
    return f"{kind}: {first}" if kind and first else kind or first


def progress(status: Status) -> str:
    """``60% (60/100)``, ``60`` without a total, or ``""`` with nothing recorded."""
    shown = status.progress
    if shown.percent is not None and shown.total is not None:
        return f"{shown.percent:.0f}% ({shown.current:g}/{shown.total:g})"
    return f"{shown.current:g}" if shown.current else ""


def percent(status: Status) -> str:
    """``60%``, ``60`` without a total, or ``""`` with nothing recorded."""
    shown = status.progress
    if shown.percent is not None:
        return f"{shown.percent:.0f}%"
    return f"{shown.current:g}" if shown.current else ""


def children(status: Status) -> str:
    """A group's children counts, ``3 completed, 1 working``, or ``""`` for a plain job."""
    counts = status.get("children")
    if not isinstance(counts, dict):
        return ""
    shown = [f"{counts[key]} {key}" for key in COLOURS if counts.get(key)]
    return ", ".join(shown) or "none yet"


def silence(status: Status, stale_after: float, now: float | None = None) -> str:
    """Why a job reads as stale: how long it has been silent, and what that means."""
    updated = parse_iso(status.get("updated_at"))
    quiet = "" if updated is None else f" for {seconds((now or time.time()) - updated)}"
    return (
        f"no write or heartbeat{quiet} (stale_after {seconds(stale_after)}): "
        "its worker probably died"
    )
