"""Throwaway redis-server processes for tests: a single server and a 3-master cluster.

Each runs from a temp folder on free ports with persistence off, and is torn
down by the test (or the session) that started it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from jobstatus.stores.redis import RedisStore
from jobstatus.stores.redis_cluster import RedisClusterStore

from .stores import IN_CI

START_TIMEOUT = 20.0
# A server must not outlive a test run that was killed before its teardown.
_DIE_WITH_PARENT = ["setpriv", "--pdeathsig", "TERM"] if shutil.which("setpriv") else []


def need_redis_server() -> None:
    """Skip without a redis-server binary (fail under CI=true)."""
    if shutil.which("redis-server") and shutil.which("redis-cli"):
        return
    if IN_CI:
        pytest.fail("redis-server and redis-cli must be installed under CI=true")
    pytest.skip("redis-server is not installed")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, with_bus: bool = False) -> int:
    """A free port (and, for a cluster node, its bus port +10000 free too)."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port < 55_000 and (not with_bus or _free(port + 10_000)):
            return port


def _wait_until(check: object, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not happen in {START_TIMEOUT} s")


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server on a free port, stoppable and restartable on the same port."""

    def __init__(self, folder: Path, port: int | None = None, *extra: str) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                *_DIE_WITH_PARENT,
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_until(lambda: _answers(self.port), f"redis-server answering on {self.port}")
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)


class RedisCluster:
    """Three masters formed with ``redis-cli --cluster create``."""

    def __init__(self) -> None:
        self.folder: Path | None = None  # made by start(), so naming the ports leaves nothing
        self.ports = [free_port(with_bus=True) for _ in range(3)]
        self.nodes: list[RedisServer] = []

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def start(self) -> RedisCluster:
        self.folder = Path(tempfile.mkdtemp(prefix="jobstatus-cluster-"))
        try:
            for n, port in enumerate(self.ports):
                node = RedisServer(
                    self.folder / f"node{n}",
                    port,
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                )
                self.nodes.append(node.start())
            addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
            subprocess.run(
                ["redis-cli", "--cluster", "create", *addresses, "--cluster-yes"],
                check=True,
                capture_output=True,
                timeout=START_TIMEOUT,
            )
            _wait_until(self._ok, "the cluster reaching cluster_state:ok")
        except BaseException:
            self.stop()
            raise
        return self

    def _ok(self) -> bool:
        for node in self.nodes:
            info = subprocess.run(
                ["redis-cli", "-p", str(node.port), "cluster", "info"],
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout
            if "cluster_state:ok" not in info:
                return False
        return True

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.nodes = []
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


_shared: RedisCluster | None = None


def cluster_url() -> str:
    """The session cluster's URL; its ports are chosen now, the servers start on first use."""
    global _shared
    if _shared is None:
        _shared = RedisCluster()
    return _shared.url


def shared_cluster() -> RedisCluster:
    """The session's cluster, started on first use (stopped by ``stop_shared_cluster``)."""
    need_redis_server()
    cluster_url()
    assert _shared is not None
    if not _shared.nodes:
        _shared.start()
    return _shared


def stop_shared_cluster() -> None:
    global _shared
    cluster, _shared = _shared, None
    if cluster is not None:
        cluster.stop()


def scrub(store: RedisStore) -> None:
    """Delete every key under the store's prefix."""
    client = store._scripts().client
    keys = list(client.scan_iter(match=f"{store.prefix}*", count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.delete(key)
    pipe.execute()


class TidyRedisStore(RedisStore):
    """A RedisStore whose ``close()`` also deletes every key under its prefix."""

    def close(self) -> None:
        scrub(self)
        super().close()


class TidyRedisClusterStore(RedisClusterStore):
    """A RedisClusterStore whose ``close()`` also deletes every key under its prefix."""

    def close(self) -> None:
        scrub(self)
        super().close()


_case_prefixes: set[tuple[str, str]] = set()  # (url, prefix) of every Redis case store


def redis_case_store(url: str, ns: str) -> RedisStore:
    _case_prefixes.add((url, f"t{ns}:"))
    return TidyRedisStore.from_url(url, prefix=f"t{ns}:")


def scrub_case_prefixes() -> None:
    """Delete what other processes wrote under the Redis cases' prefixes after
    the case store was closed (tests that hand its URL to workers)."""
    while _case_prefixes:
        url, prefix = _case_prefixes.pop()
        store = RedisStore.from_url(url, prefix=prefix, timeout=2)
        try:
            scrub(store)
        except Exception:  # noqa: BLE001 - a server gone by now has nothing to clean
            pass
        finally:
            store.close()


def cluster_case_store(ns: str) -> RedisClusterStore:
    return TidyRedisClusterStore.from_url(shared_cluster().url, prefix=f"t{ns}:")
