"""The Django and Flask adapters against their own test clients: the same routes and answers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import jobstatus
from jobstatus.stores import MemoryStore

from . import _mounts
from ._support import SCRIPT, events, owner_is, put, seed

pytestmark = pytest.mark.web


@pytest.fixture(
    params=[
        pytest.param(_mounts.django, marks=pytest.mark.django, id="django"),
        pytest.param(_mounts.flask, id="flask"),
    ]
)
def serve(request: pytest.FixtureRequest) -> Iterator[_mounts.Mounts]:
    """``serve(**options)`` mounts the adapter under /status on a seeded memory store."""
    store = MemoryStore()
    seed(store)
    mounts = _mounts.Mounts(request.param, store)
    yield mounts
    mounts.close()


def test_a_job_without_private_keys(serve: Any) -> None:
    get = serve()
    body = get("/jobs/bad").json()
    assert body["status"] == "failed" and "exception" not in body and "serialized_job" not in body
    assert (
        serve(expose=["exception"], private=["token"])("/jobs/bad").json()["exception"]["message"]
        == "boom"
    )


def test_unknown_forbidden_and_malformed(serve: Any) -> None:
    get = serve(authorize=owner_is())
    unknown = get("/jobs/nope", {"x-user": "ann"})
    forbidden = get("/jobs/bad", {"x-user": "ann"})
    assert unknown.status == forbidden.status == 404 and unknown.text == forbidden.text
    assert get("/jobs/bad", {"x-user": "bob"}).json()["owner"] == "bob"
    assert get("/jobs/a%00b").status == 400
    assert get("/jobs/run?x=1").status == 400
    assert get("/jobs/run", method="post").status == 405


def test_batch_and_its_bounds(serve: Any) -> None:
    get = serve(max_batch_ids=4)
    body = get("/jobs?ids=run,bad,done,nope").json()
    assert body["counts"] == {
        "queued": 0,
        "working": 1,
        "completed": 1,
        "failed": 1,
        "cancelled": 0,
        "missing": 1,
    }
    assert body["progress"] == {"current": 8, "total": 15, "ratio": 8 / 15}
    assert get("/jobs?ids=a,b,c,d,e").status == 400


def test_listing_and_dashboard_need_public_or_a_hook(serve: Any) -> None:
    closed = serve()
    assert closed("/jobs").status == 404 and closed("/").status == 404
    opened = serve(public=True)
    assert [job["job_id"] for job in opened("/jobs?status=failed").json()["jobs"]] == ["bad"]
    dashboard = opened("/")
    assert dashboard.status == 200 and 'data-base="/status"' in dashboard.text
    assert "script-src 'self'" in dashboard.headers["content-security-policy"]
    assert opened("/jobs?limit=0").status == 400
    assert opened("/static/jobstatus.js").status == 200


def test_job_page_escapes_values(serve: Any) -> None:
    put(serve.store, SCRIPT, status="working", step=SCRIPT)
    get = serve()
    page = get("/jobs/" + SCRIPT.replace("/", "%2F") + "/view")
    assert page.status == 200 and "<script>window" not in page.text
    assert 'data-base="/status"' in page.text
    assert get("/jobs/nope/view").status == 404


def test_events_follow_a_job_to_its_end(serve: Any) -> None:
    get = serve(poll_interval=0.01)
    status = jobstatus.get("run", store=serve.store)

    def work() -> None:
        for done in (6, 10):
            time.sleep(0.05)
            status.update(progress=done)
        time.sleep(0.05)
        status.update(status="completed")

    writer = threading.Thread(target=work)
    writer.start()
    answer = get("/jobs/run/events")
    writer.join()
    assert answer.headers["content-type"].startswith("text/event-stream")
    seen = events(answer.text)
    assert seen[0]["progress"] == 3 and seen[-1]["status"] == "completed"
    assert [r["progress"] for r in seen] == sorted(r["progress"] for r in seen)


def test_many_events_and_the_stream_bound(serve: Any) -> None:
    get = serve(max_streams=1)
    seen = events(get("/events?ids=done,bad").text)
    assert sorted(r["job_id"] for r in seen) == ["bad", "done"]
    assert get("/jobs/nope/events").status == 404
    assert get("/jobs/done/events").status == 200  # the slot came back
