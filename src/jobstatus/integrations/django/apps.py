"""The Django app: add ``"jobstatus.integrations.django"`` to ``INSTALLED_APPS``."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core.signals import setting_changed


class JobStatusConfig(AppConfig):  # type: ignore[misc]  # Django ships no type stubs
    """Reads ``settings.JOBSTATUS``, applies it, and hooks the task signals.

    The app's label is ``jobstatus`` (``manage.py migrate jobstatus`` creates the
    table of the database store).
    """

    name = "jobstatus.integrations.django"
    label = "jobstatus"
    verbose_name = "jobstatus"
    default = True

    def ready(self) -> None:
        from . import conf, signals

        conf.load()
        signals.connect()
        setting_changed.connect(_reload, dispatch_uid="jobstatus:setting_changed")


def _reload(setting: str, **kwargs: Any) -> None:
    """``override_settings(JOBSTATUS=...)`` takes effect at once."""
    if setting == "JOBSTATUS":
        from . import conf

        conf.load()
