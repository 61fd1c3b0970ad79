"""What a watcher of one job shows next, without I/O: ``Status.watch`` and ``awatch``
(both written in ``_status_async.py``) drive it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ._record import parse_iso

if TYPE_CHECKING:
    from ._status import Status

WATCH_SLICE = 30.0  # seconds a watcher waits per turn when it has no deadline


class Seen:
    """Remembers the last record shown so a watcher yields only real, newer changes."""

    def __init__(self, first: Status) -> None:
        self.record = first._record
        self.updated = parse_iso(first._record.get("updated_at")) or 0.0

    def new(self, snapshots: list[Status]) -> list[Status]:
        fresh = []
        for snapshot in snapshots:
            updated = parse_iso(snapshot._record.get("updated_at")) or 0.0
            if snapshot._record == self.record or (updated and updated < self.updated):
                continue
            self.record, self.updated = snapshot._record, updated
            fresh.append(snapshot)
        return fresh


def remaining(deadline: float | None, job_id: str) -> float:
    """Seconds the next wait may take: a slice without a deadline, else what is left.

    Raises:
        TimeoutError: the deadline passed.
    """
    if deadline is None:
        return WATCH_SLICE
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError(f"job {job_id!r} did not finish in time")
    return left
