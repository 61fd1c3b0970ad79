"""jobstatus.metrics: the store-wide gauges, the process-side instruments through
prometheus_client and OpenTelemetry, and what /metrics renders.

Each test names its jobs uniquely, so the process-wide instruments' series it
reads are its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import metrics as otel_metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import jobstatus
import jobstatus.metrics
from jobstatus import Job, StoreError
from jobstatus import _meter as _process
from jobstatus._record import parse_iso
from jobstatus.stores import CacheStore, MemoryStore, Store

from .stores import StoreCase

ROOT = Path(__file__).parents[1]
STATUSES = ["queued", "working", "completed", "failed", "cancelled", "stale"]
READER = InMemoryMetricReader()
# The global provider can be set once per process: this module's, before any job here.
otel_metrics.set_meter_provider(MeterProvider(metric_readers=[READER]))


@pytest.fixture(autouse=True)
def _default_metrics() -> Iterator[None]:
    jobstatus.configure(store="memory://")
    yield
    jobstatus.metrics.configure()


def unique(prefix: str = "task") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}"


def prom(sample: str, **labels: str) -> float:
    """A sample of prometheus_client's default registry (0 when absent)."""
    return REGISTRY.get_sample_value(sample, labels) or 0.0


def otel(instrument: str, **attributes: str) -> list[Any]:
    """The OpenTelemetry data points of ``instrument`` with exactly these attributes."""
    data = READER.get_metrics_data()
    found = []
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == instrument:
                    found += [
                        point
                        for point in metric.data.data_points
                        if dict(point.attributes) == attributes
                    ]
    return found


def otel_unit(instrument: str) -> str | None:
    data = READER.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == instrument:
                    return str(metric.unit)
    return None


def run_python(code: str, **env: str) -> str:
    """Run ``code`` in a fresh interpreter (the package from src), return its output."""
    environment = dict(os.environ, PYTHONPATH=str(ROOT / "src"), **env)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


# -- process-side instruments -------------------------------------------------------------


@pytest.fixture
def merging(case: StoreCase) -> None:
    if not case.guards:
        pytest.skip(f"{case.name}'s write answers queued_at once its script/function fills it")


def test_a_tracked_job_counts_its_transitions_and_times_its_attempt() -> None:
    name = unique()

    @jobstatus.track(name=name)
    def export() -> int:
        return 1

    export()
    assert prom("jobstatus_transitions_total", name=name, status="working") == 1
    assert prom("jobstatus_transitions_total", name=name, status="completed") == 1
    assert prom("jobstatus_transitions_total", name=name, status="queued") == 0
    assert prom("jobstatus_job_duration_seconds_count", name=name, status="completed") == 1
    assert prom("jobstatus_job_duration_seconds_sum", name=name, status="completed") >= 0
    # A plain call has no queued record: its wait is unknown, so not observed.
    assert prom("jobstatus_job_wait_seconds_count", name=name) == 0


def test_a_failing_job_is_counted_and_timed_as_failed() -> None:
    name = unique()

    @jobstatus.track(name=name)
    def broken() -> None:
        raise ValueError("no")

    with pytest.raises(ValueError):
        broken()
    assert prom("jobstatus_transitions_total", name=name, status="failed") == 1
    assert prom("jobstatus_job_duration_seconds_count", name=name, status="failed") == 1
    assert prom("jobstatus_job_duration_seconds_count", name=name, status="completed") == 0


def test_an_async_job_records_the_same() -> None:
    name = unique()

    @jobstatus.track(name=name)
    async def fetch() -> int:
        return 1

    async def main() -> None:
        job_id = await jobstatus.asubmit(fetch)
        await jobstatus.get(job_id).until_finished(timeout=10)

    asyncio.run(main())
    assert prom("jobstatus_transitions_total", name=name, status="queued") == 1
    assert prom("jobstatus_transitions_total", name=name, status="working") == 1
    assert prom("jobstatus_job_wait_seconds_count", name=name) == 1
    assert prom("jobstatus_transitions_total", name=name, status="completed") == 1
    assert prom("jobstatus_job_duration_seconds_count", name=name, status="completed") == 1


