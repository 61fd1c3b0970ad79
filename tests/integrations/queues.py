"""The table of queues the queue contract suite runs against, as ../stores.py's CASES is
for stores.

A :class:`QueueCase` says how to start a real worker of its queue on a fresh queue
of its own (with the broker and the status store of a :class:`Run`), how to
publish a task through the integration, and what the queue supports. A running
:class:`Worker` is how tests reach it. Every queue's test app (``apps/`` and
``tests/django_project/tasks.py``) has the same tasks: ``add``, ``fail``,
``gated`` (progress and a key, then it waits at a gate), ``retry_once``,
``always_fail``, ``swallow``, ``untracked`` (opted out), ``plain_record``
(per-task options) and ``noop``.

Workers are shared: the session fixture ``queue_worker`` (conftest.py) starts one
per run, and pytest groups the tests of a run, so one shared worker runs at a time.
A module picks its runs with :func:`on_workers`.
"""

from __future__ import annotations

import abc
import asyncio
import atexit
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

import jobstatus
from jobstatus._config import store_or_default

from ._stores import store_url, stores_for_second_run
from ._support import (
    APPS,
    ARQ_REDIS_DB,
    CELERY_REDIS_DB,
    DRAMATIQ_REDIS_DB,
    HUEY_REDIS_DB,
    RABBITMQ_URL,
    RQ_REDIS_DB,
    TASKIQ_REDIS_DB,
    TIMEOUT,
    finished,
    pika_url,
    python,
    redis_url,
    require_rabbitmq,
    require_redis,
    scratch_dir,
    start,
    stop,
    unique,
    wait_until,
    worker_env,
)
from ._teardown import purge_store

sys.path.insert(0, str(APPS))

import _gate  # noqa: E402

T = TypeVar("T")

# What a queue may support beyond the lifecycle every queue records.
RETRIES = "retries"  # a task can be retried (the queue's own retries)
OPT_OUT = "opt_out"  # a task can be declared never tracked
PLAIN_PUBLISHER = "plain_publisher"  # jobs published without jobstatus are recorded by the worker
RESULT_AFTER_RECORD = "result_after_record"  # the outcome is recorded before the queue's result
# Cancel and groups (contract/test_cancel.py, test_groups.py). Every queue records a
# cancelled job as cancelled, and takes parent= at publish time; beyond that:
QUEUE_REVOKE = "queue_revoke"  # its own revoke/abort of a queued job records cancelled, and
#                                jobstatus.cancel uses it (a revoker): the queue says revoked
QUEUE_STOP = "queue_stop"  # its own means of stopping a running job record cancelled
QUEUE_GROUPS = "queue_groups"  # its own grouping makes a group under the queue's group id

WARNINGS = ("jobstatus could not", "Error occurred in receiver", "Unexpected failure")


@dataclass(frozen=True, eq=False)
class QueueCase:
    """One queue of the contract suite.

    Attributes:
        name: the queue, also its pytest marker.
        start: starts a worker for a run, with more environment variables; a
            context manager that yields the running :class:`Worker` and removes
            what the run left (queues, results, records).
        runs: the (broker, store) kinds it runs with.
        prefix: what a task's recorded ``name`` is, before the task's own name.
        supports: what it does beyond the lifecycle (RETRIES, OPT_OUT, ...).
        retried: the exception class recorded with a retry of ``retry_once``.
        exhausted: the exception recorded when ``always_fail`` ran out of retries.
        slots: how many tasks its worker runs at once (a job sent once they are all
            busy stays queued until one is free).
        marks: pytest marks of its runs.
    """

    name: str
    start: Callable[[Run, Mapping[str, str]], contextlib.AbstractContextManager[Worker]]
    runs: tuple[tuple[str, str], ...]
    prefix: str
    supports: frozenset[str]
    retried: str = "ConnectionError"
    exhausted: tuple[str, str] = ("ValueError", "always")
    slots: int = 1
    marks: tuple[pytest.MarkDecorator, ...] = ()

    def task_name(self, task: str) -> str:
        """The ``name`` a job of ``task`` is recorded with."""
        return self.prefix + task


@dataclass(frozen=True)
class Run:
    """A queue with one broker and one status store."""

    queue: QueueCase
    broker: str
    store: str

    @property
    def id(self) -> str:
        return f"{self.queue.name}-{self.broker}-broker-{self.store}-store"

    def param(self) -> Any:
        marks = [getattr(pytest.mark, self.queue.name), *self.queue.marks]
        return pytest.param(self, id=self.id, marks=marks)

    def start(
        self, env: Mapping[str, str] | None = None
    ) -> contextlib.AbstractContextManager[Worker]:
        """Start a worker of this run (``env`` adds to its environment)."""
        return self.queue.start(self, env or {})


