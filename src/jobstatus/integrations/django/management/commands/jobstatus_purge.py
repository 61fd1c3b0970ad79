"""``manage.py jobstatus_purge``: delete expired records now.

Writes already purge expired rows in small batches; run this from cron after a
quiet spell, or to shrink the table at once. It works on stores that keep
expired rows until purged (the database store, SQLite); stores that expire
records themselves (Redis, memcached, caches) need nothing.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from jobstatus._config import settings
from jobstatus.stores.base import Purge


class Command(BaseCommand):  # type: ignore[misc]  # Django ships no type stubs
    help = "Delete expired jobstatus records from the configured store now."

    def handle(self, *args: Any, **options: Any) -> None:
        store = settings.store()
        purging = Purge.of(store)
        if purging is None:
            raise CommandError(f"{store.describe()} expires records by itself: nothing to purge")
        removed = purging.purge()
        self.stdout.write(f"removed {removed} expired records from {store.describe()}")
