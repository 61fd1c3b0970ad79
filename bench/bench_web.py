"""1,000 concurrent event streams on one server process against one store.

python -m bench.bench_web [--streams N] [--store URL]

The server runs in its own process (``jobstatus.web.create_app`` under
uvicorn); the streams are raw sockets in this process. Measured:

- memory per stream: the server's RSS with N streams open, minus its RSS
  with one, divided by N;
- write-to-stream latency: a write to the store, then the time until each
  stream has the event carrying it (p50, p99, and the last stream).

The reference is the same server where each stream runs its own
``Status.awatch()`` (one store subscription per stream), which is what an
endpoint without a fan-out hub does.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jobstatus

from ._harness import Row, percentile, report

JOB = "bench-web-job"
WRITES = 5


# -- the server side -------------------------------------------------------------------


def naive_app(store: Any) -> Any:
    """One ``Status.awatch()`` (one subscription) per stream: the reference."""
    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    from jobstatus._record import dumps

    async def events(request: Any) -> Any:
        status = await jobstatus.aget(request.path_params["job_id"], store=store)

        async def stream() -> Any:
            async for snapshot in status.awatch():
                yield f"data: {dumps(snapshot.to_dict())}\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    return Starlette(routes=[Route("/jobs/{job_id}/events", events)])


def serve(mode: str, port: int, store_url: str) -> None:
    import uvicorn

    import jobstatus.web

    store = jobstatus.store_from_url(store_url)
    app = jobstatus.web.create_app(store=store) if mode == "hub" else naive_app(store)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", backlog=4096)


# -- the client side -------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Stream:
    """A raw SSE client: remembers when it first saw each progress value."""

    def __init__(self) -> None:
        self.seen: dict[int, float] = {}
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def run(self, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = f"GET /jobs/{JOB}/events HTTP/1.1\r\nHost: bench\r\n"
        writer.write((request + "Accept: text/event-stream\r\n\r\n").encode())
        await writer.drain()
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                marker = line.find(b'"progress":')
                if line.startswith(b"data:") and marker >= 0:
                    end = marker + 11
                    digits = line[end : end + 12].split(b",")[0].split(b"}")[0]
                    self.seen.setdefault(int(digits), time.perf_counter())
                    self.ready.set()
        finally:
            writer.close()


async def measure(mode: str, streams: int, store_url: str) -> dict[str, float]:
    store = jobstatus.store_from_url(store_url)
    status = jobstatus.get(JOB, store=store)
    status.update(status="working", progress=0, total=WRITES, force=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_web", "--serve", mode, str(port), store_url],
        cwd=Path(__file__).parent.parent,
    )
    try:
        await _wait_for_port(port)
        first = Stream()
        first.task = asyncio.create_task(first.run(port))
        await asyncio.wait_for(first.ready.wait(), 30)
        base_rss = rss_kib(server.pid)
        clients = [Stream() for _ in range(streams - 1)]
        for index, client in enumerate(clients):
            client.task = asyncio.create_task(client.run(port))
            if index % 100 == 99:
                await asyncio.sleep(0.05)
        await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in clients)), 120)
        everyone = [first, *clients]
        await asyncio.sleep(1.0)
        rss = rss_kib(server.pid)
        latencies: list[float] = []
        last: list[float] = []
        for value in range(1, WRITES + 1):
            await asyncio.sleep(0.5)
            written = time.perf_counter()
            await asyncio.to_thread(status.update, progress=value, force=True)
            deadline = time.monotonic() + 30
            while any(value not in c.seen for c in everyone) and time.monotonic() < deadline:
                await asyncio.sleep(0.002)
            got = [c.seen[value] - written for c in everyone if value in c.seen]
            latencies.extend(got)
            last.append(max(got))
        for client in everyone:
            assert client.task is not None
            client.task.cancel()
        await asyncio.gather(*(c.task for c in everyone if c.task), return_exceptions=True)
        return {
            "per_stream_kib": (rss - base_rss) / (streams - 1),
            "p50_ms": percentile(latencies, 50) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000,
            "last_ms": statistics.median(last) * 1000,
            "received": len(latencies) / (WRITES * streams),
        }
    finally:
        server.terminate()
        server.wait(10)
        status.delete()
        store.close()


async def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--store", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--serve", nargs=3, metavar=("MODE", "PORT", "STORE"))
    args = parser.parse_args()
    if args.serve:
        mode, port, store_url = args.serve
        serve(mode, int(port), store_url)
        return
    with tempfile.TemporaryDirectory() as folder:
        store_url = args.store or f"sqlite:///{os.path.join(folder, 'web.db')}"
        hub = asyncio.run(measure("hub", args.streams, store_url))
        naive = asyncio.run(measure("naive", args.streams, store_url))
    n = args.streams
    kind = store_url.split(":", 1)[0]
    rows = [
        Row(
            f"{n} streams ({kind}): memory per stream",
            hub["per_stream_kib"],
            "a subscription per stream",
            naive["per_stream_kib"],
            "KiB",
        ),
        Row(
            f"{n} streams ({kind}): write to stream, p50",
            hub["p50_ms"],
            "a subscription per stream",
            naive["p50_ms"],
            "ms",
        ),
        Row(
            f"{n} streams ({kind}): write to stream, p99",
            hub["p99_ms"],
            "a subscription per stream",
            naive["p99_ms"],
            "ms",
        ),
        Row(
            f"{n} streams ({kind}): write to the last stream",
            hub["last_ms"],
            "a subscription per stream",
            naive["last_ms"],
            "ms",
            extra={"received": hub["received"], "reference_received": naive["received"]},
        ),
    ]
    report(f"Web: {n} concurrent event streams, one process", rows, "web")


if __name__ == "__main__":
    main()
