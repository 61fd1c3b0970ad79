"""Cancelling and deleting jobs over HTTP, on Starlette, Django and Flask alike.

A changing route answers only when the application gave its hook and the hook
says True for the request and the job; a request sent from another site, or a
body an HTML form could send, never changes a job, whatever the hook says.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

import jobstatus

from ._support import put

pytestmark = pytest.mark.web

HOST = "app.example"
SAME_ORIGIN = {"Host": HOST, "Content-Type": "application/json", "Sec-Fetch-Site": "same-origin"}


def yes(request: Any, job_id: str, record: Any) -> bool:
    return True


def post(get: Any, url: str, body: object = None, **headers: str) -> Any:
    """POST ``body`` as JSON (``{}`` when None) with the headers of the app's own page."""
    sent = {**SAME_ORIGIN, **{name.replace("_", "-"): value for name, value in headers.items()}}
    data = b"{}" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
    return get(url, sent, method="post", body=data)


def untouched(serve: Any, job_id: str = "run") -> bool:
    status = jobstatus.get(job_id, store=serve.store)
    return status.exists and status.status == "working" and not status.cancel_requested


# -- cancel -------------------------------------------------------------------------


def test_a_cancel_from_the_apps_own_page_is_recorded(serve: Any) -> None:
    get = serve(can_cancel=yes)
    answer = post(get, "/jobs/run/cancel", {"reason": "the user clicked cancel"})
    assert answer.status == 200, answer.text
    body = answer.json()
    assert body["job_id"] == "run" and body["cancelled"] is True
    assert body["job"]["status"] == "working" and body["job"]["cancel"]["reason"] == (
        "the user clicked cancel"
    )
    status = jobstatus.get("run", store=serve.store)
    assert status.cancel_requested and status["cancel"]["reason"] == "the user clicked cancel"
    assert [entry["status"] for entry in status.history][-1] == "cancel_requested"


def test_an_empty_body_and_a_finished_job(serve: Any) -> None:
    get = serve(can_cancel=yes)
    assert post(get, "/jobs/run/cancel", b"").json()["cancelled"] is True
    done = post(get, "/jobs/done/cancel")
    assert done.status == 200 and done.json()["cancelled"] is False
    assert jobstatus.get("done", store=serve.store).status == "completed"


def test_without_a_can_cancel_hook_nobody_cancels_not_even_on_a_public_app(serve: Any) -> None:
    for options in ({}, {"public": True}, {"public": True, "authorize": yes}):
        answer = post(serve(**options), "/jobs/run/cancel")
        assert answer.status == 404 and answer.json() == {"error": "no such job"}
    assert untouched(serve)


@pytest.mark.parametrize("verdict", [False, None, 1, "yes"])
def test_only_true_from_the_hook_lets_a_request_cancel(serve: Any, verdict: object) -> None:
    answer = post(serve(can_cancel=lambda request, job_id, record: verdict), "/jobs/run/cancel")
    assert answer.status == 404 and answer.json() == {"error": "no such job"}
    assert untouched(serve)


def test_the_hook_decides_per_request_and_job(serve: Any) -> None:
    def owner(request: Any, job_id: str, record: Any) -> bool:
        return record.get("owner") == request.headers.get("x-user")

    get = serve(can_cancel=owner)
    assert post(get, "/jobs/run/cancel", x_user="bob").status == 404
    assert untouched(serve)
    assert post(get, "/jobs/run/cancel", x_user="ann").json()["cancelled"] is True


