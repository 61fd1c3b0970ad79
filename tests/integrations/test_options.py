"""Integration options and in-process paths that need no worker."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import jobstatus
from jobstatus import ConfigurationError

from ._support import APPS

sys.path.insert(0, str(APPS))


@pytest.mark.celery
def test_celery_eager_apply_records_working_then_completed() -> None:
    pytest.importorskip("celery")
    import celery_tasks as tasks

    result = tasks.add.apply((2, 3))
    assert result.get() == 5
    s = jobstatus.get(result)
    assert s.is_completed and s["attempts"] == 1 and "queued_at" not in s


@pytest.mark.celery
def test_celery_eager_failure_is_failed() -> None:
    pytest.importorskip("celery")
    import celery_tasks as tasks

    result = tasks.fail.apply(("eager",))
    s = jobstatus.get(result)
    assert s.is_failed and s["exception"] == {"class": "ValueError", "message": "eager"}


@pytest.mark.celery
def test_celery_retry_that_starts_before_its_first_run_ends_is_recorded(tmp_path: Path) -> None:
    # A retry has the task's id. In a thread pool it can start in a second thread while
    # the first run is still ending, and that run's postrun then comes while the retry
    # runs: it must not take the retry's outcome (celery_threads_app forces the order).
    pytest.importorskip("celery")
    from celery import Celery

    from jobstatus.integrations.celery import track

    from ._support import (
        CELERY_REDIS_DB,
        python,
        redis_url,
        require_redis,
        start,
        stop,
        unique,
        worker_env,
    )

    require_redis()
    broker, queue = redis_url(CELERY_REDIS_DB), unique("jobstatus-celery-threads")
    log = tmp_path / "worker.log"
    env = worker_env(  # the worker records in this test's default store
        os.environ["JOBSTATUS_STORE"],
        JOBSTATUS_TEST_CELERY_BROKER=broker,
        JOBSTATUS_TEST_CELERY_QUEUE=queue,
    )
    command = [python(), "-m", "celery", "-A", "celery_threads_app", "worker", "-P", "threads",
               "-c", "2", "-Q", queue, "-n", f"{queue}@%h", "--without-gossip",
               "--without-mingle", "--without-heartbeat", "-l", "warning"]  # fmt: skip
    client = Celery("client", broker=broker)
    track(client)  # the publisher records queued
    process = start(command, env, log)
    try:
        job_id = unique("job")
        client.send_task("celery_threads_app.retried", queue=queue, task_id=job_id)
        s = jobstatus.get(job_id).wait(timeout=60)
    finally:
        stop(process)
        client.close()
    assert s.is_completed and s["attempts"] == 2, log.read_text()
    statuses = [entry["status"] for entry in s.history]
    assert statuses == ["queued", "working", "queued", "working", "completed"]


@pytest.mark.celery
def test_celery_task_called_as_a_function_records_nothing_and_has_no_status() -> None:
    pytest.importorskip("celery")
    import celery_tasks as tasks

    assert tasks.add(1, 2) == 3
    with pytest.raises(jobstatus.NoCurrentJob):
        tasks.gated.status  # noqa: B018 - the property raises outside a run


@pytest.mark.celery
def test_celery_bad_options_are_refused_where_the_task_is_declared() -> None:
    pytest.importorskip("celery")
    from celery import Celery

    from jobstatus.integrations.celery import StatusTask, track

    app = Celery("options-test", set_as_current=False)
    with pytest.raises(ConfigurationError, match="throttle"):
        # Not shared: a shared task's constructor would run, and raise, in every app
        # finalized later in the session.
        @app.task(base=StatusTask, jobstatus={"throttle": 1}, lazy=False, shared=False)
        def bad() -> None: ...

    with pytest.raises(ConfigurationError, match="expires_in"):
        track(app, expires_in=-1)


@pytest.mark.celery
def test_celery_task_published_from_another_thread_records_queued() -> None:
    """Celery's current app is per thread: in a thread of a threaded web server it
    is Celery's default app, whose copy of the task is untracked; queued is recorded."""
    pytest.importorskip("celery")
    from celery import Celery

    from jobstatus.integrations.celery import track

    app = Celery("thread-test", broker="memory://", set_as_current=False)
    track(app)

    @app.task(name="thread_test.add", lazy=False)
    def add(x: int, y: int) -> int:
        return x + y

    ids: list[str] = []
    thread = threading.Thread(target=lambda: ids.append(add.delay(1, 2).id))
    thread.start()
    thread.join()
    assert jobstatus.get(ids[0]).is_queued


@pytest.mark.rq
def test_rq_bad_options_are_refused_where_the_function_is_declared() -> None:
    pytest.importorskip("rq")
    from jobstatus.integrations.rq import status_options

    with pytest.raises(ConfigurationError, match="includes"):
        status_options(includes={"everything"})


@pytest.mark.dramatiq
def test_dramatiq_bad_options_are_refused() -> None:
    pytest.importorskip("dramatiq")
    from jobstatus.integrations.dramatiq import StatusMiddleware

    with pytest.raises(ConfigurationError, match="unknown option"):
        StatusMiddleware(retries=3)
    assert StatusMiddleware().actor_options == {"jobstatus"}


@pytest.mark.parametrize("queue", ["celery", "rq", "dramatiq"])
def test_a_missing_queue_library_names_the_extra(
    queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, queue, None)  # the import fails as if not installed
    monkeypatch.delitem(sys.modules, f"jobstatus.integrations.{queue}", raising=False)
    with pytest.raises(ConfigurationError, match=rf"pip install 'jobstatus\[{queue}\]'"):
        __import__(f"jobstatus.integrations.{queue}")


