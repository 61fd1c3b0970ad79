"""The exit codes of the ``jobstatus`` command: one meaning each.

When several apply (``watch`` of a failed and a cancelled job), the lowest
non-zero code wins, so a failure is never hidden behind a lesser outcome.
"""

from typing import Final

EXIT_OK: Final = 0  # done; every watched job completed; every cancel was recorded
EXIT_FAILED: Final = 1  # a watched job failed
EXIT_USAGE: Final = 2  # a usage error: a bad option or argument, a malformed id (argparse's 2)
EXIT_UNKNOWN: Final = 3  # an unknown job id: never recorded, or expired
EXIT_STORE: Final = 4  # the store: a bad URL, unreachable, a missing SQLite file, cannot list
EXIT_UNFINISHED: Final = 5  # watch gave up: --timeout passed, or the jobs left are stale
EXIT_CANCELLED: Final = 6  # a watched job was cancelled
EXIT_NOT_CANCELLED: Final = 7  # cancel: the job had already finished, nothing was recorded
EXIT_INTERRUPTED: Final = 130  # Ctrl-C (128 + SIGINT, as shells do)
EXIT_PIPE_CLOSED: Final = 141  # the reader of the output went away (`| head`; 128 + SIGPIPE)

MEANINGS: Final = {
    EXIT_OK: "done (every watched job completed, every cancel recorded)",
    EXIT_FAILED: "a watched job failed",
    EXIT_USAGE: "a usage error: a bad option or argument, or a malformed job id",
    EXIT_UNKNOWN: "an unknown job id (never recorded, or expired)",
    EXIT_STORE: (
        "a store error: a bad or unreachable store, a missing SQLite file, "
        "memory:// from another process, or a store that cannot list"
    ),
    EXIT_UNFINISHED: "not finished: watch --timeout passed, or every unfinished job is stale",
    EXIT_CANCELLED: "a watched job was cancelled",
    EXIT_NOT_CANCELLED: "not cancelled: the job had already finished",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
    EXIT_PIPE_CLOSED: "the reader of the output went away (| head)",
}


def epilog() -> str:
    """The exit code table, for ``jobstatus --help``."""
    rows = "\n".join(f"  {code:<4} {meaning}" for code, meaning in MEANINGS.items())
    return f"exit codes:\n{rows}"
