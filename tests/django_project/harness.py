"""Set the test project up once per test process, and start ``db_worker`` processes.

Django is configured the first time a test needs it. The PostgreSQL database
(``jobstatus_django_<random>``) is created and migrated on first use and
dropped when the process exits.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path

from ..stores import POSTGRES_URL, require_service

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = "tests.django_project.settings"
DATABASE = f"jobstatus_django_{uuid.uuid4().hex[:12]}"

_state = {"configured": False, "database": False}


def ensure_django() -> None:
    """Configure Django with the test project's settings (once per process)."""
    if _state["configured"]:
        return
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    os.environ.setdefault("JOBSTATUS_DJANGO_DATABASE", DATABASE)
    import django

    django.setup()
    _state["configured"] = True


def ensure_database() -> None:
    """Django plus its PostgreSQL database, created and migrated (skips when PostgreSQL is down)."""
    require_service("PostgreSQL", POSTGRES_URL, 5432)
    ensure_django()
    if _state["database"]:
        return
    _admin(f'CREATE DATABASE "{_name()}"')
    atexit.register(_drop)
    _state["database"] = True
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _name() -> str:
    return os.environ["JOBSTATUS_DJANGO_DATABASE"]


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(sql)


def _drop() -> None:
    from django.db import connections

    connections.close_all()
    _admin(f'DROP DATABASE IF EXISTS "{_name()}" WITH (FORCE)')


def worker_env(store_url: str, **more: str) -> dict[str, str]:
    """The environment of a worker that shares this process's database and status store.

    ``more`` adds variables, such as ``JOBSTATUS_TEST_HEARTBEAT_INTERVAL`` (read by settings).
    """
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE=SETTINGS,
        JOBSTATUS_DJANGO_DATABASE=_name(),
        JOBSTATUS_STORE=store_url,
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
        **more,
    )
    return env


def start_worker(
    store_url: str,
    log: Path,
    queue: str = "default",
    *,
    own_group: bool = False,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """A real ``manage.py db_worker`` for the ``db`` backend's ``queue``, polling every 50 ms.

    ``own_group`` starts it in a process group of its own (``os.killpg`` kills just
    the worker); ``env`` adds variables to its environment.
    """
    command = [
        sys.executable,
        "-m",
        "django",
        "db_worker",
        "--backend=db",
        f"--queue-name={queue}",
        "--interval=0.05",
        "--no-startup-delay",
        "--no-reload",
        "--verbosity=0",
    ]
    with log.open("wb") as output:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=worker_env(store_url, **(env or {})),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=own_group,
        )


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    """Stop a worker (gracefully, then for good)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
