"""The Django integration with real components: the test project under
``tests/django_project``, the immediate backend in this process, and the
``django_tasks_db`` database backend run by a real ``db_worker`` process on
PostgreSQL. Statuses go to an SQLite file that the worker shares.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import jobstatus
from jobstatus import ConfigurationError
from jobstatus.stores.base import Store

from .django_project.harness import ensure_database, ensure_django, start_worker, stop_worker
from .integrations._support import stays_fresh, wait_for

pytestmark = pytest.mark.django

WAIT = 30.0  # seconds a test waits for the worker before giving up


@pytest.fixture(autouse=True)
def _django() -> None:
    """Django set up once; JOBSTATUS re-applied after conftest's reset of the settings."""
    ensure_django()
    from jobstatus.integrations.django import conf

    conf.load()


def _tasks():  # imported late: importing them needs Django set up
    from .django_project import tasks

    return tasks


def _tasks_api(module: str):
    """A module of ``django.tasks`` (Django 6) or of the backport (Django 5.2)."""
    import importlib

    from django.conf import settings

    return importlib.import_module(f"{settings.TASKS_PACKAGE}.{module}")


def _wait_for_file(path: Path) -> None:
    deadline = time.monotonic() + WAIT
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


# -- the immediate backend, in this process -------------------------------------------


def test_a_task_records_queued_working_completed_and_its_progress() -> None:
    tasks = _tasks()
    result = tasks.count.enqueue(5)
    status = jobstatus.get(result)  # get() takes Django's TaskResult
    assert result.return_value == 5
    assert status.job_id == result.id
    assert status.status == "completed"
    assert (status.progress.current, status.progress.total) == (5, 5)
    assert status["step"] == "done"
    assert status["attempts"] == 1
    for key in ("queued_at", "started_at", "finished_at"):
        assert key in status
    assert status["serialized_job"] == {
        "name": "tests.django_project.tasks.count",
        "args": [5],
        "kwargs": {},
        "queue": "default",
        "job_id": result.id,
        "backend": "default",
        "priority": 0,
    }


def test_a_failing_task_is_failed_with_its_exception() -> None:
    tasks = _tasks()
    result = tasks.fails.enqueue("boom")
    status = jobstatus.get(result)
    assert status.status == "failed"
    assert "finished_at" in status
    assert status["exception"] == {"class": "ValueError", "message": "boom"}
    # Django's own result is untouched: the backend still reports the failure.
    assert result.status == "FAILED"
    assert result.errors[0].exception_class_path == "builtins.ValueError"


def test_a_projects_own_exception_is_named_by_its_path() -> None:
    result = _tasks().fails_own.enqueue("bad row")
    assert jobstatus.get(result)["exception"] == {
        "class": "tests.django_project.tasks.TaskBroke",
        "message": "bad row",
    }


def test_a_swallowed_exception_marked_with_catch_exception_stays_failed() -> None:
    result = _tasks().swallows.enqueue()
    assert result.return_value == "handled"
    status = jobstatus.get(result)
    assert status.status == "failed"
    assert status["exception"] == {"class": "KeyError", "message": "'missing'"}


def test_throttled_changes_are_flushed_by_the_end_of_the_task() -> None:
    # throttle_interval=60 from the options() decorator: only the end writes them.
    status = jobstatus.get(_tasks().throttled.enqueue(7))
    assert status.status == "completed"
    assert (status.progress.current, status.progress.total) == (7, 7)
    assert status["step"] == "row 6"


def test_per_task_options_from_settings() -> None:
    from jobstatus.integrations.django import conf

    assert conf.current().tasks["tests.django_project.tasks.configured"] == {
        "throttle_interval": 60.0
    }
    status = jobstatus.get(_tasks().configured.enqueue(3))
    assert status.status == "completed"
    assert status.progress.current == 3


def test_async_tasks_see_their_job() -> None:
    status = jobstatus.get(_tasks().async_count.enqueue(3))
    assert status.status == "completed"
    assert (status.progress.current, status.progress.total) == (3, 3)


