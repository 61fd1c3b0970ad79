"""Push against polling: how long after a write does a reader see it?

    python -m bench.bench_push

A watcher (``Status.watch()``, pushed by Redis pub/sub and PostgreSQL
LISTEN/NOTIFY) against a reader polling ``jobstatus.get()`` every 0.5 s, as
celery-progress's page does. Writes come at random moments; each side records
the delay from the write to the moment it saw the new value.
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid

import jobstatus
from jobstatus import Job

from ._harness import Row, percentile, report

WRITES = 40
POLL_EVERY = 0.5


def _measure(url: str) -> tuple[list[float], list[float]]:
    jobstatus.configure(store=url, throttle_interval=0)
    job_id = f"push-{uuid.uuid4().hex[:8]}"
    job = Job(job_id)
    job.started()
    written: dict[int, float] = {}
    pushed: list[float] = []
    polled: list[float] = []
    done, listening = threading.Event(), threading.Event()

    def watcher() -> None:
        seen = set()
        for snapshot in jobstatus.get(job_id).watch(timeout=120):
            listening.set()  # the first snapshot: subscribed and caught up
            value = snapshot.progress.current
            if value in written and value not in seen:  # the final transition repeats it
                pushed.append(time.perf_counter() - written[value])
                seen.add(value)

    def poller() -> None:
        seen = 0
        while not done.is_set():
            value = jobstatus.get(job_id).progress.current
            if value != seen and value in written:
                polled.append(time.perf_counter() - written[value])
                seen = value
            time.sleep(POLL_EVERY)

    threads = [threading.Thread(target=watcher), threading.Thread(target=poller)]
    for thread in threads:
        thread.start()
    listening.wait(30)
    for n in range(1, WRITES + 1):
        time.sleep(random.uniform(0.55, 0.8))  # slower than the poller: each write is seen once
        written[n] = time.perf_counter()
        job.status.progress.current = n
    time.sleep(POLL_EVERY + 0.2)
    done.set()
    job.finished()
    for thread in threads:
        thread.join(10)
    jobstatus.get(job_id).delete()
    return pushed, polled


def main() -> str:
    stores = {
        "Redis": os.environ.get("JOBSTATUS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
        + "?prefix=benchpush:",
        "PostgreSQL": os.environ.get(
            "JOBSTATUS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        )
        + "?table=jobstatus_benchpush",
    }
    rows = []
    for name, url in stores.items():
        pushed, polled = _measure(url)
        for pct in (50, 99):
            rows.append(
                Row(
                    f"{name}: write seen by `watch()`, p{pct}",
                    percentile(pushed, pct) * 1e3,
                    f"polling `get()` every {POLL_EVERY} s (celery-progress)",
                    percentile(polled, pct) * 1e3,
                    "ms",
                    "p99 < 5 ms on Redis" if pct == 99 else "",
                    {"samples_pushed": len(pushed), "samples_polled": len(polled)},
                )
            )
    return report("Push against polling", rows, "push")


if __name__ == "__main__":
    main()
