"""The exit codes of the ``jobstatus`` command."""

from typing import Final

EXIT_OK: Final = 0  # done; every watched job completed
EXIT_FAILED: Final = 1  # a watched job failed
EXIT_UNKNOWN: Final = 2  # an unknown job id (argparse's usage errors are 2 as well)
EXIT_ERROR: Final = 3  # a bad store URL or option, a store that fails, a timeout
