"""``jobstatus list``: recent jobs, newest first, as a table."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .._read import recent
from .._record import STATES
from .._status import Status
from ._exit_codes import EXIT_OK


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: Sequence[argparse.ArgumentParser],
) -> None:
    """Add ``list`` to ``jobstatus``'s subcommands."""
    listing = commands.add_parser(
        "list", parents=list(parents), help="print recent jobs as a table"
    )
    listing.add_argument("--status", choices=STATES, help="only jobs in this state")
    listing.add_argument("--limit", type=int, default=20, help="at most N jobs (default 20)")
    listing.set_defaults(handler=command_list)


def command_list(args: argparse.Namespace) -> int:
    """Print recent jobs, newest first, as a table."""
    rows = recent(args.status, args.limit)
    table = Table(box=None)
    for column in ("job", "status", "progress", "step", "updated"):
        table.add_column(column)
    for status in rows:
        # Text, not str: a job's own values must not be read as Rich markup.
        table.add_row(*(Text(cell) for cell in _cells(status)))
    console = Console()
    if rows:
        console.print(table)
    else:
        console.print("no recent jobs" + (f" with status {args.status}" if args.status else ""))
    return EXIT_OK


def _cells(status: Status) -> list[str]:
    progress = status.progress
    if progress.percent is not None:
        shown = f"{progress.percent:.0f}% ({progress.current:g}/{progress.total:g})"
    else:
        shown = f"{progress.current:g}" if progress.current else ""
    step = status.get("step")
    return [
        status.job_id,
        status.status or "unknown",
        shown,
        "" if step is None else str(step),
        str(status.get("updated_at", "")),
    ]
