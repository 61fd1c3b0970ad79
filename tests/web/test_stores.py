"""The endpoint on every store of the contract table: read, batch, stream to the end."""

from __future__ import annotations

import asyncio

import httpx
import pytest

import jobstatus
import jobstatus.web
from jobstatus.stores import Store
from jobstatus.stores.base import Listing

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
