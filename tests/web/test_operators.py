"""What the dashboard reads, on Starlette, Django and Flask alike: the computed keys of
a job, store-wide counts, search, cursor paging through every job of a status, failure
reasons for operators only, a group's roll-up and children, and ``/metrics``."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import jobstatus
from jobstatus._record import Change, utc_now_iso
from jobstatus.stores import CacheStore, MemoryStore
from jobstatus.stores.base import Listing

from ._support import events, plant, put

pytestmark = pytest.mark.web

REASON = {"class": "ValueError", "message": "row 7 has no date"}


def operator_header(request: Any) -> bool:
    return request.headers.get("x-role") == "operator"


OPERATOR = {"x-role": "operator"}


# -- the computed keys ----------------------------------------------------------------


def test_a_job_is_served_with_its_id_name_percent_and_eta(serve: Any) -> None:
    started = utc_now_iso()
    put(serve.store, "rows", status="working", name="reports.export", progress=30, total=120)
    mine = {"started_at": started, "percent": "mine", "eta": "mine", "job_id": "mine"}
    jobstatus.get("rows", store=serve.store).update(mine)
    status = jobstatus.get("rows", store=serve.store)
    body = serve()("/jobs/rows").json()
    assert body["job_id"] == "rows" and body["name"] == "reports.export"
    assert body["percent"] == 25.0
    assert body["eta"] == status.progress.eta  # the job's own keys of those names are not served
    assert serve()("/jobs/done").json()["eta"] == 0.0
    first = events(serve()("/jobs/done/events").text)[0]
    assert {first["job_id"], first["percent"], first["name"]} == {"done", 100.0, None}


def test_a_stale_job_has_no_eta(serve: Any) -> None:
    quiet = utc_now_iso(1_000_000_000)
    fields = {"status": "working", "progress": 1, "total": 4, "started_at": quiet}
    serve.store.write("orphan", Change(set={**fields, "updated_at": quiet}))
    assert serve()("/jobs/orphan").json()["eta"] is None


# -- counts ---------------------------------------------------------------------------


def test_store_wide_counts_for_a_public_app_or_an_operator(serve: Any) -> None:
    counts = {
        "queued": 0,
        "working": 1,
        "completed": 1,
        "failed": 1,
        "cancelled": 0,
        "stale": 0,
        "total": 3,
    }
    assert serve(public=True)("/counts").json() == counts
    get = serve(authorize=lambda request, job_id, record: True, operator=operator_header)
    assert get("/counts", OPERATOR).json() == counts
    assert get("/counts").status == 404  # a reader, not an operator
    assert serve(authorize=lambda request, job_id, record: True)("/counts").status == 404
    assert serve(operator=operator_header)("/counts", OPERATOR).status == 404  # listing is off


def test_counts_and_listing_on_a_store_that_cannot_list_say_so(serve: Any) -> None:
    from cachelib import SimpleCache

    get = serve(store=CacheStore(SimpleCache()), public=True)
    assert get("/counts").status == 501
    assert get("/jobs?status=failed").status == 501
    assert get("/jobs?name=x").json() == {"error": "this store cannot search jobs by name or id"}


class ListsOnly(MemoryStore):
    """A store of the application's own that lists but predates counts, search and groups."""

    count_by_status = Listing.count_by_status
    count_stale = Listing.count_stale
    find = Listing.find
    child_ids = Listing.child_ids

    def list_recent(self, status: Any, limit: int, before: Any) -> Any:
        return MemoryStore.find(self, status=status, limit=limit, before=before)


def test_a_store_that_lists_but_cannot_count_search_or_list_children_says_so(
    serve: Any,
) -> None:
    store = ListsOnly()
    put(store, "g", status="queued", children={"queued": 0})
    get = serve(store=store, public=True)
    assert get("/jobs").status == 200
    assert get("/counts").json() == {"error": "this store cannot count jobs by status"}
    assert get("/jobs?prefix=g").json() == {"error": "this store cannot search jobs by name or id"}
    assert get("/jobs/g/children").status == 501
    assert get("/").status == 200


# -- search ---------------------------------------------------------------------------