class Worker(abc.ABC):
    """A running worker of one run, and the ways a test publishes to it."""

    def __init__(self, run: Run, store_url: str, log: Path, process: Any, queue: str) -> None:
        self.run = run
        self.case = run.queue
        self.store_url = store_url
        self.log = log
        self.process = process
        self.queue = queue
        #: What ``serialized_job["queue"]`` holds for this worker's jobs.
        self.recorded_queue: str | None = queue
        self._gates: list[str] = []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.run.id}>"

    def prepare(self) -> None:
        """Before each test: this process reads and publishes with the worker's store."""
        jobstatus.configure(store=self.store_url)

    def gate(self) -> str:
        """A fresh gate for a task to wait at; opened after the test, so no task waits on."""
        name = unique("gate")
        self._gates.append(name)
        return name

    def after_test(self) -> None:
        """Open every gate the test made, so no task waits on."""
        while self._gates:
            _gate.open_gate(self._gates.pop())

    def assert_quiet(self) -> None:
        """The worker logged no jobstatus warning and no failing hook."""
        text = self.log.read_text()
        for warning in WARNINGS:
            assert warning not in text, text

    @abc.abstractmethod
    def send(self, task: str, *args: Any) -> Any:
        """Publish ``task`` through the integration; a handle ``jobstatus.get`` takes."""

    @abc.abstractmethod
    def send_later(self, task: str, *args: Any) -> Any:
        """Publish ``task`` so that it does not start for a while (deferred, or behind
        a busy worker)."""

    @abc.abstractmethod
    def raised(self, handle: Any) -> str:
        """The class name of the exception the queue itself reports for a failed task."""

    def send_plain(self, task: str, *args: Any) -> Any:
        """Publish ``task`` without jobstatus (PLAIN_PUBLISHER)."""
        raise NotImplementedError

    def result(self, handle: Any) -> Any:
        """The task's result, as the queue gives it (RESULT_AFTER_RECORD)."""
        raise NotImplementedError

    def occupy(self) -> list[str]:
        """Make every slot of the worker busy (a ``gated`` job each, working); their
        gates, for :func:`_gate.open_gate`. A job sent next stays queued meanwhile."""
        gates = [self.gate() for _ in range(self.case.slots)]
        jobs = [self.send("gated", gate, 1) for gate in gates]
        for job in jobs:
            wait_until(lambda job=job: jobstatus.get(job).is_working, "a busy slot")
        return gates

    def send_child(self, parent: str, task: str, *args: Any) -> Any:
        """Publish ``task`` with ``parent`` (a group's id) given at publish time, through
        the integration's publish-time options; a bad parent raises ValueError here."""
        raise NotImplementedError

    def revoke(self, handle: Any) -> None:
        """Stop a queued job by the queue's own means (QUEUE_REVOKE)."""
        raise NotImplementedError

    def revoked_by_queue(self, handle: Any) -> bool:
        """Whether the queue itself holds the job as revoked, aborted or cancelled
        (QUEUE_REVOKE): so jobstatus.cancel went through the queue's own means."""
        raise NotImplementedError

    def wait_for_the_revoke(self, handle: Any) -> None:
        """Wait until a revoke the queue broadcasts reached its workers (QUEUE_REVOKE);
        nothing to wait for where the revoke is written where the job waits."""
        return None

    def stop(self, handle: Any) -> None:
        """Stop a running job by the queue's own means (QUEUE_STOP)."""
        raise NotImplementedError

    def send_group(self, task: str, arglists: list[tuple[Any, ...]]) -> tuple[str, list[Any]]:
        """Publish one ``task`` per argument tuple as the queue's own group
        (QUEUE_GROUPS); the queue's group id and the children's handles."""
        raise NotImplementedError


class AsyncWorker(Worker):
    """A worker whose publisher is async: one event loop of its own runs the calls."""

    def __init__(self, *args: Any, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(*args)
        self.loop = loop

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def after_test(self) -> None:
        super().after_test()
        # The test's store goes with the test: its async client on this loop too.
        self.call(store_or_default(None).aclose())

    def close_loop(self) -> None:
        async def cancel_the_rest() -> None:
            rest = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)
            await self.loop.shutdown_asyncgens()

        self.loop.run_until_complete(cancel_the_rest())
        self.loop.close()


def on_workers(*queues: str, supporting: str | None = None) -> pytest.MarkDecorator:
    """Run a module's tests on the runs of ``queues`` (every queue when none is named)
    that support ``supporting``, each with its shared worker (the ``worker`` fixture)."""
    chosen = [
        run.param()
        for run in RUNS
        if (not queues or run.queue.name in queues)
        and (supporting is None or supporting in run.queue.supports)
    ]
    return pytest.mark.parametrize("queue_worker", chosen, indirect=True, scope="session")


def _script(code: str, *args: str) -> list[str]:
    """Run ``code`` in a fresh interpreter (a publisher without jobstatus); its output lines."""
    done = subprocess.run(
        [python(), "-c", code, *args], check=True, capture_output=True, text=True, timeout=60
    )
    return done.stdout.split()


# -- Celery: a prefork worker, two children; results in files -------------------------------

CELERY_RESULTS = Path(tempfile.gettempdir()) / unique("jobstatus-celery-results")
# Read by celery_tasks' app when it is first imported, in this process or a worker's.
os.environ.setdefault("JOBSTATUS_TEST_CELERY_BACKEND", f"file://{CELERY_RESULTS}")
CELERY_RESULTS.mkdir(exist_ok=True)  # the eager tests store results without a worker
atexit.register(shutil.rmtree, CELERY_RESULTS, True)


