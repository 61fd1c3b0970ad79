"""The status endpoint: JSON, server-sent events, a dashboard and job pages.

``create_app()`` builds an ASGI app (Starlette) to mount in FastAPI or
Starlette; ``jobstatus.web.django.urls()`` and ``jobstatus.web.flask.blueprint()``
serve the same routes from Django and Flask. Install with
``pip install 'jobstatus[web]'``.

Example::

    from fastapi import FastAPI
    import jobstatus.web

    api = FastAPI()
    api.mount("/status", jobstatus.web.create_app(authorize=lambda req, job_id, rec: True))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..stores.base import require

if TYPE_CHECKING:
    from .app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # Starlette is imported on first use so the Django and Flask adapters and
    # `jobstatus list` work without it; a missing Starlette names the extra.
    if name == "create_app":
        require("starlette", "web")
        from .app import create_app

        return create_app
    raise AttributeError(f"module 'jobstatus.web' has no attribute {name!r}")
