"""What the metrics cost (issue 17): the throttled tick, a job's lifecycle, a scrape at a
million records, and a task's round trip through a real Celery worker.

    python -m bench.bench_metrics
    python -m bench.bench_metrics tick celery    # some parts only (tick, lifecycle,
                                                 # scrape, multiprocess, celery)
    BENCH_METRICS_RECORDS=100000 python -m bench.bench_metrics   # a quicker scrape row
    BENCH_METRICS_ROUNDS=201 python -m bench.bench_metrics celery   # more rounds

- The throttled tick with metrics on against metrics off and ``tqdm.update(1)``: the
  tick's code has no metrics in it, so the three should match.
- One job's lifecycle (queued, working, completed) on the memory store, metrics off
  (the path a process without prometheus_client and opentelemetry takes: the Job
  finds no recorder) against metrics on (both libraries, no OTel SDK).
- A scrape (``generate_latest`` over ``jobstatus.metrics.collector``) at
  ``BENCH_METRICS_RECORDS`` (1,000,000) records against the same scrape at 1,000: it
  reads the indexes, so it should not grow with the records. SQLite, Redis and
  PostgreSQL (Redis and PostgreSQL loaded through their own write paths; a service
  that is not running is skipped). Goal < 50 ms.
- A no-op task's round trip through a real Celery prefork worker (Redis broker,
  SQLite status store, which answers the start's ``queued_at``, so all three
  instruments record): plain, tracked with metrics off, tracked with metrics on
  (in-process registry) and on in multiprocess mode. The overhead is tracked
  minus plain; the goal is metrics-on overhead at most 5 % above metrics-off.
  ``BENCH_METRICS_TASKS`` tasks per side and round (40), ``BENCH_METRICS_ROUNDS``
  alternating rounds (11): a round trip's noise on a shared machine is larger than
  5 % of the overhead, so a meaningful comparison takes a few hundred rounds. The
  per-round differences (on minus off, each round's sides run back to back) are
  printed with their quartiles.
"""

from __future__ import annotations

import functools
import gc
import io
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import jobstatus
import jobstatus.metrics
from jobstatus import Job
from jobstatus._record import dumps, utc_now_iso
from jobstatus.stores import MemoryStore, SQLiteStore, Store

from ._harness import Row, alternate, alternate_samples, paired, report
from ._workers import env as _env
from ._workers import unique, workers

