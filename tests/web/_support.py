"""Helpers shared by the web tests: records to serve (checked or not) and SSE parsing."""

from __future__ import annotations

import json
import time
from typing import Any

import jobstatus
from jobstatus.stores import MemoryStore, Store

SCRIPT = "<script>window.__pwned = 1</script>"


def put(store: Store, job_id: str, **fields: Any) -> None:
    """Write ``fields`` into the record of ``job_id``."""
    jobstatus.get(job_id, store=store).update(fields, force=True)


def seed(store: Store) -> None:
    """A working, a failed (with its exception and private data) and a completed job."""
    put(store, "run", status="working", progress=3, total=10, step="resize", owner="ann")
    put(
        store,
        "bad",
        status="failed",
        exception={"class": "ValueError", "message": "boom"},
        serialized_job={"name": "export", "args": ["secret"]},
        token="t0p",
        owner="bob",
    )
    put(store, "done", status="completed", progress=5, total=5, owner="ann")


def events(text: str) -> list[dict[str, Any]]:
    """The ``data`` of each event in an SSE body, parsed, with its ``id`` as ``_id``."""
    parsed = []
    for block in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":")
        )
        if "data" in fields:
            record = json.loads(fields["data"])
            if "id" in fields:
                record["_id"] = fields["id"]
            parsed.append(record)
    return parsed


def owner_is(user_header: str = "x-user"):
    """An authorize hook: the request's x-user header must match the job's owner."""

    def authorize(request: Any, job_id: str, record: dict[str, Any]) -> bool:
        headers = request.headers
        return record.get("owner") == headers.get(user_header)

    return authorize


def plant(store: MemoryStore, job_id: str, record: dict[str, Any]) -> None:
    """Put ``record`` into the memory store as it is, past every check a write makes.

    What old data, or a store of the application's own, can hand the endpoint.
    """
    store._records[job_id] = (record, time.time() + 3600)