class SlowStore(Store):
    """A real store behind a delay: every call sleeps ``delay`` seconds first, and is timed."""

    def __init__(self, inner: Store, delay: float) -> None:
        self.inner = inner
        self.delay = delay
        self.calls: list[tuple[float, float]] = []  # (start, end) of each call, monotonic

    def _slowly(self, method: Any, *args: Any) -> Any:
        start = time.monotonic()
        time.sleep(self.delay)
        try:
            return method(*args)
        finally:
            self.calls.append((start, time.monotonic()))

    def write(self, job_id: str, change: Any) -> None:
        self._slowly(self.inner.write, job_id, change)

    def read(self, job_id: str) -> Any:
        return self._slowly(self.inner.read, job_id)

    def read_many(self, job_ids: Any) -> Any:
        return self._slowly(self.inner.read_many, job_ids)

    def delete(self, job_id: str) -> None:
        self._slowly(self.inner.delete, job_id)


def test_an_async_task_never_blocks_its_event_loop() -> None:
    from jobstatus.stores import MemoryStore

    slow = SlowStore(MemoryStore(), delay=0.4)
    jobstatus.configure(store=slow)
    result = _tasks().ticks_while_writing.enqueue()
    ticks = result.return_value
    # The task's own writes: those made while its ticker ran, in its event loop. On
    # that loop, each would stop the ticker for its whole delay; off it, the ticker
    # ticks all along. Only a machine starving the loop's thread for the whole
    # 0.4 s could fail these (a ticker seen with no jobstatus at all would fail too).
    during = [(start, end) for start, end in slow.calls if ticks[0] < start and end < ticks[-1]]
    assert len(during) >= 2
    assert all(any(start < tick < end for tick in ticks) for start, end in during)
    worst = max(b - a for a, b in itertools.pairwise(ticks))
    assert worst < slow.delay, f"the loop stood still for {worst:.3f} s"
    status = jobstatus.get(result, store=slow.inner)
    assert status.status == "completed" and status["step"] == "async"
    assert status.progress.current == 1


def test_an_async_task_that_raises_is_failed_with_its_exception_and_its_changes() -> None:
    status = jobstatus.get(_tasks().async_fails.enqueue("async boom"))
    assert status.status == "failed" and status["step"] == "about to fail"
    assert status["exception"] == {"class": "ValueError", "message": "async boom"}


def test_a_store_that_fails_never_breaks_a_task(caplog: pytest.LogCaptureFixture) -> None:
    """The receivers log what they could not record, even with on_store_error="raise"."""
    nobody = "postgresql://postgres@127.0.0.1:1/none"  # a connection refused at once
    jobstatus.configure(store=nobody, on_store_error="raise")
    for task in (_tasks().add, _tasks().async_add):
        result = task.enqueue(1, 2)
        assert result.status == "SUCCESSFUL" and result.return_value == 3
        for what in ("queued", "working", "the outcome"):
            assert f"could not record {what} for job '{result.id}'" in caplog.text


def test_a_task_enqueued_in_a_group_is_its_child() -> None:
    from jobstatus.integrations.django import in_group

    tasks = _tasks()
    g = jobstatus.group(name="sums")
    with in_group(g) as group_id:
        results = [tasks.add.enqueue(n, n) for n in range(3)]
    assert group_id == g.job_id
    assert all(jobstatus.get(result)["parent"] == g.job_id for result in results)
    after = tasks.add.enqueue(1, 1)  # outside the block: no parent
    assert "parent" not in jobstatus.get(after)
    s = jobstatus.get(g.job_id)
    assert s.is_completed and s["children"]["completed"] == 3 and s.progress.total == 3


def test_a_group_that_does_not_exist_is_refused_before_anything_is_enqueued() -> None:
    from jobstatus.integrations.django import in_group

    with pytest.raises(ValueError, match="does not exist"), in_group("no-such-group"):
        pytest.fail("the block must not run")


def test_a_tasks_own_parent_option() -> None:
    tasks = _tasks()
    g = jobstatus.group(name="fixed", group_id="django-tasks-group")
    s = jobstatus.get(tasks.in_group.enqueue())
    assert s.is_completed and s["parent"] == g.job_id
    other = jobstatus.group(name="other")
    from jobstatus.integrations.django import in_group

    with in_group(other):
        assert jobstatus.get(tasks.in_group.enqueue())["parent"] == other.job_id


def test_a_batch_of_task_results() -> None:
    tasks = _tasks()
    batch = jobstatus.Batch([tasks.count.enqueue(2), tasks.fails.enqueue("x")])
    assert batch.status == "failed"
    assert batch.counts == {
        "queued": 0,
        "working": 0,
        "completed": 1,
        "failed": 1,
        "cancelled": 0,
        "missing": 0,
    }


