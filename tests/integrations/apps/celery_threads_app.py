"""A Celery app run by a thread-pool worker (``-P threads -c 2``), whose one task's
retry is made to start while its first run is still ending (see
tests/integrations/test_options.py).

The first run is held in its ``task_retry`` signal until the retry has started; the
retry waits until the first run's ``task_postrun`` (after jobstatus's) has run. A
retry that started after the first run ended fails with "no overlap", so the test
cannot pass without the overlap it is about.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from celery import Celery, signals

from jobstatus.integrations.celery import track

app = Celery("celery_threads_app", broker=os.environ["JOBSTATUS_TEST_CELERY_BROKER"])
app.conf.update(
    task_default_queue=os.environ["JOBSTATUS_TEST_CELERY_QUEUE"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
track(app, includes={"status", "exception"})

NAME = "celery_threads_app.retried"
_retry_started, _first_ended = threading.Event(), threading.Event()


@app.task(name=NAME, bind=True, max_retries=1)
def retried(self: Any) -> str:
    if self.request.retries == 0:
        raise self.retry(exc=ValueError("attempt 1"), countdown=0)
    if _first_ended.is_set():
        raise RuntimeError("no overlap: the first run had ended before the retry started")
    _retry_started.set()
    if not _first_ended.wait(20):
        raise RuntimeError("the first run did not end")
    return "overlapped"


@signals.task_retry.connect(weak=False)
def _hold_first_run(sender: Any = None, **_: Any) -> None:
    if getattr(sender, "name", None) == NAME:
        _retry_started.wait(20)


@signals.task_postrun.connect(weak=False)
def _say_first_run_ended(task: Any = None, **_: Any) -> None:  # connected after jobstatus's
    if getattr(task, "name", None) == NAME and task.request.retries == 0:
        _first_ended.set()