def test_search_by_name_and_by_id_prefix(serve: Any) -> None:
    for n in range(3):
        put(serve.store, f"export-{n}", status="failed", name="reports.export")
        put(serve.store, f"mail-{n}", status="failed", name="mail.send")
    get = serve(public=True)
    by_name = get("/jobs?status=failed&name=mail.send").json()["jobs"]
    assert sorted(job["job_id"] for job in by_name) == ["mail-0", "mail-1", "mail-2"]
    by_prefix = get("/jobs?prefix=export-").json()["jobs"]
    assert sorted(job["job_id"] for job in by_prefix) == ["export-0", "export-1", "export-2"]
    assert get("/jobs?prefix=export-&name=mail.send").json()["jobs"] == []
    assert len(get("/jobs?status=failed&name=").json()["jobs"]) == 7  # an empty box: no filter
    assert get("/jobs?name=" + "n" * 513).status == 400
    assert get("/jobs?prefix=%00").status == 400


# -- paging ---------------------------------------------------------------------------


def test_the_cursor_pages_through_every_job_of_a_status_once_even_ties(serve: Any) -> None:
    same = "2026-11-30T08:00:00.000000+00:00"  # seven failures in the same microsecond
    for n in range(7):
        plant(serve.store, f"tie-{n}", {"status": "failed", "updated_at": same})
    for n in range(4):
        plant(serve.store, f"old-{n}", {"status": "failed", "updated_at": utc_now_iso(1e9 + n)})
    put(serve.store, "other", status="completed")
    get = serve(public=True)
    seen: list[str] = []
    url = "/jobs?status=failed&limit=3"
    pages = 0
    while url:
        page = get(url).json()
        pages += 1
        seen += [job["job_id"] for job in page["jobs"]]
        url = f"/jobs?status=failed&limit=3&cursor={page['next']}" if page["next"] else ""
        assert pages < 10
    ties = [f"tie-{n}" for n in range(6, -1, -1)]  # newest first, ties by id descending
    assert seen == ["bad", *ties, "old-3", "old-2", "old-1", "old-0"]


def test_a_bad_cursor_is_a_400(serve: Any) -> None:
    get = serve(public=True)
    for cursor in ("nope", "W10", "WyJ4IiwgMSwgImEiXQ", "a" * 50):
        answer = get(f"/jobs?cursor={cursor}")
        assert answer.status == 400, cursor
        assert answer.json() == {"error": "cursor must be the next of a previous page"}
    token = get("/jobs?limit=1").json()["next"]
    assert get(f"/jobs?limit=1&cursor={token}&before=2026-01-01T00:00:00Z").status == 400


# -- failure reasons ------------------------------------------------------------------


def test_reasons_are_shown_to_operators_in_the_listing_only(serve: Any) -> None:
    get = serve(public=True, operator=operator_header)
    rows = {job["job_id"]: job for job in get("/jobs?status=failed", OPERATOR).json()["jobs"]}
    assert rows["bad"]["exception"] == {"class": "ValueError", "message": "boom"}
    assert "serialized_job" not in rows["bad"] and "token" in rows["bad"]
    for url in ("/jobs/bad", "/jobs/bad/events", "/jobs?ids=bad", "/events?ids=bad"):
        assert "boom" not in get(url, OPERATOR).text, url  # never on the per-job routes
    assert "boom" not in get("/jobs?status=failed").text  # not an operator


