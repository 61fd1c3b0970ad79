"""The histograms' buckets, shared by the Prometheus and the OpenTelemetry instruments."""

from __future__ import annotations

from typing import Final

#: Upper bounds (seconds) of the duration and wait histograms' buckets: jobs take
#: from milliseconds to hours, so the web's defaults (up to 10 s) would not do.
BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
)  # fmt: skip
