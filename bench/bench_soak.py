"""Soak: 100,000 short jobs through a real Celery worker, watching the worker for leaks.

    python -m bench.bench_soak

Two solo Celery workers (Redis broker) run side by side, each fed 100,000
no-op tasks in chunks of 1,000 by its own thread; the next chunk is published
while the last one runs, so the worker never waits:

- **tracked**: the worker's app is tracked with
  ``jobstatus.integrations.celery.track`` (``includes={"status", "exception",
  "serialized_job"}``), statuses in the Redis store. A chunk is done when
  ``jobstatus.Batch`` reads every member ``completed``: none lost, none failed.
- **plain**: the same worker without jobstatus. A chunk ends with a task that
  sets a key; the solo pool runs tasks in order, so all before it have run.

Tasks are published as the messages Celery's ``send_task`` makes, pushed 1,000
per round trip (see ``Messages``), so the publisher does not take the CPU the
workers need. The workers run ``--pool=solo``: one process receives, runs and
acknowledges the tasks and holds every connection, so its figures are the
whole worker's and no pool IPC is measured; jobstatus's worker-side code (the
task_prerun and task_postrun handlers) is the same as in a prefork child
(tests/test_soak.py covers the prefork pool).

Each worker process is sampled before the first job, after a warm-up of 2,000
jobs, then every 10,000 jobs: CPU time, RSS (``VmRSS``), threads
(``/proc/PID/task``), open fds (``/proc/PID/fd``), its TCP connections to
Redis (its socket fds found in ``/proc/net/tcp``), and ``CLIENT LIST`` entries
by client name (the broker's connections and jobstatus's store connections
are named apart).

The broker is Redis database 10 (flushed at the end); statuses go to database
0 under a unique prefix, deleted at the end. Needs Redis on 127.0.0.1:6379
(JOBSTATUS_TEST_REDIS_URL). Takes about six minutes on an idle 2-core machine;
``BENCH_SOAK_JOBS=10000`` makes a quick check.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ._harness import RESULTS, machine
from ._workers import ROOT, unique
from ._workers import env as _env

APPS = Path(__file__).parent / "apps"
REDIS_URL = os.environ.get("JOBSTATUS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BROKER_DB = 10
JOBS = int(os.environ.get("BENCH_SOAK_JOBS", "100000"))
CHUNK = 1_000
WARM_UP = 2_000
SAMPLE_EVERY = 10_000
CHUNK_TIMEOUT = 120.0  # seconds one chunk may take on a loaded machine


def redis_db(db: int) -> str:
    """The Redis URL with another database number."""
    return urlunsplit(urlsplit(REDIS_URL)._replace(path=f"/{db}"))


# -- what one look at the worker sees ----------------------------------------------------


@dataclass
class Sample:
    """The worker process after ``jobs`` jobs."""

    jobs: int
    cpu_seconds: float  # user + system time the process has used so far
    rss_kib: int
    threads: int
    fds: int
    redis_sockets: int  # the process's TCP connections to the Redis port
    broker_clients: int  # CLIENT LIST entries named as the worker's broker connections
    store_clients: int  # CLIENT LIST entries named as the worker's jobstatus connections


def rss_kib(pid: int) -> int:
    """The process's resident set size, from /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def socket_inodes(pid: int) -> set[str]:
    """The inodes of the process's open sockets."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed while we looked
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    return inodes


def tcp_inodes_to(port: int) -> set[str]:
    """Inodes of established TCP connections whose remote port is ``port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if remote_port == port and fields[3] == "01":  # 01: ESTABLISHED
                    inodes.add(fields[9])
    return inodes


def client_names(redis: Any) -> dict[str, int]:
    """How many connections Redis has under each client name."""
    counts: dict[str, int] = {}
    for client in redis.client_list():
        counts[client["name"]] = counts.get(client["name"], 0) + 1
    return counts


@dataclass
class Watched:
    """A worker process to sample, and the client names its connections carry."""

    pid: int
    broker_name: str
    store_name: str

    def sample(self, jobs: int, redis: Any) -> Sample:
        port = urlsplit(REDIS_URL).port or 6379
        names = client_names(redis)
        return Sample(
            jobs=jobs,
            cpu_seconds=cpu_seconds(self.pid),
            rss_kib=rss_kib(self.pid),
            threads=len(os.listdir(f"/proc/{self.pid}/task")),
            fds=len(os.listdir(f"/proc/{self.pid}/fd")),
            redis_sockets=len(socket_inodes(self.pid) & tcp_inodes_to(port)),
            broker_clients=names.get(self.broker_name, 0),
            store_clients=names.get(self.store_name, 0),
        )


# -- one soak run ----------------------------------------------------------------------

# Publishes a chunk of this many jobs; returns a call that waits for the chunk to
# have run and returns how many of its jobs completed.
Publish = Callable[[int], Callable[[], int]]


@dataclass
class Feed:
    """One worker under soak: how to publish to it, and its process to sample."""

    side: str
    publish: Publish
    watched: Watched


