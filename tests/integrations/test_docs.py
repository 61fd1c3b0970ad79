"""The ten-line examples of docs/celery.md, docs/rq.md and docs/dramatiq.md, run for real:
the page's ``tasks.py`` in a worker subprocess, its ``publish.py`` in another.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import redis

from ._support import (
    ROOT,
    python,
    redis_url,
    require_redis,
    scratch_dir,
    start,
    stop,
    worker_env,
)

DOCS_REDIS_DB = 6  # the examples' broker; flushed after each example
EXAMPLE_URL = "redis://localhost:6379/0"
BLOCK = re.compile(r'```python title="(?P<name>[\w.]+)"\n(?P<code>.*?)```', re.S)
BIN = Path(python()).parent

WORKERS = {
    "celery": [python(), "-m", "celery", "-A", "tasks", "worker", "-c", "1"],
    "rq": [
        str(BIN / "rq"),
        "worker",
        "-w",
        "jobstatus.integrations.rq.StatusWorker",
        "--url",
        "{url}",
    ],
    "dramatiq": [python(), "-m", "dramatiq", "tasks", "-p", "1", "-t", "1"],
}


def _files(page: str, url: str) -> dict[str, str]:
    text = (ROOT / "docs" / f"{page}.md").read_text()
    files = {m["name"]: m["code"] for m in BLOCK.finditer(text)}
    assert set(files) == {"tasks.py", "publish.py"}, f"docs/{page}.md lost an example"
    # Point the examples at the test Redis database (the page says localhost).
    return {
        name: code.replace(EXAMPLE_URL, url).replace("Redis()", f"Redis.from_url({url!r})")
        for name, code in files.items()
    }


@pytest.mark.parametrize(
    "page",
    [
        pytest.param("celery", marks=pytest.mark.celery),
        pytest.param("rq", marks=pytest.mark.rq),
        pytest.param("dramatiq", marks=pytest.mark.dramatiq),
    ],
)
@pytest.mark.timeout(120)
def test_the_ten_line_example_runs(page: str) -> None:
    pytest.importorskip(page)
    require_redis()
    url = redis_url(DOCS_REDIS_DB)
    with scratch_dir(f"docs-{page}") as folder:
        for name, code in _files(page, url).items():
            (folder / name).write_text(code)
        env = worker_env(f"sqlite:///{folder / 'status.db'}")
        env["PYTHONPATH"] = f"{folder}:{env['PYTHONPATH']}"
        command = [part.format(url=url) for part in WORKERS[page]]
        log = folder / "worker.log"
        worker = start(command, env, log)
        try:
            out = subprocess.run(
                [python(), str(folder / "publish.py")],
                env=env,
                cwd=folder,
                capture_output=True,
                text=True,
                timeout=90,
            )
        finally:
            stop(worker)
            redis.Redis.from_url(url).flushdb()
        assert out.returncode == 0, out.stderr + log.read_text()
        first, second = out.stdout.split()
        assert first in ("queued", "working"), out.stdout
        assert second == "100.0", out.stdout
