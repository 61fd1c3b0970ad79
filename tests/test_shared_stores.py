"""A store URL names one store per process: every call given it shares its connections."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import jobstatus
from jobstatus._config import store_or_default
from jobstatus.stores import _registry

from .stores import REDIS_URL, namespace, require_service


def _run_a_job(store: object, progress: int) -> str:
    @jobstatus.track(store=store)
    def job() -> str:
        jobstatus.current().progress.current = progress
        return jobstatus.current().job_id

    return job()


def test_one_url_gives_one_store_to_configure_reads_and_tasks(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    jobstatus.configure(store=url)
    job_id = _run_a_job(url, 1)
    assert store_or_default(url) is store_or_default(None)
    assert jobstatus.get(job_id, store=url)["progress"] == 1


def test_threads_asking_at_once_share_the_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    seen: list[object] = []
    start = threading.Barrier(8)

    def ask() -> None:
        start.wait()
        seen.append(store_or_default(url))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 8 and len({id(store) for store in seen}) == 1


def test_past_the_limit_the_least_recently_used_store_is_closed_and_still_works(
    tmp_path: Path,
) -> None:
    urls = [f"sqlite:///{tmp_path / f'{n}.db'}" for n in range(_registry.SHARED_LIMIT + 1)]
    first = store_or_default(urls[0])
    job_id = _run_a_job(first, 3)
    for url in urls[1:]:
        store_or_default(url)
    assert store_or_default(urls[0]) is not first  # evicted, so built again
    # The evicted store was closed, and a closed store reconnects when used again.
    assert jobstatus.get(job_id, store=first)["progress"] == 3


@pytest.mark.redis
def test_jobs_and_reads_given_a_url_share_connections_and_the_cancel_listener() -> None:
    """Before stores were shared, each job given ``store=url`` left two connections and
    a listener thread behind: 40 connections after 20 jobs."""
    require_service("Redis", REDIS_URL, 6379)
    import redis

    name = f"jobstatus-test-{namespace()}"
    url = f"{REDIS_URL}?prefix={name}:&client_name={name}"
    admin = redis.Redis.from_url(REDIS_URL)
    try:
        assert jobstatus.get(_run_a_job(url, 1), store=url).is_completed
        connections = len([c for c in admin.client_list() if c.get("name") == name])
        threads = threading.active_count()
        for _ in range(20):
            assert jobstatus.get(_run_a_job(url, 1), store=url).is_completed
        assert len([c for c in admin.client_list() if c.get("name") == name]) == connections
        assert threading.active_count() == threads
    finally:
        admin.close()