@pytest.mark.usefixtures("merging")
def test_the_wait_is_from_when_the_job_became_queued_to_its_start(store: Store) -> None:
    """Through each Python-merging store, whose start's reply carries queued_at:
    the first wait is from the enqueue, the retry's from the retry."""
    case_name = unique("waits")
    job_id = unique("job")
    Job(job_id, name=case_name).enqueued()
    first = Job(job_id, name=case_name)
    first.started()
    first.retrying(ConnectionError("again"))
    second = Job(job_id, name=case_name)
    second.started()
    second.finished()

    history = jobstatus.get(job_id).history
    queued = [parse_iso(entry["at"]) for entry in history if entry["status"] == "queued"]
    working = [parse_iso(entry["at"]) for entry in history if entry["status"] == "working"]
    assert len(queued) == len(working) == 2
    expected = sum(start - since for start, since in zip(working, queued, strict=True))  # type: ignore[operator]
    assert prom("jobstatus_job_wait_seconds_count", name=case_name) == 2
    # To the stamps' microsecond: the meter keeps the start's epoch, not its parsed stamp.
    waited = prom("jobstatus_job_wait_seconds_sum", name=case_name)
    assert waited == pytest.approx(expected, abs=2e-6)
    assert prom("jobstatus_transitions_total", name=case_name, status="queued") == 2
    assert prom("jobstatus_transitions_total", name=case_name, status="working") == 2
    # The retried attempt is timed by how it left the job: queued again.
    assert prom("jobstatus_job_duration_seconds_count", name=case_name, status="queued") == 1
    assert prom("jobstatus_job_duration_seconds_count", name=case_name, status="completed") == 1


@pytest.mark.usefixtures("merging")
def test_a_start_learns_since_when_it_was_queued_from_the_write(store: Store) -> None:
    job_id = unique("job")
    Job(job_id).enqueued()
    queued_at = jobstatus.get(job_id)["queued_at"]
    job = Job(job_id)
    job.started()
    assert job.writer.queued_at == queued_at
    job.retrying()
    retried_at = jobstatus.get(job_id).history[-1]["at"]
    again = Job(job_id)
    again.started()
    assert again.writer.queued_at == retried_at != queued_at
    again.finished()
    never_queued = Job(unique("job"))
    never_queued.started()
    assert never_queued.writer.queued_at is None


@pytest.mark.usefixtures("merging")
def test_without_history_only_a_first_attempt_knows_its_wait(store: Store) -> None:
    job_id = unique("job")
    Job(job_id, options={"history_limit": 0}).enqueued()
    job = Job(job_id, options={"history_limit": 0})
    job.started()
    assert job.writer.queued_at == jobstatus.get(job_id)["queued_at"]
    job.retrying()
    again = Job(job_id, options={"history_limit": 0})
    again.started()
    assert again.writer.queued_at is None  # queued_at is the enqueue's: not this wait


def test_a_job_cancelled_before_it_starts_is_counted_and_not_timed() -> None:
    name = unique()
    job_id = unique("job")
    Job(job_id, name=name).enqueued()
    jobstatus.cancel(job_id)
    assert Job(job_id, name=name).started() is False
    assert prom("jobstatus_transitions_total", name=name, status="cancelled") == 1
    assert prom("jobstatus_transitions_total", name=name, status="working") == 0
    assert prom("jobstatus_job_duration_seconds_count", name=name, status="cancelled") == 0


def test_a_job_failed_by_hand_counts_failed_once_and_is_timed_at_its_end() -> None:
    name = unique()

    @jobstatus.track(name=name)
    def swallow() -> str:
        try:
            raise KeyError("row")
        except KeyError as exc:
            jobstatus.current().catch_exception(exc)
        assert prom("jobstatus_job_duration_seconds_count", name=name, status="failed") == 0
        return "handled"

    assert swallow() == "handled"
    assert jobstatus.recent(limit=1)[0].is_failed
    assert prom("jobstatus_transitions_total", name=name, status="failed") == 1
    assert prom("jobstatus_transitions_total", name=name, status="completed") == 0
    assert prom("jobstatus_job_duration_seconds_count", name=name, status="failed") == 1


def test_a_job_that_records_no_status_records_no_metrics() -> None:
    name = unique()

    @jobstatus.track(name=name, includes=set())
    def quiet() -> None: ...

    quiet()
    assert prom("jobstatus_transitions_total", name=name, status="working") == 0


