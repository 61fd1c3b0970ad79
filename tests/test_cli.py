"""The jobstatus command, run as a user runs it: a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import jobstatus
from jobstatus import Job
from jobstatus._record import Change
from jobstatus.stores import SQLiteStore


@pytest.fixture
def url(tmp_path: Path) -> str:
    store_url = f"sqlite:///{tmp_path / 'cli.db'}"
    jobstatus.configure(store=store_url)
    return store_url


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobstatus", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_demo_runs_to_completion(url: str) -> None:
    started = time.monotonic()
    result = run("--store", url, "demo")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 30
    assert "4 completed, 1 failed" in result.stdout
    assert len(jobstatus.recent()) == 5
    failed = jobstatus.recent(status="failed")
    assert len(failed) == 1 and "SMTP" in failed[0]["exception"]["message"]
    export = [s for s in jobstatus.recent(status="completed") if s.get("path") == "report.csv"]
    assert export and export[0].progress.current == 6000  # throttled, nothing lost


def test_get_prints_json_and_says_unknown(url: str) -> None:
    job = Job("cli-job")
    job.started()
    job.status.update(step="A", total=4, progress=1, force=True)
    result = run("get", "cli-job", "--json", "--store", url)
    assert result.returncode == 0
    record = json.loads(result.stdout)
    assert record["status"] == "working" and record["step"] == "A"
    human = run("get", "cli-job", "--store", url)
    assert "working" in human.stdout and "1 / 4" in human.stdout
    missing = run("get", "no-such-job", "--store", url)
    assert missing.returncode == 2 and "unknown" in missing.stdout


def test_get_rejects_a_malformed_id(url: str) -> None:
    result = run("get", "x" * 600, "--store", url)
    assert result.returncode == 3 and "512" in result.stderr


def test_watch_exit_codes(url: str) -> None:
    ok, bad = Job("ok"), Job("bad")
    ok.started()
    bad.started()

    def finish() -> None:
        time.sleep(0.8)
        ok.status.progress.total = 2
        ok.status.progress.increment(2)
        ok.finished()
        bad.finished(RuntimeError("nope"))

    thread = threading.Thread(target=finish)
    thread.start()
    assert run("watch", "ok", "--store", url).returncode == 0
    thread.join()
    assert run("watch", "ok", "bad", "--store", url).returncode == 1
    unknown = run("watch", "ok", "ghost", "--store", url)
    assert unknown.returncode == 2 and "ghost" in unknown.stderr


def test_bad_store_url_is_a_clear_error() -> None:
    result = run("--store", "bogus://x", "get", "a")
    assert result.returncode == 3 and "unknown store URL" in result.stderr


def test_job_data_is_never_read_as_terminal_markup(url: str) -> None:
    job = Job("markup")
    job.started()
    job.status["step"] = "[red]not red[/red] [bold]"
    result = run("get", "markup", "--store", url)
    assert result.returncode == 0
    assert "[red]not red[/red] [bold]" in result.stdout


def test_purge_deletes_expired_records_now(url: str) -> None:
    store = SQLiteStore(url.removeprefix("sqlite:///"))
    for n in range(3):
        store.write(f"old-{n}", Change(set={"status": "completed"}, ttl=0.2, finished_ttl=0.2))
    store.write("kept", Change(set={"status": "completed"}, ttl=600, finished_ttl=600))
    time.sleep(0.5)
    result = run("purge", "--store", url)
    assert result.returncode == 0, result.stderr
    assert "removed 3 expired records" in result.stdout
    assert jobstatus.get("kept").status == "completed"
    again = run("purge", "--store", url)
    assert "removed 0 expired records" in again.stdout
    by_itself = run("purge", "--store", "memory://")
    assert by_itself.returncode == 0 and "removes expired records by itself" in by_itself.stdout


def test_serve_needs_the_web_extra_only_when_it_runs(url: str) -> None:
    without_web = (
        "import sys; sys.modules['starlette'] = sys.modules['uvicorn'] = None; "
        "from jobstatus.cli import main; sys.exit(main(sys.argv[1:]))"
    )

    def run_without_web(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", without_web, *args], capture_output=True, text=True, timeout=60
        )

    assert "serve" in run_without_web("--help").stdout
    assert run_without_web("list", "--store", url).returncode == 0
    served = run_without_web("serve", "--store", url)
    assert served.returncode == 3 and "jobstatus[web]" in served.stderr


def imports_of(path: Path, module: str, modules: set[str]) -> set[str]:
    """The ``modules`` that ``path`` (module ``module``) imports anywhere, in functions too."""
    import ast

    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            for alias in node.names:
                name = f"{base}.{alias.name}"
                found.add(name if name in modules else base)
    return found & modules


def test_the_cli_and_web_modules_import_without_a_cycle() -> None:
    """No cycle through a cli or web module, not even one hidden in a function."""
    root = Path(jobstatus.__file__).parent
    files = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {module: imports_of(path, module, set(files)) for module, path in files.items()}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            for name in graph.get(todo.pop(), ()):
                if name == goal:
                    return True
                if name not in seen:
                    seen.add(name)
                    todo.append(name)
        return False

    ours = [m for m in graph if m.startswith(("jobstatus.cli", "jobstatus.web"))]
    assert len(ours) >= 14
    assert [m for m in ours if reaches(m, m)] == []


def test_migrate_says_when_a_store_needs_none(url: str) -> None:
    result = run("migrate", "--store", url)
    assert result.returncode == 0, result.stderr
    assert "needs no migration" in result.stdout