class CeleryWorker(Worker):
    def __init__(self, *args: Any, app: Any, broker: str) -> None:
        super().__init__(*args)
        self.app = app
        self.broker = broker

    def task(self, name: str) -> Any:
        return self.app.tasks[f"celery_tasks.{name}"]

    def send(self, task: str, *args: Any) -> Any:
        return self.task(task).delay(*args)

    def send_later(self, task: str, *args: Any) -> Any:
        return self.task(task).apply_async(args, countdown=60)

    def raised(self, handle: Any) -> str:
        try:
            handle.get(timeout=TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - the task's own exception
            return type(exc).__name__
        return ""

    def send_plain(self, task: str, *args: Any) -> Any:
        code = (
            "import json, sys; from celery import Celery\n"
            "app = Celery(broker=sys.argv[1])\n"
            "name, args = sys.argv[3], json.loads(sys.argv[4])\n"
            "print(app.send_task(name, args=args, queue=sys.argv[2]).id)\n"
        )
        return _script(code, self.broker, self.queue, f"celery_tasks.{task}", json.dumps(args))[0]

    def result(self, handle: Any) -> Any:
        return handle.get(timeout=TIMEOUT)

    def send_child(self, parent: str, task: str, *args: Any) -> Any:
        from jobstatus.integrations.celery import headers

        return self.task(task).apply_async(args, headers=headers(parent=parent))

    def revoke(self, handle: Any) -> None:
        handle.revoke()

    def wait_for_the_revoke(self, handle: Any) -> None:
        # A revoke is a broadcast: a worker may take the task from its queue before
        # the broadcast reaches it (then jobstatus's start hook refuses it instead).
        def revoked() -> bool:
            replies = self.app.control.inspect(timeout=1.0).revoked() or {}
            return any(handle.id in ids for ids in replies.values())

        wait_until(revoked, "the worker to hold the revoke")

    def revoked_by_queue(self, handle: Any) -> bool:
        from celery.exceptions import TaskRevokedError

        from jobstatus.integrations.celery import REFUSED

        wait_until(lambda: handle.state == "REVOKED", "Celery's revoked result")
        reason = handle.result
        # Revoked by the worker's main process, not refused by jobstatus's start hook.
        return isinstance(reason, TaskRevokedError) and REFUSED not in str(reason)

    def stop(self, handle: Any) -> None:
        handle.revoke(terminate=True)

    def send_group(self, task: str, arglists: list[tuple[Any, ...]]) -> tuple[str, list[Any]]:
        from celery import group

        result = group(self.task(task).s(*args) for args in arglists).apply_async()
        return result.id, list(result.results)


@contextlib.contextmanager
def _celery(run: Run, env: Mapping[str, str]) -> Iterator[Worker]:
    pytest.importorskip("celery")
    require_redis()
    if run.broker == "amqp":
        require_rabbitmq()
    # Results go to files: the Redis result backend can deadlock when an AsyncResult
    # is garbage-collected during a publish (redis-py's PubSub lock is not reentrant).
    CELERY_RESULTS.mkdir(exist_ok=True)
    import celery_tasks

    app = celery_tasks.app
    broker = RABBITMQ_URL if run.broker == "amqp" else redis_url(CELERY_REDIS_DB)
    queue = unique("jobstatus-celery")
    before = (app.conf.broker_url, app.conf.task_default_queue)
    with scratch_dir("celery") as folder:
        url, log = store_url(run.store, folder), folder / "worker.log"
        _point_celery_at(app, broker, queue)
        command = [
            python(), "-m", "celery", "-A", "celery_tasks", "worker", "-Q", queue,
            "-c", "2", "--pool", "prefork", "--without-gossip", "--without-mingle",
            "--without-heartbeat", "-n", f"{queue}@%h", "-l", "info",
        ]  # fmt: skip
        more = {"JOBSTATUS_TEST_CELERY_BROKER": broker, "JOBSTATUS_TEST_CELERY_QUEUE": queue}
        process = start(command, worker_env(url, **more, **env), log)
        try:
            jobstatus.configure(store=url)
            assert celery_tasks.add.delay(1, 2).get(timeout=60) == 3, log.read_text()
            yield CeleryWorker(run, url, log, process, queue, app=app, broker=broker)
        finally:
            stop(process)
            _purge_celery(app, broker, queue)
            _point_celery_at(app, *before)
            purge_store(url)


def _point_celery_at(app: Any, broker: str, queue: str) -> None:
    """Publish from this process to this broker and queue."""
    app.close()
    app.conf.broker_url = broker
    app.conf.task_default_queue = queue
    app.__dict__.pop("amqp", None)  # cached with the old queue and producer pool


def _purge_celery(app: Any, broker: str, queue: str) -> None:
    """Delete the queue, and a killed worker's unacknowledged messages (kombu would
    restore them to the queue an hour later)."""
    with app.connection_for_write() as connection, contextlib.suppress(Exception):
        connection.default_channel.queue_delete(queue)  # or it is already gone
    app.close()
    if not broker.startswith("redis"):
        return
    import redis

    client = redis.Redis.from_url(broker)
    try:
        client.delete(queue, f"_kombu.binding.{queue}")
        for tag, raw in client.hgetall("unacked").items():
            if json.loads(raw)[2] == queue:
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)
    finally:
        client.close()


# -- RQ: ``rq worker`` with the scheduler, forking a work horse per job -------------------