def test_opentelemetry_gets_the_same_instruments_with_units_outside_the_names() -> None:
    name = unique()
    job_id = unique("job")
    Job(job_id, name=name).enqueued()
    job = Job(job_id, name=name)
    job.started()
    job.finished(ValueError("no"))

    [working] = otel("jobstatus.transitions", name=name, status="working")
    [failed] = otel("jobstatus.transitions", name=name, status="failed")
    assert working.value == failed.value == 1
    [duration] = otel("jobstatus.job.duration", name=name, status="failed")
    [wait] = otel("jobstatus.job.wait", name=name)
    assert duration.count == wait.count == 1
    assert tuple(duration.explicit_bounds) == _process.BUCKETS
    assert wait.sum == pytest.approx(prom("jobstatus_job_wait_seconds_sum", name=name))
    assert otel_unit("jobstatus.job.duration") == otel_unit("jobstatus.job.wait") == "s"
    assert otel_unit("jobstatus.transitions") == "{transition}"


def test_configure_turns_each_library_off_and_back_on() -> None:
    name = unique()

    @jobstatus.track(name=name)
    def noop() -> None: ...

    jobstatus.metrics.configure(prometheus=False)
    noop()
    assert prom("jobstatus_transitions_total", name=name, status="working") == 0
    [point] = otel("jobstatus.transitions", name=name, status="working")
    assert point.value == 1
    jobstatus.metrics.configure(prometheus=False, otel=False)
    assert _process.recorder() is None
    noop()
    [point] = otel("jobstatus.transitions", name=name, status="working")
    assert point.value == 1
    jobstatus.metrics.configure()
    noop()
    assert prom("jobstatus_transitions_total", name=name, status="working") == 1


