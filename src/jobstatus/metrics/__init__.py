"""Metrics: store-wide gauges and process-side instruments (SPEC section 11).

Store-wide, read from the store's listing indexes at each scrape (never a scan):
``jobstatus_jobs{status="queued|working|completed|failed|cancelled|stale"}``.

Process-side, recorded by the lifecycle of the jobs a process enqueues and
runs, through prometheus_client and through the OpenTelemetry metrics API,
each when installed (``pip install 'jobstatus[prometheus]'``, ``[otel]``):
``jobstatus_transitions_total{name, status}``,
``jobstatus_job_duration_seconds{name, status}`` and
``jobstatus_job_wait_seconds{name}``. Without either library, nothing is
imported and nothing is recorded.

Example::

    from prometheus_client import REGISTRY
    import jobstatus.metrics

    REGISTRY.register(jobstatus.metrics.collector())

docs/metrics.md has every instrument, multiprocess mode and what it costs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .._config import store_or_default
from .._meter import BUCKETS, configure
from .._read import acounts, counts
from ..stores.base import listing_of, require

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

__all__ = ["BUCKETS", "arender", "collector", "configure", "render"]


def collector(store: object = None) -> Collector:
    """A prometheus_client collector of the ``jobstatus_jobs{status}`` gauges.

    Each scrape reads ``jobstatus.counts()`` of ``store`` (the configured store
    when None, looked up at each scrape). When the store fails, that scrape has
    no ``jobstatus_jobs`` samples and a warning is logged; registering it does no I/O.

    Raises:
        ConfigurationError: prometheus_client is not installed (the extra ``[prometheus]``).
        NotSupportedError: ``store`` cannot count (memcached, a generic cache).

    Example::

        registry = prometheus_client.CollectorRegistry()
        registry.register(jobstatus.metrics.collector("redis://localhost"))
    """
    require("prometheus_client", "prometheus")
    from .._meter import _prometheus

    if store is None:
        return _prometheus.JobsCollector(counts, "the configured store")
    chosen = store_or_default(store)
    listing_of(chosen)  # refuses a store that cannot count now, not at every scrape
    return _prometheus.JobsCollector(lambda: counts(store=chosen), chosen.describe())


def render(store: object = None, accept: str | None = None) -> tuple[bytes, str]:
    """What ``GET /metrics`` answers: ``(body, content type)``.

    The ``jobstatus_jobs`` gauges of ``store`` and the process-side instruments:
    every worker's, read from ``PROMETHEUS_MULTIPROC_DIR`` when it is set
    (multiprocess mode, jobstatus's metrics only), else this process's own.
    ``accept`` is the request's Accept header: OpenMetrics when it asks for it,
    Prometheus text otherwise.

    Raises:
        ConfigurationError: prometheus_client is not installed, or
            ``PROMETHEUS_MULTIPROC_DIR`` is not a directory.
        NotSupportedError: the store cannot count.
        StoreError: the store failed (a route answers 503).
    """
    require("prometheus_client", "prometheus")
    return _exposition(counts(store=store), accept)


async def arender(store: object = None, accept: str | None = None) -> tuple[bytes, str]:
    """Async twin of :func:`render` (the counts are read with the store's async calls)."""
    require("prometheus_client", "prometheus")
    # Off the loop: in multiprocess mode this reads every worker's files.
    return await asyncio.to_thread(_exposition, await acounts(store=store), accept)


def _exposition(found: Mapping[str, int], accept: str | None) -> tuple[bytes, str]:
    """The body and content type of ``found`` and the process-side instruments."""
    from .._meter import _prometheus

    return _prometheus.exposition(found, accept)