class RQWorker(Worker):
    RETRIES = {"retry_once": (2, 2), "always_fail": (1, 0)}  # (max, interval) given at enqueue

    def __init__(self, *args: Any, rq_queue: Any) -> None:
        super().__init__(*args)
        self.rq_queue = rq_queue

    def _function(self, task: str) -> Any:
        import rq_tasks

        return getattr(rq_tasks, task)

    def _retry(self, task: str) -> Any:
        from rq import Retry

        given = self.RETRIES.get(task)
        return Retry(max=given[0], interval=given[1]) if given else None

    def send(self, task: str, *args: Any) -> Any:
        return self.rq_queue.enqueue(self._function(task), *args, retry=self._retry(task))

    def send_later(self, task: str, *args: Any) -> Any:
        return self.rq_queue.enqueue_in(timedelta(minutes=5), self._function(task), *args)

    def raised(self, handle: Any) -> str:
        wait_until(lambda: handle.latest_result() is not None, "RQ's result")
        last = str(handle.latest_result().exc_string or "").strip().splitlines()[-1]
        return last.split(":")[0].rsplit(".", 1)[-1]

    def send_plain(self, task: str, *args: Any) -> Any:
        from rq import Queue

        plain = Queue(self.queue, connection=self.rq_queue.connection)
        return plain.enqueue(f"rq_tasks.{task}", *args)

    def result(self, handle: Any) -> Any:
        wait_until(lambda: handle.latest_result() is not None, "RQ's result")
        return handle.return_value()

    def another(self, log: Path, **env: str) -> subprocess.Popen[bytes]:
        """One more worker on this queue and store (a dead worker's successor)."""
        return start(_rq_command(self.queue), worker_env(self.store_url, **env), log)

    def send_child(self, parent: str, task: str, *args: Any) -> Any:
        from jobstatus.integrations.rq import PARENT_META

        return self.rq_queue.enqueue(
            self._function(task), *args, retry=self._retry(task), meta={PARENT_META: parent}
        )

    def revoke(self, handle: Any) -> None:
        handle.cancel()

    def revoked_by_queue(self, handle: Any) -> bool:
        return str(handle.get_status(refresh=True)) in ("canceled", "JobStatus.CANCELED")

    def stop(self, handle: Any) -> None:
        from rq.command import send_stop_job_command

        send_stop_job_command(self.rq_queue.connection, handle.id)

    def send_group(self, task: str, arglists: list[tuple[Any, ...]]) -> tuple[str, list[Any]]:
        from rq import Queue
        from rq.group import Group

        rq_group = Group.create(connection=self.rq_queue.connection)
        datas = [Queue.prepare_data(self._function(task), args) for args in arglists]
        return rq_group.name, rq_group.enqueue_many(self.rq_queue, datas)


def _rq_command(queue: str) -> list[str]:
    return [
        str(Path(python()).parent / "rq"), "worker", "-w", "jobstatus.integrations.rq.StatusWorker",
        "--url", redis_url(RQ_REDIS_DB), "--with-scheduler", "--name", unique(queue), queue,
    ]  # fmt: skip


@contextlib.contextmanager
def _rq(run: Run, env: Mapping[str, str]) -> Iterator[Worker]:
    pytest.importorskip("rq")
    require_redis()
    import rq_tasks
    from redis import Redis

    from jobstatus.integrations.rq import StatusQueue

    connection = Redis.from_url(redis_url(RQ_REDIS_DB))
    queue = StatusQueue(unique("jobstatus-rq"), connection=connection)
    with scratch_dir("rq") as folder:
        url, log = store_url(run.store, folder), folder / "worker.log"
        process = start(_rq_command(queue.name), worker_env(url, **env), log)
        try:
            jobstatus.configure(store=url)
            finished(queue.enqueue(rq_tasks.add, 1, 2), timeout=60)
            yield RQWorker(run, url, log, process, queue.name, rq_queue=queue)
        finally:
            stop(process)
            _purge_rq(queue)
            connection.close()
            purge_store(url)


def _purge_rq(queue: Any) -> None:
    """Delete the queue, its registries, their jobs and the workers' keys."""
    registries = (queue.started_job_registry, queue.failed_job_registry)
    jobs = [job for registry in registries for job in registry.get_job_ids(cleanup=False)]
    queue.delete(delete_jobs=True)
    connection = queue.connection
    patterns = [f"rq:*:{queue.name}*", *(f"rq:*{job}*" for job in jobs)]
    keys = [key for pattern in patterns for key in connection.scan_iter(match=pattern, count=1000)]
    if keys:
        connection.delete(*keys)
    workers = [key for key in keys if key.startswith(b"rq:worker:")]
    if workers:
        connection.srem("rq:workers", *workers)


# -- Dramatiq: one process, two threads; the actors' messages go to the run's queue -------