def test_aenqueue_from_async_code() -> None:
    import asyncio

    async def main() -> str | None:
        result = await _tasks().count.aenqueue(2)
        return (await jobstatus.aget(result)).status

    assert asyncio.run(main()) == "completed"


def test_an_async_task_aenqueued_from_async_code_runs_on_that_loop_and_ends() -> None:
    import asyncio

    async def main() -> tuple[str | None, float]:
        result = await _tasks().async_count.aenqueue(2)
        status = await jobstatus.aget(result)
        return status.status, status.progress.current

    assert asyncio.run(main()) == ("completed", 2)


def test_a_task_enqueued_inside_a_task_is_its_own_job() -> None:
    result = _tasks().nested.enqueue()
    assert result.status == "SUCCESSFUL"  # the task asserts current() came back to it
    outer = jobstatus.get(result)
    assert outer.status == "completed"
    assert [s.status for s in jobstatus.recent(limit=2)] == ["completed", "completed"]


def test_outside_a_task_there_is_no_current_job() -> None:
    _tasks().add.enqueue(1, 2)
    with pytest.raises(jobstatus.NoCurrentJob):
        jobstatus.current()


def test_a_task_nobody_runs_stays_queued() -> None:
    result = _tasks().add.using(backend="dummy").enqueue(1, 2)
    status = jobstatus.get(result)
    assert status.status == "queued"
    assert "started_at" not in status


def test_empty_includes_record_no_lifecycle() -> None:
    from django.test import override_settings

    with override_settings(JOBSTATUS={"INCLUDES": []}):
        result = _tasks().add.enqueue(1, 2)
    assert jobstatus.get(result).exists is False


def test_a_failure_known_only_from_the_task_result_keeps_class_and_message() -> None:
    """A backend that reports a failure outside its except block: the TaskResult's error."""
    from jobstatus.integrations.django import signals

    TaskError = _tasks_api("base").TaskError

    queued = _tasks().add.using(backend="dummy").enqueue(1, 2)
    error = TaskError(
        exception_class_path="tests.django_project.tasks.TaskBroke",
        traceback="Traceback (most recent call last):\n  ...\n"
        "tests.django_project.tasks.TaskBroke: lost the row\n",
    )
    failed = dataclasses.replace(queued, status="FAILED", errors=[error])
    signals.task_finished(sender=None, task_result=failed)
    status = jobstatus.get(queued)
    assert status.status == "failed"
    assert status["exception"] == {
        "class": "tests.django_project.tasks.TaskBroke",
        "message": "lost the row",
    }


def test_a_late_enqueue_signal_does_not_hide_a_started_task() -> None:
    """A worker may start a task before the enqueuing process handles task_enqueued."""
    from jobstatus.integrations.django import signals

    DummyBackend = _tasks_api("backends.dummy").DummyBackend

    result = _tasks().add.using(backend="dummy").enqueue(1, 2)
    jobstatus.Job(result.id).started()
    signals.task_enqueued(sender=DummyBackend, task_result=result)
    assert jobstatus.get(result).status == "working"


def test_the_signals_of_the_installed_django_tasks_are_hooked() -> None:
    from django.conf import settings

    from jobstatus.integrations.django import signals

    assert f"{settings.TASKS_PACKAGE}.signals" in signals.connect()


def test_django_6_runs_its_own_django_tasks() -> None:
    """On Django 6 the built-in framework runs the tasks, not the backport."""
    import django

    if django.VERSION < (6,):
        pytest.skip("Django 5.2: the django-tasks backport provides the framework")
    from django.tasks import TaskResult, task_backends
    from django.tasks.backends.immediate import ImmediateBackend

    assert isinstance(task_backends["default"], ImmediateBackend)
    result = _tasks().count.enqueue(2)
    assert isinstance(result, TaskResult)
    assert jobstatus.get(result).status == "completed"


