"""``jobstatus cancel ID [ID ...] [--reason TEXT]``: request that jobs stop (SPEC 9).

Each request is one guarded write, recorded only while the job is queued or
working. A queued job then never runs its code; a running one stops at its
next progress or status call and is recorded ``cancelled``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Final

from rich.text import Text

import jobstatus

from .._record import MAX_REASON_LENGTH, check_reason, unique_ids
from . import _arguments
from . import _format as fmt
from ._exit_codes import EXIT_NOT_CANCELLED, EXIT_OK, EXIT_UNKNOWN
from ._store import READS
from .get import unknown_message

DESCRIPTION: Final = """\
Request that jobs stop. A queued job never runs its code; a running job raises
jobstatus.Cancelled at its next progress or status call and is recorded
cancelled. A job that already finished, or an unknown id, is left unchanged.
Prints one line per id saying whether its cancel was recorded.
"""
EXAMPLES: Final = f"""\
examples:
  jobstatus cancel d8e5b8bc47bf4c9e8a1b2c3d4e5f6a7b
  jobstatus cancel ID1 ID2 --reason "the customer closed the page"
  jobstatus list --status queued --name reports.export | cut -f1 | xargs jobstatus cancel

exit code 0 when every cancel was recorded, 3 when an id is unknown, 7 when a
job had already finished (3 wins over 7). --reason takes up to {MAX_REASON_LENGTH:,} characters.
"""


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: Sequence[argparse.ArgumentParser],
) -> None:
    """Add ``cancel`` to ``jobstatus``'s subcommands."""
    cancel = commands.add_parser(
        "cancel",
        parents=list(parents),
        help="request that jobs stop",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cancel.add_argument("job_ids", nargs="+", metavar="ID", type=_arguments.job_id)
    cancel.add_argument(
        "--reason", metavar="TEXT", type=reason, help="why; recorded, and raised with it"
    )
    cancel.set_defaults(handler=command_cancel, store_use=READS)


def reason(text: str) -> str:
    """An argparse type: a cancel reason of at most 1,000 characters."""
    try:
        return str(check_reason(text))
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def command_cancel(args: argparse.Namespace) -> int:
    """Request each job's cancel; print per id whether it was recorded."""
    ids = unique_ids(args.job_ids)  # each one checked by argparse, before any request
    console = fmt.console()
    unknown = finished = 0
    for job_id in ids:
        if jobstatus.cancel(job_id, args.reason):
            console.print(Text(f"{job_id}: cancel requested"), highlight=False)
            continue
        status = jobstatus.get(job_id)  # why not: unknown, or finished meanwhile
        if not status.exists:
            unknown += 1
            console.print(Text(f"{unknown_message(job_id)}: not cancelled"), highlight=False)
        else:
            finished += 1
            console.print(
                Text(f"{job_id}: not cancelled: already {status.status}"), highlight=False
            )
    if unknown:
        return EXIT_UNKNOWN
    return EXIT_NOT_CANCELLED if finished else EXIT_OK