class DramatiqWorker(Worker):
    def __init__(self, *args: Any, broker: Any, broker_url: str, abortable: str = "") -> None:
        super().__init__(*args)
        self.broker = broker
        self.broker_url = broker_url
        #: Where dramatiq-abort's Abortable is, before or after jobstatus's ("": none).
        self.abortable = abortable

    def send_message(self, task: str, *args: Any, **options: Any) -> Any:
        """Send ``task`` with Dramatiq message options (``delay``, ``max_age``, ...)."""
        import dramatiq_tasks

        actor = getattr(dramatiq_tasks, task)
        delay = options.pop("delay", None)  # the broker's argument, not a message option
        message = actor.message_with_options(args=args, **options).copy(queue_name=self.queue)
        return self.broker.enqueue(message, delay=delay)

    def send(self, task: str, *args: Any) -> Any:
        return self.send_message(task, *args)

    def send_later(self, task: str, *args: Any) -> Any:
        return self.send_message(task, *args, delay=300_000)

    def send_child(self, parent: str, task: str, *args: Any) -> Any:
        from jobstatus.integrations.dramatiq import PARENT_OPTION

        return self.send_message(task, *args, **{PARENT_OPTION: parent})

    def send_group(self, task: str, arglists: list[tuple[Any, ...]]) -> tuple[str, list[Any]]:
        import dramatiq
        import dramatiq_tasks

        from jobstatus.integrations.dramatiq import group_id_of

        actor = getattr(dramatiq_tasks, task)
        messages = [actor.message(*args).copy(queue_name=self.queue) for args in arglists]
        dramatiq_group = dramatiq.group(messages, broker=self.broker)
        dramatiq_group.add_completion_callback(
            dramatiq_tasks.group_done.message().copy(queue_name=self.queue)
        )
        dramatiq_group.run()
        group_id = group_id_of(dramatiq_group)
        assert group_id is not None
        return group_id, messages

    def raised(self, handle: Any) -> str:
        from dramatiq.results import ResultFailure, Results

        backend = next(m.backend for m in self.broker.middleware if isinstance(m, Results))
        try:
            handle.get_result(backend=backend, block=True, timeout=int(TIMEOUT * 1000))
        except ResultFailure as exc:
            return str(exc.orig_exc_type)
        return ""

    def send_plain(self, task: str, *args: Any) -> Any:
        code = (
            "import json, sys\n"
            "from dramatiq import Message\n"
            "from dramatiq.brokers.rabbitmq import RabbitmqBroker\n"
            "from dramatiq.brokers.redis import RedisBroker\n"
            "url, queue, name, args = *sys.argv[1:4], json.loads(sys.argv[4])\n"
            "broker = RabbitmqBroker(url=url) if url.startswith('amqp') else RedisBroker(url=url)\n"
            "broker.declare_queue(queue)\n"
            "message = Message(queue_name=queue, actor_name=name, args=tuple(args), kwargs={},\n"
            "                  options={})\n"
            "print(broker.enqueue(message).message_id)\n"
        )
        return _script(code, self.broker_url, self.queue, task, json.dumps(args))[0]


@contextlib.contextmanager
def _dramatiq(run: Run, env: Mapping[str, str]) -> Iterator[Worker]:
    pytest.importorskip("dramatiq")
    require_redis()
    if run.broker == "amqp":
        require_rabbitmq()
    import dramatiq
    import dramatiq_tasks

    broker_url = pika_url(RABBITMQ_URL) if run.broker == "amqp" else redis_url(DRAMATIQ_REDIS_DB)
    queue = unique("jobstatus-dramatiq")
    abortable = env.get(dramatiq_tasks.ABORT_OPTION, "")
    broker = dramatiq_tasks.make_broker(broker_url, abortable=abortable)
    for actor in vars(dramatiq_tasks).values():
        if isinstance(actor, dramatiq.Actor):
            broker.declare_actor(actor)
    broker.declare_queue(queue)
    with scratch_dir("dramatiq") as folder:
        url, log = store_url(run.store, folder), folder / "worker.log"
        more = {
            "JOBSTATUS_TEST_DRAMATIQ_BROKER": broker_url,
            "JOBSTATUS_TEST_DRAMATIQ_QUEUE": queue,
        }
        command = [python(), "-m", "dramatiq", "dramatiq_tasks", "-p", "1", "-t", "2", "-Q", queue]
        process = start(command, worker_env(url, **more, **env), log)
        worker = DramatiqWorker(
            run, url, log, process, queue, broker=broker, broker_url=broker_url, abortable=abortable
        )
        try:
            jobstatus.configure(store=url)
            finished(worker.send("add", 1, 2), timeout=60)
            yield worker
        finally:
            stop(process)
            _purge_dramatiq(broker, run.broker, queue, dramatiq_tasks.QUEUE)
            purge_store(url)


def _purge_dramatiq(broker: Any, kind: str, *queues: str) -> None:
    """Delete the queues, and a killed worker's unacknowledged messages."""
    for queue in queues:
        with contextlib.suppress(Exception):
            broker.flush(queue)
        if kind == "amqp":
            for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
                with contextlib.suppress(Exception):
                    broker.channel.queue_delete(name)
    if kind != "amqp":
        client = broker.client
        keys = [key for queue in queues for key in client.scan_iter(match=f"dramatiq:*{queue}*")]
        if keys:
            client.delete(*keys)
        # Acks are kept as "dramatiq:__acks__.<worker id>.<queue>": forget a dead worker too.
        dead = [key.decode().split(".")[1] for key in keys if b"__acks__" in key]
        if dead:
            client.zrem("dramatiq:__heartbeats__", *dead)
    broker.close()


# -- Huey: a consumer with two worker threads, on RedisHuey or SqliteHuey ------------------


class HueyWorker(Worker):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.recorded_queue = None  # a Huey task names no queue

    def _task(self, task: str) -> Any:
        import huey_app

        return getattr(huey_app, task)

    def send(self, task: str, *args: Any) -> Any:
        return self._task(task)(*args)

    def send_later(self, task: str, *args: Any) -> Any:
        return self._task(task).schedule(args, delay=60)

    def send_child(self, parent: str, task: str, *args: Any) -> Any:
        from jobstatus.integrations.huey import children_of

        with children_of(parent):
            return self.send(task, *args)

    def revoke(self, handle: Any) -> None:
        handle.revoke()

    def revoked_by_queue(self, handle: Any) -> bool:
        # Huey forgets a revoke-once as the consumer skips the task: its log tells.
        wait_until(lambda: "was revoked, not executing" in self.log.read_text(), "the skip")
        lines = self.log.read_text().splitlines()
        return any(handle.id in line and "was revoked" in line for line in lines)

    def raised(self, handle: Any) -> str:
        from huey.exceptions import TaskException

        try:
            handle.get(blocking=True, timeout=TIMEOUT)
        except TaskException as exc:
            return str(exc.metadata.get("error", "")).split("(")[0]
        return ""


