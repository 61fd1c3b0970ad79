"""The Redis Cluster store on a real 3-master cluster this session starts."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
from collections.abc import Iterator

import pytest

import jobstatus
from jobstatus import ConfigurationError, Job
from jobstatus._record import Change, utc_now_iso
from jobstatus.stores.redis_cluster import BUCKETS, RedisClusterStore

from . import _redis_checks
from ._redis_servers import TidyRedisClusterStore, shared_cluster
from .stores import namespace

pytestmark = pytest.mark.redis_cluster
fork = multiprocessing.get_context("fork")

ODD_IDS = ["{a}", "{a}b", "a{}", "}{", "{{x}}", "plain", "ünï {tag} ✓", "x" * 512]


@pytest.fixture
def store() -> Iterator[RedisClusterStore]:
    built = TidyRedisClusterStore.from_url(shared_cluster().url, prefix=f"t{namespace()}:")
    jobstatus.configure(store=built, throttle_interval=0)
    yield built
    built.close()


def test_a_jobs_keys_share_one_slot_whatever_its_id(store: RedisClusterStore) -> None:
    client = store._scripts().client
    layout = store._layout
    for job_id in ODD_IDS:
        keys = [*layout.script_keys(job_id), layout.channel(job_id)]
        slots = {client.cluster_keyslot(key) for key in keys}
        assert len(slots) == 1, job_id
        store.write(job_id, Change(set={"id": job_id}))
    for job_id in ODD_IDS:
        assert jobstatus.get(job_id)["id"] == job_id


def test_ids_with_the_same_braces_still_spread_over_the_nodes(store: RedisClusterStore) -> None:
    client = store._scripts().client
    ids = [f"{{same}}-{n}" for n in range(60)]
    for job_id in ids:
        store.write(job_id, Change(set={"n": 1}))
    nodes = {client.get_node_from_key(store._layout.record(job_id)).name for job_id in ids}
    assert len(nodes) == 3
    assert len(store.list_recent(None, 100, None)) == 60


def test_a_batch_of_ten_thousand_jobs_across_the_nodes(store: RedisClusterStore) -> None:
    client = store._scripts().client
    pipe = client.pipeline()
    for n in range(10_000):
        pipe.hset(store._layout.record(f"b{n}"), "status", '"failed"' if n % 4 else '"working"')
    pipe.execute()
    batch = jobstatus.Batch([f"b{n}" for n in range(10_000)] + ["absent"])
    assert batch.counts == {
        "queued": 0,
        "working": 2_500,
        "completed": 0,
        "failed": 7_500,
        "cancelled": 0,
        "missing": 1,
    }
    assert batch.status == "failed"


def test_listing_merges_every_bucket_newest_first(store: RedisClusterStore) -> None:
    base = time.time() - 1000
    for n in range(150):
        status = "completed" if n % 3 else "failed"
        stamp = utc_now_iso(base + n)
        store.write(f"job{n:03}", Change(set={"status": status, "updated_at": stamp}))
    newest = [s.job_id for s in jobstatus.recent(limit=10)]
    assert newest == [f"job{n:03}" for n in range(149, 139, -1)]
    pages, before = [], None
    while page := jobstatus.recent("completed", limit=40, before=before):
        pages.append([s.job_id for s in page])
        before = page[-1]["updated_at"]
    assert [len(page) for page in pages] == [40, 40, 20]
    assert sum(pages, []) == [f"job{n:03}" for n in range(149, -1, -1) if n % 3]
    assert len(jobstatus.recent("failed", limit=1000)) == 50


def _increment_with(store: RedisClusterStore, job_id: str, times: int, start_at: float) -> None:
    time.sleep(max(0.0, start_at - time.time()))
    status = jobstatus.get(job_id, store=store)
    for _ in range(times):
        status.progress.increment()


def test_forked_processes_add_up_on_the_cluster(store: RedisClusterStore) -> None:
    store.write("counter", Change(set={"status": "working"}))
    start_at = time.time() + 0.5
    processes = [
        fork.Process(target=_increment_with, args=(store, "counter", 1_000, start_at))
        for _ in range(8)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    assert jobstatus.get("counter").progress.current == 8_000


EXPECTED = [("queued", 0)] + [("working", n) for n in range(4)] + [("completed", 3)]


def _run_job(job_id: str, watching: threading.Event) -> None:
    watching.wait(10)
    job = Job(job_id)
    job.started()
    for _ in range(3):
        job.status.progress.increment()
    job.finished()


def test_watchers_are_pushed_every_state(store: RedisClusterStore) -> None:
    for job_id in ("w{1}", "w{2}"):
        Job(job_id).enqueued()
    watching = threading.Event()
    worker = threading.Thread(target=_run_job, args=("w{1}", watching))
    worker.start()
    seen = []
    for snapshot in jobstatus.get("w{1}").watch(timeout=20):
        seen.append((snapshot.status, snapshot.progress.current))
        watching.set()
    worker.join()
    assert seen == EXPECTED

    async def watch() -> list[tuple[str | None, float]]:
        seen = []
        async for snapshot in jobstatus.get("w{2}").awatch(timeout=20):
            seen.append((snapshot.status, snapshot.progress.current))
            async_watching.set()
        return seen

    async_watching = threading.Event()
    worker = threading.Thread(target=_run_job, args=("w{2}", async_watching))
    worker.start()
    assert asyncio.run(watch()) == EXPECTED
    worker.join()


def test_async_twins(store: RedisClusterStore) -> None:
    async def main() -> None:
        await store.awrite("a", Change(set={"status": "queued"}, incr={"n": 2}))
        assert await store.aread("a") == {"status": "queued", "n": 2}
        assert await store.aread_many(["a", "b"]) == [{"status": "queued", "n": 2}, None]
        assert [job_id for job_id, _ in await store.alist_recent("queued", 5, None)] == ["a"]
        await store.adelete("a")
        assert await store.aread("a") is None
        await store.aclose()

    asyncio.run(main())


def test_a_ready_cluster_client(store: RedisClusterStore) -> None:
    import redis.cluster

    client = redis.cluster.RedisCluster.from_url(
        shared_cluster().url.replace("+cluster", "", 1).split(",")[0]
    )
    wrapped = jobstatus.stores.store_from_client(client, prefix=store.prefix)
    assert isinstance(wrapped, RedisClusterStore)
    wrapped.write("ready", Change(set={"a": 1}))
    assert store.read("ready") == {"a": 1}
    assert asyncio.run(wrapped.aread("ready")) == {"a": 1}
    wrapped.close()
    client.close()


def test_a_ready_async_cluster_client(store: RedisClusterStore) -> None:
    import redis.asyncio.cluster

    host, port = shared_cluster().url.removeprefix("redis+cluster://").split(",")[0].split(":")
    client = redis.asyncio.cluster.RedisCluster(host=host, port=int(port))
    wrapped = RedisClusterStore(client=client, prefix=store.prefix)
    wrapped.write("sync-side", Change(set={"a": 1}))  # through a sync twin of the client

    async def main() -> object:
        found = await wrapped.aread("sync-side")
        await client.aclose()
        return found

    assert asyncio.run(main()) == {"a": 1}
    wrapped.close()


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("redis+cluster://127.0.0.1:7000", {"prefix": "a{b}"}, "must not contain '{'"),
        ("redis+cluster://127.0.0.1:7000", {"prefix": "a}"}, "must not contain '}'"),
        ("redis+cluster://", {}, "names no node"),
        ("redis+cluster://127.0.0.1", {}, "is not host:port"),
        ("redis+cluster://127.0.0.1:7000/3", {}, "only database 0"),
    ],
)
def test_bad_cluster_urls_and_prefixes(url: str, options: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        jobstatus.store_from_url(url, **options)


def test_buckets_cover_the_tags() -> None:
    tags = {
        RedisClusterStore.from_url("redis+cluster://h:1")._layout.tag(f"id{n}") for n in range(5000)
    }
    assert len(tags) == BUCKETS


def _same_store(store: RedisClusterStore) -> RedisClusterStore:
    return RedisClusterStore.from_url(shared_cluster().url, prefix=store.prefix)


@pytest.mark.timeout(600)  # 60,000 writes and their group moves, on a shared machine
def test_eight_processes_writing_2500_children_each_leave_exact_group_counts(
    store: RedisClusterStore,
) -> None:
    _redis_checks.children_from_processes_add_up(lambda: _same_store(store))


def test_a_cancel_reaches_a_job_running_in_another_process_by_push(
    store: RedisClusterStore,
) -> None:
    _redis_checks.cancel_reaches_another_process(lambda: _same_store(store))


def _child_change(status: str, n: int) -> Change:
    return Change(
        set={"status": status, "parent": "g", "updated_at": utc_now_iso()}, origin=("w", n)
    )


def test_a_group_move_sent_twice_counts_once(store: RedisClusterStore) -> None:
    from jobstatus.stores._redis_common import first_move, move_args, write_args

    jobstatus.group(name="g", group_id="g")
    layout, scripts = store._layout, store._scripts()
    change = _child_change("queued", 1)
    reply = scripts.write(layout.script_keys("c1"), write_args(layout, "c1", change))
    move = first_move("c1", change, reply)
    assert move is not None and move.group == "g"
    assert store.read("g")["children"]["queued"] == 0  # the write alone does not move it
    for _ in range(3):  # the move, then the same move sent again twice
        scripts.move(layout.move_keys("g"), move_args(layout, move, change))
    assert store.read("g")["children"]["queued"] == 1 and store.read("g")["total"] == 1


def test_a_lost_group_move_is_made_good_by_the_next_write(store: RedisClusterStore) -> None:
    from jobstatus.stores._redis_common import write_args

    jobstatus.group(name="g", group_id="g")
    layout, scripts = store._layout, store._scripts()
    store.write("c1", _child_change("queued", 1))
    # The next write lands, but its group's move is lost (a crash between the two calls).
    lost = _child_change("working", 2)
    scripts.write(layout.script_keys("c1"), write_args(layout, "c1", lost))
    assert store.read("g")["children"]["queued"] == 1  # one move behind
    assert store.write("c1", _child_change("completed", 3)).applied
    g = store.read("g")
    assert (g["children"]["completed"], g["children"]["queued"], g["total"]) == (1, 0, 1)
    assert g["status"] == "completed"


def test_a_write_sent_again_sends_its_lost_group_move_again(store: RedisClusterStore) -> None:
    from jobstatus.stores._redis_common import write_args

    jobstatus.group(name="g", group_id="g")
    layout, scripts = store._layout, store._scripts()
    change = _child_change("working", 1)
    scripts.write(layout.script_keys("c1"), write_args(layout, "c1", change))  # move lost
    assert store.write("c1", change).applied is False  # the writer's retry: applied once
    g = store.read("g")
    assert g["children"]["working"] == 1 and g["total"] == 1 and g["status"] == "working"
