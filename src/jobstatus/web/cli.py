"""``jobstatus serve`` and ``jobstatus list``: registered by ``jobstatus.cli``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from .._config import settings
from .._read import recent
from .._record import STATES
from .._status import Status

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def add_arguments(subparsers: Any, parents: Sequence[argparse.ArgumentParser] = ()) -> None:
    """Register the ``serve`` and ``list`` subcommands on ``jobstatus``'s subparsers."""
    serve_parser = subparsers.add_parser(
        "serve", parents=list(parents), help="serve the status endpoint and dashboard"
    )
    serve_parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on")
    serve_parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on")
    serve_parser.add_argument(
        "--public",
        action="store_true",
        help="serve the listing and dashboard to anyone who can reach the port",
    )
    serve_parser.add_argument(
        "--expose",
        action="append",
        default=[],
        metavar="KEY",
        help="serve a private key anyway (exception, serialized_job); repeatable",
    )
    serve_parser.set_defaults(handler=serve)

    list_parser = subparsers.add_parser(
        "list", parents=list(parents), help="print recent jobs as a table"
    )
    list_parser.add_argument("--status", choices=STATES, help="only jobs in this state")
    list_parser.add_argument("--limit", type=int, default=20, help="at most N jobs (default 20)")
    list_parser.set_defaults(handler=list_jobs)


def serve(args: argparse.Namespace) -> int:
    """Run the endpoint with uvicorn until interrupted."""
    from ..stores.base import require

    uvicorn: Any = require("uvicorn", "web")
    from .app import create_app

    app = create_app(store=settings.store(), public=args.public, expose=args.expose)
    where = f"http://{args.host}:{args.port}/"
    print(
        f"jobstatus: serving {settings.store().describe()} at {where}"
        + ("" if args.public else " (listing and dashboard off: pass --public)"),
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def list_jobs(args: argparse.Namespace) -> int:
    """Print recent jobs, newest first, as a table."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

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
    return 0


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


if __name__ == "__main__":
    from ..cli import main

    sys.exit(main())