@contextlib.contextmanager
def _huey(run: Run, env: Mapping[str, str]) -> Iterator[Worker]:
    pytest.importorskip("huey")
    require_redis()  # the gate, and RedisHuey
    import huey_app
    from huey.storage import RedisStorage, SqliteStorage

    huey, before = huey_app.huey, (huey_app.huey.name, huey_app.huey.storage)
    name = unique("jobstatus-huey")
    with scratch_dir("huey") as folder:
        url, log, huey_file = (
            store_url(run.store, folder),
            folder / "consumer.log",
            folder / "huey.db",
        )
        huey.name = name
        huey.storage = (
            SqliteStorage(name, filename=str(huey_file))
            if run.broker == "sqlite"
            else RedisStorage(name, url=redis_url(HUEY_REDIS_DB), notify_result=True)
        )
        more = {
            "JOBSTATUS_TEST_HUEY_KIND": run.broker,
            "JOBSTATUS_TEST_HUEY_NAME": name,
            "JOBSTATUS_TEST_HUEY_FILE": str(huey_file),
            "JOBSTATUS_TEST_HUEY_REDIS": redis_url(HUEY_REDIS_DB),
        }
        command = [
            python(), "-m", "huey.bin.huey_consumer", "huey_app.huey",
            "-w", "2", "-k", "thread", "-s", "1", "-d", "0.05",
        ]  # fmt: skip
        process = start(command, worker_env(url, **more, **env), log)
        try:
            jobstatus.configure(store=url)
            _wait_for_huey(huey_app, process, log)
            yield HueyWorker(run, url, log, process, name)
        finally:
            stop(process)
            huey.storage.flush_all()
            _delete_huey_notifications(huey.storage)
            huey.storage.close()  # its SQLite connection, else closed by the garbage collector
            huey.name, huey.storage = before
            purge_store(url)


def _wait_for_huey(huey_app: Any, process: Any, log: Path) -> None:
    from huey.exceptions import ResultTimeout

    result = huey_app.add(1, 2)
    for _ in range(60):
        if process.poll() is not None:
            raise AssertionError(f"the consumer exited:\n{log.read_text()}")
        with contextlib.suppress(ResultTimeout):
            assert result.get(blocking=True, timeout=1) == 3
            return
    raise AssertionError(f"the consumer did not run a task:\n{log.read_text()}")


def _delete_huey_notifications(storage: Any) -> None:
    """RedisHuey's result notifications of results nobody waited for (flush_all keeps them)."""
    from huey.storage import RedisStorage

    if isinstance(storage, RedisStorage):
        client = storage.conn
        keys = list(client.scan_iter(match=f"{storage.notify_prefix}*", count=1000))
        if keys:
            client.delete(*keys)


# -- arq: ``python -m arq`` on Redis; publishing is async --------------------------------


ARQ_COMMAND = [python(), "-m", "arq", "arq_app.WorkerSettings"]


class ArqWorker(AsyncWorker):
    def __init__(self, *args: Any, loop: asyncio.AbstractEventLoop, pool: Any) -> None:
        super().__init__(*args, loop=loop)
        self.pool = pool
        self.environment: dict[str, str] = {}

    def another(self, log: Path) -> subprocess.Popen[bytes]:
        """One more worker on this queue and store (the next one after a shutdown)."""
        return start(ARQ_COMMAND, self.environment, log)

    def send(self, task: str, *args: Any, **options: Any) -> Any:
        from jobstatus.integrations.arq import enqueue_job

        return self.call(enqueue_job(self.pool, task, *args, **options))

    def send_later(self, task: str, *args: Any) -> Any:
        return self.send(task, *args, _defer_by=60)

    def send_child(self, parent: str, task: str, *args: Any) -> Any:
        return self.send(task, *args, _parent=parent)

    def stop(self, handle: Any) -> None:
        assert self.call(handle.abort(timeout=TIMEOUT, poll_delay=0.1))

    def raised(self, handle: Any) -> str:
        try:
            self.call(handle.result(timeout=TIMEOUT))
        except Exception as exc:  # noqa: BLE001 - the task's own exception
            return type(exc).__name__
        return ""

    def send_plain(self, task: str, *args: Any) -> Any:
        return self.call(self.pool.enqueue_job(task, *args))

    def result(self, handle: Any) -> Any:
        return self.call(handle.result(timeout=TIMEOUT))


