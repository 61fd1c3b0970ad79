"""The ASGI app, in process: httpx against Starlette, on a private memory store."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

import jobstatus
import jobstatus.web
from jobstatus._record import Change, utc_now_iso
from jobstatus.stores import CacheStore, MemoryStore

from ._support import SCRIPT, events, owner_is, put, seed

pytestmark = pytest.mark.web


@pytest.fixture
def store() -> MemoryStore:
    built = MemoryStore()
    seed(built)
    return built


def call(app: Any, method: str, url: str, **kwargs: Any) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, url, **kwargs)

    return asyncio.run(send())


def get(app: Any, url: str, **kwargs: Any) -> httpx.Response:
    return call(app, "GET", url, **kwargs)


def while_writing(app: Any, url: str, write: Callable[[], Awaitable[None]], **kw: Any) -> str:
    """GET a stream while ``write`` changes the store concurrently; the body once it ends."""

    async def run() -> str:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            writer = asyncio.create_task(write())
            response = await client.get(url, **kw)
            await writer
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            return response.text

    return asyncio.run(run())


# -- one job -------------------------------------------------------------------------


def test_a_job_is_its_record_without_private_keys(store: MemoryStore) -> None:
    app = jobstatus.web.create_app(store=store)
    body = get(app, "/jobs/bad").json()
    assert body["status"] == "failed" and body["token"] == "t0p"
    assert "exception" not in body and "serialized_job" not in body
    assert get(app, "/jobs/run").json()["progress"] == 3


def test_expose_serves_a_private_key_and_private_hides_an_own_key(store: MemoryStore) -> None:
    app = jobstatus.web.create_app(store=store, expose=["exception"], private=["token"])
    body = get(app, "/jobs/bad").json()
    assert body["exception"] == {"class": "ValueError", "message": "boom"}
    assert "token" not in body and "serialized_job" not in body


def test_unknown_and_forbidden_jobs_get_the_same_404(store: MemoryStore) -> None:
    app = jobstatus.web.create_app(store=store, authorize=owner_is())
    unknown = get(app, "/jobs/nope", headers={"x-user": "ann"})
    forbidden = get(app, "/jobs/bad", headers={"x-user": "ann"})
    assert unknown.status_code == forbidden.status_code == 404
    assert unknown.content == forbidden.content == b'{"error":"no such job"}'
    assert get(app, "/jobs/bad", headers={"x-user": "bob"}).json()["status"] == "failed"


def test_an_async_authorize_hook_is_awaited(store: MemoryStore) -> None:
    async def authorize(request: Any, job_id: str, record: dict[str, Any]) -> bool:
        return job_id == "run"

    app = jobstatus.web.create_app(store=store, authorize=authorize)
    assert get(app, "/jobs/run").status_code == 200
    assert get(app, "/jobs/done").status_code == 404


@pytest.mark.parametrize(
    "url",
    ["/jobs/a%00b", "/jobs/" + "x" * 513, "/jobs/a%1Fb/events", "/jobs/%E2%80%A8/view"],
)
def test_malformed_ids_get_a_400_with_a_short_json_error(store: MemoryStore, url: str) -> None:
    response = get(jobstatus.web.create_app(store=store), url)
    assert response.status_code == 400
    assert response.json()["error"].startswith("malformed job id")


def test_ids_with_slashes_and_spaces_are_served(store: MemoryStore) -> None:
    put(store, "team/a b", status="queued")
    app = jobstatus.web.create_app(store=store)
    assert get(app, "/jobs/team%2Fa%20b").json()["status"] == "queued"
    assert get(app, "/jobs/team/a b/view").status_code == 200


def test_unknown_query_parameters_and_methods_are_refused(store: MemoryStore) -> None:
    app = jobstatus.web.create_app(store=store)
    response = get(app, "/jobs/run?debug=1")
    assert response.status_code == 400 and "debug" in response.json()["error"]
    assert call(app, "POST", "/jobs/run").status_code == 405
    assert call(app, "DELETE", "/jobs/run").status_code == 405
    assert get(app, "/jobs/run").json()["status"] == "working"


def test_a_broken_store_is_a_503_that_names_nothing(store: MemoryStore) -> None:
    class Broken(MemoryStore):
        def read(self, job_id: str) -> Any:
            raise ConnectionError("redis://admin:hunter2@10.0.0.5 refused")

    response = get(jobstatus.web.create_app(store=Broken()), "/jobs/run")
    assert response.status_code == 503
    assert "hunter2" not in response.text and "10.0.0.5" not in response.text


def test_no_cors_headers_unless_configured(store: MemoryStore) -> None:
    origin = {"Origin": "https://app.example"}
    plain = get(jobstatus.web.create_app(store=store), "/jobs/run", headers=origin)
    assert not any(name.startswith("access-control-") for name in plain.headers)
    app = jobstatus.web.create_app(store=store, cors_origins=["https://app.example"])
    allowed = get(app, "/jobs/run", headers=origin)
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    other = get(app, "/jobs/run", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_a_lone_string_for_expose_is_refused() -> None:
    with pytest.raises(TypeError, match="expose"):
        jobstatus.web.create_app(expose="exception")
    with pytest.raises(ValueError, match="max_streams"):
        jobstatus.web.create_app(max_streams=0)


# -- batches -------------------------------------------------------------------------


def test_a_batch_summarises_its_members(store: MemoryStore) -> None:
    app = jobstatus.web.create_app(store=store)
    body = get(app, "/jobs?ids=run,bad,done,nope").json()
    assert body["status"] == "failed"
    assert body["counts"] == {
        "queued": 0,
        "working": 1,
        "completed": 1,
        "failed": 1,
        "cancelled": 0,
        "missing": 1,
    }
    assert body["progress"] == {"current": 8, "total": 15, "ratio": 8 / 15}
    assert [job["job_id"] for job in body["jobs"]] == ["run", "bad", "done", "nope"]
    assert body["jobs"][3] == {"job_id": "nope", "status": None}
    assert "exception" not in body["jobs"][1]
    repeated = get(app, "/jobs?ids=run&ids=done,run").json()
    assert [job["job_id"] for job in repeated["jobs"]] == ["run", "done"]


def test_a_batch_counts_working_jobs_gone_quiet_as_stale(store: MemoryStore) -> None:
    quiet_since = utc_now_iso(time.time() - 3600)  # its worker died an hour ago
    store.write("dead", Change(set={"status": "working", "updated_at": quiet_since}))
    app = jobstatus.web.create_app(store=store)
    body = get(app, "/jobs?ids=run,dead,done").json()
    assert body["stale"] == 1 and body["counts"]["working"] == 2
    assert get(app, "/jobs?ids=run,done").json()["stale"] == 0


def test_a_batch_counts_forbidden_members_as_missing(store: MemoryStore) -> None:
    app = jobstatus.web.create_app(store=store, authorize=owner_is())
    body = get(app, "/jobs?ids=run,bad", headers={"x-user": "ann"}).json()
    assert body["status"] == "working"
    assert body["counts"]["missing"] == 1
    assert body["jobs"][1] == {"job_id": "bad", "status": None}


def test_batches_are_bounded(store: MemoryStore) -> None:
    app = jobstatus.web.create_app(store=store, max_batch_ids=3, max_query_bytes=100)
    too_many = get(app, "/jobs?ids=a,b,c,d")
    assert too_many.status_code == 400 and "at most 3" in too_many.json()["error"]
    assert get(app, "/jobs?ids=" + "a" * 200).status_code == 414
    assert get(app, "/jobs?ids=a,,b").status_code == 400
    assert get(app, "/jobs?ids=").status_code == 400
    assert get(app, "/jobs?ids=a&status=failed").status_code == 400


# -- listing -------------------------------------------------------------------------


def test_listing_and_dashboard_are_off_by_default(store: MemoryStore) -> None:
    app = jobstatus.web.create_app(store=store)
    assert get(app, "/jobs").status_code == 404
    assert get(app, "/jobs?status=failed").json() == {"error": "no such job"}
    assert get(app, "/").status_code == 404


def test_public_listing_is_newest_first_and_filters(store: MemoryStore) -> None:
    app = jobstatus.web.create_app(store=store, public=True)
    body = get(app, "/jobs?limit=2").json()
    assert [job["job_id"] for job in body["jobs"]] == ["done", "bad"]
    after = get(app, "/jobs", params={"before": body["next_before"]}).json()
    assert [job["job_id"] for job in after["jobs"]] == ["run"]
    failed = get(app, "/jobs?status=failed&limit=50").json()["jobs"]
    assert [job["job_id"] for job in failed] == ["bad"] and "exception" not in failed[0]
    assert get(app, "/").status_code == 200


@pytest.mark.parametrize(
    "query",
    ["status=lost", "limit=0", "limit=501", "limit=ten", "before=yesterday", "limit=1&limit=2"],
)
def test_malformed_listing_queries_get_a_400(store: MemoryStore, query: str) -> None:
    response = get(jobstatus.web.create_app(store=store, public=True), f"/jobs?{query}")
    assert response.status_code == 400 and response.json()["error"]


def test_listing_with_a_hook_shows_only_readable_jobs(store: MemoryStore) -> None:
    app = jobstatus.web.create_app(store=store, authorize=owner_is())
    jobs = get(app, "/jobs", headers={"x-user": "ann"}).json()["jobs"]
    assert sorted(job["job_id"] for job in jobs) == ["done", "run"]


def test_a_store_that_cannot_list_answers_501(store: MemoryStore) -> None:
    from cachelib import SimpleCache

    app = jobstatus.web.create_app(store=CacheStore(SimpleCache()), public=True)
    response = get(app, "/jobs?status=failed")
    assert response.status_code == 501 and "cannot list" in response.json()["error"]


# -- event streams -------------------------------------------------------------------


def test_events_follow_a_job_to_its_final_state(store: MemoryStore) -> None:
    app = jobstatus.web.create_app(store=store, poll_interval=0.01)
    status = jobstatus.get("run", store=store)

    async def work() -> None:
        for done in (5, 8, 10):
            await asyncio.sleep(0.05)
            status.update(progress=done)
        await asyncio.sleep(0.05)
        status.update(status="completed", exception={"class": "X", "message": "hidden"})

    seen = events(while_writing(app, "/jobs/run/events", work))
    assert [record["progress"] for record in seen] == [3, 5, 8, 10, 10]
    assert seen[-1]["status"] == "completed" and "exception" not in seen[-1]
    assert all(record["_id"] == record["updated_at"] for record in seen)
    assert app.state.jobstatus.streams == 0 and app.state.jobstatus.hub.watched == 0


def test_a_finished_job_streams_one_event_and_ends(store: MemoryStore) -> None:
    app = jobstatus.web.create_app(store=store)
    response = get(app, "/jobs/done/events")
    assert [record["status"] for record in events(response.text)] == ["completed"]
    assert response.headers["cache-control"] == "no-store"


def test_last_event_id_resumes_after_the_event_already_seen(store: MemoryStore) -> None:
    app = jobstatus.web.create_app(store=store, poll_interval=0.01)
    seen = get(app, "/jobs/run").json()["updated_at"]

    async def finish() -> None:
        await asyncio.sleep(0.05)
        put(store, "run", status="completed", progress=10)

    resumed = events(
        while_writing(app, "/jobs/run/events", finish, headers={"Last-Event-ID": seen})
    )
    assert [record["status"] for record in resumed] == ["completed"]


def test_events_of_unknown_forbidden_and_malformed_jobs(store: MemoryStore) -> None:
    app = jobstatus.web.create_app(store=store, authorize=owner_is())
    assert get(app, "/jobs/nope/events").status_code == 404
    assert get(app, "/jobs/bad/events", headers={"x-user": "ann"}).status_code == 404
    assert get(app, "/jobs/a%00/events").status_code == 400
    assert app.state.jobstatus.streams == 0


def test_a_stream_ends_when_the_job_disappears(store: MemoryStore) -> None:
    app = jobstatus.web.create_app(store=store, poll_interval=0.01)

    async def remove() -> None:
        await asyncio.sleep(0.05)
        store.delete("run")

    assert [r["progress"] for r in events(while_writing(app, "/jobs/run/events", remove))] == [3]


def test_keep_alive_comments_while_nothing_changes(store: MemoryStore) -> None:
    app = jobstatus.web.create_app(store=store, poll_interval=0.01, keepalive=0.05)

    async def later() -> None:
        await asyncio.sleep(0.3)
        put(store, "run", status="completed")

    body = while_writing(app, "/jobs/run/events", later)
    assert ": keep-alive" in body
    assert events(body)[-1]["status"] == "completed"


def test_one_stream_for_many_jobs(store: MemoryStore) -> None:
    put(store, "q", status="queued")
    app = jobstatus.web.create_app(store=store, poll_interval=0.01)

    async def work() -> None:
        await asyncio.sleep(0.05)
        put(store, "q", status="working", progress=1)
        await asyncio.sleep(0.05)
        put(store, "run", status="completed")
        put(store, "q", status="failed")

    seen = events(while_writing(app, "/events?ids=run,q,done,nope", work))
    by_job: dict[str, list[str]] = {}
    for record in seen:
        by_job.setdefault(record["job_id"], []).append(record["status"])
    assert by_job["done"] == ["completed"]
    assert by_job["run"][0] == "working" and by_job["run"][-1] == "completed"
    assert by_job["q"][0] == "queued" and by_job["q"][-1] == "failed"
    assert "nope" not in by_job


def test_streams_past_the_bound_get_a_clear_503(store: MemoryStore) -> None:
    app = jobstatus.web.create_app(store=store, max_streams=2, poll_interval=0.01)

    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            first = asyncio.create_task(client.get("/jobs/run/events"))
            second = asyncio.create_task(client.get("/events?ids=run"))
            while app.state.jobstatus.streams < 2:
                await asyncio.sleep(0.01)
            third = await client.get("/jobs/run/events")
            assert third.json()["error"].startswith("too many event streams")
            assert third.headers["retry-after"]
            put(store, "run", status="completed")
            return [third.status_code, (await first).status_code, (await second).status_code]

    assert asyncio.run(run()) == [503, 200, 200]
    assert app.state.jobstatus.streams == 0


def test_streams_of_one_job_share_one_reader(store: MemoryStore) -> None:
    app = jobstatus.web.create_app(store=store, poll_interval=0.01)
    endpoint = app.state.jobstatus

    async def run() -> list[str]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            streams = [asyncio.create_task(client.get("/jobs/run/events")) for _ in range(20)]
            while endpoint.hub.listening < 20:
                await asyncio.sleep(0.01)
            assert endpoint.hub.watched == 1
            reads = endpoint.hub.reads
            await asyncio.sleep(0.1)
            # One read of all watched jobs per interval, not one per stream.
            assert endpoint.hub.reads - reads < 20
            put(store, "run", status="completed")
            return [events((await stream).text)[-1]["status"] for stream in streams]

    assert asyncio.run(run()) == ["completed"] * 20


def test_a_client_that_goes_away_frees_its_stream(store: MemoryStore) -> None:
    import uvicorn

    app = jobstatus.web.create_app(store=store, poll_interval=0.01)
    endpoint = app.state.jobstatus

    async def run() -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                async with client.stream("GET", "/jobs/run/events") as response:
                    async for line in response.aiter_lines():
                        if line.startswith("data:"):
                            break
                assert endpoint.streams == 1
            while endpoint.streams or endpoint.hub.listening:
                await asyncio.sleep(0.01)
        finally:
            server.should_exit = True
            await serving
            sock.close()

    asyncio.run(asyncio.wait_for(run(), 20))
    assert endpoint.streams == 0 and endpoint.hub.watched == 0


# -- pages ---------------------------------------------------------------------------


def test_pages_escape_every_job_value(store: MemoryStore) -> None:
    put(store, SCRIPT, status="working", step=SCRIPT)
    app = jobstatus.web.create_app(store=store, public=True)
    page = get(app, "/jobs/" + SCRIPT.replace("/", "%2F") + "/view")
    assert page.status_code == 200
    assert "<script>window" not in page.text
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_the_job_page_of_an_unknown_or_forbidden_job_is_404(store: MemoryStore) -> None:
    app = jobstatus.web.create_app(store=store, authorize=owner_is())
    unknown = get(app, "/jobs/nope/view", headers={"x-user": "ann"})
    forbidden = get(app, "/jobs/bad/view", headers={"x-user": "ann"})
    assert unknown.status_code == forbidden.status_code == 404
    assert unknown.text == forbidden.text
    assert get(app, "/jobs/run/view", headers={"x-user": "ann"}).status_code == 200


def test_pages_fetch_nothing_from_outside(store: MemoryStore) -> None:
    app = jobstatus.web.create_app(store=store, public=True)
    for url in ("/", "/jobs/run/view", "/static/jobstatus.js", "/static/jobstatus.css"):
        text = get(app, url).text
        assert "http://" not in text and "https://" not in text and "//cdn" not in text
    assert get(app, "/static/jobstatus.js").headers["content-type"].startswith("text/javascript")
    assert get(app, "/static/secrets.py").status_code == 404
    assert get(app, "/static/..%2F..%2Fcore.py").status_code == 404


def test_a_mounted_app_links_its_own_prefix(store: MemoryStore) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    outer = Starlette(routes=[Mount("/status", jobstatus.web.create_app(store=store, public=True))])
    page = get(outer, "/status/")
    assert 'href="/status/static/jobstatus.css"' in page.text
    assert 'data-base="/status"' in page.text
    assert get(outer, "/status/jobs/run").json()["status"] == "working"
    assert get(outer, "/status/static/jobstatus.js").status_code == 200


@pytest.mark.redis
def test_on_redis_streams_follow_pushes_between_reads(ns: str) -> None:
    from .._redis_servers import redis_case_store
    from ..stores import REDIS_URL, require_service

    require_service("Redis", REDIS_URL, 6379)
    store = redis_case_store(REDIS_URL, ns)
    try:
        seed(store)
        # Reads of all watched jobs are a minute apart: every change seen came by push.
        app = jobstatus.web.create_app(store=store, poll_interval=60)
        status = jobstatus.get("run", store=store)

        channel = store._layout.channel("run")

        def subscribed() -> bool:
            import redis

            with redis.Redis.from_url(REDIS_URL) as client:
                return bool(client.pubsub_numsub(channel)[0][1])

        async def work() -> None:
            while not await asyncio.to_thread(subscribed):
                await asyncio.sleep(0.01)
            for done in (5, 8):
                await asyncio.to_thread(status.update, progress=done)
                await asyncio.sleep(0.05)
            await asyncio.to_thread(status.update, status="completed", progress=10)

        seen = events(while_writing(app, "/jobs/run/events", work))
        assert [record["progress"] for record in seen] == [3, 5, 8, 10]
        assert seen[-1]["status"] == "completed"
    finally:
        store.close()


def test_an_async_authorize_hook_that_raises_is_a_logged_no(
    store: MemoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    async def authorize(request: Any, job_id: str, record: dict[str, Any]) -> bool:
        raise LookupError(record["token"])

    app = jobstatus.web.create_app(store=store, authorize=authorize)
    with caplog.at_level("ERROR", logger="jobstatus.web"):
        answer = get(app, "/jobs/bad")
    assert answer.status_code == 404 and answer.content == b'{"error":"no such job"}'
    assert [r.exc_info[0] for r in caplog.records if r.exc_info] == [LookupError]
