"""Faults injected into Redis, PostgreSQL and memcached while a job writes, and counted.

Two kinds (a server restart is each store's own outage test):

* connections dropped by the server: Redis ``CLIENT KILL``, PostgreSQL
  ``pg_terminate_backend``, memcached's ``idle_timeout`` (it has no kill command);
* the server paused with SIGSTOP for longer than the store's timeout, then SIGCONT.

Each test runs a tracked job of ``STEPS`` increments (one write each:
``throttle_interval=0``) and a few ``status[k] = v`` sets, wraps the store's
``write`` to time every call and count what failed, and checks what a user
sees: the job completes, no call outlasts its bound, one warning, the final
record is right, and no increment counts twice: a write the client gave up on
may still run when the server wakes, and the core sends it again, but with
the same origin, which the store applies once. The tallies are printed at the
end of the module (``-s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import subprocess
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import jobstatus
from jobstatus import StoreError
from jobstatus._config import settings
from jobstatus._record import Change
from jobstatus.stores.base import Store, Written

from ._own_servers import MemcachedServer, PostgresServer, wait_for_port
from ._redis_servers import RedisServer, need_redis_server

# Faults leave unclosed connections to the garbage collector, while they are under way
# and after (see _collect_what_faults_leave).
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

TIMEOUT = 1.0  # the stores' timeout option, seconds
PAUSE = 4.0  # seconds a server stays stopped: longer than CALL_BOUND, so a hang shows
STEPS = 200  # increments the job makes
SETS = (0, 60, 120, 180)  # steps at which the job sets a key
CHECKPOINTS = (50, 100, 150)  # steps at which a drop fault is injected
# A call may wait TIMEOUT twice (a new connection's handshake, then the reply),
# plus a margin for a loaded machine.
CALL_BOUND = 2 * TIMEOUT + 1.0
# How many times one failed write may have been applied by a server that woke
# after the client gave up: once. No driver sends a command again after a
# reply timed out (redis-py's retry_on_timeout is off; the PostgreSQL and
# memcached stores retry only on a connection found closed, before the server
# ran anything). The core then sends the failed change again with the next write.
WARNING = "could not write the status"


@dataclass
class Tally:
    """What one fault test injected and what came of it."""

    store: str
    fault: str
    faults: int = 0
    jobs_completed: int = 0
    writes: int = 0
    writes_failed: int = 0
    warnings: int = 0
    reads_raised: int = 0
    max_call: float = 0.0
    final_ok: bool = False
    increments: int = 0
    final_progress: float = 0.0
    held_in_failed: float = 0.0  # increments carried by writes that failed, summed

    @property
    def excess(self) -> float:
        return self.final_progress - self.increments

    def row(self) -> str:
        cells = (
            self.store,
            self.fault,
            self.faults,
            self.jobs_completed,
            self.writes,
            self.writes_failed,
            self.warnings,
            self.reads_raised,
            f"{self.max_call:.2f} s",
            "yes" if self.final_ok else "NO",
            f"{self.excess:g} (of {self.held_in_failed:g} held in failed writes)",
        )
        return "| " + " | ".join(str(cell) for cell in cells) + " |"


HEADER = (
    "| store | fault | faults injected | jobs completed | writes | writes failed "
    "| warnings | reads raised StoreError | slowest call | final state right "
    "| excess increments |\n|" + " --- |" * 11
)
TALLIES: list[Tally] = []


@pytest.fixture(scope="module", autouse=True)
def _print_tallies() -> Iterator[None]:
    yield
    if TALLIES:
        print("\n\nFault injection results\n" + HEADER)
        for tally in TALLIES:
            print(tally.row())


def _instrument(store: Store, tally: Tally) -> None:
    """Time every write of ``store`` (sync and async) and count the failed ones and what
    they carried."""
    real, areal = store.write, store.awrite

    def write(job_id: str, change: Change) -> Written | None:
        started = time.monotonic()
        try:
            return real(job_id, change)
        except StoreError:
            tally.writes_failed += 1
            tally.held_in_failed += change.incr.get("progress", 0)
            raise
        finally:
            tally.writes += 1
            tally.max_call = max(tally.max_call, time.monotonic() - started)

    async def awrite(job_id: str, change: Change) -> Written | None:
        started = time.monotonic()
        try:
            return await areal(job_id, change)
        except StoreError:
            tally.writes_failed += 1
            tally.held_in_failed += change.incr.get("progress", 0)
            raise
        finally:
            tally.writes += 1
            tally.max_call = max(tally.max_call, time.monotonic() - started)

    store.write = write  # type: ignore[method-assign]
    store.awrite = awrite  # type: ignore[method-assign]


class TrackedJob:
    """A tracked job in a thread; it waits at each checkpoint until ``go()`` is called."""

    def __init__(self, *, wait_at_checkpoints: bool, idle_at_checkpoints: float = 0.0) -> None:
        self.wait_at_checkpoints = wait_at_checkpoints
        self.idle = idle_at_checkpoints
        self.started = threading.Event()
        self.reached = threading.Event()
        self._go = threading.Event()
        self.job_id = ""
        self.result: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        @jobstatus.track
        def export() -> str:
            status = jobstatus.current()
            self.job_id = status.job_id
            status.progress.total = STEPS
            self.started.set()
            for step in range(STEPS):
                if step in CHECKPOINTS:
                    self.reached.set()
                    if self.wait_at_checkpoints:
                        assert self._go.wait(30)
                        self._go.clear()
                    time.sleep(self.idle)
                if step in SETS:
                    status[f"at_{step}"] = step
                status.progress.increment()
                time.sleep(0.002)
            return "done"

        self.result.append(export())

    def start(self) -> TrackedJob:
        self.thread.start()
        assert self.started.wait(20)
        return self

    def at_checkpoint(self) -> None:
        assert self.reached.wait(30)
        self.reached.clear()

    def go(self) -> None:
        self._go.set()

    def finish(self, tally: Tally) -> None:
        self.thread.join(60)
        assert not self.thread.is_alive(), "the job hung"
        tally.jobs_completed = len(self.result)
        tally.increments = STEPS


def _check_final(tally: Tally, job_id: str, caplog: pytest.LogCaptureFixture) -> None:
    tally.warnings = sum(WARNING in record.getMessage() for record in caplog.records)
    final = jobstatus.get(job_id)
    tally.final_progress = final.progress.current
    tally.final_ok = (
        final.is_completed
        and all(final.get(f"at_{step}") == step for step in SETS)
        and final.progress.current >= STEPS
    )
    TALLIES.append(tally)
    assert tally.jobs_completed == 1
    assert final.is_completed
    assert all(final.get(f"at_{step}") == step for step in SETS)
    # Rate-limited: the core warns at most once per 30 s per process.
    assert tally.warnings == (1 if tally.writes_failed else 0)


def _check_bounded(tally: Tally) -> None:
    assert tally.max_call < CALL_BOUND, f"a call took {tally.max_call:.1f} s: it hung"


def _timed_read(job_id: str, tally: Tally) -> None:
    """Read from the test's thread while the server is paused: a StoreError within the bound.

    A read that is still waiting when the server wakes returns the record; the
    time it took tells (``_check_bounded``).
    """
    outcome: list[BaseException | None] = []

    def read() -> None:
        try:
            jobstatus.get(job_id)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)
        else:
            outcome.append(None)

    started = time.monotonic()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(PAUSE + CALL_BOUND + 5)
    tally.max_call = max(tally.max_call, time.monotonic() - started)
    assert outcome, "a read hung after the server woke"
    if isinstance(outcome[0], StoreError):
        tally.reads_raised += 1
    else:
        assert outcome[0] is None, f"a read on a paused server gave {outcome[0]!r}"


def _pause(pids: list[int], job: TrackedJob, tally: Tally) -> None:
    """Stop the server's processes for PAUSE seconds while the job writes, then go on."""

    def wake() -> None:
        _signal_all(pids, signal.SIGCONT)

    _signal_all(pids, signal.SIGSTOP)
    tally.faults += 1
    waking = threading.Timer(PAUSE, wake)
    waking.start()
    try:
        _timed_read(job.job_id, tally)
    finally:
        waking.join()


