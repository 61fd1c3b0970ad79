"""Throwaway PostgreSQL and memcached servers on free ports, for outage tests.

Each server can be stopped and started again on the same port, so a test can
pull the store out from under a running job and bring it back.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from .stores import IN_CI


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, *, up: bool, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                listening = True
        except OSError:
            listening = False
        if listening == up:
            return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} did not go {'up' if up else 'down'}")


def _missing(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is not installed (CI=true: it must be)")
    pytest.skip(f"{what} is not installed")


class PostgresServer:
    """A private cluster made by ``initdb`` in a temp folder (as user postgres when root)."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            _missing("PostgreSQL's initdb")
        self.bin = Path(found[-1]).parent
        self.port = free_port()
        as_root = os.geteuid() == 0
        # As root the cluster runs as user postgres, who must reach its folder: nox's
        # TMPDIR lies inside the checkout, which may sit in a folder only root enters.
        self.root = Path(tempfile.mkdtemp(prefix="jobstatus-pg-", dir="/tmp" if as_root else None))
        self.data = self.root / "data"
        self._as_user: list[str] = []
        if as_root:
            self._as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self._as_user, str(self.bin / tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -F"
        log = str(self.root / "log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")
        wait_for_port(self.port, up=True)

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        wait_for_port(self.port, up=False)

    def remove(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, RuntimeError):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class MemcachedServer:
    """A memcached process on a free port."""

    def __init__(self) -> None:
        self.binary = shutil.which("memcached")
        if self.binary is None:
            _missing("memcached")
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"memcached://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.binary is not None
        command = [self.binary, "-l", "127.0.0.1", "-p", str(self.port), "-m", "16"]
        if os.geteuid() == 0:
            command += ["-u", "root"]
        self._process = subprocess.Popen(command)
        wait_for_port(self.port, up=True)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            process.wait(10)
        wait_for_port(self.port, up=False)

    def remove(self) -> None:
        self.stop()
