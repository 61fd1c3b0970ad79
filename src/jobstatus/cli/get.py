"""``jobstatus get`` (one job's status) and ``jobstatus watch`` (live bars until the jobs end)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any, Final

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
from rich.table import Table
from rich.text import Text

import jobstatus

from .._batch import Batch
from .._status import Status
from ._exit_codes import EXIT_ERROR, EXIT_FAILED, EXIT_OK, EXIT_UNKNOWN

REFRESH: Final = 0.2  # seconds between two screen updates of `watch`
COLOURS: Final = {"queued": "yellow", "working": "cyan", "completed": "green", "failed": "red"}


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: Sequence[argparse.ArgumentParser],
) -> None:
    """Add ``get`` and ``watch`` to ``jobstatus``'s subcommands."""
    get = commands.add_parser("get", parents=list(parents), help="show one job's status")
    get.add_argument("job_id")
    get.add_argument("--json", action="store_true", help="print the record as JSON")
    get.set_defaults(handler=command_get)

    watch = commands.add_parser(
        "watch", parents=list(parents), help="live progress bars until the jobs finish"
    )
    watch.add_argument("job_ids", nargs="+", metavar="ID")
    watch.add_argument("--timeout", type=float, default=None, help="give up after SECONDS")
    watch.set_defaults(handler=command_watch)


def command_get(args: argparse.Namespace) -> int:
    """Print one job's status (``--json``: its record); exit 2 for an unknown id."""
    status = jobstatus.get(args.job_id)
    if args.json:
        print(json.dumps(status.to_dict(), indent=2, ensure_ascii=False))
    else:
        _print_status(status)
    return EXIT_OK if status.exists else EXIT_UNKNOWN


def _print_status(status: Status) -> None:
    console = Console()
    # Job data is shown as plain Text: "[red]x[/]" in a value must not become markup.
    if not status.exists:
        console.print(Text(f"{status.job_id}: unknown (never recorded, or expired)"))
        return
    table = Table(show_header=False, box=None)
    table.add_row("job", Text(status.job_id))
    table.add_row("status", styled_state(status.status))
    progress = status.progress
    if progress.total is not None or progress.current:
        percent = f" ({progress.percent:.0f}%)" if progress.percent is not None else ""
        table.add_row("progress", f"{progress.current} / {progress.total}{percent}")
    for key, value in status.to_dict().items():
        if key not in ("status", "progress", "total"):
            table.add_row(Text(key), Text(json.dumps(value, ensure_ascii=False)))
    console.print(table)


def styled_state(state: str | None) -> str:
    """A state as Rich markup in its colour (``unknown`` for none)."""
    return f"[{COLOURS.get(state or '', 'white')}]{state or 'unknown'}[/]"


def command_watch(args: argparse.Namespace) -> int:
    """Live bars for the jobs until they finish; exit 2 at once if an id is unknown."""
    batch = Batch(args.job_ids)
    unknown = [s.job_id for s in batch.statuses if not s.exists]
    if unknown:
        print(f"jobstatus: unknown job id(s): {', '.join(unknown)}", file=sys.stderr)
        return EXIT_UNKNOWN
    return watch_batch(batch, timeout=args.timeout)


def watch_batch(
    batch: Batch, *, timeout: float | None = None, names: dict[str, str] | None = None
) -> int:
    """Show live bars for the batch until it is finished; the exit code tells how it ended."""
    names = names or {}
    columns = (
        TextColumn("{task.description}", style="bold"),
        TextColumn("{task.fields[state]}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[detail]}", style="dim"),
    )
    deadline = None if timeout is None else time.monotonic() + timeout
    with Progress(*columns, refresh_per_second=10) as bars:
        tasks = {
            job_id: bars.add_task(
                escape(names.get(job_id, job_id)), total=None, state="", detail=""
            )
            for job_id in batch.job_ids
        }
        while True:
            for status in batch.statuses:
                bars.update(tasks[status.job_id], **_bar_fields(status))
            if batch.is_finished:
                break
            if deadline is not None and time.monotonic() > deadline:
                bars.stop()
                print("jobstatus: timed out", file=sys.stderr)
                return EXIT_ERROR
            time.sleep(REFRESH)
            batch.refresh()
    counts = batch.counts
    if counts["missing"]:
        return EXIT_UNKNOWN
    return EXIT_FAILED if counts["failed"] else EXIT_OK


def _bar_fields(status: Status) -> dict[str, Any]:
    progress = status.progress
    detail = ""
    if status.is_failed:
        exception = status.get("exception")
        detail = exception.get("message", "") if isinstance(exception, dict) else "failed"
    elif status.is_working:
        eta = progress.eta
        step = status.get("step")
        parts = [f"eta {eta:.0f}s" if eta is not None else "", str(step) if step else ""]
        detail = "  ".join(part for part in parts if part)
    total = progress.total
    if status.is_completed and total is None:
        total = progress.current or 1
    completed = total if status.is_completed else progress.current
    return {
        "state": styled_state(status.status),
        "completed": completed,
        "total": total,
        "detail": escape(detail),
    }
