"""``jobstatus serve --metrics``: a real server process, scraped over HTTP and parsed
with prometheus_client's text parser, in multiprocess mode beside a worker process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ._own_servers import free_port, wait_for_port

pytestmark = [pytest.mark.web, pytest.mark.timeout(120)]
ROOT = Path(__file__).parents[1]

WORKER = """
import jobstatus
from jobstatus import Job

for n in range(3):
    Job(f"done-{n}", name="reports.export").enqueued()
    job = Job(f"done-{n}", name="reports.export")
    job.started()
    job.finished()
Job("waiting", name="reports.export").enqueued()
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    pytest.importorskip("starlette")
    (tmp_path / "prometheus").mkdir()
    return tmp_path


def _env(folder: Path) -> dict[str, str]:
    return dict(
        os.environ,
        PYTHONPATH=str(ROOT / "src"),
        JOBSTATUS_STORE=f"sqlite:///{folder / 'status.db'}",
        PROMETHEUS_MULTIPROC_DIR=str(folder / "prometheus"),
    )


def _serve(folder: Path, *flags: str) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "jobstatus", "serve", "--port", str(port), *flags]
    process = subprocess.Popen(
        command, env=_env(folder), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port, up=True, within=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def served(folder: Path) -> Iterator[str]:
    subprocess.run([sys.executable, "-c", WORKER], env=_env(folder), check=True, timeout=60)
    yield from _serve(folder, "--metrics")


def test_a_scrape_of_serve_metrics_parses_with_the_workers_metrics(served: str) -> None:
    response = httpx.get(f"{served}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    gauges = {s.labels["status"]: s.value for s in families["jobstatus_jobs"].samples}
    assert gauges == {
        "queued": 1, "working": 0, "completed": 3, "failed": 0, "cancelled": 0, "stale": 0,
    }  # fmt: skip
    transitions = {
        s.labels["status"]: s.value
        for s in families["jobstatus_transitions"].samples
        if s.name == "jobstatus_transitions_total" and s.labels["name"] == "reports.export"
    }
    assert transitions == {"queued": 4, "working": 3, "completed": 3}
    durations = families["jobstatus_job_duration_seconds"].samples
    assert any(s.name.endswith("_count") and s.value == 3 for s in durations)


@pytest.fixture
def served_without_metrics(folder: Path) -> Iterator[str]:
    yield from _serve(folder)


def test_without_the_flag_there_is_no_metrics_route(served_without_metrics: str) -> None:
    assert httpx.get(f"{served_without_metrics}/metrics", timeout=10).status_code == 404
