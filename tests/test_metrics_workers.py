"""Process-side metrics from real pre-forking workers, in Prometheus multiprocess mode.

A Celery prefork worker (two children) and an RQ worker (a work horse forked per
job) run with ``PROMETHEUS_MULTIPROC_DIR`` set, as docs/metrics.md says; the
test reads what their children recorded through prometheus_client's
``MultiProcessCollector``, as a scraping process does.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

import jobstatus

from .integrations._support import (
    CELERY_REDIS_DB,
    RQ_REDIS_DB,
    finished,
    python,
    redis_url,
    require_redis,
    scratch_dir,
    start,
    stop,
    unique,
    wait_for,
    worker_env,
)

pytestmark = [pytest.mark.timeout(180)]
APPS = Path(__file__).parent / "metrics_apps"
ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(APPS))


def _env(store_url: str, **more: str) -> dict[str, str]:
    """A worker's environment: its store, this module's apps, and ``more``."""
    return worker_env(store_url, PYTHONPATH=os.pathsep.join([str(APPS), str(ROOT / "src")]), **more)


class Scraped:
    """What every process wrote to a multiprocess directory, read once."""

    def __init__(self, folder: Path) -> None:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(folder))
        self.samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in registry.collect()
            for sample in family.samples
        }

    def __call__(self, sample: str, /, **labels: str) -> float:
        """The sum of the samples named ``sample`` that have these labels (and any others)."""
        return sum(
            value
            for (name, found), value in self.samples.items()
            if name == sample and set(labels.items()) <= set(found)
        )

    def names(self, sample: str) -> set[str]:
        """The ``name`` labels of the samples named ``sample``."""
        return {dict(found)["name"] for name, found in self.samples if name == sample}


def _worker_folder(folder: Path) -> Path:
    metrics = folder / "prometheus"
    metrics.mkdir()
    return metrics


# -- Celery ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def celery_worker() -> Iterator[tuple[Path, Path]]:
    pytest.importorskip("celery")
    require_redis()
    import celery_metrics_app as tasks

    broker, queue = redis_url(CELERY_REDIS_DB), unique("jobstatus-metrics-celery")
    with scratch_dir("metrics-celery") as folder:
        metrics = _worker_folder(folder)
        url = f"sqlite:///{folder / 'status.db'}"
        tasks.app.close()
        tasks.app.conf.broker_url = broker
        tasks.app.conf.task_default_queue = queue
        tasks.app.__dict__.pop("amqp", None)  # cached with the old queue and producer pool
        log = folder / "worker.log"
        env = _env(
            url,
            METRICS_CELERY_BROKER=broker,
            METRICS_CELERY_QUEUE=queue,
            PROMETHEUS_MULTIPROC_DIR=str(metrics),
        )
        command = [
            python(), "-m", "celery", "-A", "celery_metrics_app", "worker", "-Q", queue,
            "-c", "2", "--pool", "prefork", "--without-gossip", "--without-mingle",
            "--without-heartbeat", "-n", f"{queue}@%h", "-l", "info",
        ]  # fmt: skip
        process = start(command, env, log)
        try:
            yield Path(url.removeprefix("sqlite:///")), metrics
        finally:
            stop(process)
            with tasks.app.connection_for_write() as connection:
                connection.default_channel.queue_delete(queue)
            tasks.app.close()


@pytest.mark.celery
def test_a_celery_prefork_worker_records_the_process_side_metrics(
    celery_worker: tuple[Path, Path],
) -> None:
    import celery_metrics_app as tasks

    store, metrics = celery_worker
    jobstatus.configure(store=f"sqlite:///{store}")
    added = tasks.add.delay(1, 2)
    failed = tasks.fail.delay()
    retried = tasks.retry_once.delay()
    assert finished(added, timeout=60).is_completed
    assert finished(failed).is_failed
    assert finished(retried).is_completed

    seen = Scraped(metrics)
    _assert_recorded(seen, added=1, failed=1, retried_once=1)
    _assert_named(
        seen, [(added, "metrics.add"), (failed, "metrics.fail"), (retried, "metrics.retry_once")]
    )
    # The retry was queued 2 s (its countdown) before its second start.
    assert seen("jobstatus_job_wait_seconds_sum") >= 2
    # Recorded by the worker's children: the enqueues were this process's.
    assert seen("jobstatus_transitions_total", status="queued") == 1  # the retry only


def _assert_named(seen: Scraped, named: list[tuple[object, str]]) -> None:
    """Each job's record holds its task name, and each instrument's ``name`` labels are
    exactly these names (the Celery task name, the RQ function path)."""
    assert [(job, jobstatus.get(job).name) for job, _ in named] == named
    names = {name for _, name in named}
    for sample in (
        "jobstatus_transitions_total",
        "jobstatus_job_duration_seconds_count",
        "jobstatus_job_wait_seconds_count",
    ):
        assert seen.names(sample) == names, sample


def _assert_recorded(seen: Scraped, *, added: int, failed: int, retried_once: int) -> None:
    """The worker's instruments after that many completed, failed and retried-once jobs
    (summed over the task names)."""
    transitions, durations = "jobstatus_transitions_total", "jobstatus_job_duration_seconds_count"
    completed = added + retried_once
    assert seen(transitions, status="working") == added + failed + 2 * retried_once
    assert seen(transitions, status="completed") == completed
    assert seen(transitions, status="failed") == failed
    assert seen(durations, status="completed") == completed
    assert seen(durations, status="failed") == failed
    assert seen(durations, status="queued") == retried_once  # the retried attempt
    # Each start's write answered since when the job was queued (SQLite fills it).
    assert seen("jobstatus_job_wait_seconds_count") == added + failed + 2 * retried_once


# -- RQ ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rq_worker() -> Iterator[tuple[str, Path, object]]:
    pytest.importorskip("rq")
    require_redis()
    from redis import Redis

    from jobstatus.integrations.rq import StatusQueue

    with scratch_dir("metrics-rq") as folder:
        metrics = _worker_folder(folder)
        url = f"sqlite:///{folder / 'status.db'}"
        broker = redis_url(RQ_REDIS_DB)
        connection = Redis.from_url(broker)
        queue = StatusQueue(unique("jobstatus-metrics-rq"), connection=connection)
        rq = str(Path(python()).parent / "rq")
        command = [
            rq, "worker", "-w", "jobstatus.integrations.rq.StatusWorker", "--url", broker,
            "--with-scheduler", "--name", queue.name, queue.name,
        ]  # fmt: skip
        process = start(command, _env(url, PROMETHEUS_MULTIPROC_DIR=str(metrics)),
                        folder / "worker.log")  # fmt: skip
        try:
            yield url, metrics, queue
        finally:
            stop(process)
            queue.delete(delete_jobs=True)
            connection.close()


@pytest.mark.rq
def test_an_rq_worker_records_the_process_side_metrics_in_its_work_horses(
    rq_worker: tuple[str, Path, object],
) -> None:
    import rq_metrics_app as tasks
    from rq import Retry

    url, metrics, queue = rq_worker
    jobstatus.configure(store=url)
    added = queue.enqueue(tasks.add, 1, 2)  # type: ignore[attr-defined]
    failed = queue.enqueue(tasks.fail)  # type: ignore[attr-defined]
    retried = queue.enqueue(tasks.fail_once, retry=Retry(max=1, interval=1))  # type: ignore[attr-defined]
    assert finished(added, timeout=60).is_completed
    assert finished(failed).is_failed
    wait_for(retried, lambda s: s.is_completed)

    seen = Scraped(metrics)
    _assert_recorded(seen, added=1, failed=1, retried_once=1)
    assert seen("jobstatus_transitions_total", status="queued") == 1  # the retry
    paths = [
        (added, "rq_metrics_app.add"),
        (failed, "rq_metrics_app.fail"),
        (retried, "rq_metrics_app.fail_once"),
    ]
    _assert_named(seen, paths)
    # One work horse per job, each with its own files: the directory grows per job.
    assert len(list(metrics.glob("counter_*.db"))) >= 3
