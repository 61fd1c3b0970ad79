"""The Redis store beyond the contract: processes, push, an outage, its own options."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import jobstatus
from jobstatus import ConfigurationError, Job, StoreError
from jobstatus._record import Change
from jobstatus.stores.redis import RedisStore

from . import _redis_checks, _workers
from ._redis_servers import RedisServer, TidyRedisStore, need_redis_server, scrub
from .stores import REDIS_URL, namespace, require_service

pytestmark = pytest.mark.redis
fork = multiprocessing.get_context("fork")


@pytest.fixture
def prefix() -> str:
    return f"t{namespace()}:"


@pytest.fixture
def store(prefix: str) -> Iterator[RedisStore]:
    require_service("Redis", REDIS_URL, 6379)
    built = TidyRedisStore.from_url(REDIS_URL, prefix=prefix)
    jobstatus.configure(store=built)
    yield built
    built.close()


def _run_forked(target, argument_lists: list[tuple]) -> None:
    processes = [fork.Process(target=target, args=args) for args in argument_lists]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0


def _increment_with(store: RedisStore, job_id: str, times: int, start_at: float) -> None:
    # Runs in a forked child on the parent's store object and its inherited pool.
    time.sleep(max(0.0, start_at - time.time()))
    status = jobstatus.get(job_id, store=store)
    for _ in range(times):
        status.progress.increment()


def test_forked_processes_share_one_store_object_and_lose_no_increment(
    store: RedisStore,
) -> None:
    store.write("counter", Change(set={"status": "working"}))  # the pool now holds a socket
    start_at = time.time() + 0.5
    _run_forked(_increment_with, [(store, "counter", 2_500, start_at) for _ in range(8)])
    assert jobstatus.get("counter").progress.current == 20_000
    assert store.read("counter")["progress"] == 20_000


def test_two_processes_writing_different_keys_at_once_lose_nothing(
    store: RedisStore, prefix: str
) -> None:
    url = f"{REDIS_URL}?prefix={prefix}"
    start_at = time.time() + 0.5
    _run_forked(_workers.write_keys, [(url, "shared", p, 500, start_at) for p in ("a", "b")])
    record = jobstatus.get("shared").to_dict()
    assert {k: v for k, v in record.items() if k != "updated_at"} == {
        f"{p}{n}": n for p in ("a", "b") for n in range(500)
    }


class CountingStore(TidyRedisStore):
    """Counts reads, to show a watcher is pushed to rather than polling."""

    reads = 0

    def read(self, job_id: str):  # type: ignore[no-untyped-def]
        self.reads += 1
        return super().read(job_id)

    async def aread(self, job_id: str):  # type: ignore[no-untyped-def]
        self.reads += 1
        return await super().aread(job_id)


EXPECTED = [("queued", 0)] + [("working", n) for n in range(6)] + [("completed", 5)]


def _run_job(job_id: str, watching: threading.Event) -> None:
    watching.wait(10)
    job = Job(job_id)
    job.started()
    for _ in range(5):
        job.status.progress.increment()
    job.finished()


def _seen(snapshots: list[jobstatus.Status]) -> list[tuple[str | None, float]]:
    return [(s.status, s.progress.current) for s in snapshots]


@pytest.fixture
def counting(prefix: str) -> Iterator[CountingStore]:
    require_service("Redis", REDIS_URL, 6379)
    built = CountingStore.from_url(REDIS_URL, prefix=prefix)
    jobstatus.configure(store=built, throttle_interval=0)
    Job("pushed").enqueued()
    yield built
    built.close()


def test_a_watcher_is_pushed_every_state_in_order(counting: CountingStore) -> None:
    watching = threading.Event()
    worker = threading.Thread(target=_run_job, args=("pushed", watching))
    worker.start()
    seen = []
    for snapshot in jobstatus.get("pushed").watch(timeout=20):
        seen.append(snapshot)
        watching.set()
    worker.join()
    assert _seen(seen) == EXPECTED
    assert counting.reads == 2  # get() and the watcher's first snapshot; the rest was pushed


def test_an_async_watcher_is_pushed_every_state_in_order(counting: CountingStore) -> None:
    watching = threading.Event()

    async def watch() -> list[jobstatus.Status]:
        seen = []
        async for snapshot in (await jobstatus.aget("pushed")).awatch(timeout=20):
            seen.append(snapshot)
            watching.set()
        return seen

    worker = threading.Thread(target=_run_job, args=("pushed", watching))
    worker.start()
    seen = asyncio.run(watch())
    worker.join()
    assert _seen(seen) == EXPECTED
    assert counting.reads == 2


def test_wait_returns_the_finished_state(store: RedisStore) -> None:
    Job("waited").enqueued()
    watching = threading.Event()
    worker = threading.Thread(target=_run_job, args=("waited", watching))
    worker.start()
    watching.set()
    final = jobstatus.get("waited").wait(timeout=20)
    worker.join()
    assert final.is_completed and final.progress.current == 5


# -- an outage -----------------------------------------------------------------


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[RedisServer]:
    need_redis_server()
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def test_a_job_survives_a_redis_outage_and_its_final_state_lands(
    own_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisStore.from_url(f"{own_server.url}?timeout=1")
    jobstatus.configure(store=store, throttle_interval=0, on_store_error="warn")
    ready, server_down, failing, server_back = (threading.Event() for _ in range(4))
    returned: list[object] = []

    @jobstatus.track
    def export() -> str:
        status = jobstatus.current()
        returned.append(status.job_id)
        status.progress.total = 20
        ready.set()
        server_down.wait(20)
        for n in range(20):
            status.progress.increment()  # the first 16 fail: Redis is down
            if n == 15:
                failing.set()
                server_back.wait(20)
        return "done"

    worker = threading.Thread(target=lambda: returned.append(export()))
    with caplog.at_level(logging.WARNING, logger="jobstatus"):
        worker.start()
        assert ready.wait(20)
        job_id = returned[0]
        assert isinstance(job_id, str)
        own_server.stop()
        server_down.set()

        started = time.monotonic()
        with pytest.raises(StoreError) as raised:
            jobstatus.get(job_id)  # a broken store never reads as "unknown"
        assert time.monotonic() - started < 5  # bounded: refused at once, one retry
        assert raised.value.__cause__ is not None

        assert failing.wait(20)
        own_server.start()
        server_back.set()
        worker.join(30)
    assert not worker.is_alive()
    assert returned[1] == "done"  # the job went on and returned its result
    warnings = [r for r in caplog.records if "could not write the status" in r.getMessage()]
    assert len(warnings) == 1  # sixteen failed writes, one warning
    final = jobstatus.get(job_id)
    # The server restarted empty (no persistence); the held increments and the
    # final transition still reach it.
    assert final.is_completed and "finished_at" in final
    assert final.progress.current == 20
    store.close()


def test_a_stopped_server_is_a_store_error_within_the_timeout(
    own_server: RedisServer,
) -> None:
    store = RedisStore.from_url(own_server.url, timeout=1)
    store.write("x", Change(set={"a": 1}))
    own_server.stop()
    for call in (
        lambda: store.read("x"),
        lambda: store.write("x", Change(set={"a": 2})),
        lambda: store.read_many(["x", "y"]),
        lambda: store.list_recent(None, 10, None),
        lambda: store.delete("x"),
        lambda: asyncio.run(store.aread("x")),
    ):
        started = time.monotonic()
        with pytest.raises(StoreError):
            call()
        assert time.monotonic() - started < 5
    own_server.start()
    assert store.read("x") is None  # the server came back empty (no persistence)
    store.write("x", Change(set={"a": 3}))  # and the store reconnects by itself
    assert store.read("x") == {"a": 3}
    store.close()


def test_a_watcher_raises_store_error_when_redis_stops(own_server: RedisServer) -> None:
    store = RedisStore.from_url(own_server.url, timeout=1)
    jobstatus.configure(store=store)
    Job("watched").enqueued()
    watching = threading.Event()
    outcome: list[BaseException] = []

    def watch() -> None:
        try:
            for _ in jobstatus.get("watched").watch(timeout=30):
                watching.set()
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome.append(exc)

    watcher = threading.Thread(target=watch)
    watcher.start()
    assert watching.wait(10)
    own_server.stop()
    watcher.join(15)
    assert not watcher.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], StoreError)
    store.close()


# -- records, indexes and keys --------------------------------------------------


def test_float_sums_stay_floats_and_int_sums_stay_ints(store: RedisStore) -> None:
    store.write("n", Change(incr={"f": 0.5, "i": 2}))
    store.write("n", Change(incr={"f": 0.5, "i": 3}))
    record = store.read("n")
    assert record == {"f": 1.0, "i": 5}
    assert isinstance(record["f"], float) and isinstance(record["i"], int)
    store.write("n", Change(set={"s": "text"}, incr={"s": 2}))  # non-numbers restart at 0
    assert store.read("n")["s"] == 2


def test_ids_cannot_reach_index_keys(store: RedisStore) -> None:
    for job_id in ("x:all", "x:exp", "x:s:working", "../r:a", "a"):
        store.write(job_id, Change(set={"status": "working", "id": job_id}))
    listed = store.list_recent(None, 50, None)
    assert sorted(job_id for job_id, _ in listed) == sorted(
        ["x:all", "x:exp", "x:s:working", "../r:a", "a"]
    )
    assert all(record["id"] == job_id for job_id, record in listed)


def test_listing_forgets_deleted_and_expired_records(store: RedisStore) -> None:
    store.write("kept", Change(set={"status": "working"}, ttl=600))
    store.write("short", Change(set={"status": "working"}, ttl=0.3))
    store.write("deleted", Change(set={"status": "working"}, ttl=600))
    jobstatus.get("deleted").delete()
    time.sleep(0.5)
    assert [job_id for job_id, _ in store.list_recent(None, 10, None)] == ["kept"]
    store.write("later", Change(set={"status": "queued"}))  # its write prunes the index
    client = store._scripts().client
    assert client.zscore(f"{store.prefix}x:all", "short") is None
    assert client.zscore(f"{store.prefix}x:exp", "short") is None


def test_a_status_change_moves_the_job_between_status_indexes(store: RedisStore) -> None:
    Job("moving").enqueued()
    assert [s.job_id for s in jobstatus.recent("queued")] == ["moving"]
    Job("moving").started()
    assert jobstatus.recent("queued") == []
    assert [s.job_id for s in jobstatus.recent("working")] == ["moving"]


def test_listing_pages_through_many_jobs(store: RedisStore) -> None:
    base = time.time() - 1000
    for n in range(120):
        stamp = jobstatus._record.utc_now_iso(base + n)
        store.write(f"job{n:03}", Change(set={"status": "completed", "updated_at": stamp}))
    pages, before = [], None
    while True:
        page = jobstatus.recent("completed", limit=50, before=before)
        if not page:
            break
        pages.append([s.job_id for s in page])
        before = page[-1]["updated_at"]
    assert [len(page) for page in pages] == [50, 50, 20]
    assert sum(pages, []) == [f"job{n:03}" for n in reversed(range(120))]


def test_batch_reads_of_ten_thousand_jobs(store: RedisStore) -> None:
    client = store._scripts().client
    pipe = client.pipeline(transaction=False)
    for n in range(10_000):
        pipe.hset(f"{store.prefix}r:b{n}", "status", '"completed"' if n % 2 else '"queued"')
    pipe.execute()
    batch = jobstatus.Batch([f"b{n}" for n in range(10_001)])
    assert batch.counts == {
        "queued": 5_000,
        "working": 0,
        "completed": 5_000,
        "failed": 0,
        "cancelled": 0,
        "missing": 1,
    }


# -- URLs, clients and options ---------------------------------------------------


def test_url_options_and_store_from_url(prefix: str) -> None:
    require_service("Redis", REDIS_URL, 6379)
    store = jobstatus.store_from_url(f"{REDIS_URL}?prefix={prefix}&timeout=2")
    assert isinstance(store, RedisStore)
    assert store.prefix == prefix and store.timeout == 2.0
    store.write("u", Change(set={"a": 1}))
    assert RedisStore.from_url(REDIS_URL, prefix=prefix).read("u") == {"a": 1}
    store.delete("u")
    store.close()


def test_ready_clients_sync_and_async(prefix: str) -> None:
    require_service("Redis", REDIS_URL, 6379)
    import redis
    import redis.asyncio

    sync_client = redis.Redis.from_url(REDIS_URL)
    jobstatus.configure(store=sync_client)
    jobstatus.get("c")["a"] = 1  # the default prefix, through store_from_client
    assert jobstatus.get("c")["a"] == 1
    jobstatus.get("c").delete()

    store = RedisStore(client=sync_client, prefix=prefix)
    store.write("c", Change(set={"b": 2}))

    async def use_async_client() -> object:
        async_client = redis.asyncio.Redis.from_url(REDIS_URL)
        async_store = RedisStore(client=async_client, prefix=prefix)
        found = await async_store.aread("c")
        assert async_store.read("c") == found  # the sync side reaches the same server
        await async_store.adelete("c")
        await async_client.aclose()
        async_store.close()
        return found

    assert asyncio.run(use_async_client()) == {"b": 2}
    assert store.read("c") is None
    sync_client.close()


def test_a_client_that_decodes_responses(prefix: str) -> None:
    require_service("Redis", REDIS_URL, 6379)
    import redis

    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    store = TidyRedisStore(client=client, prefix=prefix)
    jobstatus.configure(store=store)
    Job("text").enqueued()
    store.write("text", Change(set={"n": [1, "é"]}, incr={"progress": 1.5}))
    assert store.read("text") == jobstatus.get("text").to_dict()
    assert store.read("text")["n"] == [1, "é"]
    assert [s.job_id for s in jobstatus.recent("queued")] == ["text"]
    with store.subscribe("text") as subscription:
        store.write("text", Change(set={"status": "completed"}))
        pushed = subscription.wait(5)
    assert pushed is not None and pushed[-1]["status"] == "completed"
    store.close()
    client.close()


def test_concurrent_async_writers_on_one_loop_add_up(store: RedisStore) -> None:
    async def writer() -> None:
        for _ in range(10):
            await store.awrite("async-counter", Change(incr={"progress": 1}))

    async def main() -> None:
        await asyncio.gather(*(writer() for _ in range(100)))
        assert (await store.aread("async-counter")) == {"progress": 1_000}

    asyncio.run(main())
    assert store.read("async-counter") == {"progress": 1_000}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"prefix": 3}, "prefix must be a str"),
        ({"prefix": "a\nb"}, "control characters"),
        ({"prefix": "p" * 201}, "the limit is 200"),
        ({"timeout": 0}, "positive number"),
        ({"timeout": "1"}, "positive number"),
        ({"timeout": float("inf")}, "finite"),
    ],
)
def test_bad_options_are_configuration_errors(options: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RedisStore(REDIS_URL, **options)


def test_bad_urls_and_arguments() -> None:
    with pytest.raises(ConfigurationError, match="timeout in the store URL"):
        jobstatus.store_from_url("redis://127.0.0.1:6379/0?timeout=soon")
    with pytest.raises(ConfigurationError, match="needs a URL or a client"):
        RedisStore()
    with pytest.raises(ConfigurationError, match="needs a URL or a client"):
        RedisStore(REDIS_URL, client=object())


def test_a_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "redis", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'jobstatus\[redis\]'"):
        jobstatus.store_from_url("redis://127.0.0.1:6379/0")


def test_messages_hide_the_password() -> None:
    store = RedisStore("redis://:s3cret@127.0.0.1:1/0", timeout=0.5)
    assert "s3cret" not in store.describe()
    with pytest.raises(StoreError) as raised:
        store.read("x")
    assert "s3cret" not in str(raised.value)


def test_the_docs_examples_run(tmp_path: Path) -> None:
    require_service("Redis", REDIS_URL, 6379)
    import re
    import subprocess
    import sys

    doc = (Path(__file__).parent.parent / "docs" / "stores.md").read_text()
    section = doc[doc.index("## Redis and Redis Cluster") :]
    section = section[: section.find("\n## ", 1) if "\n## " in section[1:] else None]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks
    script = tmp_path / "redis_doc.py"
    script.write_text("\n".join(blocks).replace("redis://localhost:6379/0", REDIS_URL))
    try:
        result = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=60
        )
    finally:
        scrub(TidyRedisStore.from_url(REDIS_URL, prefix="docs-example:"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["completed", "1000", "True"]


@pytest.mark.timeout(600)  # 60,000 writes and their group moves, on a shared machine
def test_eight_processes_writing_2500_children_each_leave_exact_group_counts(
    store: RedisStore, prefix: str
) -> None:
    _redis_checks.children_from_processes_add_up(
        lambda: RedisStore.from_url(REDIS_URL, prefix=prefix)
    )


def test_a_cancel_reaches_a_job_running_in_another_process_by_push(
    store: RedisStore, prefix: str
) -> None:
    _redis_checks.cancel_reaches_another_process(
        lambda: RedisStore.from_url(REDIS_URL, prefix=prefix)
    )


def test_counts_drop_expired_records_and_deleted_ones(store: RedisStore) -> None:
    store.write("short", Change(set={"status": "failed"}, ttl=0.05, finished_ttl=0.05))
    store.write("kept", Change(set={"status": "failed"}))
    store.write("gone", Change(set={"status": "working"}))
    store.delete("gone")
    deadline = time.monotonic() + 10
    while store.read("short") is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert store.count_by_status()["failed"] == 1
    assert store.count_by_status()["working"] == 0


def test_a_group_chain_rolls_up_in_one_write(store: RedisStore) -> None:
    top = jobstatus.group(name="top")
    middle = jobstatus.group(name="middle", parent=top)
    child = Job("deep-child", parent=middle)
    child.enqueued()
    written = store.write(
        "deep-child", Change(set={"status": "working", "updated_at": "2026-01-01T00:00:00+00:00"})
    )
    assert written.applied
    assert store.read(middle.job_id)["children"]["working"] == 1
    assert store.read(top.job_id)["status"] == "working"
    assert store.read(top.job_id)["updated_at"] == "2026-01-01T00:00:00+00:00"
