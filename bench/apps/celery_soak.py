"""No-op Celery tasks for bench_soak; BENCH_TRACKED=1 tracks them with jobstatus.

No result backend: the tracked side's outcomes are read from jobstatus, the
plain side's chunk ends from the key ``soak.mark`` sets. Every Redis
connection the worker opens for the broker carries the client name
BENCH_CLIENT_NAME, so the benchmark can find them in ``CLIENT LIST``.
"""

import os

from celery import Celery

TRACKED = os.environ.get("BENCH_TRACKED") == "1"
BROKER = os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/6")

app = Celery("celery_soak", broker=BROKER)
app.conf.update(
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    broker_transport_options={"client_name": os.environ.get("BENCH_CLIENT_NAME", "soak-broker")},
)

if TRACKED:
    from jobstatus.integrations.celery import track

    track(app, includes={"status", "exception", "serialized_job"})


@app.task(name="soak.noop" if TRACKED else "soak.noop_plain")
def noop() -> None:
    return None


@app.task(name="soak.mark", jobstatus=False)
def mark(key: str) -> None:
    """Set ``key`` in the broker's database: every task published before it has run."""
    from redis import Redis

    with Redis.from_url(BROKER) as client:
        client.set(key, 1, ex=600)
