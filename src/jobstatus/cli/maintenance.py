"""``jobstatus migrate`` and ``jobstatus purge``: the store's upkeep."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .._config import settings
from ..stores.base import Migration, Purge
from ._exit_codes import EXIT_OK


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: Sequence[argparse.ArgumentParser],
) -> None:
    """Add ``migrate`` and ``purge`` to ``jobstatus``'s subcommands."""
    migrate = commands.add_parser(
        "migrate",
        parents=list(parents),
        help="create the store's tables (PostgreSQL)",
        description="Create the store's tables now, rather than at the first write "
        "(PostgreSQL). Other stores need none and say so.",
        epilog="examples:\n  jobstatus --store postgresql://app@db/app migrate",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    migrate.set_defaults(handler=command_migrate)

    purge = commands.add_parser(
        "purge",
        parents=list(parents),
        help="delete expired records now (SQLite, PostgreSQL)",
        description="Delete expired records now (writes already purge them in small "
        "batches). Stores that expire records by themselves (Redis, memcached) say so.",
        epilog="examples:\n  jobstatus purge\n"
        "  0 3 * * * jobstatus --store postgresql://app@db/app purge    (from cron)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    purge.set_defaults(handler=command_purge)


def command_migrate(args: argparse.Namespace) -> int:
    """Create the store's tables now (a store without any says it needs no migration)."""
    store = settings.store()
    migration = Migration.of(store)
    if migration is None:
        print(f"{store.describe()} needs no migration")
        return EXIT_OK
    migration.migrate()
    print(f"{store.describe()} is ready")
    return EXIT_OK


def command_purge(args: argparse.Namespace) -> int:
    """Delete expired records now (a store that expires them by itself says so)."""
    store = settings.store()
    purging = Purge.of(store)
    if purging is None:
        print(f"{store.describe()} removes expired records by itself")
        return EXIT_OK
    removed = purging.purge()
    print(f"removed {removed:,} expired records from {store.describe()}")
    return EXIT_OK
