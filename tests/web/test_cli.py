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


def test_list_prints_recent_jobs_one_per_line_when_piped(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'list.db'}"
    store = SQLiteStore.from_url(url)
    put(store, "export-1", status="working", progress=5, total=20, step="[red]rows[/red]")
    put(store, "mail-2", status="failed", name="[bold]mail[/bold]")
    store.close()

    table = run("list", "--store", url)
    assert table.returncode == 0, table.stderr
    rows = [line.split("\t") for line in table.stdout.splitlines()]
    assert [row[:4] for row in rows] == [
        ["mail-2", "failed", "[bold]mail[/bold]", ""],  # a job's text is never read as markup
        ["export-1", "working", "", "25%"],
    ]

    failed = run("list", "--status", "failed", "--limit", "5", "--store", url)
    assert [line.split("\t")[0] for line in failed.stdout.splitlines()] == ["mail-2"]
    assert run("list", "--status", "queued", "--store", url).stdout == ""


def test_serve_refuses_a_bad_port() -> None:
    result = run("serve", "--port", "http")
    assert result.returncode == 2 and "--port" in result.stderr
