"""Split stores are said out loud: memory:// refused across processes, and each worker
says once where it writes (a warning for the per-user default SQLite file)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest

import jobstatus
from jobstatus import ConfigurationError
from jobstatus._config import _announced, announce_store
from jobstatus.stores import MemoryStore


def square(n: int) -> int:
    return n * n


@pytest.mark.parametrize("store", ["memory://", MemoryStore()], ids=["url", "private"])
def test_a_process_pool_refuses_memory_before_writing_anything(store: object) -> None:
    jobstatus.configure(store=store)
    with ProcessPoolExecutor(max_workers=1) as pool, pytest.raises(ConfigurationError) as refused:
        jobstatus.submit(pool, square, 3)
    assert "memory:// keeps statuses in this process's memory" in str(refused.value)
    assert "ProcessPoolExecutor's worker processes cannot see them" in str(refused.value)
    assert jobstatus.recent() == []  # not even "queued": it would stay queued forever


def test_threads_share_memory_and_a_process_pool_shares_sqlite(tmp_path: Path) -> None:
    jobstatus.configure(store="memory://")
    with ThreadPoolExecutor(max_workers=1) as threads:
        in_threads = jobstatus.submit(threads, square, 3)
    assert jobstatus.get(in_threads).wait(timeout=30).is_completed
    jobstatus.configure(store=f"sqlite:///{tmp_path / 'shared.db'}")
    with ProcessPoolExecutor(max_workers=1) as pool:
        in_processes = jobstatus.submit(pool, square, 4)
    assert jobstatus.get(in_processes).wait(timeout=30).is_completed


def test_a_worker_announces_its_store_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    huey_module = pytest.importorskip("huey")
    from jobstatus.integrations.huey import track

    _announced.clear()
    jobstatus.configure(store=f"sqlite:///{tmp_path / 'worker.db'}")
    huey = huey_module.MemoryHuey(immediate=True)

    @huey.task()
    def noop() -> None:
        pass

    track(huey)
    with caplog.at_level(logging.INFO, logger="jobstatus"):
        noop()
        noop()
    said = [r for r in caplog.records if "writes job status" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO
    assert said[0].getMessage().startswith("jobstatus: ")
    assert said[0].getMessage().endswith(f"writes job status to sqlite:///{tmp_path / 'worker.db'}")


def test_a_redis_url_is_announced_without_its_password(caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("redis")
    _announced.clear()
    store = jobstatus.store_from_url("redis://:s3cret@127.0.0.1:1/0")
    with caplog.at_level(logging.INFO, logger="jobstatus"):
        announce_store(store, "Celery")
    assert "s3cret" not in caplog.text and "127.0.0.1:1/0" in caplog.text


def test_a_worker_on_the_per_user_default_warns_which_file(tmp_path: Path) -> None:
    """A real worker process of its own, with no store configured anywhere."""
    pytest.importorskip("huey")
    worker = textwrap.dedent(
        """
        import logging
        from huey import MemoryHuey
        from jobstatus.integrations.huey import track

        logging.basicConfig(format="%(levelname)s %(message)s")
        huey = MemoryHuey(immediate=True)

        @huey.task()
        def noop():
            pass

        track(huey)
        noop()
        noop()
        """
    )
    env = {key: value for key, value in os.environ.items() if key != "JOBSTATUS_STORE"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    ran = subprocess.run(
        [sys.executable, "-c", worker], env=env, capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    warnings = [line for line in ran.stderr.splitlines() if line.startswith("WARNING")]
    default = tmp_path / "cache" / "jobstatus" / "jobstatus.db"
    assert len(warnings) == 1, ran.stderr
    assert f"writes job status to the per-user default sqlite:///{default}" in warnings[0]
    assert "other users or in other containers read another file" in warnings[0]
    assert "Set JOBSTATUS_STORE" in warnings[0]


def test_an_rq_worker_announces_its_store_once_not_per_work_horse(tmp_path: Path) -> None:
    """RQ forks a work horse per job: a real ``rq worker`` with three jobs, on the
    per-user default, warns once (from its main process), not once per job."""
    pytest.importorskip("rq")
    from redis import Redis

    from jobstatus.integrations.rq import StatusQueue
    from tests.integrations._support import APPS, RQ_REDIS_DB, redis_url, require_redis, unique

    require_redis()
    default = tmp_path / "cache" / "jobstatus" / "jobstatus.db"
    jobstatus.configure(store=f"sqlite:///{default}")
    queue = StatusQueue(unique("announce"), connection=Redis.from_url(redis_url(RQ_REDIS_DB)))
    sys.path.insert(0, str(APPS))
    try:
        import rq_tasks

        jobs = [queue.enqueue(rq_tasks.add, n, n) for n in range(3)]
    finally:
        sys.path.remove(str(APPS))
    env = {key: value for key, value in os.environ.items() if key != "JOBSTATUS_STORE"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    env["PYTHONPATH"] = os.pathsep.join([str(APPS), env.get("PYTHONPATH", "")])
    rq = Path(sys.executable).parent / "rq"
    command = [str(rq), "worker", "--burst", "-w", "jobstatus.integrations.rq.StatusWorker"]
    command += ["--url", redis_url(RQ_REDIS_DB), queue.name]
    ran = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert [jobstatus.get(job.id).status for job in jobs] == ["completed"] * 3
    said = ran.stdout + ran.stderr
    assert said.count(f"writes job status to the per-user default sqlite:///{default}") == 1, said