def test_bad_settings_are_refused_naming_the_key() -> None:
    from jobstatus.integrations.django import conf, options

    with pytest.raises(ConfigurationError, match="THROTTLE"):
        conf.parse({"THROTTLE": 1})
    with pytest.raises(ConfigurationError, match="throttle_interval"):
        conf.parse({"THROTTLE_INTERVAL": -1})
    with pytest.raises(ConfigurationError, match="SPEED"):
        conf.parse({"TASKS": {"a.b": {"SPEED": 1}}})
    with pytest.raises(ConfigurationError, match="EXPOSE"):
        conf.parse({"EXPOSE": ["password"]})
    with pytest.raises(ConfigurationError, match="speed"):
        options(speed=1)


def test_the_docs_example_runs(tmp_path: Path) -> None:
    import os
    import re
    import sys

    from django.conf import settings

    docs = (Path(__file__).parents[1] / "docs" / "django.md").read_text()
    example = next(  # the example for the installed Django: 6, or 5.2 with the backport
        block
        for block in re.findall(r"```python\n(.*?)```", docs, re.S)
        if "settings.configure" in block and f"from {settings.TASKS_PACKAGE} import task" in block
    )
    env = {**os.environ, "JOBSTATUS_STORE": f"sqlite:///{tmp_path / 'docs.db'}"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        [sys.executable, "-c", example], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["completed", "100.0", "/tmp/export.csv"]


# -- the Django cache store ----------------------------------------------------------


def test_the_django_cache_store_runs_tasks_and_warns_it_is_per_process() -> None:
    from jobstatus.integrations.django.stores import DjangoCacheStore, PerProcessCacheWarning

    with pytest.warns(PerProcessCacheWarning, match="LocMemCache"):
        store = jobstatus.store_from_url("django-cache://default")
    assert isinstance(store, DjangoCacheStore)
    jobstatus.configure(store=store)
    status = jobstatus.get(_tasks().count.enqueue(4))
    assert status.status == "completed"
    assert status.progress.current == 4
    assert store.read(status.job_id) == status.to_dict()


def test_the_django_cache_store_refuses_a_dummy_cache_and_unknown_aliases() -> None:
    with pytest.raises(ConfigurationError, match="DummyCache"):
        jobstatus.store_from_url("django-cache://dummy")
    with pytest.raises(ConfigurationError, match="nowhere"):
        jobstatus.store_from_url("django-cache://nowhere")
    with pytest.raises(ConfigurationError, match="alias"):
        jobstatus.store_from_url("django-cache://")


# -- the Django database store (PostgreSQL) -------------------------------------------


@pytest.fixture
def db_store() -> Iterator[Store]:
    ensure_database()
    from jobstatus.integrations.django.models import JobStatusRecord

    JobStatusRecord.objects.all().delete()
    store = jobstatus.store_from_url("django-db://default")
    jobstatus.configure(store=store)
    yield store
    JobStatusRecord.objects.all().delete()


@pytest.mark.postgres
def test_the_database_store_runs_tasks_and_lists_them(db_store: Store) -> None:
    done = _tasks().count.enqueue(3)
    broken = _tasks().fails.enqueue("no")
    assert jobstatus.get(done).status == "completed"
    assert jobstatus.get(broken)["exception"]["message"] == "no"
    assert [s.job_id for s in jobstatus.recent()] == [broken.id, done.id]
    assert [s.job_id for s in jobstatus.recent(status="completed")] == [done.id]


@pytest.mark.postgres
def test_the_database_store_adds_up_concurrent_increments(db_store: Store) -> None:
    from django.db import connections

    def bump() -> None:
        try:
            status = jobstatus.get("shared")
            for _ in range(20):
                status.progress.increment()
        finally:
            connections.close_all()  # this thread's connection

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert jobstatus.get("shared").progress.current == 160


@pytest.mark.postgres
def test_the_database_store_expires_and_purges(db_store: Store) -> None:
    from jobstatus.integrations.django.stores import DjangoDatabaseStore

    now = [time.time()]
    store = DjangoDatabaseStore(clock=lambda: now[0])
    jobstatus.get("short", store=store).update(status="queued")
    now[0] += 3601
    assert not jobstatus.get("short", store=store).exists
    assert store.purge() == 1


@pytest.mark.postgres
def test_the_purge_command(db_store: Store) -> None:
    from io import StringIO

    from django.core.management import call_command

    jobstatus.get("gone").update(status="completed")
    jobstatus.get("kept").update(status="working")
    from jobstatus.integrations.django.models import JobStatusRecord

    JobStatusRecord.objects.filter(job_id="gone").update(expires_at=1.0)
    output = StringIO()
    call_command("jobstatus_purge", stdout=output)
    assert "removed 1 expired records from django-db://default" in output.getvalue()
    assert list(JobStatusRecord.objects.values_list("job_id", flat=True)) == ["kept"]


def test_the_purge_command_on_a_store_that_expires_by_itself() -> None:
    from django.core.management import CommandError, call_command

    jobstatus.configure(store="memory://")
    with pytest.raises(CommandError, match="nothing to purge"):
        call_command("jobstatus_purge")


@pytest.mark.postgres
def test_the_migration_is_complete() -> None:
    ensure_database()
    from django.core.management import call_command

    call_command("makemigrations", "jobstatus", "--check", "--dry-run", verbosity=0)


# -- the web routes (jobstatus.web's Django adapter, configured by JOBSTATUS) ----------


@pytest.fixture(scope="module")
def web_store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('web') / 'status.db'}"


