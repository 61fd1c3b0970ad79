"""Django integration: ``django.tasks`` statuses, Django stores, settings and web routes.

    INSTALLED_APPS = [..., "jobstatus.integrations.django"]
    JOBSTATUS = {"STORE": "django-db://default", "THROTTLE_INTERVAL": 0.5}

    # urls.py
    path("status/", include("jobstatus.integrations.django.urls"))

Every task of every ``django.tasks`` backend then records queued, working,
completed or failed, ``jobstatus.current()`` works inside tasks, and
``jobstatus.get(task_result)`` reads a status. See docs/django.md.

This package imports without Django (its store module too); the app imports it.
"""

from __future__ import annotations

from .signals import in_group, options

__all__ = ["in_group", "options"]
