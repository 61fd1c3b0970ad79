"""``jobstatus demo``: sample jobs in worker processes, watched live."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Final

import jobstatus

from .. import _demo
from .._batch import Batch
from .._config import settings
from ._exit_codes import EXIT_FAILED, EXIT_OK
from ._store import SHARES
from .get import watch_batch

JOBS: Final = (
    (_demo.resize_images, 40),
    (_demo.export_report, 6000),
    (_demo.send_emails, 30),
    (_demo.sync_inventory, 20),
    (_demo.resize_images, 25),
)


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: Sequence[argparse.ArgumentParser],
) -> None:
    """Add ``demo`` to ``jobstatus``'s subcommands."""
    demo = commands.add_parser(
        "demo",
        parents=list(parents),
        help="run sample jobs in worker processes and watch them",
        description="Run five sample jobs in three worker processes (one fails on purpose) "
        "and show them live until they end. The store must be one other processes can "
        "reach: memory:// is refused.",
        epilog="examples:\n  jobstatus demo\n  jobstatus --store sqlite:///demo.db demo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.set_defaults(handler=command_demo, store_use=SHARES)


def command_demo(args: argparse.Namespace) -> int:
    """Run the sample jobs (one fails on purpose) and show them until they end."""
    print(
        f"Running {len(JOBS)} sample jobs in worker processes; status kept in "
        f"{settings.store().describe()}\n"
    )
    with ProcessPoolExecutor(max_workers=3) as pool:
        ids = [jobstatus.submit(pool, fn, arg) for fn, arg in JOBS]
        names = {
            job_id: fn.__jobstatus__.name  # type: ignore[attr-defined]
            for job_id, (fn, _) in zip(ids, JOBS, strict=False)
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