def _run_pause(
    store: Store, name: str, pids: Callable[[], list[int]], caplog: pytest.LogCaptureFixture
) -> Tally:
    tally = Tally(name, f"SIGSTOP {PAUSE:g} s (timeout {TIMEOUT:g} s)")
    _instrument(store, tally)
    jobstatus.configure(store=store, throttle_interval=0, on_store_error="warn")
    with caplog.at_level(logging.WARNING, logger="jobstatus"):
        job = TrackedJob(wait_at_checkpoints=False).start()
        job.at_checkpoint()  # the job is at step 50 and goes on writing: pause now
        _pause(pids(), job, tally)
        job.finish(tally)
    _check_final(tally, job.job_id, caplog)
    # A write the client gave up on may still be applied when the server wakes,
    # and it is sent again: the store applies each origin once.
    assert tally.excess == 0
    _check_bounded(tally)
    assert tally.writes_failed >= 1  # the job wrote into the pause, and gave up in time
    return tally


def _run_drops(
    store: Store, name: str, fault: str, drop: Callable[[], int], caplog: pytest.LogCaptureFixture
) -> Tally:
    tally = Tally(name, fault)
    _instrument(store, tally)
    jobstatus.configure(store=store, throttle_interval=0, on_store_error="warn")
    with caplog.at_level(logging.WARNING, logger="jobstatus"):
        job = TrackedJob(wait_at_checkpoints=True).start()
        for _ in CHECKPOINTS:
            job.at_checkpoint()  # the job waits between two writes
            tally.faults += drop()
            job.go()
        job.finish(tally)
    _check_final(tally, job.job_id, caplog)
    assert tally.faults >= len(CHECKPOINTS)
    # A dropped connection fails before the server runs anything: the retry on
    # a new connection is safe, so nothing fails and nothing counts twice.
    assert tally.writes_failed == 0
    assert tally.excess == 0
    _check_bounded(tally)
    return tally


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


