"""The memcached store beyond the contract: CAS under contention, keys, sizes, outages."""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

import jobstatus
from jobstatus import ConfigurationError, NotSupportedError, Status, StoreError, WriteRefused
from jobstatus._record import Change, dumps
from jobstatus.stores import Written

from . import _workers
from ._outage import job_through_outage
from ._own_servers import MemcachedServer
from ._refusals import job_with_a_refused_write
from .stores import MEMCACHED_URL, namespace, require_service

pytestmark = pytest.mark.memcached
pymemcache = pytest.importorskip("pymemcache")
spawn = multiprocessing.get_context("spawn")

from jobstatus.stores.memcached import MemcachedStore  # noqa: E402 - after the driver check


class _Tracked(MemcachedStore):
    """Deletes what it wrote when the test ends."""

    written: set[str]

    def write(self, job_id: str, change: Change) -> Written:
        self.written.add(job_id)
        return super().write(job_id, change)

    def clean(self) -> None:
        for job_id in self.written:
            self.delete(job_id)
        self.close()


def _tracked(url: str, **options: object) -> _Tracked:
    store = _Tracked.from_url(url, **options)
    store.written = set()
    return store


@pytest.fixture
def prefix() -> str:
    require_service("memcached", MEMCACHED_URL, 11211)
    return f"t{namespace()}:"


@pytest.fixture
def store(prefix: str) -> Iterator[_Tracked]:
    built = _tracked(MEMCACHED_URL, prefix=prefix)
    jobstatus.configure(store=built)
    yield built
    built.clean()


def _run_all(target, argument_lists: list[tuple]) -> None:
    processes = [spawn.Process(target=target, args=args) for args in argument_lists]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0


# -- many writers ------------------------------------------------------------------------


def test_eight_processes_of_2500_increments_leave_exactly_20000(store: _Tracked) -> None:
    url = f"{MEMCACHED_URL}?prefix={store.prefix}"
    start_at = time.time() + 1.5
    store.written.add("counter")
    _run_all(_workers.increment, [(url, "counter", 2500, start_at) for _ in range(8)])
    assert jobstatus.get("counter").progress.current == 20_000


def test_two_processes_writing_different_keys_lose_nothing(store: _Tracked) -> None:
    url = f"{MEMCACHED_URL}?prefix={store.prefix}"
    start_at = time.time() + 1.5
    store.written.add("shared")
    _run_all(_workers.write_keys, [(url, "shared", p, 400, start_at) for p in ("a", "b")])
    record = jobstatus.get("shared").to_dict()
    assert all(record[f"{p}{n}"] == n for p in ("a", "b") for n in range(400))


# -- keys, sizes, expiry, listing -----------------------------------------------------------


def test_awkward_ids_get_distinct_safe_keys_and_round_trip(store: _Tracked) -> None:
    ids = [
        "with space",
        "with  space",
        "tab-free ünïcode ✓ 日本",
        "x" * 512,
        "x" * 511,
        "y" * 200,  # kept readable
        "y" * 201,  # hashed
        "h:" + "0" * 64,  # looks like a hashed key, and is not one
        "i:plain",
        "plain",
    ]
    for n, job_id in enumerate(ids):
        jobstatus.get(job_id)["n"] = n
    keys = [store.key(job_id) for job_id in ids]
    assert len(set(keys)) == len(ids)
    for key in keys:
        assert len(key.encode()) <= 250 and all(33 <= ord(char) <= 126 for char in key)
    assert [jobstatus.get(job_id)["n"] for job_id in ids] == list(range(len(ids)))
    assert [record["n"] for record in store.read_many(ids)] == list(range(len(ids)))


def test_a_record_over_the_size_limit_is_refused_naming_the_job(store: _Tracked) -> None:
    jobstatus.get("sized").update(step="A")
    with pytest.raises(WriteRefused, match="'sized'.*1,04[0-9],[0-9]{3} bytes"):
        jobstatus.get("sized").update(blob="x" * (1024 * 1024))
    record = jobstatus.get("sized").to_dict()
    assert record["step"] == "A" and "blob" not in record
    small = _tracked(MEMCACHED_URL, prefix=store.prefix, max_value_size=100)
    with pytest.raises(WriteRefused, match="at most 100"):
        small.write("sized", Change(set={"blob": "x" * 200}))
    small.close()


def test_a_server_with_a_smaller_item_limit_refuses_too(store: _Tracked) -> None:
    roomy = _tracked(MEMCACHED_URL, prefix=store.prefix, max_value_size=4 * 1024 * 1024)
    with pytest.raises(WriteRefused, match="too large"):  # the server's own -I 1m
        roomy.write("sized", Change(set={"blob": "x" * 1_500_000}))
    assert roomy.write("sized", Change(set={"step": "A"})) == Written(created=True)
    roomy.clean()


