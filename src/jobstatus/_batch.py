"""``Batch``: many jobs read together, in a few round trips."""

from __future__ import annotations

import time
from collections.abc import Iterable

from ._batch_async import AsyncBatchMethods
from ._batch_sync import BatchMethods
from ._config import store_or_default
from ._record import STATES, UNFINISHED_STATES, Record, job_id_of, unique_ids
from ._rollup import status_of_counts
from ._status import Progress, Status
from .stores.base import POLL_GROWTH, POLL_MAX

COUNT_KEYS = (*STATES, "missing")


class Batch(BatchMethods, AsyncBatchMethods):
    """A group of jobs read together: overall status, counts and progress.

    The records are read on first use (one store call for all members, which
    the store splits into a few round trips per many thousand ids);
    ``refresh()`` reads them again. Repeated ids count once.

    Example::

        batch = jobstatus.Batch(job_ids)
        print(batch.status, batch.counts, batch.progress.percent)
        batch.wait(timeout=60)
    """

    def __init__(self, jobs: Iterable[object], *, store: object = None) -> None:
        self.job_ids: list[str] = unique_ids(job_id_of(job) for job in jobs)
        self._store = store_or_default(store)
        self._statuses: list[Status] | None = None

    def __repr__(self) -> str:
        return f"<Batch of {len(self.job_ids)} jobs>"

    def __len__(self) -> int:
        return len(self.job_ids)

    def _load(self, records: list[Record | None]) -> Batch:
        pairs = zip(self.job_ids, records, strict=True)
        self._statuses = [Status(job_id, record, self._store) for job_id, record in pairs]
        return self

    # refresh, cancel, wait and their async twins are BatchMethods' (_batch_async.py)

    @property
    def statuses(self) -> list[Status]:
        """One snapshot per member, in order."""
        if self._statuses is None:
            self.refresh()
        assert self._statuses is not None
        return self._statuses

    @property
    def counts(self) -> dict[str, int]:
        """Members per state, plus ``missing`` for unknown or expired ids."""
        counts = dict.fromkeys(COUNT_KEYS, 0)
        for status in self.statuses:
            state = status._record.get("status")
            counts[state if state in STATES else "missing"] += 1
        return counts

    @property
    def status(self) -> str | None:
        """failed if any failed; queued if all queued; completed if all completed;
        cancelled if all finished (some cancelled, none failed); working otherwise;
        None when no member exists."""
        counts = self.counts
        return status_of_counts(counts, len(self.job_ids) - counts["missing"])

    @property
    def progress(self) -> Progress:
        """``current`` and ``total`` summed over the members that have a total."""
        current: float = 0
        total: float | None = None
        for status in self.statuses:
            member_total = status.progress.total
            if member_total is not None:
                total = (total or 0) + member_total
                current += status.progress.current
        return Progress(current=current, total=total)

    @property
    def stale(self) -> int:
        """How many members are working but silent past ``stale_after`` (see Status.is_stale)."""
        return sum(status.is_stale for status in self.statuses)

    @property
    def is_finished(self) -> bool:
        """No existing member is queued or working."""
        counts = self.counts
        return not (counts["queued"] or counts["working"])

    def _unfinished(self) -> list[str]:
        """Members not known to be finished (all of them before the first read)."""
        if self._statuses is None:
            return list(self.job_ids)
        return [s.job_id for s in self._statuses if s._record.get("status") in UNFINISHED_STATES]

    def _next_delay(self, deadline: float | None, delay: float) -> float:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the batch of {len(self.job_ids)} jobs did not finish in time")
            return min(delay * POLL_GROWTH, POLL_MAX, left)
        return min(delay * POLL_GROWTH, POLL_MAX)


Status.batch_class = Batch