@pytest.mark.celery
def test_celery_task_cls_makes_every_task_a_status_task() -> None:
    pytest.importorskip("celery")
    from celery import Celery

    app = Celery(
        "task-cls-test", task_cls="jobstatus.integrations.celery:StatusTask", set_as_current=False
    )

    @app.task(bind=True, lazy=False)
    def count(self: Any, n: int) -> float:
        self.progress.total = n
        for _ in range(n):
            self.progress.increment()
        return float(self.status.progress.current)

    result = count.apply((4,))
    assert result.get() == 4
    s = jobstatus.get(result)
    assert s.is_completed and s.progress.percent == 100


@pytest.mark.rq
def test_rq_synchronous_queue_records_the_whole_lifecycle_in_the_caller() -> None:
    pytest.importorskip("rq")
    import rq_tasks as tasks
    from redis import Redis

    from jobstatus.integrations.rq import StatusQueue

    from ._support import RQ_REDIS_DB, redis_url, require_redis, unique

    require_redis()
    connection = Redis.from_url(redis_url(RQ_REDIS_DB))
    queue = StatusQueue(unique("jobstatus-rq-sync"), connection=connection, is_async=False)
    try:
        ok, bad = queue.enqueue(tasks.add, 1, 2), queue.enqueue(tasks.fail, "sync")
        assert jobstatus.get(ok).is_completed and jobstatus.get(ok)["attempts"] == 1
        assert jobstatus.get(bad).is_failed
    finally:
        queue.delete(delete_jobs=True)
        connection.close()


@pytest.mark.dramatiq
@pytest.mark.parametrize("place", ["last", "before Retries"])
def test_dramatiq_middleware_place_does_not_matter(place: str) -> None:
    pytest.importorskip("dramatiq")
    import dramatiq
    from dramatiq.brokers.stub import StubBroker
    from dramatiq.middleware import Retries, default_middleware

    from jobstatus.integrations.dramatiq import StatusMiddleware

    # Dramatiq before 1.17 adds its Prometheus middleware by default when
    # prometheus_client is installed; it works only once a worker process booted it.
    defaults = [m() for m in default_middleware if m.__name__ != "Prometheus"]
    broker = StubBroker(middleware=defaults)
    middleware = StatusMiddleware(includes={"status", "exception"})
    if place == "last":
        broker.add_middleware(middleware)
    else:
        broker.add_middleware(middleware, before=Retries)
    attempts: list[int] = []

    def flaky() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("first try")

    def broken() -> None:
        raise ValueError("always")

    flaky_actor = dramatiq.actor(flaky, broker=broker, min_backoff=1, max_backoff=10)
    broken_actor = dramatiq.actor(broken, broker=broker, max_retries=1, min_backoff=1)
    worker = dramatiq.Worker(broker, worker_timeout=50)
    worker.start()
    try:
        first, second = flaky_actor.send(), broken_actor.send()
        broker.join(flaky_actor.queue_name, fail_fast=False)
        worker.join()
    finally:
        worker.stop()
        broker.close()
    s = jobstatus.get(first)
    assert s.is_completed and s["attempts"] == 2
    assert s["exception"] == {"class": "ConnectionError", "message": "first try"}  # from the retry
    failed = jobstatus.get(second)
    assert failed.is_failed and failed["attempts"] == 2
    assert failed["exception"] == {"class": "ValueError", "message": "always"}


@pytest.mark.dramatiq
@pytest.mark.parametrize("place", ["last", "before Retries"])
def test_dramatiq_retry_that_starts_before_its_first_delivery_is_acked_is_recorded(
    place: str,
) -> None:
    # A retry has the message's id. Here it starts in a second worker thread while the
    # first delivery is still in its after hooks, and that delivery is acknowledged
    # while the retry runs: what the first delivery's ack does must not lose the retry.
    pytest.importorskip("dramatiq")
    import dramatiq
    from dramatiq.brokers.stub import StubBroker
    from dramatiq.middleware import Middleware, Retries, default_middleware

    from jobstatus.integrations.dramatiq import StatusMiddleware

    retry_started, first_acked = threading.Event(), threading.Event()
    held: list[object] = []

    class HoldFirstDelivery(Middleware):
        """Runs after Retries sent the retry: holds the first delivery until the
        retry runs, and says when that delivery has been acknowledged."""

        def after_process_message(self, broker: Any, message: Any, **_: Any) -> None:
            if not held:
                held.append(message)
                assert retry_started.wait(10)

        def after_ack(self, broker: Any, message: Any) -> None:
            if held and message is held[0]:
                first_acked.set()

    defaults = [m() for m in default_middleware if m.__name__ != "Prometheus"]
    broker = StubBroker(middleware=defaults)
    middleware = StatusMiddleware(includes={"status", "exception"})
    if place == "last":
        broker.add_middleware(HoldFirstDelivery(), before=Retries)
        broker.add_middleware(middleware)
    else:
        broker.add_middleware(middleware, before=Retries)
        broker.add_middleware(HoldFirstDelivery(), before=Retries)
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        if len(calls) == 2:
            retry_started.set()
            assert first_acked.wait(10)
        raise ValueError(f"attempt {len(calls)}")

    actor = dramatiq.actor(broken, broker=broker, max_retries=1, min_backoff=1, max_backoff=2)
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=50)
    worker.start()
    try:
        message = actor.send()
        broker.join(actor.queue_name, fail_fast=False)
        worker.join()
    finally:
        worker.stop()
        broker.close()
    assert first_acked.is_set() and len(calls) == 2  # the overlap happened
    s = jobstatus.get(message)
    assert s.is_failed and s["attempts"] == 2
    assert s["exception"] == {"class": "ValueError", "message": "attempt 2"}
