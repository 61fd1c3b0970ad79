"""Which store a command uses, and the guards that keep it from using the wrong one.

A command run in its own process is the first place a split store shows: a
``memory://`` it cannot share, or an SQLite path that names a file no worker
ever wrote (a typo, another user's cache folder, another container). Read
commands refuse both, naming what they were given, and create nothing.

With ``DJANGO_SETTINGS_MODULE`` set, Django is set up first, so the store of
``settings.JOBSTATUS`` applies (``django-db://default`` included) unless
``--store`` names another.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib.util import find_spec
from typing import Any, Final

from .._config import STORE_ENV, configure, require_shared_store, settings
from .._errors import ConfigurationError
from ..stores.base import Store, require
from ..stores.sqlite import SQLiteStore

READS: Final = "reads"  # list, get, watch, cancel: an existing, shared store
SHARES: Final = "shares"  # demo, serve: a store other processes reach (it may be new)
ANY: Final = "any"  # migrate, purge: whatever store is given
DJANGO_SETTINGS: Final = "DJANGO_SETTINGS_MODULE"


def prepare(args: argparse.Namespace) -> None:
    """Set Django up if asked, configure ``--store``, and apply the command's guards.

    Raises:
        ConfigurationError: a bad store URL, Django settings that cannot load,
            ``memory://`` for a command that needs another process's store, or a
            missing SQLite file for a read command.
    """
    given: str | None = getattr(args, "store", None)
    setup_django(given)
    if given:
        configure(store=given)
    if getattr(args, "stale_after", None) is not None:
        configure(stale_after=args.stale_after)
    use = getattr(args, "store_use", ANY)
    if use == ANY:
        return
    store = settings.store()
    require_shared_store(store, "the jobstatus command, a process of its own,")
    if use == READS:
        require_existing_file(store)


def setup_django(given: str | None) -> None:
    """``django.setup()`` when the store comes from Django settings; no-op otherwise.

    Raises:
        ConfigurationError: a ``django-...://`` store without ``DJANGO_SETTINGS_MODULE``,
            or settings that cannot be imported.
    """
    if "django" in sys.modules:
        from django.apps import apps

        if apps.ready:  # manage.py jobstatus, or a caller that set Django up already
            return
    url = given or os.environ.get(STORE_ENV) or ""
    wants_django = url.startswith("django-")
    module = os.environ.get(DJANGO_SETTINGS)
    if not module:
        if wants_django:
            raise ConfigurationError(
                f"{url} is a store of a Django project: set {DJANGO_SETTINGS}="
                "yourproject.settings, or run `python manage.py jobstatus ...`"
            )
        return
    if given and not wants_django:
        return  # an explicit store of another kind: Django's settings do not matter
    if not wants_django and find_spec("django") is None:
        return  # a variable left over from another project
    django: Any = require("django", "django")
    try:
        django.setup()
    except ImportError as exc:
        raise ConfigurationError(
            f"{DJANGO_SETTINGS}={module!r} cannot be imported ({exc}); run from the folder "
            "of manage.py with PYTHONPATH=., or run `python manage.py jobstatus ...`"
        ) from exc


def require_existing_file(store: Store) -> None:
    """Refuse an SQLite store whose file does not exist (reading it would create it).

    Raises:
        ConfigurationError: naming the file, and why it may be missing.
    """
    if not isinstance(store, SQLiteStore) or store.path.exists():
        return
    if settings.is_per_user_default(store):
        raise ConfigurationError(
            f"no job has been recorded in the per-user default store {store.path} (the file "
            "does not exist yet). Workers running as another user or in a container write "
            f"to their own file: give them and this command the same store ({STORE_ENV} "
            "or --store URL). Nothing was created."
        )
    where = str(store.path)
    if not store.path.is_absolute():
        where += f" (that is {store.path.absolute()}: sqlite:///relative.db is relative to "
        where += "the current folder, sqlite:////absolute/path.db is absolute)"
    raise ConfigurationError(
        f"no SQLite file at {where}: no job was ever recorded there, and read commands "
        f"create nothing. Give the store your jobs write to (--store URL or {STORE_ENV})."
    )