@pytest.fixture
def client(web_store_url: str):
    """A test client; the routes keep the store they first read, so every test shares one."""
    from django.test import Client

    jobstatus.configure(store=web_store_url)
    return Client()


def test_a_jobs_json_is_served_without_private_keys(client) -> None:
    result = _tasks().fails.enqueue("secret detail")
    answer = client.get(f"/status/jobs/{result.id}")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "failed"
    assert "exception" not in body
    assert "serialized_job" not in body
    status = jobstatus.get(result)
    assert body == {
        **{k: v for k, v in status.to_dict().items() if k not in ("exception", "serialized_job")},
        "job_id": result.id,  # the keys the web layer computes
        "name": status.name,
        "percent": status.progress.percent,
        "eta": status.progress.eta,
    }


def test_unknown_and_refused_jobs_are_404_alike_and_bad_ids_400(client) -> None:
    assert client.get("/status/jobs/no-such-job").status_code == 404
    result = _tasks().add.enqueue(1, 2)
    assert client.get(f"/status/jobs/{result.id}").status_code == 200
    jobstatus.get(result)["owner"] = "someone else"  # the AUTHORIZE hook refuses it now
    assert client.get(f"/status/jobs/{result.id}").status_code == 404
    assert client.get("/status/jobs/" + "x" * 600).status_code == 400
    assert client.post(f"/status/jobs/{result.id}").status_code == 405


def test_web_settings_are_checked() -> None:
    from jobstatus.integrations.django import conf

    parsed = conf.parse({"EXPOSE": ["exception"], "PUBLIC": True, "AUTHORIZE": None})
    assert parsed.expose == {"exception"} and parsed.public
    assert conf.parse({"AUTHORIZE": "tests.django_project.auth.may_read"}).authorize is not None
    with pytest.raises(ConfigurationError, match="PUBLIC"):
        conf.parse({"PUBLIC": "yes"})
    with pytest.raises(ConfigurationError, match="AUTHORIZE"):
        conf.parse({"AUTHORIZE": "tests.django_project.auth.nobody"})


# -- the database backend, run by a real db_worker process ---------------------------


@pytest.fixture(scope="module")
def worker_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('worker') / 'status.db'}"