@dataclass
class Soak:
    """One worker's run: its samples, how long the jobs took, how many completed."""

    side: str
    samples: list[Sample]
    seconds: float
    completed: int


def soak(feed: Feed, redis: Any) -> Soak:
    """Feed JOBS jobs to one worker in chunks, sampling it on the way."""
    samples = [feed.watched.sample(0, redis)]
    in_flight: deque[Callable[[], int]] = deque()
    done = completed = 0
    started = time.monotonic()
    while done < JOBS:
        size = min(CHUNK, JOBS - done)
        in_flight.append(feed.publish(size))
        done += size
        sample_due = done in (WARM_UP, JOBS) or done % SAMPLE_EVERY == 0
        # One chunk runs while the next is published, so the worker never idles;
        # before a sample every chunk has run.
        while len(in_flight) > (0 if sample_due else 1):
            completed += in_flight.popleft()()
        if sample_due:
            samples.append(feed.watched.sample(done, redis))
            print(f"   {feed.side}: {samples[-1]}", file=sys.stderr, flush=True)
    return Soak(feed.side, samples, time.monotonic() - started, completed)


def wait_until_connected(redis: Any, name: str) -> None:
    """Wait until a worker has connected to its broker (its named connections show)."""
    deadline = time.monotonic() + 60
    while client_names(redis).get(name, 0) == 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the worker {name!r} did not connect to its broker")
        time.sleep(0.1)


# -- Celery --------------------------------------------------------------------------------


@contextlib.contextmanager
def celery_worker(tracked: bool, store: str, queue: str, broker: str) -> Iterator[Watched]:
    """A solo Celery worker on ``queue``, connected to its broker."""
    command = [
        sys.executable, "-m", "celery", "-A", "celery_soak", "worker", "--pool", "solo",
        "-Q", queue, "-n", f"{queue}@%h", "--without-gossip", "--without-mingle",
        "--without-heartbeat", "-l", "warning",
    ]  # fmt: skip
    names = f"{queue}-broker", f"{queue}-store"
    environment = _env(
        f"{store}&client_name={names[1]}",
        APPS,
        BENCH_TRACKED="1" if tracked else "0",
        BENCH_BROKER=broker,
        BENCH_CLIENT_NAME=names[0],
    )
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command, env=environment, cwd=ROOT, start_new_session=True,
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            yield Watched(process.pid, *names)
        except BaseException:
            log.seek(0)
            print(log.read().decode(errors="replace")[-3000:], file=sys.stderr)
            raise
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


class Messages:
    """Publishes no-op Celery tasks 1,000 per round trip: LPUSHes of the message
    ``send_task`` makes (one it made is the template), with fresh ids.

    Celery's own ``send_task`` costs about 1 ms of the publisher's CPU per task
    on this machine (1.6 ms with jobstatus recording queued), which would take
    as much CPU as the workers; the workers receive exactly what it would send.
    """

    def __init__(self, client: Any, broker: Any) -> None:
        self.client = client
        self.broker = broker
        scratch = unique("soak-template")
        client.send_task("soak.template", queue=scratch)
        self.template = json.loads(broker.rpop(scratch))

    def message(self, name: str, queue: str) -> tuple[str, str]:
        """A task id and the message that runs the no-argument task ``name`` under it."""
        task_id = str(uuid.uuid4())
        message = copy.deepcopy(self.template)
        message["headers"].update(task=name, id=task_id, root_id=task_id)
        properties = message["properties"]
        properties.update(correlation_id=task_id, delivery_tag=str(uuid.uuid4()))
        properties["delivery_info"]["routing_key"] = queue
        return task_id, json.dumps(message)

    def publish(self, name: str, queue: str, count: int) -> list[str]:
        """Send ``count`` tasks ``name`` to ``queue``; return their ids."""
        pairs = [self.message(name, queue) for _ in range(count)]
        self.broker.lpush(queue, *(message for _, message in pairs))
        return [task_id for task_id, _ in pairs]


def publish_tracked(messages: Messages, queue: str) -> Publish:
    """A chunk has run when every member reads completed (none lost, none failed)."""
    import jobstatus

    def publish(size: int) -> Callable[[], int]:
        batch = jobstatus.Batch(messages.publish("soak.noop", queue, size))

        def wait() -> int:
            deadline = time.monotonic() + CHUNK_TIMEOUT
            while True:
                counts = batch.refresh().counts
                if counts["completed"] == size:
                    return size
                if counts["failed"] or time.monotonic() > deadline:
                    raise RuntimeError(f"a chunk of {size} jobs ended as {counts}")
                time.sleep(0.05)

        return wait

    return publish


def publish_plain(messages: Messages, queue: str) -> Publish:
    """A chunk has run when the mark task after it has set its key (the pool runs in order)."""

    def publish(size: int) -> Callable[[], int]:
        messages.publish("soak.noop_plain", queue, size)
        key = f"{queue}:mark:{uuid.uuid4().hex}"
        messages.client.send_task("soak.mark", (key,), queue=queue)

        def wait() -> int:
            deadline = time.monotonic() + CHUNK_TIMEOUT
            while not messages.broker.exists(key):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"a chunk of {size} plain jobs did not finish in time")
                time.sleep(0.02)
            return size

        return wait

    return publish


