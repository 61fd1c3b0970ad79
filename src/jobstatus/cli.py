"""The ``jobstatus`` command: get, watch, demo, migrate, purge (and serve, list with the web extra).

Every command takes ``--store URL``; without it, ``JOBSTATUS_STORE`` or the
embedded SQLite default is used.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from rich.markup import escape

import jobstatus

from ._batch import Batch
from ._config import settings
from ._errors import JobStatusError
from ._status import Status
from .stores.base import Migration, Purge

EXIT_OK, EXIT_FAILED, EXIT_UNKNOWN, EXIT_ERROR = 0, 1, 2, 3
REFRESH = 0.2  # seconds between two screen updates of `watch`


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.store:
            jobstatus.configure(store=args.store)
        code: int = args.handler(args)
    except (JobStatusError, ValueError, TypeError) as exc:
        print(f"jobstatus: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jobstatus", description="See what your background jobs are doing."
    )
    store_help = "store URL (default: $JOBSTATUS_STORE or the embedded SQLite file)"
    parser.add_argument("--store", metavar="URL", help=store_help)
    store = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand without --store keeps the value given before it.
    store.add_argument("--store", metavar="URL", help=store_help, default=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True)

    get = commands.add_parser("get", parents=[store], help="show one job's status")
    get.add_argument("job_id")
    get.add_argument("--json", action="store_true", help="print the record as JSON")
    get.set_defaults(handler=command_get)

    watch = commands.add_parser(
        "watch", parents=[store], help="live progress bars until the jobs finish"
    )
    watch.add_argument("job_ids", nargs="+", metavar="ID")
    watch.add_argument("--timeout", type=float, default=None, help="give up after SECONDS")
    watch.set_defaults(handler=command_watch)

    demo = commands.add_parser("demo", parents=[store], help="run sample jobs and watch them")
    demo.set_defaults(handler=command_demo)

    migrate = commands.add_parser(
        "migrate", parents=[store], help="create the store's tables (PostgreSQL)"
    )
    migrate.set_defaults(handler=command_migrate)

    purge = commands.add_parser(
        "purge", parents=[store], help="delete expired records now (SQLite, PostgreSQL)"
    )
    purge.set_defaults(handler=command_purge)

    try:
        from .web.cli import add_arguments
    except ImportError:  # the web extra is not installed
        pass
    else:
        add_arguments(commands, parents=[store])
    return parser


def command_get(args: argparse.Namespace) -> int:
    status = jobstatus.get(args.job_id)
    if args.json:
        print(json.dumps(status.to_dict(), indent=2, ensure_ascii=False))
    else:
        _print_status(status)
    return EXIT_OK if status.exists else EXIT_UNKNOWN


def _print_status(status: Status) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    # Job data is shown as plain Text: "[red]x[/]" in a value must not become markup.
    if not status.exists:
        console.print(Text(f"{status.job_id}: unknown (never recorded, or expired)"))
        return
    table = Table(show_header=False, box=None)
    table.add_row("job", Text(status.job_id))
    table.add_row("status", _styled_state(status.status))
    progress = status.progress
    if progress.total is not None or progress.current:
        percent = f" ({progress.percent:.0f}%)" if progress.percent is not None else ""
        table.add_row("progress", f"{progress.current} / {progress.total}{percent}")
    for key, value in status.to_dict().items():
        if key not in ("status", "progress", "total"):
            table.add_row(Text(key), Text(json.dumps(value, ensure_ascii=False)))
    console.print(table)


def _styled_state(state: str | None) -> str:
    colours = {"queued": "yellow", "working": "cyan", "completed": "green", "failed": "red"}
    return f"[{colours.get(state or '', 'white')}]{state or 'unknown'}[/]"


def command_watch(args: argparse.Namespace) -> int:
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
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

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
        "state": _styled_state(status.status),
        "completed": completed,
        "total": total,
        "detail": escape(detail),
    }


def command_demo(args: argparse.Namespace) -> int:
    from . import _demo

    jobs = [
        (_demo.resize_images, 40),
        (_demo.export_report, 6000),
        (_demo.send_emails, 30),
        (_demo.sync_inventory, 20),
        (_demo.resize_images, 25),
    ]
    print(
        f"Running {len(jobs)} sample jobs in worker processes; status kept in "
        f"{settings.store().describe()}\n"
    )
    with ProcessPoolExecutor(max_workers=3) as pool:
        ids = [jobstatus.submit(pool, fn, arg) for fn, arg in jobs]
        names = {
            job_id: fn.__jobstatus_tracking__.name  # type: ignore[attr-defined]
            for job_id, (fn, _) in zip(ids, jobs, strict=False)
        }
        code = watch_batch(Batch(ids), timeout=60, names=names)
    batch = Batch(ids)
    print(
        f"\nDone: {batch.counts['completed']} completed, {batch.counts['failed']} failed "
        "(the email job fails on purpose). Try:"
    )
    print(f"  {_this_command()} get {ids[2]}")
    return EXIT_OK if code in (EXIT_OK, EXIT_FAILED) else code


def _this_command() -> str:
    """How the user can run this command again (the venv's script, or python -m)."""
    script = sys.argv[0] if sys.argv else ""
    if script.endswith("__main__.py") or not script:
        return f"{sys.executable} -m jobstatus"
    return script


def command_migrate(args: argparse.Namespace) -> int:
    store = settings.store()
    migration = Migration.of(store)
    if migration is None:
        print(f"{store.describe()} needs no migration")
        return EXIT_OK
    migration.migrate()
    print(f"{store.describe()} is ready")
    return EXIT_OK


def command_purge(args: argparse.Namespace) -> int:
    store = settings.store()
    purging = Purge.of(store)
    if purging is None:
        print(f"{store.describe()} removes expired records by itself")
        return EXIT_OK
    removed = purging.purge()
    print(f"removed {removed:,} expired records from {store.describe()}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
