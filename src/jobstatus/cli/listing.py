"""``jobstatus list``: recent jobs, newest first, with the store's counts.

On a terminal it prints a table whose id and name columns fold rather than
cut (every id can be copied whole), then the store-wide counts. Piped, it
prints one job per line, tab-separated, with nothing else, for ``cut`` and
``xargs``; ``--json`` prints everything, with the cursor of the next page.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from collections.abc import Sequence
from typing import Final

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .._errors import NotSupportedError
from .._read import MAX_RECENT, counts, recent
from .._record import STATES
from .._status import Status
from . import _format as fmt
from ._arguments import add_stale_after
from ._exit_codes import EXIT_OK
from ._store import READS

DEFAULT_LIMIT: Final = 20
TSV_COLUMNS: Final = ("job_id", "status", "name", "progress", "updated_at", "error")
DESCRIPTION: Final = f"""\
Print recent jobs, newest first (by their last write), and how many jobs the
store holds in each state.

On a terminal: a table of id, name, status ("stale": working, but silent past
stale_after, so its worker probably died), progress, age (time since the job's
last write) and error (the exception, or a cancel's reason; cut to fit: `get`
shows it whole).
Ids are never cut: a long one folds onto the next line.
Piped: one job per line, tab-separated, no header:
  {"  ".join(TSV_COLUMNS)}
"""
EXAMPLES: Final = """\
examples:
  jobstatus list                                the 20 newest jobs, and the counts
  jobstatus list --status failed --limit 100    the newest failures, and why
  jobstatus list --name reports.export          one task's jobs
  jobstatus list --prefix d8e5                  jobs whose id starts with d8e5
  jobstatus list --status failed --before 2026-12-01T10:00:00+00:00   the next page
  jobstatus list --status failed | cut -f1 | xargs -n1 jobstatus get
  jobstatus list --json | jq -r '.jobs[].job_id'