@contextlib.contextmanager
def _arq(run: Run, env: Mapping[str, str]) -> Iterator[Worker]:
    pytest.importorskip("arq")
    require_redis()
    from arq import create_pool
    from arq.connections import RedisSettings

    queue, broker = unique("jobstatus-arq"), redis_url(ARQ_REDIS_DB)
    with scratch_dir("arq") as folder:
        url, log = store_url(run.store, folder), folder / "worker.log"
        more = {"JOBSTATUS_TEST_ARQ_REDIS": broker, "JOBSTATUS_TEST_ARQ_QUEUE": queue}
        worker_environment = worker_env(url, **more, **env)
        process = start(ARQ_COMMAND, worker_environment, log)
        loop = asyncio.new_event_loop()
        pool = loop.run_until_complete(
            create_pool(RedisSettings.from_dsn(broker), default_queue_name=queue)
        )
        worker = ArqWorker(run, url, log, process, queue, loop=loop, pool=pool)
        worker.environment = worker_environment
        try:
            jobstatus.configure(store=url)
            assert worker.result(worker.send_plain("add", 1, 2)) == 3, log.read_text()
            worker.after_test()
            yield worker
        finally:
            stop(process)
            worker.call(_purge_arq(pool))
            worker.call(pool.aclose())
            worker.close_loop()
            purge_store(url)


async def _purge_arq(pool: Any) -> None:
    """Remove what the run left in arq's Redis database (its queue and its jobs)."""
    from arq.constants import (
        in_progress_key_prefix,
        job_key_prefix,
        result_key_prefix,
        retry_key_prefix,
    )

    queue = pool.default_queue_name
    ids = [raw.decode() for raw in await pool.zrange(queue, 0, -1)]
    async for key in pool.scan_iter(match=f"{result_key_prefix}*"):
        ids.append(key.decode().removeprefix(result_key_prefix))
    prefixes = (job_key_prefix, retry_key_prefix, result_key_prefix, in_progress_key_prefix)
    keys = [prefix + job_id for job_id in ids for prefix in prefixes]
    await pool.delete(queue, f"{queue}:health-check", *keys)


# -- Taskiq: ``taskiq worker`` on taskiq-redis, one task at a time; publishing is async ---


class TaskiqWorker(AsyncWorker):
    def __init__(self, *args: Any, loop: asyncio.AbstractEventLoop, broker: Any) -> None:
        super().__init__(*args, loop=loop)
        self.broker = broker  # this worker's publisher, on its loop

    def _task(self, task: str) -> Any:
        import taskiq_app

        return getattr(taskiq_app, task)

    def send(self, task: str, *args: Any) -> Any:
        return self.call(self._task(task).kicker().with_broker(self.broker).kiq(*args))

    def send_later(self, task: str, *args: Any) -> Any:
        # Taskiq has no delay of its own: the worker's one slot is taken first.
        busy = self.send("gated", self.gate(), 1)
        wait_until(lambda: jobstatus.get(busy).is_working, "the worker to be busy")
        return self.send(task, *args)

    def raised(self, handle: Any) -> str:
        result = self.call(handle.wait_result(timeout=TIMEOUT))
        return type(result.error).__name__ if result.is_err else ""

    def send_child(self, parent: str, task: str, *args: Any) -> Any:
        from jobstatus.integrations.taskiq import PARENT_LABEL

        kicker = self._task(task).kicker().with_broker(self.broker)
        return self.call(kicker.with_labels(**{PARENT_LABEL: parent}).kiq(*args))

    def send_plain(self, task: str, *args: Any) -> Any:
        from taskiq_redis import ListQueueBroker

        sender = ListQueueBroker(redis_url(TASKIQ_REDIS_DB), queue_name=self.queue)

        async def send() -> Any:
            await sender.startup()
            try:
                return await self._task(task).kicker().with_broker(sender).kiq(*args)
            finally:
                await sender.shutdown()

        return self.call(send())

    def result(self, handle: Any) -> Any:
        return self.call(handle.wait_result(timeout=TIMEOUT)).return_value


@contextlib.contextmanager
def _taskiq(run: Run, env: Mapping[str, str]) -> Iterator[Worker]:
    pytest.importorskip("taskiq_redis")
    require_redis()
    import taskiq_app

    queue = unique("jobstatus-taskiq")
    broker = taskiq_app.make_broker(queue)  # the worker's queue; this test's own loop
    broker.local_task_registry.update(taskiq_app.broker.local_task_registry)  # its options
    with scratch_dir("taskiq") as folder:
        url, log = store_url(run.store, folder), folder / "worker.log"
        more = {
            "JOBSTATUS_TEST_TASKIQ_REDIS": redis_url(TASKIQ_REDIS_DB),
            "JOBSTATUS_TEST_TASKIQ_QUEUE": queue,
        }
        command = [
            python(), "-m", "taskiq", "worker", "taskiq_app:broker",
            "--workers", "1", "--max-async-tasks", "1", "--shutdown-timeout", "2",
            "--wait-tasks-timeout", "1",
        ]  # fmt: skip
        process = start(command, worker_env(url, **more, **env), log)
        loop = asyncio.new_event_loop()
        worker = TaskiqWorker(run, url, log, process, queue, loop=loop, broker=broker)
        try:
            worker.call(broker.startup())
            jobstatus.configure(store=url)
            assert worker.result(worker.send("add", 1, 2)) == 3, log.read_text()
            worker.after_test()
            yield worker
        finally:
            # Its main process does not exit on SIGTERM or SIGINT (taskiq 0.12).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)
            stop(process)
            worker.call(broker.shutdown())
            worker.close_loop()
            _purge_taskiq(queue)
            purge_store(url)


def _purge_taskiq(queue: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url(TASKIQ_REDIS_DB))
    try:
        client.delete(queue, *client.scan_iter(match=f"{queue}:*", count=1000))
    finally:
        client.close()


