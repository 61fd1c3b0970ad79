"""The process-side instruments through the OpenTelemetry metrics API. Imported only
once it is known to be installed.

The same three instruments under OpenTelemetry's naming rules: dotted names,
the unit in ``unit`` rather than in the name, no ``_total`` on a counter. An
OpenTelemetry Prometheus exporter turns them back into the Prometheus names
(``jobstatus.job.duration`` in ``s`` is ``jobstatus_job_duration_seconds``).
The attributes keep the Prometheus labels' bare ``name`` and ``status`` for that
reason, though OpenTelemetry advises namespaced attribute names.
"""

from __future__ import annotations

from opentelemetry import metrics

from .._version import __version__
from ._buckets import BUCKETS

SCOPE = "jobstatus"


class Instruments:
    """The instruments, from the global meter provider's ``jobstatus`` meter.

    Made before the application sets its provider, they record nothing until it
    does (the API's proxies), then through it.
    """

    def __init__(self) -> None:
        meter = metrics.get_meter(SCOPE, __version__)
        self.transitions = meter.create_counter(
            "jobstatus.transitions",
            unit="{transition}",
            description="Lifecycle transitions of the jobs this process enqueued or ran, "
            "by new status",
        )
        self.durations = meter.create_histogram(
            "jobstatus.job.duration",
            unit="s",
            description="How long each attempt ran (working to its end), by how it left the job",
            explicit_bucket_boundaries_advisory=BUCKETS,
        )
        self.waits = meter.create_histogram(
            "jobstatus.job.wait",
            unit="s",
            description="How long each job waited from queued to working",
            explicit_bucket_boundaries_advisory=BUCKETS,
        )

        # One attributes mapping per label set, made once and never changed (the SDK may keep it).
        self._pairs: dict[tuple[str, str], dict[str, str]] = {}
        self._names: dict[str, dict[str, str]] = {}

    def _of(self, name: str, status: str) -> dict[str, str]:
        found = self._pairs.get((name, status))
        if found is None:
            found = self._pairs[name, status] = {"name": name, "status": status}
        return found

    def transition(self, name: str, status: str) -> None:
        self.transitions.add(1, self._of(name, status))

    def duration(self, name: str, status: str, seconds: float) -> None:
        self.durations.record(seconds, self._of(name, status))

    def wait(self, name: str, seconds: float) -> None:
        found = self._names.get(name)
        if found is None:
            found = self._names[name] = {"name": name}
        self.waits.record(seconds, found)