def test_a_hook_that_raises_is_a_logged_no(serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    def broken(request: Any, job_id: str, record: Any) -> bool:
        raise RuntimeError("the user table is down")

    with caplog.at_level(logging.ERROR, logger="jobstatus.web"):
        answer = post(serve(can_cancel=broken), "/jobs/run/cancel")
    assert answer.status == 404 and "user table" not in answer.text
    assert "can_cancel hook raised" in caplog.text
    assert untouched(serve)


def test_a_job_the_request_may_not_read_cannot_be_cancelled(serve: Any) -> None:
    get = serve(can_cancel=yes, authorize=lambda request, job_id, record: False)
    assert post(get, "/jobs/run/cancel").status == 404
    assert untouched(serve)


def test_unknown_and_malformed_ids(serve: Any) -> None:
    get = serve(can_cancel=yes)
    assert post(get, "/jobs/nope/cancel").status == 404
    assert post(get, "/jobs/%00/cancel").status == 400
    assert jobstatus.get("nope", store=serve.store).exists is False


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # a sibling subdomain is another origin
        {"Sec-Fetch-Site": "none"},
        {"Sec-Fetch-Site": "cross-site", "Origin": f"http://{HOST}"},  # Origin cannot outvote it
        {"Sec-Fetch-Site": "", "Origin": "https://evil.example"},
        {"Sec-Fetch-Site": None, "Origin": "https://evil.example"},
        {"Sec-Fetch-Site": None, "Origin": f"http://{HOST}.evil.example"},
        {"Sec-Fetch-Site": None, "Origin": f"http://{HOST}:8080"},
        {"Sec-Fetch-Site": None, "Origin": "null"},
        {"Sec-Fetch-Site": None, "Origin": "garbage"},
    ],
    ids=lambda headers: " ".join(f"{k}={v}" for k, v in headers.items()),
)
def test_a_request_from_another_site_never_cancels(serve: Any, headers: dict[str, Any]) -> None:
    sent = {k: v for k, v in {**SAME_ORIGIN, **headers}.items() if v is not None}
    answer = serve(can_cancel=yes)("/jobs/run/cancel", sent, method="post", body=b"{}")
    assert answer.status == 403, answer.text
    assert answer.json() == {"error": "cross-site requests cannot change jobs"}
    assert untouched(serve)


def test_a_same_origin_request_without_sec_fetch_site_is_told_by_its_origin(serve: Any) -> None:
    sent = {k: v for k, v in SAME_ORIGIN.items() if k != "Sec-Fetch-Site"}
    get = serve(can_cancel=yes)
    answer = get("/jobs/run/cancel", {**sent, "Origin": f"http://{HOST}"}, "post", b"{}")
    assert answer.status == 200 and answer.json()["cancelled"] is True


def test_a_client_outside_a_browser_sends_neither_header_and_may_cancel(serve: Any) -> None:
    sent = {k: v for k, v in SAME_ORIGIN.items() if k != "Sec-Fetch-Site"}
    answer = serve(can_cancel=yes)("/jobs/run/cancel", sent, method="post", body=b"{}")
    assert answer.status == 200 and answer.json()["cancelled"] is True


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", b"reason=x"),
        ("multipart/form-data; boundary=b", b"--b\r\n\r\n--b--\r\n"),
        ("text/plain", b'{"reason": "a form can send this body, not this type"}'),
        (None, b"{}"),
    ],
)
def test_a_body_a_cross_site_form_could_send_never_cancels(
    serve: Any, content_type: str | None, body: bytes
) -> None:
    # Even with the browser's own same-origin mark: the type alone is refused.
    sent = {k: v for k, v in SAME_ORIGIN.items() if k != "Content-Type"}
    if content_type:
        sent["Content-Type"] = content_type
    answer = serve(can_cancel=yes)("/jobs/run/cancel", sent, method="post", body=body)
    assert answer.status == 415 and "application/json" in answer.json()["error"]
    assert untouched(serve)


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"{not json", 400, "not JSON"),
        (b"[]", 400, "JSON object"),
        (b'{"reason": NaN}', 400, "not JSON"),
        (b'{"why": "x"}', 400, "unknown key 'why'"),
        (b'{"reason": 5}', 400, "reason"),
        (json.dumps({"reason": "x" * 1001}).encode(), 400, "reason"),
        (b"\xff\xfe", 400, "not JSON"),
        (b'{"reason": "' + b"x" * 5000 + b'"}', 413, "longer than 4096 bytes"),
    ],
)
def test_a_bad_body_is_a_400_and_changes_nothing(
    serve: Any, body: bytes, status: int, says: str
) -> None:
    answer = post(serve(can_cancel=yes), "/jobs/run/cancel", body)
    assert answer.status == status and says in answer.json()["error"], answer.text
    assert untouched(serve)


def test_get_on_a_cancel_path_reads_the_job_of_that_id(serve: Any) -> None:
    put(serve.store, "nightly/cancel", status="queued")
    get = serve(can_cancel=yes)
    assert get("/jobs/nightly/cancel").json()["job_id"] == "nightly/cancel"
    assert get("/jobs/nightly/delete").status == 404  # no such job, on every framework
    assert get("/jobs/run/cancel", method="put").status == 405


# -- delete ---------------------------------------------------------------------------


def test_delete_needs_its_own_hook(serve: Any) -> None:
    get = serve(can_cancel=yes, public=True)
    assert post(get, "/jobs/done/delete").status == 404
    assert jobstatus.get("done", store=serve.store).exists
    get = serve(can_delete=yes)
    answer = post(get, "/jobs/done/delete")
    assert answer.status == 200 and answer.json() == {"job_id": "done", "deleted": True}
    assert not jobstatus.get("done", store=serve.store).exists
    assert post(get, "/jobs/done/delete").status == 404  # gone: like any unknown job