@pytest.fixture(scope="module")
def worker(
    worker_store: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
    ensure_database()
    process = start_worker(worker_store, tmp_path_factory.mktemp("log") / "worker.log")
    yield process
    stop_worker(process)


@pytest.fixture
def on_worker(worker: subprocess.Popen[bytes], worker_store: str) -> str:
    """This process writes and reads the store that the worker writes."""
    assert worker.poll() is None, "the db_worker died"
    jobstatus.configure(store=worker_store)
    return worker_store


@pytest.mark.postgres
@pytest.mark.slow
def test_aenqueue_to_a_worker(on_worker: str) -> None:
    """The database backend's aenqueue sends task_enqueued with asend, to our sync receiver."""
    import asyncio

    async def main() -> str:
        result = await _tasks().count.using(backend="db").aenqueue(3)
        return result.id

    final = jobstatus.get(asyncio.run(main())).wait(timeout=WAIT)
    assert final.status == "completed"
    assert final.progress.current == 3
    assert final["serialized_job"]["name"] == "tests.django_project.tasks.count"


@pytest.mark.postgres
@pytest.mark.slow
def test_a_worker_runs_async_tasks_to_their_end(on_worker: str) -> None:
    tasks = _tasks()
    done = jobstatus.get(tasks.async_count.using(backend="db").enqueue(4)).wait(timeout=WAIT)
    assert done.status == "completed" and (done.progress.current, done.progress.total) == (4, 4)
    failed = jobstatus.get(tasks.async_fails.using(backend="db").enqueue("on the worker"))
    failed = failed.wait(timeout=WAIT)
    assert failed.status == "failed" and failed["step"] == "about to fail"
    assert failed["exception"] == {"class": "ValueError", "message": "on the worker"}


@pytest.mark.postgres
@pytest.mark.slow
def test_a_worker_forced_to_stop_mid_task_records_failed(tmp_path: Path) -> None:
    """db_worker's second SIGTERM raises SystemExit in the task: the job is failed."""
    ensure_database()
    store_url = f"sqlite:///{tmp_path / 'status.db'}"
    jobstatus.configure(store=store_url)
    process = start_worker(store_url, tmp_path / "worker.log", queue="forced")
    try:
        result = _tasks().hangs.using(backend="db", queue_name="forced").enqueue(str(tmp_path))
        _wait_for_file(tmp_path / "ready")
        assert jobstatus.get(result).status == "working"
        deadline = time.monotonic() + WAIT
        while process.poll() is None:
            assert time.monotonic() < deadline, "the worker ignored SIGTERM"
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.5)
        final = jobstatus.get(result)
        assert final.status == "failed"
        assert final["exception"]["class"] == "SystemExit"
    finally:
        stop_worker(process)


# -- a db_worker killed with SIGKILL mid-task (issue 8, "Dead and stuck jobs") -----------

# As in tests/integrations/test_killed_workers.py: the heartbeat thread looks at its jobs
# once a second, so with a 0.3 s interval a live task writes about every second.
HEARTBEAT_INTERVAL = 0.3
STALE_AFTER = 2.0
STARTUP = 60.0  # seconds the worker may take to start and pick the task up on a loaded machine


def _assert_halfway(status: jobstatus.Status) -> None:
    assert status.is_working
    assert (status.progress.current, status.progress.total) == (5, 10)
    assert status["step"] == "halfway"


@pytest.mark.postgres
@pytest.mark.slow
def test_a_worker_killed_mid_task_leaves_the_job_working_then_stale(tmp_path: Path) -> None:
    """SIGKILL (or the out-of-memory killer) lets the worker report nothing: the task
    stays ``working`` with its last progress, and turns stale once its heartbeat stops."""
    ensure_database()
    from django_tasks_db.models import DBTaskResult

    store_url, log = f"sqlite:///{tmp_path / 'status.db'}", tmp_path / "worker.log"
    jobstatus.configure(store=store_url, stale_after=STALE_AFTER)
    heartbeat = {"JOBSTATUS_TEST_HEARTBEAT_INTERVAL": str(HEARTBEAT_INTERVAL)}
    process = start_worker(store_url, log, queue="killed", own_group=True, env=heartbeat)
    result = _tasks().halfway.using(backend="db", queue_name="killed").enqueue(str(tmp_path))
    try:
        # halfway publishes 5 of 10 and waits for a "go" file that never comes.
        working = wait_for(
            result, lambda s: s.is_working and s.get("step") == "halfway", STARTUP, log=log
        )
        _assert_halfway(working)
        # Silent for longer than stale_after, yet fresh: the worker's heartbeat writes.
        alive = stays_fresh(result, STALE_AFTER + 1.0)
        assert alive["updated_at"] > working["updated_at"]

        os.killpg(process.pid, signal.SIGKILL)  # db_worker runs tasks in its own process
        process.wait(timeout=WAIT)
        dead = jobstatus.get(result)
        _assert_halfway(dead)

        stale = wait_for(result, lambda s: s.is_stale, WAIT, log=log)
        _assert_halfway(stale)
        assert stale["updated_at"] == dead["updated_at"]  # nobody wrote after the kill
        batch = jobstatus.Batch([result])
        assert batch.stale == 1
        assert batch.counts["working"] == 1 and batch.status == "working"
    finally:
        stop_worker(process)
        DBTaskResult.objects.filter(id=result.id).delete()  # left RUNNING by the dead worker
