"""``manage.py jobstatus list|get|watch|cancel``: the ``jobstatus`` command, in the project.

The same subcommands, options and exit codes as the ``jobstatus`` command
(``jobstatus --help``), on the store of ``settings.JOBSTATUS`` (``--store``
picks another). A non-zero exit code is raised as ``CommandError`` with that
``returncode``, so ``manage.py`` exits with it.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from jobstatus import cli
from jobstatus.cli._exit_codes import MEANINGS, epilog


class Command(BaseCommand):  # type: ignore[misc]  # Django ships no type stubs
    help = (
        "See what background jobs are doing: list, get, watch and cancel jobs in the "
        "jobstatus store of this project's settings."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.epilog = epilog()
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
        for group in cli.READ_GROUPS:
            group.register(commands, cli.common_options())

    def handle(self, *args: Any, **options: Any) -> None:
        namespace = argparse.Namespace(**options)
        # The commands print to sys.stdout (Rich measures the terminal there): point it
        # at the stream call_command() was given, if any.
        out = options.get("stdout") or sys.stdout
        err = options.get("stderr") or sys.stderr
        with redirect_stdout(out), redirect_stderr(err):
            code = cli.run(namespace)
        if code:
            raise CommandError(f"exit code {code}: {MEANINGS.get(code, '')}", returncode=code)
