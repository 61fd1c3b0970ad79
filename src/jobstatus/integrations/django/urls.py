"""The status routes of :mod:`jobstatus.web`, configured by ``settings.JOBSTATUS``.

    urlpatterns = [path("status/", include("jobstatus.integrations.django.urls"))]

serves ``status/jobs/<id>`` (JSON), ``status/jobs/<id>/events`` (server-sent
events), ``status/jobs/<id>/view`` (a live page), ``status/jobs?ids=a,b`` (a
batch) and, with ``PUBLIC`` or ``AUTHORIZE`` set, the listing and the dashboard.
``AUTHORIZE``, ``EXPOSE`` and ``PUBLIC`` are read when the URLs load. For other
options, include ``jobstatus.web.django.urls(...)`` yourself.
"""

from __future__ import annotations

from typing import Any

from ...web.django import urls
from . import conf


def status_urls() -> list[Any]:
    """The URL patterns, from the settings as they are now."""
    rules = conf.current()
    return urls(authorize=rules.authorize, public=rules.public, expose=rules.expose)


urlpatterns = status_urls()
