"""The ``jobstatus`` command: one module per command group, each found by its name.

==================  ==================================================
``listing.py``      ``list``: recent jobs and the store's counts
``get.py``          ``get`` and ``watch``: one job whole, live bars
``cancel.py``       ``cancel``: request that jobs stop
``demo.py``         ``demo``: sample jobs in worker processes
``maintenance.py``  ``migrate`` and ``purge``
``serve.py``        ``serve``: the web endpoint (the web extra)
``_store.py``       which store a command uses, and its guards
``_format.py``      times, durations, states and reasons, said once
``_exit_codes.py``  one exit code per outcome
==================  ==================================================

Every command takes ``--store URL``; without it, ``JOBSTATUS_STORE``, the
store of the Django settings when ``DJANGO_SETTINGS_MODULE`` is set, or the
embedded SQLite default is used. Each module's ``register`` adds its
subcommands; :data:`COMMAND_GROUPS` says in which order they are listed.
:func:`run` runs parsed arguments, for ``main`` and for ``manage.py jobstatus``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Final

import jobstatus

from .._errors import JobStatusError
from . import cancel, demo, get, listing, maintenance, serve
from ._exit_codes import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NOT_CANCELLED,
    EXIT_OK,
    EXIT_PIPE_CLOSED,
    EXIT_STORE,
    EXIT_UNFINISHED,
    EXIT_UNKNOWN,
    EXIT_USAGE,
    epilog,
)
from ._store import prepare

__all__ = [
    "EXIT_CANCELLED",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_CANCELLED",
    "EXIT_OK",
    "EXIT_PIPE_CLOSED",
    "EXIT_STORE",
    "EXIT_UNFINISHED",
    "EXIT_UNKNOWN",
    "EXIT_USAGE",
    "build_parser",
    "main",
    "run",
]

COMMAND_GROUPS: Final = (listing, get, cancel, demo, serve, maintenance)
READ_GROUPS: Final = (listing, get, cancel)  # what ``manage.py jobstatus`` offers
STORE_HELP: Final = (
    "store URL (default: $JOBSTATUS_STORE, the Django settings' store when "
    "$DJANGO_SETTINGS_MODULE is set, or the embedded SQLite file)"
)
EXAMPLES: Final = """\
examples:
  jobstatus list --status failed                 which jobs failed, and why
  jobstatus get ID                               one job: times, error, history
  jobstatus watch ID [ID ...]                    live bars until they end
  jobstatus cancel ID --reason "not needed"      ask a job to stop
  jobstatus --store redis://localhost:6379/0 list
  DJANGO_SETTINGS_MODULE=mysite.settings jobstatus list

`jobstatus COMMAND --help` shows each command's options and examples.
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (argparse exits 2 on a usage error)."""
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Run parsed arguments: set the store up, run the command, map errors to exit codes.

    Errors are printed to stderr as one line: a bad argument (a malformed id) is a
    usage error (2), a store or configuration problem is 4, a timeout is 5.
    """
    try:
        prepare(args)
        code: int = args.handler(args)
    except (ValueError, TypeError) as exc:
        return _error(exc, EXIT_USAGE)
    except TimeoutError as exc:
        return _error(exc, EXIT_UNFINISHED)
    except JobStatusError as exc:
        return _error(exc, EXIT_STORE)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Python's own advice: point stdout at devnull so the exit flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE_CLOSED
    return code


def _error(exc: BaseException, code: int) -> int:
    print(f"jobstatus: {exc}", file=sys.stderr)
    return code


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``jobstatus`` and all its subcommands."""
    parser = argparse.ArgumentParser(
        prog="jobstatus",
        description="See what your background jobs are doing, whichever queue runs them.",
        epilog=f"{EXAMPLES}\n{epilog()}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"jobstatus {jobstatus.__version__}")
    parser.add_argument("--store", metavar="URL", help=STORE_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(commands, common_options())
    return parser


def common_options() -> list[argparse.ArgumentParser]:
    """The options every subcommand takes: ``--store`` (also before the command)."""
    store = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand without --store keeps the value given before it.
    store.add_argument("--store", metavar="URL", help=STORE_HELP, default=argparse.SUPPRESS)
    return [store]
