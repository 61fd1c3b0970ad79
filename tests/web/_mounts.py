"""The endpoint mounted under ``/status`` by each framework, behind one ``get``.

Each factory yields ``get(url, headers=None, method="get", body=None) -> Answer``,
served in process by the framework's own test client (httpx over ASGI for
Starlette), and stops the mount when the generator is closed. ``body`` (bytes)
is sent with the ``Content-Type`` the headers name, if any.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from jobstatus.stores import Store

REQUEST_DEADLINE = 20.0  # seconds; a stream that never ends fails the test instead of hanging it


@dataclass
class Answer:
    """What a client got: status, headers (lower-case names) and the body as strict UTF-8."""

    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        """The body as standard JSON (see :func:`strict_json`)."""
        return strict_json(self.text)


def strict_json(text: str) -> Any:
    """``text`` parsed as standard JSON: NaN and the infinities are not JSON and fail here."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


Get = Callable[..., Answer]


def starlette(store: Store, **options: Any) -> Iterator[Get]:
    """The ASGI app, mounted in a Starlette app."""
    import httpx
    from starlette.applications import Starlette
    from starlette.routing import Mount

    import jobstatus.web

    app = Starlette(routes=[Mount("/status", jobstatus.web.create_app(store=store, **options))])

    def get(
        url: str,
        headers: dict[str, str] | None = None,
        method: str = "get",
        body: bytes | None = None,
    ) -> Answer:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.request(
                    method.upper(), "/status" + url, headers=headers, content=body
                )

        response = asyncio.run(asyncio.wait_for(send(), REQUEST_DEADLINE))
        return Answer(response.status_code, dict(response.headers), response.content.decode())

    yield get


def django(store: Store, **options: Any) -> Iterator[Get]:
    """``jobstatus.web.django.urls()`` through Django's test client."""
    from django.conf import settings

    if not settings.configured:
        from tests.django_project.harness import ensure_django

        ensure_django()
    import django

    django.setup()
    from django.test import Client, override_settings
    from django.urls import include, path

    import jobstatus.web.django

    urlconf = ModuleType("jobstatus_web_test_urls")
    urlconf.urlpatterns = [  # type: ignore[attr-defined]
        path("status/", include(jobstatus.web.django.urls(store=store, **options)))
    ]
    client = Client()

    def get(
        url: str,
        headers: dict[str, str] | None = None,
        method: str = "get",
        body: bytes | None = None,
    ) -> Answer:
        headers = dict(headers or {})
        content_type = next(
            (headers.pop(name) for name in list(headers) if name.lower() == "content-type"), None
        )
        extra: dict[str, Any] = {}
        if content_type is not None:  # the client leaves it out of a request without a body
            extra = {"content_type": content_type, "CONTENT_TYPE": content_type}
        response = client.generic(
            method.upper(), "/status" + url, data=body or b"", headers=headers, **extra
        )
        if response.streaming:
            body = b"".join(response.streaming_content)
            response.close()
        else:
            body = response.content
        return Answer(
            response.status_code, {k.lower(): v for k, v in response.items()}, body.decode()
        )

    with override_settings(ROOT_URLCONF=urlconf, ALLOWED_HOSTS=["*"], MIDDLEWARE=[]):
        yield get


def flask(store: Store, **options: Any) -> Iterator[Get]:
    """``jobstatus.web.flask.blueprint()`` through Flask's test client."""
    import flask

    import jobstatus.web.flask

    app = flask.Flask("jobstatus_test")
    app.register_blueprint(
        jobstatus.web.flask.blueprint(store=store, **options), url_prefix="/status"
    )
    client = app.test_client()

    def get(
        url: str,
        headers: dict[str, str] | None = None,
        method: str = "get",
        body: bytes | None = None,
    ) -> Answer:
        response = client.open("/status" + url, method=method.upper(), headers=headers, data=body)
        body = response.get_data()
        response.close()
        return Answer(
            response.status_code, {k.lower(): v for k, v in response.headers.items()}, body.decode()
        )

    yield get


class Mounts:
    """``mounts(**options)`` mounts the endpoint with one framework on ``store``.

    ``store=`` among the options serves another store; :meth:`close` stops every mount.
    """

    def __init__(self, factory: Callable[..., Iterator[Get]], store: Store) -> None:
        self.factory = factory
        self.store = store
        self._opened: list[Iterator[Get]] = []

    def __call__(self, **options: Any) -> Get:
        mount = self.factory(options.pop("store", self.store), **options)
        self._opened.append(mount)
        return next(mount)

    def close(self) -> None:
        for mount in self._opened:
            for _ in mount:
                pass
