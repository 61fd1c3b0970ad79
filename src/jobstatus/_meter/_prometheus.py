"""Everything that uses prometheus_client: the process-side instruments, the
store-wide gauges' collector and the exposition. Imported only once it is known
to be installed.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import ClassVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from .._errors import ConfigurationError, StoreError
from .._record import STATES
from ._buckets import BUCKETS

logger = logging.getLogger("jobstatus")

PREFIX = "jobstatus_"
JOBS = "jobstatus_jobs"
JOBS_HELP = "Jobs in the status store, by status (stale jobs are working jobs, counted in both)"
#: The ``status`` label values of ``jobstatus_jobs``, in this order.
GAUGE_STATUSES = (*STATES, "stale")
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


class Instruments:
    """The process-side instruments, registered once per process in prometheus_client's
    default registry (so an application's own ``/metrics`` shows them too)."""

    _shared: ClassVar[Instruments | None] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, registry: CollectorRegistry | None = REGISTRY) -> None:
        self.transitions = Counter(
            "jobstatus_transitions",
            "Lifecycle transitions of the jobs this process enqueued or ran, by new status",
            ("name", "status"),
            registry=registry,
        )
        self.durations = Histogram(
            "jobstatus_job_duration_seconds",
            "How long each attempt ran (working to its end), by how it left the job",
            ("name", "status"),
            buckets=BUCKETS,
            registry=registry,
        )
        self.waits = Histogram(
            "jobstatus_job_wait_seconds",
            "How long each job waited from queued to working",
            ("name",),
            buckets=BUCKETS,
            registry=registry,
        )
        self._transitions: dict[tuple[str, str], Counter] = {}
        self._durations: dict[tuple[str, str], Histogram] = {}
        self._waits: dict[str, Histogram] = {}

    @classmethod
    def shared(cls) -> Instruments:
        """The process's instruments (built on first use)."""
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    @classmethod
    def built(cls) -> Instruments | None:
        """The process's instruments if a job has recorded, else None."""
        return cls._shared

    def collectors(self) -> tuple[Collector, ...]:
        return (self.transitions, self.durations, self.waits)

    # ``labels()`` takes a lock and checks its arguments each time, the most of a
    # transition's cost: each label set's child is looked up once, then kept.

    def transition(self, name: str, status: str) -> None:
        child = self._transitions.get((name, status))
        if child is None:
            child = self._transitions[name, status] = self.transitions.labels(name, status)
        child.inc()

    def duration(self, name: str, status: str, seconds: float) -> None:
        child = self._durations.get((name, status))
        if child is None:
            child = self._durations[name, status] = self.durations.labels(name, status)
        child.observe(seconds)

    def wait(self, name: str, seconds: float) -> None:
        child = self._waits.get(name)
        if child is None:
            child = self._waits[name] = self.waits.labels(name)
        child.observe(seconds)


class JobsCollector(Collector):
    """``jobstatus_jobs{status}`` gauges: the store's exact counts, read at each scrape.

    ``counts`` answers ``jobstatus.counts()``'s mapping, from the store's indexes.
    When the store fails, the scrape goes on without these gauges (a warning is
    logged): a broken store never reads as zero jobs.
    """

    def __init__(self, counts: Callable[[], Mapping[str, int]], describe: str) -> None:
        self._counts = counts
        self._describe = describe

    def __repr__(self) -> str:
        return f"<jobstatus.metrics collector of {self._describe}>"

    def describe(self) -> Iterable[Metric]:
        """The gauges' family without samples: registering does no I/O."""
        return [GaugeMetricFamily(JOBS, JOBS_HELP, labels=["status"])]

    def collect(self) -> Iterable[Metric]:
        """The gauges, read now."""
        try:
            found = self._counts()
        except StoreError as exc:
            logger.warning(
                "jobstatus metrics: cannot count the jobs of %s: %s", self._describe, exc
            )
            return []
        return [gauges(found)]


def gauges(found: Mapping[str, int]) -> Metric:
    """The ``jobstatus_jobs`` family of one reading of the counts."""
    family = GaugeMetricFamily(JOBS, JOBS_HELP, labels=["status"])
    for status in GAUGE_STATUSES:
        family.add_metric([status], found.get(status, 0))
    return family


class _Fixed(Collector):
    """Metric families read before the scrape (the async route reads counts awaited)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


class _JobstatusOnly(Collector):
    """The jobstatus families of another collector: a multiprocess directory may also
    hold the application's own metrics, which ``/metrics`` has no say-so to serve."""

    def __init__(self, source: Collector) -> None:
        self._source = source

    def collect(self) -> Iterable[Metric]:
        return [family for family in self._source.collect() if family.name.startswith(PREFIX)]


def process_side() -> tuple[Collector, ...]:
    """What the process-side instruments read as here: every process's (multiprocess
    mode: PROMETHEUS_MULTIPROC_DIR is set), else this process's own, if it made any."""
    folder = os.environ.get(MULTIPROC_DIR)
    if folder:
        if not os.path.isdir(folder):
            raise ConfigurationError(
                f"{MULTIPROC_DIR} is {folder!r}, which is not a directory; create it "
                "before the workers start (and empty it when they all restart)"
            )
        multiprocess = MultiProcessCollector(None, path=folder)  # type: ignore[no-untyped-call]
        return (_JobstatusOnly(multiprocess),)
    built = Instruments.built()
    return () if built is None else built.collectors()


def exposition(found: Mapping[str, int], accept: str | None) -> tuple[bytes, str]:
    """The text a scrape answers: the gauges of ``found`` and the process-side
    instruments, in the format ``accept`` asks for (Prometheus text by default)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed([gauges(found)]))
    for collector in process_side():
        registry.register(collector)
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
