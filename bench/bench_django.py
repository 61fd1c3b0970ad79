"""Per-task overhead of the Django integration: ``django.tasks``' immediate backend
running a no-op task, with jobstatus hooked (queued, working, completed written)
and without it.

    python -m bench.bench_django

The immediate backend runs the task inside ``enqueue()``, so the time per task
is the framework's own cost plus, with jobstatus, three status writes. The
ratio is the plain time divided by the time with jobstatus (1.0 = no overhead).
"""

from __future__ import annotations

import importlib
import tempfile
import warnings
from importlib.util import find_spec
from pathlib import Path

import django
from django.conf import settings

# Django 6 has django.tasks built in; Django 5.2 has the django-tasks backport.
BUILT_IN = find_spec("django.tasks") is not None
PACKAGE = "django.tasks" if BUILT_IN else "django_tasks"

settings.configure(
    INSTALLED_APPS=[*([] if BUILT_IN else ["django_tasks"]), "jobstatus.integrations.django"],
    TASKS={"default": {"BACKEND": f"{PACKAGE}.backends.immediate.ImmediateBackend"}},
    CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
    DATABASES={},
    USE_TZ=True,
)
django.setup()

task = importlib.import_module(PACKAGE).task

import jobstatus  # noqa: E402
from jobstatus.integrations.django import signals  # noqa: E402

from ._harness import Row, alternate, report  # noqa: E402

TASKS = 2_000


@task()
def noop() -> None:
    pass


@task()
def ticks(n: int) -> None:
    status = jobstatus.current()
    for _ in range(n):
        status.progress.increment()


def run_plain(n: int) -> None:
    signals.disconnect()
    for _ in range(n):
        noop.enqueue()


def run_tracked(n: int) -> None:
    signals.connect()
    for _ in range(n):
        noop.enqueue()


def compare(store: object, label: str) -> Row:
    jobstatus.configure(store=store)
    medians = alternate({"plain": run_plain, "tracked": run_tracked}, TASKS)
    return Row(
        what=f"no-op task, immediate backend, {label}",
        ours=medians["tracked"] * 1e6,
        reference_name="same task without jobstatus",
        reference=medians["plain"] * 1e6,
        unit="us/task",
    )


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        rows.append(compare(f"sqlite:///{Path(folder) / 'status.db'}", "SQLite store"))
        rows.append(compare("memory://", "memory store"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cache_store = jobstatus.store_from_url("django-cache://default")
        rows.append(compare(cache_store, "django-cache (LocMemCache)"))
    signals.connect()
    report("Django tasks: per-task overhead (immediate backend)", rows, "django")


if __name__ == "__main__":
    main()
