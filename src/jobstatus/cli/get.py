"""``jobstatus get`` (one job, whole) and ``jobstatus watch`` (live bars until the jobs end).

Both say when a working job is stale (silent past ``stale_after``: its worker
probably died), how long it ran, its attempts, its history and, for a
group, its children's counts. ``watch`` ends when every job has finished or
gone stale, so a killed job never reads as "working, eta 95s" forever.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any, Final

from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
from rich.table import Column, Table
from rich.text import Text

import jobstatus

from .._batch import Batch
from .._config import settings
from .._record import RESERVED_KEYS
from .._status import Status
from . import _format as fmt
from ._arguments import add_stale_after, job_id, positive_seconds
from ._exit_codes import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNFINISHED,
    EXIT_UNKNOWN,
)
from ._store import READS

REFRESH: Final = 0.2  # seconds between two reads of `watch`
GET_DESCRIPTION: Final = """\
Print one job's status: its state (stale marked), progress and eta, its times,
duration and attempts, its error, a group's children, its own data, and its
history (each transition, oldest first).
"""
GET_EXAMPLES: Final = """\
examples:
  jobstatus get d8e5b8bc47bf4c9e8a1b2c3d4e5f6a7b
  jobstatus get d8e5b8bc47bf4c9e8a1b2c3d4e5f6a7b --json | jq .exception
  jobstatus get ID --stale-after 300      a job whose workers write every few minutes

exit code 0 for a job the store holds, 3 for an unknown id (never recorded, or
expired); the store is named, since a split store shows first as "unknown".
"""
WATCH_DESCRIPTION: Final = """\
Show live progress bars until every job has finished, then exit with how they
ended. A working job that goes silent past stale_after (its worker probably
died) is marked stale; when every job left is stale, watch stops (exit 5)
rather than wait forever. Piped, it prints one line per job as it ends.
"""
WATCH_EXAMPLES: Final = """\
examples:
  jobstatus watch d8e5b8bc47bf4c9e8a1b2c3d4e5f6a7b
  jobstatus watch ID1 ID2 ID3 --timeout 600 && echo "all completed"
  jobstatus list --status working | cut -f1 | xargs jobstatus watch