# -- Django: a ``db_worker`` of django-tasks-db on PostgreSQL ------------------------------

DJANGO_QUEUE = "contract"  # one of the db backend's QUEUES in tests/django_project/settings.py


class DjangoWorker(Worker):
    TASKS = {"fail": "fails"}  # the test project's names where they differ

    def prepare(self) -> None:
        from jobstatus.integrations.django import conf

        conf.load()  # JOBSTATUS's options, as the worker has them
        super().prepare()

    def _task(self, task: str, **options: Any) -> Any:
        from ..django_project import tasks

        found = getattr(tasks, self.TASKS.get(task, task))
        return found.using(backend="db", queue_name=self.queue, **options)

    def send(self, task: str, *args: Any) -> Any:
        return self._task(task).enqueue(*args)

    def send_child(self, parent: str, task: str, *args: Any) -> Any:
        from jobstatus.integrations.django import in_group

        with in_group(parent):
            return self.send(task, *args)

    def send_later(self, task: str, *args: Any) -> Any:
        from django.utils import timezone

        return self._task(task, run_after=timezone.now() + timedelta(minutes=5)).enqueue(*args)

    def raised(self, handle: Any) -> str:
        def ended() -> bool:
            handle.refresh()
            return str(getattr(handle.status, "value", handle.status)) in ("FAILED", "SUCCESSFUL")

        wait_until(ended, "the task's result")
        return (
            str(handle.errors[-1].exception_class_path).rsplit(".", 1)[-1] if handle.errors else ""
        )


@contextlib.contextmanager
def _django(run: Run, env: Mapping[str, str]) -> Iterator[Worker]:
    from ..django_project.harness import ensure_database, start_worker, stop_worker

    ensure_database()
    from django_tasks_db.models import DBTaskResult

    with scratch_dir("django") as folder:
        url = store_url(run.store, folder) if run.store == "sqlite" else "django-db://default"
        log = folder / "worker.log"
        process = start_worker(url, log, queue=DJANGO_QUEUE, own_group=True, env=env)
        worker = DjangoWorker(run, url, log, process, DJANGO_QUEUE)
        try:
            worker.prepare()
            finished(worker.send("add", 1, 2), timeout=60)
            yield worker
        finally:
            stop_worker(process)
            DBTaskResult.objects.filter(queue_name=DJANGO_QUEUE).delete()
            if run.store == "django-db":
                from jobstatus.integrations.django.models import JobStatusRecord

                JobStatusRecord.objects.all().delete()


# -- the table ------------------------------------------------------------------------------

SECOND = stores_for_second_run()  # Redis when its store exists, else SQLite

QUEUES = [
    QueueCase(
        "celery",
        _celery,
        runs=(("redis", "sqlite"), ("amqp", SECOND)),
        prefix="celery_tasks.",
        supports=frozenset(
            {RETRIES, OPT_OUT, PLAIN_PUBLISHER, RESULT_AFTER_RECORD}
            | {QUEUE_REVOKE, QUEUE_STOP, QUEUE_GROUPS}
        ),
        slots=2,
    ),
    QueueCase(
        "rq",
        _rq,
        runs=(("redis", "sqlite"), ("redis", SECOND)),
        prefix="rq_tasks.",
        supports=frozenset(
            {RETRIES, OPT_OUT, PLAIN_PUBLISHER, RESULT_AFTER_RECORD}
            | {QUEUE_REVOKE, QUEUE_STOP, QUEUE_GROUPS}
        ),
    ),
    QueueCase(
        "dramatiq",
        _dramatiq,
        runs=(("redis", "sqlite"), ("amqp", SECOND)),
        prefix="",
        supports=frozenset({RETRIES, OPT_OUT, PLAIN_PUBLISHER, QUEUE_GROUPS}),
        slots=2,
    ),
    QueueCase(
        "huey",
        _huey,
        runs=(("redis", "sqlite"), ("sqlite", SECOND)),
        prefix="huey_app.",
        supports=frozenset({RETRIES, OPT_OUT, QUEUE_REVOKE}),
        slots=2,
    ),
    QueueCase(
        "arq",
        _arq,
        runs=(("redis", "sqlite"), ("redis", SECOND)),
        prefix="",
        supports=frozenset({RETRIES, OPT_OUT, PLAIN_PUBLISHER, RESULT_AFTER_RECORD, QUEUE_STOP}),
        retried="arq.worker.Retry",
        exhausted=("arq.worker.JobExecutionFailed", "max 2 retries exceeded"),
        slots=4,
    ),
    QueueCase(
        "taskiq",
        _taskiq,
        runs=(("redis", "sqlite"), ("redis", SECOND)),
        prefix="",
        supports=frozenset({RETRIES, OPT_OUT, PLAIN_PUBLISHER, RESULT_AFTER_RECORD}),
    ),
    QueueCase(
        "django",
        _django,
        runs=(("postgres", "sqlite"), ("postgres", "django-db")),
        prefix="tests.django_project.tasks.",
        supports=frozenset(),  # django.tasks has no retries, and every task is tracked
        marks=(pytest.mark.postgres, pytest.mark.slow),
    ),
]

RUNS = [Run(case, broker, store) for case in QUEUES for broker, store in case.runs]


def run_of(queue: str, broker: str | None = None) -> Run:
    """The first run of ``queue`` (with that broker, when given)."""
    return next(run for run in RUNS if run.queue.name == queue and broker in (None, run.broker))