def test_delete_is_refused_cross_site_and_for_a_form_body(serve: Any) -> None:
    get = serve(can_delete=yes)
    assert post(get, "/jobs/done/delete", Sec_Fetch_Site="cross-site").status == 403
    form = {**SAME_ORIGIN, "Content-Type": "application/x-www-form-urlencoded"}
    assert get("/jobs/done/delete", form, method="post", body=b"").status == 415
    assert post(get, "/jobs/done/delete", {"reason": "x"}).status == 400
    assert jobstatus.get("done", store=serve.store).exists


# -- what the pages are told they may do ----------------------------------------------


def test_the_listing_and_the_job_page_say_what_each_request_may_do(serve: Any) -> None:
    def owner(request: Any, job_id: str, record: Any) -> bool:
        return record.get("owner") == request.headers.get("x-user")

    get = serve(public=True, can_cancel=owner, can_delete=owner)
    ann = {"x-user": "ann"}
    listing = get("/jobs", ann).json()
    # "run" is ann's and working; "done" is ann's and finished: only deleted.
    assert listing["actions"] == {"run": ["cancel", "delete"], "done": ["delete"]}
    assert get("/jobs", {"x-user": "eve"}).json()["actions"] == {}
    assert 'data-actions="cancel delete"' in get("/jobs/run/view", ann).text
    assert 'data-actions=""' in get("/jobs/run/view", {"x-user": "eve"}).text
    assert 'data-actions=""' in serve(public=True)("/jobs/run/view").text


@pytest.mark.django
def test_django_with_its_csrf_middleware_the_routes_check_for_themselves() -> None:
    """The views are csrf_exempt: the app's own pages send no CSRF token, and the routes'
    own checks refuse what Django's middleware would have refused."""
    from django.conf import settings

    if not settings.configured:
        from tests.django_project.harness import ensure_django

        ensure_django()
    import django

    django.setup()
    from types import ModuleType

    from django.test import Client, override_settings
    from django.urls import include, path

    import jobstatus.web.django
    from jobstatus.stores import MemoryStore

    from ._support import seed

    store = MemoryStore()
    seed(store)
    urlconf = ModuleType("jobstatus_web_csrf_urls")
    urlconf.urlpatterns = [  # type: ignore[attr-defined]
        path("status/", include(jobstatus.web.django.urls(store=store, can_cancel=yes)))
    ]
    client = Client(enforce_csrf_checks=True)
    middleware = ["django.middleware.csrf.CsrfViewMiddleware"]
    with override_settings(ROOT_URLCONF=urlconf, ALLOWED_HOSTS=[HOST], MIDDLEWARE=middleware):

        def send(headers: dict[str, str | None]) -> Any:
            sent = {"Host": HOST, "Sec-Fetch-Site": "same-origin", **headers}
            return client.post(
                "/status/jobs/run/cancel",
                b"{}",
                content_type="application/json",
                headers={name: value for name, value in sent.items() if value is not None},
            )

        assert send({"Sec-Fetch-Site": "cross-site"}).status_code == 403
        assert send({"Sec-Fetch-Site": None, "Origin": "http://evil.example"}).status_code == 403
        assert not jobstatus.get("run", store=store).cancel_requested
        assert send({"Sec-Fetch-Site": None, "Origin": f"http://{HOST}"}).status_code == 200
        assert jobstatus.get("run", store=store).cancel_requested


def test_the_asgi_app_awaits_async_hooks() -> None:
    from jobstatus.stores import MemoryStore

    from . import _mounts
    from ._support import seed

    async def may_cancel(request: Any, job_id: str, record: Any) -> bool:
        return record.get("owner") == "ann"

    async def operator(request: Any) -> bool:
        return request.headers.get("x-role") == "operator"

    async def broken(request: Any) -> bool:
        raise RuntimeError("no sessions")

    store = MemoryStore()
    seed(store)
    mounts = _mounts.Mounts(_mounts.starlette, store)
    try:
        get = mounts(public=True, can_cancel=may_cancel, operator=operator)
        assert post(get, "/jobs/run/cancel").json()["cancelled"] is True
        assert get("/jobs?status=failed").json()["actions"] == {}
        assert "boom" in get("/jobs?status=failed", {"x-role": "operator"}).text
        assert "boom" not in mounts(public=True, operator=broken)("/jobs?status=failed").text
    finally:
        mounts.close()
