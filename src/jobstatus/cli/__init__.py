"""The ``jobstatus`` command: one module per command group, each found by its name.

=================  ===========================================
``get.py``         ``get`` and ``watch``: one job, live bars
``demo.py``        ``demo``: sample jobs in worker processes
``maintenance.py`` ``migrate`` and ``purge``
``serve.py``       ``serve``: the web endpoint (the web extra)
``listing.py``     ``list``: recent jobs as a table
=================  ===========================================

Every command takes ``--store URL``; without it, ``JOBSTATUS_STORE`` or the
embedded SQLite default is used. Each module's ``register`` adds its
subcommands; :data:`COMMAND_GROUPS` says in which order they are listed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Final

import jobstatus

from .._errors import JobStatusError
from . import demo, get, listing, maintenance, serve
from ._exit_codes import EXIT_ERROR, EXIT_FAILED, EXIT_OK, EXIT_UNKNOWN

__all__ = ["EXIT_ERROR", "EXIT_FAILED", "EXIT_OK", "EXIT_UNKNOWN", "build_parser", "main"]

COMMAND_GROUPS: Final = (get, demo, maintenance, serve, listing)
STORE_HELP: Final = "store URL (default: $JOBSTATUS_STORE or the embedded SQLite file)"


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
    """The parser of ``jobstatus`` and all its subcommands."""
    parser = argparse.ArgumentParser(
        prog="jobstatus", description="See what your background jobs are doing."
    )
    parser.add_argument("--store", metavar="URL", help=STORE_HELP)
    store = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand without --store keeps the value given before it.
    store.add_argument("--store", metavar="URL", help=STORE_HELP, default=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.register(commands, [store])
    return parser
