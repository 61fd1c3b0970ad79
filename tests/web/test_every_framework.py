"""The Starlette app and the Django and Flask adapters side by side.

The rules below live in ``jobstatus.web.core``, ``jobstatus.web.stream`` and
the one route table, ``jobstatus.web.routes``, so that the three cannot
disagree: every route of the table, a stream resumed after its end, stored
values JSON cannot hold, a store that fails, an ``authorize`` hook that
raises, and the listing routes while listing is off.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timezone
from typing import Any

import pytest

from jobstatus import StoreError
from jobstatus._record import parse_iso, utc_now_iso
from jobstatus.stores import MemoryStore
from jobstatus.web.routes import ROUTES

from . import _mounts
from ._support import events, plant, put

pytestmark = pytest.mark.web


def strict_events(text: str) -> list[dict[str, Any]]:
    """The events of an SSE body, each ``data`` parsed as standard JSON (no NaN)."""
    for line in text.splitlines():
        if line.startswith("data: "):
            _mounts.strict_json(line.removeprefix("data: "))
    return events(text)


# -- the route table ----------------------------------------------------------------

SAMPLE_PARAMS = {"job_id": "done", "name": "jobstatus.js"}
JSON_POST = {"Content-Type": "application/json", "Sec-Fetch-Site": "same-origin"}


def yes(request: Any, job_id: str, record: Any) -> bool:
    return True


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.name)
def test_every_route_of_the_table_is_served_with_its_method_only(serve: Any, route: Any) -> None:
    get = serve(public=True, can_cancel=yes, can_delete=yes, metrics=True)
    url = route.fill(SAMPLE_PARAMS)
    if route.method == "POST":
        served = get(url, JSON_POST, method="post", body=b"{}")
    else:
        served = get(url, method=route.method.lower())
    assert served.status in (200, 400), served.text  # 400: /events without ids
    assert get(url, method="put").status == 405


def test_a_job_id_with_slashes_reaches_each_route_of_a_job(serve: Any) -> None:
    put(serve.store, "team/42", status="completed", progress=1, total=1)
    get = serve()
    assert get("/jobs/team/42").json()["status"] == "completed"
    assert [r["status"] for r in events(get("/jobs/team/42/events").text)] == ["completed"]
    view = get("/jobs/team/42/view")
    assert view.status == 200 and 'data-job="team/42"' in view.text
    assert 'data-base="/status"' in view.text  # links start at the mount, not inside the id
    assert 'data-base="/status"' in serve(public=True)("/").text


# -- a stream resumed after the final event ------------------------------------------


def test_a_stream_resumed_after_the_final_event_ends_at_once_and_holds_no_slot(
    serve: Any,
) -> None:
    get = serve(max_streams=3)
    final = get("/jobs/done").json()["updated_at"]
    later = utc_now_iso(parse_iso(final) + 60)  # an odd client's id past the end
    for resume in (final, final, later):  # what EventSources send when they reconnect
        answer = get("/jobs/done/events", {"Last-Event-ID": resume})
        assert (answer.status, answer.text) == (204, "")  # an EventSource stops reconnecting
    fourth = get("/jobs/done/events")
    assert fourth.status == 200
    assert [record["status"] for record in events(fourth.text)] == ["completed"]


def test_a_stream_resumed_before_the_final_event_sends_it_and_ends(serve: Any) -> None:
    get = serve(max_streams=1)
    final = get("/jobs/done").json()["updated_at"]
    for resume in (utc_now_iso(parse_iso(final) - 60), "not a time"):
        answer = get("/jobs/done/events", {"Last-Event-ID": resume})
        assert answer.status == 200
        assert [record["_id"] for record in events(answer.text)] == [final]
    assert get("/jobs/nope/events", {"Last-Event-ID": final}).status == 404


# -- whatever the store holds --------------------------------------------------------

DEEP: list[Any] = []
for _ in range(2000):
    DEEP = [DEEP]

# Records no write accepts, as old data or an application's own store may hold them.
UNSERVABLE: dict[str, dict[str, Any]] = {
    "infinite": {"status": "completed", "progress": math.inf, "total": 10},
    "nan": {"status": "failed", "progress": math.nan, "total": -math.inf, "rows": [1.5, math.nan]},
    "surrogate": {"status": "completed", "step": "caf\udce9", "key\ud800": 1},
    "objects": {
        "status": "completed",
        "tags": {"a", "b"},
        "raw": b"\x00",
        "when": datetime.now(timezone.utc),
        "by": {(1, 2): 3, None: 4},
    },
    "digits": {"status": "completed", "count": 10**5000},
    "deep": {"status": "completed", "tree": DEEP},
}


def test_a_stored_value_json_cannot_hold_never_breaks_an_answer(serve: Any) -> None:
    for job_id, record in UNSERVABLE.items():
        plant(serve.store, job_id, {**record, "updated_at": utc_now_iso()})
    get = serve(public=True)
    bad = list(UNSERVABLE)
    for job_id in bad:
        one = get(f"/jobs/{job_id}")
        assert one.status == 200 and one.json()["status"] == UNSERVABLE[job_id]["status"]
        stream = get(f"/jobs/{job_id}/events")
        assert stream.status == 200
        assert [r["status"] for r in strict_events(stream.text)] == [one.json()["status"]]
        assert get(f"/jobs/{job_id}/view").status == 200
    good = get("/jobs/run").json()
    batch = get("/jobs?ids=run," + ",".join(bad))
    assert batch.status == 200
    assert batch.json()["jobs"][0] == {**good, "job_id": "run"}  # one bad job spoils nothing
    assert [job["job_id"] for job in batch.json()["jobs"]] == ["run", *bad]
    assert batch.json()["counts"]["missing"] == 0
    listing = get("/jobs?limit=500")
    assert listing.status == 200
    assert set(bad) <= {job["job_id"] for job in listing.json()["jobs"]}
    many = get("/events?ids=" + ",".join(bad))
    assert many.status == 200 and sorted(r["job_id"] for r in strict_events(many.text)) == sorted(
        bad
    )
    assert get("/").status == 200


def test_unservable_values_are_served_as_null_and_lone_surrogates_as_a_replacement(
    serve: Any,
) -> None:
    for job_id, record in UNSERVABLE.items():
        plant(serve.store, job_id, {**record, "updated_at": utc_now_iso()})
    get = serve()
    assert get("/jobs/infinite").json()["progress"] is None
    nan = get("/jobs/nan").json()
    assert (nan["progress"], nan["total"], nan["rows"]) == (None, None, [1.5, None])
    surrogate = get("/jobs/surrogate").json()
    assert surrogate["step"] == "caf\ufffd" and surrogate["key\ufffd"] == 1
    objects = get("/jobs/objects").json()
    assert (objects["tags"], objects["raw"], objects["when"]) == (None, None, None)
    assert objects["by"] == {"(1, 2)": 3, "null": 4}
    assert get("/jobs/digits").json()["count"] is None
    tree, levels = get("/jobs/deep").json()["tree"], 0
    while isinstance(tree, list):
        tree, levels = tree[0], levels + 1
    assert tree is None and levels == 32  # cut where a write would refuse it


@pytest.mark.redis
def test_an_overflowed_sum_left_in_redis_is_served(serve: Any, ns: str) -> None:
    from .._redis_servers import redis_case_store
    from ..stores import REDIS_URL, require_service

    require_service("Redis", REDIS_URL, 6379)
    store = redis_case_store(REDIS_URL, ns)
    try:
        put(store, "overflowed", status="completed", total=10)
        put(store, "fine", status="completed", progress=4, total=4)
        # What `progress=1e308` then `increment(1e308)` left there before writes refused it.
        store._scripts().client.hset(
            store._layout.record("overflowed"), "progress", "2" + "0" * 308 + ".0"
        )
        assert math.isinf(store.read("overflowed")["progress"])
        get = serve(store=store)
        assert get("/jobs/overflowed").json()["progress"] is None
        batch = get("/jobs?ids=overflowed,fine").json()
        assert [job["progress"] for job in batch["jobs"]] == [None, 4]
        assert strict_events(get("/jobs/overflowed/events").text)[0]["status"] == "completed"
    finally:
        store.close()


# -- a store that fails --------------------------------------------------------------


class Broken(MemoryStore):
    """A store whose every read fails, as a real one does (a StoreError naming its host)."""

    def read(self, job_id: str) -> Any:
        raise StoreError("redis://admin:hunter2@10.0.0.5 refused")

    def read_many(self, job_ids: Any) -> Any:
        raise StoreError("redis://admin:hunter2@10.0.0.5 refused")


@pytest.mark.parametrize(
    "url", ["/jobs/run", "/jobs?ids=run", "/jobs/run/events", "/events?ids=run", "/jobs/run/view"]
)
def test_a_store_that_fails_is_a_503_that_names_nothing_and_holds_no_slot(
    serve: Any, url: str
) -> None:
    get = serve(store=Broken(), max_streams=1)
    for _ in range(2):  # a stream's slot came back: the second is a 503 for the store again
        answer = get(url)
        assert answer.status == 503 and answer.json()["error"].startswith("the status store")
        assert "hunter2" not in answer.text and "10.0.0.5" not in answer.text


# -- an authorize hook that raises ---------------------------------------------------


def test_an_authorize_hook_that_raises_is_a_logged_no(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def authorize(request: Any, job_id: str, record: dict[str, Any]) -> bool:
        raise RuntimeError(f"hook broke reading {record['owner']}'s job {job_id}")

    get = serve(authorize=authorize)
    unknown = get("/jobs/nope")
    with caplog.at_level(logging.ERROR, logger="jobstatus.web"):
        answers = [get(url) for url in ("/jobs/bad", "/jobs/bad/events", "/jobs/bad/view")]
        batch = get("/jobs?ids=bad,run")
        listing = get("/jobs")
        many = get("/events?ids=bad,run")
    assert [answer.status for answer in answers] == [404, 404, 404]
    assert answers[0].text == answers[1].text == unknown.text == '{"error":"no such job"}'
    assert batch.json()["counts"]["missing"] == 2 and batch.json()["status"] is None
    assert listing.status == 200 and listing.json()["jobs"] == []
    assert many.status == 200 and events(many.text) == []
    for answer in (*answers, batch, listing, many):
        assert "broke" not in answer.text and "bob" not in answer.text
    failures = [r for r in caplog.records if r.name == "jobstatus.web"]
    assert failures and all(r.exc_info and r.exc_info[0] is RuntimeError for r in failures)
    assert "'bad'" in failures[0].getMessage()


# -- the listing routes while listing is off -----------------------------------------

MANY_FIELDS = "&".join(f"f{index}=1" for index in range(1100))  # past Django's 1,000


@pytest.mark.parametrize(
    "url",
    [
        "/?x=1",
        "/?limit=0",
        "/?" + "x" * 40_000,
        "/?" + MANY_FIELDS,
        "/jobs",
        "/jobs?status=bogus",
        "/jobs?status=failed",
        "/jobs?x=1",
        "/jobs?limit=0&before=yesterday",
    ],
    ids=lambda url: url[:30],
)
def test_the_listing_routes_are_404_whatever_the_query_while_listing_is_off(
    serve: Any, url: str
) -> None:
    closed = serve()
    plain = closed("/")
    assert plain.status == 404
    answer = closed(url)
    assert (answer.status, answer.text) == (plain.status, plain.text)
    assert serve(public=True)(url).status != 404  # the 404 says only that listing is off
