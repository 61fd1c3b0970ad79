"""The endpoint on every store of the contract table: read, batch, stream to the end."""

from __future__ import annotations

import asyncio

import httpx
import pytest

import jobstatus
import jobstatus.web
from jobstatus.stores import Store
from jobstatus.stores.base import Listing, Push

from ..stores import StoreCase
from ._support import events, put, seed

pytestmark = pytest.mark.web


def test_the_endpoint_serves_every_store(store: Store) -> None:
    seed(store)
    app = jobstatus.web.create_app(store=store, public=True, poll_interval=0.05)
    status = jobstatus.get("run", store=store)

    async def run() -> tuple[list[httpx.Response], str]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            answers = [
                await client.get("/jobs/bad"),
                await client.get("/jobs/nope"),
                await client.get("/jobs?ids=run,bad,done,nope"),
                await client.get("/jobs?status=failed"),
            ]

            async def work() -> None:
                while app.state.jobstatus.hub.watched < 1:
                    await asyncio.sleep(0.01)
                await asyncio.to_thread(status.update, progress=7)
                await asyncio.sleep(0.1)
                await asyncio.to_thread(status.update, status="completed", progress=10)

            writer = asyncio.create_task(work())
            stream = await client.get("/jobs/run/events")
            await writer
            # The job's subscription was cancelled as its stream closed: wait until it
            # has closed its connection, as the app's shutdown does, before the loop ends.
            await app.state.jobstatus.hub.aclose()
            return answers, stream.text

    (job, unknown, batch, listing), stream = asyncio.run(run())
    assert job.json()["status"] == "failed" and "exception" not in job.json()
    assert unknown.status_code == 404
    assert batch.json()["counts"]["missing"] == 1 and batch.json()["status"] == "failed"
    if isinstance(store, Listing):
        assert [j["job_id"] for j in listing.json()["jobs"]] == ["bad"]
    else:
        assert listing.status_code == 501
    seen = events(stream)
    assert seen[0]["progress"] in (3, 7)  # the first write may beat the first read
    assert seen[-1]["status"] == "completed" and seen[-1]["progress"] == 10
    assert app.state.jobstatus.streams == 0 and app.state.jobstatus.hub.watched == 0
    put(store, "run", status="queued")  # the store still works after the streams closed


def test_closing_the_hub_waits_until_every_subscription_has_closed(store: Store) -> None:
    """What the app's shutdown awaits: a subscription its stream's end cancelled may
    still be closing its connection, and a loop that ended first would leave it open."""
    seed(store)
    app = jobstatus.web.create_app(store=store, public=True, poll_interval=0.05)
    hub = app.state.jobstatus.hub

    async def main() -> tuple[int, int]:
        listener = hub.listen(["run"])
        await asyncio.sleep(0.05)  # its subscription starts (on a store that pushes)
        hub.forget(listener)  # the stream closed: the subscription is cancelled
        closing = hub.subscriptions
        await hub.aclose()
        return closing, hub.subscriptions

    closing, left = asyncio.run(main())
    assert closing == (1 if store.supports(Push) else 0)
    assert left == 0


def test_the_apps_shutdown_closes_the_subscriptions_of_its_streams(store: Store) -> None:
    seed(store)
    put(store, "run", status="completed")
    app = jobstatus.web.create_app(store=store, public=True, poll_interval=0.05)

    async def main() -> tuple[list[str], int]:
        inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        outbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        server = asyncio.create_task(app(scope, inbox.get, outbox.put))  # as uvicorn runs it
        await inbox.put({"type": "lifespan.startup"})
        said = [(await outbox.get())["type"]]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/jobs/run/events")).status_code == 200
        await inbox.put({"type": "lifespan.shutdown"})
        said.append((await outbox.get())["type"])
        await server
        return said, app.state.jobstatus.hub.subscriptions

    said, left = asyncio.run(main())
    assert said == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert left == 0


def test_cancel_counts_search_and_children_on_every_store_that_can(
    store: Store, case: StoreCase
) -> None:
    if not case.guards:
        pytest.skip(f"{case.name} does not apply guards, history and groups yet")
    group = jobstatus.group(name="import", group_id="web-group", store=store)
    for n in range(3):
        job = jobstatus.Job(f"web-child-{n}", name="load", parent=group, store=store)
        job.enqueued()
    app = jobstatus.web.create_app(
        store=store, public=True, can_cancel=lambda request, job_id, record: True
    )
    own_page = {"Content-Type": "application/json", "Sec-Fetch-Site": "same-origin"}

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [
                await client.get("/jobs/web-group"),
                await client.get("/jobs/web-group/children?limit=2"),
                await client.post("/jobs/web-child-0/cancel", headers=own_page, content=b"{}"),
                await client.post(
                    "/jobs/web-child-1/cancel",
                    headers={**own_page, "Sec-Fetch-Site": "cross-site"},
                    content=b"{}",
                ),
                await client.get("/counts"),
                await client.get("/jobs?name=load&prefix=web-child-"),
            ]

    rolled, children, cancelled, refused, counts, found = asyncio.run(run())
    assert rolled.json()["children"]["queued"] == 3 and rolled.json()["total"] == 3
    assert cancelled.json()["cancelled"] is True
    assert jobstatus.get("web-child-0", store=store).cancel_requested
    assert refused.status_code == 403
    assert not jobstatus.get("web-child-1", store=store).cancel_requested
    if not isinstance(store, Listing):
        assert {children.status_code, counts.status_code, found.status_code} == {501}
        return
    assert [job["job_id"] for job in children.json()["jobs"]] == ["web-child-0", "web-child-1"]
    if not case.searches:
        return
    assert counts.json()["queued"] == 4 and counts.json()["total"] == 4
    assert sorted(job["job_id"] for job in found.json()["jobs"]) == [
        "web-child-0",
        "web-child-1",
        "web-child-2",
    ]
