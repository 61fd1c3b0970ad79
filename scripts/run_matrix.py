"""Run nox sessions in parallel lanes, each lane on its own Redis server.

    python3 dev.py matrix                    # every session of noxfile.py, two lanes
    python3 dev.py matrix celery-lowest lint # some of them
    python3 dev.py matrix --lanes 1          # one at a time

Each session's output goes to .nox/logs/NAME.log; a line is printed as each one
ends (its time and pytest's summary), then a table of every session, and the log
tail of each that failed. Exits 1 if any session failed.

Two sessions of one group (``celery-lowest`` and ``celery-latest``) never run at the
same time: they use the same queue names on the same RabbitMQ vhost. Each lane
starts its own redis-server on a free port, because the integration tests use fixed
Redis databases (and one flushes its database after each example).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / ".nox" / "logs"
SESSION_TIMEOUT = 20 * 60  # seconds; the longest session takes under 3 minutes

# Minutes each group took on the 2-core CI machine: the longest start first.
EXPECTED = {
    "celery": 6, "django": 5, "dramatiq": 4, "rq": 4, "huey": 3, "arq": 3, "taskiq": 3,
    "web": 3, "redis": 2, "postgres": 2, "memcached": 1, "extras-all": 2, "extras-arq": 1,
    "lint": 1,
}  # fmt: skip


@dataclass
class Result:
    name: str
    ok: bool
    seconds: float
    summary: str


def group(name: str) -> str:
    """``celery-lowest`` -> ``celery``; ``extras-all-3.10`` -> ``extras-all``."""
    return name.rsplit("-", 1)[0]


def sessions() -> list[str]:
    listed = subprocess.run(
        [sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py"), "-l", "--json"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return [entry["session"] for entry in json.loads(listed.stdout)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A throwaway redis-server (no persistence) for one lane."""
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(folder), "--databases", "16"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise RuntimeError(f"redis-server did not start on port {port}")


def pytest_summary(log: Path) -> str:
    """The last line pytest or nox printed that says how it went."""
    lines = log.read_text(errors="replace").splitlines()
    for line in reversed(lines):
        text = line.strip("= ").strip()
        if (" passed" in text or " failed" in text or " error" in text) and " in " in text:
            return text
    return lines[-1].strip() if lines else ""


class Lanes:
    def __init__(self, names: list[str], lanes: int) -> None:
        self.pending = sorted(names, key=lambda name: -EXPECTED.get(group(name), 2))
        self.running: set[str] = set()
        self.results: list[Result] = []
        self.lock = threading.Lock()
        self.count = lanes

    def take(self) -> str | None:
        while True:
            with self.lock:
                if not self.pending:
                    return None
                for name in self.pending:
                    if group(name) not in self.running:
                        self.pending.remove(name)
                        self.running.add(group(name))
                        return name
            time.sleep(0.5)

    def lane(self, number: int, redis_url: str) -> None:
        env = {**os.environ, "JOBSTATUS_TEST_REDIS_URL": redis_url}
        while (name := self.take()) is not None:
            log = LOGS / f"{name}.log"
            started = time.monotonic()
            with log.open("w") as out:
                nox = subprocess.Popen(
                    [sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py"), "-s", name],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=ROOT,
                    env=env,
                    start_new_session=True,  # its own process group, to end it whole
                )
                try:
                    code = nox.wait(timeout=SESSION_TIMEOUT)
                except subprocess.TimeoutExpired:
                    # A call that hangs in C code (a frozen server) outlasts pytest-timeout.
                    os.killpg(nox.pid, signal.SIGKILL)
                    code = nox.wait()
                    out.write(f"\nrun_matrix: {name} killed after {SESSION_TIMEOUT} s\n")
            result = Result(name, code == 0, time.monotonic() - started, pytest_summary(log))
            with self.lock:
                self.running.discard(group(name))
                self.results.append(result)
            verdict = "passed" if result.ok else "FAILED"
            print(
                f"[lane {number}] {name}: {verdict} in {clock(result.seconds)}  {result.summary}",
                flush=True,
            )

    def run(self) -> list[Result]:
        LOGS.mkdir(parents=True, exist_ok=True)
        servers = []
        with tempfile.TemporaryDirectory(prefix="jobstatus-matrix-") as tmp:
            try:
                threads = []
                for number in range(1, self.count + 1):
                    folder = Path(tmp) / f"lane{number}"
                    folder.mkdir()
                    server, url = start_redis(folder)
                    servers.append(server)
                    thread = threading.Thread(target=self.lane, args=(number, url))
                    thread.start()
                    threads.append(thread)
                for thread in threads:
                    thread.join()
            finally:
                for server in servers:
                    server.terminate()
                    server.wait(timeout=10)
        return self.results


def clock(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="sessions to run (default: all)")
    parser.add_argument("--lanes", type=int, default=2)
    parser.add_argument("--skip", action="append", default=[], help="a session to leave out")
    args = parser.parse_args(argv)
    if shutil.which("redis-server") is None:
        print("redis-server is needed: each lane runs its own")
        return 2
    known = sessions()
    unknown = [name for name in [*args.names, *args.skip] if name not in known]
    if unknown:
        print(f"no such session: {', '.join(unknown)} (see `.venv/bin/nox -l`)")
        return 2
    names = [name for name in args.names or known if name not in args.skip]
    print(f"matrix: {len(names)} sessions in {args.lanes} lanes; logs in {LOGS}", flush=True)
    started = time.monotonic()
    results = Lanes(names, args.lanes).run()
    wall = time.monotonic() - started
    failed = [result for result in results if not result.ok]
    for result in failed:
        print(f"\n==== {result.name} failed; the end of .nox/logs/{result.name}.log:")
        lines = (LOGS / f"{result.name}.log").read_text(errors="replace").splitlines()
        print("\n".join(lines[-60:]))
    print("\n| session | result | time | tests |\n|---|---|---|---|")
    for result in sorted(results, key=lambda r: r.name):
        verdict = "passed" if result.ok else "FAILED"
        print(f"| {result.name} | {verdict} | {clock(result.seconds)} | {result.summary} |")
    total = sum(result.seconds for result in results)
    print(
        f"\nmatrix: {len(results) - len(failed)} sessions passed, {len(failed)} failed "
        f"in {clock(wall)} ({clock(total)} of session time)"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