def test_a_job_that_writes_a_2_mb_value_completes_without_it(
    store: _Tracked, caplog: pytest.LogCaptureFixture
) -> None:
    def big_value(status: Status) -> None:
        status.update(blob="x" * 2_000_000, small="fits", force=True)

    final = job_with_a_refused_write(big_value, caplog)
    assert final["small"] == "fits" and "blob" not in final
    assert final.progress.current == 10
    assert "'blob'" in caplog.text and "1,047,552" in caplog.text


def test_a_record_growing_past_the_limit_keeps_every_key_that_fits(
    store: _Tracked, caplog: pytest.LogCaptureFixture
) -> None:
    chunk = "x" * 300_000

    def grow(status: Status) -> None:
        status["a"] = chunk
        status["b"] = chunk
        status.update(c=chunk, d=chunk, e="small", force=True)  # c fits, d does not

    final = job_with_a_refused_write(grow, caplog)
    assert [key for key in "abcde" if key in final] == ["a", "b", "c", "e"]


def _fill_to(store: _Tracked, status: Status, margin: int) -> None:
    """Set ``blob`` so the record would be ``margin`` bytes under the store's limit."""
    status["blob"] = ""
    size = len(dumps(store.read(status.job_id)).encode())
    status["blob"] = "x" * (store.max_value_size - size - margin)


@pytest.mark.parametrize("ending", ["completed", "failed"])
@pytest.mark.parametrize("margin", [5, 40, 80, 120, 200, 4_000])
def test_a_job_filling_its_record_to_just_under_the_limit_still_ends(
    store: _Tracked, caplog: pytest.LogCaptureFixture, margin: int, ending: str
) -> None:
    # Before, a blob leaving 40 to 120 bytes was stored, and the final transition,
    # which adds finished_at and a history entry, was refused alone and kept for
    # good: the job returned and its record stayed working, with no warning.
    @jobstatus.track(throttle_interval=0)
    def job(ids: list[str]) -> None:
        ids.append(jobstatus.current().job_id)
        _fill_to(store, jobstatus.current(), margin)
        jobstatus.current()["after"] = "kept"
        if ending == "failed":
            raise RuntimeError("after the blob")

    ids: list[str] = []
    with caplog.at_level(logging.WARNING, logger="jobstatus"):
        try:
            job(ids)
        except RuntimeError:
            assert ending == "failed"
    final = jobstatus.get(ids[0])
    assert final.status == ending, final.to_dict()
    assert final["blob"] == "" and final["after"] == "kept"  # the big blob dropped
    assert "'blob'" in caplog.text and "so it was dropped" in caplog.text
    assert "holds at most 1,047,552 per value" in caplog.text


def test_a_blob_leaving_the_lifecycle_headroom_is_kept(
    store: _Tracked, caplog: pytest.LogCaptureFixture
) -> None:
    @jobstatus.track(throttle_interval=0)
    def job() -> str:
        _fill_to(store, jobstatus.current(), 64 * 1024)
        return jobstatus.current().job_id

    with caplog.at_level(logging.WARNING, logger="jobstatus"):
        final = jobstatus.get(job())
    assert final.is_completed and len(final["blob"]) > 900_000
    assert "dropped" not in caplog.text


def test_listing_is_not_supported(store: _Tracked) -> None:
    with pytest.raises(NotSupportedError, match="cannot list"):
        jobstatus.recent()


def test_expiries_past_thirty_days_are_kept(store: _Tracked) -> None:
    forty_days = 40 * 24 * 3600
    store.write("long", Change(set={"a": 1}, ttl=forty_days, finished_ttl=forty_days))
    assert store.read("long") == {"a": 1}  # not read by memcached as a date in 1970


def test_url_options(prefix: str) -> None:
    store = jobstatus.store_from_url(f"{MEMCACHED_URL}?prefix={prefix}&timeout=2")
    assert isinstance(store, MemcachedStore)
    assert (store.prefix, store.timeout) == (prefix, 2.0)
    store.close()
    for bad in ("memcached://h:x", "memcached://h:1,,h:2", "memcached://h?bogus=1"):
        with pytest.raises(ConfigurationError):
            jobstatus.store_from_url(bad)
    with pytest.raises(ConfigurationError, match="prefix"):
        MemcachedStore([("127.0.0.1", 11211)], prefix="has space")


def test_ready_clients_work(prefix: str) -> None:
    from pymemcache.client.base import Client, PooledClient
    from pymemcache.client.hash import HashClient

    parts = urlsplit(MEMCACHED_URL.split(",")[0])
    server = (parts.hostname or "127.0.0.1", parts.port or 11211)  # the server under test
    for client in (Client(server), PooledClient(server), HashClient([server])):
        store = MemcachedStore(client=client, prefix=prefix)
        store.write("ready", Change(incr={"n": 1}))
        store.close()
        client.close()
    assert jobstatus.get("ready", store=MEMCACHED_URL + f"?prefix={prefix}")["n"] == 3
    jobstatus.get("ready", store=MEMCACHED_URL + f"?prefix={prefix}").delete()