# -- Redis -----------------------------------------------------------------------------


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    need_redis_server()
    pytest.importorskip("redis")
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def _redis_store(server: RedisServer) -> Store:
    from jobstatus.stores.redis import RedisStore

    return RedisStore.from_url(server.url, timeout=TIMEOUT)


@pytest.mark.redis
def test_redis_connections_killed_mid_job(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    import redis

    store = _redis_store(redis_server)
    admin = redis.Redis(port=redis_server.port, socket_timeout=5)

    def kill() -> int:
        killed: Any = admin.client_kill_filter(_type="normal", skipme=True)
        return int(killed)

    try:
        _run_drops(store, "Redis", "CLIENT KILL TYPE normal, 3 times", kill, caplog)
    finally:
        admin.close()
        store.close()


# -- Redis: connections killed while a job writes every millisecond ------------------------

# CLIENT KILLs, one every WRITES_PER_KILL writes (counted, not timed, so a loaded machine
# sees the same run), while the job writes and reads one call
# at a time, so each kill drops one connection, in use or idle in the pool. (Two
# calls at once keep two connections: one idle when a kill comes, found closed and
# replaced at its next use, and the replacement killed in its handshake by the next
# kill is a second drop in one call, which redis-py does not retry. That happened
# once in 20 runs of 30 kills; the write was sent again with the next one.)
KILLS = 30
WRITES_PER_KILL = 40


@dataclass
class KillTally:
    """What a job writing every ~1 ms, and a reader beside it, saw of KILLS dropped connections."""

    store: str
    side: str
    killed: int = 0
    writes: int = 0
    writes_failed: int = 0
    reads: int = 0
    reads_failed: int = 0

    def row(self) -> str:
        cells = (self.store, self.side, KILLS, self.killed, self.writes, self.writes_failed)
        cells += (self.reads, self.reads_failed)
        return "| " + " | ".join(str(cell) for cell in cells) + " |"


KILL_HEADER = (
    "| store | job | CLIENT KILLs | connections killed | writes | writes failed | reads "
    "| reads failed |\n|" + " --- |" * 8
)
KILL_TALLIES: list[KillTally] = []


@pytest.fixture(scope="module", autouse=True)
def _print_kill_tallies() -> Iterator[None]:
    yield
    if KILL_TALLIES:
        print("\n\nConnections killed mid-job\n" + KILL_HEADER)
        for tally in KILL_TALLIES:
            print(tally.row())


def _killer(
    kill: Callable[[str], int],
    tally: KillTally,
    started: threading.Event,
    job: list[str],
    written: list[int],
) -> threading.Thread:
    """Kills after every WRITES_PER_KILL writes of the job (``written[0]`` counts them)."""

    def run() -> None:
        assert started.wait(20)
        for kill_number in range(1, KILLS + 1):
            deadline = time.monotonic() + 60
            while written[0] < kill_number * WRITES_PER_KILL and time.monotonic() < deadline:
                time.sleep(0.001)
            tally.killed += kill(job[0])

    return threading.Thread(target=run, daemon=True)


def _run_kills_sync(store: Store, tally: KillTally, kill: Callable[[str], int]) -> str:
    started, job_ids = threading.Event(), []
    written = [0]
    killer = _killer(kill, tally, started, job_ids, written)
    counted: list[int] = []

    @jobstatus.track
    def job() -> str:
        status = jobstatus.current()
        job_ids.append(status.job_id)
        started.set()
        n = 0
        while killer.is_alive() or n == 0:
            status.progress.increment()  # one write each: throttle_interval=0
            n += 1
            written[0] = n
            if n % 100 == 0:
                status["at"] = n
            if n % 10 == 0:
                try:  # reads beside the writes, on the same client: one, then a batch
                    tally.reads += 1
                    if n % 20:
                        jobstatus.get(status.job_id)
                    else:
                        jobstatus.Batch([status.job_id, "other"]).refresh()
                except StoreError:
                    tally.reads_failed += 1
            time.sleep(0.001)
        counted.append(n)
        return status.job_id

    killer.start()
    job_id = job()
    killer.join(30)
    final = jobstatus.get(job_id)
    assert final.is_completed and final.progress.current == counted[0]  # none lost, none twice
    return job_id


def _run_kills_async(store: Store, tally: KillTally, kill: Callable[[str], int]) -> str:
    started, job_ids = threading.Event(), []
    written = [0]
    killer = _killer(kill, tally, started, job_ids, written)
    counted: list[int] = []

    @jobstatus.track
    async def job() -> str:
        status = jobstatus.current()
        job_ids.append(status.job_id)
        started.set()
        n = 0
        while killer.is_alive() or n == 0:
            status.progress.increment()
            await status.aflush()  # written by the loop's writer task, with awrite
            n += 1
            written[0] = n
            if n % 100 == 0:
                status["at"] = n
                await status.aflush()  # one call at a time: see KILLS
            if n % 10 == 0:
                try:
                    tally.reads += 1
                    if n % 20:
                        await jobstatus.aget(status.job_id)
                    else:
                        await jobstatus.Batch([status.job_id, "other"]).arefresh()
                except StoreError:
                    tally.reads_failed += 1
            await asyncio.sleep(0.001)
        counted.append(n)
        return status.job_id

    async def job_then_close() -> str:
        try:
            return await job()
        finally:
            await store.aclose()  # this loop's connections, before asyncio.run closes it

    killer.start()
    job_id = asyncio.run(job_then_close())
    killer.join(30)
    final = jobstatus.get(job_id)
    assert final.is_completed and final.progress.current == counted[0]
    return job_id


def _kills(
    store: Store,
    name: str,
    kill: Callable[[str], int],
    caplog: pytest.LogCaptureFixture,
    side: str,
) -> KillTally:
    tally = KillTally(name, side)
    counts = Tally(name, "kills")
    _instrument(store, counts)
    jobstatus.configure(store=store, throttle_interval=0, on_store_error="warn")
    with caplog.at_level(logging.WARNING, logger="jobstatus"):
        run = _run_kills_async if side == "async" else _run_kills_sync
        run(store, tally, kill)
    tally.writes, tally.writes_failed = counts.writes, counts.writes_failed
    KILL_TALLIES.append(tally)
    # The kills dropped the store's connections (a kill may come while a cluster client
    # has none open, between closing a dropped one and its next call).
    assert tally.killed >= KILLS // 2
    assert tally.writes > 1000
    # A dropped connection is retried once on a new one (redis-py's Retry), and a
    # write sent twice carries its origin: nothing fails, nothing counts twice.
    assert (tally.writes_failed, tally.reads_failed) == (0, 0)
    assert WARNING not in caplog.text
    return tally


@pytest.fixture(autouse=True)
def _collect_what_faults_leave() -> Iterator[None]:
    """Collect what a fault left for the garbage collector in its own test, quietly.

    redis-py replaces a killed connection (and, in a cluster, the node objects of
    a layout it read again) without closing the old object, whose ``__del__``
    warns; without this, the warning (an error here) lands in whichever later test
    the collector happens to run in. Leaks are hunted by the other suites, where
    nothing is killed.
    """
    yield
    settings.reset()  # the configured store, and what it holds, is let go
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def _killing_normal_clients(port: int) -> Callable[[str], int]:
    import redis

    admin = redis.Redis(port=port, socket_timeout=5)

    def kill(job_id: str) -> int:
        killed: Any = admin.client_kill_filter(_type="normal", skipme=True)
        return int(killed)

    return kill


@pytest.mark.redis
@pytest.mark.parametrize("side", ["sync", "async"])
def test_redis_connections_killed_while_a_job_writes_every_millisecond(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture, side: str
) -> None:
    store = _redis_store(redis_server)
    try:
        _kills(store, "Redis", _killing_normal_clients(redis_server.port), caplog, side)
    finally:
        store.close()


@pytest.mark.redis_cluster
@pytest.mark.parametrize("side", ["sync", "async"])
def test_redis_cluster_connections_killed_while_a_job_writes_every_millisecond(
    caplog: pytest.LogCaptureFixture, side: str
) -> None:
    from jobstatus.stores.redis_cluster import RedisClusterStore

    from ._redis_servers import shared_cluster

    cluster = shared_cluster()
    store = RedisClusterStore.from_url(cluster.url, timeout=TIMEOUT, prefix=f"kills{side}:")
    kills = {node.port: _killing_normal_clients(node.port) for node in cluster.nodes}

    def kill_on_the_jobs_node(job_id: str) -> int:
        # The node that holds the job's record, which every write goes to. (Killing
        # every node's clients at once can also kill the client's re-read of the
        # cluster's layout, which redis-py does not retry: see docs/reliability.md.)
        node = store._scripts().client.get_node_from_key(store._layout.record(job_id))
        return kills[node.port](job_id)

    try:
        _kills(store, "Redis Cluster", kill_on_the_jobs_node, caplog, side)
    finally:
        store.close()


@pytest.mark.redis
@pytest.mark.slow
def test_redis_paused_mid_job(redis_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    store = _redis_store(redis_server)
    process = redis_server.process
    assert process is not None
    try:
        _run_pause(store, "Redis", lambda: [process.pid], caplog)
    finally:
        store.close()


# -- PostgreSQL ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PostgresServer]:
    pytest.importorskip("psycopg")
    server = PostgresServer()
    server.start()
    yield server
    server.remove()


def _signal_all(pids: list[int], signum: int) -> None:
    """Signal each process; one that exited since it was listed (a backend) is gone."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _every_postgres_process(server: PostgresServer) -> list[int]:
    postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
    return [postmaster, *_children(postmaster)]


def _signal_all(pids: list[int], signum: signal.Signals) -> None:
    """Send ``signum`` to each process; one that ended meanwhile (a server's short-lived
    worker, such as autovacuum's) has nothing left to pause or wake."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


@pytest.mark.postgres
def test_postgres_connections_terminated_mid_job(
    postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    import psycopg

    from jobstatus.stores.postgres import PostgresStore

    store = PostgresStore(postgres_server.url, timeout=TIMEOUT, table="faults_drop")
    admin = psycopg.connect(postgres_server.url, autocommit=True)

    def terminate() -> int:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
        return sum(1 for (killed,) in rows if killed)

    try:
        _run_drops(store, "PostgreSQL", "pg_terminate_backend, 3 times", terminate, caplog)
    finally:
        admin.close()
        store.drop()
        store.close()


@pytest.mark.postgres
@pytest.mark.slow
def test_postgres_paused_mid_job(
    postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    from jobstatus.stores.postgres import PostgresStore

    store = PostgresStore(postgres_server.url, timeout=TIMEOUT, table="faults_pause")
    store.migrate()

    try:
        _run_pause(store, "PostgreSQL", lambda: _every_postgres_process(postgres_server), caplog)
    finally:
        store.drop()
        store.close()


@pytest.mark.postgres
@pytest.mark.slow
def test_postgres_async_calls_give_up_on_a_paused_server(postgres_server: PostgresServer) -> None:
    from jobstatus.stores.postgres import PostgresStore

    store = PostgresStore(postgres_server.url, timeout=TIMEOUT, table="faults_async")
    took: list[float] = []

    async def scenario() -> None:
        await store.awrite("paused", Change(incr={"n": 1}))  # a pooled async connection
        pids = _every_postgres_process(postgres_server)
        _signal_all(pids, signal.SIGSTOP)
        try:
            for call in (store.awrite("paused", Change(incr={"n": 1})), store.aread("paused")):
                started = time.monotonic()
                with pytest.raises(StoreError):
                    await call
                took.append(time.monotonic() - started)
        finally:
            _signal_all(pids, signal.SIGCONT)
        # Awake again: the write that timed out may have run (n is 1 or 2), never more.
        record = await store.aread("paused")
        assert record is not None and record["n"] in (1, 2)
        await store.aclose()

    try:
        asyncio.run(scenario())
    finally:
        store.drop()
        store.close()
    print(
        f"\nPostgreSQL paused, async write and read gave up after {took[0]:.2f} s, {took[1]:.2f} s"
    )
    assert max(took) < CALL_BOUND, f"an async call took {max(took):.1f} s"


# -- memcached -------------------------------------------------------------------------


class IdleKickingMemcached(MemcachedServer):
    """memcached closing every connection idle for a second: its only way to drop one."""

    def start(self) -> None:
        assert self.binary is not None
        command = [self.binary, "-l", "127.0.0.1", "-p", str(self.port), "-m", "16"]
        command += ["-o", "idle_timeout=1"]
        if os.geteuid() == 0:
            command += ["-u", "root"]
        self._process = subprocess.Popen(command)
        wait_for_port(self.port, up=True)


def _memcached_stat(port: int, name: str) -> int:
    from pymemcache.client.base import Client

    client = Client(("127.0.0.1", port), connect_timeout=5, timeout=5)
    try:
        return int(client.stats()[name.encode()])
    finally:
        client.close()


@pytest.fixture
def memcached_server() -> Iterator[MemcachedServer]:
    pytest.importorskip("pymemcache")
    server = MemcachedServer()
    server.start()
    yield server
    server.remove()


@pytest.mark.memcached
@pytest.mark.slow
def test_memcached_idle_connections_dropped_mid_job(caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("pymemcache")
    from jobstatus.stores.memcached import MemcachedStore

    server = IdleKickingMemcached()
    server.start()
    store = MemcachedStore.from_url(server.url, timeout=TIMEOUT)
    tally = Tally("memcached", f"idle_timeout=1 drops, job idle {PAUSE:g} s 3 times")
    _instrument(store, tally)
    jobstatus.configure(store=store, throttle_interval=0, on_store_error="warn")
    try:
        kicked = _memcached_stat(server.port, "idle_kicks")
        with caplog.at_level(logging.WARNING, logger="jobstatus"):
            job = TrackedJob(wait_at_checkpoints=False, idle_at_checkpoints=PAUSE).start()
            job.finish(tally)
        # The stats connection itself is new: only the store's were idle.
        tally.faults = _memcached_stat(server.port, "idle_kicks") - kicked
        _check_final(tally, job.job_id, caplog)
        assert tally.faults >= len(CHECKPOINTS)
        assert tally.writes_failed == 0
        assert tally.excess == 0
    finally:
        store.close()
        server.remove()


@pytest.mark.memcached
@pytest.mark.slow
def test_memcached_paused_mid_job(
    memcached_server: MemcachedServer, caplog: pytest.LogCaptureFixture
) -> None:
    from jobstatus.stores.memcached import MemcachedStore

    store = MemcachedStore.from_url(memcached_server.url, timeout=TIMEOUT)
    process = memcached_server._process
    assert process is not None
    try:
        _run_pause(store, "memcached", lambda: [process.pid], caplog)
    finally:
        store.close()
