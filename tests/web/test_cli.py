"""``jobstatus list`` and ``jobstatus serve``, run as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jobstatus.stores import SQLiteStore

from ._support import put

pytestmark = pytest.mark.web


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobstatus", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "160", "PATH": "/usr/bin:/bin"},
    )


def test_list_prints_recent_jobs_as_a_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'list.db'}"
    store = SQLiteStore.from_url(url)
    put(store, "export-1", status="working", progress=5, total=20, step="[red]rows[/red]")
    put(store, "mail-2", status="failed")
    store.close()

    table = run("list", "--store", url)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["job", "status", "progress", "step", "updated"]
    assert lines[1].split()[:2] == ["mail-2", "failed"]
    assert "export-1" in lines[2] and "25% (5/20)" in lines[2]
    assert "[red]rows[/red]" in lines[2]  # a job's text is never read as markup

    failed = run("list", "--status", "failed", "--limit", "5", "--store", url)
    assert [line.split()[0] for line in failed.stdout.splitlines()[1:]] == ["mail-2"]
    assert "no recent jobs" in run("list", "--status", "queued", "--store", url).stdout


def test_serve_refuses_a_bad_port() -> None:
    result = run("serve", "--port", "http")
    assert result.returncode == 2 and "--port" in result.stderr
