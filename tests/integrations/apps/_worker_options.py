"""jobstatus options a test gives a worker through its environment.

Unset variables leave jobstatus' defaults, so tests that do not set them see
no difference.
"""

from __future__ import annotations

import os

import jobstatus

HEARTBEAT_ENV = "JOBSTATUS_TEST_HEARTBEAT_INTERVAL"


def configure_from_env() -> None:
    """Set ``heartbeat_interval`` from ``JOBSTATUS_TEST_HEARTBEAT_INTERVAL`` when it is given."""
    interval = os.environ.get(HEARTBEAT_ENV)
    if interval:
        jobstatus.configure(heartbeat_interval=float(interval))
