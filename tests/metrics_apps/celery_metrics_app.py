"""The Celery app test_metrics_workers runs in a real prefork worker."""

from __future__ import annotations

import os

from celery import Celery

from jobstatus.integrations.celery import track

app = Celery("celery_metrics_app", broker=os.environ.get("METRICS_CELERY_BROKER"))
app.conf.update(
    task_default_queue=os.environ.get("METRICS_CELERY_QUEUE", "jobstatus-metrics"),
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
track(app)


@app.task(name="metrics.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="metrics.fail")
def fail() -> None:
    raise ValueError("no")


@app.task(name="metrics.retry_once", bind=True, max_retries=1)
def retry_once(self: object) -> int:
    """Retry the first attempt two seconds later (queued meanwhile); the second returns."""
    retries: int = self.request.retries  # type: ignore[attr-defined]
    if retries == 0:
        raise self.retry(exc=ConnectionError("first try"), countdown=2)  # type: ignore[attr-defined]
    return retries