exit code 0 all completed, 1 one failed, 3 an unknown id, 5 timed out or
stale, 6 one was cancelled (the lowest applies).
"""


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: Sequence[argparse.ArgumentParser],
) -> None:
    """Add ``get`` and ``watch`` to ``jobstatus``'s subcommands."""
    get = commands.add_parser(
        "get",
        parents=list(parents),
        help="one job's status, times, error and history",
        description=GET_DESCRIPTION,
        epilog=GET_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    get.add_argument("job_id", metavar="ID", type=job_id)
    get.add_argument("--json", action="store_true", help="print the stored record as JSON")
    add_stale_after(get)
    get.set_defaults(handler=command_get, store_use=READS)

    watch = commands.add_parser(
        "watch",
        parents=list(parents),
        help="live progress bars until the jobs finish",
        description=WATCH_DESCRIPTION,
        epilog=WATCH_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    watch.add_argument("job_ids", nargs="+", metavar="ID", type=job_id)
    watch.add_argument(
        "--timeout", type=positive_seconds, default=None, help="give up after SECONDS (exit 5)"
    )
    add_stale_after(watch)
    watch.set_defaults(handler=command_watch, store_use=READS)


def command_get(args: argparse.Namespace) -> int:
    """Print one job's status (``--json``: its record); exit 3 for an unknown id."""
    status = jobstatus.get(args.job_id)
    if args.json:
        print(json.dumps(status.to_dict(), indent=2, ensure_ascii=False))
    elif status.exists:
        fmt.console().print(details(status), highlight=False)
    else:
        fmt.console().print(Text(unknown_message(status.job_id)), highlight=False)
    return EXIT_OK if status.exists else EXIT_UNKNOWN


def unknown_message(job_id: str) -> str:
    """What an unknown id means, naming the store read (a split store shows first as this)."""
    return f"{job_id}: unknown in {settings.store().describe()} (never recorded there, or expired)"


def details(status: Status) -> Table:
    """One job as a two-column table: its fields, its own data, its history."""
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    now = time.time()
    stale_after = settings.options.stale_after
    table.add_row("job", Text(status.job_id))
    if status.name:
        table.add_row("name", Text(status.name))
    shown = fmt.state(status)
    if status.is_stale:
        shown.append("  " + fmt.silence(status, stale_after, now), style="red")
    elif status.cancel_requested:
        shown.append("  cancel requested", style="magenta")
    table.add_row("status", shown)
    if status.progress.total or status.progress.current:
        table.add_row("progress", Text(_progress_line(status)))
    group = fmt.children(status)
    if group:
        table.add_row("children", Text(group))
    for key in ("queued_at", "started_at", "finished_at"):
        # A group that finished, then got a new child, keeps an old finished_at.
        if key in status and (key != "finished_at" or status.is_finished):
            table.add_row(key.removesuffix("_at"), Text(fmt.when(status[key]) + " UTC"))
    if fmt.duration(status, now):
        table.add_row("duration", Text(fmt.duration(status, now)))
    if "attempts" in status:
        table.add_row("attempts", Text(str(status["attempts"])))
    _add_reasons(table, status)
    if "updated_at" in status:
        updated = f"{fmt.when(status['updated_at'])} UTC ({fmt.age(status, now)} ago)"
        table.add_row("updated", Text(updated))
    if "parent" in status:
        table.add_row("parent", Text(str(status["parent"])))
    own = {key: value for key, value in status.to_dict().items() if key not in RESERVED_KEYS}
    own.update({key: status[key] for key in ("serialized_job",) if key in status})
    for key, value in own.items():
        table.add_row(Text(key, style="dim"), Text(json.dumps(value, ensure_ascii=False)))
    history = status.history
    if history:
        table.add_row("history", Text("(UTC)", style="dim"))
        for entry in history:
            table.add_row(Text(""), _history_line(entry))
    return table


def _progress_line(status: Status) -> str:
    progress = status.progress
    line = f"{progress.current:g} / {'?' if progress.total is None else f'{progress.total:g}'}"
    if progress.percent is not None:
        line += f" ({progress.percent:.0f}%)"
    eta = progress.eta
    if status.is_working and not status.is_stale and eta is not None:
        line += f", eta {fmt.seconds(eta)}"
    return line


def _add_reasons(table: Table, status: Status) -> None:
    exception = status.get("exception")
    if isinstance(exception, dict) and not status.is_completed:
        kind = str(exception.get("class") or "")
        message = str(exception.get("message") or "")
        label = "error" if status.is_failed else "last error"
        table.add_row(label, Text(f"{kind}: {message}" if message else kind, style="red"))
    request = status.get("cancel")
    if isinstance(request, dict):
        line = f"requested {fmt.when(request.get('requested_at'))} UTC"
        if request.get("reason"):
            line += f": {request['reason']}"
        table.add_row("cancel", Text(line, style="magenta"))


def _history_line(entry: dict[str, Any]) -> Text:
    state = str(entry.get("status", "?"))
    line = Text(fmt.when(entry.get("at")) + "  ")
    line.append(f"{state:<16}", style=fmt.COLOURS.get(state, "magenta"))
    if entry.get("attempt"):
        line.append(f" attempt {entry['attempt']}")
    return line


def command_watch(args: argparse.Namespace) -> int:
    """Live bars for the jobs until they end; exit 3 at once if an id is unknown."""
    batch = Batch(args.job_ids)
    unknown = [s.job_id for s in batch.statuses if not s.exists]
    if unknown:
        for job_id in unknown:
            print(f"jobstatus: {unknown_message(job_id)}", file=sys.stderr)
        return EXIT_UNKNOWN
    return watch_batch(batch, timeout=args.timeout)


def watch_batch(
    batch: Batch, *, timeout: float | None = None, names: dict[str, str] | None = None
) -> int:
    """Show the batch live until every job has finished or gone stale; the exit code says how.

    ``names`` label the bars (the job's recorded name, else its id, by default).
    """
    console = fmt.console()
    deadline = None if timeout is None else time.monotonic() + timeout
    if console.is_terminal:
        ended = _watch_live(batch, deadline, names or {})
    else:
        ended = _watch_lines(batch, deadline)
    if ended == "timeout":
        print("jobstatus: timed out: jobs still running", file=sys.stderr)
        return EXIT_UNFINISHED
    stale_after = settings.options.stale_after
    for status in batch.statuses:
        if status.is_stale:
            print(
                f"jobstatus: job {status.job_id} is stale: {fmt.silence(status, stale_after)}",
                file=sys.stderr,
            )
    return exit_code(batch)


def exit_code(batch: Batch) -> int:
    """How the watched jobs ended (the lowest code that applies)."""
    counts = batch.counts
    if counts["failed"]:
        return EXIT_FAILED
    if counts["missing"]:
        return EXIT_UNKNOWN
    if batch.stale:
        return EXIT_UNFINISHED
    if counts["cancelled"]:
        return EXIT_CANCELLED
    return EXIT_OK


def _settled(batch: Batch) -> bool:
    """Every job has finished, expired, or gone stale: there is nothing left to wait for."""
    return all(s.is_finished or s.is_stale or not s.exists for s in batch.statuses)


def _watch_live(batch: Batch, deadline: float | None, names: dict[str, str]) -> str:
    columns = (
        TextColumn("{task.description}", table_column=Column(no_wrap=True), style="bold"),
        TextColumn("{task.fields[state]}", table_column=Column(no_wrap=True)),
        BarColumn(bar_width=24),
        TaskProgressColumn(),
        TextColumn(
            "{task.fields[detail]}",
            table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1),
            style="dim",
        ),
    )
    with Progress(*columns, refresh_per_second=10, expand=True) as bars:
        tasks = {
            s.job_id: bars.add_task(
                escape(names.get(s.job_id) or s.name or s.job_id), total=None, state="", detail=""
            )
            for s in batch.statuses
        }
        while True:
            for status in batch.statuses:
                bars.update(tasks[status.job_id], **_bar_fields(status))
            if _settled(batch):
                return "settled"
            if deadline is not None and time.monotonic() > deadline:
                return "timeout"
            time.sleep(REFRESH)
            batch.refresh()


def _watch_lines(batch: Batch, deadline: float | None) -> str:
    """Piped: one line per job as it ends (id, state, duration, reason), nothing else."""
    told: set[str] = set()
    while True:
        for status in batch.statuses:
            if status.job_id not in told and (status.is_finished or status.is_stale):
                told.add(status.job_id)
                fields = [status.job_id, "stale" if status.is_stale else str(status.status)]
                fields += [fmt.duration(status), fmt.reason(status)]
                print("\t".join(field for field in fields), flush=True)
        if _settled(batch):
            return "settled"
        if deadline is not None and time.monotonic() > deadline:
            return "timeout"
        time.sleep(REFRESH)
        batch.refresh()


def _attempts(status: Status) -> int:
    """How many times the job has started (0 when the record does not say)."""
    attempts = status.get("attempts")
    return attempts if isinstance(attempts, int) and not isinstance(attempts, bool) else 0


def _bar_fields(status: Status) -> dict[str, Any]:
    progress = status.progress
    detail = ""
    if status.is_stale:
        detail = "silent " + fmt.age(status) + ": its worker probably died"
    elif status.is_finished:
        attempts = _attempts(status)
        parts = [fmt.duration(status), f"{attempts} attempts" if attempts > 1 else ""]
        detail = "  ".join(part for part in (*parts, fmt.reason(status)) if part)
    elif status.is_working:
        eta = progress.eta
        attempts = _attempts(status)
        parts = [
            f"attempt {attempts}" if attempts > 1 else "",
            f"eta {fmt.seconds(eta)}" if eta is not None else "",
            fmt.children(status),
            str(status.get("step") or ""),
            "cancel requested" if status.cancel_requested else "",
        ]
        detail = "  ".join(part for part in parts if part)
    elif status.is_queued:
        detail = fmt.children(status) if "children" in status else fmt.reason(status)
    total = progress.total
    if total is None and (status.is_finished or status.is_stale):
        total = max(progress.current, 1)  # a full or still bar: nothing moves any more
    completed = total if status.is_completed else progress.current
    state = fmt.state(status)
    return {
        "state": f"[{state.style}]{escape(state.plain)}[/]",
        "completed": completed,
        "total": total,
        "detail": escape(detail),
    }