# -- servers of our own: several at once, and outages ------------------------------------


@pytest.fixture
def own_server() -> Iterator[MemcachedServer]:
    server = MemcachedServer()
    server.start()
    yield server
    server.remove()


def test_several_servers_share_the_keys(own_server: MemcachedServer, prefix: str) -> None:
    require_service("memcached", MEMCACHED_URL, 11211)
    shared = urlsplit(MEMCACHED_URL).netloc
    url = f"memcached://{shared},127.0.0.1:{own_server.port}?prefix={prefix}"
    store = _tracked(url)
    ids = [f"spread-{n}" for n in range(40)]
    for n, job_id in enumerate(ids):
        store.write(job_id, Change(set={"n": n}, incr={"count": 1}))
    assert [record["n"] for record in store.read_many(ids)] == list(range(40))
    on_own = [job_id for job_id in ids if _holds(own_server.port, store.key(job_id))]
    assert 0 < len(on_own) < len(ids)  # both servers hold some
    own_server.stop()
    try:
        with pytest.raises(StoreError):
            store.read(on_own[0])  # a server down never reads as "unknown"
        with pytest.raises(StoreError):
            store.read_many(ids)
    finally:
        own_server.start()
    store.clean()


def _holds(port: int, key: str) -> bool:
    from pymemcache.client.base import Client

    client = Client(("127.0.0.1", port))
    try:
        return client.get(key) is not None
    finally:
        client.close()


def test_a_job_outlives_a_server_outage(
    own_server: MemcachedServer, caplog: pytest.LogCaptureFixture
) -> None:
    timeout = 1.0
    store = MemcachedStore.from_url(own_server.url, timeout=timeout)
    jobstatus.configure(store=store, on_store_error="warn")
    outage = job_through_outage(own_server, timeout)
    assert outage.result == "done"
    assert outage.read_while_down < timeout + 2
    warnings = [r for r in caplog.records if "could not write the status" in r.getMessage()]
    assert 1 <= len(warnings) < 10  # rate-limited: one warning for many failed writes
    assert outage.slowest_write < 2 * timeout + 2  # no write hung past its timeout
    final = jobstatus.get(outage.job_id)
    assert final.is_completed and final["step"] == 19
    store.close()
    jobstatus.configure(store=None)


def test_a_job_whose_record_vanished_in_a_restart_writes_it_back(
    own_server: MemcachedServer, caplog: pytest.LogCaptureFixture
) -> None:
    store = MemcachedStore.from_url(own_server.url, timeout=1.0)
    jobstatus.configure(store=store, on_store_error="warn")
    restarted = []

    @jobstatus.track
    def job() -> str:
        status = jobstatus.current()
        status.progress.total = 20
        status.update(step="A", source="s3://bucket/key")
        for n in range(20):
            if n == 12:
                own_server.stop()
                own_server.start()  # memcached keeps nothing across a restart
                restarted.append(jobstatus.get(status.job_id).exists)
            status.progress.increment()
        return status.job_id

    with caplog.at_level(logging.WARNING, logger="jobstatus"):
        job_id = job()
    assert restarted == [False]  # the record was gone when the job wrote next
    final = jobstatus.get(job_id)
    assert final.is_completed, final.to_dict()
    assert final.progress.current == 20 and final.progress.total == 20
    assert final["step"] == "A" and final["source"] == "s3://bucket/key"
    assert final["started_at"] and final["finished_at"]
    store.close()
    jobstatus.configure(store=None)


def test_the_docs_example_runs(tmp_path) -> None:
    require_service("memcached", MEMCACHED_URL, 11211)
    import re
    import subprocess
    import sys
    from pathlib import Path

    doc = (Path(__file__).parent.parent / "docs" / "stores.md").read_text()
    section = doc[doc.index("## memcached") :]
    end = section.find("\n## ", 1)
    section = section if end < 0 else section[:end]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    script = tmp_path / "memcached_doc.py"
    script.write_text("\n".join(blocks).replace("memcached://localhost:11211", MEMCACHED_URL))
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["completed 3", "memcached cannot list jobs"]


def test_a_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "pymemcache", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'jobstatus\[memcached\]'"):
        jobstatus.store_from_url(MEMCACHED_URL)


def test_a_server_that_is_not_there_fails_within_the_timeout() -> None:
    from ._own_servers import free_port

    store = MemcachedStore.from_url(f"memcached://127.0.0.1:{free_port()}", timeout=0.5)
    started = time.monotonic()
    with pytest.raises(StoreError, match="read of job 'x' failed"):
        store.read("x")
    with pytest.raises(StoreError):
        store.write("x", Change(set={"a": 1}))
    assert time.monotonic() - started < 3
    store.close()
