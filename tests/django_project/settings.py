"""Settings of the test project.

The database is a PostgreSQL database made for one test session; its name
comes from ``JOBSTATUS_DJANGO_DATABASE`` so the ``db_worker`` subprocess uses
the same one (see ``harness.py``).
"""

from __future__ import annotations

import os
from importlib.util import find_spec
from urllib.parse import urlsplit

POSTGRES = urlsplit(
    os.environ.get("JOBSTATUS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
)

# Django 6 has django.tasks built in; on Django 5.2 the django-tasks backport provides it.
TASKS_PACKAGE = "django.tasks" if find_spec("django.tasks") else "django_tasks"

SECRET_KEY = "jobstatus-tests-only"
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.django_project.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    *(["django_tasks"] if TASKS_PACKAGE == "django_tasks" else []),
    "django_tasks_db",
    "jobstatus.integrations.django",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("JOBSTATUS_DJANGO_DATABASE", "jobstatus_django_unset"),
        "USER": POSTGRES.username or "postgres",
        "PASSWORD": POSTGRES.password or "",
        "HOST": POSTGRES.hostname or "127.0.0.1",
        "PORT": POSTGRES.port or 5432,
    }
}

CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "dummy": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
}

TASKS = {
    "default": {"BACKEND": f"{TASKS_PACKAGE}.backends.immediate.ImmediateBackend"},
    "db": {
        "BACKEND": "django_tasks_db.DatabaseBackend",
        "QUEUES": ["default", "forced", "killed", "contract"],
    },
    "dummy": {"BACKEND": f"{TASKS_PACKAGE}.backends.dummy.DummyBackend"},
}


def _worker_options() -> dict[str, float]:
    """``HEARTBEAT_INTERVAL`` from ``JOBSTATUS_TEST_HEARTBEAT_INTERVAL`` when a test gives it.

    The same variable as tests/integrations/apps/_worker_options.py; unset, jobstatus'
    default stays.
    """
    interval = os.environ.get("JOBSTATUS_TEST_HEARTBEAT_INTERVAL")
    return {"HEARTBEAT_INTERVAL": float(interval)} if interval else {}


def _settings_store() -> dict[str, str]:
    """``STORE`` from ``JOBSTATUS_TEST_SETTINGS_STORE`` when a test gives it (the store
    a project names in its settings, where JOBSTATUS_STORE is not set)."""
    store = os.environ.get("JOBSTATUS_TEST_SETTINGS_STORE")
    return {"STORE": store} if store else {}


JOBSTATUS = {
    "INCLUDES": ["status", "exception", "serialized_job"],
    "TASKS": {"tests.django_project.tasks.configured": {"THROTTLE_INTERVAL": 60}},
    "AUTHORIZE": "tests.django_project.auth.may_read",
    **_worker_options(),
    **_settings_store(),
}