APPS = Path(__file__).parent / "apps"
REDIS_URL = os.environ.get("JOBSTATUS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get(
    "JOBSTATUS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
RECORDS = int(os.environ.get("BENCH_METRICS_RECORDS", "1000000"))
SMALL = 1_000
STATES = ("queued", "working", "completed", "failed", "cancelled")
TASKS = int(os.environ.get("BENCH_METRICS_TASKS", "40"))
ROUNDS = int(os.environ.get("BENCH_METRICS_ROUNDS", "11"))
TICK_ROUNDS = int(os.environ.get("BENCH_METRICS_TICK_ROUNDS", "7"))
COUNTED = int(os.environ.get("BENCH_METRICS_COUNTED", "200"))

sys.path.insert(0, str(APPS))


# -- in-process ---------------------------------------------------------------------------


def tick_rows() -> list[Row]:
    from tqdm import tqdm

    jobstatus.configure(store="memory://", throttle_interval=0.5)
    jobstatus.metrics.configure()
    on = Job("bench-tick-on", name="bench.tick")
    jobstatus.metrics.configure(prometheus=False, otel=False)
    off = Job("bench-tick-off", name="bench.tick")
    jobstatus.metrics.configure()
    assert on.meter is not None and off.meter is None
    on.started()
    off.started()
    bar = tqdm(total=None, file=io.StringIO(), mininterval=0.5)

    def ticks(job: Job) -> Callable[[int], None]:
        increment = job.status.progress.increment

        def run(n: int) -> None:
            for _ in range(n):
                increment()

        return run

    def with_tqdm(n: int) -> None:
        for _ in range(n):
            bar.update(1)

    medians = alternate(
        {"on": ticks(on), "off": ticks(off), "tqdm": with_tqdm}, n=200_000, rounds=TICK_ROUNDS
    )
    on.finished()
    off.finished()
    bar.close()
    ns = {name: value * 1e9 for name, value in medians.items()}
    return [
        Row("throttled tick, metrics on", ns["on"], "metrics off", ns["off"], "ns/op",
            "the same", {"tqdm_ns": ns["tqdm"]}),
        Row("throttled tick, metrics on", ns["on"], "`tqdm.update(1)`", ns["tqdm"], "ns/op",
            "no slower than tqdm"),
    ]  # fmt: skip


def lifecycle_rows() -> list[Row]:
    jobstatus.configure(store="memory://", throttle_interval=0)

    def lifecycles(prometheus: bool, otel: bool) -> Callable[[int], None]:
        def run(n: int) -> None:
            jobstatus.metrics.configure(prometheus=prometheus, otel=otel)
            MemoryStore.shared().clear()  # every side writes the same ids to a store as empty
            for i in range(n):
                job_id = f"bench-life-{i}"
                Job(job_id, name="bench.life").enqueued()
                job = Job(job_id, name="bench.life")
                job.started()
                job.finished()

        return run

    gc.disable()  # the cyclic GC's pauses would land on whichever side runs then
    try:
        medians = alternate(
            {"on": lifecycles(True, True), "prometheus": lifecycles(True, False),
             "off": lifecycles(False, False)},
            n=5_000,
            rounds=11,
        )  # fmt: skip
    finally:
        gc.enable()
    jobstatus.metrics.configure()
    us = {name: value * 1e6 for name, value in medians.items()}
    us["meter"] = meter_cost() * 1e6
    return [
        Row("the metrics' own work per job (3 transitions, a duration, a wait)", us["meter"],
            "a job's lifecycle on memory://, metrics off", us["off"], "us/job",
            "small beside the lifecycle"),
        Row("a job's lifecycle on memory://, metrics on (Prometheus + OTel API)", us["on"],
            "metrics off (= neither installed)", us["off"], "us/job",
            "a few us more", {"prometheus_only_us": us["prometheus"]}),
    ]  # fmt: skip


def meter_cost() -> float:
    """Median seconds of what one job records (both libraries), without the job's writes."""
    from jobstatus._meter import job_meter

    stamp = utc_now_iso()

    def record(n: int) -> None:
        for _ in range(n):
            publisher, worker = job_meter("bench.life"), job_meter("bench.life")
            assert publisher is not None and worker is not None
            publisher.moved("queued")
            worker.began(stamp, stamp)
            worker.ended("completed")

    return alternate({"meter": record}, n=20_000, rounds=7)["meter"]


# -- a scrape at a million records ------------------------------------------------------


def scrape_time(store: Store, rounds: int = 15) -> float:
    """Median seconds of one scrape of the store's gauges."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(jobstatus.metrics.collector(store))
    generate_latest(registry)  # warm: connection, schema, caches
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        generate_latest(registry)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def fill_sqlite(store: SQLiteStore, count: int) -> None:
    """``count`` records in every state (one in 100 working), straight into the table."""
    db = store._connections.get()
    now = time.time()
    rows = []
    for n in range(count):
        status = STATES[2 + n % 3] if n % 100 else "working"
        stamp = now - (count - n) * 0.001
        record = {"status": status, "name": "reports.export", "updated_at": utc_now_iso(stamp)}
        rows.append((f"job-{n:07d}", dumps(record), status, stamp, now + 3600, None,
                     "reports.export"))  # fmt: skip
        if len(rows) == 50_000:
            db.executemany("INSERT INTO jobstatus VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            rows.clear()
    db.executemany("INSERT INTO jobstatus VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


def sqlite_scrape_rows(folder: Path) -> list[Row]:
    figures = {}
    for count in (SMALL, RECORDS):
        store = SQLiteStore(folder / f"scrape-{count}.db")
        store.read("warm-up")  # creates the schema
        fill_sqlite(store, count)
        assert sum(jobstatus.counts(store=store)[s] for s in STATES) == count
        figures[count] = scrape_time(store) * 1e3
        raw = sqlite3.connect(folder / f"scrape-{count}.db")
        start = time.perf_counter()
        raw.execute("SELECT status, count(*) FROM jobstatus GROUP BY status").fetchall()
        figures[f"raw_group_by_ms_{count}"] = (time.perf_counter() - start) * 1e3
        raw.close()
        store.close()
    return [
        Row(f"SQLite: a scrape at {RECORDS:,} records", figures[RECORDS],
            f"the same at {SMALL:,}", figures[SMALL], "ms", "< 50 ms",
            {"raw_group_by_ms": figures[f"raw_group_by_ms_{RECORDS}"]}),
    ]  # fmt: skip


def network_scrape_rows() -> list[Row]:
    """Redis and PostgreSQL, loaded through their own write paths (bench/_bulk.py)."""
    rows = []
    for name, make, load, clear in _network_stores():
        try:
            store = make()
        except Exception as exc:  # noqa: BLE001 - a service that is not running
            print(f"{name}: skipped ({exc})", file=sys.stderr)
            continue
        try:
            try:
                jobstatus.counts(store=store)
            except (jobstatus.NotSupportedError, jobstatus.StoreError) as exc:
                # counts() wraps a Listing's NotSupportedError in a StoreError today.
                print(f"{name}: {exc}", file=sys.stderr)
                rows.append(Row(f"{name}: a scrape at {RECORDS:,} records (cannot count yet)",
                                0, "-", 0, "ms", "< 50 ms"))  # fmt: skip
                continue
            load(store, 0, SMALL)
            small = scrape_time(store) * 1e3
            load(store, SMALL, RECORDS)
            large = scrape_time(store) * 1e3
            rows.append(Row(f"{name}: a scrape at {RECORDS:,} records", large,
                            f"the same at {SMALL:,}", small, "ms", "< 50 ms"))  # fmt: skip
        finally:
            clear(store)
            store.close()
    return rows


def _network_stores() -> list[tuple[str, Callable[[], Store], Callable[..., object], Callable]]:
    from ._bulk import finished_jobs, load_postgres, load_redis

    def redis_store() -> Store:
        from jobstatus.stores.redis import RedisStore

        return RedisStore.from_url(REDIS_URL, prefix=f"{unique('metricsbench')}:")

    def redis_clear(store: Store) -> None:
        client = store._scripts().client  # type: ignore[attr-defined]
        prefix = store._layout.prefix  # type: ignore[attr-defined]
        for key in client.scan_iter(match=f"{prefix}*", count=10_000):
            client.unlink(key)

    def postgres_store() -> Store:
        from jobstatus.stores.postgres import PostgresStore

        return PostgresStore.from_url(POSTGRES_URL, table="metricsbench")

    return [
        ("Redis", redis_store, lambda s, a, b: load_redis(s, finished_jobs(a, b)), redis_clear),
        ("PostgreSQL", postgres_store,
         lambda s, a, b: load_postgres(s, finished_jobs(a, b)), lambda s: s.drop()),
    ]  # fmt: skip


# -- multiprocess mode: the files of dead processes ---------------------------------------


def multiprocess_rows(folder: Path) -> list[Row]:
    """``render()`` in multiprocess mode with 1,000 dead processes' files against 10.

    RQ forks a work horse per job, and prometheus_client keeps each process's
    counter and histogram files (their totals must not go backwards): the files
    of one real job's horse are copied under other pids.
    """
    import shutil
    import subprocess

    seed = folder / "seed"
    seed.mkdir()
    code = "import jobstatus; jobstatus.track(name='reports.export')(lambda: None)()"
    environment = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(seed),
                       JOBSTATUS_STORE=f"sqlite:///{folder / 'seed.db'}")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], env=environment, check=True)
    figures = {}
    for dead in (10, 1_000):
        target = folder / f"dead-{dead}"
        target.mkdir()
        for pid in range(dead):
            for source in seed.glob("*.db"):
                kind = source.name.split("_")[0]
                shutil.copy(source, target / f"{kind}_{900_000 + pid}.db")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(target)
        try:
            jobstatus.metrics.render(store="memory://")
            times = []
            for _ in range(7):
                start = time.perf_counter()
                jobstatus.metrics.render(store="memory://")
                times.append(time.perf_counter() - start)
        finally:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]
        figures[dead] = sorted(times)[3] * 1e3
    return [
        Row("multiprocess render(), 1,000 dead processes' files", figures[1_000],
            "10 dead processes' files", figures[10], "ms", "grows with the files: wipe the "
            "directory when the workers restart"),
    ]  # fmt: skip


# -- a task through a real worker ---------------------------------------------------------


def celery_rows(folder: Path) -> list[Row]:
    from celery import Celery

    broker = REDIS_URL.rsplit("/", 1)[0] + "/3"
    store = f"sqlite:///{folder / 'celery.db'}"
    multiproc = folder / "prometheus"
    multiproc.mkdir()
    app = Celery("bench-client", broker=broker, backend=broker)
    app.conf.result_expires = 60
    jobstatus.configure(store=store)
    worker = [
        sys.executable, "-m", "celery", "-A", "celery_bench", "worker", "-c", "1",
        "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "warning",
    ]  # fmt: skip
    sides = {
        "plain": {"BENCH_TRACKED": "0"},
        "off": {"BENCH_TRACKED": "1", "BENCH_METRICS": "0"},
        "on": {"BENCH_TRACKED": "1", "BENCH_METRICS": "1"},
        "multiprocess": {"BENCH_TRACKED": "1", "BENCH_METRICS": "1",
                         "PROMETHEUS_MULTIPROC_DIR": str(multiproc)},
    }  # fmt: skip
    queues = {side: unique(f"bench-metrics-{side}") for side in sides}
    commands = [
        ([*worker, "-Q", queues[side], "-n", f"{queues[side]}@%h"],
         _env(store, APPS, BENCH_BROKER=broker, **more))
        for side, more in sides.items()
    ]  # fmt: skip

    def send(side: str) -> Callable[[], None]:
        name = "bench.noop_plain" if side == "plain" else "bench.noop"

        def once() -> None:
            app.send_task(name, queue=queues[side]).get(timeout=30)

        return once

    def times(fn: Callable[[], None]) -> Callable[[int], None]:
        def run(n: int) -> None:
            for _ in range(n):
                fn()

        return run

    try:
        with workers(commands):
            for side in sides:
                _wait_until_up(send(side), side)
            gc.disable()
            try:
                samples = alternate_samples(
                    {side: times(send(side)) for side in sides}, TASKS, ROUNDS
                )
            finally:
                gc.enable()
    finally:
        from redis import Redis

        Redis.from_url(broker).flushdb()
    ms = {side: statistics.median(values) * 1e3 for side, values in samples.items()}
    overhead = {side: ms[side] - ms["plain"] for side in ("off", "on", "multiprocess")}
    extra = {f"{side}_ms_per_task": value for side, value in ms.items()}
    print(f"Celery: {ROUNDS} rounds of {TASKS} tasks per side; per-round differences, "
          "median [quartiles], us/task:")  # fmt: skip
    for side, reference in (("off", "plain"), ("on", "plain"), ("on", "off"),
                            ("multiprocess", "off")):  # fmt: skip
        middle, low, high = (value * 1e6 for value in paired(samples[side], samples[reference]))
        extra[f"{side}_minus_{reference}_us"] = middle
        print(f"  {side} - {reference}: {middle:.1f} [{low:.1f}, {high:.1f}]")
    return [
        Row("Celery prefork: jobstatus overhead per task, metrics on", overhead["on"],
            "metrics off", overhead["off"], "ms/task", "ratio >= 0.95 (at most 5 % more)",
            extra),
        Row("Celery prefork: jobstatus overhead per task, metrics on, multiprocess mode",
            overhead["multiprocess"], "metrics off", overhead["off"], "ms/task",
            "ratio >= 0.95 (at most 5 % more)"),
    ]  # fmt: skip


def celery_instruction_rows(folder: Path) -> list[Row]:
    """The Celery comparison counted in instructions, which the machine's load does not
    move (valgrind's callgrind): one solo worker per side (plain, metrics off, on), so
    the worker's own process runs each task. Each side warms up, has its counters
    zeroed, runs ``BENCH_METRICS_COUNTED`` tasks and dumps them; an idle stretch as
    long is counted the same way and taken off (the worker polls its broker while
    idle). Only the worker's instructions count: Redis's are the same on every side,
    so the overhead's share is, if anything, overstated."""
    import shutil
    import subprocess

    from celery import Celery

    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("celery-instructions: valgrind is not installed; skipped")
        return []
    broker = REDIS_URL.rsplit("/", 1)[0] + "/3"
    store = f"sqlite:///{folder / 'celery-instructions.db'}"
    app = Celery("bench-client", broker=broker, backend=broker)
    app.conf.result_expires = 60
    jobstatus.configure(store=store)
    sides = {
        "plain": {"BENCH_TRACKED": "0"},
        "off": {"BENCH_TRACKED": "1", "BENCH_METRICS": "0"},
        "on": {"BENCH_TRACKED": "1", "BENCH_METRICS": "1"},
    }
    per_task: dict[str, float] = {}
    try:
        for side, more in sides.items():
            queue = unique(f"bench-instructions-{side}")
            out = folder / f"callgrind-{side}"
            command = [
                "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p",
                sys.executable, "-m", "celery", "-A", "celery_bench", "worker", "-P", "solo",
                "-Q", queue, "-n", f"{queue}@%h", "--without-gossip", "--without-mingle",
                "--without-heartbeat", "-l", "warning",
            ]  # fmt: skip
            name = "bench.noop_plain" if side == "plain" else "bench.noop"

            def send(n: int, name: str = name, queue: str = queue) -> None:
                for _ in range(n):
                    app.send_task(name, queue=queue).get(timeout=120)

            environment = _env(store, APPS, BENCH_BROKER=broker, PYTHONHASHSEED="0", **more)
            process = subprocess.Popen(
                command, env=environment, cwd=APPS.parent.parent, start_new_session=True,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                _wait_until_up(lambda: send(1), f"{side} (under valgrind)", timeout=600)
                send(COUNTED // 4)  # warm: imports, caches, the store's first writes
                busy, seconds = _counted(process.pid, out, lambda: send(COUNTED))
                idle, _ = _counted(process.pid, out, functools.partial(time.sleep, seconds))
                per_task[side] = (busy - idle) / COUNTED
                print(f"  {side}: {busy / COUNTED:,.0f} instructions/task busy, "
                      f"{idle / COUNTED:,.0f} idle over as long ({seconds:.1f} s)")  # fmt: skip
            finally:
                os.killpg(process.pid, 9)
                process.wait()
    finally:
        from redis import Redis

        Redis.from_url(broker).flushdb()
    off, on = per_task["off"] - per_task["plain"], per_task["on"] - per_task["plain"]
    extra = {f"{side}_instructions_per_task": value for side, value in per_task.items()}
    return [
        Row("Celery solo worker: jobstatus overhead per task in instructions, metrics on",
            on / 1e6, "metrics off", off / 1e6, "M instructions/task",
            "ratio >= 0.95 (at most 5 % more)", extra),
    ]  # fmt: skip


def _counted(pid: int, out: Path, run: Callable[[], None]) -> tuple[int, float]:
    """The instructions process ``pid`` (under callgrind) executes while ``run`` runs,
    and the seconds it took."""
    import subprocess

    subprocess.run(["callgrind_control", "--zero", str(pid)], check=True, capture_output=True)
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    before = set(out.parent.glob(f"{out.name}.{pid}*"))
    subprocess.run(["callgrind_control", "--dump", str(pid)], check=True, capture_output=True)
    (dump,) = set(out.parent.glob(f"{out.name}.{pid}*")) - before
    for line in dump.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1]), seconds
    raise RuntimeError(f"no totals in {dump}")


def _wait_until_up(send: Callable[[], None], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            send()
            return
        except Exception:  # noqa: BLE001 - not up yet
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {what} Celery worker did not answer") from None


PARTS: dict[str, Callable[[Path], list[Row]]] = {
    "tick": lambda folder: tick_rows(),
    "lifecycle": lambda folder: lifecycle_rows(),
    "scrape": lambda folder: sqlite_scrape_rows(folder) + network_scrape_rows(),
    "multiprocess": multiprocess_rows,
    "celery": celery_rows,
    "celery-instructions": celery_instruction_rows,
}


def main(parts: list[str]) -> str:
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise SystemExit(f"unknown parts {unknown}; choose among {sorted(PARTS)}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="jobstatus-bench-metrics-") as folder:
        for name, part in PARTS.items():
            if not parts or name in parts:
                rows += part(Path(folder))
    return report("Metrics: what they cost (issue 17)", rows, "metrics")


if __name__ == "__main__":
    main(sys.argv[1:])