def test_past_max_names_the_next_names_count_as_other(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    jobstatus.metrics.configure()  # a new recorder: no names seen yet
    monkeypatch.setattr(_process, "MAX_NAMES", 2)
    names = [unique() for _ in range(3)]
    before = prom("jobstatus_transitions_total", name="_other", status="queued")
    with caplog.at_level(logging.WARNING, logger="jobstatus"):
        for name in names:
            Job(unique("job"), name=name).enqueued()
    assert [prom("jobstatus_transitions_total", name=n, status="queued") for n in names] == [
        1,
        1,
        0,
    ]
    assert prom("jobstatus_transitions_total", name="_other", status="queued") == before + 1
    assert "not ids" in caplog.text


# -- without the libraries -------------------------------------------------------------


HIDE_LIBRARIES = """
    import sys
    for module in ("prometheus_client", "opentelemetry"):
        sys.modules[module] = None  # as if not installed: imports fail, find_spec says None
"""


def test_without_either_library_nothing_is_imported_and_nothing_recorded() -> None:
    out = run_python(
        HIDE_LIBRARIES
        + """
    import jobstatus, jobstatus.metrics
    from jobstatus import _meter as _process

    jobstatus.configure(store="memory://")
    jobstatus.track(name="t")(lambda: None)()
    loaded = [m for m, v in sys.modules.items() if v is not None
              and m.startswith(("prometheus_client", "opentelemetry"))]
    print(loaded, _process.recorder())
    try:
        jobstatus.metrics.collector()
    except jobstatus.ConfigurationError as exc:
        print(exc)
    try:
        jobstatus.metrics.configure(otel=True)
    except jobstatus.ConfigurationError as exc:
        print(exc)
    """
    )
    lines = out.splitlines()
    assert lines[0] == "[] None"
    assert "pip install 'jobstatus[prometheus]'" in lines[1]
    assert "pip install 'jobstatus[otel]'" in lines[2]


def test_importing_jobstatus_imports_neither_library_until_a_job() -> None:
    out = run_python(
        """
    import sys
    import jobstatus

    def loaded():
        return sorted({m.split(".")[0] for m in sys.modules
                       if m.startswith(("prometheus_client", "opentelemetry"))})

    print(loaded())
    jobstatus.configure(store="memory://")
    jobstatus.track(name="t")(lambda: None)()
    print(loaded())
    """
    )
    assert out.splitlines() == ["[]", "['opentelemetry', 'prometheus_client']"]


# -- the store-wide gauges ----------------------------------------------------------------


@pytest.fixture
def counting(case: StoreCase) -> None:
    if not case.lists or not case.searches:
        pytest.skip(f"{case.name} does not count from its indexes yet")


def _make_jobs() -> None:
    for n in range(3):
        Job(f"q{n}").enqueued()
    for n, end in enumerate(["working", "completed", "completed", "failed", "cancelled"]):
        job = Job(f"j{n}")
        job.enqueued()
        job.started()
        if end == "completed":
            job.finished()
        elif end == "failed":
            job.finished(ValueError("no"))
        elif end == "cancelled":
            job.cancelled()


def _gauges(text: str) -> dict[str, float]:
    found = {}
    for family in text_string_to_metric_families(text):
        if family.name == "jobstatus_jobs":
            found.update({s.labels["status"]: s.value for s in family.samples})
    return found


@pytest.mark.usefixtures("counting")
def test_the_collector_scrapes_the_stores_counts(store: Store) -> None:
    _make_jobs()
    registry = CollectorRegistry()
    registry.register(jobstatus.metrics.collector(store))
    scraped = _gauges(generate_latest(registry).decode())
    expected = {"queued": 3, "working": 1, "completed": 2, "failed": 1, "cancelled": 1}
    assert scraped == {**expected, "stale": 0}
    assert scraped == jobstatus.counts()
    jobstatus.configure(stale_after=0.000001)
    assert _gauges(generate_latest(registry).decode())["stale"] == 1


def test_the_collector_of_the_configured_store_follows_configure(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    registry.register(jobstatus.metrics.collector())
    Job("one").enqueued()
    assert _gauges(generate_latest(registry).decode())["queued"] == 1
    jobstatus.configure(store=f"sqlite:///{tmp_path / 'other.db'}")
    assert _gauges(generate_latest(registry).decode())["queued"] == 0


class BrokenCounts(MemoryStore):
    def count_by_status(self) -> dict[str, int]:
        raise StoreError("the store is down")


def test_a_failing_store_leaves_the_gauges_out_never_at_zero(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(jobstatus.metrics.collector(BrokenCounts()))  # describe(): no I/O
    with caplog.at_level(logging.WARNING, logger="jobstatus"):
        text = generate_latest(registry).decode()
    assert "jobstatus_jobs{" not in text
    assert "the store is down" in caplog.text
    with pytest.raises(StoreError):
        jobstatus.metrics.render(BrokenCounts())  # a route answers 503


def test_a_store_that_cannot_count_is_refused_at_once() -> None:
    from cachelib import SimpleCache

    with pytest.raises(jobstatus.NotSupportedError):
        jobstatus.metrics.collector(CacheStore(SimpleCache()))


# -- render ---------------------------------------------------------------------------


def test_render_serves_the_gauges_and_this_process_instruments() -> None:
    name = unique()
    jobstatus.track(name=name)(lambda: None)()
    body, content_type = jobstatus.metrics.render()
    assert content_type.startswith("text/plain; version=")
    text = body.decode()
    assert _gauges(text) == {**dict.fromkeys(STATUSES, 0), "completed": 1}
    families = {family.name: family for family in text_string_to_metric_families(text)}
    samples = families["jobstatus_transitions"].samples
    assert any(s.labels == {"name": name, "status": "completed"} and s.value == 1 for s in samples)
    assert "jobstatus_job_duration_seconds" in families


def test_render_answers_openmetrics_when_asked_and_arender_the_same() -> None:
    body, content_type = jobstatus.metrics.render(accept="application/openmetrics-text")
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    abody, atype = asyncio.run(jobstatus.metrics.arender())
    assert atype.startswith("text/plain") and b"jobstatus_jobs{" in abody


def test_render_in_multiprocess_mode_adds_every_process_and_only_jobstatus(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    store = f"sqlite:///{tmp_path / 'status.db'}"
    worker = """
    import jobstatus
    from prometheus_client import Counter

    Counter("app_requests", "the application's own").inc()
    jobstatus.track(name="shared.task")(lambda: None)()
    """
    env = {"PROMETHEUS_MULTIPROC_DIR": str(folder), "JOBSTATUS_STORE": store}
    for _ in range(2):
        run_python(worker, **env)
    out = run_python(
        "import jobstatus.metrics; print(jobstatus.metrics.render()[0].decode())", **env
    )
    families = {family.name: family for family in text_string_to_metric_families(out)}
    assert "app_requests" not in families
    assert _gauges(out)["completed"] == 2
    completed = [
        s
        for s in families["jobstatus_transitions"].samples
        if s.labels == {"name": "shared.task", "status": "completed"}
    ]
    assert [s.value for s in completed] == [2.0]


def test_render_with_a_missing_multiprocess_directory_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "missing"))
    with pytest.raises(jobstatus.ConfigurationError, match="not a directory"):
        jobstatus.metrics.render()