def soak_celery(redis: Any, store: str) -> list[Soak]:
    """The tracked and the plain worker, soaked side by side (one thread each)."""
    from celery import Celery
    from redis import Redis

    broker_url = redis_db(BROKER_DB)
    client = Celery("soak-client", broker=broker_url, set_as_current=False)
    broker = Redis.from_url(broker_url)
    messages = Messages(client, broker)
    tracked_queue, plain_queue = unique("soak-tracked"), unique("soak-plain")
    try:
        with (
            celery_worker(True, store, tracked_queue, broker_url) as tracked,
            celery_worker(False, store, plain_queue, broker_url) as plain,
        ):
            wait_until_connected(redis, tracked.broker_name)
            wait_until_connected(redis, plain.broker_name)
            feeds = [
                Feed("tracked", publish_tracked(messages, tracked_queue), tracked),
                Feed("plain", publish_plain(messages, plain_queue), plain),
            ]
            with ThreadPoolExecutor(len(feeds)) as pool:
                return list(pool.map(lambda feed: soak(feed, redis), feeds))
    finally:
        broker.close()
        client.close()


# -- results ---------------------------------------------------------------------------------


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def summary_row(run: Soak) -> str:
    """start (after the warm-up) -> end, for each figure of one run."""
    start, end = run.samples[1], run.samples[-1]

    def pair(name: str) -> str:
        return f"{getattr(start, name)} → {getattr(end, name)}"

    growth = end.rss_kib - start.rss_kib
    cpu_ms = (end.cpu_seconds - run.samples[0].cpu_seconds) * 1e3 / max(1, end.jobs)
    return (
        f"| {run.side} | {end.jobs:,} ({run.completed:,} completed) | {run.seconds:.0f} s "
        f"({end.jobs / run.seconds:,.0f} jobs/s) | {cpu_ms:.2f} ms "
        f"| {mib(start.rss_kib)} → {mib(end.rss_kib)} "
        f"({growth / 1024:+.1f} MiB, {growth * 1024 / max(1, end.jobs - start.jobs):.1f} B/job) "
        f"| {pair('threads')} | {pair('fds')} | {pair('redis_sockets')} "
        f"| {pair('broker_clients')} / {pair('store_clients')} |"
    )


def series(run: Soak) -> list[str]:
    """One line per sample: the figures after each 10,000 jobs."""
    lines = [
        f"{run.side} worker:",
        "",
        "| jobs | RSS | threads | fds | Redis sockets | broker / jobstatus clients |",
        "|---|---|---|---|---|---|",
    ]
    for s in run.samples:
        lines.append(
            f"| {s.jobs:,} | {mib(s.rss_kib)} | {s.threads} | {s.fds} | {s.redis_sockets} "
            f"| {s.broker_clients} / {s.store_clients} |"
        )
    return [*lines, ""]


def report_soak(runs: list[Soak]) -> str:
    """Print the start/end table and each run's series; save them under bench/results/."""
    lines = [
        f"### Soak: {JOBS:,} no-op jobs through a solo Celery worker (Redis broker), "
        "with and without jobstatus",
        "",
        f"Machine: {machine()}",
        "",
        f"Start is after a warm-up of {WARM_UP:,} jobs; end is after the last job. "
        "Both workers ran at the same time, each fed by its own thread.",
        "",
        "| worker | jobs | duration | worker CPU per job | RSS start → end (growth) "
        "| threads | fds | Redis sockets | CLIENT LIST broker / jobstatus |",
        "|---|---|---|---|---|---|---|---|---|",
        *(summary_row(run) for run in runs),
        "",
    ]
    for run in runs:
        lines += series(run)
    table = "\n".join(lines)
    print(table, flush=True)
    RESULTS.mkdir(exist_ok=True)
    payload = {"machine": machine(), "runs": [asdict(run) for run in runs]}
    (RESULTS / "soak.json").write_text(json.dumps(payload, indent=2))
    (RESULTS / "soak.md").write_text(table + "\n")
    return table


def clean_up(redis: Any, prefix: str) -> None:
    """Delete the statuses under ``prefix`` and flush the broker's database."""
    from redis import Redis

    keys = list(redis.scan_iter(match=f"{prefix}*", count=10_000))
    for start in range(0, len(keys), 10_000):
        redis.unlink(*keys[start : start + 10_000])
    with Redis.from_url(redis_db(BROKER_DB)) as broker:
        broker.flushdb()


def main() -> None:
    from redis import Redis

    import jobstatus

    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    prefix = f"{unique('bench-soak')}:"
    store = f"{REDIS_URL}{'&' if '?' in REDIS_URL else '?'}prefix={prefix}"
    jobstatus.configure(store=f"{store}&client_name={prefix[:-1]}-bench")
    try:
        runs = soak_celery(redis, store)
    finally:
        clean_up(redis, prefix)
    report_soak(runs)


if __name__ == "__main__":
    main()