def test_an_operator_hook_that_raises_shows_no_reasons(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(request: Any) -> bool:
        raise RuntimeError("sessions are down")

    with caplog.at_level(logging.ERROR, logger="jobstatus.web"):
        answer = serve(public=True, operator=broken)("/jobs?status=failed")
    assert answer.status == 200 and "boom" not in answer.text
    assert "operator hook raised" in caplog.text


# -- groups ---------------------------------------------------------------------------


def test_a_group_rolls_up_and_lists_its_children_a_page_at_a_time(serve: Any) -> None:
    store = serve.store
    group = jobstatus.group(name="import", group_id="import-1", store=store)
    for n in range(5):
        job = jobstatus.Job(f"file-{n}", name="load", parent=group, store=store)
        job.enqueued()
        if n < 2:
            job.started()
            job.finished()
    get = serve(authorize=lambda request, job_id, record: record.get("owner") != "eve")
    rolled = get("/jobs/import-1").json()
    assert rolled["children"]["completed"] == 2 and rolled["children"]["queued"] == 3
    assert rolled["total"] == 5 and rolled["percent"] == 40.0 and rolled["name"] == "import"
    first = get("/jobs/import-1/children?limit=2").json()
    assert [job["job_id"] for job in first["jobs"]] == ["file-0", "file-1"]
    assert first["total"] == 5 and first["next_after"] == "file-1"
    assert first["jobs"][0]["percent"] is None and first["jobs"][0]["parent"] == "import-1"
    rest = get("/jobs/import-1/children?after=file-1").json()
    assert [job["job_id"] for job in rest["jobs"]] == ["file-2", "file-3", "file-4"]
    assert rest["next_after"] is None
    put(store, "file-3", owner="eve")  # a child this reader may not see is left out
    assert "file-3" not in get("/jobs/import-1/children").text
    assert get("/jobs/nope/children").status == 404
    assert get("/jobs/import-1/children?limit=0").status == 400
    assert get("/jobs/import-1/children?after=%00").status == 400


def test_a_group_streams_until_its_children_finish(serve: Any) -> None:
    store = serve.store
    group = jobstatus.group(group_id="g", store=store)
    job = jobstatus.Job("only", parent=group, store=store)
    job.enqueued()
    job.started()
    job.finished()
    seen = events(serve()("/jobs/g/events").text)
    assert seen[-1]["status"] == "completed" and seen[-1]["children"]["completed"] == 1


def test_children_on_a_store_that_cannot_list_them(serve: Any) -> None:
    from cachelib import SimpleCache

    cache = CacheStore(SimpleCache())
    put(cache, "g", status="queued", children={"queued": 0})
    assert serve(store=cache)("/jobs/g/children").status == 501


# -- metrics --------------------------------------------------------------------------


def test_metrics_only_when_the_app_says_so(serve: Any) -> None:
    assert serve(public=True)("/metrics").status == 404
    answer = serve(metrics=True)("/metrics")
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/plain")
    assert 'jobstatus_jobs{status="failed"} 1' in answer.text


OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def test_metrics_answer_openmetrics_to_a_prometheus_that_asks_and_text_otherwise(
    serve: Any,
) -> None:
    from prometheus_client.openmetrics.parser import (
        text_string_to_metric_families as openmetrics_families,
    )
    from prometheus_client.parser import text_string_to_metric_families

    get = serve(metrics=True)
    asked = get("/metrics", {"Accept": f"{OPENMETRICS},text/plain;version=0.0.4;q=0.5"})
    assert asked.status == 200
    assert asked.headers["content-type"].startswith("application/openmetrics-text")
    assert asked.text.endswith("# EOF\n")
    gauges = {f.name: f for f in openmetrics_families(asked.text)}["jobstatus_jobs"]
    assert {s.labels["status"]: s.value for s in gauges.samples}["failed"] == 1
    plain = get("/metrics")
    assert plain.status == 200
    assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# EOF" not in plain.text
    gauges = {f.name: f for f in text_string_to_metric_families(plain.text)}["jobstatus_jobs"]
    assert {s.labels["status"]: s.value for s in gauges.samples}["failed"] == 1


def test_metrics_without_prometheus_client_say_what_to_install(
    serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # not installed
    answer = serve(metrics=True)("/metrics")
    assert answer.status == 501 and "jobstatus[prometheus]" in answer.json()["error"]


def test_options_are_checked(serve: Any) -> None:
    with pytest.raises(TypeError, match="can_cancel must be a function"):
        serve(can_cancel=True)
    with pytest.raises(TypeError, match="operator must be a function"):
        serve(operator="admins")
    assert isinstance(serve.store, MemoryStore)


def test_operators_see_the_reasons_of_a_groups_children_where_the_app_lists(serve: Any) -> None:
    store = serve.store
    group = jobstatus.group(group_id="g", store=store)
    job = jobstatus.Job(
        "broken", parent=group, store=store, options={"includes": {"status", "exception"}}
    )
    job.enqueued()
    job.started()
    job.finished(ValueError("row 7 has no date"))
    listing = serve(public=True, operator=operator_header)
    assert "row 7" in listing("/jobs/g/children", OPERATOR).text
    assert "row 7" not in listing("/jobs/g/children").text
    assert "row 7" not in serve(operator=operator_header)("/jobs/g/children", OPERATOR).text
