"""The runnable examples of docs/huey.md, docs/arq.md and docs/taskiq.md run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ..stores import REDIS_URL
from ._support import ROOT, require_redis, worker_env

DOCS = ROOT / "docs"


def first_example(page: str) -> str:
    """The first Python block after the page's "Ten lines that run" heading."""
    text = (DOCS / page).read_text()
    section = text.split("## Ten lines that run", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no example in {page}"
    return match.group(1)


def run_example(page: str, tmp_path: Path) -> str:
    env = worker_env(f"sqlite:///{tmp_path / 'status.db'}")
    out = subprocess.run(
        [sys.executable, "-c", first_example(page)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.huey
def test_huey_example(tmp_path: Path) -> None:
    pytest.importorskip("huey")
    assert run_example("huey.md", tmp_path).split() == ["completed", "100.0"]


@pytest.mark.taskiq
def test_taskiq_example(tmp_path: Path) -> None:
    pytest.importorskip("taskiq")
    assert run_example("taskiq.md", tmp_path).split() == ["completed", "100.0"]


@pytest.mark.arq
def test_arq_example(tmp_path: Path) -> None:
    pytest.importorskip("arq")
    require_redis()
    if not REDIS_URL.startswith("redis://127.0.0.1:6379") and "localhost" not in REDIS_URL:
        pytest.skip("the arq example uses arq's default Redis, localhost:6379")
    import redis

    client = redis.Redis()
    before = set(client.keys("arq:result:*"))
    try:
        assert run_example("arq.md", tmp_path).split() == ["queued", "completed", "100.0"]
    finally:
        made = set(client.keys("arq:result:*")) - before
        client.delete("jobstatus-docs", *made)
        client.close()