"""


def _limit(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_RECENT:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_RECENT:,}")
    return value


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: Sequence[argparse.ArgumentParser],
) -> None:
    """Add ``list`` to ``jobstatus``'s subcommands."""
    listing = commands.add_parser(
        "list",
        parents=list(parents),
        help="recent jobs, newest first, and the store's counts",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    listing.add_argument("--status", choices=STATES, help="only jobs in this state")
    listing.add_argument("--name", help="only jobs of this task name (exact)")
    listing.add_argument("--prefix", metavar="ID", help="only jobs whose id starts with this")
    listing.add_argument(
        "--before",
        metavar="UPDATED_AT",
        help="only jobs last written before this ISO time: the next page starts at the "
        "last job's updated_at (the table says what to add)",
    )
    listing.add_argument(
        "--limit",
        type=_limit,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"at most N jobs (default {DEFAULT_LIMIT})",
    )
    listing.add_argument(
        "--json",
        action="store_true",
        help='print {"counts", "jobs": [record with "job_id"], "next_before"} as JSON',
    )
    add_stale_after(listing)
    listing.set_defaults(handler=command_list, store_use=READS)


def command_list(args: argparse.Namespace) -> int:
    """Print recent jobs (a table, tab-separated lines when piped, or JSON)."""
    rows = recent(args.status, args.limit, args.before, name=args.name, prefix=args.prefix)
    next_before = rows[-1].get("updated_at") if len(rows) == args.limit else None
    console = fmt.console()
    if args.json:
        jobs = [{"job_id": s.job_id, **s.to_dict()} for s in rows]
        document = {"counts": _counts(), "jobs": jobs, "next_before": next_before}
        print(json.dumps(document, indent=2, ensure_ascii=False))
    elif not console.is_terminal:
        for status in rows:
            print("\t".join(_one_line(cell) for cell in _tsv_row(status)))
    else:
        _print_table(console, rows, args)
        found = _counts()
        if found is not None:
            console.print(_summary(found), highlight=False)
        if next_before is not None:
            page = shlex.join(["--before", str(next_before)])
            console.print(Text(f"more: add {page} for the next page", "dim"))
    return EXIT_OK


def _counts() -> dict[str, int] | None:
    try:
        return counts()
    except NotSupportedError:  # a custom store that lists but cannot count
        return None


def _print_table(console: Console, rows: list[Status], args: argparse.Namespace) -> None:
    if not rows:
        console.print(Text(f"no jobs{_filters(args)}"))
        return
    now = time.time()
    # Text, not str: a job's own values must never be read as Rich markup.
    cells = [
        [
            Text(s.job_id, style="bold"),
            Text(s.name or ""),
            fmt.short_state(s),
            Text(fmt.percent(s)),
            Text(fmt.age(s, now)),
            Text(fmt.reason(s), style="red"),
        ]
        for s in rows
    ]
    natural = [
        max(len(header), *(row[i].cell_len for row in cells)) for i, header in enumerate(COLUMNS)
    ]
    widths = column_widths(natural, console.width)
    shown = [i for i, width in enumerate(widths) if width > 0]
    table = Table(box=None, pad_edge=False)
    for i in shown:
        header = COLUMNS[i]
        if header in ("job", "name"):
            table.add_column(header, width=widths[i], overflow="fold")
        else:
            table.add_column(header, width=widths[i], overflow="ellipsis", no_wrap=True)
    for row in cells:
        table.add_row(*(row[i] for i in shown))
    console.print(table)


COLUMNS: Final = ("job", "name", "status", "progress", "age", "error")
GAP: Final = 2  # spaces between two columns (Rich's default padding)
MIN_ERROR: Final = 12  # the narrowest error column worth showing


def column_widths(natural: list[int], width: int) -> list[int]:
    """Widths for the columns of ``list`` in ``width`` characters (0: leave the column out).

    Status, progress and age keep their width. When the rest does not fit, the
    error shrinks first (it is cut with an ellipsis: ``get`` shows it whole),
    then an id longer than a uuid's 32 characters, then the name, then the
    error goes, then any id: ids and names fold onto more lines but are never
    cut. What is left over goes back to the name, then the error, then the id.
    """
    job, name, state, progress, age, error = natural
    room = width - GAP * (len(natural) - 1) - state - progress - age
    shrunk = {"job": job, "name": name, "error": error}
    for column, least in (("error", 20), ("job", 32), ("name", 12), ("error", 0), ("job", 12)):
        if sum(shrunk.values()) <= room:
            break
        shrunk[column] = min(shrunk[column], least)
    for column, full in (("name", name), ("error", error), ("job", job)):
        spare = room - sum(shrunk.values())
        shrunk[column] += max(min(spare, full - shrunk[column]), 0)
        if column == "error" and shrunk["error"] < min(MIN_ERROR, error):
            shrunk["error"] = 0  # a few letters of a reason say nothing: leave it out
    return [shrunk["job"], shrunk["name"], state, progress, age, shrunk["error"]]


def _summary(found: dict[str, int]) -> Text:
    total = sum(found[state] for state in STATES)
    parts = [f"{found[state]:,} {state}" for state in STATES]
    if found.get("stale"):
        parts[STATES.index("working")] += f" ({found['stale']:,} stale)"
    summary = Text(f"\n{total:,} jobs in the store: ")
    summary.append(", ".join(parts))
    return summary


def _filters(args: argparse.Namespace) -> str:
    shown = [
        f"{flag} {value}"
        for flag, value in (
            ("status", args.status),
            ("name", args.name),
            ("id prefix", args.prefix),
            ("last written before", args.before),
        )
        if value is not None
    ]
    return " with " + ", ".join(shown) if shown else ""


def _tsv_row(status: Status) -> list[str]:
    return [
        status.job_id,
        status.status or "unknown",
        status.name or "",
        fmt.percent(status),
        str(status.get("updated_at", "")),
        fmt.reason(status),
    ]


def _one_line(cell: str) -> str:
    """A cell of a tab-separated line: its own tabs and newlines become spaces."""
    return " ".join(cell.split()) if any(c in cell for c in "\t\r\n") else cell
